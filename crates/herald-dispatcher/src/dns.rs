//! Name lookups through configured DNS servers (`dispatcher.dns_servers`) instead of the
//! system resolver: plain DNS over UDP, A and AAAA, the first server that answers wins. The
//! SSRF guard checks whatever comes back, like the system resolver's answers.
//!
//! For operators who pin delivery lookups to a resolver of their own (a filtering one), and
//! for the tests, which need a name that answers one address and then another.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long one server gets to answer one question.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// The addresses of `host` (port 0) from the first of `servers` that answers; an IP literal
/// is its own answer.
pub async fn lookup(servers: &[SocketAddr], host: &str) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 0)]);
    }
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no DNS server configured");
    for server in servers {
        let mut found = Vec::new();
        let mut answered = false;
        for qtype in [TYPE_A, TYPE_AAAA] {
            match ask(*server, host, qtype).await {
                Ok(ips) => {
                    answered = true;
                    found.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                }
                Err(err) => last_error = err,
            }
        }
        if answered {
            return if found.is_empty() {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host}: no address"),
                ))
            } else {
                Ok(found)
            };
        }
    }
    Err(last_error)
}

/// One question to one server.
async fn ask(server: SocketAddr, host: &str, qtype: u16) -> io::Result<Vec<IpAddr>> {
    let id: u16 = rand::random();
    let query = encode_query(id, host, qtype)?;
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    socket.send(&query).await?;
    let mut buffer = [0u8; 1_500];
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("DNS server {server} did not answer"),
                )
            })??;
        // Answers to other questions (a late one, a spoofed one) are not ours.
        if let Some(ips) = decode_answer(&buffer[..n], id, qtype)? {
            return Ok(ips);
        }
    }
}

/// A standard query with recursion desired.
fn encode_query(id: u16, host: &str, qtype: u16) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(18 + host.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in host.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{host}` is not a DNS name"),
            ));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    Ok(out)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("DNS answer: {what}"))
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset after it.
fn skip_name(message: &[u8], mut at: usize) -> io::Result<usize> {
    loop {
        let len = *message.get(at).ok_or_else(|| bad("truncated name"))?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

fn u16_at(message: &[u8], at: usize) -> io::Result<u16> {
    message
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| bad("truncated"))
}

/// The addresses of type `qtype` in an answer to query `id`; `None` when the message answers
/// another query.
fn decode_answer(message: &[u8], id: u16, qtype: u16) -> io::Result<Option<Vec<IpAddr>>> {
    if message.len() < 12 || u16_at(message, 0)? != id || message[2] & 0x80 == 0 {
        return Ok(None);
    }
    match message[3] & 0x0f {
        0 => {}
        3 => return Ok(Some(Vec::new())), // NXDOMAIN
        code => return Err(bad(&format!("server error (rcode {code})"))),
    }
    let (questions, answers) = (u16_at(message, 4)?, u16_at(message, 6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    let mut ips = Vec::new();
    for _ in 0..answers {
        at = skip_name(message, at)?;
        let rtype = u16_at(message, at)?;
        let length = usize::from(u16_at(message, at + 8)?);
        let data = message
            .get(at + 10..at + 10 + length)
            .ok_or_else(|| bad("truncated record"))?;
        match (rtype, data.len()) {
            (TYPE_A, 4) if qtype == TYPE_A => {
                ips.push(IpAddr::from([data[0], data[1], data[2], data[3]]))
            }
            (TYPE_AAAA, 16) if qtype == TYPE_AAAA => {
                let bytes: [u8; 16] = data.try_into().map_err(|_| bad("AAAA"))?;
                ips.push(IpAddr::from(bytes));
            }
            _ => {} // CNAMEs and the like: the addresses follow in the same answer
        }
        at += 10 + length;
    }
    Ok(Some(ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `query` with `ips` as A records (compressed name pointers).
    fn answer(query: &[u8], ips: &[[u8; 4]]) -> Vec<u8> {
        let mut out = query.to_vec();
        out[2] = 0x81;
        out[3] = 0x80;
        out[7] = ips.len() as u8;
        for ip in ips {
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            out.extend_from_slice(ip);
        }
        out
    }

    #[test]
    fn queries_and_answers_round_trip() {
        let query = encode_query(0x1234, "rebind.test", TYPE_A).unwrap();
        assert_eq!(&query[12..], b"\x06rebind\x04test\x00\x00\x01\x00\x01");
        let ips = decode_answer(
            &answer(&query, &[[127, 0, 0, 3], [10, 0, 0, 1]]),
            0x1234,
            TYPE_A,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            ips,
            [
                "127.0.0.3".parse::<IpAddr>().unwrap(),
                "10.0.0.1".parse().unwrap()
            ]
        );
        assert_eq!(
            decode_answer(&answer(&query, &[]), 0x9999, TYPE_A).unwrap(),
            None,
            "another id"
        );
        assert!(decode_answer(&answer(&query, &[[1, 2, 3, 4]])[..40], 0x1234, TYPE_A).is_err());
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
    }

    #[tokio::test]
    async fn a_configured_server_answers_and_literals_need_none() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            loop {
                let (n, peer) = server.recv_from(&mut buffer).await.unwrap();
                let query = &buffer[..n];
                let qtype = query[n - 3];
                let ips: &[[u8; 4]] = if qtype == 1 { &[[127, 0, 0, 9]] } else { &[] };
                server.send_to(&answer(query, ips), peer).await.unwrap();
            }
        });
        let found = lookup(&[addr], "example.test").await.unwrap();
        assert_eq!(found, ["127.0.0.9:0".parse().unwrap()]);
        let literal = lookup(&[], "[::1]").await.unwrap();
        assert_eq!(literal, ["[::1]:0".parse().unwrap()]);
        assert!(lookup(&[], "example.test").await.is_err());
    }
}
