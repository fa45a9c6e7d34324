//! The integration tests of this crate, one module per topic, linked into one test
//! binary (one link instead of one per file).

mod buildkit;
mod common;
mod daemon;
mod errors;
mod fake_daemon;
