//! Classification of one delivery attempt: a pure function of what the HTTP exchange produced,
//! the attempt number and the retry policy.
//!
//! - 2xx: delivered.
//! - 410 Gone: dead, and the endpoint is to be disabled.
//! - 413 Payload Too Large: dead (the same payload will be refused again); replay re-drives it.
//! - 429, 408 and timeouts: retry, waiting at least the throttle floor.
//! - everything else, 3xx included (redirects are never followed): retry on the schedule.
//! - when the schedule is spent: dead, exhausted.

use crate::retry::{FailureKind, RetryPolicy};
use std::time::Duration;

/// What one HTTP attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint answered with a status code.
    Response {
        status: u16,
        /// The parsed `Retry-After` header, if any.
        retry_after: Option<Duration>,
    },
    /// No complete answer within the per-attempt timeout.
    Timeout,
    /// The connection could not be made or broke (DNS, refused, reset, TLS).
    Connection,
    /// The destination was refused before connecting (SSRF protection).
    Forbidden,
}

/// Why a delivery was parked in the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// Every attempt of the schedule failed.
    Exhausted,
    /// The endpoint answered 410 Gone.
    EndpointGone,
    /// The endpoint was disabled when the delivery came due.
    EndpointDisabled,
    /// The endpoint was deleted while the delivery was pending.
    EndpointDeleted,
    /// The endpoint refused the payload itself (413).
    PayloadRejected,
    /// The destination address is not allowed (SSRF protection).
    DestinationForbidden,
    /// A record in the events topic that is not a valid event (written straight to Kafka).
    Undecodable,
    /// The broker refused the delivery's retry task or dead letter (too large for the topic,
    /// or the topic is gone): parked without the payload, which the events topic still
    /// holds (`herald replay events` re-drives it).
    RecordTooLarge,
}

impl DeadReason {
    /// A stable, low-cardinality name (metrics labels, JSON, CLI filters).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exhausted => "exhausted",
            Self::EndpointGone => "endpoint_gone",
            Self::EndpointDisabled => "endpoint_disabled",
            Self::EndpointDeleted => "endpoint_deleted",
            Self::PayloadRejected => "payload_rejected",
            Self::DestinationForbidden => "destination_forbidden",
            Self::Undecodable => "undecodable",
            Self::RecordTooLarge => "record_too_large",
        }
    }

    /// Every reason, in declaration order.
    pub const ALL: [Self; 8] = [
        Self::Exhausted,
        Self::EndpointGone,
        Self::EndpointDisabled,
        Self::EndpointDeleted,
        Self::PayloadRejected,
        Self::DestinationForbidden,
        Self::Undecodable,
        Self::RecordTooLarge,
    ];

    /// Parses [`as_str`](Self::as_str) output.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

/// What happens next with a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The endpoint accepted it.
    Delivered,
    /// Try again after `after`, from the tier that [`RetryPolicy::tier_for`] picks.
    Retry { after: Duration },
    /// Park it in the dead-letter topic.
    Dead {
        reason: DeadReason,
        /// The endpoint must be disabled as a consequence (410 Gone).
        disable_endpoint: bool,
    },
}

/// What an attempt led to, as the attempts log records it (`delivered`, `retry`, `dead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    Dead,
}

impl AttemptOutcome {
    /// Every outcome, in a stable order.
    pub const ALL: [AttemptOutcome; 3] = [Self::Delivered, Self::Retry, Self::Dead];

    /// The wire and label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Dead => "dead",
        }
    }

    /// The outcome a wire string names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

impl Outcome {
    /// What this decision is recorded as.
    pub fn kind(&self) -> AttemptOutcome {
        match self {
            Self::Delivered => AttemptOutcome::Delivered,
            Self::Retry { .. } => AttemptOutcome::Retry,
            Self::Dead { .. } => AttemptOutcome::Dead,
        }
    }
}

impl AttemptResult {
    /// Whether the endpoint accepted the delivery.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Response { status, .. } if (200..300).contains(status))
    }

    /// A short, low-cardinality label: `2xx`, `4xx`, `5xx`, `timeout`, `connection`, …
    pub fn class(&self) -> &'static str {
        match self {
            Self::Response { status, .. } => match status / 100 {
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                5 => "5xx",
                _ => "other",
            },
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Forbidden => "forbidden",
        }
    }
}

