//! Volumes: the top-level `volumes` and a service's mounts, where feature bind mounts become
//! labels, tmpfs entries move to `tmpfs` and named volumes are checked against the
//! declared ones.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::{Context, boolean, object, string_map};
use crate::error::Error;
use crate::model::{Service, Volume};
use crate::values::{scalar, split_volume_spec, string};
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

pub(super) fn volume(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Volume, Error> {
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
pub(super) fn mounts(
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
