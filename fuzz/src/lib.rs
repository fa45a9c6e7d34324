//! The invariants behind balena-compose's fuzz targets, one function per target in
//! [`checks`]. The same file runs on stable as bounded property tests
//! (`crates/compose-cli/tests/integration/properties.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod checks;
