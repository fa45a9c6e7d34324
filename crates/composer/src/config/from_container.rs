//! Container → service: a container of ours read back into the [`Service`] it runs, the
//! read-back side of the mapping (what [`super::create_body`] wrote, normalised alike).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use bollard::models::{
    ContainerConfig, ContainerInspectResponse, ContainerState, DeviceMapping, HostConfig,
};
use regex::Regex;

use super::INIT_ONLY_ENV;
use super::values::{env_map, normalise_labels, sorted, without_selinux_labels};
use crate::error::{Error, Result};
use crate::model::{NetworkEndpoint, PortMapping, Service, ServiceConfig, ServiceStatus, labels};

static CONTAINER_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r".*_(\d+)_(\d+)(?:_(.*?))?$").ok());

/// What a container's name and labels say it is.
struct Identity {
    name: String,
    service_id: u64,
    image_id: u64,
    release_id: u64,
    commit: String,
}

/// Reads a container of ours back into a [`Service`]. `services_by_id` maps container ids of
/// the app to service names (to turn `container:<id>` back into `service:<name>`).
pub(crate) fn service_from_container(
    c: &ContainerInspectResponse,
    services_by_id: &HashMap<String, String>,
) -> Result<Service> {
    let config = c.config.clone().unwrap_or_default();
    let label_map = normalise_labels(
        config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    );
    let id = identity(c, &label_map)?;
    let state = c.state.clone().unwrap_or_default();
    let status = status(&state);
    let running = state.running.unwrap_or(false);
    let container_id = c.id.clone().unwrap_or_default();
    let image_name = label_map
        .get(labels::IMAGE_NAME)
        .cloned()
        .unwrap_or_default();
    let host = c.host_config.clone().unwrap_or_default();
    let read = Read {
        container: c,
        config: &config,
        host: &host,
        container_id: &container_id,
    };
    let service_config = read.service_config(label_map, services_by_id, running);
    Ok(Service {
        name: id.name,
        service_id: id.service_id,
        image_id: id.image_id,
        release_id: id.release_id,
        commit: id.commit,
        image_name,
        container_id: Some(container_id),
        status,
        created_at: c.created.clone(),
        depends_on: Vec::new(),
        exit_error: state.error.filter(|e| !e.is_empty()),
        config: service_config,
    })
}

/// The service name and id from the labels; image id, release id and commit from the name
/// `<service>_<imageId>_<releaseId>_<commit>`.
fn identity(
    c: &ContainerInspectResponse,
    label_map: &BTreeMap<String, String>,
) -> Result<Identity> {
    let cname = c
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let fail = |message: String| Error::Container {
        container: cname.clone(),
        message,
    };
    let name = label_map
        .get(labels::SERVICE_NAME)
        .cloned()
        .ok_or_else(|| fail(format!("no {} label", labels::SERVICE_NAME)))?;
    let service_id = label_map
        .get(labels::SERVICE_ID)
        .map(|s| s.parse::<u64>())
        .transpose()
        .map_err(|_| fail(format!("label {} is not a number", labels::SERVICE_ID)))?
        .unwrap_or(0);
    let caps = CONTAINER_NAME
        .as_ref()
        .and_then(|r| r.captures(&cname))
        .ok_or_else(|| {
            fail("the name is not <service>_<imageId>_<releaseId>_<commit>".to_owned())
        })?;
    let image_id = caps[1]
        .parse()
        .map_err(|_| fail("image id out of range".to_owned()))?;
    let release_id = caps[2]
        .parse()
        .map_err(|_| fail("release id out of range".to_owned()))?;
    let commit = caps
        .get(3)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(Identity {
        name,
        service_id,
        image_id,
        release_id,
        commit,
    })
}

fn status(state: &ContainerState) -> ServiceStatus {
    if state.running.unwrap_or(false) {
        return ServiceStatus::Running;
    }
    match state.status.as_ref().map(|s| s.to_string()).as_deref() {
        Some("created") => ServiceStatus::Installed,
        Some("dead") => ServiceStatus::Dead,
        Some("exited") => ServiceStatus::Exited,
        Some(other) => ServiceStatus::Other(other.to_owned()),
        None => ServiceStatus::Other("unknown".to_owned()),
    }
}

/// One container's inspect, read back field by field.
struct Read<'a> {
    container: &'a ContainerInspectResponse,
    config: &'a ContainerConfig,
    host: &'a HostConfig,
    container_id: &'a str,
}

