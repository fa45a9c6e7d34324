//! The integration tests of this crate, one module per topic, linked into one test
//! binary (one link instead of one per file).

mod common;
mod load;
mod never_panics;
mod positions;
mod reference;
mod rejections;
