//! # herald-proto
//!
//! The Kafka wire format of Herald: prost types generated at build time from
//! `proto/herald/v1/*.proto` (documented field by field there), plus conversions between
//! them and the domain types of `herald-core`.
//!
//! Modules:
//! - [`v1`]: generated messages (`EventEnvelope`, `DeliveryTask`, `AttemptRecord`,
//!   `DeadLetter`, `EndpointState`, `KeyRecord`, `AuditRecord`).
//! - [`convert`]: `Event` ⇄ `EventEnvelope`, `Endpoint` ⇄ `EndpointState` (sealing secrets).

pub mod convert;

/// Generated types of package `herald.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/herald.v1.rs"));
}

pub use prost::Message;

/// Why a record could not be turned into a domain value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a valid protobuf message of the expected type.
    #[error("undecodable {kind} record: {source}")]
    Decode {
        kind: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// The record decoded but a field is invalid (bad id, missing event, …).
    #[error("invalid {kind} record: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decodes `bytes` as message `M`, naming `kind` in the error.
pub fn decode<M: Message + Default>(kind: &'static str, bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|source| Error::Decode { kind, source })
}
