//! From the merged, interpolated YAML tree to a typed [`Composition`], applying every balena
//! rule (toolkit spec §1.2). Rule violations come back as [`Error::Service`] or
//! [`Error::Validation`] with the reference's wording.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::contract::validate_labels;
use crate::dotenv;
use crate::error::Error;
use crate::file::{FileReader, path_in_project};
use crate::model::{
    Build, Composition, Ipam, IpamConfig, Network, Service, ServiceNetwork, Volume,
};
use crate::values::{key_values, scalar, split_volume_spec, string, string_list};

/// Where the composition came from, and what interpolation and `env_file` see.
pub(crate) struct Context<'a> {
    /// The first compose file (named in errors).
    pub file: &'a Path,
    /// Relative paths (build contexts, env files) are resolved against this directory.
    pub project_dir: &'a Path,
    /// Process environment plus `.env`.
    pub env: &'a HashMap<String, String>,
    /// Active profiles (`*` activates every one).
    pub profiles: &'a [String],
    /// Where `env_file`s are read from.
    pub reader: &'a FileReader,
}

impl Context<'_> {
    /// An error about a service's `field` (dotted, `build.network`; empty: the service
    /// itself), located at that key, as [`Context::key_error`] does.
    fn service_error(&self, service: &str, field: &str, message: impl Into<String>) -> Error {
        let path: Vec<&str> = field.split('.').filter(|p| !p.is_empty()).collect();
        let mut error = self.key_error(service, &path, message.into());
        if let Error::Service { field, .. } = &mut error
            && path.is_empty()
        {
            *field = None;
        }
        error
    }

    /// An unknown key of a service, with where it is in the (first) compose file and the
    /// closest key among `known`: `restrat` is most likely `restart`.
    fn unknown_key<'k>(
        &self,
        service: &str,
        key: &str,
        known: impl Iterator<Item = &'k str>,
    ) -> Error {
        let closest = known
            .map(|k| (strsim::damerau_levenshtein(key, k), k))
            .min()
            .filter(|(distance, _)| *distance <= (key.chars().count() / 3).max(1));
        let mut message = format!("unknown key \"{key}\"");
        if let Some((_, k)) = closest {
            message.push_str(&format!("; did you mean \"{k}\"?"));
        }
        self.key_error(service, &[key], message)
    }

    /// An error about the key at `path` in a service (`["healthcheck", "interval"]`), with
    /// the key's line and column in the (first) compose file when it is there.
    pub(crate) fn key_error(&self, service: &str, path: &[&str], message: String) -> Error {
        let full: Vec<&str> = ["services", service].iter().chain(path).copied().collect();
        // An error path: reading the file again costs nothing that matters. A key the file
        // lacks (a default, a key of another `-f` file) falls back to its closest parent
        // there, down to the service's own key.
        let (line, column) = std::fs::read_to_string(self.file)
            .ok()
            .and_then(|text| {
                (2..=full.len())
                    .rev()
                    .find_map(|n| crate::yaml::key_position(&text, &full[..n]))
            })
            .unwrap_or((0, 0));
        Error::Service {
            file: self.file.to_path_buf(),
            line,
            column,
            service: service.to_string(),
            field: Some(path.join(".")),
            message,
        }
    }

    /// Attaches service and field to a field-level problem (`service.<field> <problem>`).
    fn field<T>(&self, service: &str, field: &str, result: Result<T, String>) -> Result<T, Error> {
        result.map_err(|m| self.service_error(service, field, format!("service.{field} {m}")))
    }

    /// A warning about one service, located as [`Context::service_error`] locates errors.
    fn service_warning(&self, service: &str, message: &str) -> String {
        format!("{}: service \"{service}\": {message}", self.file.display())
    }

    fn validation_error(&self, message: impl Into<String>) -> Error {
        Error::Validation {
            file: self.file.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The longest service name. A service's image is named `<project>_<service>`, and Docker's
/// reference grammar (distribution's `reference.NameTotalLengthMax`) caps a repository name at
/// 255 characters, so a longer service name can never make a valid image name; the
/// supervisor also stores service names as 255-character `ShortString`s.
const MAX_SERVICE_NAME_LEN: usize = 255;

/// Service fields balena refuses.
const SERVICE_DENY: &[&str] = &[
    "blkio_config",
    "configs",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "credential_spec",
    "deploy",
    "develop",
    "external_links",
    "gpus",
    "isolation",
    "links",
    "logging",
    "mem_swappiness",
    "memswap_limit",
    "oom_kill_disable",
    "platform",
    "pull_policy",
    "runtime",
    "scale",
    "secrets",
    "stdin_open",
    "storage_opt",
];

/// Build fields balena refuses.
const BUILD_DENY: &[&str] = &[
    "additional_contexts",
    "cache_to",
    "dockerfile_inline",
    "entitlements",
    "isolation",
    "network",
    "no_cache",
    "platforms",
    "privileged",
    "pull",
    "secrets",
    "ssh",
    "tags",
    "ulimits",
];

/// Service fields that pass through unchanged into `Service::other`.
const SERVICE_PASSTHROUGH: &[&str] = &[
    "annotations",
    "attach",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "device_cgroup_rules",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "group_add",
    "healthcheck",
    "hostname",
    "init",
    "ipc",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "read_only",
    "restart",
    "shm_size",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "uts",
    "working_dir",
];

/// Service fields handled one by one below (or dropped, as the reference does).
const SERVICE_TYPED: &[&str] = &[
    "build",
    "image",
    "labels",
    "label_file",
    "environment",
    "env_file",
    "ports",
    "depends_on",
    "volumes",
    "tmpfs",
    "extra_hosts",
    "devices",
    "networks",
    "network_mode",
    "security_opt",
    "volumes_from",
    "container_name",
    "expose",
    "extends",
];

const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "args",
    "labels",
    "target",
    "cache_from",
    "extra_hosts",
    "shm_size",
];

/// Bind-mount sources that become feature labels.
const BIND_LABELS: &[(&str, &str)] = &[
    ("/var/run/docker.sock", "io.balena.features.balena-socket"),
    (
        "/var/run/balena-engine.sock",
        "io.balena.features.balena-socket",
    ),
    ("/run/dbus", "io.balena.features.dbus"),
    ("/sys", "io.balena.features.sysfs"),
    ("/proc", "io.balena.features.procfs"),
    ("/lib/modules", "io.balena.features.kernel-modules"),
    ("/lib/firmware", "io.balena.features.firmware"),
];

/// All three must be mounted to get the journal-logs label.
const JOURNAL_SOURCES: &[&str] = &["/var/log/journal", "/run/log/journal", "/etc/machine-id"];

/// Normalises a whole (merged) compose document.
pub(crate) fn normalize(root: &Value, ctx: &Context<'_>) -> Result<Composition, Error> {
    let root = match root {
        Value::Object(map) => map,
        Value::Null => return Err(ctx.validation_error("empty compose file")),
        _ => return Err(ctx.validation_error("Top-level object must be a mapping")),
    };
    for key in root.keys() {
        match key.as_str() {
            "version" | "name" | "services" | "networks" | "volumes" => {}
            "secrets" | "configs" => {
                return Err(
                    ctx.validation_error("Top-level secrets and/or configs are not supported")
                );
            }
            k if k.starts_with("x-") => {}
            other => {
                return Err(ctx.validation_error(format!("unknown top-level key \"{other}\"")));
            }
        }
    }

    let mut composition = Composition::default();
    for (name, value) in mapping_or_empty(root.get("networks"), "networks", ctx)? {
        composition
            .networks
            .insert(name.clone(), network(&name, value, ctx)?);
    }
    for (name, value) in mapping_or_empty(root.get("volumes"), "volumes", ctx)? {
        composition
            .volumes
            .insert(name.clone(), volume(&name, value, ctx)?);
    }
    for (name, value) in mapping_or_empty(root.get("services"), "services", ctx)? {
        if !enabled(&name, value, ctx)? {
            // As docker compose: a service of inactive profiles is left out, unchecked.
            continue;
        }
        let service = service(
            &name,
            value,
            ctx,
            &composition.volumes,
            &mut composition.warnings,
        )?;
        if service.uses_new_compose_fields() {
            composition.warnings.push(ctx.service_warning(
                &name,
                "uses compose fields that may not be supported on legacy Supervisor versions",
            ));
        }
        composition.services.insert(name, service);
    }
    cross_check(&mut composition, ctx)?;
    Ok(composition)
}

/// Whether a service is enabled: it has no `profiles`, or one of them is active.
fn enabled(name: &str, value: &Value, ctx: &Context<'_>) -> Result<bool, Error> {
    let Some(profiles) = value.get("profiles") else {
        return Ok(true);
    };
    let profiles = ctx.field(name, "profiles", string_list(profiles))?;
    if let Some(bad) = profiles.iter().find(|p| !valid_profile(p)) {
        return Err(ctx.service_error(
            name,
            "profiles",
            format!("invalid profile name {bad:?}: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"),
        ));
    }
    Ok(profiles.is_empty()
        || ctx
            .profiles
            .iter()
            .any(|active| active == "*" || profiles.contains(active)))
}

/// The compose-spec pattern for profile names.
fn valid_profile(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn mapping_or_empty<'v>(
    value: Option<&'v Value>,
    what: &str,
    ctx: &Context<'_>,
) -> Result<Vec<(String, &'v Value)>, Error> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), v)).collect()),
        Some(_) => Err(ctx.validation_error(format!("{what} must be a mapping"))),
    }
}

