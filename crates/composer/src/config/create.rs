//! Service → create body: the Docker container-create request of a target [`Service`].

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointIpamConfig, EndpointSettings,
    HostConfig, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use super::INIT_ONLY_ENV;
use crate::error::{Error, Result};
use crate::model::{NetworkEndpoint, Service, ServiceConfig};

/// The container-create body for `svc`. `container_ids` resolves `service:X` network modes.
pub(crate) fn create_body(
    svc: &Service,
    device_name: &str,
    container_ids: &HashMap<String, String>,
) -> Result<ContainerCreateBody> {
    let c = &svc.config;
    let env = environment(svc, device_name)?;
    let (binds, anonymous): (Vec<String>, Vec<String>) =
        c.volumes.iter().cloned().partition(|v| v.contains(':'));
    let network_mode = network_mode(svc, container_ids)?;
    let endpoints = c
        .networks
        .get(&c.network_mode)
        .map(|ep| HashMap::from([(c.network_mode.clone(), endpoint_settings(ep))]));
    Ok(ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: Some(c.command.clone()),
        entrypoint: Some(c.entrypoint.clone()),
        env: Some(env),
        labels: Some(c.labels.clone().into_iter().collect()),
        exposed_ports: Some(c.ports.iter().map(port_key).collect()),
        volumes: Some(anonymous),
        working_dir: Some(c.working_dir.clone()),
        user: Some(c.user.clone()),
        tty: Some(c.tty),
        stop_signal: Some(c.stop_signal.clone()),
        stop_timeout: Some(c.stop_grace_period),
        hostname: (!c.hostname.is_empty()).then(|| c.hostname.clone()),
        host_config: Some(host_config(c, binds, network_mode)),
        networking_config: endpoints.map(|e| NetworkingConfig {
            endpoints_config: Some(e),
        }),
        ..ContainerCreateBody::default()
    })
}

/// The engine's `HostConfig` of `c`, with its host binds and resolved network mode.
fn host_config(c: &ServiceConfig, binds: Vec<String>, network_mode: String) -> HostConfig {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    HostConfig {
        binds: Some(binds),
        port_bindings: Some(port_bindings(c)),
        tmpfs: Some(c.tmpfs.iter().map(|t| (t.clone(), String::new())).collect()),
        devices: Some(c.devices.iter().map(|d| device_mapping(d)).collect()),
        restart_policy: Some(restart_policy(&c.restart)),
        network_mode: Some(network_mode),
        privileged: Some(c.privileged),
        readonly_rootfs: Some(c.read_only),
        init: c.init,
        cap_add: non_empty(&c.cap_add),
        cap_drop: non_empty(&c.cap_drop),
        dns: non_empty(&c.dns),
        dns_search: non_empty(&c.dns_search),
        extra_hosts: non_empty(&c.extra_hosts),
        security_opt: non_empty(&c.security_opt),
        group_add: non_empty(&c.group_add),
        sysctls: (!c.sysctls.is_empty()).then(|| c.sysctls.clone().into_iter().collect()),
        memory: Some(c.mem_limit),
        memory_reservation: Some(c.mem_reservation),
        cpu_shares: Some(c.cpu_shares),
        device_requests: c.gpu.then(gpu_request),
        ..HostConfig::default()
    }
}

/// `K=V` lines of the service's environment and the variables only set at create.
fn environment(svc: &Service, device_name: &str) -> Result<Vec<String>> {
    let mut env: Vec<String> = svc
        .config
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if device_name.contains('\n') {
        return Err(Error::ServiceConfig {
            service: svc.name.clone(),
            field: "device name".to_owned(),
            message: "must not contain a newline".to_owned(),
        });
    }
    for k in INIT_ONLY_ENV {
        env.push(format!("{k}={device_name}"));
    }
    Ok(env)
}

/// `<port>/<protocol>`, the engine's key of a port.
fn port_key(p: &crate::model::PortMapping) -> String {
    format!("{}/{}", p.container_port, p.protocol)
}

fn port_bindings(c: &ServiceConfig) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.ports {
        bindings
            .entry(port_key(p))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.clone()),
            });
    }
    bindings
}

/// The network mode with `service:X` turned into `container:<id of X>`.
fn network_mode(svc: &Service, container_ids: &HashMap<String, String>) -> Result<String> {
    let mode = &svc.config.network_mode;
    let Some(dep) = mode.strip_prefix("service:") else {
        return Ok(mode.clone());
    };
    match container_ids.get(dep) {
        Some(id) => Ok(format!("container:{id}")),
        None => Err(Error::ServiceConfig {
            service: svc.name.clone(),
            field: "network_mode".to_owned(),
            message: format!("service {dep} has no container"),
        }),
    }
}

/// A device `host:container:perms`.
fn device_mapping(d: &str) -> DeviceMapping {
    let mut p = d.splitn(3, ':');
    DeviceMapping {
        path_on_host: p.next().map(str::to_owned),
        path_in_container: p.next().map(str::to_owned),
        cgroup_permissions: p.next().map(str::to_owned),
    }
}

fn restart_policy(restart: &str) -> RestartPolicy {
    let name = match restart {
        "no" => RestartPolicyNameEnum::NO,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        _ => RestartPolicyNameEnum::ALWAYS,
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: Some(0),
    }
}

/// A request for one GPU (`io.balena.features.gpu`).
fn gpu_request() -> Vec<DeviceRequest> {
    vec![DeviceRequest {
        driver: Some(String::new()),
        count: Some(1),
        device_ids: Some(Vec::new()),
        capabilities: Some(vec![vec!["gpu".to_owned()]]),
        options: Some(HashMap::new()),
    }]
}

/// The engine endpoint settings of a network endpoint.
pub(crate) fn endpoint_settings(ep: &NetworkEndpoint) -> EndpointSettings {
    let ipam =
        (ep.ipv4_address.is_some() || ep.ipv6_address.is_some()).then(|| EndpointIpamConfig {
            ipv4_address: ep.ipv4_address.clone(),
            ipv6_address: ep.ipv6_address.clone(),
            link_local_ips: None,
        });
    EndpointSettings {
        aliases: Some(ep.aliases.clone()),
        ipam_config: ipam,
        ..EndpointSettings::default()
    }
}
