//! Compose service → [`ServiceConfig`] (spec §6), [`ServiceConfig`] → container-create body,
//! and container inspect → [`Service`] (the read-back side of the same mapping).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::LazyLock;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, DeviceMapping, DeviceRequest,
    EndpointIpamConfig, EndpointSettings, HostConfig, ImageInspect, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{NetworkEndpoint, PortMapping, Service, ServiceConfig, ServiceStatus, labels};
use crate::options::Options;
use crate::target::TargetService;

/// Compose keys the composer maps (spec §6.1, minus the ones it does not support yet).
const SUPPORTED_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "labels",
    "ports",
    "volumes",
    "tmpfs",
    "devices",
    "restart",
    "network_mode",
    "networks",
    "privileged",
    "read_only",
    "init",
    "cap_add",
    "cap_drop",
    "dns",
    "dns_search",
    "extra_hosts",
    "security_opt",
    "group_add",
    "sysctls",
    "working_dir",
    "user",
    "tty",
    "stop_signal",
    "stop_grace_period",
    "mem_limit",
    "mem_reservation",
    "cpu_shares",
    "hostname",
    "depends_on",
    "running",
];

/// Environment variables added only at create and ignored when comparing.
const INIT_ONLY_ENV: &[&str] = &["BALENA_DEVICE_NAME_AT_INIT", "RESIN_DEVICE_NAME_AT_INIT"];

/// What the app contributes to each service's normalisation.
#[derive(Debug, Clone)]
pub(crate) struct AppContext<'a> {
    pub app_id: u64,
    pub app_uuid: &'a str,
    pub app_name: &'a str,
    pub commit: &'a str,
    pub release_id: u64,
    pub options: &'a Options,
}

impl AppContext<'_> {
    /// Engine name of an app network.
    pub fn network_name(&self, name: &str) -> String {
        format!("{}_{name}", self.app_uuid)
    }
    /// Engine name of an app volume.
    pub fn volume_name(&self, name: &str) -> String {
        format!("{}_{name}", self.app_id)
    }
    /// The host directory of a service's locks (inside the lock root by construction).
    pub fn lock_dir(&self, service: &str) -> Result<std::path::PathBuf> {
        crate::lock::service_dir(&self.options.lock_root, self.app_id, service)
    }
}

