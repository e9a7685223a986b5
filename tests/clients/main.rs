//! Integration tests above the storage engine: the store (topics, their configuration, damage,
//! faults, locks, background work), topics and partitioning, consumers and consumer groups, and
//! producers. One test binary with a module per behaviour (`cargo test --test clients`, or a
//! module: `cargo test --test clients consumer::`).
//!
//! Tests that need a child process run one test of this binary by its full name (see
//! [`common::test_path`]). `tests/store_maintenance.rs` stays a binary of its own: it counts the
//! maintenance threads of its process.

#[path = "../common/mod.rs"]
mod common;

mod async_tokio;
mod consumer;
mod metrics;
mod producer;
mod store;
mod topic;
mod tracing_events;
