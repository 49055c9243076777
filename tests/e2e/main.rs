//! Cross-service end-to-end tests: a real broker (Apache Kafka 4.x by default, fetched from
//! Maven Central on first use; a three-node cluster for failover; Herald's embedded broker for
//! the `herald dev` lane), the real `herald` service processes, real HTTP receivers on
//! loopback, and signatures checked by the independent `standardwebhooks` Python library.
//! See `harness` for what each helper drives, and the README's "Tests" section for the lanes.

mod harness;

mod bad_input;
mod chaos;
mod chaos_receiver;
mod crash;
mod delivery;
mod edits;
mod evidence;
mod failover;
mod health;
mod kafka_in;
mod kafka_topics;
mod keys;
mod large;
mod master_key;
mod observability;
mod operational;
mod payload_format;
mod policy;
mod reconcile;
mod redaction;
mod replay;
mod restart;
mod scale_out;
mod schema;
mod ssrf;
mod stack;
mod standby;
mod subscribe;
mod throttle;
