//! `network_mode` and `networks` (spec §6.2).

use serde_json::{Map, Value};

use super::{Draft, Source};
use crate::config::values::{scalar, string_list};
use crate::model::NetworkEndpoint;

/// Sets the network mode and the endpoints on the app's networks; `service:X` adds a
/// dependency on X, `container:…` is ignored with a warning.
pub(super) fn networking(s: &Source<'_>, d: &mut Draft) -> Result<(), String> {
    let mut networks = compose_networks(s.get("networks"))?;
    d.config.network_mode = network_mode(s, d);
    if d.config.network_mode.is_empty() {
        let main = networks.first().map_or("default", |(n, _)| n.as_str());
        d.config.network_mode = s.app.network_name(main);
    }
    let app_prefix = format!("{}_", s.app.app_uuid);
    if d.config.network_mode.starts_with(&app_prefix) {
        if networks.is_empty() {
            networks.push(("default".to_owned(), NetworkEndpoint::default()));
        }
        for (net, mut ep) in networks {
            ep.aliases.insert(0, s.name.to_owned());
            ep.aliases.sort();
            ep.aliases.dedup();
            d.config.networks.insert(s.app.network_name(&net), ep);
        }
    }
    Ok(())
}

/// The compose `networks`: a list of names or a map of name → endpoint.
fn compose_networks(v: Option<&Value>) -> Result<Vec<(String, NetworkEndpoint)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| Ok((scalar(i)?, NetworkEndpoint::default())))
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(net, v)| Ok((net.clone(), endpoint(v)?)))
            .collect(),
        Some(other) => Err(format!("expected a list or a map, got {other}")),
    }
}

/// One network's `aliases`, `ipv4_address` and `ipv6_address`.
fn endpoint(v: &Value) -> Result<NetworkEndpoint, String> {
    let Value::Object(o) = v else {
        return Ok(NetworkEndpoint::default());
    };
    let text =
        |o: &Map<String, Value>, key: &str| o.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(NetworkEndpoint {
        aliases: string_list(o.get("aliases"))?,
        ipv4_address: text(o, "ipv4_address"),
        ipv6_address: text(o, "ipv6_address"),
    })
}

/// The compose `network_mode` as the engine names it; empty when unset or ignored.
fn network_mode(s: &Source<'_>, d: &mut Draft) -> String {
    match s.text("network_mode") {
        Some(m @ ("host" | "bridge" | "none")) => m.to_owned(),
        Some(m) if m.starts_with("service:") => {
            d.depends_on
                .push(m.trim_start_matches("service:").to_owned());
            m.to_owned()
        }
        Some(m) if m.starts_with("container:") => {
            d.warnings
                .push(s.warning(&format!("ignoring network_mode {m}")));
            String::new()
        }
        Some(m) => s.app.network_name(m),
        None => String::new(),
    }
}
