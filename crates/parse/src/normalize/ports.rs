//! A service's `ports`, short and long syntax, written as docker's short form (ranges
//! expanded as docker does).

use serde_json::{Map, Value};

use crate::values::{scalar, string};

pub(super) fn ports(value: &Value) -> Result<Vec<String>, String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

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
}
