//! Reading an app's state from the engine's labels, and the step executors.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerUpdateBody, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveImageOptions, RenameContainerOptions, StopContainerOptions,
};
use tokio_util::sync::CancellationToken;

use crate::config::{self, normalise_labels};
use crate::error::{Error, Result, engine, is_not_found, status_code};
use crate::model::{AppState, Network, NetworkConfig, Service, Volume, VolumeConfig, labels};

/// Which app: its numeric id, its uuid, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppRef {
    /// The numeric app id.
    pub id: Option<u64>,
    /// The app uuid.
    pub uuid: Option<String>,
}

fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![labels::SUPERVISED.to_owned(), format!("{key}={value}")],
    )])
}

/// Reads the app's containers, networks and volumes.
pub(crate) async fn read_app(docker: &Docker, app: &AppRef) -> Result<AppState> {
    let filters = match (&app.id, &app.uuid) {
        (Some(id), _) => label_filter(labels::APP_ID, &id.to_string()),
        (None, Some(uuid)) => label_filter(labels::APP_UUID, uuid),
        (None, None) => return Ok(AppState::default()),
    };
    let summaries = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..ListContainersOptions::default()
        }))
        .await
        .map_err(engine("listing the app's containers"))?;
    let services_by_id: HashMap<String, String> = summaries
        .iter()
        .filter_map(|c| {
            let name = c.labels.as_ref()?.get(labels::SERVICE_NAME)?.clone();
            Some((c.id.clone()?, name))
        })
        .collect();
    let mut state = AppState {
        app_id: app.id.unwrap_or(0),
        app_uuid: app.uuid.clone().unwrap_or_default(),
        ..AppState::default()
    };
    for summary in &summaries {
        let Some(id) = &summary.id else { continue };
        let inspect = match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => i,
            // Removed between list and inspect.
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(engine(format!("inspecting container {id}"))(e)),
        };
        let labels_ = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
        if state.app_id == 0
            && let Some(app_id) = labels_
                .and_then(|l| l.get(labels::APP_ID))
                .and_then(|v| v.parse().ok())
        {
            state.app_id = app_id;
        }
        if state.app_uuid.is_empty()
            && let Some(uuid) = labels_.and_then(|l| l.get(labels::APP_UUID))
        {
            state.app_uuid.clone_from(uuid);
        }
        state
            .services
            .push(config::service_from_container(&inspect, &services_by_id)?);
    }
    let newest = state
        .services
        .iter()
        .max_by(|a, b| a.created_at.cmp(&b.created_at));
    state.commit = newest.map(|s| s.commit.clone()).filter(|c| !c.is_empty());
    state.networks = read_networks(docker, &state).await?;
    state.volumes = read_volumes(docker, &state).await?;
    Ok(state)
}

