//! The subcommands, one module each.
pub mod config;
pub mod build;
pub mod progress;
pub mod project;
pub mod resolve;
pub mod up;
pub mod state;
pub mod emulate;
pub mod template;
