//! One config for every command: defaults → TOML file → `HERALD_*` environment, validated once.
//!
//! Environment variables address keys with `__` between levels, for example
//! `HERALD_KAFKA__BROKERS=kafka-1:9092`, `HERALD_DISPATCHER__RETRY_SCHEDULE=100ms,200ms`,
//! `HERALD_MASTER_KEY=…`. Values are read as TOML when they parse as TOML (numbers,
//! booleans, arrays) and as plain strings otherwise. An unknown variable is an error that
//! names it. librdkafka properties go under `HERALD_KAFKA__CLIENT__` with `_` for `.`, for
//! example `HERALD_KAFKA__CLIENT__SASL_PASSWORD` sets `sasl.password` (librdkafka's own
//! names never contain `_`).

use anyhow::{anyhow, bail, Context, Result};
use herald_core::duration::serde_human;
use herald_core::topics::TopicLayout;
use herald_dispatcher::DispatcherConfig;
use herald_ingest::IngestConfig;
use herald_kafka::KafkaConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Variables with the `HERALD_` prefix that are not config keys.
const NOT_CONFIG: [&str; 2] = ["HERALD_CONFIG", "HERALD_LOG"];

/// Everything Herald can be told. `Debug` leaves the master key out.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeraldConfig {
    /// Where `herald dev` and `herald broker` keep broker data and generated keys.
    pub data_dir: PathBuf,
    /// Base64 of 32 bytes sealing endpoint secrets at rest. `herald dev` generates one in the
    /// data directory when empty; `herald ingest`/`dispatch` require it.
    pub master_key: String,
    /// Master keys of earlier rotations (base64 each): they open secrets sealed under them,
    /// never seal. Drop one once `herald endpoints reseal` re-sealed everything under
    /// `master_key` (`herald_endpoints_sealed_with_previous_key` is 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_master_keys: Vec<String>,
    /// How long a SIGTERM/SIGINT drain may take before in-flight work is abandoned uncommitted.
    #[serde(with = "serde_human")]
    pub shutdown_deadline: Duration,
    /// Address of `/metrics`, `/healthz`, `/readyz` for `herald dispatch` (ingest serves them on
    /// its own listener).
    pub metrics_listen: std::net::SocketAddr,
    pub kafka: KafkaConfig,
    pub ingest: IngestConfig,
    pub dispatcher: DispatcherConfig,
}

impl std::fmt::Debug for HeraldConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeraldConfig")
            .field("data_dir", &self.data_dir)
            .field("master_key", &redacted(&self.master_key))
            .field(
                "previous_master_keys",
                &format!("<{} redacted>", self.previous_master_keys.len()),
            )
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("metrics_listen", &self.metrics_listen)
            .field("kafka", &self.kafka)
            .field("ingest", &self.ingest)
            .field("dispatcher", &self.dispatcher)
            .finish()
    }
}

/// How a secret shows in `Debug` output: whether it is set, never what it is.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        "<unset>"
    } else {
        "<redacted>"
    }
}

impl HeraldConfig {
    /// Built-in defaults.
    pub fn defaults() -> Self {
        Self {
            data_dir: PathBuf::from("herald-data"),
            master_key: String::new(),
            previous_master_keys: Vec::new(),
            shutdown_deadline: Duration::from_secs(30),
            metrics_listen: ([127, 0, 0, 1], 9464).into(),
            kafka: KafkaConfig::with_brokers("127.0.0.1:9092"),
            ingest: IngestConfig::defaults(),
            dispatcher: DispatcherConfig::defaults(),
        }
    }

