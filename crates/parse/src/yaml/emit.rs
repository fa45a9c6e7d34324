//! Writes a JSON tree as a block-style YAML document.
//!
//! A composition is a tree of strings, numbers, booleans, maps and lists, so writing it needs
//! none of a general serializer's machinery; doing it directly cost a fifth of what the
//! serializer did for `config` on 50 services. A string is written plain only when it is
//! plainly a string under rules stricter than YAML's ([`reads_plain_as_itself`]), which every
//! YAML parser agrees with; otherwise it is double-quoted with every character that YAML
//! treats specially escaped. The tests read every emitted document back with the parser.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// `value` as a YAML document, ending in a newline.
pub(crate) fn document(value: &Value) -> String {
    let mut out = String::with_capacity(4096);
    match value {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        other => {
            scalar_or_empty(other, &mut out);
            out.push('\n');
        }
    }
    out
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Entries at `indent`; the first starts where `out` ends (after a sequence's `- `, or at
/// the start of a line already padded).
fn mapping(map: &Map<String, Value>, indent: usize, out: &mut String) {
    for (n, (key, value)) in map.iter().enumerate() {
        if n > 0 {
            pad(indent, out);
        }
        string(key, out);
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                pad(indent + 2, out);
                mapping(inner, indent + 2, out);
            }
            // A sequence sits at its key's indentation, as compose files usually write it.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                pad(indent, out);
                sequence(items, indent, out);
            }
            other => {
                out.push(' ');
                scalar_or_empty(other, out);
                out.push('\n');
            }
        }
    }
}

/// Items at `indent`; the first `- ` is written where `out` ends.
fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            pad(indent, out);
        }
        out.push_str("- ");
        match item {
            Value::Object(inner) if !inner.is_empty() => mapping(inner, indent + 2, out),
            Value::Array(inner) if !inner.is_empty() => sequence(inner, indent + 2, out),
            other => {
                scalar_or_empty(other, out);
                out.push('\n');
            }
        }
    }
}

