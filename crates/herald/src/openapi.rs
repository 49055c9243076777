//! The OpenAPI 3.1 description of the whole HTTP API (`openapi.json` beside this crate),
//! served at `GET /openapi.json`. A test reads every `.route(…)` of the API crates and fails
//! when a route or method is missing from the document, or the document lists one the code
//! does not serve.

use axum::routing::get;
use axum::Router;

/// The document.
pub const SPEC: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub fn router() -> Router {
    Router::new().route(
        "/openapi.json",
        get(|| async { ([("content-type", "application/json")], SPEC) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// `(path, method)` of every `.route("path", get(…).post(…))` call in `text`.
    fn routes_in(text: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            if !path.starts_with('/') {
                continue;
            }
            let handlers = &call[call.find(',').unwrap_or(0)..];
            for method in METHODS {
                let direct = handlers
                    .trim_start_matches([',', ' ', '\n'])
                    .starts_with(&format!("{method}("))
                    || handlers.contains(&format!("routing::{method}("))
                    || handlers.contains(&format!(" {method}("))
                    || handlers.contains(&format!(".{method}("));
                if direct {
                    found.push((path.to_owned(), method.to_owned()));
                }
            }
        }
        found
    }

    fn served() -> BTreeSet<(String, String)> {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut all = BTreeSet::new();
        for krate in [
            "herald-ingest",
            "herald-replay",
            "herald-evidence",
            "herald-dispatcher",
            "herald",
        ] {
            let src = crates.join(krate).join("src");
            for file in std::fs::read_dir(&src).unwrap() {
                let path = file.unwrap().path();
                // Unit-test files build routers of their own; they are not the API.
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // The code before its tests: test routers are not the API.
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                all.extend(routes_in(code));
            }
        }
        all
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(SPEC).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut all = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                all.insert((path.clone(), method.clone()));
            }
        }
        all
    }

    #[test]
    fn the_document_lists_exactly_the_routes_the_code_serves() {
        let (served, documented) = (served(), documented());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "routes served but not in openapi.json: {undocumented:?}; in openapi.json but not served: {unserved:?}"
        );
        assert!(served.len() >= 25, "the scan found the routes: {served:?}");
    }

    #[test]
    fn every_reference_resolves_and_every_operation_answers_errors_as_json() {
        let doc: serde_json::Value = serde_json::from_str(SPEC).unwrap();
        let text = SPEC;
        for piece in text.split("\"$ref\": \"#/components/").skip(1) {
            let target = piece.split('"').next().unwrap();
            let mut node = &doc["components"];
            for part in target.split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "unresolved $ref #/components/{target}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
                if secured {
                    assert!(
                        op["responses"]["401"].is_object(),
                        "{method} {path}: no 401"
                    );
                }
            }
        }
    }

    #[test]
    fn the_route_scan_reads_chained_and_multi_line_routes() {
        let code = r#"
            .route("/a", post(create).get(list))
            .route(
                "/a/{id}",
                routing::get(get).patch(update).delete(delete),
            )
        "#;
        let got: BTreeSet<_> = routes_in(code).into_iter().collect();
        let want: BTreeSet<_> = [
            ("/a", "post"),
            ("/a", "get"),
            ("/a/{id}", "get"),
            ("/a/{id}", "patch"),
            ("/a/{id}", "delete"),
        ]
        .into_iter()
        .map(|(p, m)| (p.to_owned(), m.to_owned()))
        .collect();
        assert_eq!(got, want);
    }
}
