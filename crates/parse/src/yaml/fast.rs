//! A fast reader for the plain YAML that nearly every compose file is written in.
//!
//! Reading a 50-service compose file through the full YAML parser cost 22M instructions,
//! two thirds of `balena-compose config`. Compose files almost always use a small part of
//! YAML: block mappings and sequences, one-line plain and quoted scalars, one-line flow
//! collections and comments. This module reads exactly that part, straight into the JSON
//! tree, in one pass over the lines.
//!
//! Compose interpolation is done the way the full parser does it: a scalar value (outside a
//! flow collection) with a `$` in it is a string, its `$$`, `$NAME`, `${NAME}`, `${NAME:-default}` and
//! `${NAME-default}` replaced (an unset variable without a default is empty).
//!
//! It never decides anything the full parser might decide differently: whenever it meets
//! something outside that part — an anchor, alias, tag, merge key, block or multi-line
//! scalar, any other interpolation form (`${NAME:?error}` among them), a tab, a carriage
//! return, non-ASCII text, a duplicate key, a scalar that could be a number in some YAML
//! dialect, anything odd at all — it returns `None` and the full parser reads the document
//! from the start. So it has no errors of its own: every error, with its position, comes
//! from the full parser. The tests compare both readers on generated documents.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

/// What a `$` in a scalar value means.
#[derive(Clone, Copy)]
pub(crate) enum Dollars<'v> {
    /// Nothing: the document is not a compose file.
    Literal,
    /// Compose interpolation from these variables.
    Interpolate(&'v HashMap<String, String>),
}

/// Documents larger than this go to the full parser, whose budget (nodes, scalar bytes)
/// this reader does not count: 512 KiB cannot hold more nodes than the budget allows.
const MAX_BYTES: usize = 512 * 1024;

/// Nesting deeper than this goes to the full parser, which enforces the depth limit.
/// Block and flow nesting each stop here, so together they stay below the budget's 64.
const MAX_DEPTH: usize = 24;

/// Reads `text` if it lies within the plain part of YAML this module handles; `None`
/// otherwise (which says nothing about whether the document is valid).
pub(crate) fn document(text: &str, dollars: Dollars<'_>) -> Option<Value> {
    if text.len() > MAX_BYTES
        || !text
            .bytes()
            .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let mut lines = Vec::with_capacity(text.len() / 16);
    for raw in text.split('\n') {
        if raw.starts_with("---") || raw.starts_with("...") || raw.starts_with('%') {
            return None;
        }
        let body = raw.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        lines.push(Line {
            indent: raw.len() - body.len(),
            text: body.trim_end_matches(' '),
        });
    }
    let mut reader = Reader {
        lines,
        pos: 0,
        depth: 0,
        dollars,
    };
    let first = reader.next()?;
    let value = reader.block_node(first)?;
    // Anything left over sits less indented than the first line: not one document.
    if reader.pos != reader.lines.len() {
        return None;
    }
    Some(value)
}

/// One line with content: its indentation and its text without the indentation or
/// trailing spaces (comments are still in it).
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

struct Reader<'a, 'v> {
    lines: Vec<Line<'a>>,
    pos: usize,
    depth: usize,
    dollars: Dollars<'v>,
}

