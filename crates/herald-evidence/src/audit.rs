//! The audit trail read back: who did what to which target, when, from where, filtered by
//! actor, action (exact, or a prefix such as `endpoint.*`), target, tenant and time, paged
//! by position with bounded memory, or streamed whole for export (JSON lines, CSV).

use crate::window::{format_instant, Window};
use crate::{Error, Result};
use herald_kafka::page::{Page, Pager, Position, Positioned};
use herald_kafka::scan::Scanner;
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use serde_json::{json, Value};

/// Which audit records.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// `key.revoked`, or a prefix ending in `*` (`endpoint.*`).
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only this tenant's (a key limited to a tenant always sets it).
    pub tenant: Option<String>,
    pub window: Window,
}

impl AuditQuery {
    fn matches(&self, r: &v1::AuditRecord) -> bool {
        let action = self
            .action
            .as_deref()
            .is_none_or(|a| match a.strip_suffix('*') {
                Some(prefix) => r.action.starts_with(prefix),
                None => a == r.action,
            });
        action
            && self.actor.as_ref().is_none_or(|a| *a == r.actor)
            && self.target.as_ref().is_none_or(|t| *t == r.target)
            && self.tenant.as_ref().is_none_or(|t| *t == r.tenant)
            && self.window.contains(r.at_ms)
    }
}

/// One audit record where it lies in the topic.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub partition: i32,
    pub offset: i64,
    pub record: v1::AuditRecord,
}

impl Positioned for AuditEntry {
    fn position(&self) -> Position {
        (self.record.at_ms, self.partition, self.offset)
    }
}

/// The CSV columns of an export, in order.
pub const CSV_HEADER: &str = "at,actor,action,target,tenant,source_ip,request_id,detail";

impl AuditEntry {
    /// The JSON shape of the API and `herald audit --format jsonl`.
    pub fn to_json(&self) -> Value {
        let r = &self.record;
        json!({
            "at": format_instant(r.at_ms),
            "at_ms": r.at_ms,
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "tenant": r.tenant,
            "source_ip": r.source_ip,
            "request_id": r.request_id,
            "detail": serde_json::from_str::<Value>(&r.detail_json).unwrap_or(Value::Null),
        })
    }

    /// One CSV row (RFC 4180 quoting), columns as [`CSV_HEADER`].
    pub fn to_csv(&self) -> String {
        let r = &self.record;
        [
            format_instant(r.at_ms).as_str(),
            &r.actor,
            &r.action,
            &r.target,
            &r.tenant,
            &r.source_ip,
            &r.request_id,
            &r.detail_json,
        ]
        .iter()
        .map(|field| csv_field(field))
        .collect::<Vec<_>>()
        .join(",")
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Hands every record `query` selects to `visit`, in topic order; keeps nothing itself.
pub async fn scan_each(
    kafka: &KafkaConfig,
    query: &AuditQuery,
    mut visit: impl FnMut(AuditEntry),
) -> Result<()> {
    let topic = kafka.topics().audit();
    let ranges = query.window.ranges(kafka, &topic, 60_000).await?;
    let mut scanner = Scanner::open(kafka, &topic, &ranges)?;
    while let Some(record) = scanner.next().await? {
        let Ok(entry) = herald_proto::decode::<v1::AuditRecord>("audit record", &record.payload)
        else {
            continue;
        };
        if query.matches(&entry) {
            visit(AuditEntry {
                partition: record.partition,
                offset: record.offset,
                record: entry,
            });
        }
    }
    Ok(())
}

/// One page of the records `query` selects, oldest first.
pub async fn list(
    kafka: &KafkaConfig,
    query: &AuditQuery,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<AuditEntry>> {
    let mut pager = Pager::new(limit, cursor).map_err(Error::Invalid)?;
    scan_each(kafka, query, |e| pager.offer(e)).await?;
    Ok(pager.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> v1::AuditRecord {
        v1::AuditRecord {
            actor: "key_1".into(),
            action: "endpoint.created".into(),
            target: "ep_1".into(),
            at_ms: 5_000,
            detail_json: r#"{"url":"https://a.example/x,y"}"#.into(),
            tenant: "acme".into(),
            source_ip: "127.0.0.1".into(),
            request_id: "req_1".into(),
        }
    }

    #[test]
    fn queries_narrow_on_every_field_and_prefixes() {
        let r = record();
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            q.matches(&r)
        };
        assert!(q(|_| {}));
        assert!(q(|q| q.action = Some("endpoint.*".into())));
        assert!(q(|q| q.action = Some("endpoint.created".into())));
        assert!(!q(|q| q.action = Some("endpoint".into())));
        assert!(!q(|q| q.action = Some("key.*".into())));
        assert!(!q(|q| q.actor = Some("key_2".into())));
        assert!(!q(|q| q.target = Some("ep_2".into())));
        assert!(!q(|q| q.tenant = Some("other".into())));
        assert!(!q(|q| q.window.until_ms = Some(5_000)));
    }

    #[test]
    fn csv_rows_quote_what_needs_it() {
        let entry = AuditEntry {
            partition: 0,
            offset: 0,
            record: record(),
        };
        let row = entry.to_csv();
        assert!(row.starts_with("1970-01-01T00:00:05.000Z,key_1,endpoint.created,ep_1,acme,"));
        assert!(
            row.ends_with(r#","{""url"":""https://a.example/x,y""}""#),
            "{row}"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 8);
        assert_eq!(entry.to_json()["detail"]["url"], "https://a.example/x,y");
    }
}
