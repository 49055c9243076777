//! A loopback HTTP/1.1 receiver that misbehaves on purpose: per request it answers, fails
//! with a status, hangs past the sender's timeout, or resets the connection, as a test's
//! policy decides. Written on raw TCP so a reset is a real reset. Records every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Answer with this status after the delay.
    Answer(u16, Duration),
    /// Say nothing for this long, then close (past the sender's timeout).
    Hang(Duration),
    /// Close the connection at once without answering.
    Reset,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub act: Act,
}

impl Hit {
    pub fn id(&self) -> &str {
        self.headers
            .get("webhook-id")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Decides per request: (webhook-id, how many times this id was seen before) → act.
pub type Policy = Arc<dyn Fn(&str, usize) -> Act + Send + Sync>;

pub struct ChaosReceiver {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    _runtime: tokio::runtime::Runtime,
}

impl ChaosReceiver {
    pub fn start(policy: Policy) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let policy = Arc::new(Mutex::new(policy));
        let (h, p) = (hits.clone(), policy.clone());
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, h.clone(), p.clone()));
            }
        });
        Self {
            addr,
            hits,
            _runtime: runtime,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Ids answered with a 2xx.
    pub fn delivered(&self) -> Vec<String> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| matches!(h.act, Act::Answer(s, _) if (200..300).contains(&s)))
            .map(|h| h.id().to_owned())
            .collect()
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    hits: Arc<Mutex<Vec<Hit>>>,
    policy: Arc<Mutex<Policy>>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let id = headers.get("webhook-id").cloned().unwrap_or_default();
        let act = {
            let mut hits = hits.lock().unwrap();
            let seen = hits.iter().filter(|h| h.id() == id).count();
            let act = (policy.lock().unwrap())(&id, seen);
            hits.push(Hit {
                at: Instant::now(),
                headers,
                body,
                act,
            });
            act
        };
        match act {
            Act::Reset => {
                let stream = reader.into_inner();
                // Zero linger: closing sends a TCP reset (and never blocks on drop).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            Act::Hang(time) => {
                tokio::time::sleep(time).await;
                return;
            }
            Act::Answer(status, delay) => {
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
                );
                if reader
                    .get_mut()
                    .write_all(response.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Chaos hits as the Python verifier's input.
pub fn as_received(hits: &[Hit]) -> Vec<crate::harness::Received> {
    hits.iter()
        .map(|h| crate::harness::Received {
            at: h.at,
            path: "/".into(),
            headers: h.headers.clone(),
            body: h.body.clone(),
        })
        .collect()
}