impl<'a> Reader<'a, '_> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<Line<'a>> {
        let line = self.peek()?;
        self.pos += 1;
        Some(line)
    }

    /// A block collection whose first line is `line` (already consumed).
    fn block_node(&mut self, line: Line<'a>) -> Option<Value> {
        if is_sequence_entry(line.text) {
            self.sequence(line.indent, line.text)
        } else {
            self.mapping(line.indent, line.text).map(Value::Object)
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// A block mapping at `indent` whose first entry is `text` (which may start mid-line,
    /// after a sequence entry's `- `).
    fn mapping(&mut self, indent: usize, mut text: &'a str) -> Option<Map<String, Value>> {
        self.enter()?;
        let mut map = Map::new();
        loop {
            let (key, rest) = split_key(text)?;
            if key == "<<" || map.contains_key(&key) {
                return None;
            }
            let value = self.value_after_key(indent, rest)?;
            map.insert(key, value);
            match self.peek() {
                Some(line) if line.indent == indent && !is_sequence_entry(line.text) => {
                    self.pos += 1;
                    text = line.text;
                }
                Some(line) if line.indent >= indent => return None,
                _ => break,
            }
        }
        self.depth -= 1;
        Some(map)
    }

    /// The value of a mapping entry at `indent`: `rest` is what follows `key:` on its line.
    fn value_after_key(&mut self, indent: usize, rest: &'a str) -> Option<Value> {
        let rest = rest.trim_start_matches(' ');
        if !rest.is_empty() && !rest.starts_with('#') {
            let value = inline_value(rest, self.dollars)?;
            return self.ends_here(indent).then_some(value);
        }
        match self.peek() {
            Some(line) if line.indent > indent => {
                self.pos += 1;
                self.block_node(line)
            }
            // A sequence may sit at its key's own indentation.
            Some(line) if line.indent == indent && is_sequence_entry(line.text) => {
                self.pos += 1;
                self.sequence(indent, line.text)
            }
            _ => Some(Value::Null),
        }
    }

    /// Whether the node that began on the previous line ends there: a deeper next line
    /// would continue a multi-line scalar (or be an error).
    fn ends_here(&self, indent: usize) -> bool {
        self.peek().is_none_or(|line| line.indent <= indent)
    }

    /// A block sequence at `indent` whose first entry's line is `text`.
    fn sequence(&mut self, indent: usize, mut text: &'a str) -> Option<Value> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            let after_dash = text.strip_prefix('-')?;
            let item = after_dash.trim_start_matches(' ');
            // A bare `-` (a null or a nested block) or `- -` (a nested sequence): rare.
            if item.is_empty() || item.starts_with('#') || is_sequence_entry(item) {
                return None;
            }
            let column = indent + 1 + (after_dash.len() - item.len());
            if split_key(item).is_some() {
                items.push(Value::Object(self.mapping(column, item)?));
            } else {
                items.push(inline_value(item, self.dollars)?);
                if !self.ends_here(indent) {
                    return None;
                }
            }
            match self.peek() {
                Some(line) if line.indent == indent && is_sequence_entry(line.text) => {
                    self.pos += 1;
                    text = line.text;
                }
                Some(line) if line.indent > indent => return None,
                _ => break,
            }
        }
        self.depth -= 1;
        Some(Value::Array(items))
    }
}

fn is_sequence_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Splits a block mapping entry into its key and what follows the `:`; `None` when `text`
/// is not a plain one-line `key: …` with a string key.
fn split_key(text: &str) -> Option<(String, &str)> {
    let first = *text.as_bytes().first()?;
    if first == b'"' || first == b'\'' {
        let (key, rest) = quoted(text)?;
        let rest = rest.trim_start_matches(' ');
        let rest = rest.strip_prefix(':')?;
        return (rest.is_empty() || rest.starts_with(' ')).then_some((key, rest));
    }
    if is_indicator(first) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                let key = text[..i].trim_end_matches(' ');
                if classify(key)? != Plain::Str {
                    return None;
                }
                return Some((key.to_string(), &text[i + 1..]));
            }
            b'#' if bytes[i - 1] == b' ' => return None,
            b'[' | b']' | b'{' | b'}' | b',' | b'"' | b'\'' | b'$' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `s`, written plain, reads back as the string `s` — here and in any YAML parser
/// (the fast reader's rules are stricter than YAML's).
pub(super) fn reads_plain_as_itself(s: &str) -> bool {
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
        && classify(s) == Some(Plain::Str)
}

/// Characters that may not start a plain scalar (or start one only in ways not worth
/// handling here).
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

