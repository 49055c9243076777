//! The SSRF guard end to end, with a proxy variable set in the dispatcher's environment.
//! Only `127.0.0.3` is allow-listed (it stands for the public internet); listeners on
//! `127.0.0.1` and `127.0.0.2` stand for internal targets, and one on `127.0.0.4` for an
//! HTTP proxy. Endpoints point at an internal address literally, by a name that resolves to
//! one (`localhost`), as an IPv4-mapped IPv6 literal, and at an allowed receiver that answers
//! 302 to an internal address. Every internal one is parked as `destination_forbidden` with
//! the reason in its attempt record, the redirect is not followed, the allowed receiver gets
//! its delivery directly, and neither the internal listeners nor the proxy see a connection.

use crate::harness::*;
use crate::stack::Stack;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A loopback listener that counts connections (and answers `answer` to each, if any).
struct Counting {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Counting {
    /// Listens on every address of `ips` at one port.
    fn start(ips: &[&str], answer: Option<String>) -> Self {
        let first = TcpListener::bind((ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for ip in &ips[1..] {
            listeners.push(TcpListener::bind((*ip, port)).unwrap());
        }
        let hits = Arc::new(AtomicUsize::new(0));
        for listener in listeners {
            let (hits, answer) = (hits.clone(), answer.clone());
            std::thread::spawn(move || {
                for mut stream in listener.incoming().map_while(Result::ok) {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if let Some(answer) = &answer {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = stream.read(&mut [0u8; 4096]);
                        let _ = stream.write_all(answer.as_bytes());
                    }
                }
            });
        }
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[test]
fn internal_targets_are_refused_even_with_a_proxy_in_the_environment() {
    let internal = Counting::start(&["127.0.0.1", "127.0.0.2"], None);
    let proxy = Counting::start(&["127.0.0.4"], None);
    let redirect = Counting::start(
        &["127.0.0.3"],
        Some(format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:{}/\r\ncontent-length: 0\r\n\r\n",
            internal.port
        )),
    );
    let receiver = Receiver::start("127.0.0.3:0".parse().unwrap());
    let proxy_url = format!("http://127.0.0.4:{}", proxy.port);
    let mut overrides: Vec<(&'static str, &str)> =
        vec![("HERALD_DISPATCHER__ALLOWED_NETWORKS", "[\"127.0.0.3/32\"]")];
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        overrides.push((var, &proxy_url));
    }
    let stack = Stack::start("ssrf", &overrides);
    let port = internal.port;
    let blocked = [
        ("literal", format!("http://127.0.0.2:{port}/literal")),
        ("name", format!("http://localhost:{port}/name")),
        ("mapped", format!("http://[::ffff:127.0.0.2]:{port}/mapped")),
    ];
    let mut blocked_ids = Vec::new();
    for (what, url) in &blocked {
        let (id, _) = stack.api.create_endpoint(url, &[&format!("ssrf.{what}")]);
        blocked_ids.push(id);
    }
    let (redirect_id, _) = stack.api.create_endpoint(
        &format!("http://127.0.0.3:{}/moved", redirect.port),
        &["ssrf.redirect"],
    );
    stack
        .api
        .create_endpoint(&format!("http://{}/ok", receiver.addr), &["ssrf.allowed"]);
    for kind in ["literal", "name", "mapped", "redirect", "allowed"] {
        let (status, body) = stack.api.post(
            "/v1/events",
            &serde_json::json!({"type": format!("ssrf.{kind}"), "payload": {"kind": kind}}),
        );
        assert_eq!(status, 202, "{body}");
    }

    receiver.wait_for("/ok", 1, Duration::from_secs(60));
    let mut letters = Vec::new();
    wait_until(
        "every blocked delivery and the redirect dead-lettered",
        Duration::from_secs(90),
        || {
            letters = stack.dead_letters();
            letters.len() > blocked.len()
        },
    );
    for id in &blocked_ids {
        let letter = letters
            .iter()
            .find(|l| l.task.as_ref().is_some_and(|t| &t.endpoint_id == id))
            .unwrap_or_else(|| panic!("no dead letter for {id}"));
        assert_eq!(letter.reason, "destination_forbidden", "{letter:?}");
        let error = &letter
            .task
            .as_ref()
            .unwrap()
            .last_failure
            .as_ref()
            .unwrap()
            .error;
        assert!(
            error.contains("not allowed") || error.contains("forbidden addresses"),
            "a clear reason: {error}"
        );
    }
    let moved = letters
        .iter()
        .find(|l| {
            l.task
                .as_ref()
                .is_some_and(|t| t.endpoint_id == redirect_id)
        })
        .expect("the redirect's dead letter");
    assert_eq!(
        moved.reason, "exhausted",
        "a redirect is a failure: {moved:?}"
    );
    assert!(redirect.hits() >= 1, "the redirecting receiver was asked");
    assert_eq!(internal.hits(), 0, "an internal listener was reached");
    assert_eq!(proxy.hits(), 0, "a delivery went through the proxy");
}
