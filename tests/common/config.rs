//! Configurations the tests share: small logs and deterministic proptest runs.

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, RngSeed};
use topiclog::{Deadline, Durability, LogConfig};

/// A log that rolls often and syncs never: `segment_bytes` per segment, an index entry every
/// `index_interval_bytes`, no time-based roll, no fsync, no preallocation.
pub fn small_log(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: Deadline::Never,
        index_interval_bytes,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// A deterministic proptest run: `cases` cases from the fixed seed `seed`, unless the
/// `PROPTEST_CASES` / `PROPTEST_RNG_SEED` environment variables say otherwise.
pub fn proptest_config(cases: u32, seed: u64) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(seed);
    }
    // Failures print the minimal input; nothing is written to the source tree unless a caller
    // asks for it (`persist_failures`).
    config.failure_persistence = None;
    config
}

/// `config`, shrinking harder and recording failing inputs in `proptest-regressions/<name>.txt`
/// (committed, so they are replayed first on every run).
pub fn persist_failures(mut config: ProptestConfig, name: &'static str) -> ProptestConfig {
    config.max_shrink_iters = 4096;
    let path: &'static str = Box::leak(format!("proptest-regressions/{name}.txt").into_boxed_str());
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(path)));
    config
}
