//! Test harness, one module per thing it drives: processes, brokers (Apache Kafka or the
//! embedded one), HTTP receivers with the independent signature verifier, Herald's API, its
//! topics, and its metrics.

pub mod api;
pub mod broker;
pub mod metrics;
pub mod procs;
pub mod receiver;
pub mod tools;
pub mod topics;

pub use api::*;
pub use broker::*;
pub use metrics::*;
pub use procs::*;
pub use receiver::*;
pub use topics::*;
