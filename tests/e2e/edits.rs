//! Endpoint changes are optimistic: `ETag`/`version` name the state a client read,
//! `If-Match` makes a change conditional on it (412 otherwise), and two changes made at the
//! same moment through two ingest processes never both answer success when only one of them
//! is in effect (the other gets 409).

use crate::harness::wait_until;
use crate::stack::Stack;
use serde_json::json;
use std::time::Duration;

const ROUNDS: usize = 20;

#[test]
fn if_match_and_concurrent_edits_never_lose_an_acknowledged_change() {
    let stack = Stack::start("edits", &[]);
    let (id, _) = stack
        .api
        .create_endpoint("http://127.0.0.1:9/hook", &["stock.*"]);
    let path = format!("/v1/endpoints/{id}");

    let (status, body) = stack.api.get(&path);
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = stack.api.patch_with(
        &path,
        &json!({"description": "first"}),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)), "{body}");
    let (status, body) = stack.api.patch_with(
        &path,
        &json!({"description": "stale"}),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["code"], "version_mismatch", "{body}");
    let (status, body) =
        stack
            .api
            .patch_with(&path, &json!({"description": "x"}), &[("If-Match", "two")]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_if_match", "{body}");
    assert_eq!(stack.api.get(&path).1["description"], "first");

    // Two ingest processes change the same endpoint at the same moment, ROUNDS times.
    let (_other, other_api) = stack.spawn_ingest("ingest-b");
    let mut conflicts = 0;
    for round in 0..ROUNDS {
        let answers: Vec<(String, u16, serde_json::Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = [("a", &stack.api), ("b", &other_api)]
                .into_iter()
                .map(|(who, api)| {
                    let (path, description) = (&path, format!("{who}-{round}"));
                    s.spawn(move || {
                        let (status, body) = api.patch(path, &json!({"description": description}));
                        (description, status, body)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 200).collect();
        for (_, status, body) in &answers {
            assert!(
                *status == 200 || (*status == 409 && body["error"]["code"] == "concurrent_change"),
                "round {round}: unexpected answer {status} {body}"
            );
        }
        conflicts += answers.len() - won.len();
        assert!(
            !won.is_empty(),
            "round {round}: neither change took: {answers:?}"
        );
        // What the last successful change wrote is what both ingests show once they caught up.
        let last = won
            .iter()
            .max_by_key(|(_, _, body)| body["version"].as_u64())
            .unwrap();
        if won.len() == 2 {
            assert_ne!(
                won[0].2["version"], won[1].2["version"],
                "round {round}: two successes with the same version: one of them was lost"
            );
        }
        wait_until("both ingests agree", Duration::from_secs(10), || {
            [&stack.api, &other_api]
                .iter()
                .all(|api| api.get(&path).1["description"] == last.0.as_str())
        });
    }
    eprintln!(
        "{conflicts} of {} concurrent changes answered 409",
        2 * ROUNDS
    );
}
