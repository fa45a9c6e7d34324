//! Networks: the top-level `networks` (and their `ipam`) and a service's `networks`.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::{Context, boolean, object, string_map};
use crate::error::Error;
use crate::model::{Ipam, IpamConfig, Network, ServiceNetwork};
use crate::values::{scalar, string, string_list};

pub(super) fn network(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Network, Error> {
    let empty = Map::new();
    let map = object(value, &empty)
        .map_err(|()| ctx.validation_error(format!("network {name} must be a mapping")))?;
    let mut net = Network::default();
    for (key, value) in map {
        let bad = |m: String| ctx.validation_error(format!("network {name}: {m}"));
        match key.as_str() {
            "attachable" | "external" => {
                return Err(ctx.validation_error(format!("network.{key} is not allowed")));
            }
            "driver" => {
                let driver = string(value).map_err(|e| bad(format!("driver {e}")))?;
                if driver != "bridge" && driver != "default" {
                    return Err(ctx.validation_error(format!(
                        "Only \"bridge\" and \"default\" are supported for network.driver, got \"{driver}\""
                    )));
                }
                net.driver = Some(driver);
            }
            "driver_opts" => net.driver_opts = string_map(value).map_err(bad)?,
            "labels" => net.labels = string_map(value).map_err(bad)?,
            "internal" => net.internal = Some(boolean(value).map_err(bad)?),
            "enable_ipv4" => {
                return Err(ctx.validation_error("enable_ipv4 is not supported"));
            }
            "enable_ipv6" => {
                if boolean(value).map_err(bad)? {
                    return Err(ctx.validation_error("enable_ipv6 is not supported"));
                }
                net.enable_ipv6 = Some(false);
            }
            "ipam" => net.ipam = ipam(name, value, ctx)?,
            "name" => {}
            k if k.starts_with("x-") => {}
            other => {
                return Err(
                    ctx.validation_error(format!("network {name}: unknown key \"{other}\""))
                );
            }
        }
    }
    Ok(net)
}

fn ipam(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Ipam, Error> {
    let empty = Map::new();
    let bad = |m: String| ctx.validation_error(format!("network {name}: ipam {m}"));
    let map = object(value, &empty).map_err(|()| bad("must be a mapping".to_string()))?;
    let mut out = Ipam::default();
    for (key, value) in map {
        match key.as_str() {
            "driver" => out.driver = scalar(value).map_err(bad)?,
            "options" => out.options = string_map(value).map_err(bad)?,
            "config" => {
                let Value::Array(pools) = value else {
                    return Err(bad("config must be a list".to_string()));
                };
                for pool in pools {
                    let pool = object(pool, &empty)
                        .map_err(|()| bad("config entries must be mappings".to_string()))?;
                    let mut cfg = IpamConfig::default();
                    for (k, v) in pool {
                        match k.as_str() {
                            "subnet" => cfg.subnet = scalar(v).map_err(bad)?,
                            "ip_range" => cfg.ip_range = scalar(v).map_err(bad)?,
                            "gateway" => cfg.gateway = scalar(v).map_err(bad)?,
                            "aux_addresses" => {
                                return Err(ctx.validation_error(
                                    "network.ipam.config.aux_addresses is not supported",
                                ));
                            }
                            other => return Err(bad(format!("unknown key \"{other}\""))),
                        }
                    }
                    out.config.push(cfg);
                }
            }
            k if k.starts_with("x-") => {}
            other => return Err(bad(format!("unknown key \"{other}\""))),
        }
    }
    Ok(out)
}

pub(super) fn service_networks(
    value: &Value,
) -> Result<IndexMap<String, Option<ServiceNetwork>>, String> {
    let mut out = IndexMap::new();
    match value {
        Value::Array(items) => {
            for item in items {
                out.insert(string(item)?, None);
            }
        }
        Value::Object(map) => {
            for (name, settings) in map {
                let settings = match settings {
                    Value::Null => None,
                    Value::Object(s) => Some(service_network(s)?),
                    _ => return Err(format!("service.networks.{name} must be a mapping")),
                };
                out.insert(name.clone(), settings);
            }
        }
        _ => return Err("service.networks must be a list or a mapping".to_string()),
    }
    Ok(out)
}

fn service_network(map: &Map<String, Value>) -> Result<ServiceNetwork, String> {
    let mut net = ServiceNetwork::default();
    for (key, value) in map {
        match key.as_str() {
            "aliases" => net.aliases = string_list(value)?,
            "ipv4_address" => net.ipv4_address = scalar(value)?,
            "ipv6_address" => net.ipv6_address = scalar(value)?,
            "link_local_ips" => {
                return Err("service.network.link_local_ips is not supported".to_string());
            }
            "mac_address" | "driver_opts" | "gw_priority" | "priority" | "interface_name" => {
                net.other.insert(key.clone(), value.clone());
            }
            k if k.starts_with("x-") => {}
            other => return Err(format!("unknown key \"networks.{other}\"")),
        }
    }
    Ok(net)
}
