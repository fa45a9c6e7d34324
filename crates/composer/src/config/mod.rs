//! The service mapping (spec §6), in three directions, each in its own module:
//!
//! - `from_target`: target → [`Service`](crate::model::Service), the compose keys of a target
//!   release normalised with the image's config; its `KEYS` table lists every key mapped.
//! - `create`: service → the Docker container-create body.
//! - `from_container`: container inspect → service, the read-back side.
//!
//! `values` parses compose values (lists, maps, ports, sizes, durations, commands) for all
//! three. Adding a compose key: an entry in `KEYS` and its function, a field in
//! `create::host_config` (or the body), and one in `from_container`'s `service_config`.

mod create;
mod from_container;
mod from_target;
mod values;

#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::options::Options;

pub(crate) use create::{create_body, endpoint_settings};
pub(crate) use from_container::service_from_container;
pub(crate) use from_target::target_service;
pub use values::normalise_image_name;
pub(crate) use values::normalise_labels;
#[cfg(test)]
use values::{parse_ports, shell_split};

/// Environment variables added only at create and ignored when comparing.
const INIT_ONLY_ENV: &[&str] = &["BALENA_DEVICE_NAME_AT_INIT", "RESIN_DEVICE_NAME_AT_INIT"];

/// What the app contributes to each service's normalisation.
#[derive(Debug, Clone)]
pub(crate) struct AppContext<'a> {
    pub app_id: u64,
    pub app_uuid: &'a str,
    pub app_name: &'a str,
    pub commit: &'a str,
    pub release_id: u64,
    pub options: &'a Options,
}

impl AppContext<'_> {
    /// Engine name of an app network.
    pub fn network_name(&self, name: &str) -> String {
        format!("{}_{name}", self.app_uuid)
    }
    /// Engine name of an app volume.
    pub fn volume_name(&self, name: &str) -> String {
        format!("{}_{name}", self.app_id)
    }
    /// The host directory of a service's locks (inside the lock root by construction).
    pub fn lock_dir(&self, service: &str) -> Result<std::path::PathBuf> {
        crate::lock::service_dir(&self.options.lock_root, self.app_id, service)
    }
}