/// Adds `:latest` to a reference with neither tag nor digest; drops the tag when a digest is
/// present.
pub fn normalise_image_name(image: &str) -> String {
    if let Some((repo, digest)) = image.split_once('@') {
        let repo = strip_tag(repo);
        return format!("{repo}@{digest}");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn strip_tag(repo: &str) -> &str {
    let slash = repo.rfind('/').map_or(0, |i| i + 1);
    match repo[slash..].rfind(':') {
        Some(i) => &repo[..slash + i],
        None => repo,
    }
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("1" | "true" | "on"))
}

/// Builds the target [`Service`] of `name`, normalised with the image's config when the image
/// is present (spec §6.3). Returns the service and warnings about ignored keys.
pub(crate) fn target_service(
    name: &str,
    svc: &TargetService,
    app: &AppContext<'_>,
    image: Option<&ImageInspect>,
) -> Result<(Service, Vec<String>)> {
    let empty = Map::new();
    let comp = svc.composition.as_ref().unwrap_or(&empty);
    let err = |field: &str, message: String| Error::ServiceConfig {
        service: name.to_owned(),
        field: field.to_owned(),
        message,
    };
    let mut warnings = Vec::new();
    let unknown: Vec<&str> = comp
        .keys()
        .map(String::as_str)
        .filter(|k| !SUPPORTED_KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        warnings.push(format!(
            "service {name}: ignoring unsupported or unknown compose fields: {}",
            unknown.join(", ")
        ));
    }
    let image_config = image.and_then(|i| i.config.as_ref());
    let mut config = ServiceConfig {
        image: image
            .and_then(|i| i.id.clone())
            .unwrap_or_else(|| normalise_image_name(&svc.image)),
        ..ServiceConfig::default()
    };

    config.command = match comp.get("command") {
        Some(v) => string_or_argv(v).map_err(|m| err("command", m))?,
        None => image_config.and_then(|c| c.cmd.clone()).unwrap_or_default(),
    };
    config.entrypoint = match comp.get("entrypoint") {
        Some(v) => string_or_argv(v).map_err(|m| err("entrypoint", m))?,
        None => image_config
            .and_then(|c| c.entrypoint.clone())
            .unwrap_or_default(),
    };

    // Labels: image labels < composition < top-level < ours.
    let mut label_map: BTreeMap<String, String> = image_config
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(v) = comp.get("labels") {
        label_map.extend(key_values(v).map_err(|m| err("labels", m))?);
    }
    label_map.extend(svc.labels.clone());
    let mut label_map = normalise_labels(label_map);
    for (k, v) in [
        (labels::SUPERVISED, "true".to_owned()),
        (labels::APP_ID, app.app_id.to_string()),
        (labels::APP_UUID, app.app_uuid.to_owned()),
        (labels::SERVICE_ID, svc.id.to_string()),
        (labels::SERVICE_NAME, name.to_owned()),
        (labels::IMAGE_NAME, normalise_image_name(&svc.image)),
    ] {
        label_map.insert(k.to_owned(), v);
    }

    // Environment: image env < defaults < composition < top-level.
    let mut env: BTreeMap<String, String> = image_config
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    env.extend(default_env(name, app));
    let mut feature_binds = Vec::new();
    features(&label_map, app, &mut env, &mut feature_binds, &mut config);
    if let Some(v) = comp.get("environment") {
        env.extend(key_values(v).map_err(|m| err("environment", m))?);
    }
    env.extend(svc.environment.clone());
    for k in env.keys() {
        if !ENV_NAME.is_match(k) {
            return Err(err("environment", format!("invalid variable name {k:?}")));
        }
    }
    config.environment = env;
    config.labels = label_map;

    config.ports = match comp.get("ports") {
        Some(v) => parse_ports(v).map_err(|m| err("ports", m))?,
        None => Vec::new(),
    };

    // Volumes: named and anonymous from compose, then the lock dir and feature binds, then
    // the image's volumes.
    let mut volumes = Vec::new();
    let mut tmpfs = string_list(comp.get("tmpfs")).map_err(|m| err("tmpfs", m))?;
    if let Some(Value::Array(items)) = comp.get("volumes") {
        for item in items {
            match volume_entry(item, app, &mut tmpfs) {
                Ok(Some(v)) => volumes.push(v),
                Ok(None) => {}
                Err(VolumeSkip::HostBind(spec)) => warnings.push(format!(
                    "service {name}: ignoring host bind {spec} (only feature labels may bind host paths)"
                )),
                Err(VolumeSkip::Invalid(m)) => return Err(err("volumes", m)),
            }
        }
    } else if comp.get("volumes").is_some() {
        return Err(err("volumes", "expected a list".to_owned()));
    }
    let lock_dir = app.lock_dir(name)?;
    let lock_dir = lock_dir.display();
    volumes.push(format!("{lock_dir}:/tmp/resin"));
    volumes.push(format!("{lock_dir}:/tmp/balena"));
    volumes.extend(feature_binds);
    volumes.extend(
        image_config
            .and_then(|c| c.volumes.clone())
            .unwrap_or_default(),
    );
    volumes.sort();
    volumes.dedup();
    config.volumes = volumes;
    tmpfs.sort();
    config.tmpfs = tmpfs;

    let mut devices = string_list(comp.get("devices")).map_err(|m| err("devices", m))?;
    for d in &mut devices {
        *d = normalise_device(d);
    }
    devices.sort();
    config.devices = devices;

    config.restart = match comp
        .get("restart")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
    {
        Some(r) if ["no", "always", "on-failure", "unless-stopped"].contains(&r.as_str()) => r,
        _ => "always".to_owned(),
    };

    let mut depends_on = match comp.get("depends_on") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    networking(name, comp, app, &mut config, &mut depends_on, &mut warnings)
        .map_err(|m| err("networks", m))?;

    config.privileged = bool_of(comp.get("privileged"));
    config.read_only = bool_of(comp.get("read_only"));
    config.init = comp.get("init").and_then(Value::as_bool);
    config.cap_add = sorted(string_list(comp.get("cap_add")).map_err(|m| err("cap_add", m))?);
    config.cap_drop = sorted(string_list(comp.get("cap_drop")).map_err(|m| err("cap_drop", m))?);
    config.dns = string_list(comp.get("dns")).map_err(|m| err("dns", m))?;
    config.dns_search = string_list(comp.get("dns_search")).map_err(|m| err("dns_search", m))?;
    config.extra_hosts = sorted(
        string_list(comp.get("extra_hosts"))
            .map_err(|m| err("extra_hosts", m))?
            .into_iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
    );
    config.security_opt = sorted(
        string_list(comp.get("security_opt"))
            .map_err(|m| err("security_opt", m))?
            .into_iter()
            .filter(|o| !o.starts_with("label="))
            .collect(),
    );
    config.group_add = sorted(string_list(comp.get("group_add")).map_err(|m| err("group_add", m))?);
    config.sysctls = match comp.get("sysctls") {
        Some(v) => key_values(v).map_err(|m| err("sysctls", m))?,
        None => BTreeMap::new(),
    };
    config.working_dir = match comp.get("working_dir").and_then(Value::as_str) {
        Some(w) => w.to_owned(),
        None => image_config
            .and_then(|c| c.working_dir.clone())
            .unwrap_or_default(),
    };
    if config.working_dir.len() > 1 {
        config.working_dir = config.working_dir.trim_end_matches('/').to_owned();
    }
    config.user = match comp.get("user").and_then(Value::as_str) {
        Some(u) => u.to_owned(),
        None => image_config
            .and_then(|c| c.user.clone())
            .unwrap_or_default(),
    };
    config.tty = comp.get("tty").map(|v| bool_of(Some(v))).unwrap_or(true);
    config.stop_signal = match comp.get("stop_signal").and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None => image_config
            .and_then(|c| c.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".to_owned()),
    };
    config.stop_grace_period = match comp.get("stop_grace_period") {
        Some(v) => parse_duration_secs(v).map_err(|m| err("stop_grace_period", m))?,
        None => 10,
    };
    config.mem_limit = memory_of(comp.get("mem_limit")).map_err(|m| err("mem_limit", m))?;
    config.mem_reservation =
        memory_of(comp.get("mem_reservation")).map_err(|m| err("mem_reservation", m))?;
    config.cpu_shares = comp.get("cpu_shares").and_then(Value::as_i64).unwrap_or(0);
    config.hostname = comp
        .get("hostname")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    config.running = svc
        .running
        .or_else(|| comp.get("running").and_then(Value::as_bool))
        .unwrap_or(true);

    depends_on.sort();
    depends_on.dedup();
    let service = Service {
        name: name.to_owned(),
        service_id: svc.id,
        image_id: svc.image_id,
        release_id: app.release_id,
        commit: app.commit.to_owned(),
        image_name: normalise_image_name(&svc.image),
        container_id: None,
        status: if image.is_some() {
            ServiceStatus::Downloaded
        } else {
            ServiceStatus::Downloading
        },
        created_at: None,
        depends_on,
        exit_error: None,
        config,
    };
    Ok((service, warnings))
}

static ENV_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").ok());
trait MaybeMatch {
    fn is_match(&self, s: &str) -> bool;
}
impl MaybeMatch for LazyLock<Option<Regex>> {
    fn is_match(&self, s: &str) -> bool {
        self.as_ref().is_some_and(|r| r.is_match(s))
    }
}

fn default_env(service: &str, app: &AppContext<'_>) -> BTreeMap<String, String> {
    let d = &app.options.device;
    let mut env = BTreeMap::new();
    for ns in ["BALENA", "RESIN"] {
        for (k, v) in [
            ("APP_ID", app.app_id.to_string()),
            ("APP_UUID", app.app_uuid.to_owned()),
            ("APP_NAME", app.app_name.to_owned()),
            ("SERVICE_NAME", service.to_owned()),
            ("DEVICE_UUID", d.uuid.clone()),
            ("DEVICE_TYPE", d.device_type.clone()),
            ("DEVICE_ARCH", d.arch.clone()),
            ("HOST_OS_VERSION", d.os_version.clone().unwrap_or_default()),
            ("APP_LOCK_PATH", "/tmp/balena/updates.lock".to_owned()),
        ] {
            env.insert(format!("{ns}_{k}"), v);
        }
        env.insert(ns.to_owned(), "1".to_owned());
    }
    env.insert(
        "RESIN_SERVICE_KILL_ME_PATH".into(),
        "/tmp/balena/handover-complete".into(),
    );
    env.insert(
        "BALENA_SERVICE_HANDOVER_COMPLETE_PATH".into(),
        "/tmp/balena/handover-complete".into(),
    );
    env.insert("USER".into(), "root".into());
    env
}

/// Feature labels (spec §6.4): the only way a host path reaches a container.
fn features(
    labels_: &BTreeMap<String, String>,
    app: &AppContext<'_>,
    env: &mut BTreeMap<String, String>,
    binds: &mut Vec<String>,
    config: &mut ServiceConfig,
) {
    let on = |f: &str| truthy(labels_.get(&format!("io.balena.features.{f}")));
    if on("balena-socket") {
        let sock = &app.options.engine_socket;
        binds.push(format!("{sock}:/host/run/balena-engine.sock"));
        binds.push(format!("{sock}:{sock}"));
        if sock != "/var/run/balena.sock" {
            binds.push(format!("{sock}:/var/run/balena.sock"));
        }
        env.insert(
            "DOCKER_HOST".into(),
            "unix:///host/run/balena-engine.sock".into(),
        );
    }
    if on("dbus") {
        binds.push("/run/dbus:/host/run/dbus".into());
    }
    if on("journal-logs") {
        binds.push("/var/log/journal:/var/log/journal:ro".into());
        binds.push("/run/log/journal:/run/log/journal:ro".into());
        binds.push("/etc/machine-id:/etc/machine-id:ro".into());
    }
    for (f, path) in [
        ("kernel-modules", "/lib/modules"),
        ("firmware", "/lib/firmware"),
    ] {
        if on(f) && Path::new(path).exists() {
            binds.push(format!("{path}:{path}"));
        }
    }
    if on("sysfs") {
        binds.push("/sys:/sys".into());
    }
    if on("procfs") {
        binds.push("/proc:/proc".into());
    }
    if on("gpu") {
        config.gpu = true;
    }
    if on("balena-api") {
        let key = app.options.api_key.clone().unwrap_or_default();
        let url = app.options.api_endpoint.clone().unwrap_or_default();
        for ns in ["BALENA", "RESIN"] {
            env.insert(format!("{ns}_API_KEY"), key.clone());
            env.insert(format!("{ns}_API_URL"), url.clone());
        }
    }
}

/// Rewrites `io.resin.*` keys to `io.balena.*`; an original `io.balena.*` key wins.
pub(crate) fn normalise_labels(input: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut legacy = Vec::new();
    for (k, v) in input {
        if k.starts_with("io.resin.") {
            legacy.push((k.replace("resin", "balena"), v));
        } else {
            out.insert(k, v);
        }
    }
    for (k, v) in legacy {
        out.entry(k).or_insert(v);
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn bool_of(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "yes" | "on"),
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// A string (→ `[s]`) or a list of scalars.
fn string_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(other) => Err(format!("expected a string or a list, got {other}")),
    }
}

fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a scalar, got {other}")),
    }
}

