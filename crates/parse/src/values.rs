//! Reading the loosely-typed YAML tree: scalars as strings, the list-or-map forms compose
//! allows, and the short syntaxes that several files must agree on when they are merged.

use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::Regex;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::normalize::Context;

/// A Go duration as compose and Docker read them: `90s`, `1m30s`, `500ms`, `1.5h`.
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$").unwrap_or_else(|_| unreachable!())
});

/// A byte size as compose reads `mem_limit`, `shm_size` and the like (go-units'
/// `RAMInBytes`): `512m`, `1.5g`, `2GiB`, `1024`.
static BYTES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d+(\.\d+)* ?([kKmMgGtTpP])?[iI]?[bB]?$").unwrap_or_else(|_| unreachable!())
});

/// The service fields that hold a byte size.
const BYTE_FIELDS: [&str; 3] = ["mem_limit", "mem_reservation", "shm_size"];

/// The `restart` policies Docker accepts (`on-failure:N` aside).
const RESTART_POLICIES: [&str; 4] = ["no", "always", "on-failure", "unless-stopped"];

/// The fields passed through to the engine unchanged that compose itself validates: an error
/// here beats one from the engine on the device, long after the build.
pub(crate) fn check_passthrough_values(
    service: &str,
    map: &Map<String, Value>,
    ctx: &Context,
) -> Result<(), Error> {
    if let Some(restart) = map.get("restart") {
        check_restart(restart)
            .map_err(|m| ctx.key_error(service, &["restart"], format!("service.restart {m}")))?;
    }
    if let Some(period) = map.get("stop_grace_period") {
        check_duration(period).map_err(|m| {
            ctx.key_error(
                service,
                &["stop_grace_period"],
                format!("service.stop_grace_period {m}"),
            )
        })?;
    }
    for key in BYTE_FIELDS {
        if let Some(value) = map.get(key) {
            check_bytes(value)
                .map_err(|m| ctx.key_error(service, &[key], format!("service.{key} {m}")))?;
        }
    }
    if let Some(Value::Object(health)) = map.get("healthcheck") {
        for key in ["interval", "timeout", "start_period", "start_interval"] {
            if let Some(value) = health.get(key) {
                check_duration(value).map_err(|m| {
                    let message = format!("service.healthcheck.{key} {m}");
                    ctx.key_error(service, &["healthcheck", key], message)
                })?;
            }
        }
    }
    Ok(())
}

fn check_restart(value: &Value) -> Result<(), String> {
    let policy = scalar(value)?.unwrap_or_default();
    // Empty (an unset `${RESTART}`) is Docker's default, `no`.
    let valid = policy.is_empty()
        || RESTART_POLICIES.contains(&policy.as_str())
        || policy
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{policy}\" is not a restart policy: use no, always, on-failure[:N] or unless-stopped"
        ))
    }
}

pub(crate) fn check_bytes(value: &Value) -> Result<(), String> {
    match value {
        Value::Number(n) if n.as_u64().is_some() => Ok(()),
        Value::Null => Ok(()),
        // Empty: an unset `${MEM_LIMIT}`, no limit.
        Value::String(s) if s.is_empty() || BYTES.is_match(s) => Ok(()),
        other => Err(format!(
            "{other} is not a byte size: use a number and a unit, e.g. 512m, 1.5g or 1024"
        )),
    }
}

fn check_duration(value: &Value) -> Result<(), String> {
    match value {
        // A number is what a YAML `0` or a pre-parsed value gives: seconds to the engine.
        Value::Number(_) | Value::Null => Ok(()),
        Value::String(s) if s.is_empty() || s == "0" || DURATION.is_match(s) => Ok(()),
        other => Err(format!(
            "{other} is not a duration: use a number and a unit, e.g. 30s, 1m30s or 500ms"
        )),
    }
}

/// A scalar as compose reads it into a string field (`80` → `"80"`, `true` → `"true"`);
/// `None` for null, `Err` for a list or mapping.
pub(crate) fn scalar(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) => Err("must be a string, got a list".to_string()),
        Value::Object(_) => Err("must be a string, got a mapping".to_string()),
    }
}

/// A scalar that must be present.
pub(crate) fn string(value: &Value) -> Result<String, String> {
    scalar(value)?.ok_or_else(|| "must be a string, got null".to_string())
}

/// A string or a list of strings.
pub(crate) fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(string).collect(),
        other => Ok(vec![string(other)?]),
    }
}

