//! The HTTP transport: one POST per attempt, through a pooled client that refuses
//! forbidden destinations at connect time and never follows redirects.

use crate::ssrf::{self, Network};
use crate::transport::{AttemptOutput, DeliveryRequest, Transport};
use futures::future::BoxFuture;
use herald_core::outcome::{parse_retry_after_seconds, AttemptResult};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The error a refused destination produces; found again in reqwest's error chain.
#[derive(Debug)]
struct ForbiddenDestination(String);

impl std::fmt::Display for ForbiddenDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destination {} resolves only to forbidden addresses",
            self.0
        )
    }
}

impl std::error::Error for ForbiddenDestination {}

/// A name lookup: the system resolver, or a scripted one in tests.
type Lookup =
    Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

fn system_lookup() -> Lookup {
    Arc::new(|host| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    })
}

fn servers_lookup(servers: Vec<SocketAddr>) -> Lookup {
    let servers = Arc::new(servers);
    Arc::new(move |host| {
        let servers = servers.clone();
        Box::pin(async move { crate::dns::lookup(&servers, &host).await })
    })
}

/// DNS resolution that drops addresses the SSRF policy forbids. Every connection resolves
/// afresh and connects only to the addresses that passed, so a name that answers a public
/// address first and a private one next (DNS rebinding) is refused the second time.
struct GuardedResolver {
    allowed: Arc<Vec<Network>>,
    lookup: Lookup,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved = lookup(host.clone()).await?;
            let addrs: Vec<_> = resolved
                .into_iter()
                .filter(|a| ssrf::is_allowed(a.ip(), &allowed))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(ForbiddenDestination(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Sends deliveries over HTTP.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    allowed: Arc<Vec<Network>>,
    timeout: Duration,
    excerpt_bytes: usize,
    urls: Arc<ParsedUrls>,
}

/// The most endpoint URLs kept parsed; past it the cache starts again empty.
const PARSED_URLS: usize = 4_096;

/// Endpoint URLs as parsed, by their text. An endpoint's URL rarely changes, and parsing it
/// for every attempt (its host through IDNA processing) was 4 % of a dispatcher's CPU at
/// saturation (benches/README.md, session 14). A URL that does not parse is not kept.
#[derive(Default)]
struct ParsedUrls(std::sync::RwLock<std::collections::HashMap<String, reqwest::Url>>);

impl ParsedUrls {
    fn get(&self, text: &str) -> Result<reqwest::Url, url::ParseError> {
        if let Some(url) = self.0.read().expect("urls lock").get(text) {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(text)?;
        let mut urls = self.0.write().expect("urls lock");
        if urls.len() >= PARSED_URLS {
            urls.clear();
        }
        urls.insert(text.to_owned(), url.clone());
        Ok(url)
    }
}

/// What the HTTP transport needs from config.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub allowed: Vec<Network>,
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    pub excerpt_bytes: usize,
    /// Resolve with these DNS servers instead of the system resolver (empty: system).
    pub dns_servers: Vec<SocketAddr>,
    /// Idle connections kept per host (scheme, host, port). Endpoints often share a host (one
    /// receiving service behind many endpoints); below the attempts they run there at once,
    /// every burst closes connections and the next opens them again.
    pub max_idle_per_host: usize,
}

impl Transport for HttpTransport {
    fn send(&self, request: DeliveryRequest) -> BoxFuture<'_, AttemptOutput> {
        Box::pin(self.post(request))
    }
}

impl HttpTransport {
    /// Builds the pooled client (keep-alive, no redirects, guarded DNS).
    pub fn new(settings: HttpSettings) -> Result<Self, reqwest::Error> {
        let allowed = Arc::new(settings.allowed);
        let client = reqwest::Client::builder()
            // Never a proxy from HTTP_PROXY/HTTPS_PROXY/ALL_PROXY: a proxy resolves and
            // connects to the target itself, out of reach of the guarded resolver below.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver {
                lookup: if settings.dns_servers.is_empty() {
                    system_lookup()
                } else {
                    servers_lookup(settings.dns_servers.clone())
                },
                allowed: allowed.clone(),
            }))
            .build()?;
        Ok(Self {
            client,
            allowed,
            timeout: settings.attempt_timeout,
            excerpt_bytes: settings.excerpt_bytes,
            urls: Arc::default(),
        })
    }

    /// One attempt: `request` posted as it is.
    async fn post(&self, request: DeliveryRequest) -> AttemptOutput {
        let started_at_ms = request.started_at_ms;
        let started = Instant::now();
        // Parsed once per URL: reqwest takes the `Url` as it is (a `&str` is parsed again).
        let url = match self.urls.get(&request.url) {
            Ok(url) => url,
            Err(err) => {
                return output(
                    AttemptResult::Connection,
                    started_at_ms,
                    started,
                    0,
                    format!("invalid endpoint URL: {err}"),
                    Vec::new(),
                )
            }
        };
        if let Some(refusal) = self.literal_address_refusal(&url) {
            return output(
                AttemptResult::Forbidden,
                started_at_ms,
                started,
                0,
                refusal,
                Vec::new(),
            );
        }
        // Built whole rather than through `RequestBuilder`, whose every step re-validates;
        // headers and body are the request's own, moved in.
        let mut post = reqwest::Request::new(reqwest::Method::POST, url);
        *post.headers_mut() = request.headers;
        *post.timeout_mut() = Some(self.timeout);
        *post.body_mut() = Some(request.body.into());
        match self.client.execute(post).await {
            Ok(response) => self.read_response(response, started_at_ms, started).await,
            Err(err) => {
                let result = if is_forbidden(&err) {
                    AttemptResult::Forbidden
                } else if err.is_timeout() {
                    AttemptResult::Timeout
                } else {
                    AttemptResult::Connection
                };
                output(
                    result,
                    started_at_ms,
                    started,
                    0,
                    error_text(&err),
                    Vec::new(),
                )
            }
        }
    }

    async fn read_response(
        &self,
        mut response: reqwest::Response,
        started_at_ms: i64,
        started: Instant,
    ) -> AttemptOutput {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_seconds);
        let mut excerpt = Vec::new();
        let mut error = String::new();
        while excerpt.len() < self.excerpt_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.excerpt_bytes - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(err) => {
                    if err.is_timeout() && !(200..300).contains(&status) {
                        error = "timed out reading the response body".into();
                    }
                    break;
                }
            }
        }
        if !(200..300).contains(&status) && error.is_empty() {
            error = format!("HTTP {status}");
        }
        let result = AttemptResult::Response {
            status,
            retry_after,
        };
        output(result, started_at_ms, started, status, error, excerpt)
    }

    fn literal_address_refusal(&self, url: &reqwest::Url) -> Option<String> {
        let ip: std::net::IpAddr = match url.host()? {
            url::Host::Ipv4(v4) => v4.into(),
            url::Host::Ipv6(v6) => v6.into(),
            url::Host::Domain(_) => return None,
        };
        (!ssrf::is_allowed(ip, &self.allowed)).then(|| format!("destination {ip} is not allowed"))
    }
}

