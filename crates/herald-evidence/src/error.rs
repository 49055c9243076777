//! Errors of reading the evidence back, by what the caller does about them.

/// What went wrong answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query itself is wrong (bad time, id, class, cursor, limit): fix the input.
    #[error("{0}")]
    Invalid(String),
    /// Kafka refused or was unreachable, or a topic is missing: retry later.
    #[error(transparent)]
    Kafka(#[from] herald_kafka::Error),
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
