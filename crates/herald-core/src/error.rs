//! Errors of the domain: each variant tells the caller which input was wrong.

/// What was wrong with a value handed to the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An identifier did not have the expected prefix or shape.
    #[error("invalid {kind} id `{value}`: {reason}")]
    InvalidId {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An endpoint secret was not `whsec_` followed by base64 of 24 to 64 bytes.
    #[error("invalid endpoint secret: {0}")]
    InvalidSecret(&'static str),
    /// An API key was not of the form `hk_<id>_<secret>`.
    #[error("malformed API key")]
    MalformedApiKey,
    /// A scope name that Herald does not know.
    #[error("unknown scope `{0}`")]
    UnknownScope(String),
    /// A duration that could not be parsed (`5s`, `250ms`, `2h`, `3d`).
    #[error("invalid duration `{0}`: expected a number followed by ms, s, m, h or d")]
    InvalidDuration(String),
    /// A URL that Herald will not deliver to.
    #[error("invalid endpoint url: {0}")]
    InvalidUrl(String),
    /// An event type that is empty, too long or has characters outside `[A-Za-z0-9._:-]`.
    #[error("invalid event type `{0}`: use 1-128 characters from A-Z a-z 0-9 . _ : - (filters may use a trailing `*`)")]
    InvalidEventType(String),
    /// A payload format Herald does not know.
    #[error("payload_format: `{0}` is neither `raw` nor `standard`")]
    UnknownPayloadFormat(String),
    /// A rate limit out of range.
    #[error("rate limit {0}/s: must be between 1 and 1000000 a second")]
    InvalidRate(u32),
    /// A retry schedule that cannot be used.
    #[error("invalid retry schedule: {0}")]
    InvalidSchedule(&'static str),
}

/// `Result` with the domain error as default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
