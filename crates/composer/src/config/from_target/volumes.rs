//! One entry of a compose `volumes` list.

use serde_json::Value;

use crate::config::AppContext;

/// Why a volume entry is not mapped.
pub(super) enum VolumeSkip {
    /// A host path: only feature labels may bind one.
    HostBind(String),
    /// Not a volume.
    Invalid(String),
}

/// One compose volume → a bind string (`<appId>_name:/path[:mode]`) or an anonymous path;
/// tmpfs long syntax goes to `tmpfs`. Host binds are refused.
pub(super) fn volume_entry(
    item: &Value,
    app: &AppContext<'_>,
    tmpfs: &mut Vec<String>,
) -> Result<Option<String>, VolumeSkip> {
    match item {
        Value::String(s) => short_volume(s, app),
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
                "volume" => Ok(Some(long_volume(m, target, app))),
                other => Err(VolumeSkip::Invalid(format!(
                    "unsupported volume type {other:?}"
                ))),
            }
        }
        other => Err(VolumeSkip::Invalid(format!("invalid volume {other}"))),
    }
}

/// `path`, `name:path` or `name:path:mode`.
fn short_volume(s: &str, app: &AppContext<'_>) -> Result<Option<String>, VolumeSkip> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    match parts.as_slice() {
        [path] => Ok(Some((*path).to_owned())),
        [src, ..] if src.starts_with('/') || src.starts_with('.') => {
            Err(VolumeSkip::HostBind(s.to_owned()))
        }
        [src, dst] => Ok(Some(format!("{}:{dst}", app.volume_name(src)))),
        [src, dst, mode] => Ok(Some(format!("{}:{dst}:{mode}", app.volume_name(src)))),
        _ => Err(VolumeSkip::Invalid(format!("invalid volume {s:?}"))),
    }
}

/// A named (with `source`) or anonymous volume in the long syntax.
fn long_volume(m: &serde_json::Map<String, Value>, target: &str, app: &AppContext<'_>) -> String {
    match m.get("source").and_then(Value::as_str) {
        Some(src) => {
            let ro = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
            let suffix = if ro { ":ro" } else { "" };
            format!("{}:{target}{suffix}", app.volume_name(src))
        }
        None => target.to_owned(),
    }
}
