//! Ingest settings.

use herald_core::duration::serde_human;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// Where ingest listens and what it accepts. `Debug` leaves the bootstrap key out.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Listen address of the ingest and admin API.
    pub listen: SocketAddr,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Most events in one batch request.
    pub max_batch: usize,
    /// Most endpoints one tenant may have (the untenanted ones count as one tenant): every
    /// endpoint is held in every service's memory and checked for every event.
    #[serde(default = "default_max_endpoints_per_tenant")]
    pub max_endpoints_per_tenant: usize,
    /// How long a new API key is valid unless the request says otherwise (`never_expires`
    /// must be asked for explicitly, and is flagged).
    #[serde(default = "default_key_ttl", with = "serde_human")]
    pub key_ttl: Duration,
    /// Keys older than this are flagged `rotation_due` (and counted in
    /// `herald_api_keys_rotation_due`).
    #[serde(default = "default_key_ttl", with = "serde_human")]
    pub key_rotation_period: Duration,
    /// Events a second one key may send to this process unless the key says otherwise
    /// (a token bucket holding two seconds' worth; over it: 429 with `Retry-After`).
    /// 0: unlimited.
    #[serde(default = "default_key_rate_per_sec")]
    pub key_rate_per_sec: u32,
    /// How often each key's last use and source addresses are written to `keys.v1` (at
    /// most one record per key and process per interval).
    #[serde(default = "default_key_usage_flush", with = "serde_human")]
    pub key_usage_flush: Duration,
    /// A full `hk_…` token registered with every scope at first start (bootstrap admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_key: Option<String>,
}

fn default_key_ttl() -> Duration {
    Duration::from_secs(90 * 86_400)
}

fn default_key_rate_per_sec() -> u32 {
    1_000
}

fn default_key_usage_flush() -> Duration {
    Duration::from_secs(60)
}

fn default_max_endpoints_per_tenant() -> usize {
    1_000
}

impl std::fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConfig")
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch", &self.max_batch)
            .field("max_endpoints_per_tenant", &self.max_endpoints_per_tenant)
            .field("key_ttl", &self.key_ttl)
            .field("key_rotation_period", &self.key_rotation_period)
            .field("key_rate_per_sec", &self.key_rate_per_sec)
            .field("key_usage_flush", &self.key_usage_flush)
            .field(
                "bootstrap_key",
                &self.bootstrap_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl IngestConfig {
    /// Defaults: loopback:8080, 1 MiB bodies, batches of up to 100.
    pub fn defaults() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            max_body_bytes: 1 << 20,
            max_batch: 100,
            max_endpoints_per_tenant: default_max_endpoints_per_tenant(),
            key_ttl: default_key_ttl(),
            key_rotation_period: default_key_ttl(),
            key_rate_per_sec: default_key_rate_per_sec(),
            key_usage_flush: default_key_usage_flush(),
            bootstrap_key: None,
        }
    }

    /// Checks every value; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1_024..=64 << 20).contains(&self.max_body_bytes) {
            return Err("ingest.max_body_bytes: must be between 1024 and 67108864".into());
        }
        if !(1..=10_000).contains(&self.max_batch) {
            return Err("ingest.max_batch: must be between 1 and 10000".into());
        }
        if !(1..=100_000).contains(&self.max_endpoints_per_tenant) {
            return Err("ingest.max_endpoints_per_tenant: must be between 1 and 100000".into());
        }
        let day = Duration::from_secs(86_400);
        if !(day..=day * 3_650).contains(&self.key_ttl) {
            return Err("ingest.key_ttl: must be between 1d and 3650d".into());
        }
        if !(day..=day * 3_650).contains(&self.key_rotation_period) {
            return Err("ingest.key_rotation_period: must be between 1d and 3650d".into());
        }
        if self.key_rate_per_sec > herald_core::throttle::MAX_RATE_PER_SEC {
            return Err("ingest.key_rate_per_sec: at most 1000000 (0: unlimited)".into());
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3_600)).contains(&self.key_usage_flush) {
            return Err("ingest.key_usage_flush: must be between 1s and 1h".into());
        }
        if let Some(key) = &self.bootstrap_key {
            herald_core::apikey::ApiKeyToken::parse(key).map_err(|_| {
                "ingest.bootstrap_key: must be a full hk_<id>_<secret> token".to_string()
            })?;
        }
        Ok(())
    }
}