/// A map or a `K=V` list.
fn key_values(v: &Value) -> Result<BTreeMap<String, String>, String> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = if v.is_null() {
                    String::new()
                } else {
                    scalar(v)?
                };
                Ok((k.clone(), v))
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let s = scalar(i)?;
                Ok(match s.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (s, String::new()),
                })
            })
            .collect(),
        other => Err(format!(
            "expected a map or a list of KEY=VALUE, got {other}"
        )),
    }
}

/// A command: a list as-is, a string split like a POSIX shell would (quotes, backslashes).
fn string_or_argv(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => shell_split(s),
        Value::Array(_) => string_list(Some(v)),
        Value::Null => Ok(Vec::new()),
        other => Err(format!("expected a string or a list, got {other}")),
    }
}

/// Splits a command string into words: single quotes are literal, double quotes allow
/// backslash escapes, unquoted backslash escapes the next character.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Ports: `[[ip:]host[-host]:]container[-container][/proto]` strings, numbers, or long syntax
/// maps; ranges are expanded one mapping per port.
pub fn parse_ports(v: &Value) -> Result<Vec<PortMapping>, String> {
    let Value::Array(items) = v else {
        return Err("expected a list".to_owned());
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Object(m) => {
                let target = m
                    .get("target")
                    .and_then(|t| scalar(t).ok())
                    .and_then(|t| t.parse::<u16>().ok())
                    .ok_or_else(|| format!("port {item}: missing or invalid target"))?;
                out.push(PortMapping {
                    container_port: target,
                    protocol: m
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("tcp")
                        .to_owned(),
                    host_ip: m
                        .get("host_ip")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    host_port: m
                        .get("published")
                        .map(scalar)
                        .transpose()?
                        .unwrap_or_default(),
                });
            }
            other => out.extend(parse_port_spec(&scalar(other)?)?),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>, String> {
    let bad = || format!("invalid port {spec:?}");
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_owned()),
        None => (spec, "tcp".to_owned()),
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [c] => ("", None, *c),
        [c, h] => ("", Some(*h), *c),
        [c, h, ip] => (*ip, Some(*h), *c),
        _ => return Err(bad()),
    };
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if b < a { Err(bad()) } else { Ok((a, b)) }
    };
    let (c0, c1) = range(container)?;
    let host_range = host.filter(|h| !h.is_empty()).map(range).transpose()?;
    if let Some((h0, h1)) = host_range
        && h1 - h0 != c1 - c0
    {
        return Err(format!(
            "port {spec:?}: host and container ranges differ in length"
        ));
    }
    Ok((0..=(c1 - c0))
        .map(|i| PortMapping {
            container_port: c0 + i,
            protocol: protocol.clone(),
            host_ip: host_ip.trim_matches(['[', ']']).to_owned(),
            host_port: host_range
                .map(|(h0, _)| (h0 + i).to_string())
                .unwrap_or_default(),
        })
        .collect())
}

