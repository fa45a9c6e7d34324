//! Every use of the YAML crate lives here, so it can be swapped without touching the rest.
//!
//! Documents are read by the one YAML parser (serde-saphyr) into a `serde_json::Value` tree
//! with compose interpolation already applied by the parser (so interpolation errors point at
//! the scalar at fault), merge keys expanded, and YAML 1.2 scalar rules (`no` stays a string,
//! `0755` stays a string).

mod emit;
mod items;
mod keys;

pub(crate) use items::item_lines;
pub(crate) use keys::key_position;

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use serde_json::Value;
use serde_saphyr::options::PropertySyntax;
use serde_saphyr::{Budget, Options};

use crate::error::YamlValueError;

/// A YAML or interpolation failure, with the 1-based position when the parser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// The parser's message without the position.
    pub message: String,
}

/// How many events aliases may replay in one document, all aliases together: the budget on
/// the *expanded* size that stops alias bombs (a billion laughs needs 10^9). An `x-common`
/// anchor of 40 events shared by 1,000 services costs 40,000; a 1 MB compose file of
/// anchors replayed flat stays well below.
const MAX_REPLAYED_EVENTS: usize = 500_000;

/// The longest mapping key read, in characters. YAML's own cap is 1,024, but compose files
/// have been read with longer keys (in documents up to 512 KiB), and a service name too long
/// to be an image name has a rule of its own, whose message says so.
const MAX_KEY_CHARS: usize = 512 * 1024;

/// Limits sized for compose files: generous for real projects (a few thousand lines), small
/// enough that alias bombs and deep nesting fail in milliseconds.
fn budget() -> Budget {
    let mut budget = Budget::default();
    budget.max_reader_input_bytes = Some(16 * 1024 * 1024);
    budget.max_events = 2_000_000;
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_recorded_anchor_events = 20_000;
    budget.max_recorded_anchor_bytes = 8 * 1024 * 1024;
    budget.max_depth = 64;
    budget.max_documents = 1;
    budget.max_nodes = 500_000;
    budget.max_total_scalar_bytes = 16 * 1024 * 1024;
    budget.max_merge_keys = 10_000;
    // The parser's default also refuses more than 10 aliases per anchor (past 100 aliases),
    // which refuses an anchor shared by 101 services. Expansion is bounded by
    // MAX_REPLAYED_EVENTS instead, which is what an alias bomb actually breaches.
    budget.enforce_alias_anchor_ratio = false;
    // A key's tokens wait for its `:` at most this far: a bounded buffer.
    budget.simple_key_max_lookahead = MAX_KEY_CHARS;
    budget
}

/// The YAML rules every document is read with: YAML 1.2 scalars, the budget, and no source
/// snippet in errors (the text around an error can be a password).
fn base_options() -> Options {
    let mut options = serde_saphyr::options! {
        budget: Some(budget()),
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    };
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    // Comments are never read; recording them only costs time.
    options.emit_comments = false;
    options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::AsString;
    options
}

fn options(properties: &HashMap<String, String>) -> Options {
    let mut options = base_options();
    options.property_syntax = PropertySyntax::DockerCompose;
    options.with_properties(properties.clone())
}

/// Reads a YAML document that is not a compose file (no interpolation) into a JSON tree.
/// An empty document gives `Value::Null`.
pub(crate) fn plain_document(text: &str) -> Result<Value, YamlValueError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(text, base_options()).map_err(|e| {
        let (line, column) = position(&e);
        match budget_message(&e) {
            Some(message) => YamlValueError::Limit {
                line,
                column,
                message,
            },
            None => YamlValueError::Syntax {
                message: e.to_string(),
            },
        }
    })
}

/// Parses one YAML document, interpolating `${VAR}` forms from `properties`.
///
/// An empty document gives `Value::Null`.
pub(crate) fn parse_document(
    text: &str,
    properties: &HashMap<String, String>,
) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(text, options(properties)).map_err(|e| {
        let (line, column) = position(&e);
        YamlError {
            line,
            column,
            message: message(&e),
        }
    })
}

fn position(e: &serde_saphyr::Error) -> (u64, u64) {
    e.location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0))
}

/// The parser's message, without its position (ours is reported separately) and with a
/// sentence instead of the parser's `Debug` dump for a breached limit.
fn message(e: &serde_saphyr::Error) -> String {
    budget_message(e).unwrap_or_else(|| strip_position(&e.to_string()))
}

