//! Errors of the Kafka layer, by what the caller does about them.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker could not be reached or did not acknowledge in time: retry later, answer 503.
    #[error("Kafka is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused this record for good (too large, invalid): do not retry it as is.
    #[error("Kafka rejected the record: {0}")]
    Rejected(String),
    /// Client configuration is wrong (bad property, unknown broker address format).
    #[error("Kafka client configuration: {0}")]
    Config(String),
    /// A view did not catch up with its topic in time.
    #[error("view of {topic} did not catch up within {seconds}s")]
    NotCaughtUp { topic: String, seconds: u64 },
    /// A topic a read needs does not exist.
    #[error("topic {0} does not exist: run `herald topics create` first")]
    MissingTopic(String),
    /// Reading a topic made no progress for too long (broker unreachable?). Retry later.
    #[error("reading {topic} stalled at partition {partition} (broker unreachable?)")]
    Stalled { topic: String, partition: i32 },
    /// The service is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Sorts an rdkafka error into retryable unavailability or a permanent rejection.
    pub fn from_kafka(err: KafkaError) -> Self {
        match err.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::InvalidArgument,
            ) => Self::Rejected(err.to_string()),
            _ => match err {
                KafkaError::ClientCreation(msg) => Self::Config(msg),
                other => Self::Unavailable(other.to_string()),
            },
        }
    }
}
