//! From the merged, interpolated YAML tree to a typed [`Composition`], applying every balena
//! rule (toolkit spec §1.2). Rule violations come back as [`Error::Service`] or
//! [`Error::Validation`] with the reference's wording.
//!
//! One module per topic: `service` (a service's keys and fields, in the reference's order),
//! `build`, `ports`, `volumes` (top-level volumes and service mounts), `networks` (top-level
//! and per service), `fields` (the smaller service fields with rules of their own),
//! `env_files` (`env_file`/`label_file`) and `paths` (lexical path arithmetic).

mod build;
mod env_files;
mod fields;
mod networks;
mod paths;
mod ports;
mod service;
mod volumes;

pub(crate) use paths::clean_join;

use networks::network;
use service::service;
use volumes::volume;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::file::FileReader;
use crate::model::{Composition, Network};
use crate::values::{key_values, string_list};

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
