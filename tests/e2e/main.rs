//! Cross-service end-to-end tests: a real broker process (`herald broker`, embedded tansu),
//! the real `herald` service process, real HTTP receivers on loopback, and signatures checked
//! by the independent `standardwebhooks` Python library.

mod utils;

mod bad_input;
mod chaos;
mod chaos_receiver;
mod crash;
mod delivery;
mod edits;
mod health;
mod observability;
mod replay;
mod restart;
mod stack;
mod standby;
mod subscribe;
