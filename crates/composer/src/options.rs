//! What the composer needs to know about the device and where it keeps its files.

use std::path::PathBuf;
use std::time::Duration;

use platform::Arch;

/// The supervisor version whose behaviour this composer implements; contracts requiring
/// `sw.supervisor` are checked against it unless [`DeviceFacts::supervisor_version`] says
/// otherwise.
pub const COMPATIBLE_SUPERVISOR_VERSION: &str = "19.0.5";

/// Facts about the device: used for contracts and the default environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The device uuid (`BALENA_DEVICE_UUID`, registry user `d_<uuid>`).
    pub uuid: String,
    /// The device name (`BALENA_DEVICE_NAME_AT_INIT`).
    pub name: String,
    /// The device type slug (`hw.device-type`).
    pub device_type: String,
    /// The architecture (`arch.sw`, `BALENA_DEVICE_ARCH`); `None` when it is not one
    /// balena-compose knows (then `arch.sw` requirements are not met).
    pub arch: Option<Arch>,
    /// The host OS version, e.g. `2.113.4` (`sw.os`).
    pub os_version: Option<String>,
    /// The supervisor version the device claims (`sw.supervisor`).
    pub supervisor_version: Option<String>,
    /// The L4T version, on Jetson devices (`sw.l4t`).
    pub l4t_version: Option<String>,
}

impl Default for DeviceFacts {
    fn default() -> Self {
        Self {
            uuid: String::new(),
            name: String::new(),
            device_type: String::new(),
            arch: None,
            os_version: None,
            supervisor_version: Some(COMPATIBLE_SUPERVISOR_VERSION.to_owned()),
            l4t_version: None,
        }
    }
}

/// Delta settings (v3, engine-side deltas; used only on balenaEngine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaOptions {
    /// The delta server, e.g. `https://delta.balena-cloud.com`.
    pub endpoint: String,
    /// The API that issues registry tokens, e.g. `https://api.balena-cloud.com`.
    pub api_endpoint: String,
}

/// Options of a [`crate::Composer`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Device facts.
    pub device: DeviceFacts,
    /// The device API key: registry password and `BALENA_API_KEY` for the `balena-api` feature.
    pub api_key: Option<String>,
    /// The API endpoint (`BALENA_API_URL` for the `balena-api` feature).
    pub api_endpoint: Option<String>,
    /// The host directory holding every service's lock directory
    /// (`<lock_root>/<appId>/<service>/updates.lock`).
    pub lock_root: PathBuf,
    /// The uid that marks a lockfile as the composer's own (65534, `nobody`).
    pub lock_uid: u32,
    /// Where the composer records the images it pulled (to know which ones it may remove) and
    /// holds the engine's [`crate::lock::ApplyLock`]: one state directory per engine.
    pub state_dir: PathBuf,
    /// The engine socket on the host, bind-mounted by the `balena-socket` feature.
    pub engine_socket: String,
    /// Deltas; `None` = regular pulls only.
    pub delta: Option<DeltaOptions>,
    /// Attempts per image fetch (at least 1).
    pub fetch_attempts: u32,
    /// The first retry delay; it doubles on every retry.
    pub fetch_backoff: Duration,
    /// Upper bound on planner iterations per update.
    pub max_iterations: usize,
    /// Pause after an iteration whose steps were all `noop`.
    pub noop_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            device: DeviceFacts::default(),
            api_key: None,
            api_endpoint: None,
            lock_root: PathBuf::from("/tmp/balena-supervisor/services"),
            lock_uid: 65534,
            state_dir: PathBuf::from("/var/lib/balena-compose"),
            engine_socket: "/var/run/balena-engine.sock".to_owned(),
            delta: None,
            fetch_attempts: 4,
            fetch_backoff: Duration::from_millis(500),
            max_iterations: 200,
            noop_delay: Duration::from_millis(200),
        }
    }
}