fn output(
    result: AttemptResult,
    started_at_ms: i64,
    started: Instant,
    status: u16,
    error: String,
    excerpt: Vec<u8>,
) -> AttemptOutput {
    AttemptOutput {
        result,
        started_at_ms,
        latency: started.elapsed(),
        status,
        error,
        excerpt,
    }
}

/// `err`'s own message without the URL reqwest puts in it.
fn strip_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "<url>");
    }
    text
}

fn is_forbidden(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<ForbiddenDestination>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The error with its causes, bounded to 512 bytes. Without the URL: an endpoint URL may
/// carry a token in its query or user info, and this text goes to the attempts and
/// dead-letter topics, the API and the logs.
fn error_text(err: &reqwest::Error) -> String {
    let mut text = strip_url(err);
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    if text.len() > 512 {
        let mut cut = 512;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::RequestSettings;
    use herald_core::endpoint::Endpoint;
    use herald_core::ids::EndpointId;
    use herald_core::signing::Secret;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::new(EndpointId::generate(7), url.into(), Secret::generate(), 1)
    }

    #[tokio::test]
    async fn a_name_rebinding_to_a_private_address_is_refused_at_the_next_connection() {
        use std::str::FromStr as _;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        // Public first; then public and private together; then private only.
        let lookup: Lookup = Arc::new(move |_host| {
            let answer: Vec<SocketAddr> = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => vec!["93.184.216.34:0".parse().unwrap()],
                1 => vec![
                    "10.0.0.7:0".parse().unwrap(),
                    "93.184.216.34:0".parse().unwrap(),
                ],
                _ => vec!["169.254.169.254:0".parse().unwrap()],
            };
            Box::pin(async move { Ok(answer) })
        });
        let resolver = GuardedResolver {
            allowed: Arc::new(Vec::new()),
            lookup,
        };
        let name = || Name::from_str("rebind.example").unwrap();
        let first: Vec<SocketAddr> = resolver.resolve(name()).await.unwrap().collect();
        assert_eq!(first, ["93.184.216.34:0".parse().unwrap()]);
        let mixed: Vec<SocketAddr> = resolver.resolve(name()).await.unwrap().collect();
        assert_eq!(
            mixed,
            ["93.184.216.34:0".parse().unwrap()],
            "the private one dropped"
        );
        let err = resolver.resolve(name()).await.err().expect("refused");
        assert!(err.to_string().contains("forbidden addresses"), "{err}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "resolved afresh every time"
        );
    }

    /// A transport with 5 s timeouts, 64-byte excerpts and 8 idle connections per host.
    fn small_transport(allowed: Vec<Network>) -> HttpTransport {
        HttpTransport::new(HttpSettings {
            allowed,
            attempt_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            excerpt_bytes: 64,
            dns_servers: Vec::new(),
            max_idle_per_host: 8,
        })
        .unwrap()
    }

    #[test]
    fn a_parsed_url_is_kept_and_a_bad_one_is_not() {
        let urls = ParsedUrls::default();
        let a = urls.get("http://127.0.0.1:9/hook?x=1").unwrap();
        assert_eq!(
            a,
            reqwest::Url::parse("http://127.0.0.1:9/hook?x=1").unwrap()
        );
        assert_eq!(urls.get("http://127.0.0.1:9/hook?x=1").unwrap(), a);
        assert!(urls.get("http://[::1/hook").is_err());
        assert_eq!(urls.0.read().unwrap().len(), 1, "only the good URL is kept");
        for i in 0..PARSED_URLS + 1 {
            urls.get(&format!("http://h{i}.example/")).unwrap();
        }
        assert!(urls.0.read().unwrap().len() <= PARSED_URLS, "bounded");
    }

    #[tokio::test]
    async fn an_attempt_error_never_carries_the_url_query_or_user_info() {
        let transport = small_transport(vec![Network::parse("127.0.0.0/8").unwrap()]);
        // Nothing listens on port 1: the connection is refused at once.
        let target = endpoint("http://alice:pa55word@127.0.0.1:1/hook?token=t0ps3cret");
        let settings = RequestSettings::new("test", false).unwrap();
        let request =
            DeliveryRequest::signed(&target, "msg_1", "{}".into(), 1_000, &settings).unwrap();
        let out = transport.send(request).await;
        assert_eq!(out.result, AttemptResult::Connection, "{}", out.error);
        for secret in ["t0ps3cret", "pa55word", "alice"] {
            assert!(!out.error.contains(secret), "{secret} in {}", out.error);
        }
        assert!(!out.error.is_empty());
    }

    #[tokio::test]
    async fn a_bad_url_or_a_forbidden_literal_address_is_refused_without_a_connection() {
        let transport = small_transport(Vec::new());
        let settings = RequestSettings::new("test", false).unwrap();
        let send = |url: &str| {
            let request =
                DeliveryRequest::signed(&endpoint(url), "msg_1", "{}".into(), 1_000, &settings)
                    .unwrap();
            let transport = transport.clone();
            async move { transport.send(request).await }
        };
        let bad = send("http://[::1/hook?token=t0ps3cret").await;
        assert_eq!(bad.result, AttemptResult::Connection);
        assert!(
            bad.error.starts_with("invalid endpoint URL"),
            "{}",
            bad.error
        );
        assert!(!bad.error.contains("t0ps3cret"), "{}", bad.error);
        let private = send("http://10.0.0.7:8080/hook").await;
        assert_eq!(private.result, AttemptResult::Forbidden);
        assert_eq!(private.error, "destination 10.0.0.7 is not allowed");
    }

    #[tokio::test]
    async fn connections_to_a_shared_host_are_reused_up_to_the_idle_limit() {
        use axum::serve::ListenerExt as _;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        // Each answer waits a little, so a burst really holds its connections at once.
        let app = axum::Router::new().route(
            "/{endpoint}",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                axum::http::StatusCode::NO_CONTENT
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let transport = HttpTransport::new(HttpSettings {
            allowed: vec![Network::parse("127.0.0.0/8").unwrap()],
            attempt_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            excerpt_bytes: 64,
            dns_servers: Vec::new(),
            max_idle_per_host: 64,
        })
        .unwrap();
        let settings = RequestSettings::new("test", false).unwrap();
        // Four endpoints on one host, 16 attempts each at once: 64 connections.
        let requests: Vec<_> = (0..64)
            .map(|i| {
                let target = endpoint(&format!("http://{addr}/{}", i % 4));
                DeliveryRequest::signed(&target, "msg_1", "{}".into(), 1_000, &settings).unwrap()
            })
            .collect();
        for burst in 0..3 {
            let outputs =
                futures::future::join_all(requests.iter().map(|r| transport.send(r.clone()))).await;
            assert!(
                outputs.iter().all(|o| o.result.is_success()),
                "burst {burst}"
            );
            // Let the last connections go back to the pool.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            64,
            "the second and third bursts reused the first burst's connections"
        );
        server.abort();
    }
}