/// A scalar, or an empty collection in flow style.
fn scalar_or_empty(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(s, out),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn string(s: &str, out: &mut String) {
    if reads_plain_as_itself(s) && !yaml_1_1_lookalike(s) {
        out.push_str(s);
    } else {
        double_quoted(s, out);
    }
}

/// Whether `s`, written plain, reads back as the string `s` in any YAML parser: printable
/// ASCII without flow indicators, no comment or `key: ` inside, no indicator first (a `-word`
/// aside), and nothing that reads as null, a boolean or a number in any notation.
fn reads_plain_as_itself(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    let dash_word = first == b'-' && bytes.get(1).is_some_and(|&b| b != b' ');
    let mut previous = b' ';
    for &b in bytes {
        let breaks = match b {
            b' ' => previous == b':',
            b'#' => previous == b' ',
            b'[' | b']' | b'{' | b'}' | b',' => true,
            _ => !(b' '..=b'~').contains(&b),
        };
        if breaks {
            return false;
        }
        previous = b;
    }
    first != b' '
        && !s.ends_with([' ', ':'])
        && (!is_indicator(first) || dash_word)
        && s != "<<" // a merge key
        && !s.starts_with("---")
        && !s.starts_with("...")
        && is_plain_string(s)
}

/// Characters that may not start a plain scalar (or start one only in ways not worth
/// telling apart here).
fn is_indicator(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// Whether a plain scalar is certainly a string under the YAML 1.2 core schema: not null, a
/// boolean, a decimal integer, nor anything that might be a number in some notation (hex,
/// octal, floats, exponents, `.inf`) or a near-miss of those words (`nULL`).
fn is_plain_string(s: &str) -> bool {
    if matches!(
        s,
        "null"
            | "Null"
            | "NULL"
            | "~"
            | ""
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
    ) {
        return false;
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let word = unsigned.strip_prefix('.').unwrap_or(unsigned);
    if (3..=8).contains(&word.len())
        && ["null", "true", "false", "inf", "infinity", "nan"]
            .iter()
            .any(|special| word.eq_ignore_ascii_case(special))
    {
        return false;
    }
    let Some(&first) = unsigned.as_bytes().first() else {
        return false;
    };
    if first.is_ascii_digit() || first == b'.' {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let decimal = digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && digits.len() <= 18
            && s != "-0";
        if decimal {
            return false;
        }
        let bytes = s.as_bytes();
        let numeric_looking = bytes.iter().enumerate().all(|(i, &b)| match b {
            // A sign only leads the number or its exponent (`2024-01-01` is a string).
            b'+' | b'-' => i == 0 || matches!(bytes[i - 1], b'e' | b'E'),
            _ => b.is_ascii_hexdigit() || matches!(b, b'x' | b'X' | b'o' | b'O' | b'.' | b'_'),
        }) && bytes.iter().filter(|&&b| b == b'.').count() <= 1; // `127.0.0.1` is a string
        if numeric_looking {
            return false;
        }
    }
    true
}

/// Strings that YAML 1.2 reads as strings but YAML 1.1 readers (PyYAML, older Go and JS
/// libraries, and so older docker-compose) read as a boolean, a base-60 number or a date.
/// They are quoted so that the output means the same to every tool.
fn yaml_1_1_lookalike(s: &str) -> bool {
    const BOOLEANS: [&str; 6] = ["y", "n", "yes", "no", "on", "off"];
    if BOOLEANS.iter().any(|b| s.eq_ignore_ascii_case(b)) {
        return true;
    }
    let bytes = s.as_bytes();
    // A date or timestamp: `2024-01-01`, `2024-1-1T10:00:00Z`.
    if bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' {
        return true;
    }
    // Base 60: `1:30`, `-190:20:30`, `1:30.5`; but not `8000:80` (80 is not a base-60 digit).
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = unsigned.split(':');
    let head = parts.next().unwrap_or_default();
    let mut sexagesimal = head.starts_with(|c: char| c.is_ascii_digit())
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let mut count = 0;
    for part in parts {
        count += 1;
        let digits = part.split_once('.').map_or(part, |(whole, _)| whole);
        sexagesimal &= match digits.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        };
    }
    sexagesimal && count > 0
}

/// A double-quoted scalar. Everything outside YAML's printable set is escaped, and so are
/// the characters some YAML 1.1 readers take for line breaks or a byte-order mark.
fn double_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..
                if !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                out.push(c)
            }
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn value() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            any::<String>(),
            "[ -~]{0,12}",
            prop::sample::select(vec![
                "",
                " ",
                "a b",
                "8000:80",
                "--serve",
                "-",
                "- a",
                "a: b",
                "a #b",
                "#",
                "yes",
                "null",
                "~",
                "True",
                "0",
                "007",
                "1.5",
                "0x1F",
                ".inf",
                "127.0.0.1",
                "'",
                "\"",
                "\\",
                "\u{85}",
                "\u{2028}",
                "\u{feff}",
                "\u{7f}",
                "\u{0}",
                "[x]",
                "{}",
                "&a",
                "*a",
                "!x",
                "|",
                ">",
                "%x",
                "@x",
                "`x",
                "?x",
                ":x",
                "---",
                "...",
                "<<",
                "é",
            ])
            .prop_map(str::to_string),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// What is written reads back as the same tree.
        #[test]
        fn emitted_documents_read_back_the_same(value in value()) {
            let text = document(&value);
            let read = super::super::plain_document(&text)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&read, &value, "document:\n{}", text);
        }
    }

    #[test]
    fn strings_other_yaml_readers_take_for_something_else_are_quoted() {
        for quoted in [
            "yes",
            "No",
            "ON",
            "y",
            "1:30",
            "-190:20:30",
            "1:30.5",
            "2024-01-01",
        ] {
            assert_eq!(
                document(&json!(quoted)),
                format!("\"{quoted}\"\n"),
                "{quoted}"
            );
        }
        for plain in [
            "8000:80",
            "9000:9000/udp",
            "yesterday",
            "1:300",
            "2024/01",
            "a:1:30",
        ] {
            assert_eq!(document(&json!(plain)), format!("{plain}\n"), "{plain}");
        }
    }

    #[test]
    fn compose_style() {
        let value = json!({
            "services": {"app": {
                "ports": ["8000:80"],
                "command": ["--serve", "80"],
                "environment": {"EMPTY": "", "A": "a b"},
                "networks": {"default": null},
                "privileged": false,
                "labels": {},
                "healthcheck": {"test": [["CMD"], []]},
                "items": [{"a": 1, "b": {"c": "d"}}],
            }},
        });
        let expected = "\
services:
  app:
    ports:
    - 8000:80
    command:
    - --serve
    - \"80\"
    environment:
      EMPTY: \"\"
      A: a b
    networks:
      default: null
    privileged: false
    labels: {}
    healthcheck:
      test:
      - - CMD
      - []
    items:
    - a: 1
      b:
        c: d
";
        assert_eq!(document(&value), expected);
    }
}
