//! Dispatcher settings: one struct, loaded once, validated at start.

use herald_core::duration::{serde_human, serde_human_vec};
use herald_core::health::HealthPolicy;
use herald_core::retry::RetryPolicy;
use herald_kafka::membership::Assignment;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the dispatcher consumes, delivers and retries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Consumer group of the main (events) consumer; the retry consumer uses `<group>-retry`.
    pub group: String,
    /// Id of this instance: who holds the lease under `assignment = "all"`, and with
    /// `static_membership` its `group.instance.id`. Must be unique per running dispatcher.
    /// Empty: `<group>-<host name>`. `none`: no id (dynamic membership, no lease identity).
    pub instance_id: String,
    /// Static group membership (`group.instance.id` = `instance_id`) under the group
    /// protocol: a dispatcher restarted within the session timeout takes its partitions back
    /// without a rebalance. Off by default: librdkafka's static member can be fenced by its
    /// own re-join after a coordinator failover (FencedInstanceId, fatal for the client), and
    /// a static member does not leave the group on a clean stop (its partitions wait out the
    /// session timeout). Dynamic members leave at once on SIGTERM.
    #[serde(default)]
    pub static_membership: bool,
    /// How the consumers get their partitions: `group` (the Kafka group protocol; run several
    /// dispatchers to share the work), `all` (every partition, by hand; run exactly one), or
    /// `auto`: `all` on Herald's embedded broker, whose group coordinator can strand a
    /// restarted member, `group` on any other cluster.
    pub assignment: Assignment,
    /// With `assignment = "all"`, one dispatcher per group is active and holds a lease of
    /// this length in `leases.v1`, renewed every third of it; others stand by and take over
    /// when it is released (clean stop: at once) or expires (crash: within this long).
    #[serde(with = "serde_human")]
    pub lease: Duration,
    /// Events being delivered at once (across all endpoints).
    pub max_in_flight: usize,
    /// Deliveries to one endpoint at once; further ones wait in the first retry tier.
    pub per_endpoint_concurrency: usize,
    /// Whole-attempt timeout (connect, send, response).
    #[serde(with = "serde_human")]
    pub attempt_timeout: Duration,
    /// TCP connect timeout.
    #[serde(with = "serde_human")]
    pub connect_timeout: Duration,
    /// Bytes of the response body kept in the attempt record.
    pub response_excerpt_bytes: usize,
    /// Waits after failed attempts 1, 2, …; past the last one a delivery is dead.
    #[serde(with = "serde_human_vec")]
    pub retry_schedule: Vec<Duration>,
    /// ± fraction of jitter on each wait.
    pub retry_jitter: f64,
    /// Minimum wait after 429, 408 or a timeout.
    #[serde(with = "serde_human")]
    pub throttle_floor: Duration,
    /// Destinations allowed despite being private/loopback/link-local (CIDR list, e.g.
    /// `127.0.0.0/8`). Empty: only public addresses.
    pub allowed_networks: Vec<String>,
    /// DNS servers (`ip:port`, UDP) that resolve delivery hosts instead of the system
    /// resolver; empty: the system resolver. The SSRF guard checks their answers too.
    #[serde(default)]
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// How far back the attempts log is read at start to skip deliveries that already
    /// succeeded before a crash.
    #[serde(with = "serde_human")]
    pub dedupe_window: Duration,
    /// Consecutive failed attempts after which an endpoint counts as failing: it is reported
    /// (log, audit record, `herald_endpoint_healthy` 0) and its overflow deliveries go to the
    /// retry tiers at once instead of waiting for a slot.
    pub failing_after: u32,
    /// An endpoint failing continuously this long (from the first failure of the run) is
    /// disabled (0s: never).
    #[serde(with = "serde_human")]
    pub disable_after: Duration,
    /// Endpoints that get their own per-endpoint metric series; the rest share `other`.
    pub endpoint_metrics_limit: usize,
    /// `user-agent` header of every delivery.
    pub user_agent: String,
    /// Also send `svix-id`, `svix-timestamp`, `svix-signature` headers.
    pub svix_headers: bool,
}