impl Read<'_> {
    /// The [`ServiceConfig`] the container runs.
    fn service_config(
        &self,
        label_map: BTreeMap<String, String>,
        services_by_id: &HashMap<String, String>,
        running: bool,
    ) -> ServiceConfig {
        let (config, host) = (self.config, self.host);
        ServiceConfig {
            image: self.container.image.clone().unwrap_or_default(),
            command: list_of(&config.cmd),
            entrypoint: list_of(&config.entrypoint),
            environment: self.environment(),
            labels: label_map,
            ports: self.ports(),
            volumes: self.volumes(),
            tmpfs: sorted(host.tmpfs.clone().unwrap_or_default().into_keys().collect()),
            devices: sorted(list_of(&host.devices).into_iter().map(device).collect()),
            restart: self.restart(),
            network_mode: self.network_mode(services_by_id),
            networks: self.networks(),
            privileged: host.privileged.unwrap_or(false),
            read_only: host.readonly_rootfs.unwrap_or(false),
            init: host.init,
            cap_add: sorted(list_of(&host.cap_add)),
            cap_drop: sorted(list_of(&host.cap_drop)),
            dns: list_of(&host.dns),
            dns_search: list_of(&host.dns_search),
            extra_hosts: sorted(list_of(&host.extra_hosts)),
            security_opt: without_selinux_labels(list_of(&host.security_opt)),
            group_add: sorted(list_of(&host.group_add)),
            sysctls: host
                .sysctls
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            working_dir: config.working_dir.clone().unwrap_or_default(),
            user: config.user.clone().unwrap_or_default(),
            tty: config.tty.unwrap_or(false),
            stop_signal: config
                .stop_signal
                .clone()
                .unwrap_or_else(|| "SIGTERM".to_owned()),
            stop_grace_period: config.stop_timeout.filter(|t| *t != 0).unwrap_or(10),
            mem_limit: host.memory.unwrap_or(0),
            mem_reservation: host.memory_reservation.unwrap_or(0),
            cpu_shares: host.cpu_shares.unwrap_or(0),
            hostname: self.hostname(),
            gpu: self.gpu(),
            running,
        }
    }

    /// The environment without the variables only set at create.
    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = env_map(self.config.env.as_deref().unwrap_or_default());
        env.retain(|k, _| !INIT_ONLY_ENV.contains(&k.as_str()));
        env
    }

    /// Every port binding, one mapping each; an exposed port without binding maps with
    /// neither host ip nor port.
    fn ports(&self) -> Vec<PortMapping> {
        let mut ports = Vec::new();
        for (key, bindings) in self.host.port_bindings.clone().unwrap_or_default() {
            let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let Ok(container_port) = port.parse::<u16>() else {
                continue;
            };
            let mapping = |host_ip: String, host_port: String| PortMapping {
                container_port,
                protocol: protocol.to_owned(),
                host_ip,
                host_port,
            };
            let bindings = bindings.unwrap_or_default();
            if bindings.is_empty() {
                ports.push(mapping(String::new(), String::new()));
            }
            for b in bindings {
                ports.push(mapping(
                    b.host_ip.unwrap_or_default(),
                    b.host_port.unwrap_or_default(),
                ));
            }
        }
        ports.sort();
        ports
    }

    /// Binds and anonymous volumes.
    fn volumes(&self) -> Vec<String> {
        let mut volumes = self.host.binds.clone().unwrap_or_default();
        volumes.extend(self.config.volumes.clone().unwrap_or_default());
        volumes.sort();
        volumes.dedup();
        volumes
    }

    fn restart(&self) -> String {
        self.host
            .restart_policy
            .as_ref()
            .and_then(|r| r.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "always".to_owned())
    }

    /// The network mode, with `container:<id>` of a service of the app as `service:<name>`.
    fn network_mode(&self, services_by_id: &HashMap<String, String>) -> String {
        let mode = self.host.network_mode.clone().unwrap_or_default();
        if let Some(id) = mode.strip_prefix("container:")
            && let Some(svc) = services_by_id.get(id)
        {
            return format!("service:{svc}");
        }
        mode
    }

    /// The endpoints, without the alias the engine adds (the container id's prefix).
    fn networks(&self) -> BTreeMap<String, NetworkEndpoint> {
        let settings = self.container.network_settings.clone();
        let endpoints = settings.and_then(|n| n.networks).unwrap_or_default();
        endpoints
            .into_iter()
            .map(|(net, ep)| {
                let aliases = ep.aliases.unwrap_or_default().into_iter();
                let ipam = ep.ipam_config.unwrap_or_default();
                let endpoint = NetworkEndpoint {
                    aliases: sorted(
                        aliases
                            .filter(|a| !self.container_id.starts_with(a.as_str()))
                            .collect(),
                    ),
                    ipv4_address: ipam.ipv4_address.filter(|a| !a.is_empty()),
                    ipv6_address: ipam.ipv6_address.filter(|a| !a.is_empty()),
                };
                (net, endpoint)
            })
            .collect()
    }

    /// The hostname, empty when it is the engine's default (the container id's prefix).
    fn hostname(&self) -> String {
        let hostname = self.config.hostname.clone().unwrap_or_default();
        if hostname.len() == 12 && self.container_id.starts_with(&hostname) {
            String::new()
        } else {
            hostname
        }
    }

    /// Whether a GPU is requested.
    fn gpu(&self) -> bool {
        self.host.device_requests.as_ref().is_some_and(|r| {
            r.iter().any(|d| {
                d.capabilities
                    .as_ref()
                    .is_some_and(|c| c.iter().flatten().any(|c| c == "gpu"))
            })
        })
    }
}

fn list_of<T: Clone>(v: &Option<Vec<T>>) -> Vec<T> {
    v.clone().unwrap_or_default()
}

/// A device as `host:container:perms`.
fn device(d: DeviceMapping) -> String {
    format!(
        "{}:{}:{}",
        d.path_on_host.unwrap_or_default(),
        d.path_in_container.unwrap_or_default(),
        d.cgroup_permissions.unwrap_or_default()
    )
}
