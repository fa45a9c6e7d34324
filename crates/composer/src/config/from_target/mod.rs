//! Target → service: a compose service of a target release normalised into the [`Service`]
//! the planner compares with what runs (spec §6.3).
//!
//! [`KEYS`] is the one table of the compose keys mapped; each names the function that maps
//! it. A key is read only through the [`Source`] and written only into the [`Draft`].

mod features;
mod networking;
mod volumes;

use std::collections::BTreeMap;

use bollard::models::{ImageConfig, ImageInspect};
use serde_json::{Map, Value};

use super::AppContext;
use super::values::{
    bool_of, env_map, is_env_name, key_values, memory_of, normalise_device, normalise_image_name,
    normalise_labels, parse_duration_secs, parse_ports, sorted, string_list, string_or_argv,
    without_selinux_labels,
};
use crate::error::{Error, Result};
use crate::model::{Service, ServiceConfig, ServiceStatus, labels};
use crate::target::TargetService;
use features::{default_env, features};
use networking::networking;
use volumes::{VolumeSkip, volume_entry};

/// Maps its keys from the source into the draft.
type MapKeys = fn(&Source<'_>, &mut Draft) -> Result<()>;

/// The compose keys the composer maps (spec §6.1, minus the ones it does not support yet),
/// each with the function that maps it, in the order they are read (the first invalid one is
/// the one reported). A key missing here is ignored with a warning.
const KEYS: &[(&[&str], MapKeys)] = &[
    (&["image"], image),
    (&["command"], command),
    (&["entrypoint"], entrypoint),
    (&["labels"], service_labels),
    (&["environment"], environment),
    (&["ports"], ports),
    (&["volumes", "tmpfs"], volumes),
    (&["devices"], devices),
    (&["restart"], restart),
    (&["depends_on", "network_mode", "networks"], networks),
    (&["privileged"], privileged),
    (&["read_only"], read_only),
    (&["init"], init),
    (&["cap_add"], cap_add),
    (&["cap_drop"], cap_drop),
    (&["dns"], dns),
    (&["dns_search"], dns_search),
    (&["extra_hosts"], extra_hosts),
    (&["security_opt"], security_opt),
    (&["group_add"], group_add),
    (&["sysctls"], sysctls),
    (&["working_dir"], working_dir),
    (&["user"], user),
    (&["tty"], tty),
    (&["stop_signal"], stop_signal),
    (&["stop_grace_period"], stop_grace_period),
    (&["mem_limit"], mem_limit),
    (&["mem_reservation"], mem_reservation),
    (&["cpu_shares"], cpu_shares),
    (&["hostname"], hostname),
    (&["running"], running),
];

/// What a service is built from: the target's service, its app, and the image's config when
/// the image is present.
pub(super) struct Source<'a> {
    pub name: &'a str,
    pub svc: &'a TargetService,
    pub comp: &'a Map<String, Value>,
    pub app: &'a AppContext<'a>,
    pub image: Option<&'a ImageInspect>,
}

/// The service being built.
#[derive(Default)]
pub(super) struct Draft {
    pub config: ServiceConfig,
    pub depends_on: Vec<String>,
    pub warnings: Vec<String>,
    /// Host binds of the feature labels, added to the volumes.
    pub feature_binds: Vec<String>,
}

impl Source<'_> {
    /// The compose value of `key`.
    fn get(&self, key: &str) -> Option<&Value> {
        self.comp.get(key)
    }

    /// The compose string of `key`.
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A field of the image's config.
    fn image_field<T>(&self, field: impl FnOnce(&ImageConfig) -> Option<T>) -> Option<T> {
        self.image.and_then(|i| i.config.as_ref()).and_then(field)
    }

    /// The error of `field` of this service.
    pub fn err(&self, field: &str) -> impl Fn(String) -> Error {
        let (service, field) = (self.name.to_owned(), field.to_owned());
        move |message| Error::ServiceConfig {
            service: service.clone(),
            field: field.clone(),
            message,
        }
    }

    /// The value of `key` parsed by `parse`, when the composition has the key.
    fn parsed<T>(&self, key: &str, parse: fn(&Value) -> Result<T, String>) -> Result<Option<T>> {
        self.get(key).map(parse).transpose().map_err(self.err(key))
    }

    /// The string list of `key`.
    fn list(&self, key: &str) -> Result<Vec<String>> {
        string_list(self.get(key)).map_err(self.err(key))
    }

    /// A warning about this service.
    pub fn warning(&self, message: &str) -> String {
        format!("service {}: {message}", self.name)
    }
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
    let source = Source {
        name,
        svc,
        comp: svc.composition.as_ref().unwrap_or(&empty),
        app,
        image,
    };
    let mut draft = Draft {
        warnings: unsupported_keys(&source).into_iter().collect(),
        ..Draft::default()
    };
    for (_, map) in KEYS {
        map(&source, &mut draft)?;
    }
    Ok(service(&source, draft))
}

