//! The API against its OpenAPI document (`crates/herald/openapi.json`), by schemathesis
//! (PyPI, installed by tests/install-tools.sh): generated requests for every operation
//! (examples, fuzzing and stateful phases, at most 50 cases per operation), on a stack with
//! real Kafka. (Its coverage phase is left out: in schemathesis 4.32.5 it fails now and then
//! inside Hypothesis with a `FlakyFailure` while generating bodies, a tool error unrelated to
//! the API.) No answer may be a 5xx, and every answer must conform to the document (status
//! code, content type, headers, body schema).
//!
//! The stateful phase follows links, so it can reach the key it tests with: `GET /v1/keys`
//! lists that key's id, `DELETE /v1/keys/{id}` revokes it and `POST /v1/keys/{id}/roll` with
//! `overlap_seconds: 0` ends it at once, after which every answer is a 401 and the run proves
//! little (a CI run saw exactly that). So revoking is left out, and rolling runs in a second
//! pass without the stateful phase, where ids are generated, never taken from a listing.

use crate::stack::Stack;
use std::process::{Command, Output};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";
const ROLL: &str = r"^/v1/keys/\{id\}/roll$";

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let stack = Stack::start("schema", &[]);
    let auth = format!("Authorization: Bearer {}", stack.api.token);
    let everything_else = [
        "--phases",
        "examples,fuzzing,stateful",
        "--exclude-path-regex",
        r"^/v1/keys/\{id\}(/roll)?$",
    ];
    check(
        "all but the key lifecycle",
        &schemathesis(&stack.api.base, &auth, &everything_else),
    );
    let roll = ["--phases", "examples,fuzzing", "--include-path-regex", ROLL];
    check("key roll", &schemathesis(&stack.api.base, &auth, &roll));
}

fn schemathesis(base: &str, auth: &str, args: &[&str]) -> Output {
    let venv = std::env::var("HERALD_SCHEMATHESIS_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/herald-py/schemathesis",
            std::env::var("HOME").unwrap()
        )
    });
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    Command::new("timeout")
        .args(["900", &format!("{venv}/bin/schemathesis"), "run", spec])
        .args(["--url", base, "--header", auth])
        .args(["--max-examples", "50", "--workers", "2", "--checks", CHECKS])
        .args(args)
        .arg("--no-color")
        .output()
        .expect("run schemathesis (tests/install-tools.sh installs it)")
}

fn check(pass: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "--- {pass} ---\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{pass}: schemathesis found answers that are 5xx or do not match the OpenAPI document \
         (above)"
    );
    assert!(stdout.contains("passed"), "{pass}: no test cases ran");
    assert!(
        !stdout.contains("returned only 401/403"),
        "{pass}: the key stopped working during the run: the run proves little"
    );
}