enum VolumeSkip {
    HostBind(String),
    Invalid(String),
}

/// One compose volume → a bind string (`<appId>_name:/path[:mode]`) or an anonymous path;
/// tmpfs long syntax goes to `tmpfs`. Host binds are refused.
fn volume_entry(
    item: &Value,
    app: &AppContext<'_>,
    tmpfs: &mut Vec<String>,
) -> std::result::Result<Option<String>, VolumeSkip> {
    match item {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').map(str::trim).collect();
            match parts.as_slice() {
                [path] => Ok(Some((*path).to_owned())),
                [src, rest @ ..] if src.starts_with('/') || src.starts_with('.') => {
                    let _ = rest;
                    Err(VolumeSkip::HostBind(s.clone()))
                }
                [src, dst] => Ok(Some(format!("{}:{dst}", app.volume_name(src)))),
                [src, dst, mode] => Ok(Some(format!("{}:{dst}:{mode}", app.volume_name(src)))),
                _ => Err(VolumeSkip::Invalid(format!("invalid volume {s:?}"))),
            }
        }
        Value::Object(m) => {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("volume");
            let target = m
                .get("target")
                .and_then(Value::as_str)
                .ok_or_else(|| VolumeSkip::Invalid(format!("volume {item}: missing target")))?;
            match kind {
                "tmpfs" => {
                    tmpfs.push(target.to_owned());
                    Ok(None)
                }
                "bind" => Err(VolumeSkip::HostBind(item.to_string())),
                "volume" => match m.get("source").and_then(Value::as_str) {
                    Some(src) => {
                        let ro = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
                        let suffix = if ro { ":ro" } else { "" };
                        Ok(Some(format!("{}:{target}{suffix}", app.volume_name(src))))
                    }
                    None => Ok(Some(target.to_owned())),
                },
                other => Err(VolumeSkip::Invalid(format!(
                    "unsupported volume type {other:?}"
                ))),
            }
        }
        other => Err(VolumeSkip::Invalid(format!("invalid volume {other}"))),
    }
}

