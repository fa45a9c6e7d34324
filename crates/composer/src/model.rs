//! The app state the planner compares: services, networks and volumes, normalised so that a
//! target and what the engine reports can be compared field by field.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Label keys the composer puts on engine objects (spec §1.2).
pub mod labels {
    /// Marks every object the composer manages.
    pub const SUPERVISED: &str = "io.balena.supervised";
    /// The numeric app id.
    pub const APP_ID: &str = "io.balena.app-id";
    /// The app uuid.
    pub const APP_UUID: &str = "io.balena.app-uuid";
    /// The numeric service id.
    pub const SERVICE_ID: &str = "io.balena.service-id";
    /// The service name.
    pub const SERVICE_NAME: &str = "io.balena.service-name";
    /// The image reference a container was created for (ours: the engine only keeps the ID).
    pub const IMAGE_NAME: &str = "io.balena.image-name";
    /// The update strategy of a service.
    pub const UPDATE_STRATEGY: &str = "io.balena.update.strategy";
    /// The hand-over timeout in milliseconds.
    pub const HANDOVER_TIMEOUT: &str = "io.balena.update.handover-timeout";
    /// Marks a service as optional: an unmet contract skips it.
    pub const OPTIONAL: &str = "io.balena.features.optional";
    /// Set on networks whose target has explicit IPAM config.
    pub const PRIVATE_IPAM: &str = "io.balena.private.ipam.config";
}

/// How an app's services are replaced (`io.balena.update.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Fetch every new image, then kill the old containers and start the new ones (default).
    DownloadThenKill,
    /// Kill the old container first, then fetch.
    KillThenDownload,
    /// Kill the old container and delete its image, then fetch in full.
    DeleteThenDownload,
    /// Start the new container next to the old one; kill the old one when it signals or on
    /// timeout.
    HandOver,
}

impl Strategy {
    /// Reads the strategy label; any unknown value (even `handover`) means the default.
    pub fn from_label(value: Option<&str>) -> Self {
        match value {
            Some("kill-then-download") => Self::KillThenDownload,
            Some("delete-then-download") => Self::DeleteThenDownload,
            Some("hand-over") => Self::HandOver,
            _ => Self::DownloadThenKill,
        }
    }
}

/// A service's status as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceStatus {
    /// The image is being fetched (no container yet).
    Downloading,
    /// The image is present, no container yet.
    Downloaded,
    /// A container is being created.
    Installing,
    /// The container exists but never ran.
    Installed,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped by us or exited.
    #[serde(rename = "exited")]
    Exited,
    /// The engine marked the container dead.
    Dead,
    /// Any other engine status (`paused`, `restarting`, `removing`).
    #[serde(untagged)]
    Other(String),
}

/// One service: identity, status and the comparable container configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The service name.
    pub name: String,
    /// The numeric service id.
    pub service_id: u64,
    /// The numeric image id.
    pub image_id: u64,
    /// The numeric release id.
    pub release_id: u64,
    /// The release uuid (commit).
    pub commit: String,
    /// The image reference (`repo:tag` or `repo@digest`).
    pub image_name: String,
    /// The container id (current services only).
    pub container_id: Option<String>,
    /// The status.
    pub status: ServiceStatus,
    /// When the container was created (RFC 3339), for picking the newest duplicate.
    pub created_at: Option<String>,
    /// `depends_on` service names (ordering only).
    pub depends_on: Vec<String>,
    /// The engine's error for an exited container.
    pub exit_error: Option<String>,
    /// The comparable configuration.
    pub config: ServiceConfig,
}

