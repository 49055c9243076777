//! Errors of replay, by what the caller does about them.

/// What went wrong planning or running a replay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (malformed time, inverted range, bad rate, bad id): fix the
    /// input. CLI: message and non-zero exit; API: 422. Nothing was re-driven.
    #[error("{0}")]
    Invalid(String),
    /// The filters name an endpoint that does not exist. Nothing was re-driven.
    #[error("unknown endpoint {0}: `herald` knows no endpoint with that id")]
    UnknownEndpoint(String),
    /// No replay run has that id.
    #[error("no replay run {0}")]
    UnknownRun(String),
    /// The run cannot be resumed in its state (already finished).
    #[error("replay run {id} is {state}; only a running (interrupted) run can be resumed")]
    NotResumable { id: String, state: String },
    /// A topic replay needs is missing.
    #[error("topic {0} does not exist: run `herald topics create` first")]
    MissingTopic(String),
    /// Reading a topic made no progress for too long (broker unreachable?). Retry later;
    /// a started run is resumable.
    #[error("reading {topic} stalled at partition {partition} (broker unreachable?)")]
    Stalled { topic: String, partition: i32 },
    /// Kafka refused or was unreachable. Retry later; a started run is resumable.
    #[error(transparent)]
    Kafka(herald_kafka::Error),
    /// A client-chosen run id is taken by a run with other filters.
    #[error("replay id {0} is taken by a run with other filters")]
    IdTaken(String),
    /// Another replay run holds the replay lock (one run re-drives at a time). Nothing was
    /// re-driven by this request.
    #[error("replay {owner} is running (it holds the replay lock until {}); wait for it to finish, or resume it if its process died", crate::filter::format_instant(*until_ms))]
    Busy { owner: String, until_ms: i64 },
    /// Shutting down: a started run stopped where it was and is resumable.
    #[error("interrupted; resume with `herald replay resume <id>`")]
    Interrupted,
    /// The run failed unexpectedly (a bug); its lock was released.
    #[error("replay run failed: {0}")]
    Failed(String),
}

impl From<herald_kafka::Error> for Error {
    fn from(err: herald_kafka::Error) -> Self {
        match err {
            herald_kafka::Error::MissingTopic(topic) => Self::MissingTopic(topic),
            herald_kafka::Error::Stalled { topic, partition } => Self::Stalled { topic, partition },
            other => Self::Kafka(other),
        }
    }
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the caller's input was at fault (a 4xx, not a 5xx).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::UnknownEndpoint(_) | Self::NotResumable { .. }
        )
    }
}