fn normalise_device(d: &str) -> String {
    let parts: Vec<&str> = d.split(':').collect();
    match parts.as_slice() {
        [h] => format!("{h}:{h}:rwm"),
        [h, c] => format!("{h}:{c}:rwm"),
        _ => d.to_owned(),
    }
}

/// `network_mode` and `networks` (spec §6.2).
fn networking(
    name: &str,
    comp: &Map<String, Value>,
    app: &AppContext<'_>,
    config: &mut ServiceConfig,
    depends_on: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mut networks: Vec<(String, NetworkEndpoint)> = Vec::new();
    match comp.get("networks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for i in items {
                networks.push((scalar(i)?, NetworkEndpoint::default()));
            }
        }
        Some(Value::Object(m)) => {
            for (net, v) in m {
                let mut ep = NetworkEndpoint::default();
                if let Value::Object(o) = v {
                    ep.aliases = string_list(o.get("aliases"))?;
                    ep.ipv4_address = o
                        .get("ipv4_address")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    ep.ipv6_address = o
                        .get("ipv6_address")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                networks.push((net.clone(), ep));
            }
        }
        Some(other) => return Err(format!("expected a list or a map, got {other}")),
    }
    let mode = comp.get("network_mode").and_then(Value::as_str);
    config.network_mode = match mode {
        Some(m @ ("host" | "bridge" | "none")) => m.to_owned(),
        Some(m) if m.starts_with("service:") => {
            depends_on.push(m.trim_start_matches("service:").to_owned());
            m.to_owned()
        }
        Some(m) if m.starts_with("container:") => {
            warnings.push(format!("service {name}: ignoring network_mode {m}"));
            String::new()
        }
        Some(m) => app.network_name(m),
        None => String::new(),
    };
    if config.network_mode.is_empty() {
        let main = networks.first().map_or("default", |(n, _)| n.as_str());
        config.network_mode = app.network_name(main);
    }
    let app_prefix = format!("{}_", app.app_uuid);
    if config.network_mode.starts_with(&app_prefix) {
        if networks.is_empty() {
            networks.push(("default".to_owned(), NetworkEndpoint::default()));
        }
        for (net, mut ep) in networks {
            ep.aliases.insert(0, name.to_owned());
            ep.aliases.sort();
            ep.aliases.dedup();
            config.networks.insert(app.network_name(&net), ep);
        }
    }
    Ok(())
}

fn memory_of(v: Option<&Value>) -> Result<i64, String> {
    static MEM: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)^(\d+)([bkmg]?)b?$").ok());
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("invalid size {n}")),
        Some(Value::String(s)) => {
            let caps = MEM
                .as_ref()
                .and_then(|r| r.captures(s.trim()))
                .ok_or_else(|| format!("invalid size {s:?}"))?;
            let n: i64 = caps[1].parse().map_err(|_| format!("invalid size {s:?}"))?;
            let shift = match caps[2].to_ascii_lowercase().as_str() {
                "k" => 10,
                "m" => 20,
                "g" => 30,
                _ => 0,
            };
            n.checked_mul(1 << shift)
                .ok_or_else(|| format!("size {s:?} is too large"))
        }
        Some(other) => Err(format!("invalid size {other}")),
    }
}

/// A compose duration (`10`, `1m30s`, `500ms`) in whole seconds.
fn parse_duration_secs(v: &Value) -> Result<i64, String> {
    let s = scalar(v)?;
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n as i64);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            _ => return Err(format!("invalid duration unit {unit:?} in {s:?}")),
        };
    }
    if !num.is_empty() {
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    Ok(total as i64)
}