/// Checks that need every service: dependencies, networks, and the `default` network.
fn cross_check(composition: &mut Composition, ctx: &Context<'_>) -> Result<(), Error> {
    let mut needs_default = false;
    for (name, service) in &composition.services {
        for dep in &service.depends_on {
            if !composition.services.contains_key(dep) {
                return Err(ctx.service_error(
                    name,
                    "depends_on",
                    format!("depends on undefined service \"{dep}\""),
                ));
            }
        }
        for net in service.networks.keys() {
            if net != "default" && !composition.networks.contains_key(net) {
                return Err(ctx.service_error(
                    name,
                    "networks",
                    format!("refers to undefined network {net}"),
                ));
            }
        }
        if let Some(target) = service
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
            && !composition.services.contains_key(target)
        {
            return Err(ctx.service_error(
                name,
                "network_mode",
                format!("network_mode refers to undefined service \"{target}\""),
            ));
        }
        needs_default |= service.network_mode.is_none()
            && (service.networks.is_empty() || service.networks.contains_key("default"));
    }
    if needs_default && !composition.networks.contains_key("default") {
        composition
            .networks
            .insert("default".to_string(), Network::default());
    }
    Ok(())
}

fn object<'v>(
    value: &'v Value,
    empty: &'v Map<String, Value>,
) -> Result<&'v Map<String, Value>, ()> {
    match value {
        Value::Null => Ok(empty),
        Value::Object(map) => Ok(map),
        _ => Err(()),
    }
}

