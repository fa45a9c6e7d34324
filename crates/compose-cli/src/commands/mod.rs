//! The subcommands, one module each.
mod balena_login;
pub mod build;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod down;
pub mod emulate;
pub mod emulation;
pub mod logs;
pub(crate) mod output;
pub mod progress;
pub mod project;
pub mod ps;
pub mod resolve;
pub mod state;
pub mod target;
pub mod template;
pub mod up;
