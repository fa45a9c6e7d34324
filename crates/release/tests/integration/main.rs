//! The integration tests of this crate, one module per topic, linked into one test
//! binary (one link instead of one per file).

mod api;
mod errors;
mod push;