fn network(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Network, Error> {
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

fn volume(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Volume, Error> {
    let empty = Map::new();
    let map = object(value, &empty)
        .map_err(|()| ctx.validation_error(format!("volume {name} must be a mapping")))?;
    let mut vol = Volume::default();
    for (key, value) in map {
        let bad = |m: String| ctx.validation_error(format!("volume {name}: {m}"));
        match key.as_str() {
            "external" => return Err(ctx.validation_error("volume.external is not allowed")),
            "driver" => {
                let driver = string(value).map_err(|e| bad(format!("driver {e}")))?;
                if driver != "local" && driver != "default" {
                    return Err(ctx.validation_error(format!(
                        "Only \"local\" and \"default\" are supported for volume.driver, got \"{driver}\""
                    )));
                }
                vol.driver = Some(driver);
            }
            "driver_opts" => vol.driver_opts = string_map(value).map_err(bad)?,
            "labels" => vol.labels = string_map(value).map_err(bad)?,
            "name" => {}
            k if k.starts_with("x-") => {}
            other => return Err(bad(format!("unknown key \"{other}\""))),
        }
    }
    Ok(vol)
}

/// A key/value field where a missing value becomes `""`.
fn string_map(value: &Value) -> Result<BTreeMap<String, String>, String> {
    Ok(key_values(value)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("must be a boolean, got {other}")),
    }
}

fn service(
    name: &str,
    value: &Value,
    ctx: &Context<'_>,
    volumes: &IndexMap<String, Volume>,
    warnings: &mut Vec<String>,
) -> Result<Service, Error> {
    let length = name.chars().count();
    if length > MAX_SERVICE_NAME_LEN {
        // Named by its start: the whole name can be hundreds of kilobytes.
        let start: String = name.chars().take(32).collect();
        return Err(ctx.service_error(
            &format!("{start}…"),
            "",
            format!(
                "invalid service name: it is {length} characters long, the limit is {MAX_SERVICE_NAME_LEN}"
            ),
        ));
    }
    let empty = Map::new();
    let map = object(value, &empty)
        .map_err(|()| ctx.service_error(name, "", "a service must be a mapping"))?;
    let err = |field: &str, message: String| ctx.service_error(name, field, message);
    // The compose schema's rule; it also keeps names safe as file names and image names.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || name == "."
        || name == ".."
    {
        return Err(err(
            "",
            "invalid service name: it must match ^[a-zA-Z0-9._-]+$".to_owned(),
        ));
    }
    for key in map.keys() {
        let key = key.as_str();
        if SERVICE_DENY.contains(&key) {
            return Err(err(key, format!("service.{key} is not allowed")));
        }
        if !(SERVICE_TYPED.contains(&key)
            || SERVICE_PASSTHROUGH.contains(&key)
            || key.starts_with("x-"))
        {
            return Err(ctx.unknown_key(
                name,
                key,
                SERVICE_TYPED.iter().chain(SERVICE_PASSTHROUGH).copied(),
            ));
        }
    }
    crate::values::check_passthrough_values(name, map, ctx)?;
    warn_dropped_fields(name, map, ctx, warnings);
    if !map.contains_key("image") && !map.contains_key("build") {
        return Err(err(
            "",
            "has neither an image nor a build context specified".to_string(),
        ));
    }

    let mut svc = Service {
        image: map
            .get("image")
            .map(|v| ctx.field(name, "image", string(v)))
            .transpose()?,
        ..Service::default()
    };
    if let Some(build_value) = map.get("build") {
        svc.build = Some(build(name, build_value, ctx)?);
    }

    // Labels: the feature labels from bind mounts go in first, so the user's labels win.
    let mut user_labels = BTreeMap::new();
    if let Some(files) = map.get("label_file") {
        for (k, v) in read_env_files(name, files, ctx)? {
            user_labels.insert(k, v.unwrap_or_default());
        }
    }
    if let Some(labels) = map.get("labels") {
        user_labels.extend(ctx.field(name, "labels", string_map(labels))?);
    }
    validate_labels(&user_labels).map_err(|m| err("labels", m))?;

    // Environment: env_file values first, then `environment`; a bare name takes its value from
    // the environment, else stays empty.
    let mut environment: IndexMap<String, Option<String>> = IndexMap::new();
    if let Some(files) = map.get("env_file") {
        environment.extend(read_env_files(name, files, ctx)?);
    }
    if let Some(env) = map.get("environment") {
        for (k, v) in ctx.field(name, "environment", key_values(env))? {
            let v = v.or_else(|| ctx.env.get(&k).cloned());
            environment.insert(k, v);
        }
    }
    svc.environment = environment
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();

    if let Some(ports_value) = map.get("ports") {
        svc.ports = ports(ports_value).map_err(|m| err("ports", m))?;
    }
    if let Some(deps) = map.get("depends_on") {
        svc.depends_on = depends_on(name, deps).map_err(|m| err("depends_on", m))?;
    }
    if let Some(tmpfs) = map.get("tmpfs") {
        svc.tmpfs = ctx.field(name, "tmpfs", string_list(tmpfs))?;
    }
    let mut labels = BTreeMap::new();
    if let Some(vols) = map.get("volumes") {
        mounts(name, vols, volumes, &mut svc, &mut labels, ctx, warnings)?;
    }
    labels.extend(user_labels);
    svc.labels = labels;
    if let Some(hosts) = map.get("extra_hosts") {
        svc.extra_hosts = ctx.field(name, "extra_hosts", extra_hosts(hosts))?;
    }
    if let Some(devs) = map.get("devices") {
        svc.devices = devices(devs).map_err(|m| err("devices", m))?;
    }
    if let Some(nets) = map.get("networks") {
        svc.networks = service_networks(nets).map_err(|m| err("networks", m))?;
    }
    if let Some(mode) = map.get("network_mode") {
        let mode = ctx.field(name, "network_mode", string(mode))?;
        if mode.starts_with("container:") {
            return Err(err(
                "network_mode",
                "service.network_mode container:${containerId} is not allowed".to_string(),
            ));
        }
        svc.network_mode = Some(mode);
    }
    if let Some(opts) = map.get("security_opt") {
        svc.security_opt = ctx
            .field(name, "security_opt", string_list(opts))?
            .into_iter()
            .map(|o| security_opt(&o).map_err(|m| err("security_opt", m)))
            .collect::<Result<_, _>>()?;
    }
    if let Some(from) = map.get("volumes_from") {
        svc.volumes_from = ctx.field(name, "volumes_from", string_list(from))?;
        if svc.volumes_from.iter().any(|v| v.starts_with("container:")) {
            return Err(err(
                "volumes_from",
                "service.volumes_from which references a containerId is not allowed".to_string(),
            ));
        }
    }
    for (key, value) in map {
        if SERVICE_PASSTHROUGH.contains(&key.as_str()) || key.starts_with("x-") {
            passthrough(name, key, value, ctx)?;
            match (key.as_str(), value) {
                ("entrypoint", Value::Null) => {}
                // compose reads a string command as its words; so does the engine's API.
                ("command" | "entrypoint", Value::String(text)) => {
                    let words = ctx.field(name, key, crate::values::shell_words(text))?;
                    svc.other.insert(
                        key.clone(),
                        Value::Array(words.into_iter().map(Value::String).collect()),
                    );
                }
                _ => {
                    svc.other.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if let Some(build) = &mut svc.build {
        // Given tags are accepted only when they are what this adds (the service's image),
        // i.e. when the file is this crate's own output; anything else is the reference's
        // refusal.
        let given = std::mem::take(&mut build.tags);
        if given.iter().any(|t| Some(t) != svc.image.as_ref()) {
            return Err(err(
                "build",
                "service.build.tags is not allowed".to_string(),
            ));
        }
        if let Some(image) = &svc.image {
            build.tags.push(image.clone());
        }
    }
    Ok(svc)
}

/// Rules on fields that are otherwise kept as written.
fn passthrough(name: &str, key: &str, value: &Value, ctx: &Context<'_>) -> Result<(), Error> {
    let text = || scalar(value).ok().flatten().unwrap_or_default();
    match key {
        "pid" if text().starts_with("container:") => Err(ctx.service_error(
            name,
            key,
            "service.pid container:${containerId} is not allowed",
        )),
        "ipc" if text().starts_with("service:") => Err(ctx.service_error(
            name,
            key,
            "service.ipc which references service:${serviceName} is not supported",
        )),
        "pids_limit" if text().parse::<f64>().is_ok_and(|n| n < 0.0) => {
            Err(ctx.service_error(name, key, "negative service.pids_limit is not supported"))
        }
        _ => Ok(()),
    }
}

fn build(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Build, Error> {
    let err = |field: &str, m: String| ctx.service_error(name, field, m);
    let mut map = Map::new();
    match value {
        Value::Object(m) => map.clone_from(m),
        other => {
            let context = string(other).map_err(|e| err("build", format!("service.build {e}")))?;
            map.insert("context".to_string(), Value::String(context));
        }
    }
    for key in map.keys() {
        let key = key.as_str();
        // `tags` naming only the service's image is what normalisation itself produces
        // (image + build); the service checks that, so printed output loads back.
        if BUILD_DENY.contains(&key) && key != "tags" {
            return Err(err("build", format!("service.build.{key} is not allowed")));
        }
        if !(BUILD_KEYS.contains(&key) || key == "tags" || key.starts_with("x-")) {
            return Err(err("build", format!("unknown key \"build.{key}\"")));
        }
    }
    let context = match map.get("context") {
        Some(v) => ctx.field(name, "build.context", string(v))?,
        None => ".".to_string(),
    };
    if is_remote_context(&context) {
        return Err(err(
            "build.context",
            "service.build.context cannot be a remote context".to_string(),
        ));
    }
    let mut build = Build {
        context: relative_to(ctx.project_dir, &context),
        dockerfile: match map.get("dockerfile") {
            Some(v) => ctx.field(name, "build.dockerfile", string(v))?,
            None => "Dockerfile".to_string(),
        },
        ..Build::default()
    };
    if let Some(args) = map.get("args") {
        for (k, v) in ctx.field(name, "build.args", key_values(args))? {
            if let Some(v) = v.or_else(|| ctx.env.get(&k).cloned()) {
                build.args.insert(k, v);
            }
        }
    }
    if let Some(labels) = map.get("labels") {
        build.labels = ctx.field(name, "build.labels", string_map(labels))?;
        validate_labels(&build.labels).map_err(|m| err("build.labels", m))?;
    }
    if let Some(target) = map.get("target") {
        build.target = ctx.field(name, "build.target", scalar(target))?;
    }
    if let Some(cache) = map.get("cache_from") {
        build.cache_from = ctx.field(name, "build.cache_from", string_list(cache))?;
    }
    if let Some(hosts) = map.get("extra_hosts") {
        build.extra_hosts = ctx.field(name, "build.extra_hosts", extra_hosts(hosts))?;
    }
    if let Some(shm) = map.get("shm_size") {
        ctx.field(name, "build.shm_size", crate::values::check_bytes(shm))?;
        build.shm_size = ctx.field(name, "build.shm_size", scalar(shm))?;
    }
    if let Some(tags) = map.get("tags") {
        build.tags = string_list(tags)
            .map_err(|_| err("build", "service.build.tags is not allowed".to_string()))?;
    }
    Ok(build)
}

fn is_remote_context(context: &str) -> bool {
    let without_fragment = context.split('#').next().unwrap_or(context);
    without_fragment.ends_with(".git")
        || context.contains("://")
        || context.starts_with("git@")
        || context.starts_with("github.com/")
}

/// `path` (relative to `base`, or absolute) made relative to `base`, lexically, `/`-separated;
/// `"."` for `base` itself.
pub(crate) fn relative_to(base: &Path, path: &str) -> String {
    let (joined, base) = if Path::new(path).is_absolute() {
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        (PathBuf::from(path), base)
    } else {
        (base.join(path), base.to_path_buf())
    };
    let target = lexical(&joined);
    let base = lexical(&base);
    let common = target
        .iter()
        .zip(base.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(target[common..].iter().cloned());
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// `base/path` with `.` and `..` resolved lexically (`path` may be absolute).
pub(crate) fn clean_join(base: &Path, path: &str) -> PathBuf {
    let joined = base.join(path);
    let mut out = PathBuf::new();
    if joined.is_absolute() {
        out.push(Component::RootDir);
    }
    for part in lexical(&joined) {
        out.push(part);
    }
    out
}

/// Path components with `.` and `..` resolved without touching the file system.
fn lexical(path: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.last().is_some_and(|l| l != "..") {
                    out.pop();
                } else if !path.is_absolute() {
                    out.push("..".to_string());
                }
            }
            Component::Normal(p) => out.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Reads `env_file`/`label_file` (a path, a list of paths, or `{path, required}` entries),
/// relative to the project directory; later files win.
fn read_env_files(
    name: &str,
    files: &Value,
    ctx: &Context<'_>,
) -> Result<IndexMap<String, Option<String>>, Error> {
    let entries: Vec<&Value> = match files {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = IndexMap::new();
    for entry in entries {
        let (path, required) = match entry {
            Value::Object(m) => (
                m.get("path").map(string).transpose(),
                m.get("required").map(boolean).transpose(),
            ),
            other => (string(other).map(Some), Ok(None)),
        };
        let bad = |m: String| ctx.service_error(name, "env_file", format!("service.env_file {m}"));
        let path = path
            .map_err(bad)?
            .ok_or_else(|| bad("entry without path".into()))?;
        let required = required.map_err(bad)?.unwrap_or(true);
        // Lexically, as compose does: `a/b/../x` needs no `a/b` directory. Beyond the
        // reference, a path that climbs out later (`a/../../x`) is refused too. (`include`
        // rebases relative paths to absolute ones inside the project: those pass.)
        let full = path_in_project(ctx.project_dir, ctx.project_dir, &path)
            .and_then(|full| {
                // The reference's normalizeAndValidateFilePath refuses these even inside.
                if path.starts_with("..") {
                    Err(format!("Directory traversing not allowed : {path}"))
                } else if path.contains('*') {
                    Err(format!("Wildcards not allowed : {path}"))
                } else {
                    Ok(full)
                }
            })
            .map_err(|message| ctx.service_error(name, "env_file", message))?;
        let text = match ctx.reader.read(&full) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(cause) => return Err(Error::Io { path: full, cause }),
        };
        let parsed = dotenv::parse(&text, ctx.env).map_err(|e| Error::EnvFile {
            file: full.clone(),
            line: e.line,
            message: e.message,
        })?;
        for (k, v) in parsed {
            out.shift_remove(&k);
            out.insert(k, v);
        }
    }
    Ok(out)
}

fn extra_hosts(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Object(map) => {
            let mut out = Vec::new();
            for (host, ips) in map {
                for ip in string_list(ips)? {
                    out.push(format!("{host}:{ip}"));
                }
            }
            Ok(out)
        }
        other => Ok(string_list(other)?
            .into_iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect()),
    }
}

fn security_opt(option: &str) -> Result<String, String> {
    let (name, value) = match option.find([':', '=']) {
        Some(i) => (&option[..i], Some(&option[i + 1..])),
        None => (option, None),
    };
    let ok = match name {
        "no-new-privileges" => true,
        "apparmor" | "seccomp" => value == Some("unconfined"),
        _ => false,
    };
    if !ok {
        return Err(
            "Only no-new-privileges and unconfined apparmor and seccomp are allowed for service.security_opt"
                .to_string(),
        );
    }
    Ok(match value {
        Some(v) => format!("{name}={v}"),
        None => name.to_string(),
    })
}

fn depends_on(service: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Object(map) => {
            let mut out = Vec::new();
            for (dep, settings) in map {
                let empty = Map::new();
                let settings = object(settings, &empty)
                    .map_err(|()| format!("service.depends_on.{dep} must be a mapping"))?;
                let condition = settings
                    .get("condition")
                    .map(string)
                    .transpose()?
                    .unwrap_or_else(|| "service_started".to_string());
                let required = settings
                    .get("required")
                    .map(boolean)
                    .transpose()?
                    .unwrap_or(true);
                let restart = settings.get("restart").map(boolean).transpose()?;
                if condition != "service_started" || !required {
                    // compose-go's JSON of the dependency, field order included.
                    let mut described = Map::new();
                    described.insert("condition".into(), Value::String(condition));
                    if restart == Some(true) {
                        described.insert("restart".into(), Value::Bool(true));
                    }
                    described.insert("required".into(), Value::Bool(required));
                    return Err(format!(
                        "Long syntax depends_on {dep}:{} for service \"{service}\" is not yet supported",
                        Value::Object(described)
                    ));
                }
                out.push(dep.clone());
            }
            Ok(out)
        }
        other => {
            let deps = string_list(other)?;
            let mut out: Vec<String> = Vec::new();
            for dep in deps {
                if !out.contains(&dep) {
                    out.push(dep);
                }
            }
            Ok(out)
        }
    }
}

fn ports(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err("service.ports must be a list".to_string());
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Object(map) => out.push(long_port(map)?),
            other => out.extend(short_port(&string(other)?)?),
        }
    }
    Ok(out)
}

fn format_port(host_ip: &str, published: &str, target: &str, protocol: &str) -> String {
    let mut s = String::new();
    if !host_ip.is_empty() {
        if host_ip.contains(':') {
            s.push_str(&format!("[{host_ip}]:"));
        } else {
            s.push_str(&format!("{host_ip}:"));
        }
    }
    if !published.is_empty() || !host_ip.is_empty() {
        s.push_str(published);
        s.push(':');
    }
    s.push_str(target);
    if !protocol.is_empty() && protocol != "tcp" {
        s.push('/');
        s.push_str(protocol);
    }
    s
}

fn long_port(map: &Map<String, Value>) -> Result<String, String> {
    let get = |k: &str| -> Result<String, String> {
        Ok(map
            .get(k)
            .map(scalar)
            .transpose()?
            .flatten()
            .unwrap_or_default())
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "target" | "published" | "host_ip" | "protocol" | "mode" | "name" | "app_protocol"
        ) && !key.starts_with("x-")
        {
            return Err(format!("unknown key \"ports.{key}\""));
        }
    }
    let target = get("target")?;
    if target.is_empty() {
        return Err("service.ports long syntax requires a target".to_string());
    }
    port_range(&target).ok_or_else(|| format!("Invalid containerPort: {target}"))?;
    let published = get("published")?;
    if !published.is_empty() {
        port_range(&published).ok_or_else(|| format!("Invalid hostPort: {published}"))?;
    }
    let protocol = get("protocol")?;
    validate_proto(&protocol)?;
    Ok(format_port(
        &get("host_ip")?,
        &published,
        &target,
        &protocol,
    ))
}

fn validate_proto(protocol: &str) -> Result<(), String> {
    match protocol.to_ascii_lowercase().as_str() {
        "" | "tcp" | "udp" | "sctp" => Ok(()),
        _ => Err(format!("Invalid proto: {protocol}")),
    }
}

/// `80`, `80-90`: the inclusive range.
fn port_range(text: &str) -> Option<(u32, u32)> {
    let port = |s: &str| s.parse::<u32>().ok().filter(|p| *p <= 65_535);
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => port(text).map(|p| (p, p)),
    }
}

/// `[ip:][published:]target[/proto]`, ranges expanded as docker does.
fn short_port(spec: &str) -> Result<Vec<String>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, proto),
        None => (spec, ""),
    };
    validate_proto(protocol)?;
    let (host_part, target) = match rest.rsplit_once(':') {
        Some((h, t)) => (Some(h), t),
        None => (None, rest),
    };
    let (host_ip, published) = match host_part {
        None => ("", ""),
        Some(h) => match h.rsplit_once(':') {
            Some((ip, p)) => (ip.trim_start_matches('[').trim_end_matches(']'), p),
            None => ("", h),
        },
    };
    let (t0, t1) = port_range(target).ok_or_else(|| format!("Invalid containerPort: {target}"))?;
    let published_range = if published.is_empty() {
        None
    } else {
        Some(port_range(published).ok_or_else(|| format!("Invalid hostPort: {published}"))?)
    };
    let protocol = protocol.to_ascii_lowercase();
    if t0 == t1 {
        return Ok(vec![format_port(host_ip, published, target, &protocol)]);
    }
    match published_range {
        None => Ok((t0..=t1)
            .map(|t| format_port(host_ip, "", &t.to_string(), &protocol))
            .collect()),
        Some((p0, p1)) if p1 - p0 == t1 - t0 => Ok((0..=t1 - t0)
            .map(|i| {
                format_port(
                    host_ip,
                    &(p0 + i).to_string(),
                    &(t0 + i).to_string(),
                    &protocol,
                )
            })
            .collect()),
        Some(_) => Err(format!(
            "Invalid ranges specified for container and host Ports: {target} and {published}"
        )),
    }
}

