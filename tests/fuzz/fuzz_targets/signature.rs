//! The receiver-side signature check (`webhook-signature` header with any number of
//! `v1,<base64>` parts, `webhook-timestamp`) and the `whsec_` secret format.
#![no_main]

use herald_core::signing::{verify, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (secret, timestamp, header) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let body = parts.next().unwrap_or("").as_bytes();
    let fixed = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let mut secrets = vec![fixed];
    if let Ok(parsed) = Secret::parse(secret) {
        secrets.push(parsed);
    }
    let _ = verify(
        &secrets,
        "msg_1",
        timestamp,
        header,
        body,
        1_700_000_000,
        300,
    );
    let _ = verify(
        &secrets,
        secret,
        timestamp,
        header,
        body,
        i64::MAX,
        i64::MAX,
    );
    let _ = verify(&[], secret, timestamp, header, body, i64::MIN, 0);
});