/// A value written on the rest of a line: a quoted scalar, a flow collection or a plain
/// scalar, then at most a comment.
fn inline_value(text: &str, dollars: Dollars<'_>) -> Option<Value> {
    let interpolating = match dollars {
        Dollars::Interpolate(variables) => Some(variables),
        Dollars::Literal => None,
    };
    match text.as_bytes().first()? {
        b'"' | b'\'' => {
            let (value, rest) = quoted(text)?;
            if !only_comment(rest) {
                return None;
            }
            match interpolating {
                Some(variables) if value.contains('$') => interpolate(&value, variables),
                _ => Some(value),
            }
            .map(Value::String)
        }
        b'[' | b'{' => {
            let mut flow = Flow { text, pos: 0 };
            let value = flow.node(0)?;
            let written = &text[..flow.pos];
            if interpolating.is_some() && written.contains('$') {
                return None;
            }
            only_comment(&text[flow.pos..]).then_some(value)
        }
        _ => {
            let end = text.find(" #").unwrap_or(text.len());
            let scalar = text[..end].trim_end_matches(' ');
            let starts_dash_word = scalar.len() > 1 && scalar.as_bytes()[1] != b' ';
            if scalar.contains(": ")
                || scalar.ends_with(':')
                || (is_indicator(scalar.as_bytes()[0])
                    && !(scalar.starts_with('-') && starts_dash_word))
            {
                return None;
            }
            match interpolating {
                // Interpolated, a scalar is a string whatever it reads like.
                Some(variables) if scalar.contains('$') => {
                    interpolate(scalar, variables).map(Value::String)
                }
                _ => plain_scalar(scalar),
            }
        }
    }
}

/// Compose interpolation of one scalar, for the forms named in the module documentation;
/// `None` for any other use of `$`.
fn interpolate(text: &str, variables: &HashMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (expression, tail) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}')?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let name_end = expression
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expression.len());
        let name = &expression[..name_end];
        if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return None;
        }
        let value = variables.get(name).map(String::as_str);
        let operator = &expression[name_end..];
        let replacement = if operator.is_empty() {
            value.unwrap_or("")
        } else if let Some(default) = operator.strip_prefix(":-") {
            value.filter(|v| !v.is_empty()).unwrap_or(default)
        } else if let Some(default) = operator.strip_prefix('-') {
            value.unwrap_or(default)
        } else {
            return None;
        };
        // Nested interpolation, or a value that might be read again: the full parser's job.
        if replacement.contains(['$', '{']) {
            return None;
        }
        out.push_str(replacement);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

/// Whether `rest`, after a closed scalar or collection, holds nothing but a comment.
fn only_comment(rest: &str) -> bool {
    let trimmed = rest.trim_start_matches(' ');
    trimmed.is_empty() || (trimmed.len() < rest.len() && trimmed.starts_with('#'))
}

/// A one-line quoted scalar at the start of `text`, and what follows its closing quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let quote = *text.as_bytes().first()?;
    let body = &text[1..];
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (b'\'', '\'') => {
                if body[i + 1..].starts_with('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Some((out, &body[i + 1..]));
                }
            }
            (b'"', '"') => return Some((out, &body[i + 1..])),
            (b'"', '\\') => {
                let (_, escaped) = chars.next()?;
                out.push(match escaped {
                    '\\' => '\\',
                    '"' => '"',
                    '/' => '/',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    _ => return None,
                });
            }
            _ => out.push(c),
        }
    }
    // Not closed on this line: a multi-line scalar.
    None
}

/// What a plain scalar reads as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    Str,
}

/// A plain scalar's value under the rules the full parser is configured with (YAML 1.2
/// core schema; `yes`/`no`, `0755` and `1_000` stay strings). `None` for anything that might
/// be a number in some notation, or a near-miss of `null`/`true`/`false`.
fn plain_scalar(s: &str) -> Option<Value> {
    Some(match classify(s)? {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(n) => Value::Number(Number::from(n)),
        Plain::Str => Value::String(s.to_string()),
    })
}

