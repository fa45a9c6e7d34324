//! OData v7 shapes: `$filter` literals, record lookups and expanded properties.

use std::fmt;

use serde_json::Value;

/// An OData literal in a `$filter`.
#[derive(Debug, Clone)]
pub(super) enum Lit<'a> {
    Id(u64),
    Text(&'a str),
}

impl fmt::Display for Lit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Id(n) => write!(f, "{n}"),
            Lit::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

pub(super) fn odata_filter(clauses: &[(&str, Lit<'_>)]) -> String {
    clauses
        .iter()
        .map(|(field, lit)| format!("{field} eq {lit}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// How to find a record that a failed POST may have created anyway.
pub(super) struct Lookup<'a> {
    pub(super) filter: Vec<(&'a str, Lit<'a>)>,
    /// A check the server cannot do for us (timestamps compare badly as OData literals).
    pub(super) accept: Option<&'a (dyn Fn(&Value) -> bool + Sync)>,
}

impl<'a> Lookup<'a> {
    pub(super) fn by(filter: Vec<(&'a str, Lit<'a>)>) -> Lookup<'a> {
        Lookup {
            filter,
            accept: None,
        }
    }
}

/// Expanded navigation properties come as an array of one in v7 (or, leniently, an object).
pub(super) fn as_list(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn filters_quote_text() {
        assert_eq!(
            odata_filter(&[("a", Lit::Id(3)), ("b", Lit::Text("it's"))]),
            "a eq 3 and b eq 'it''s'"
        );
    }
}