/// Splits a string `command` or `entrypoint` into words as compose does (compose-go's
/// `ShellCommand`, read with go-shellwords' defaults): blanks separate words, `'…'` is
/// literal, `"…"` groups, and a backslash outside single quotes escapes the next character.
/// Nothing is expanded. Where compose silently stops at an unquoted `;`, `&`, `|`, `<` or
/// `>` (dropping the rest of the command), this is an error, since no shell runs the words.
pub(crate) fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            in_word = true;
            continue;
        }
        match c {
            '\\' if single => word.push(c),
            '\\' => escaped = true,
            '\'' if !double => {
                single = !single;
                in_word = true;
            }
            '"' if !single => {
                double = !double;
                in_word = true;
            }
            ' ' | '\t' | '\r' | '\n' if !single && !double => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            ';' | '&' | '|' | '<' | '>' if !single && !double => {
                return Err(format!(
                    "has the shell operator \"{c}\" outside quotes, which compose does not run \
                     through a shell: write it as a list, e.g. [\"sh\", \"-c\", \"...\"]"
                ));
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if single || double || escaped {
        return Err("is not a valid command line: an unterminated quote or escape".to_string());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A mapping `{K: V}` or a list `["K=V", "K"]`; a missing value is `None`.
pub(crate) fn key_values(value: &Value) -> Result<IndexMap<String, Option<String>>, String> {
    let mut out = IndexMap::new();
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let v = scalar(v).map_err(|e| format!("{k} {e}"))?;
                out.insert(k.clone(), v);
            }
        }
        Value::Array(items) => {
            for item in items {
                let item = string(item)?;
                match item.split_once('=') {
                    Some((k, v)) => out.insert(k.trim().to_string(), Some(v.to_string())),
                    None => out.insert(item.trim().to_string(), None),
                };
            }
        }
        _ => return Err("must be a mapping or a list".to_string()),
    }
    Ok(out)
}

/// `key_values` as a mapping value (list form converted), so files can be merged key by key.
pub(crate) fn key_values_as_map(value: &Value) -> Option<Value> {
    let kv = key_values(value).ok()?;
    Some(Value::Object(
        kv.into_iter()
            .map(|(k, v)| (k, v.map(Value::String).unwrap_or(Value::Null)))
            .collect(),
    ))
}

/// A list of names or a mapping of name → settings, as a mapping (for `networks` and
/// `depends_on`).
pub(crate) fn names_as_map(value: &Value) -> Option<Value> {
    match value {
        Value::Array(items) => {
            let mut map = Map::new();
            for item in items {
                map.insert(scalar(item).ok()??, Value::Null);
            }
            Some(Value::Object(map))
        }
        Value::Object(_) => Some(value.clone()),
        _ => None,
    }
}

/// The mount target of a volume entry (short or long syntax), used to merge volumes.
pub(crate) fn volume_target(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => {
            let parts = split_volume_spec(s);
            match parts.len() {
                1 => parts.first().cloned(),
                _ => parts.get(1).cloned(),
            }
        }
        Value::Object(map) => map.get("target").and_then(|t| scalar(t).ok().flatten()),
        _ => None,
    }
}

/// The target of a device entry, used to merge devices.
pub(crate) fn device_target(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => {
            let mut parts = s.split(':');
            let source = parts.next()?;
            Some(parts.next().unwrap_or(source).to_string())
        }
        Value::Object(map) => map
            .get("target")
            .or_else(|| map.get("source"))
            .and_then(|t| scalar(t).ok().flatten()),
        _ => None,
    }
}

/// Splits `source:target:mode`, keeping a Windows drive letter (`C:\x`) in one part.
pub(crate) fn split_volume_spec(spec: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for piece in spec.split(':') {
        let glue = parts.last().is_some_and(|last| {
            last.len() == 1
                && last.chars().all(|c| c.is_ascii_alphabetic())
                && piece.starts_with('\\')
                && parts.len() == 1
        });
        match (glue, parts.last_mut()) {
            (true, Some(last)) => {
                last.push(':');
                last.push_str(piece);
            }
            _ => parts.push(piece.to_string()),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::shell_words;

    #[test]
    fn shell_words_as_compose_splits_them() {
        assert_eq!(shell_words("npm start").unwrap(), ["npm", "start"]);
        assert_eq!(
            shell_words(r#"sh -c 'echo "$HOME" && ls'"#).unwrap(),
            ["sh", "-c", r#"echo "$HOME" && ls"#]
        );
        assert_eq!(
            shell_words(r#"a "b c" d\ e '' "#).unwrap(),
            ["a", "b c", "d e", ""]
        );
        assert_eq!(shell_words("  ").unwrap(), Vec::<String>::new());
        assert!(shell_words("a 'b").is_err());
        assert!(shell_words("a \\").is_err());
        assert!(shell_words("a && b").unwrap_err().contains("\"&\""));
        assert!(shell_words("a > log").is_err());
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn key_values_from_list_and_map() {
        let kv = key_values(&json!(["A=b=c", "B", " C =x"])).unwrap();
        assert_eq!(kv["A"].as_deref(), Some("b=c"));
        assert_eq!(kv["B"], None);
        assert_eq!(kv["C"].as_deref(), Some("x"));
        let kv = key_values(&json!({"N": 1, "T": true, "E": null})).unwrap();
        assert_eq!(kv["N"].as_deref(), Some("1"));
        assert_eq!(kv["T"].as_deref(), Some("true"));
        assert_eq!(kv["E"], None);
        assert!(key_values(&json!({"A": [1]})).is_err());
    }

    #[test]
    fn volume_spec_split() {
        assert_eq!(split_volume_spec("a:/b:ro"), ["a", "/b", "ro"]);
        assert_eq!(split_volume_spec("C:\\data:/d"), ["C:\\data", "/d"]);
        assert_eq!(volume_target(&json!("/only")).as_deref(), Some("/only"));
        assert_eq!(volume_target(&json!("v:/t:ro")).as_deref(), Some("/t"));
        assert_eq!(device_target(&json!("/dev/a")).as_deref(), Some("/dev/a"));
        assert_eq!(
            device_target(&json!("/dev/a:/dev/b")).as_deref(),
            Some("/dev/b")
        );
    }
}