/// Decides the outcome of attempt number `attempt` (1-based). `jitter_unit` is uniform in `[0, 1)`.
pub fn classify(
    result: &AttemptResult,
    attempt: u32,
    policy: &RetryPolicy,
    jitter_unit: f64,
) -> Outcome {
    let dead = |reason, disable_endpoint| Outcome::Dead {
        reason,
        disable_endpoint,
    };
    let (kind, retry_after) = match result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => {
            return Outcome::Delivered
        }
        AttemptResult::Response { status: 410, .. } => return dead(DeadReason::EndpointGone, true),
        AttemptResult::Response { status: 413, .. } => {
            return dead(DeadReason::PayloadRejected, false)
        }
        AttemptResult::Forbidden => return dead(DeadReason::DestinationForbidden, false),
        AttemptResult::Response {
            status: 429 | 408,
            retry_after,
        } => (FailureKind::Throttled, *retry_after),
        AttemptResult::Response { retry_after, .. } => (FailureKind::Ordinary, *retry_after),
        AttemptResult::Timeout => (FailureKind::Throttled, None),
        AttemptResult::Connection => (FailureKind::Ordinary, None),
    };
    match policy.next_delay(attempt, kind, retry_after, jitter_unit) {
        Some(after) => Outcome::Retry { after },
        None => dead(DeadReason::Exhausted, false),
    }
}

/// Parses a `Retry-After` header given as delta-seconds. (HTTP dates are answered by the
/// caller, which knows the clock; this stays pure.)
pub fn parse_retry_after_seconds(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_outcomes_round_trip_and_follow_the_decision() {
        for outcome in AttemptOutcome::ALL {
            assert_eq!(AttemptOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(AttemptOutcome::parse("maybe"), None);
        assert_eq!(Outcome::Delivered.kind(), AttemptOutcome::Delivered);
        let retry = Outcome::Retry {
            after: Duration::from_secs(1),
        };
        assert_eq!(retry.kind(), AttemptOutcome::Retry);
    }

    fn response(status: u16) -> AttemptResult {
        AttemptResult::Response {
            status,
            retry_after: None,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::production()
    }

    #[test]
    fn success_is_any_2xx() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(
                classify(&response(status), 1, &policy(), 0.5),
                Outcome::Delivered
            );
        }
    }

    #[test]
    fn redirects_and_server_errors_retry_on_schedule() {
        for status in [301, 302, 307, 400, 401, 404, 500, 502, 503] {
            assert_eq!(
                classify(&response(status), 1, &policy(), 0.5),
                Outcome::Retry {
                    after: Duration::from_secs(5)
                },
                "status {status}"
            );
        }
        assert_eq!(
            classify(&AttemptResult::Connection, 2, &policy(), 0.5),
            Outcome::Retry {
                after: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn throttling_waits_at_least_a_minute() {
        for result in [response(429), response(408), AttemptResult::Timeout] {
            assert_eq!(
                classify(&result, 1, &policy(), 0.5),
                Outcome::Retry {
                    after: Duration::from_secs(60)
                }
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let result = AttemptResult::Response {
            status: 503,
            retry_after: Some(Duration::from_secs(8)),
        };
        assert_eq!(
            classify(&result, 1, &policy(), 0.5),
            Outcome::Retry {
                after: Duration::from_secs(8)
            }
        );
    }

    #[test]
    fn gone_disables_and_payload_rejections_are_dead() {
        assert_eq!(
            classify(&response(410), 1, &policy(), 0.5),
            Outcome::Dead {
                reason: DeadReason::EndpointGone,
                disable_endpoint: true
            }
        );
        assert_eq!(
            classify(&response(413), 1, &policy(), 0.5),
            Outcome::Dead {
                reason: DeadReason::PayloadRejected,
                disable_endpoint: false
            }
        );
        assert_eq!(
            classify(&AttemptResult::Forbidden, 1, &policy(), 0.5),
            Outcome::Dead {
                reason: DeadReason::DestinationForbidden,
                disable_endpoint: false
            }
        );
    }

    #[test]
    fn exhausted_after_the_last_step() {
        let last = policy().max_attempts();
        assert_eq!(
            classify(&response(500), last, &policy(), 0.5),
            Outcome::Dead {
                reason: DeadReason::Exhausted,
                disable_endpoint: false
            }
        );
        assert!(matches!(
            classify(&response(500), last - 1, &policy(), 0.5),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn reason_names_round_trip() {
        for reason in [
            DeadReason::Exhausted,
            DeadReason::EndpointGone,
            DeadReason::PayloadRejected,
        ] {
            assert_eq!(DeadReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(DeadReason::parse("nope"), None);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(
            parse_retry_after_seconds(" 120 "),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"),
            None
        );
    }
}