async fn read_networks(docker: &Docker, app: &AppState) -> Result<Vec<Network>> {
    let list = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![labels::SUPERVISED.to_owned()],
            )])),
        }))
        .await
        .map_err(engine("listing networks"))?;
    let mut out = Vec::new();
    for n in list {
        let docker_name = n.name.clone().unwrap_or_default();
        let raw_labels: BTreeMap<String, String> =
            n.labels.clone().unwrap_or_default().into_iter().collect();
        let by_id = app.app_id != 0
            && raw_labels
                .get(labels::APP_ID)
                .is_some_and(|v| *v == app.app_id.to_string());
        let prefix = format!("{}_", app.app_uuid);
        let by_uuid = !app.app_uuid.is_empty() && docker_name.starts_with(&prefix);
        if !(by_id || by_uuid) {
            continue;
        }
        let Some((_, name)) = docker_name.split_once('_') else {
            continue;
        };
        let mut net_labels = normalise_labels(raw_labels);
        net_labels.remove(labels::SUPERVISED);
        let ipam = n.ipam.clone().unwrap_or_default();
        let mut ipam_config: Vec<(String, String, String)> = ipam
            .config
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                (
                    c.subnet.unwrap_or_default(),
                    c.gateway.unwrap_or_default(),
                    c.ip_range.unwrap_or_default(),
                )
            })
            .collect();
        ipam_config.sort();
        out.push(Network {
            name: name.to_owned(),
            docker_name: docker_name.clone(),
            id: n.id.clone(),
            config: NetworkConfig {
                driver: n.driver.clone().unwrap_or_default(),
                ipam_driver: ipam.driver.unwrap_or_else(|| "default".to_owned()),
                ipam_config,
                options: n.options.clone().unwrap_or_default().into_iter().collect(),
                enable_ipv6: n.enable_ipv6.unwrap_or(false),
                internal: n.internal.unwrap_or(false),
                config_only: n.config_only.unwrap_or(false),
                labels: net_labels,
            },
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn read_volumes(docker: &Docker, app: &AppState) -> Result<Vec<Volume>> {
    let list = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![labels::SUPERVISED.to_owned()],
            )])),
        }))
        .await
        .map_err(engine("listing volumes"))?;
    let prefix = format!("{}_", app.app_id);
    let mut out = Vec::new();
    for v in list.volumes.unwrap_or_default() {
        let by_id = app.app_id != 0 && v.name.starts_with(&prefix);
        let by_uuid = !app.app_uuid.is_empty()
            && v.labels
                .get(labels::APP_UUID)
                .is_some_and(|u| *u == app.app_uuid);
        let Some((id, name)) = v.name.split_once('_') else {
            continue;
        };
        if !(by_id || by_uuid) || id.parse::<u64>().is_err() {
            continue;
        }
        let mut vol_labels = normalise_labels(v.labels.clone().into_iter().collect());
        for k in [labels::SUPERVISED, labels::APP_UUID] {
            vol_labels.remove(k);
        }
        out.push(Volume {
            name: name.to_owned(),
            docker_name: v.name.clone(),
            config: VolumeConfig {
                driver: v.driver.clone(),
                driver_opts: v.options.clone().into_iter().collect(),
                labels: vol_labels,
            },
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn container_id(s: &Service) -> Result<&str> {
    s.container_id.as_deref().ok_or_else(|| Error::Container {
        container: s.container_name(),
        message: "no container id".to_owned(),
    })
}

/// Stops a container (the engine applies the grace period); 304 and 404 are fine.
pub(crate) async fn stop(docker: &Docker, s: &Service) -> Result<()> {
    let id = container_id(s)?;
    let t = i32::try_from(s.config.stop_grace_period).unwrap_or(10);
    match docker
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: Some(t),
                signal: None,
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if matches!(status_code(&e), Some(304 | 404)) => Ok(()),
        Err(e) => Err(engine(format!("stopping {}", s.container_name()))(e)),
    }
}

/// Removes a container and its anonymous volumes; 404 is fine.
pub(crate) async fn remove(docker: &Docker, s: &Service, force: bool) -> Result<()> {
    let id = container_id(s)?;
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                v: true,
                force,
                link: false,
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine(format!("removing {}", s.container_name()))(e)),
    }
}

/// Stops and removes.
pub(crate) async fn kill(docker: &Docker, s: &Service) -> Result<()> {
    stop(docker, s).await?;
    remove(docker, s, false).await
}

