//! The integration tests of this crate, one module per topic, linked into one test
//! binary (one link instead of one per file).

mod build;
mod builders;
mod config;
mod connections;
mod corpus;
mod deploy;
mod deploy_builders;
mod docker_harness;
mod emulate_cmd;
mod emulation;
mod faults;
mod output;
mod properties;
mod reference_projects;
mod resolve;
mod secrets;
mod support;
mod targets;
mod template;
mod up;