fn classify(s: &str) -> Option<Plain> {
    match s {
        "null" | "Null" | "NULL" | "~" | "" => return Some(Plain::Null),
        "true" | "True" | "TRUE" => return Some(Plain::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Plain::Bool(false)),
        _ => {}
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let word = unsigned.strip_prefix('.').unwrap_or(unsigned);
    if (3..=8).contains(&word.len())
        && ["null", "true", "false", "inf", "infinity", "nan"]
            .iter()
            .any(|special| word.eq_ignore_ascii_case(special))
    {
        return None;
    }
    let &first = unsigned.as_bytes().first()?;
    if first.is_ascii_digit() || first == b'.' {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let decimal = digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && digits.len() <= 18
            && s != "-0";
        if decimal {
            return s.parse::<i64>().ok().map(Plain::Int);
        }
        // Hex, octal, binary, floats, exponents, underscores, leading zeros: whatever the
        // full parser makes of them, it decides.
        let bytes = s.as_bytes();
        let numeric_looking = bytes.iter().enumerate().all(|(i, &b)| match b {
            // A sign only leads the number or its exponent (`2024-01-01` is a string).
            b'+' | b'-' => i == 0 || matches!(bytes[i - 1], b'e' | b'E'),
            _ => b.is_ascii_hexdigit() || matches!(b, b'x' | b'X' | b'o' | b'O' | b'.' | b'_'),
        }) && bytes.iter().filter(|&&b| b == b'.').count() <= 1; // `127.0.0.1` is a string
        if numeric_looking {
            return None;
        }
    }
    Some(Plain::Str)
}

/// A one-line flow collection (`[a, 'b']`, `{k: v}`) read from `text[pos..]`.
struct Flow<'a> {
    text: &'a str,
    pos: usize,
}