impl DispatcherConfig {
    /// Production defaults (Standard Webhooks schedule, only public destinations).
    pub fn defaults() -> Self {
        let policy = RetryPolicy::production();
        Self {
            group: "herald-dispatcher".into(),
            instance_id: String::new(),
            static_membership: false,
            assignment: Assignment::Auto,
            lease: Duration::from_secs(15),
            max_in_flight: 512,
            per_endpoint_concurrency: 32,
            attempt_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            response_excerpt_bytes: 1_024,
            retry_schedule: policy.steps().to_vec(),
            retry_jitter: policy.jitter(),
            throttle_floor: policy.throttle_floor(),
            allowed_networks: Vec::new(),
            dns_servers: Vec::new(),
            dedupe_window: Duration::from_secs(3_600),
            failing_after: 5,
            disable_after: Duration::from_secs(5 * 86_400),
            endpoint_metrics_limit: 100,
            user_agent: format!("Herald-Webhooks/{}", env!("CARGO_PKG_VERSION")),
            svix_headers: false,
        }
    }

    /// The retry policy this config describes.
    pub fn retry_policy(&self) -> Result<RetryPolicy, String> {
        RetryPolicy::new(
            self.retry_schedule.clone(),
            self.retry_jitter,
            self.throttle_floor,
        )
        .map_err(|e| format!("dispatcher.retry_schedule/retry_jitter/throttle_floor: {e}"))
    }

    /// When an endpoint counts as failing and when it is disabled.
    pub fn health_policy(&self) -> HealthPolicy {
        HealthPolicy {
            failing_after: self.failing_after,
            disable_after_ms: self.disable_after.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// The `group.instance.id` of the group consumers: only with `static_membership`.
    pub fn static_instance(&self) -> Option<String> {
        self.group_instance().filter(|_| self.static_membership)
    }

    /// This instance's id, if any (see `instance_id`).
    pub fn group_instance(&self) -> Option<String> {
        match self.instance_id.trim() {
            "none" => None,
            "" => Some(format!("{}-{}", self.group, host_name())),
            id => Some(id.to_owned()),
        }
    }

    /// Checks every value; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.group.trim().is_empty() {
            return Err("dispatcher.group: must not be empty".into());
        }
        if self.instance_id.len() > 200
            || self
                .instance_id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("dispatcher.instance_id: at most 200 characters, no whitespace".into());
        }
        if self.lease < Duration::from_secs(1) {
            return Err("dispatcher.lease: must be at least 1s".into());
        }
        if !(1..=100_000).contains(&self.max_in_flight) {
            return Err("dispatcher.max_in_flight: must be between 1 and 100000".into());
        }
        if !(1..=10_000).contains(&self.per_endpoint_concurrency) {
            return Err("dispatcher.per_endpoint_concurrency: must be between 1 and 10000".into());
        }
        if !(1..=1_000_000).contains(&self.failing_after) {
            return Err("dispatcher.failing_after: must be between 1 and 1000000".into());
        }
        if self.attempt_timeout < Duration::from_millis(50) {
            return Err("dispatcher.attempt_timeout: must be at least 50ms".into());
        }
        if self.connect_timeout.is_zero() {
            return Err("dispatcher.connect_timeout: must be positive".into());
        }
        if self.dns_servers.len() > 8 {
            return Err("dispatcher.dns_servers: at most 8".into());
        }
        for net in &self.allowed_networks {
            crate::ssrf::Network::parse(net)
                .map_err(|e| format!("dispatcher.allowed_networks: `{net}`: {e}"))?;
        }
        self.retry_policy().map(|_| ())
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DispatcherConfig::defaults().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = DispatcherConfig::defaults();
        c.max_in_flight = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("dispatcher.max_in_flight"));
        let mut c = DispatcherConfig::defaults();
        c.retry_jitter = 3.0;
        assert!(c.validate().unwrap_err().contains("retry_jitter"));
        let mut c = DispatcherConfig::defaults();
        c.allowed_networks = vec!["10.0.0.0/99".into()];
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("dispatcher.allowed_networks"));
    }
}
