//! The normalised composition: what every later stage reads.
//!
//! Serialising it (JSON or YAML) gives the compose-spec key names in the shapes the reference
//! (`@balena/compose-parser`) returns: short-syntax strings for ports and volumes, a list of
//! names for `depends_on`, string maps for labels and environment.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

/// A normalised composition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Composition {
    /// Services by name, in file order.
    pub services: IndexMap<String, Service>,
    /// Networks by name (the `default` network is added when a service uses it).
    pub networks: IndexMap<String, Network>,
    /// Named volumes.
    pub volumes: IndexMap<String, Volume>,
    /// What was dropped or will not work everywhere, one sentence each naming the file and
    /// service (the reference's warnings); the caller prints them. Not part of the compose
    /// output.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// One service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Service {
    /// How to build the image, when the service is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The image to run (and, with `build`, the name the built image gets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Labels, sorted by name; bind mounts of balena features have become labels here.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Environment, sorted by name: `env_file` values overridden by `environment`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Published ports as `[host_ip:][published:]target[/proto]` (`/tcp` omitted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Names of the services this one starts after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Named volume mounts as `volume:/target[:ro]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// tmpfs mount targets (including `type: tmpfs` volumes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Extra `/etc/hosts` entries as `host:ip`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Devices as `source:target:permissions`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Networks the service joins, with per-network settings.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub networks: IndexMap<String, Option<ServiceNetwork>>,
    /// `network_mode` (`host`, `bridge`, `none`, `service:<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `security_opt`, with the first `:` rewritten to `=`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// `volumes_from` (services only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Every other accepted compose field, as written (after interpolation), including the
    /// service's `x-*` extensions.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// How a service's image is built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Build {
    /// The build context relative to the project directory, `/`-separated (`"."` for the
    /// project directory itself).
    pub context: String,
    /// The Dockerfile, relative to the context (defaults to `Dockerfile`).
    pub dockerfile: String,
    /// Build arguments. An argument without a value takes it from the environment, and is
    /// dropped when the environment does not have it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Labels for the built image.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The multi-stage target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Images to use as cache sources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Extra hosts for the build, as `host:ip`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `/dev/shm` size for the build containers, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    /// Names the built image gets: the service's `image`, when it has one (the user cannot
    /// set `build.tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A service's settings on one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceNetwork {
    /// Extra DNS names on this network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Fixed IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Fixed IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Any other per-network setting (`mac_address`, `driver_opts`, `priority`, …).
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// A network.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Network {
    /// `bridge` or `default`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// IP address management (always present, as compose-go gives it).
    pub ipam: Ipam,
    /// No outside access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// `enable_ipv6: false` (true is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// IP address management of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ipam {
    /// IPAM driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Address pools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamConfig>,
    /// Driver options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One IPAM pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IpamConfig {
    /// Subnet in CIDR form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Range of addresses to allocate from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A named volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// `local` or `default`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