/// Plain words for the limits that stop hostile documents.
fn budget_message(mut e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = e {
        e = error;
    }
    let limit = budget();
    let text = match e {
        E::AliasReplayLimitExceeded { .. } | E::AliasReplayCounterOverflow { .. } => format!(
            "aliases expand to more than {MAX_REPLAYED_EVENTS} YAML nodes in total \
             (an alias bomb?); expand fewer or smaller anchors"
        ),
        E::AliasExpansionLimitExceeded { expansions, .. } => {
            format!("an anchor is expanded more than {expansions} times")
        }
        E::AliasReplayStackDepthExceeded { max_depth, .. } => {
            format!("aliases nest more than {max_depth} levels deep")
        }
        E::Budget { breach, .. } => match breach {
            B::Events { .. } => format!("more than {} YAML events", limit.max_events),
            B::Aliases { .. } => format!("more than {} aliases", limit.max_aliases),
            B::Anchors { .. } => format!("more than {} anchors", limit.max_anchors),
            B::Depth { .. } => format!("nested more than {} levels deep", limit.max_depth),
            B::Documents { .. } => "more than one YAML document (---)".to_string(),
            B::Nodes { .. } => format!("more than {} YAML nodes", limit.max_nodes),
            B::ScalarBytes { .. } => format!(
                "more than {} bytes of scalar values",
                limit.max_total_scalar_bytes
            ),
            B::MergeKeys { .. } => format!("more than {} merge keys (<<)", limit.max_merge_keys),
            B::InputBytes { .. } => format!(
                "the file is larger than {} bytes",
                limit.max_reader_input_bytes.unwrap_or_default()
            ),
            B::SequenceUnbalanced => "unbalanced YAML structure".to_string(),
            B::RecordedAnchorEvents { .. } => format!(
                "anchors hold more than {} YAML events once their aliases are expanded \
                 (an alias bomb?)",
                limit.max_recorded_anchor_events
            ),
            B::RecordedAnchorBytes { .. } => format!(
                "anchors hold more than {} bytes once their aliases are expanded (an alias bomb?)",
                limit.max_recorded_anchor_bytes
            ),
            B::PropertyExpansionDepth { .. } | B::PropertyInterpolationWork { .. } => {
                "variable interpolation nests too deeply or does too much work".to_string()
            }
            _ => "a YAML size limit was exceeded".to_string(),
        },
        _ => return None,
    };
    Some(format!("document too large or too deep: {text}"))
}

/// The parser appends or prepends its own position; ours is reported separately.
fn strip_position(message: &str) -> String {
    static TRAILING: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"\s*\(?at line \d+,? column \d+\)?$").ok());
    static LEADING: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"^line \d+,? column \d+:\s*").ok());
    let mut text = message.trim().to_string();
    for re in [&*TRAILING, &*LEADING].into_iter().flatten() {
        text = re.replace(&text, "").into_owned();
    }
    text
}

/// Renders `value` as a block-style YAML document.
pub(crate) fn to_yaml(value: &Value) -> String {
    emit::document(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn yaml_1_2_scalars_stay_strings() {
        let v = parse_document("a: no\nb: 0755\nc: on\nd: true\ne: 1_000\n", &env(&[])).unwrap();
        assert_eq!(v["a"], "no");
        assert_eq!(v["b"], "0755");
        assert_eq!(v["c"], "on");
        assert_eq!(v["d"], true);
        assert_eq!(v["e"], "1_000");
    }

    #[test]
    fn merge_keys_and_interpolation() {
        let text = "x: &x {restart: always}\ns:\n  <<: *x\n  image: \"nginx:${TAG:-latest}\"\n  port: $$HOME\n";
        let v = parse_document(text, &env(&[])).unwrap();
        assert_eq!(v["s"]["restart"], "always");
        assert_eq!(v["s"]["image"], "nginx:latest");
        assert_eq!(v["s"]["port"], "$HOME");
    }

    #[test]
    fn required_variable_error_has_position() {
        let err = parse_document("a:\n  b: ${IMG:?IMG must be set}\n", &env(&[])).unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        assert!(err.message.contains("IMG must be set"), "{err:?}");
        assert!(!err.message.contains("line 2"), "{err:?}");
    }

    /// `levels` anchors, each a list of ten aliases of the one before: 10^levels nodes.
    fn alias_bomb(levels: usize) -> String {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..levels {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        text
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let text = alias_bomb(12);
        let start = std::time::Instant::now();
        let err = parse_document(&text, &env(&[])).unwrap_err();
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "{took:?} {err:?}");
    }

    #[test]
    fn alias_bomb_message_is_plain_words() {
        let text = alias_bomb(9);
        let err = parse_document(&text, &env(&[])).unwrap_err();
        assert!(err.message.contains("(an alias bomb?)"), "{err:?}");
        assert!(!err.message.contains('{'), "a Debug dump: {err:?}");
        assert!(err.line > 0, "{err:?}");
    }

    #[test]
    fn a_plain_document_error_says_where_and_what() {
        let err = plain_document(&alias_bomb(9)).unwrap_err();
        assert!(
            matches!(err, YamlValueError::Limit { line, .. } if line > 0),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with("line "), "{text}");
        assert!(text.contains(" column "), "{text}");
        assert!(text.contains("(an alias bomb?)"), "{text}");
        let err = plain_document("a: [1\nb: 2\n").unwrap_err();
        assert!(matches!(err, YamlValueError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn an_anchor_shared_by_many_services_loads() {
        let mut text = String::from(
            "x-common: &common\n  restart: always\n  labels: {a: b, c: d}\n  environment: [A=1, B=2]\nservices:\n",
        );
        for i in 0..600 {
            text.push_str(&format!("  s{i}:\n    <<: *common\n    image: x\n"));
        }
        let v = parse_document(&text, &env(&[])).unwrap();
        assert_eq!(v["services"]["s599"]["restart"], "always");
        assert_eq!(v["services"]["s0"]["labels"]["c"], "d");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_document(&text, &env(&[])).is_err());
    }
}
