//! The seam where deliveries leave the process. A [`DeliveryRequest`] is built and signed
//! in the domain (Standard Webhooks headers over the exact payload bytes); a [`Transport`]
//! carries it and reports what happened as an [`AttemptOutput`]. HTTP
//! ([`crate::sink::HttpTransport`]) is one implementation; [`Deadline`] wraps any transport
//! so no attempt outlives its bound; unit tests drive the delivery step with an in-memory
//! transport.
//!
//! ```text
//! Deliverer::step ─▶ DeliveryRequest::signed ─▶ Deadline ─▶ HttpTransport ─▶ receiver
//! ```

use futures::future::BoxFuture;
use herald_core::endpoint::Endpoint;
use herald_core::outcome::AttemptResult;
use herald_core::signing::signature_header;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// What one attempt produced, with everything the attempt log keeps.
#[derive(Debug, Clone)]
pub struct AttemptOutput {
    pub result: AttemptResult,
    pub started_at_ms: i64,
    pub latency: Duration,
    pub status: u16,
    pub error: String,
    pub excerpt: Vec<u8>,
}

/// How requests are dressed, from config.
#[derive(Debug, Clone)]
pub struct RequestSettings {
    /// The `user-agent` header of every delivery, checked once (see [`RequestSettings::new`]).
    pub user_agent: HeaderValue,
    /// Also send `svix-id`/`svix-timestamp`/`svix-signature` (same values).
    pub svix_headers: bool,
}

impl RequestSettings {
    /// The settings for `user_agent`; one HTTP cannot carry (a control character in it) is
    /// refused here, at start, rather than failing every attempt.
    pub fn new(user_agent: &str, svix_headers: bool) -> Result<Self, String> {
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| format!("user agent {user_agent:?}: not a valid HTTP header value"))?;
        Ok(Self {
            user_agent,
            svix_headers,
        })
    }
}

/// One signed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    pub url: String,
    /// Built here as the client sends them: taken by the transport as they are, so a
    /// delivery copies no header (the dressing was 12 allocations before session 15).
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    /// When it was signed (the `webhook-timestamp`, in milliseconds).
    pub started_at_ms: i64,
}

