//! The smaller service fields with rules of their own: `extra_hosts`, `security_opt`,
//! `depends_on` and `devices`.

use serde_json::{Map, Value};

use super::{boolean, object};
use crate::values::{scalar, string, string_list};

pub(super) fn extra_hosts(value: &Value) -> Result<Vec<String>, String> {
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

pub(super) fn security_opt(option: &str) -> Result<String, String> {
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

pub(super) fn depends_on(service: &str, value: &Value) -> Result<Vec<String>, String> {
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

pub(super) fn devices(value: &Value) -> Result<Vec<String>, String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

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
}
