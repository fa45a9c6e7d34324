//! What the workspace's integration tests share, so that each idea has one home: the private
//! Docker daemon of `scripts/docker-env` and a throwaway daemon of a test's own, temp
//! projects, tars, JSON-lines output, waiting for something, commands in the background and
//! the machine-wide lock on binfmt_misc, and the check that an error prints each cause once.
//!
//! Test code: a set-up that cannot be done fails the test with a message saying what, hence
//! the `unwrap`/`expect` allowance.
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod background;
mod binfmt;
mod docker;
mod errors;
mod private_daemon;
mod project;
mod tars;

pub use background::{Background, wait_until};
pub use binfmt::binfmt_lock;
pub use docker::{
    DOCKER, REGISTRY, docker, docker_cli, docker_host, docker_ok, no_docker_config, registry,
};
pub use errors::assert_each_cause_printed_once;
pub use private_daemon::{PrivateDaemon, unix_get};
pub use project::{json_lines, write};
pub use tars::{append_file, tar_entries, tar_of, tar_of_dir, tar_with_modes};