/// Creates the target's container (unless `existing`), connects its extra networks and starts
/// it unless it should not run.
pub(crate) async fn start(
    docker: &Docker,
    target: &Service,
    existing: Option<&str>,
    lock_dir: &std::path::Path,
    device: &crate::options::DeviceFacts,
    container_ids: &HashMap<String, String>,
) -> Result<()> {
    let id = match existing {
        Some(id) => id.to_owned(),
        None => {
            std::fs::create_dir_all(lock_dir).map_err(|cause| Error::LockIo {
                path: lock_dir.to_owned(),
                cause,
            })?;
            let body = config::create_body(target, &device.name, container_ids)?;
            let name = target.container_name();
            let created = docker
                .create_container(
                    Some(bollard::query_parameters::CreateContainerOptions {
                        name: Some(name.clone()),
                        ..Default::default()
                    }),
                    body,
                )
                .await
                .map_err(engine(format!("creating container {name}")))?;
            for (net, ep) in &target.config.networks {
                if *net == target.config.network_mode {
                    continue;
                }
                docker
                    .connect_network(
                        net,
                        NetworkConnectRequest {
                            container: created.id.clone(),
                            endpoint_config: Some(config::endpoint_settings(ep)),
                        },
                    )
                    .await
                    .map_err(engine(format!("connecting {name} to network {net}")))?;
            }
            created.id
        }
    };
    if !target.config.running {
        return Ok(());
    }
    match docker.start_container(&id, None).await {
        Ok(()) => Ok(()),
        Err(e) if status_code(&e) == Some(304) => Ok(()),
        Err(e) if e.to_string().contains("exec format error") => Err(Error::Container {
            container: target.container_name(),
            message: format!(
                "Application architecture incompatible with {}: exec format error",
                device.device_type
            ),
        }),
        Err(e) => Err(engine(format!("starting {}", target.container_name()))(e)),
    }
}

/// Renames the container for the target's release; a container that vanished is removed so
/// that it is recreated.
pub(crate) async fn update_metadata(
    docker: &Docker,
    current: &Service,
    target: &Service,
) -> Result<()> {
    let id = container_id(current)?;
    match docker
        .rename_container(
            id,
            RenameContainerOptions {
                name: target.container_name(),
            },
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => remove(docker, current, true).await,
        Err(e) => Err(engine(format!(
            "renaming {} to {}",
            current.container_name(),
            target.container_name()
        ))(e)),
    }
}

