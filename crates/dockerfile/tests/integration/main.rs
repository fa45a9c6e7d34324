//! The integration tests of this crate, one module per topic, linked into one test
//! binary (one link instead of one per file).

mod model;
mod process;
mod transpose;
