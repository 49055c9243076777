//! The one producer every service uses: idempotent, `acks=all`, with explicit backpressure.
//!
//! `send` returns only once the broker acknowledged the record (or the produce timeout ran
//! out). When librdkafka's local queue is full, `send` waits for room within the same timeout
//! instead of failing at once; after that, the caller gets [`Error::Unavailable`].
//!
//! Records never time out inside librdkafka (`message.timeout.ms=0`): the produce timeout is
//! applied to the wait for the acknowledgement only, and a record not acknowledged in time
//! stays queued and may still be written (the caller is told so). Letting librdkafka expire
//! in-flight records would make the idempotent producer bump its epoch locally, which the
//! embedded tansu broker does not support (its storage task panics on the unknown epoch and
//! the broker stops serving); with a real Kafka cluster it only saves needless re-sends.

use crate::stats::{self, ProducerStats};
use crate::{Error, KafkaConfig, Result};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use std::time::{Duration, Instant};

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`).
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<ProducerStats>,
    timeout: Duration,
    /// The latest broker probe, per topic (see [`Producer::probe`]).
    probes: std::sync::Arc<tokio::sync::Mutex<ProbeCache>>,
    /// `herald_kafka_produce_seconds`, looked up once: the macro finds the key in the
    /// registry and allocates a handle on every call, and this one runs for every record.
    produce_seconds: metrics::Histogram,
}

/// Probe results younger than [`PROBE_FRESH`], by topic.
type ProbeCache = std::collections::HashMap<String, (Instant, std::result::Result<(), String>)>;

/// How long a probe answers for: `/readyz` polled by many probes costs one broker request
/// a second, not one per request.
const PROBE_FRESH: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Producer {
    /// Creates the producer. Does not need the broker to be up.
    pub fn new(config: &KafkaConfig, client_id: &str) -> Result<Self> {
        let mut client = config.client_config(client_id);
        stats::enable_statistics(&mut client);
        // Batching and compression are tunable (`kafka.client`): a longer linger trades a
        // few milliseconds of latency for fewer, larger produce requests (benches/README.md).
        config.set_defaults(
            &mut client,
            &[("linger.ms", "2"), ("compression.type", "lz4")],
        );
        // What at-least-once rests on wins over `kafka.client`.
        let inner: FutureProducer<ProducerStats> = client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.messages", "100000")
            .set("message.max.bytes", config.max_record_bytes.to_string())
            .create_with_context(ProducerStats)
            .map_err(Error::from_kafka)?;
        Ok(Self {
            inner,
            timeout: config.produce_timeout,
            probes: Default::default(),
            produce_seconds: metrics::histogram!("herald_kafka_produce_seconds"),
        })
    }

    /// Writes one record and waits for the broker's acknowledgement.
    pub async fn send(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<Acked> {
        self.send_with(topic, key, Some(payload), None).await
    }

    /// Writes a tombstone (null value) for `key` on a compacted topic.
    pub async fn send_tombstone(&self, topic: &str, key: &[u8]) -> Result<Acked> {
        self.send_with(topic, key, None, None).await
    }

    /// Writes one record with a producer timestamp (ms) and waits for the acknowledgement.
    pub async fn send_at(&self, topic: &str, key: &[u8], payload: &[u8], ts: i64) -> Result<Acked> {
        self.send_with(topic, key, Some(payload), Some(ts)).await
    }

    async fn send_with(
        &self,
        topic: &str,
        key: &[u8],
        payload: Option<&[u8]>,
        timestamp: Option<i64>,
    ) -> Result<Acked> {
        let started = Instant::now();
        // No headers: nothing reads them, and the embedded broker stores each one as a row
        // it looks up for every record it serves.
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).key(key);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(ts) = timestamp {
            record = record.timestamp(ts);
        }
        let sent = tokio::time::timeout(
            self.timeout,
            self.inner.send(record, Timeout::After(self.timeout)),
        )
        .await;
        let Ok(result) = sent else {
            self.produce_seconds.record(started.elapsed().as_secs_f64());
            metrics::counter!("herald_kafka_produce_errors_total", "kind" => "unavailable")
                .increment(1);
            return Err(Error::Unavailable(format!(
                "not acknowledged within {:?} (broker slow or unreachable); the record may still be written",
                self.timeout
            )));
        };
        self.produce_seconds.record(started.elapsed().as_secs_f64());
        match result {
            Ok(delivery) => Ok(Acked {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((err, _message)) => {
                let err = Error::from_kafka(err);
                let kind = match err {
                    Error::Rejected(_) => "rejected",
                    _ => "unavailable",
                };
                metrics::counter!("herald_kafka_produce_errors_total", "kind" => kind).increment(1);
                Err(err)
            }
        }
    }

    /// Records waiting in librdkafka's queue or in flight to the broker.
    pub fn queue_depth(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Waits (off the async runtime) until every queued record is acknowledged or `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush(Timeout::After(timeout)))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?
            .map_err(Error::from_kafka)
    }

    /// The underlying client, for metadata queries.
    pub fn client(&self) -> &FutureProducer<ProducerStats> {
        &self.inner
    }

    /// Whether a broker answers a metadata request for `topic` within `timeout` (run off the
    /// async runtime). The error says what failed, for `/readyz`. Answers from the latest
    /// probe while it is younger than a second; concurrent callers share one probe.
    pub async fn probe(&self, topic: &str, timeout: Duration) -> std::result::Result<(), String> {
        let mut probes = self.probes.lock().await;
        if let Some((at, result)) = probes.get(topic) {
            if at.elapsed() < PROBE_FRESH {
                return result.clone();
            }
        }
        let result = crate::health::broker_reachable(self.inner.clone(), topic, timeout).await;
        probes.insert(topic.to_owned(), (Instant::now(), result.clone()));
        result
    }
}
