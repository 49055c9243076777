//! What every bench shares: a short criterion configuration, so that `cargo bench` over all
//! of `benches/` finishes in a few minutes on a 2-core machine.

use criterion::Criterion;
use std::time::Duration;

/// 1 s warm-up, 2 s measurement, 30 samples per benchmark.
pub fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}
