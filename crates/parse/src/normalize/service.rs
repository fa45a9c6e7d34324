//! One service: its name, its keys (refused, typed or passed through), and each field in
//! the order the reference checks them, so the first error is the reference's.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::build::build;
use super::env_files::read_env_files;
use super::fields::{depends_on, devices, extra_hosts, security_opt};
use super::networks::service_networks;
use super::ports::ports;
use super::volumes::mounts;
use super::{Context, object, string_map};
use crate::contract::validate_labels;
use crate::error::Error;
use crate::model::{Build, Service, Volume};
use crate::values::{key_values, scalar, string, string_list};

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

/// One service, every rule applied. The fields are read in the reference's order, so that
/// of several problems the one reported is the reference's.
pub(super) fn service(
    name: &str,
    value: &Value,
    ctx: &Context<'_>,
    volumes: &IndexMap<String, Volume>,
    warnings: &mut Vec<String>,
) -> Result<Service, Error> {
    check_name_length(name, ctx)?;
    let empty = Map::new();
    let map = object(value, &empty)
        .map_err(|()| ctx.service_error(name, "", "a service must be a mapping"))?;
    check_name(name, ctx)?;
    check_keys(name, map, ctx)?;
    crate::values::check_passthrough_values(name, map, ctx)?;
    warn_dropped_fields(name, map, ctx, warnings);
    if !map.contains_key("image") && !map.contains_key("build") {
        return Err(ctx.service_error(
            name,
            "",
            "has neither an image nor a build context specified",
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
    let user_labels = user_labels(name, map, ctx)?;
    svc.environment = environment(name, map, ctx)?;
    fields_before_volumes(name, map, ctx, &mut svc)?;
    // The feature labels from bind mounts go in first, so the user's labels win.
    let mut labels = BTreeMap::new();
    if let Some(vols) = map.get("volumes") {
        mounts(name, vols, volumes, &mut svc, &mut labels, ctx, warnings)?;
    }
    labels.extend(user_labels);
    svc.labels = labels;
    fields_after_volumes(name, map, ctx, &mut svc)?;
    passthrough_fields(name, map, ctx, &mut svc)?;
    if let Some(build) = &mut svc.build {
        build_tags(name, build, svc.image.as_ref(), ctx)?;
    }
    Ok(svc)
}

/// A name too long to ever make an image name, refused before anything else.
fn check_name_length(name: &str, ctx: &Context<'_>) -> Result<(), Error> {
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
    Ok(())
}

/// The compose schema's rule; it also keeps names safe as file names and image names.
fn check_name(name: &str, ctx: &Context<'_>) -> Result<(), Error> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || name == "."
        || name == ".."
    {
        return Err(ctx.service_error(
            name,
            "",
            "invalid service name: it must match ^[a-zA-Z0-9._-]+$",
        ));
    }
    Ok(())
}

/// Every key is typed, passed through or an `x-` extension; refused keys and unknown keys
/// (with the closest known one) are errors.
fn check_keys(name: &str, map: &Map<String, Value>, ctx: &Context<'_>) -> Result<(), Error> {
    for key in map.keys() {
        let key = key.as_str();
        if SERVICE_DENY.contains(&key) {
            return Err(ctx.service_error(name, key, format!("service.{key} is not allowed")));
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
    Ok(())
}

/// The user's labels: `label_file` values first, then `labels`, validated.
fn user_labels(
    name: &str,
    map: &Map<String, Value>,
    ctx: &Context<'_>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut user_labels = BTreeMap::new();
    if let Some(files) = map.get("label_file") {
        for (k, v) in read_env_files(name, files, ctx)? {
            user_labels.insert(k, v.unwrap_or_default());
        }
    }
    if let Some(labels) = map.get("labels") {
        user_labels.extend(ctx.field(name, "labels", string_map(labels))?);
    }
    validate_labels(&user_labels).map_err(|m| ctx.service_error(name, "labels", m))?;
    Ok(user_labels)
}

/// `env_file` values first, then `environment`; a bare name takes its value from the
/// environment, else stays empty.
fn environment(
    name: &str,
    map: &Map<String, Value>,
    ctx: &Context<'_>,
) -> Result<BTreeMap<String, String>, Error> {
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
    Ok(environment
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// `ports`, `depends_on` and `tmpfs`: read before the volumes, whose tmpfs mounts are
/// appended to `tmpfs`.
fn fields_before_volumes(
    name: &str,
    map: &Map<String, Value>,
    ctx: &Context<'_>,
    svc: &mut Service,
) -> Result<(), Error> {
    let err = |field: &str, message: String| ctx.service_error(name, field, message);
    if let Some(ports_value) = map.get("ports") {
        svc.ports = ports(ports_value).map_err(|m| err("ports", m))?;
    }
    if let Some(deps) = map.get("depends_on") {
        svc.depends_on = depends_on(name, deps).map_err(|m| err("depends_on", m))?;
    }
    if let Some(tmpfs) = map.get("tmpfs") {
        svc.tmpfs = ctx.field(name, "tmpfs", string_list(tmpfs))?;
    }
    Ok(())
}

/// `extra_hosts`, `devices`, `networks`, `network_mode`, `security_opt` and `volumes_from`,
/// in that order (the reference's).
fn fields_after_volumes(
    name: &str,
    map: &Map<String, Value>,
    ctx: &Context<'_>,
    svc: &mut Service,
) -> Result<(), Error> {
    let err = |field: &str, message: String| ctx.service_error(name, field, message);
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
    Ok(())
}

/// The fields kept as written (and `x-` extensions) into `Service::other`, after their own
/// rules; a string `command` or `entrypoint` becomes its words.
fn passthrough_fields(
    name: &str,
    map: &Map<String, Value>,
    ctx: &Context<'_>,
    svc: &mut Service,
) -> Result<(), Error> {
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
    Ok(())
}

/// Given tags are accepted only when they are what this adds (the service's image), i.e.
/// when the file is this crate's own output; anything else is the reference's refusal.
fn build_tags(
    name: &str,
    build: &mut Build,
    image: Option<&String>,
    ctx: &Context<'_>,
) -> Result<(), Error> {
    let given = std::mem::take(&mut build.tags);
    if given.iter().any(|t| Some(t) != image) {
        return Err(ctx.service_error(name, "build", "service.build.tags is not allowed"));
    }
    if let Some(image) = image {
        build.tags.push(image.clone());
    }
    Ok(())
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
