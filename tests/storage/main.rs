//! Integration tests of the storage engine, below the store: segments and their indexes, the
//! partition (open, recovery, appends, reads, concurrency, locks), retention and compaction, the
//! simulated file system, and damaged files of every kind. One test binary with a module per
//! behaviour, so the tests link once (`cargo test --test storage`, or a module:
//! `cargo test --test storage partition::torn_tail::`).
//!
//! Tests that need a child process run one test of this binary by its full name (see
//! [`common::test_path`]).

#[path = "../common/mod.rs"]
mod common;
/// The fuzz targets' checks, shared with the cargo-fuzz crate.
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

mod compaction;
mod compression;
mod damage;
mod error_kinds;
mod fs;
mod fuzz_seeds;
mod index;
mod partition;
mod platform_unix_only;
mod retention;
mod segment;