impl DeliveryRequest {
    /// `payload` (the exact event JSON bytes) for `endpoint`, signed at `now_ms` with every
    /// secret the endpoint has active then (one signature each, during a rotation overlap).
    /// An id HTTP cannot carry (a control character in an event id from a foreign producer)
    /// is an error, never a panic.
    pub fn signed(
        endpoint: &Endpoint,
        webhook_id: &str,
        payload: bytes::Bytes,
        now_ms: i64,
        settings: &RequestSettings,
    ) -> Result<Self, String> {
        let timestamp = now_ms / 1_000;
        let signature = signature_header(
            endpoint.active_secrets(now_ms),
            webhook_id,
            timestamp,
            &payload,
        );
        let id = HeaderValue::from_str(webhook_id)
            .map_err(|_| "header webhook-id: not a valid header value".to_owned())?;
        let ts = HeaderValue::from(timestamp);
        let signature = HeaderValue::from_maybe_shared(bytes::Bytes::from(signature))
            .map_err(|_| "header webhook-signature: not a valid header value".to_owned())?;
        let mut headers = HeaderMap::with_capacity(if settings.svix_headers { 8 } else { 5 });
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            HeaderName::from_static("user-agent"),
            settings.user_agent.clone(),
        );
        if settings.svix_headers {
            headers.insert(HeaderName::from_static("svix-id"), id.clone());
            headers.insert(HeaderName::from_static("svix-timestamp"), ts.clone());
            headers.insert(HeaderName::from_static("svix-signature"), signature.clone());
        }
        headers.insert(HeaderName::from_static("webhook-id"), id);
        headers.insert(HeaderName::from_static("webhook-timestamp"), ts);
        headers.insert(HeaderName::from_static("webhook-signature"), signature);
        Ok(Self {
            url: endpoint.url.clone(),
            headers,
            body: payload,
            started_at_ms: now_ms,
        })
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// Where deliveries go out: the transport and how requests are dressed.
#[derive(Clone)]
pub struct Outbound {
    pub transport: std::sync::Arc<dyn Transport>,
    pub settings: RequestSettings,
}

impl Outbound {
    /// Signs `payload` for `endpoint` at `now_ms` and sends it.
    pub async fn attempt(
        &self,
        endpoint: &Endpoint,
        webhook_id: &str,
        payload: bytes::Bytes,
        now_ms: i64,
    ) -> AttemptOutput {
        match DeliveryRequest::signed(endpoint, webhook_id, payload, now_ms, &self.settings) {
            Ok(request) => self.transport.send(request).await,
            Err(error) => AttemptOutput {
                result: AttemptResult::Connection,
                started_at_ms: now_ms,
                latency: Duration::ZERO,
                status: 0,
                error,
                excerpt: Vec::new(),
            },
        }
    }
}

/// Carries a delivery request to its endpoint. Never fails: every way an attempt can go
/// wrong is an [`AttemptOutput`] the domain classifies.
pub trait Transport: Send + Sync {
    fn send(&self, request: DeliveryRequest) -> BoxFuture<'_, AttemptOutput>;
}

/// A hard bound on an attempt, whatever the inner transport does: past `limit` the attempt
/// is abandoned as a timeout, so a transport that never returns cannot pin a delivery slot.
pub struct Deadline<T> {
    inner: T,
    limit: Duration,
}

impl<T: Transport> Deadline<T> {
    /// `inner`, bounded by `limit`.
    pub fn new(inner: T, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl<T: Transport> Transport for Deadline<T> {
    fn send(&self, request: DeliveryRequest) -> BoxFuture<'_, AttemptOutput> {
        let started_at_ms = request.started_at_ms;
        Box::pin(async move {
            match tokio::time::timeout(self.limit, self.inner.send(request)).await {
                Ok(output) => output,
                Err(_) => AttemptOutput {
                    result: AttemptResult::Timeout,
                    started_at_ms,
                    latency: self.limit,
                    status: 0,
                    error: format!("no answer within {} ms", self.limit.as_millis()),
                    excerpt: Vec::new(),
                },
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-memory transport for unit tests: scripted answers, every request kept.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// What the scripted receiver does with one request.
    #[derive(Debug, Clone)]
    pub enum Answer {
        Status(u16),
        Hang,
    }

    #[derive(Default)]
    pub struct Memory {
        pub answers: Mutex<VecDeque<Answer>>,
        pub requests: Mutex<Vec<DeliveryRequest>>,
    }

    impl Memory {
        pub fn answering(answers: &[Answer]) -> Self {
            Self {
                answers: Mutex::new(answers.iter().cloned().collect()),
                requests: Mutex::default(),
            }
        }
    }

    impl Transport for Memory {
        fn send(&self, request: DeliveryRequest) -> BoxFuture<'_, AttemptOutput> {
            let started_at_ms = request.started_at_ms;
            self.requests.lock().unwrap().push(request);
            let answer = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Status(200));
            Box::pin(async move {
                let (result, status) = match answer {
                    Answer::Status(status) => (
                        AttemptResult::Response {
                            status,
                            retry_after: None,
                        },
                        status,
                    ),
                    Answer::Hang => std::future::pending().await,
                };
                AttemptOutput {
                    result,
                    started_at_ms,
                    latency: Duration::from_millis(1),
                    status,
                    error: String::new(),
                    excerpt: b"ok".to_vec(),
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::{Answer, Memory};
    use super::*;
    use herald_core::ids::EndpointId;
    use herald_core::signing::Secret;

    fn settings(svix_headers: bool) -> RequestSettings {
        RequestSettings::new("Herald-Webhooks/test", svix_headers).unwrap()
    }

    #[test]
    fn a_request_carries_the_standard_webhooks_headers_over_the_exact_bytes() {
        let secret = Secret::generate();
        let endpoint = Endpoint::new(
            EndpointId::generate(7),
            "https://hooks.example.com/in".into(),
            secret.clone(),
            1,
        );
        let body = bytes::Bytes::from_static(br#"{"sku":"A-1","qty":3}"#);
        let request = DeliveryRequest::signed(
            &endpoint,
            "msg_1",
            body.clone(),
            1_700_000_000_123,
            &settings(false),
        )
        .unwrap();
        assert_eq!(request.url, "https://hooks.example.com/in");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("user-agent"), Some("Herald-Webhooks/test"));
        assert_eq!(request.header("webhook-id"), Some("msg_1"));
        assert_eq!(request.header("webhook-timestamp"), Some("1700000000"));
        let expected = signature_header(vec![&secret], "msg_1", 1_700_000_000, &body);
        assert_eq!(request.header("webhook-signature"), Some(expected.as_str()));
        assert_eq!(request.header("svix-id"), None);
        let svix = DeliveryRequest::signed(
            &endpoint,
            "msg_1",
            body.clone(),
            1_700_000_000_123,
            &settings(true),
        )
        .unwrap();
        assert_eq!(svix.header("svix-id"), Some("msg_1"));
        assert_eq!(svix.header("svix-timestamp"), Some("1700000000"));
        assert_eq!(svix.header("svix-signature"), Some(expected.as_str()));
        assert_eq!(svix.header("webhook-signature"), Some(expected.as_str()));
        // What HTTP cannot carry is an error, never a panic.
        let bad = DeliveryRequest::signed(&endpoint, "msg\n1", body, 0, &settings(false));
        assert!(bad.unwrap_err().contains("webhook-id"));
        let agent = RequestSettings::new("bad\nagent", false).unwrap_err();
        assert!(agent.contains("not a valid HTTP header value"), "{agent}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_turns_a_hanging_transport_into_a_timeout() {
        let endpoint = Endpoint::new(
            EndpointId::generate(7),
            "http://127.0.0.1:9/".into(),
            Secret::generate(),
            1,
        );
        let request = DeliveryRequest::signed(
            &endpoint,
            "msg_1",
            bytes::Bytes::new(),
            5_000,
            &settings(false),
        )
        .unwrap();
        let bounded = Deadline::new(
            Memory::answering(&[Answer::Hang, Answer::Status(204)]),
            Duration::from_secs(3),
        );
        let hung = bounded.send(request.clone()).await;
        assert_eq!(hung.result, AttemptResult::Timeout);
        assert_eq!(hung.started_at_ms, 5_000);
        assert!(hung.error.contains("3000 ms"), "{}", hung.error);
        let answered = bounded.send(request).await;
        assert_eq!(answered.status, 204);
    }
}