impl Service {
    /// The engine container name `<service>_<imageId>_<releaseId>_<commit>`.
    pub fn container_name(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.name, self.image_id, self.release_id, self.commit
        )
    }

    /// The update strategy from the labels.
    pub fn strategy(&self) -> Strategy {
        Strategy::from_label(
            self.config
                .labels
                .get(labels::UPDATE_STRATEGY)
                .map(String::as_str),
        )
    }

    /// The hand-over timeout from the labels (default 60 s).
    pub fn handover_timeout(&self) -> std::time::Duration {
        let ms = self
            .config
            .labels
            .get(labels::HANDOVER_TIMEOUT)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(60_000);
        std::time::Duration::from_millis(ms)
    }

    /// Whether the container uses the given app network (short name).
    pub fn uses_network(&self, docker_name: &str) -> bool {
        self.config.network_mode == docker_name || self.config.networks.contains_key(docker_name)
    }

    /// Whether the container mounts the given engine volume name.
    pub fn uses_volume(&self, docker_name: &str) -> bool {
        self.config
            .volumes
            .iter()
            .any(|v| v.split(':').next() == Some(docker_name))
    }
}

/// One endpoint of a container on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEndpoint {
    /// DNS aliases on the network.
    pub aliases: Vec<String>,
    /// A fixed IPv4 address.
    pub ipv4_address: Option<String>,
    /// A fixed IPv6 address.
    pub ipv6_address: Option<String>,
}

/// One published or exposed port (ranges are expanded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    /// The container port.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The host IP (empty = all).
    pub host_ip: String,
    /// The host port (empty = none or random).
    pub host_port: String,
}

