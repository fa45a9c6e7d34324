//! The lock on binfmt_misc, machine-global state.

use std::fs::File;
use std::path::PathBuf;

/// The lock on binfmt_misc (`$BALENA_COMPOSE_DEV_ROOT/binfmt.lock`), which is global to the
/// machine: a build that may go through the aarch64 and armv7hf registrations
/// `scripts/docker-env up` made holds it shared; a test that removes or disables them for a
/// while holds it exclusive, so no such build runs meanwhile. A `flock` of its own open file:
/// it excludes other threads of the same test binary as well as other processes.
pub fn binfmt_lock(exclusive: bool) -> File {
    let root = std::env::var("BALENA_COMPOSE_DEV_ROOT")
        .unwrap_or_else(|_| "/var/tmp/balena-compose-dev".to_owned());
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(root).join("binfmt.lock"))
        .unwrap();
    if exclusive {
        file.lock().unwrap();
    } else {
        file.lock_shared().unwrap();
    }
    file
}
