//! Dispatcher errors: all of them stop the service (at start, or when it lost its lease);
//! delivery failures are outcomes, not errors.

/// Why the dispatcher could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Kafka could not be used (client creation, subscription, views not catching up).
    #[error(transparent)]
    Kafka(#[from] herald_kafka::Error),
    /// Another dispatcher holds the group's lease now (`assignment = "all"`): this one
    /// stopped consuming so that only one delivers.
    #[error("another dispatcher took over the group's lease; stopped (restart to stand by)")]
    LeaseLost,
    /// A consumer hit an error librdkafka cannot recover from (for instance a static member
    /// fenced by its own re-join): the dispatcher drained and stopped so that its supervisor
    /// starts it again, instead of stalling without partitions.
    #[error("Kafka consumer failed for good: {0}; drained and stopped (restart it)")]
    ConsumerFatal(String),
}

/// `Result` with the dispatcher's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