/// The container configuration the planner compares (spec §2.3, §6.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// The image ID when the image is present, otherwise the reference.
    pub image: String,
    /// `Cmd`.
    pub command: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Env`.
    pub environment: BTreeMap<String, String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// Ports, sorted.
    pub ports: Vec<PortMapping>,
    /// `Binds` and anonymous volume paths, sorted.
    pub volumes: Vec<String>,
    /// Tmpfs mount paths, sorted.
    pub tmpfs: Vec<String>,
    /// Devices `host:container:perms`, sorted.
    pub devices: Vec<String>,
    /// Restart policy name.
    pub restart: String,
    /// Network mode: an engine network name, `host`, `none`, `bridge` or `service:<name>`.
    pub network_mode: String,
    /// Engine network name → endpoint.
    pub networks: BTreeMap<String, NetworkEndpoint>,
    /// Privileged.
    pub privileged: bool,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// `--init`, only when set.
    pub init: Option<bool>,
    /// Added capabilities, sorted.
    pub cap_add: Vec<String>,
    /// Dropped capabilities, sorted.
    pub cap_drop: Vec<String>,
    /// DNS servers (ordered).
    pub dns: Vec<String>,
    /// DNS search domains (ordered).
    pub dns_search: Vec<String>,
    /// Extra `/etc/hosts` lines `host:ip`, sorted.
    pub extra_hosts: Vec<String>,
    /// Security options without `label=…`, sorted.
    pub security_opt: Vec<String>,
    /// Supplementary groups, sorted.
    pub group_add: Vec<String>,
    /// Sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Working directory (no trailing `/`).
    pub working_dir: String,
    /// User.
    pub user: String,
    /// Allocate a TTY.
    pub tty: bool,
    /// Stop signal.
    pub stop_signal: String,
    /// Seconds before a stop turns into a kill.
    pub stop_grace_period: i64,
    /// Memory limit in bytes (0 = none).
    pub mem_limit: i64,
    /// Memory reservation in bytes.
    pub mem_reservation: i64,
    /// CPU shares.
    pub cpu_shares: i64,
    /// Hostname (not compared, see spec §2.3).
    pub hostname: String,
    /// Whether a GPU is requested (`io.balena.features.gpu`).
    pub gpu: bool,
    /// Whether the container should run (not compared).
    pub running: bool,
}

/// Labels the composer sets that must not make two configs differ.
const UNCOMPARED_LABELS: &[&str] = &[labels::IMAGE_NAME];

impl ServiceConfig {
    /// The names of the fields that differ between `self` (current) and `target`; empty when
    /// the configs are equal in the sense of spec §2.3.
    pub fn differences(&self, target: &ServiceConfig) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! cmp {
            ($($f:ident),*) => { $( if self.$f != target.$f { out.push(stringify!($f)); } )* };
        }
        cmp!(
            image,
            command,
            entrypoint,
            environment,
            ports,
            volumes,
            tmpfs,
            devices,
            restart,
            privileged,
            read_only,
            cap_add,
            cap_drop,
            dns,
            dns_search,
            extra_hosts,
            security_opt,
            group_add,
            sysctls,
            working_dir,
            user,
            tty,
            stop_signal,
            stop_grace_period,
            mem_limit,
            mem_reservation,
            cpu_shares,
            gpu,
            network_mode
        );
        let strip = |l: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            l.iter()
                .filter(|(k, _)| !UNCOMPARED_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if strip(&self.labels) != strip(&target.labels) {
            out.push("labels");
        }
        if target.init.is_some() && self.init != target.init {
            out.push("init");
        }
        if !networks_match(&self.networks, &target.networks) {
            out.push("networks");
        }
        out
    }

    /// Whether `self` (current) counts as equal to `target`.
    pub fn is_equal(&self, target: &ServiceConfig) -> bool {
        self.differences(target).is_empty()
    }
}

/// Only the target's networks are checked; its aliases must be a subset of the current ones
/// and fixed addresses must match when the target sets them.
fn networks_match(
    current: &BTreeMap<String, NetworkEndpoint>,
    target: &BTreeMap<String, NetworkEndpoint>,
) -> bool {
    target.iter().all(|(name, t)| {
        current.get(name).is_some_and(|c| {
            let aliases: BTreeSet<&String> = c.aliases.iter().collect();
            t.aliases.iter().all(|a| aliases.contains(a))
                && (t.ipv4_address.is_none() || t.ipv4_address == c.ipv4_address)
                && (t.ipv6_address.is_none() || t.ipv6_address == c.ipv6_address)
        })
    })
}

/// A network of the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The name in the release (`default`, …).
    pub name: String,
    /// The engine name `<appUuid>_<name>`.
    pub docker_name: String,
    /// The engine's network id (current networks only).
    pub id: Option<String>,
    /// The comparable configuration.
    pub config: NetworkConfig,
}

/// A network's comparable configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Driver (`bridge`).
    pub driver: String,
    /// IPAM driver (`default`).
    pub ipam_driver: String,
    /// IPAM pools `(subnet, gateway, ip_range)`.
    pub ipam_config: Vec<(String, String, String)>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// IPv6.
    pub enable_ipv6: bool,
    /// Internal.
    pub internal: bool,
    /// Config-only network.
    pub config_only: bool,
    /// Labels without `io.balena.supervised`.
    pub labels: BTreeMap<String, String>,
}

impl NetworkConfig {
    /// Whether `self` (current) counts as equal to `target`: IPAM pools are compared only when
    /// the target sets them.
    pub fn is_equal(&self, target: &NetworkConfig) -> bool {
        if self.config_only || target.config_only {
            return self.config_only == target.config_only && self.labels == target.labels;
        }
        self.driver == target.driver
            && self.options == target.options
            && self.enable_ipv6 == target.enable_ipv6
            && self.internal == target.internal
            && self.labels == target.labels
            && (target.ipam_config.is_empty()
                || (self.ipam_config == target.ipam_config
                    && self.ipam_driver == target.ipam_driver))
    }
}

/// A volume of the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// The name in the release.
    pub name: String,
    /// The engine name `<appId>_<name>`.
    pub docker_name: String,
    /// The comparable configuration.
    pub config: VolumeConfig,
}

/// A volume's comparable configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeConfig {
    /// Driver (`local`).
    pub driver: String,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels without `io.balena.supervised`, `io.resin.supervised` and `io.balena.app-uuid`.
    pub labels: BTreeMap<String, String>,
}

/// An app's state: the target (normalised) or what the engine holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppState {
    /// The numeric app id.
    pub app_id: u64,
    /// The app uuid.
    pub app_uuid: String,
    /// The release uuid: the target's, or the one of the newest current container.
    pub commit: Option<String>,
    /// The services (current: possibly several containers per name).
    pub services: Vec<Service>,
    /// The networks.
    pub networks: Vec<Network>,
    /// The volumes.
    pub volumes: Vec<Volume>,
}
