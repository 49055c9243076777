//! Cross-service end-to-end tests: a real broker process (`herald broker`, embedded tansu),
//! the real `herald` service process, real HTTP receivers on loopback, and signatures checked
//! by the independent `standardwebhooks` Python library.

mod utils;

mod delivery;
// `restart` (herald dev SIGKILL + restart) is kept out until the retry-tier loss it found is fixed; see issue #2 notes.
// mod restart;