/// A warning naming the compose keys of the service that [`KEYS`] does not map.
fn unsupported_keys(source: &Source<'_>) -> Option<String> {
    let unknown: Vec<&str> = source
        .comp
        .keys()
        .map(String::as_str)
        .filter(|k| !KEYS.iter().any(|(keys, _)| keys.contains(k)))
        .collect();
    (!unknown.is_empty()).then(|| {
        source.warning(&format!(
            "ignoring unsupported or unknown compose fields: {}",
            unknown.join(", ")
        ))
    })
}

/// The finished service and its warnings.
fn service(source: &Source<'_>, mut draft: Draft) -> (Service, Vec<String>) {
    draft.depends_on.sort();
    draft.depends_on.dedup();
    let service = Service {
        name: source.name.to_owned(),
        service_id: source.svc.id,
        image_id: source.svc.image_id,
        release_id: source.app.release_id,
        commit: source.app.commit.to_owned(),
        image_name: normalise_image_name(&source.svc.image),
        container_id: None,
        status: if source.image.is_some() {
            ServiceStatus::Downloaded
        } else {
            ServiceStatus::Downloading
        },
        created_at: None,
        depends_on: draft.depends_on,
        exit_error: None,
        config: draft.config,
    };
    (service, draft.warnings)
}

/// The image id when the image is present, otherwise the normalised reference.
fn image(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.image = s
        .image
        .and_then(|i| i.id.clone())
        .unwrap_or_else(|| normalise_image_name(&s.svc.image));
    Ok(())
}

fn command(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.command = s
        .parsed("command", string_or_argv)?
        .or_else(|| s.image_field(|c| c.cmd.clone()))
        .unwrap_or_default();
    Ok(())
}

fn entrypoint(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.entrypoint = s
        .parsed("entrypoint", string_or_argv)?
        .or_else(|| s.image_field(|c| c.entrypoint.clone()))
        .unwrap_or_default();
    Ok(())
}

/// Labels: image labels < composition < top-level < ours.
fn service_labels(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    let mut label_map: BTreeMap<String, String> = s
        .image_field(|c| c.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    label_map.extend(s.parsed("labels", key_values)?.unwrap_or_default());
    label_map.extend(s.svc.labels.clone());
    let mut label_map = normalise_labels(label_map);
    for (k, v) in [
        (labels::SUPERVISED, "true".to_owned()),
        (labels::APP_ID, s.app.app_id.to_string()),
        (labels::APP_UUID, s.app.app_uuid.to_owned()),
        (labels::SERVICE_ID, s.svc.id.to_string()),
        (labels::SERVICE_NAME, s.name.to_owned()),
        (labels::IMAGE_NAME, normalise_image_name(&s.svc.image)),
    ] {
        label_map.insert(k.to_owned(), v);
    }
    d.config.labels = label_map;
    Ok(())
}

/// Environment: image env < defaults < feature labels < composition < top-level.
fn environment(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    let mut env = env_map(s.image_field(|c| c.env.clone()).unwrap_or_default().iter());
    env.extend(default_env(s.name, s.app));
    features(s.app, &mut env, d);
    env.extend(s.parsed("environment", key_values)?.unwrap_or_default());
    env.extend(s.svc.environment.clone());
    if let Some(k) = env.keys().find(|k| !is_env_name(k)) {
        return Err(s.err("environment")(format!("invalid variable name {k:?}")));
    }
    d.config.environment = env;
    Ok(())
}

fn ports(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.ports = s.parsed("ports", parse_ports)?.unwrap_or_default();
    Ok(())
}

/// Volumes: named and anonymous from compose, then the lock dir and feature binds, then the
/// image's volumes; tmpfs from `tmpfs` and the long syntax of `volumes`.
fn volumes(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    let mut tmpfs = s.list("tmpfs")?;
    let mut volumes = compose_volumes(s, d, &mut tmpfs)?;
    let lock_dir = s.app.lock_dir(s.name)?;
    let lock_dir = lock_dir.display();
    volumes.push(format!("{lock_dir}:/tmp/resin"));
    volumes.push(format!("{lock_dir}:/tmp/balena"));
    volumes.append(&mut d.feature_binds);
    volumes.extend(s.image_field(|c| c.volumes.clone()).unwrap_or_default());
    volumes.sort();
    volumes.dedup();
    d.config.volumes = volumes;
    tmpfs.sort();
    d.config.tmpfs = tmpfs;
    Ok(())
}

/// The volumes of the compose `volumes` list; host binds are dropped with a warning.
fn compose_volumes(s: &Source<'_>, d: &mut Draft, tmpfs: &mut Vec<String>) -> Result<Vec<String>> {
    let items = match s.get("volumes") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(s.err("volumes")("expected a list".to_owned())),
        None => return Ok(Vec::new()),
    };
    let mut volumes = Vec::new();
    for item in items {
        match volume_entry(item, s.app, tmpfs) {
            Ok(Some(v)) => volumes.push(v),
            Ok(None) => {}
            Err(VolumeSkip::HostBind(spec)) => d.warnings.push(s.warning(&format!(
                "ignoring host bind {spec} (only feature labels may bind host paths)"
            ))),
            Err(VolumeSkip::Invalid(m)) => return Err(s.err("volumes")(m)),
        }
    }
    Ok(volumes)
}