/// Hand-over: the old container loses its restart policy and is renamed `old_…`, the new one
/// starts, and the old one is killed once the new one writes `handover-complete` (or the
/// legacy `resin-kill-me`) into its lock dir, or when the timeout passes or `cancel` fires.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handover(
    docker: &Docker,
    current: &Service,
    target: &Service,
    lock_dir: &std::path::Path,
    device: &crate::options::DeviceFacts,
    container_ids: &HashMap<String, String>,
    cancel: &CancellationToken,
) -> Result<()> {
    let id = container_id(current)?;
    docker
        .update_container(
            id,
            ContainerUpdateBody {
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..ContainerUpdateBody::default()
            },
        )
        .await
        .map_err(engine(format!(
            "clearing the restart policy of {}",
            current.container_name()
        )))?;
    let old_name = format!("old_{}", current.container_name());
    if !current.container_name().starts_with("old_") {
        docker
            .rename_container(
                id,
                RenameContainerOptions {
                    name: old_name.clone(),
                },
            )
            .await
            .map_err(engine(format!(
                "renaming {} to {old_name}",
                current.container_name()
            )))?;
    }
    start(docker, target, None, lock_dir, device, container_ids).await?;
    let deadline = tokio::time::Instant::now() + target.handover_timeout();
    let signals = [
        lock_dir.join("handover-complete"),
        lock_dir.join("resin-kill-me"),
    ];
    loop {
        if let Some(found) = signals.iter().find(|p| p.exists()) {
            let _ = std::fs::remove_file(found);
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        // An interrupt ends the wait as the timeout does: the step finishes (the old container
        // goes), so an interrupted update leaves each service on one release.
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    kill(docker, current).await
}

/// Fails with [`Error::ForeignResource`] when a network named exactly `name` exists without
/// the composer's label. (The engine's name filter matches substrings, hence the exact check.)
pub(crate) async fn refuse_foreign_network(docker: &Docker, name: &str) -> Result<()> {
    let list = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([("name".to_owned(), vec![name.to_owned()])])),
        }))
        .await
        .map_err(engine(format!("looking for network {name}")))?;
    let foreign = list.iter().any(|n| {
        n.name.as_deref() == Some(name)
            && !n
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(labels::SUPERVISED))
    });
    if foreign {
        return Err(Error::ForeignResource {
            kind: "network",
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Fails with [`Error::ForeignResource`] when a volume named `name` exists without the
/// composer's label.
pub(crate) async fn refuse_foreign_volume(docker: &Docker, name: &str) -> Result<()> {
    match docker.inspect_volume(name).await {
        Ok(v) if !v.labels.contains_key(labels::SUPERVISED) => Err(Error::ForeignResource {
            kind: "volume",
            name: name.to_owned(),
        }),
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine(format!("inspecting volume {name}"))(e)),
    }
}

/// Creates a network of the app.
pub(crate) async fn create_network(docker: &Docker, n: &Network) -> Result<()> {
    let mut net_labels: HashMap<String, String> = n.config.labels.clone().into_iter().collect();
    net_labels.insert(labels::SUPERVISED.to_owned(), "true".to_owned());
    let ipam = Ipam {
        driver: Some(n.config.ipam_driver.clone()),
        config: Some(
            n.config
                .ipam_config
                .iter()
                .map(|(subnet, gateway, range)| IpamConfig {
                    subnet: Some(subnet.clone()).filter(|s| !s.is_empty()),
                    gateway: Some(gateway.clone()).filter(|s| !s.is_empty()),
                    ip_range: Some(range.clone()).filter(|s| !s.is_empty()),
                    auxiliary_addresses: None,
                })
                .collect(),
        ),
        options: None,
    };
    docker
        .create_network(NetworkCreateRequest {
            name: n.docker_name.clone(),
            driver: Some(n.config.driver.clone()),
            internal: Some(n.config.internal),
            enable_ipv6: Some(n.config.enable_ipv6),
            config_only: Some(n.config.config_only),
            options: Some(n.config.options.clone().into_iter().collect()),
            labels: Some(net_labels),
            ipam: Some(ipam),
            ..NetworkCreateRequest::default()
        })
        .await
        .map_err(engine(format!("creating network {}", n.docker_name)))?;
    Ok(())
}

/// Removes a network (by id: names may be duplicated).
pub(crate) async fn remove_network(docker: &Docker, n: &Network) -> Result<()> {
    let key = n.id.as_deref().unwrap_or(&n.docker_name);
    match docker.remove_network(key).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine(format!("removing network {}", n.docker_name))(e)),
    }
}

/// Creates a volume of the app.
pub(crate) async fn create_volume(docker: &Docker, v: &Volume, app_uuid: &str) -> Result<()> {
    let mut vol_labels: HashMap<String, String> = v.config.labels.clone().into_iter().collect();
    vol_labels.insert(labels::SUPERVISED.to_owned(), "true".to_owned());
    vol_labels.insert(labels::APP_UUID.to_owned(), app_uuid.to_owned());
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(v.docker_name.clone()),
            driver: Some(v.config.driver.clone()),
            driver_opts: Some(v.config.driver_opts.clone().into_iter().collect()),
            labels: Some(vol_labels),
            ..VolumeCreateRequest::default()
        })
        .await
        .map_err(engine(format!("creating volume {}", v.docker_name)))?;
    Ok(())
}

/// Removes a volume.
pub(crate) async fn remove_volume(docker: &Docker, v: &Volume) -> Result<()> {
    match docker
        .remove_volume(
            &v.docker_name,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine(format!("removing volume {}", v.docker_name))(e)),
    }
}

/// Untags an image the composer pulled; the engine deletes it with its last tag. An image
/// still used elsewhere (409) is left alone.
pub(crate) async fn remove_image(docker: &Docker, image: &str) -> Result<bool> {
    match docker
        .remove_image(image, None::<RemoveImageOptions>, None)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if matches!(status_code(&e), Some(404 | 409)) => Ok(false),
        Err(e) => Err(engine(format!("removing image {image}"))(e)),
    }
}