/// The container-create body for `svc`. `container_ids` resolves `service:X` network modes.
pub(crate) fn create_body(
    svc: &Service,
    device_name: &str,
    container_ids: &HashMap<String, String>,
) -> Result<ContainerCreateBody> {
    let c = &svc.config;
    let mut env: Vec<String> = c
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
    let (binds, anonymous): (Vec<String>, Vec<String>) =
        c.volumes.iter().cloned().partition(|v| v.contains(':'));
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.ports {
        port_bindings
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.clone()),
            });
    }
    let network_mode = match c.network_mode.strip_prefix("service:") {
        Some(dep) => match container_ids.get(dep) {
            Some(id) => format!("container:{id}"),
            None => {
                return Err(Error::ServiceConfig {
                    service: svc.name.clone(),
                    field: "network_mode".to_owned(),
                    message: format!("service {dep} has no container"),
                });
            }
        },
        None => c.network_mode.clone(),
    };
    let endpoints = c
        .networks
        .get(&c.network_mode)
        .map(|ep| HashMap::from([(c.network_mode.clone(), endpoint_settings(ep))]));
    let devices = c
        .devices
        .iter()
        .map(|d| {
            let mut p = d.splitn(3, ':');
            DeviceMapping {
                path_on_host: p.next().map(str::to_owned),
                path_in_container: p.next().map(str::to_owned),
                cgroup_permissions: p.next().map(str::to_owned),
            }
        })
        .collect();
    let restart = match c.restart.as_str() {
        "no" => RestartPolicyNameEnum::NO,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        _ => RestartPolicyNameEnum::ALWAYS,
    };
    let non_empty = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    let host_config = HostConfig {
        binds: Some(binds),
        port_bindings: Some(port_bindings),
        tmpfs: Some(c.tmpfs.iter().map(|t| (t.clone(), String::new())).collect()),
        devices: Some(devices),
        restart_policy: Some(RestartPolicy {
            name: Some(restart),
            maximum_retry_count: Some(0),
        }),
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
        sysctls: if c.sysctls.is_empty() {
            None
        } else {
            Some(c.sysctls.clone().into_iter().collect())
        },
        memory: Some(c.mem_limit),
        memory_reservation: Some(c.mem_reservation),
        cpu_shares: Some(c.cpu_shares),
        device_requests: c.gpu.then(|| {
            vec![DeviceRequest {
                driver: Some(String::new()),
                count: Some(1),
                device_ids: Some(Vec::new()),
                capabilities: Some(vec![vec!["gpu".to_owned()]]),
                options: Some(HashMap::new()),
            }]
        }),
        ..HostConfig::default()
    };
    Ok(ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: Some(c.command.clone()),
        entrypoint: Some(c.entrypoint.clone()),
        env: Some(env),
        labels: Some(c.labels.clone().into_iter().collect()),
        exposed_ports: Some(
            c.ports
                .iter()
                .map(|p| format!("{}/{}", p.container_port, p.protocol))
                .collect(),
        ),
        volumes: Some(anonymous),
        working_dir: Some(c.working_dir.clone()),
        user: Some(c.user.clone()),
        tty: Some(c.tty),
        stop_signal: Some(c.stop_signal.clone()),
        stop_timeout: Some(c.stop_grace_period),
        hostname: (!c.hostname.is_empty()).then(|| c.hostname.clone()),
        host_config: Some(host_config),
        networking_config: endpoints.map(|e| NetworkingConfig {
            endpoints_config: Some(e),
        }),
        ..ContainerCreateBody::default()
    })
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

static CONTAINER_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r".*_(\d+)_(\d+)(?:_(.*?))?$").ok());

