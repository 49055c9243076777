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
        Self::start_at(ips, 0, answer)
    }

    /// [`Counting::start`] at `port` (0: any free one).
    fn start_at(ips: &[&str], port: u16, answer: Option<String>) -> Self {
        let first = TcpListener::bind((ips[0], port)).unwrap();
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

/// A DNS server on loopback that answers every A question with `first`, then `next`.
struct RebindingDns {
    addr: std::net::SocketAddr,
    questions: Arc<AtomicUsize>,
}

impl RebindingDns {
    fn start(first: [u8; 4], next: [u8; 4]) -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let questions = Arc::new(AtomicUsize::new(0));
        let asked = questions.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            while let Ok((n, peer)) = socket.recv_from(&mut buffer) {
                let query = &buffer[..n];
                let mut answer = query.to_vec();
                answer[2] = 0x81;
                answer[3] = 0x80;
                if n > 16 && query[n - 3] == 1 {
                    // An A question: one record, through a pointer to the question's name.
                    let ip = if asked.fetch_add(1, Ordering::SeqCst) == 0 {
                        first
                    } else {
                        next
                    };
                    answer[7] = 1;
                    answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
                    answer.extend_from_slice(&ip);
                }
                let _ = socket.send_to(&answer, peer);
            }
        });
        Self { addr, questions }
    }
}

#[test]
fn a_name_rebinding_to_an_internal_address_is_refused_at_the_next_connection() {
    // The same port on the allowed address (answering 500 and closing the connection, so
    // the retry connects again) and on an internal one.
    let allowed = Counting::start(
        &["127.0.0.3"],
        Some("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()),
    );
    let internal = Counting::start_at(&["127.0.0.1"], allowed.port, None);
    let dns = RebindingDns::start([127, 0, 0, 3], [127, 0, 0, 1]);
    let servers = format!("[\"{}\"]", dns.addr);
    let stack = Stack::start(
        "ssrf-rebind",
        &[
            ("HERALD_DISPATCHER__ALLOWED_NETWORKS", "[\"127.0.0.3/32\"]"),
            ("HERALD_DISPATCHER__DNS_SERVERS", &servers),
        ],
    );
    let (id, _) = stack.api.create_endpoint(
        &format!("http://rebind.test:{}/hook", allowed.port),
        &["ssrf.rebind"],
    );
    let (status, body) = stack.api.post(
        "/v1/events",
        &serde_json::json!({"type": "ssrf.rebind", "payload": {}}),
    );
    assert_eq!(status, 202, "{body}");
    let mut letters = Vec::new();
    wait_until(
        "the rebound delivery dead-lettered",
        Duration::from_secs(90),
        || {
            letters = stack.dead_letters();
            !letters.is_empty()
        },
    );
    let task = letters[0].task.as_ref().unwrap();
    assert_eq!(task.endpoint_id, id);
    assert_eq!(
        letters[0].reason, "destination_forbidden",
        "{:?}",
        letters[0]
    );
    assert_eq!(
        task.attempts.len(),
        2,
        "one attempt to the allowed address, then refused"
    );
    assert_eq!(task.attempts[0].status, 500);
    let error = &task.last_failure.as_ref().unwrap().error;
    assert!(
        error.contains("forbidden addresses"),
        "a clear reason: {error}"
    );
    assert!(
        dns.questions.load(Ordering::SeqCst) >= 2,
        "resolved for each connection"
    );
    assert_eq!(allowed.hits(), 1);
    assert_eq!(internal.hits(), 0, "the internal listener was reached");
}
