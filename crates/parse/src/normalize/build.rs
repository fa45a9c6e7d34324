//! A service's `build`: the short (context only) and long forms, and balena's refusals.

use serde_json::{Map, Value};

use super::fields::extra_hosts;
use super::paths::relative_to;
use super::{Context, string_map};
use crate::contract::validate_labels;
use crate::error::Error;
use crate::model::Build;
use crate::values::{key_values, scalar, string, string_list};

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

pub(super) fn build(name: &str, value: &Value, ctx: &Context<'_>) -> Result<Build, Error> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn remote_contexts() {
        assert!(is_remote_context("https://github.com/a/b.git"));
        assert!(is_remote_context("git@github.com:a/b.git"));
        assert!(is_remote_context("https://github.com/a/b.git#main:dir"));
        assert!(is_remote_context("https://example.com/ctx.tar.gz"));
        assert!(!is_remote_context("./service"));
    }
}
