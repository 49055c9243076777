//! Errors of ingest start-up. Request errors are [`herald_http::ApiError`].

/// Errors of ingest start-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bootstrap key could not be registered.
    #[error("bootstrap key: {0}")]
    Bootstrap(String),
    /// The listener failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
    /// Kafka refused or was unreachable.
    #[error(transparent)]
    Kafka(#[from] herald_kafka::Error),
}
