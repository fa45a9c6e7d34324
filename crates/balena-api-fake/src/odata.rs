//! The small part of OData that the release client speaks: entity keys, `$filter` with `eq`
//! joined by `and`, `$orderby=id desc`, `$top`, `$expand` (recorded, mostly ignored).

use std::collections::BTreeMap;

use serde_json::Value;

/// An OData parse error; the fake answers it with 400 so clients never get silently
/// mismatched results.
#[derive(Debug)]
pub(crate) struct ODataError(pub(crate) String);

/// Decodes `%XX` escapes (and nothing else: `+` stays `+` in a path).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Form-style query pairs: `+` is a space, `%XX` decoded.
pub(crate) fn parse_query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// A literal in a key or filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Number(u64),
    Text(String),
    Null,
    Bool(bool),
}

impl Literal {
    fn parse(s: &str) -> Result<Literal, ODataError> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            return Ok(Literal::Text(inner.replace("''", "'")));
        }
        match s {
            "null" => Ok(Literal::Null),
            "true" => Ok(Literal::Bool(true)),
            "false" => Ok(Literal::Bool(false)),
            _ => s
                .parse()
                .map(Literal::Number)
                .map_err(|_| ODataError(format!("Unsupported literal: {s}"))),
        }
    }

    fn matches(&self, value: Option<&Value>) -> bool {
        match (self, value) {
            (Literal::Null, None | Some(Value::Null)) => true,
            (Literal::Number(n), Some(v)) => v.as_u64() == Some(*n),
            (Literal::Text(t), Some(v)) => v.as_str() == Some(t.as_str()),
            (Literal::Bool(b), Some(v)) => v.as_bool() == Some(*b),
            _ => false,
        }
    }
}

/// `field eq literal and …`.
#[derive(Debug, Clone)]
pub(crate) struct Filter(Vec<(String, Literal)>);

impl Filter {
    fn parse(s: &str) -> Result<Filter, ODataError> {
        let mut clauses = Vec::new();
        for clause in split_outside_quotes(s, " and ") {
            let (field, literal) = clause
                .split_once(" eq ")
                .ok_or_else(|| ODataError(format!("Unsupported $filter clause: {clause}")))?;
            let field = field.trim();
            if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ODataError(format!("Unsupported $filter field: {field}")));
            }
            clauses.push((field.to_owned(), Literal::parse(literal)?));
        }
        Ok(Filter(clauses))
    }

    pub(crate) fn matches(&self, record: &Value) -> bool {
        self.0.iter().all(|(f, l)| l.matches(record.get(f)))
    }
}

/// Splits on `sep` where it is not inside a quoted string.
fn split_outside_quotes<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if s.as_bytes()[i] == b'\'' {
            in_quotes = !in_quotes;
        } else if !in_quotes && s[i..].starts_with(sep) {
            parts.push(&s[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// An entity key: `(12)` or `(application=1,service_name='main')`.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Id(u64),
    Fields(BTreeMap<String, Literal>),
}

impl Key {
    pub(crate) fn matches(&self, record: &Value) -> bool {
        match self {
            Key::Id(id) => record.get("id").and_then(Value::as_u64) == Some(*id),
            Key::Fields(fields) => fields.iter().all(|(f, l)| l.matches(record.get(f))),
        }
    }
}

/// `resource` or `resource(key)`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) resource: String,
    pub(crate) key: Option<Key>,
}

pub(crate) fn parse_target(path: &str) -> Result<Target, ODataError> {
    let Some((resource, rest)) = path.split_once('(') else {
        return Ok(Target {
            resource: path.to_owned(),
            key: None,
        });
    };
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| ODataError(format!("Malformed key in {path}")))?;
    let key = if inner.contains('=') {
        let mut fields = BTreeMap::new();
        for part in split_outside_quotes(inner, ",") {
            let (f, l) = part
                .split_once('=')
                .ok_or_else(|| ODataError(format!("Malformed key part {part}")))?;
            fields.insert(f.trim().to_owned(), Literal::parse(l)?);
        }
        Key::Fields(fields)
    } else {
        Key::Id(
            inner
                .trim()
                .parse()
                .map_err(|_| ODataError(format!("Malformed id in {path}")))?,
        )
    };
    Ok(Target {
        resource: resource.to_owned(),
        key: Some(key),
    })
}

/// The system query options the fake honours.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub(crate) filter: Option<Filter>,
    pub(crate) order_id_desc: bool,
    pub(crate) top: Option<usize>,
    pub(crate) expand: String,
}

impl Query {
    pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Query, ODataError> {
        let mut q = Query::default();
        for (k, v) in pairs {
            match k.as_str() {
                "$filter" => q.filter = Some(Filter::parse(v)?),
                "$orderby" => match v.trim() {
                    "id desc" => q.order_id_desc = true,
                    "id asc" | "id" => q.order_id_desc = false,
                    other => return Err(ODataError(format!("Unsupported $orderby: {other}"))),
                },
                "$top" => {
                    q.top = Some(
                        v.parse()
                            .map_err(|_| ODataError(format!("Malformed $top: {v}")))?,
                    );
                }
                "$expand" => q.expand = v.clone(),
                // The fake answers every field; selecting is the client's business.
                "$select" => {}
                other if other.starts_with('$') => {
                    return Err(ODataError(format!("Unsupported option {other}")));
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_paths_and_queries() {
        assert_eq!(
            percent_decode("/v7/service(a=1,b=%27x%20y%27)"),
            "/v7/service(a=1,b='x y')"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(
            parse_query_pairs("%24filter=slug+eq+%27a%2Fb%27&x"),
            vec![
                ("$filter".to_owned(), "slug eq 'a/b'".to_owned()),
                ("x".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn filters_match_conjunctions_and_quoted_and() {
        let f = Filter::parse("commit eq 'a and b' and belongs_to__application eq 3").unwrap();
        assert!(f.matches(&json!({"commit": "a and b", "belongs_to__application": 3})));
        assert!(!f.matches(&json!({"commit": "a and b", "belongs_to__application": 4})));
        assert!(Filter::parse("id gt 3").is_err());
        let q = Filter::parse("name eq 'it''s'").unwrap();
        assert!(q.matches(&json!({"name": "it's"})));
    }

    #[test]
    fn parses_entity_keys() {
        let t = parse_target("service(application=1,service_name='main')").unwrap();
        assert_eq!(t.resource, "service");
        let key = t.key.unwrap();
        assert!(key.matches(&json!({"application": 1, "service_name": "main"})));
        assert!(!key.matches(&json!({"application": 1, "service_name": "other"})));
        let t = parse_target("image(42)").unwrap();
        assert!(t.key.unwrap().matches(&json!({"id": 42})));
        assert!(parse_target("image(x").is_err());
    }
}
