//! What the tests need besides Rust, installed on first use by `tests/install-tools.sh`
//! (Apache Kafka's jars, the Python verifier, kcat, promtool), so that `cargo test
//! --workspace` alone passes on a new machine. Once per test process; quick when all is there.

use std::path::Path;
use std::sync::OnceLock;

/// Runs `tests/install-tools.sh` once; panics with its message when it fails.
pub fn ensure() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/install-tools.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .expect("run tests/install-tools.sh");
        assert!(
            status.success(),
            "{} failed (see its message above): the end-to-end tests need mvn and Java 17+ \
             (Apache Kafka), pip (standardwebhooks) and apt-get (kcat, promtool)",
            script.display()
        );
    });
}
