//! Value parsing shared by the mappings: compose values (strings, lists, maps, sizes,
//! durations, ports, commands) and the names and labels every direction normalises alike.

use std::collections::BTreeMap;
use std::str::Chars;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::model::PortMapping;

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

/// `K=V` strings (an engine's `Env`) as a map; an entry without `=` is dropped.
pub(super) fn env_map<'a>(
    entries: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

static ENV_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").ok());

/// Whether `name` may name an environment variable.
pub(super) fn is_env_name(name: &str) -> bool {
    ENV_NAME.as_ref().is_some_and(|r| r.is_match(name))
}

/// A feature label's value turned on.
pub(super) fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("1" | "true" | "on"))
}

pub(super) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Security options without the `label=…` ones, sorted.
pub(super) fn without_selinux_labels(options: Vec<String>) -> Vec<String> {
    sorted(
        options
            .into_iter()
            .filter(|o| !o.starts_with("label="))
            .collect(),
    )
}

pub(super) fn bool_of(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "yes" | "on"),
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// A string (→ `[s]`) or a list of scalars.
pub(super) fn string_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(other) => Err(format!("expected a string or a list, got {other}")),
    }
}

pub(super) fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a scalar, got {other}")),
    }
}

/// A map or a `K=V` list.
pub(super) fn key_values(v: &Value) -> Result<BTreeMap<String, String>, String> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), scalar_or_empty(v)?)))
            .collect(),
        Value::Array(items) => items.iter().map(|i| Ok(key_value(scalar(i)?))).collect(),
        other => Err(format!(
            "expected a map or a list of KEY=VALUE, got {other}"
        )),
    }
}

fn scalar_or_empty(v: &Value) -> Result<String, String> {
    if v.is_null() {
        Ok(String::new())
    } else {
        scalar(v)
    }
}

fn key_value(s: String) -> (String, String) {
    match s.split_once('=') {
        Some((k, v)) => (k.to_owned(), v.to_owned()),
        None => (s, String::new()),
    }
}

/// A command: a list as-is, a string split like a POSIX shell would (quotes, backslashes).
pub(super) fn string_or_argv(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => shell_split(s),
        Value::Array(_) => string_list(Some(v)),
        Value::Null => Ok(Vec::new()),
        other => Err(format!("expected a string or a list, got {other}")),
    }
}

/// Splits a command string into words: single quotes are literal, double quotes allow
/// backslash escapes, unquoted backslash escapes the next character.
pub(super) fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => single_quoted(&mut chars, &mut word)
                .ok_or_else(|| format!("unterminated single quote in {s:?}"))?,
            '"' => double_quoted(&mut chars, &mut word)
                .ok_or_else(|| format!("unterminated double quote in {s:?}"))?,
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                continue;
            }
            c => word.push(c),
        }
        in_word = true;
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The rest of a single-quoted string into `word`; `None` when the quote is not closed.
fn single_quoted(chars: &mut Chars<'_>, word: &mut String) -> Option<()> {
    loop {
        match chars.next()? {
            '\'' => return Some(()),
            c => word.push(c),
        }
    }
}

/// The rest of a double-quoted string into `word`; `None` when the quote is not closed.
fn double_quoted(chars: &mut Chars<'_>, word: &mut String) -> Option<()> {
    loop {
        match chars.next()? {
            '"' => return Some(()),
            '\\' => match chars.next()? {
                c @ ('"' | '\\' | '$' | '`') => word.push(c),
                c => {
                    word.push('\\');
                    word.push(c);
                }
            },
            c => word.push(c),
        }
    }
}

/// Ports: `[[ip:]host[-host]:]container[-container][/proto]` strings, numbers, or long syntax
/// maps; ranges are expanded one mapping per port.
pub(super) fn parse_ports(v: &Value) -> Result<Vec<PortMapping>, String> {
    let Value::Array(items) = v else {
        return Err("expected a list".to_owned());
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Object(m) => out.push(long_port(m, item)?),
            other => out.extend(parse_port_spec(&scalar(other)?)?),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A port in the long syntax (`target`, `published`, `host_ip`, `protocol`).
fn long_port(m: &Map<String, Value>, item: &Value) -> Result<PortMapping, String> {
    let target = m
        .get("target")
        .and_then(|t| scalar(t).ok())
        .and_then(|t| t.parse::<u16>().ok())
        .ok_or_else(|| format!("port {item}: missing or invalid target"))?;
    let text = |key: &str, default: &str| {
        m.get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    Ok(PortMapping {
        container_port: target,
        protocol: text("protocol", "tcp"),
        host_ip: text("host_ip", ""),
        host_port: m
            .get("published")
            .map(scalar)
            .transpose()?
            .unwrap_or_default(),
    })
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
    let range = |s: &str| port_range(s).ok_or_else(bad);
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

/// `a-b` or `a` (= `a-a`), first not after last.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().ok()?;
    let b: u16 = b.trim().parse().ok()?;
    (a <= b).then_some((a, b))
}

/// A device `host[:container[:perms]]` with the defaults written out.
pub(super) fn normalise_device(d: &str) -> String {
    let parts: Vec<&str> = d.split(':').collect();
    match parts.as_slice() {
        [h] => format!("{h}:{h}:rwm"),
        [h, c] => format!("{h}:{c}:rwm"),
        _ => d.to_owned(),
    }
}

/// A compose size (`64m`, `1g`, a number of bytes) in bytes; absent is 0.
pub(super) fn memory_of(v: Option<&Value>) -> Result<i64, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("invalid size {n}")),
        Some(Value::String(s)) => size_of(s),
        Some(other) => Err(format!("invalid size {other}")),
    }
}

fn size_of(s: &str) -> Result<i64, String> {
    static MEM: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)^(\d+)([bkmg]?)b?$").ok());
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

/// A compose duration (`10`, `1m30s`, `500ms`) in whole seconds.
pub(super) fn parse_duration_secs(v: &Value) -> Result<i64, String> {
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
        while let Some(n) = chars.next_if(char::is_ascii_alphabetic) {
            unit.push(n);
        }
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        let seconds = unit_seconds(&unit)
            .ok_or_else(|| format!("invalid duration unit {unit:?} in {s:?}"))?;
        total += n * seconds;
    }
    if !num.is_empty() {
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    Ok(total as i64)
}

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "h" => 3600.0,
        "m" => 60.0,
        "s" => 1.0,
        "ms" => 0.001,
        "us" => 0.000_001,
        _ => return None,
    })
}
