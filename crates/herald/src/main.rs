//! `herald`: one binary for every role. `main` parses the command line, sets up logs and
//! the runtime, and calls [`herald::run`].

use clap::Parser;
use herald::cli::Cli;

/// mimalloc instead of glibc's malloc: a profile of `herald dev` under load on Apache Kafka
/// spent about 17 % of its CPU in glibc's malloc, free and consolidation (many threads,
/// short-lived buffers per delivery); benches/README.md has the before and after.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    herald::observability::init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("herald: cannot start the async runtime: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(herald::run(cli));
    // Dropping the runtime would wait without limit for blocking tasks (a librdkafka call
    // waiting on a broker that is gone); the services have drained by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) if herald::stopped_while_starting(&err) => {
            // SIGTERM/SIGINT before start-up finished: nothing was consumed, a clean stop.
            eprintln!("herald: stopped before start-up finished");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("herald: error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