impl Flow<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn node(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'[' => {
                let mut items = Vec::new();
                if self.open_empty(b']') {
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.node(depth + 1)?);
                    if self.close_or_comma(b']')? {
                        return Some(Value::Array(items));
                    }
                }
            }
            b'{' => {
                let mut map = Map::new();
                if self.open_empty(b'}') {
                    return Some(Value::Object(map));
                }
                loop {
                    let key = match self.node(depth + 1)? {
                        Value::String(key) => key,
                        _ => return None,
                    };
                    if self.peek() != Some(b':') || key == "<<" || map.contains_key(&key) {
                        return None;
                    }
                    self.pos += 1;
                    if self.peek() != Some(b' ') {
                        return None;
                    }
                    self.skip_spaces();
                    let value = self.node(depth + 1)?;
                    map.insert(key, value);
                    if self.close_or_comma(b'}')? {
                        return Some(Value::Object(map));
                    }
                }
            }
            b'"' | b'\'' => {
                let (value, rest) = quoted(&self.text[self.pos..])?;
                self.pos = self.text.len() - rest.len();
                Some(Value::String(value))
            }
            _ => {
                let rest = &self.text[self.pos..];
                let end = rest
                    .find([',', '[', ']', '{', '}', ':', '#'])
                    .unwrap_or(rest.len());
                let scalar = rest[..end].trim_end_matches(' ');
                let first = *scalar.as_bytes().first()?;
                if is_indicator(first)
                    && !(first == b'-' && scalar.len() > 1 && scalar.as_bytes()[1] != b' ')
                {
                    return None;
                }
                // A `:` ends a flow mapping key; anywhere else it is not worth handling.
                if rest.as_bytes().get(end) == Some(&b':')
                    && rest.as_bytes().get(end + 1) != Some(&b' ')
                {
                    return None;
                }
                self.pos += end;
                plain_scalar(scalar)
            }
        }
    }

    /// Steps over an opening bracket; whether `close` follows at once (an empty collection,
    /// then stepped over too).
    fn open_empty(&mut self, close: u8) -> bool {
        self.pos += 1;
        self.skip_spaces();
        let empty = self.peek() == Some(close);
        if empty {
            self.pos += 1;
        }
        empty
    }

    /// After an item: `Some(true)` at the closing bracket, `Some(false)` after a comma
    /// followed by another item.
    fn close_or_comma(&mut self, close: u8) -> Option<bool> {
        self.skip_spaces();
        match self.peek()? {
            b if b == close => {
                self.pos += 1;
                Some(true)
            }
            b',' => {
                self.pos += 1;
                self.skip_spaces();
                // A trailing comma, or an empty entry.
                if matches!(self.peek()?, b']' | b'}' | b',') {
                    return None;
                }
                Some(false)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The variables every test document is interpolated with.
    fn variables() -> &'static HashMap<String, String> {
        static VARIABLES: std::sync::LazyLock<HashMap<String, String>> =
            std::sync::LazyLock::new(|| {
                [
                    ("X", "80"),
                    ("E", ""),
                    ("N", "null"),
                    ("S", " a b "),
                    ("D", "$X"),
                    ("B", "{}"),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
            });
        &VARIABLES
    }

    fn fast(text: &str) -> Option<Value> {
        document(text, Dollars::Interpolate(variables()))
    }

    /// The full parser's reading of `text`, never the fast one.
    fn full(text: &str) -> Result<Value, super::super::YamlError> {
        super::super::full_document(text, variables())
    }

    /// Scalars written plain that the fast reader reads itself.
    #[rustfmt::skip]
    const ORDINARY: &[&str] = &[
        "a", "always", "info", "8000:80", "9000:9000/udp", "0", "1", "-1", "80", "true", "false",
        "null", "~", "Null", "TRUE", "False", "yes", "No", "on", "OFF", "y", "n", "a#b", "x:y",
        "-x", "--serve", "http://a/b:80", "./s1", "../x", ".env", "a b", "a  b", "1:30", "1h",
        "2024-01-01", "0.0.0.0:80:80", "127.0.0.1", "1.2.3", "1.2.e3", "e1", "=", "A=1", "a'b",
        "a\"b", "a\\b", "a]b", "a}b", "a,b", "---", "-", "12345678", "io.balena.features.dbus",
        "x-a", "?x", ":x", "a #b",
        "${X}", "$X", "pre-$X-post", "${E:-d}", "${E-d}", "${MISSING:-d}", "${MISSING-1}",
        "${MISSING}", "$$X", "$$", "$X_Y", "${N}", "${S}", "x${X}y$X", "${X:-a b}", "$X.y",
    ];

    /// Scalars written plain that are near-misses of typed scalars, or not plain scalars.
    #[rustfmt::skip]
    const TRICKY: &[&str] = &[
        "+1", "-0", "007", "1e3", "1.5", ".5", "1.", "0x1F", "0X1f", "0o17", "0b101", ".inf",
        "-.inf", ".Inf", ".nan", ".NaN", "inf", "nan", "Infinity", "nULL", "tRUE",
        "12345678901234567890", "999999999999999999", "9223372036854775808",
        "-9223372036854775808", "1_000", "1:30.5", "1e", "a: b", "a:", "- a", "@x", "%x", "`x",
        "!x", "&x", "*x", "|", ">", "[x", "{x", "#x", "<<", "\u{e9}t\u{e9}",
        "${MISSING:?no}", "${X:+alt}", "$1", "$", "${ X}", "${MISSING:-${X}}", "${D}", "${B}",
        "${X", "$X}", "${}", "${X:-{}",
    ];

    /// Mapping keys: mostly distinct names, a few that only the full parser reads.
    #[rustfmt::skip]
    const KEYS: &[&str] = &[
        "image", "build", "context", "ports", "labels", "environment", "x-a", "a b", "a#b",
        "io.balena.features.dbus", "k1", "k2", "k3", "k4", "k5", "k6",
        "1", "true", "<<", "-x", "'q'", "\"dq\"", "x:y", "${X}", "$X",
    ];

    /// Strings written quoted.
    #[rustfmt::skip]
    const QUOTED: &[&str] = &[
        "", "a", "1", "true", "null", "it's", "say \"hi\"", "tab\there", "line\nbreak",
        "back\\slash", "a: b", " padded ", "#", "$HOME", "\u{e9}", "${X}", "it's $X", "$$",
        "${MISSING:-a b}", "${MISSING:?no}",
    ];

    #[derive(Debug, Clone)]
    enum Tree {
        Plain(&'static str),
        Quoted(usize),
        Seq(Vec<Tree>),
        Map(Vec<(&'static str, Tree)>),
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            20 => prop::sample::select(ORDINARY).prop_map(Tree::Plain),
            1 => prop::sample::select(TRICKY).prop_map(Tree::Plain),
            6 => (0..QUOTED.len()).prop_map(Tree::Quoted),
        ];
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Tree::Seq),
                prop::collection::vec((key(), inner), 0..5).prop_map(|mut entries| {
                    // Mostly distinct keys: a duplicate only sometimes, through `k1`.
                    let mut seen = std::collections::HashSet::new();
                    entries.retain(|(k, _)| *k == "k1" || seen.insert(*k));
                    Tree::Map(entries)
                }),
            ]
        })
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            30 => prop::sample::select(&KEYS[..16]),
            1 => prop::sample::select(&KEYS[16..]),
        ]
    }

    /// A tiny deterministic source of style choices.
    struct Choices(u64);

    impl Choices {
        fn pick(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn scalar(tree: &Tree, c: &mut Choices) -> String {
        match tree {
            Tree::Plain(s) => (*s).to_string(),
            Tree::Quoted(i) => {
                let s = QUOTED[*i];
                if c.pick(2) == 0 && !s.contains(['\n', '\t']) {
                    format!("'{}'", s.replace('\'', "''"))
                } else {
                    let escaped = s
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                        .replace('\t', "\\t");
                    format!("\"{escaped}\"")
                }
            }
            Tree::Seq(items) => {
                let items: Vec<_> = items.iter().map(|t| scalar(t, c)).collect();
                format!("[{}]", items.join([", ", ",", " , "][c.pick(3) as usize]))
            }
            Tree::Map(entries) => {
                let entries: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", *k, scalar(v, c)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
        }
    }

    fn comment(c: &mut Choices) -> &'static str {
        ["", "", "", " # note", "  #x", "#y"][c.pick(6) as usize]
    }

    /// Renders `tree` as the value of a block node at `indent`, choosing styles at random.
    fn block(tree: &Tree, indent: usize, out: &mut String, c: &mut Choices) {
        let pad = " ".repeat(indent);
        match tree {
            Tree::Map(entries) if !entries.is_empty() && (indent == 0 || c.pick(4) != 0) => {
                for (k, v) in entries {
                    out.push_str(&pad);
                    out.push_str(k);
                    out.push(':');
                    entry_value(v, indent, out, c);
                }
            }
            Tree::Seq(items) if !items.is_empty() && c.pick(4) != 0 => {
                for item in items {
                    out.push_str(&pad);
                    out.push('-');
                    match item {
                        Tree::Map(entries) if !entries.is_empty() && c.pick(2) == 0 => {
                            // A compact mapping: the first key on the dash's line.
                            let spaces = 1 + c.pick(3) as usize;
                            out.push_str(&" ".repeat(spaces));
                            let column = indent + 1 + spaces;
                            for (n, (k, v)) in entries.iter().enumerate() {
                                if n > 0 {
                                    out.push_str(&" ".repeat(column));
                                }
                                out.push_str(k);
                                out.push(':');
                                entry_value(v, column, out, c);
                            }
                        }
                        _ => {
                            out.push(' ');
                            out.push_str(&scalar(item, c));
                            out.push_str(comment(c));
                            out.push('\n');
                        }
                    }
                }
            }
            _ => {
                out.push_str(&pad);
                out.push_str(&scalar(tree, c));
                out.push('\n');
            }
        }
    }

    fn entry_value(v: &Tree, indent: usize, out: &mut String, c: &mut Choices) {
        let nested = matches!(v, Tree::Map(e) if !e.is_empty())
            || matches!(v, Tree::Seq(i) if !i.is_empty());
        if nested && c.pick(3) != 0 {
            out.push_str(comment(c));
            out.push('\n');
            if c.pick(4) == 0 {
                out.push_str("\n# between\n");
            }
            let deeper = if matches!(v, Tree::Seq(_)) && c.pick(2) == 0 {
                indent // an indentless sequence
            } else {
                indent + 1 + c.pick(4) as usize
            };
            block(v, deeper, out, c);
        } else {
            out.push(' ');
            out.push_str(&scalar(v, c));
            out.push_str(comment(c));
            out.push('\n');
        }
    }

    fn render(tree: &Tree, seed: u64) -> String {
        let mut c = Choices(seed | 1);
        let mut out = String::new();
        let top = match tree {
            Tree::Map(entries) if !entries.is_empty() => tree.clone(),
            other => Tree::Map(vec![("top", other.clone())]),
        };
        block(&top, 0, &mut out, &mut c);
        out
    }

    /// Whenever the fast reader answers, its answer is the full parser's.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = fast(text) {
            match full(text) {
                Ok(full) => prop_assert_eq!(fast, full, "document:\n{}", text),
                Err(e) => prop_assert!(
                    false,
                    "full parser refused what the fast one read: {e:?}\n{text}"
                ),
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn the_fast_reader_agrees_with_the_full_parser(tree in tree(), seed in any::<u64>()) {
            agrees(&render(&tree, seed))?;
        }

        #[test]
        fn the_fast_reader_agrees_on_damaged_documents(
            tree in tree(),
            seed in any::<u64>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0..12usize), 1..4),
        ) {
            let mut text = render(&tree, seed).into_bytes();
            for (at, what) in edits {
                let i = at.index(text.len() + 1);
                let insert = [b' ', b'\n', b'-', b':', b'#', b'\'', b'"', b'[', b']', b',', b'{'];
                match insert.get(what) {
                    Some(&b) => text.insert(i, b),
                    None if i < text.len() => { text.remove(i); }
                    None => {}
                }
            }
            if let Ok(text) = String::from_utf8(text) {
                agrees(&text)?;
            }
        }
    }

    #[test]
    fn reads_the_usual_compose_file() {
        let text = "\
version: '2.4'
services:
  # the main app
  app:
    build:
      context: ./app
      args:
        INDEX: '0'
    image: registry.local/app:latest
    restart: always
    privileged: false
    networks: [default]
    environment:
      LOG_LEVEL: info
      EMPTY:
    labels:
      io.balena.features.dbus: '1'
    ports:
      - '8000:80'
      - 9000:9000/udp
    volumes:
    - data:/data
    command: ['/usr/bin/app', '--serve', '--port', '80']
    depends_on:
      - db
    healthcheck: {test: [CMD, true], retries: 3}
  db:
    image: \"postgres:16\"  # pinned
volumes:
  data: {}
";
        let value = fast(text).expect("within the fast reader's part of YAML");
        assert_eq!(value, full(text).unwrap());
        assert_eq!(value["services"]["app"]["ports"][1], "9000:9000/udp");
        assert_eq!(
            value["services"]["app"]["environment"]["EMPTY"],
            Value::Null
        );
        assert_eq!(value["services"]["app"]["healthcheck"]["retries"], 3);
    }

    #[test]
    fn reads_the_projects_own_compose_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for path in [
            "../../fixtures/sample/docker-compose.yml",
            "tests/fixtures/reference/default.yml",
            "tests/fixtures/reference/test-env-files/env-files.yml",
        ] {
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            let value = fast(&text).unwrap_or_else(|| panic!("{path}: left to the full parser"));
            assert_eq!(value, full(&text).unwrap(), "{path}");
        }
    }

    #[test]
    fn interpolates_as_compose_does() {
        let text = "a: ${X}\nb: '$X'\nc: ${MISSING:-d}\nd: $$X\ne: ${E:-d}\nf: ${E-d}\ng: ${N}\n";
        let value = fast(text).expect("within the fast reader's part of YAML");
        assert_eq!(value, full(text).unwrap());
        let expected = serde_json::json!({
            "a": "80", "b": "80", "c": "d", "d": "$X", "e": "d", "f": "", "g": "null",
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn leaves_everything_else_to_the_full_parser() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  x\n",
            "a: x\n  y\n",
            "a: ${X:?X is required}\n",
            "a: [$X]\n",
            "${X}: 1\n",
            "a: 1\na: 2\n",
            "a:\tb\n",
            "a: b\r\n",
            "a: 0x1F\n",
            "a: 1_000\n",
            "a: .NaN\n",
            "a: tRUE\n",
            "1: a\n",
            "<<: {a: 1}\n",
            "---\na: 1\n",
            "a: [x,\n  y]\n",
            "a: 'x\n  y'\n",
            "a: \"\\x41\"\n",
            "a: caf\u{e9}\n",
            "- a\n- b\n  c\n",
        ] {
            assert_eq!(fast(text), None, "{text:?}");
        }
    }
}
