//! The app's networks and volumes: their target form, from a release's `networks` and
//! `volumes`, and the check that no foreign engine object already holds their names.

use std::collections::{BTreeMap, BTreeSet};

use bollard::Docker;
use serde_json::Value;

use crate::config::{self, AppContext};
use crate::engine;
use crate::error::Result;
use crate::model::{AppState, Network, NetworkConfig, Volume, VolumeConfig, labels};

/// Fails on a network or volume the target needs that exists under its engine name
/// without the composer's label: creating the network would duplicate the name, and the
/// volume would never count as the app's.
pub(crate) async fn refuse_foreign(
    docker: &Docker,
    current: &AppState,
    target: &AppState,
) -> Result<()> {
    let names = |list: &mut dyn Iterator<Item = &str>| -> BTreeSet<String> {
        list.map(str::to_owned).collect()
    };
    let have = names(&mut current.networks.iter().map(|n| n.docker_name.as_str()));
    let want = names(&mut target.networks.iter().map(|n| n.docker_name.as_str()));
    for name in want.difference(&have) {
        engine::refuse_foreign_network(docker, name).await?;
    }
    let have = names(&mut current.volumes.iter().map(|v| v.docker_name.as_str()));
    let want = names(&mut target.volumes.iter().map(|v| v.docker_name.as_str()));
    for name in want.difference(&have) {
        engine::refuse_foreign_volume(docker, name).await?;
    }
    Ok(())
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn target_network(
    ctx: &AppContext<'_>,
    name: &str,
    v: &Value,
    config_only: bool,
) -> Network {
    let ipam = v.get("ipam");
    let mut ipam_config: Vec<(String, String, String)> = ipam
        .and_then(|i| i.get("config"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    let s = |k: &str| {
                        c.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (s("subnet"), s("gateway"), s("ip_range"))
                })
                .collect()
        })
        .unwrap_or_default();
    ipam_config.sort();
    let mut net_labels = config::normalise_labels(string_map(v.get("labels")));
    net_labels.insert(labels::APP_ID.to_owned(), ctx.app_id.to_string());
    if !ipam_config.is_empty() {
        net_labels.insert(labels::PRIVATE_IPAM.to_owned(), "true".to_owned());
    }
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Network {
        name: name.to_owned(),
        docker_name: ctx.network_name(name),
        id: None,
        config: NetworkConfig {
            driver: v
                .get("driver")
                .and_then(Value::as_str)
                .unwrap_or("bridge")
                .to_owned(),
            ipam_driver: ipam
                .and_then(|i| i.get("driver"))
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
            ipam_config,
            options: string_map(v.get("driver_opts")),
            enable_ipv6: flag("enable_ipv6"),
            internal: flag("internal"),
            config_only: config_only || flag("config_only"),
            labels: net_labels,
        },
    }
}

pub(crate) fn target_volume(ctx: &AppContext<'_>, name: &str, v: &Value) -> Volume {
    let mut vol_labels = config::normalise_labels(string_map(v.get("labels")));
    for k in [labels::SUPERVISED, labels::APP_UUID] {
        vol_labels.remove(k);
    }
    Volume {
        name: name.to_owned(),
        docker_name: ctx.volume_name(name),
        config: VolumeConfig {
            driver: v
                .get("driver")
                .and_then(Value::as_str)
                .unwrap_or("local")
                .to_owned(),
            driver_opts: string_map(v.get("driver_opts")),
            labels: vol_labels,
        },
    }
}