fn devices(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    let devices = s.list("devices")?;
    d.config.devices = sorted(devices.iter().map(|d| normalise_device(d)).collect());
    Ok(())
}

fn restart(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.restart = match s.text("restart").map(str::to_lowercase) {
        Some(r) if ["no", "always", "on-failure", "unless-stopped"].contains(&r.as_str()) => r,
        _ => "always".to_owned(),
    };
    Ok(())
}

/// `depends_on`, then `network_mode` and `networks` (which may add a dependency).
fn networks(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.depends_on = match s.get("depends_on") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    networking(s, d).map_err(s.err("networks"))
}

fn privileged(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.privileged = bool_of(s.get("privileged"));
    Ok(())
}

fn read_only(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.read_only = bool_of(s.get("read_only"));
    Ok(())
}

fn init(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.init = s.get("init").and_then(Value::as_bool);
    Ok(())
}

fn cap_add(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.cap_add = sorted(s.list("cap_add")?);
    Ok(())
}

fn cap_drop(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.cap_drop = sorted(s.list("cap_drop")?);
    Ok(())
}

fn dns(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.dns = s.list("dns")?;
    Ok(())
}

fn dns_search(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.dns_search = s.list("dns_search")?;
    Ok(())
}

/// `host=ip` is written `host:ip`.
fn extra_hosts(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    let hosts = s.list("extra_hosts")?;
    d.config.extra_hosts = sorted(hosts.iter().map(|h| h.replacen('=', ":", 1)).collect());
    Ok(())
}

/// `label=…` options are the engine's business (SELinux) and are dropped.
fn security_opt(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.security_opt = without_selinux_labels(s.list("security_opt")?);
    Ok(())
}

fn group_add(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.group_add = sorted(s.list("group_add")?);
    Ok(())
}

fn sysctls(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.sysctls = s.parsed("sysctls", key_values)?.unwrap_or_default();
    Ok(())
}

/// The compose directory, else the image's, without a trailing `/`.
fn working_dir(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    let mut dir = match s.text("working_dir") {
        Some(w) => w.to_owned(),
        None => s.image_field(|c| c.working_dir.clone()).unwrap_or_default(),
    };
    if dir.len() > 1 {
        dir = dir.trim_end_matches('/').to_owned();
    }
    d.config.working_dir = dir;
    Ok(())
}

fn user(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.user = match s.text("user") {
        Some(u) => u.to_owned(),
        None => s.image_field(|c| c.user.clone()).unwrap_or_default(),
    };
    Ok(())
}

fn tty(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.tty = s.get("tty").map(|v| bool_of(Some(v))).unwrap_or(true);
    Ok(())
}

fn stop_signal(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.stop_signal = match s.text("stop_signal") {
        Some(signal) => signal.to_owned(),
        None => s
            .image_field(|c| c.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".to_owned()),
    };
    Ok(())
}

fn stop_grace_period(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.stop_grace_period = s
        .parsed("stop_grace_period", parse_duration_secs)?
        .unwrap_or(10);
    Ok(())
}

fn mem_limit(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.mem_limit = memory_of(s.get("mem_limit")).map_err(s.err("mem_limit"))?;
    Ok(())
}

fn mem_reservation(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.mem_reservation =
        memory_of(s.get("mem_reservation")).map_err(s.err("mem_reservation"))?;
    Ok(())
}

fn cpu_shares(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.cpu_shares = s.get("cpu_shares").and_then(Value::as_i64).unwrap_or(0);
    Ok(())
}

fn hostname(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.hostname = s.text("hostname").unwrap_or_default().to_owned();
    Ok(())
}

/// The target's `running`, else the composition's; running by default.
fn running(s: &Source<'_>, d: &mut Draft) -> Result<()> {
    d.config.running = s
        .svc
        .running
        .or_else(|| s.get("running").and_then(Value::as_bool))
        .unwrap_or(true);
    Ok(())
}