fn devices(value: &Value) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in match value {
        Value::Array(items) => items.as_slice(),
        _ => return Err("service.devices must be a list".to_string()),
    } {
        let (source, target, perms) = match item {
            Value::Object(map) => {
                let get = |k: &str| {
                    map.get(k)
                        .map(scalar)
                        .transpose()
                        .map(|v| v.flatten().unwrap_or_default())
                };
                (get("source")?, get("target")?, get("permissions")?)
            }
            other => {
                let spec = string(other)?;
                let mut parts = spec.splitn(3, ':').map(str::to_string);
                let source = parts.next().unwrap_or_default();
                (
                    source,
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                )
            }
        };
        if !source.starts_with('/') {
            return Err(format!(
                "service.devices \"{source}\": CDI device names are not supported"
            ));
        }
        let target = if target.is_empty() {
            source.clone()
        } else {
            target
        };
        let perms = if perms.is_empty() {
            "rwm".to_string()
        } else {
            perms
        };
        out.push(format!("{source}:{target}:{perms}"));
    }
    Ok(out)
}

fn service_networks(value: &Value) -> Result<IndexMap<String, Option<ServiceNetwork>>, String> {
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

/// A service volume in compose-go's long form.
struct Mount {
    kind: String,
    source: Option<String>,
    target: Option<String>,
    read_only: bool,
    /// The type-specific options (`volume:`, `tmpfs:`, `bind:`), as compose-go prints them.
    options: Map<String, Value>,
    /// Keys beyond the above (`consistency`, `image`), which make it long syntax too.
    extra: bool,
}

impl Mount {
    fn from_short(spec: &str) -> Mount {
        let parts = split_volume_spec(spec);
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, Some(target.clone()), None),
            [source, target] => (Some(source.clone()), Some(target.clone()), None),
            [source, target, mode, ..] => (
                Some(source.clone()),
                Some(target.clone()),
                Some(mode.clone()),
            ),
            [] => (None, None, None),
        };
        let is_path = source.as_deref().is_some_and(|s| {
            s.starts_with(['.', '/', '~']) || s.chars().nth(1) == Some(':') || s.starts_with('\\')
        });
        let kind = if is_path { "bind" } else { "volume" };
        let mut mount = Mount {
            kind: kind.to_string(),
            source,
            target,
            read_only: false,
            options: Map::new(),
            extra: false,
        };
        for option in mode.iter().flat_map(|m| m.split(',')) {
            match option {
                "ro" => mount.read_only = true,
                "nocopy" => {
                    mount.options.insert("nocopy".into(), Value::Bool(true));
                }
                "z" | "Z" => {
                    mount
                        .options
                        .insert("selinux".into(), Value::String(option.into()));
                }
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    mount
                        .options
                        .insert("propagation".into(), Value::String(option.into()));
                }
                _ => {}
            }
        }
        mount
    }

    fn from_long(map: &Map<String, Value>) -> Result<Mount, String> {
        let get = |k: &str| map.get(k).map(scalar).transpose().map(Option::flatten);
        let kind = get("type")?.unwrap_or_else(|| "volume".to_string());
        let mut mount = Mount {
            source: get("source")?.filter(|s| !s.is_empty()),
            target: get("target")?.filter(|s| !s.is_empty()),
            read_only: map
                .get("read_only")
                .map(boolean)
                .transpose()?
                .unwrap_or(false),
            options: Map::new(),
            extra: false,
            kind,
        };
        for (key, value) in map {
            match key.as_str() {
                "type" | "source" | "target" | "read_only" => {}
                "volume" | "tmpfs" | "bind" | "image" | "npipe" | "cluster" => {
                    if let Value::Object(opts) = value {
                        for (k, v) in opts {
                            let set = match v {
                                Value::Null => false,
                                Value::Bool(b) => *b,
                                Value::String(s) => !s.is_empty(),
                                Value::Number(n) => n.as_f64() != Some(0.0),
                                _ => true,
                            };
                            if set {
                                mount.options.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                "consistency" => mount.extra = true,
                k if k.starts_with("x-") => {}
                other => return Err(format!("unknown key \"volumes.{other}\"")),
            }
        }
        Ok(mount)
    }

    /// compose-go's JSON for this mount, used in the reference's messages.
    fn describe(&self) -> String {
        let mut out = Map::new();
        out.insert("type".into(), Value::String(self.kind.clone()));
        if let Some(s) = &self.source {
            out.insert("source".into(), Value::String(s.clone()));
        }
        if let Some(t) = &self.target {
            out.insert("target".into(), Value::String(t.clone()));
        }
        if self.read_only {
            out.insert("read_only".into(), Value::Bool(true));
        }
        out.insert(self.kind.clone(), Value::Object(self.options.clone()));
        Value::Object(out).to_string()
    }
}

/// Applies the volume rules: feature bind mounts become labels, tmpfs entries move to
/// `tmpfs`, named volumes become `name:/target[:ro]`, everything else is refused.
fn mounts(
    name: &str,
    value: &Value,
    declared: &IndexMap<String, Volume>,
    svc: &mut Service,
    labels: &mut BTreeMap<String, String>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let err = |m: String| ctx.service_error(name, "volumes", m);
    let Value::Array(items) = value else {
        return Err(err("service.volumes must be a list".to_string()));
    };
    let mut list = Vec::new();
    for item in items {
        list.push(match item {
            Value::Object(map) => Mount::from_long(map).map_err(err)?,
            other => {
                Mount::from_short(&string(other).map_err(|e| err(format!("service.volumes {e}")))?)
            }
        });
    }
    let is_bind_from =
        |m: &Mount, source: &str| m.kind == "bind" && m.source.as_deref() == Some(source);
    let journal = JOURNAL_SOURCES
        .iter()
        .all(|s| list.iter().any(|m| is_bind_from(m, s)));
    if journal {
        labels.insert("io.balena.features.journal-logs".into(), "1".into());
    }
    let mut partial_journal = Vec::new();
    for mount in list {
        if mount.kind == "bind"
            && let Some(source) = mount.source.as_deref()
        {
            if let Some((_, label)) = BIND_LABELS.iter().find(|(s, _)| *s == source) {
                labels.insert((*label).to_string(), "1".to_string());
                continue;
            }
            if JOURNAL_SOURCES.contains(&source) {
                // The reference drops a partial set as well, silently.
                if !journal {
                    partial_journal.push(source.to_owned());
                }
                continue;
            }
        }
        match mount.kind.as_str() {
            "bind" | "image" | "npipe" | "cluster" => {
                return Err(err(format!(
                    "service.volumes cannot be of type \"{}\"",
                    mount.kind
                )));
            }
            "tmpfs" | "volume" if !mount.options.is_empty() || mount.extra => {
                return Err(err(
                    "long syntax service.volumes are not supported".to_string()
                ));
            }
            "tmpfs" => match mount.target {
                Some(target) => svc.tmpfs.push(target),
                None => {
                    return Err(err(format!(
                        "service.volumes {} must specify source and target",
                        mount.describe()
                    )));
                }
            },
            "volume" => {
                let (Some(source), Some(target)) = (&mount.source, &mount.target) else {
                    return Err(err(format!(
                        "service.volumes {} must specify source and target",
                        mount.describe()
                    )));
                };
                if !declared.contains_key(source) {
                    return Err(err(format!("refers to undefined volume {source}")));
                }
                svc.volumes.push(if mount.read_only {
                    format!("{source}:{target}:ro")
                } else {
                    format!("{source}:{target}")
                });
            }
            other => {
                return Err(err(format!(
                    "service.volumes cannot be of type \"{other}\""
                )));
            }
        }
    }
    warn_partial_journal(name, &partial_journal, ctx, warnings);
    Ok(())
}

/// The fields the reference deletes with a warning.
fn warn_dropped_fields(
    name: &str,
    map: &Map<String, Value>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) {
    for dropped in ["container_name", "expose"] {
        if map.contains_key(dropped) {
            warnings.push(ctx.service_warning(
                name,
                &format!("{dropped} is not supported on balena and is ignored"),
            ));
        }
    }
}

/// Some journal paths without the others get no label and are dropped: say why.
fn warn_partial_journal(
    name: &str,
    partial: &[String],
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) {
    if !partial.is_empty() {
        warnings.push(ctx.service_warning(
            name,
            &format!(
                "the bind mounts of {} are ignored: the journal-logs feature needs all of {}",
                partial.join(", "),
                JOURNAL_SOURCES.join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_contexts() {
        let base = Path::new("/p/proj");
        assert_eq!(relative_to(base, "./s1"), "s1");
        assert_eq!(relative_to(base, "./"), ".");
        assert_eq!(relative_to(base, "."), ".");
        assert_eq!(relative_to(base, "a/../b/./c"), "b/c");
        assert_eq!(relative_to(base, "../other"), "../other");
        assert_eq!(relative_to(base, "/p/proj/x"), "x");
        assert_eq!(relative_to(base, "/q"), "../../q");
    }

    #[test]
    fn short_ports() {
        assert_eq!(short_port("80").unwrap(), ["80"]);
        assert_eq!(short_port("80:5000").unwrap(), ["80:5000"]);
        assert_eq!(short_port("1003:1004/udp").unwrap(), ["1003:1004/udp"]);
        assert_eq!(short_port("1002:1003/tcp").unwrap(), ["1002:1003"]);
        assert_eq!(short_port("127.0.0.1:80:80").unwrap(), ["127.0.0.1:80:80"]);
        assert_eq!(short_port("127.0.0.1::80").unwrap(), ["127.0.0.1::80"]);
        assert_eq!(short_port("[::1]:80:80").unwrap(), ["[::1]:80:80"]);
        assert_eq!(
            short_port("8000-8001:80-81").unwrap(),
            ["8000:80", "8001:81"]
        );
        assert_eq!(short_port("80-81").unwrap(), ["80", "81"]);
        assert_eq!(short_port("8000-8010:80").unwrap(), ["8000-8010:80"]);
        assert_eq!(short_port("1002:1003/tc").unwrap_err(), "Invalid proto: tc");
        assert!(short_port("x:80").unwrap_err().contains("hostPort"));
        assert!(short_port("80:x").unwrap_err().contains("containerPort"));
        assert!(short_port("8000-8002:80-81").is_err());
    }

    #[test]
    fn long_ports() {
        let p = |v: Value| ports(&Value::Array(vec![v]));
        assert_eq!(p(json!({"target": 80})).unwrap(), ["80"]);
        assert_eq!(
            p(json!({"target": 80, "published": "8080", "protocol": "udp", "host_ip": "1.2.3.4", "mode": "host"})).unwrap(),
            ["1.2.3.4:8080:80/udp"]
        );
        assert!(p(json!({"published": 80})).is_err());
        assert!(p(json!({"target": 80, "bogus": 1})).is_err());
    }

    #[test]
    fn security_opts() {
        assert_eq!(
            security_opt("no-new-privileges").unwrap(),
            "no-new-privileges"
        );
        assert_eq!(
            security_opt("no-new-privileges:true").unwrap(),
            "no-new-privileges=true"
        );
        assert_eq!(
            security_opt("apparmor:unconfined").unwrap(),
            "apparmor=unconfined"
        );
        assert_eq!(
            security_opt("seccomp=unconfined").unwrap(),
            "seccomp=unconfined"
        );
        assert!(security_opt("seccomp:profile.json").is_err());
        assert!(security_opt("label:disable").is_err());
    }

    #[test]
    fn device_forms() {
        assert_eq!(
            devices(&json!(["/dev/a", "/dev/b:/dev/c", "/dev/d:/dev/e:r", {"source": "/dev/f", "target": "/dev/g", "permissions": "rw"}])).unwrap(),
            ["/dev/a:/dev/a:rwm", "/dev/b:/dev/c:rwm", "/dev/d:/dev/e:r", "/dev/f:/dev/g:rw"]
        );
        assert!(
            devices(&json!(["vendor.com/gpu=all"]))
                .unwrap_err()
                .contains("CDI")
        );
    }

    #[test]
    fn extra_host_forms() {
        assert_eq!(
            extra_hosts(&json!({"foo": "127.0.0.1"})).unwrap(),
            ["foo:127.0.0.1"]
        );
        assert_eq!(
            extra_hosts(&json!(["bar=8.8.8.8", "baz:1.1.1.1"])).unwrap(),
            ["bar:8.8.8.8", "baz:1.1.1.1"]
        );
    }

    #[test]
    fn remote_contexts() {
        assert!(is_remote_context("https://github.com/a/b.git"));
        assert!(is_remote_context("git@github.com:a/b.git"));
        assert!(is_remote_context("https://github.com/a/b.git#main:dir"));
        assert!(is_remote_context("https://example.com/ctx.tar.gz"));
        assert!(!is_remote_context("./service"));
    }
}