    /// Loads defaults, then `file` (if any), then the `HERALD_*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut merged = toml::Value::try_from(Self::defaults()).context("serializing defaults")?;
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading config file {}", file.display()))?;
            let overlay: toml::Value = toml::from_str(&text)
                .map_err(|e| anyhow!("config file {}: {}", file.display(), e.message()))?;
            merge(&mut merged, overlay);
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("HERALD_") else {
                continue;
            };
            if NOT_CONFIG.contains(&name.as_str()) {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            if let [kafka, client, property] = path.as_slice() {
                if kafka == "kafka" && client == "client" && !property.is_empty() {
                    set_client_property(&mut merged, &property.replace('_', "."), value);
                    continue;
                }
            }
            set_path(&mut merged, &path, parse_env_value(&value))
                .map_err(|_| anyhow!("{name}: unknown setting `{}`", path.join(".")))?;
        }
        let config: Self = merged
            .try_into()
            .map_err(|e: toml::de::Error| anyhow!("invalid configuration: {}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    /// The topics with the retry tiers the schedule makes (the one place they are derived).
    pub fn layout(&self) -> Result<TopicLayout> {
        let policy = self.dispatcher.retry_policy().map_err(|e| anyhow!(e))?;
        TopicLayout::new(self.kafka.topics(), policy.tiers())
            .map_err(|e| anyhow!("dispatcher.retry_schedule: {e}"))
    }

    /// Checks every section; the message names the bad key.
    pub fn validate(&self) -> Result<()> {
        self.kafka.validate().map_err(|e| anyhow!(e))?;
        self.ingest.validate().map_err(|e| anyhow!(e))?;
        self.dispatcher.validate().map_err(|e| anyhow!(e))?;
        let outcome = self.ingest.max_body_bytes + herald_kafka::config::OUTCOME_OVERHEAD;
        if outcome > self.kafka.max_record_bytes {
            bail!(
                "kafka.max_record_bytes ({}) must be at least ingest.max_body_bytes ({}) + {} \
                 (what a retry task or dead letter adds to its event), or an accepted event \
                 could never be retried or parked",
                self.kafka.max_record_bytes,
                self.ingest.max_body_bytes,
                herald_kafka::config::OUTCOME_OVERHEAD
            );
        }
        if !self.master_key.is_empty()
            && herald_core::sealing::MasterKey::parse_base64(&self.master_key).is_none()
        {
            bail!("master_key: must be base64 of exactly 32 bytes");
        }
        for (i, key) in self.previous_master_keys.iter().enumerate() {
            if herald_core::sealing::MasterKey::parse_base64(key).is_none() {
                bail!("previous_master_keys[{i}]: must be base64 of exactly 32 bytes");
            }
        }
        Ok(())
    }
}

fn parse_env_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(root: &mut toml::Value, path: &[String], value: toml::Value) -> Result<(), ()> {
    let (last, parents) = path.split_last().ok_or(())?;
    let mut node = root;
    for key in parents {
        node = node.as_table_mut().and_then(|t| t.get_mut(key)).ok_or(())?;
    }
    let table = node.as_table_mut().ok_or(())?;
    // Optional keys are absent from serialized defaults; accept the ones serde knows.
    let known = table.contains_key(last)
        || matches!(
            last.as_str(),
            "bootstrap_key" | "min_insync_replicas" | "previous_master_keys" | "events_fetch_wait"
        );
    if !known {
        return Err(());
    }
    let value = match (table.get(last), value) {
        // A plain string where the default is a string keeps exact text (e.g. "5s").
        (Some(toml::Value::String(_)), v) if !v.is_str() => toml::Value::String(v.to_string()),
        (_, v) => v,
    };
    table.insert(last.clone(), value);
    Ok(())
}

/// Sets `kafka.client.<property>` (always a string: librdkafka parses its own values).
fn set_client_property(root: &mut toml::Value, property: &str, value: String) {
    let client = root
        .as_table_mut()
        .and_then(|t| t.get_mut("kafka"))
        .and_then(toml::Value::as_table_mut)
        .map(|kafka| {
            kafka
                .entry("client")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        })
        .and_then(toml::Value::as_table_mut);
    if let Some(client) = client {
        client.insert(property.to_owned(), toml::Value::String(value));
    }
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_validate() {
        let config = HeraldConfig::load(None, env(&[])).unwrap();
        assert_eq!(config, HeraldConfig::defaults());
    }

    #[test]
    fn the_record_limit_must_leave_room_for_an_outcome_around_the_largest_event() {
        let err = HeraldConfig::load(
            None,
            env(&[
                ("HERALD_INGEST__MAX_BODY_BYTES", "2097152"),
                ("HERALD_KAFKA__MAX_RECORD_BYTES", "2097152"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("kafka.max_record_bytes") && err.contains("ingest.max_body_bytes"),
            "{err}"
        );
        let ok = HeraldConfig::load(
            None,
            env(&[
                ("HERALD_INGEST__MAX_BODY_BYTES", "2097152"),
                ("HERALD_KAFKA__MAX_RECORD_BYTES", "4194304"),
            ]),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn optional_keys_can_be_set_from_the_environment() {
        let config = HeraldConfig::load(
            None,
            env(&[
                ("HERALD_KAFKA__REPLICATION_FACTOR", "3"),
                ("HERALD_KAFKA__MIN_INSYNC_REPLICAS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.min_insync_replicas(), 2);
        let err = HeraldConfig::load(None, env(&[("HERALD_KAFKA__MIN_INSYNC_REPLICAS", "2")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.min_insync_replicas"), "{err}");
        let config =
            HeraldConfig::load(None, env(&[("HERALD_KAFKA__EVENTS_FETCH_WAIT", "10ms")])).unwrap();
        assert_eq!(config.kafka.events_fetch_wait_ms(), 10);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let config = HeraldConfig::load(
            None,
            env(&[
                (
                    "HERALD_MASTER_KEY",
                    "bWFzdGVyLWtleS1zZWNyZXQtc2VjcmV0LXNlY3JldCE=",
                ),
                (
                    "HERALD_INGEST__BOOTSTRAP_KEY",
                    "hk_0123456789abcdef_bootstrapsecretvalue",
                ),
                (
                    "HERALD_KAFKA__CLIENT__SASL_PASSWORD",
                    "kafka-password-value",
                ),
                ("HERALD_KAFKA__CLIENT__SASL_USERNAME", "herald"),
            ]),
        )
        .unwrap();
        let text = format!("{config:?}");
        for secret in [
            "bWFzdGVyLWtleS1zZWNyZXQtc2VjcmV0LXNlY3JldCE=",
            "bootstrapsecretvalue",
            "kafka-password-value",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("<redacted>") && text.contains("herald"),
            "{text}"
        );
    }

    #[test]
    fn env_overrides_nested_keys() {
        let config = HeraldConfig::load(
            None,
            env(&[
                ("HERALD_KAFKA__BROKERS", "k1:9092,k2:9092"),
                ("HERALD_KAFKA__PARTITIONS", "12"),
                ("HERALD_DISPATCHER__RETRY_SCHEDULE", "100ms,200ms"),
                ("HERALD_DISPATCHER__ALLOWED_NETWORKS", "[\"127.0.0.0/8\"]"),
                (
                    "HERALD_PREVIOUS_MASTER_KEYS",
                    "[\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"]",
                ),
                ("HERALD_LOG", "debug"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(config.kafka.partitions, 12);
        assert_eq!(
            config.dispatcher.retry_schedule,
            vec![Duration::from_millis(100), Duration::from_millis(200)]
        );
        assert_eq!(
            config.dispatcher.allowed_networks,
            vec!["127.0.0.0/8".to_string()]
        );
        assert_eq!(config.previous_master_keys.len(), 1);
        let mut bad = config.clone();
        bad.previous_master_keys = vec!["short".into()];
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("previous_master_keys[0]"), "{err}");
    }

    #[test]
    fn assignment_modes_parse_and_a_typo_is_named() {
        use herald_kafka::membership::Assignment;
        assert_eq!(
            HeraldConfig::defaults().dispatcher.assignment,
            Assignment::Auto
        );
        for (text, mode) in [
            ("group", Assignment::Group),
            ("all", Assignment::All),
            ("auto", Assignment::Auto),
        ] {
            let config =
                HeraldConfig::load(None, env(&[("HERALD_DISPATCHER__ASSIGNMENT", text)])).unwrap();
            assert_eq!(config.dispatcher.assignment, mode);
        }
        let err = HeraldConfig::load(None, env(&[("HERALD_DISPATCHER__ASSIGNMENT", "every")]))
            .unwrap_err();
        assert!(err.to_string().contains("every"), "{err}");
    }

    #[test]
    fn env_sets_librdkafka_properties() {
        let config = HeraldConfig::load(
            None,
            env(&[
                ("HERALD_KAFKA__CLIENT__SECURITY_PROTOCOL", "SASL_SSL"),
                ("HERALD_KAFKA__CLIENT__SASL_MECHANISM", "SCRAM-SHA-512"),
                ("HERALD_KAFKA__CLIENT__DEBUG", "cgrp"),
            ]),
        )
        .unwrap();
        let client = &config.kafka.client;
        assert_eq!(client["security.protocol"], "SASL_SSL");
        assert_eq!(client["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(client["debug"], "cgrp");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let err = HeraldConfig::load(None, env(&[("HERALD_KAFKA__BROKRS", "x")])).unwrap_err();
        assert!(err.to_string().contains("HERALD_KAFKA__BROKRS"), "{err}");
        let err = HeraldConfig::load(None, env(&[("HERALD_KAFKA__PARTITIONS", "0")])).unwrap_err();
        assert!(err.to_string().contains("kafka.partitions"), "{err}");
        let err = HeraldConfig::load(None, env(&[("HERALD_DISPATCHER__ATTEMPT_TIMEOUT", "soon")]))
            .unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let err = HeraldConfig::load(None, env(&[("HERALD_MASTER_KEY", "short")])).unwrap_err();
        assert!(err.to_string().contains("master_key"), "{err}");
    }

    #[test]
    fn file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("herald.toml");
        std::fs::write(
            &file,
            "[kafka]\ntopic_prefix = \"staging.\"\n[dispatcher]\nmax_in_flight = 7\n",
        )
        .unwrap();
        let config = HeraldConfig::load(Some(&file), env(&[])).unwrap();
        assert_eq!(config.kafka.topic_prefix, "staging.");
        assert_eq!(config.dispatcher.max_in_flight, 7);
        std::fs::write(&file, "[kafka]\nnope = 1\n").unwrap();
        let err = HeraldConfig::load(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