/// Reads a container of ours back into a [`Service`]. `services_by_id` maps container ids of
/// the app to service names (to turn `container:<id>` back into `service:<name>`).
pub(crate) fn service_from_container(
    c: &ContainerInspectResponse,
    services_by_id: &HashMap<String, String>,
) -> Result<Service> {
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
    let config = c.config.clone().unwrap_or_default();
    let host = c.host_config.clone().unwrap_or_default();
    let raw_labels: BTreeMap<String, String> = config
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let label_map = normalise_labels(raw_labels);
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

    let state = c.state.clone().unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let status = if running {
        ServiceStatus::Running
    } else {
        match state.status.map(|s| s.to_string()).as_deref() {
            Some("created") => ServiceStatus::Installed,
            Some("dead") => ServiceStatus::Dead,
            Some("exited") => ServiceStatus::Exited,
            Some(other) => ServiceStatus::Other(other.to_owned()),
            None => ServiceStatus::Other("unknown".to_owned()),
        }
    };
    let container_id = c.id.clone().unwrap_or_default();

    let environment = config
        .env
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .filter(|(k, _)| !INIT_ONLY_ENV.contains(&k.as_str()))
        .collect();
    let mut ports = Vec::new();
    for (key, bindings) in host.port_bindings.clone().unwrap_or_default() {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        let bindings = bindings.unwrap_or_default();
        if bindings.is_empty() {
            ports.push(PortMapping {
                container_port,
                protocol: protocol.to_owned(),
                host_ip: String::new(),
                host_port: String::new(),
            });
        }
        for b in bindings {
            ports.push(PortMapping {
                container_port,
                protocol: protocol.to_owned(),
                host_ip: b.host_ip.unwrap_or_default(),
                host_port: b.host_port.unwrap_or_default(),
            });
        }
    }
    ports.sort();
    let mut volumes = host.binds.clone().unwrap_or_default();
    volumes.extend(config.volumes.clone().unwrap_or_default());
    volumes.sort();
    volumes.dedup();
    let mut tmpfs: Vec<String> = host.tmpfs.clone().unwrap_or_default().into_keys().collect();
    tmpfs.sort();
    let devices = sorted(
        host.devices
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                format!(
                    "{}:{}:{}",
                    d.path_on_host.unwrap_or_default(),
                    d.path_in_container.unwrap_or_default(),
                    d.cgroup_permissions.unwrap_or_default()
                )
            })
            .collect(),
    );
    let restart = host
        .restart_policy
        .as_ref()
        .and_then(|r| r.name)
        .map(|n| n.to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "always".to_owned());
    let mut network_mode = host.network_mode.clone().unwrap_or_default();
    if let Some(id) = network_mode.strip_prefix("container:")
        && let Some(svc) = services_by_id.get(id)
    {
        network_mode = format!("service:{svc}");
    }
    let mut networks = BTreeMap::new();
    for (net, ep) in c
        .network_settings
        .clone()
        .and_then(|n| n.networks)
        .unwrap_or_default()
    {
        let aliases = sorted(
            ep.aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|a| !container_id.starts_with(a.as_str()))
                .collect(),
        );
        let ipam = ep.ipam_config.unwrap_or_default();
        networks.insert(
            net,
            NetworkEndpoint {
                aliases,
                ipv4_address: ipam.ipv4_address.filter(|a| !a.is_empty()),
                ipv6_address: ipam.ipv6_address.filter(|a| !a.is_empty()),
            },
        );
    }
    let hostname = config.hostname.clone().unwrap_or_default();
    let hostname = if hostname.len() == 12 && container_id.starts_with(&hostname) {
        String::new()
    } else {
        hostname
    };
    let gpu = host.device_requests.as_ref().is_some_and(|r| {
        r.iter().any(|d| {
            d.capabilities
                .as_ref()
                .is_some_and(|c| c.iter().flatten().any(|c| c == "gpu"))
        })
    });
    let image_name = label_map
        .get(labels::IMAGE_NAME)
        .cloned()
        .unwrap_or_default();
    let service_config = ServiceConfig {
        image: c.image.clone().unwrap_or_default(),
        command: config.cmd.clone().unwrap_or_default(),
        entrypoint: config.entrypoint.clone().unwrap_or_default(),
        environment,
        labels: label_map,
        ports,
        volumes,
        tmpfs,
        devices,
        restart,
        network_mode,
        networks,
        privileged: host.privileged.unwrap_or(false),
        read_only: host.readonly_rootfs.unwrap_or(false),
        init: host.init,
        cap_add: sorted(host.cap_add.clone().unwrap_or_default()),
        cap_drop: sorted(host.cap_drop.clone().unwrap_or_default()),
        dns: host.dns.clone().unwrap_or_default(),
        dns_search: host.dns_search.clone().unwrap_or_default(),
        extra_hosts: sorted(host.extra_hosts.clone().unwrap_or_default()),
        security_opt: sorted(
            host.security_opt
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.starts_with("label="))
                .collect(),
        ),
        group_add: sorted(host.group_add.clone().unwrap_or_default()),
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
        hostname,
        gpu,
        running,
    };
    Ok(Service {
        name,
        service_id,
        image_id,
        release_id,
        commit,
        image_name,
        container_id: Some(container_id),
        status,
        created_at: c.created.clone(),
        depends_on: Vec::new(),
        exit_error: state.error.filter(|e| !e.is_empty()),
        config: service_config,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn ctx(options: &Options) -> AppContext<'_> {
        AppContext {
            app_id: 1234,
            app_uuid: "deadbeef",
            app_name: "app",
            commit: "c1",
            release_id: 7,
            options,
        }
    }

    fn svc(comp: Value) -> TargetService {
        TargetService {
            id: 5,
            image_id: 6,
            image: "busybox".into(),
            composition: comp.as_object().cloned(),
            ..TargetService::default()
        }
    }

    #[test]
    fn default_environment_and_binds() {
        let options = Options {
            lock_root: "/locks".into(),
            ..Options::default()
        };
        let (s, _) = target_service("foo", &svc(json!({})), &ctx(&options), None).unwrap();
        let env = &s.config.environment;
        assert_eq!(env["BALENA_SERVICE_NAME"], "foo");
        assert_eq!(env["RESIN_APP_ID"], "1234");
        assert_eq!(env["BALENA_APP_LOCK_PATH"], "/tmp/balena/updates.lock");
        assert_eq!(
            env["BALENA_SERVICE_HANDOVER_COMPLETE_PATH"],
            "/tmp/balena/handover-complete"
        );
        assert_eq!(env["USER"], "root");
        assert_eq!(env["BALENA"], "1");
        assert!(
            s.config
                .volumes
                .contains(&"/locks/1234/foo:/tmp/balena".to_owned())
        );
        assert!(
            s.config
                .volumes
                .contains(&"/locks/1234/foo:/tmp/resin".to_owned())
        );
        assert_eq!(s.config.image, "busybox:latest");
        assert_eq!(s.config.network_mode, "deadbeef_default");
        assert_eq!(
            s.config.networks["deadbeef_default"].aliases,
            vec!["foo".to_owned()]
        );
        assert_eq!(s.config.restart, "always");
        assert!(s.config.tty);
    }

    #[test]
    fn user_env_beats_defaults() {
        let options = Options::default();
        let mut t = svc(json!({"environment": {"USER": "me"}}));
        t.environment
            .insert("BALENA_SERVICE_NAME".into(), "x".into());
        let (s, _) = target_service("foo", &t, &ctx(&options), None).unwrap();
        assert_eq!(s.config.environment["USER"], "me");
        assert_eq!(s.config.environment["BALENA_SERVICE_NAME"], "x");
    }

    #[test]
    fn ports_ranges_and_protocols() {
        let p = parse_ports(&json!([
            "80",
            "8080:80/udp",
            "127.0.0.1:1000-1001:2000-2001",
            53
        ]))
        .unwrap();
        assert_eq!(p.len(), 5);
        assert!(p.contains(&PortMapping {
            container_port: 2001,
            protocol: "tcp".into(),
            host_ip: "127.0.0.1".into(),
            host_port: "1001".into()
        }));
        assert!(parse_ports(&json!(["1-3:1-2"])).is_err());
        assert!(parse_ports(&json!(["abc"])).is_err());
    }

    #[test]
    fn volumes_named_anonymous_and_host_binds_dropped() {
        let options = Options::default();
        let (s, warnings) = target_service(
            "foo",
            &svc(
                json!({"volumes": ["data:/data", "/anon", "/etc:/host-etc", "ro:/r:ro",
                {"type": "tmpfs", "target": "/t"}]}),
            ),
            &ctx(&options),
            None,
        )
        .unwrap();
        assert!(s.config.volumes.contains(&"1234_data:/data".to_owned()));
        assert!(s.config.volumes.contains(&"1234_ro:/r:ro".to_owned()));
        assert!(s.config.volumes.contains(&"/anon".to_owned()));
        assert!(!s.config.volumes.iter().any(|v| v.starts_with("/etc")));
        assert!(warnings.iter().any(|w| w.contains("/etc:/host-etc")));
        assert_eq!(s.config.tmpfs, vec!["/t".to_owned()]);
    }

    #[test]
    fn unsupported_keys_warn_and_misc_normalisation() {
        let options = Options::default();
        let (s, warnings) = target_service(
            "foo",
            &svc(json!({"build": ".", "restart": "bogus", "extra_hosts": ["a=1.2.3.4"],
                "working_dir": "/app/", "mem_limit": "64m", "stop_grace_period": "1m30s",
                "security_opt": ["label=x", "no-new-privileges"], "command": "sh -c 'echo \"hi\"'"})),
            &ctx(&options),
            None,
        )
        .unwrap();
        assert!(warnings[0].contains("build"));
        assert_eq!(s.config.restart, "always");
        assert_eq!(s.config.extra_hosts, vec!["a:1.2.3.4".to_owned()]);
        assert_eq!(s.config.working_dir, "/app");
        assert_eq!(s.config.mem_limit, 64 << 20);
        assert_eq!(s.config.stop_grace_period, 90);
        assert_eq!(s.config.security_opt, vec!["no-new-privileges".to_owned()]);
        assert_eq!(s.config.command, vec!["sh", "-c", "echo \"hi\""]);
    }

    #[test]
    fn feature_labels() {
        let options = Options::default();
        let mut t = svc(json!({}));
        t.labels
            .insert("io.resin.features.balena-socket".into(), "1".into());
        t.labels
            .insert("io.balena.features.gpu".into(), "true".into());
        t.labels
            .insert("io.balena.features.sysfs".into(), "on".into());
        let (s, _) = target_service("foo", &t, &ctx(&options), None).unwrap();
        assert_eq!(
            s.config.environment["DOCKER_HOST"],
            "unix:///host/run/balena-engine.sock"
        );
        assert!(
            s.config
                .volumes
                .iter()
                .any(|v| v.ends_with(":/host/run/balena-engine.sock"))
        );
        assert!(s.config.volumes.contains(&"/sys:/sys".to_owned()));
        assert!(s.config.gpu);
        assert!(
            s.config
                .labels
                .contains_key("io.balena.features.balena-socket")
        );
    }

    #[test]
    fn network_mode_service_adds_dependency_and_host_has_no_networks() {
        let options = Options::default();
        let (s, _) = target_service(
            "foo",
            &svc(json!({"network_mode": "service:bar"})),
            &ctx(&options),
            None,
        )
        .unwrap();
        assert_eq!(s.depends_on, vec!["bar".to_owned()]);
        assert!(s.config.networks.is_empty());
        let (h, _) = target_service(
            "foo",
            &svc(json!({"network_mode": "host"})),
            &ctx(&options),
            None,
        )
        .unwrap();
        assert_eq!(h.config.network_mode, "host");
        assert!(h.config.networks.is_empty());
        let (n, _) = target_service(
            "foo",
            &svc(json!({"networks": {"front": {"aliases": ["web"]}, "back": null}})),
            &ctx(&options),
            None,
        )
        .unwrap();
        assert_eq!(n.config.network_mode, "deadbeef_front");
        assert_eq!(
            n.config.networks["deadbeef_front"].aliases,
            vec!["foo".to_owned(), "web".to_owned()]
        );
        assert!(n.config.networks.contains_key("deadbeef_back"));
    }

    #[test]
    fn image_names_are_normalised() {
        assert_eq!(normalise_image_name("a/b"), "a/b:latest");
        assert_eq!(
            normalise_image_name("127.0.0.1:5000/a"),
            "127.0.0.1:5000/a:latest"
        );
        assert_eq!(normalise_image_name("a:1@sha256:00"), "a@sha256:00");
        assert_eq!(
            normalise_image_name("127.0.0.1:5000/a:2"),
            "127.0.0.1:5000/a:2"
        );
    }

    #[test]
    fn shell_split_handles_quotes() {
        assert_eq!(
            shell_split("a 'b c' \"d\\\"e\" f\\ g").unwrap(),
            vec!["a", "b c", "d\"e", "f g"]
        );
        assert!(shell_split("'open").is_err());
    }
}
