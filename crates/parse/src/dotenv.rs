//! `.env` and `env_file` syntax, as compose reads it: `KEY=value` lines, `export ` prefixes,
//! `#` comments, single quotes (literal), double quotes (escapes and `${VAR}`), unquoted
//! values (trailing ` # comment` dropped, `${VAR}` expanded), and a bare `KEY` that takes its
//! value from the environment.

use std::collections::HashMap;

use indexmap::IndexMap;

/// A line that cannot be read: 1-based line and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DotenvError {
    pub line: usize,
    pub message: String,
}

/// Parses `text`. A bare `KEY` maps to `None` unless `lookup` knows it. Later keys win.
pub(crate) fn parse(
    text: &str,
    lookup: &HashMap<String, String>,
) -> Result<IndexMap<String, Option<String>>, DotenvError> {
    let mut out: IndexMap<String, Option<String>> = IndexMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut cursor = Cursor {
        chars: &chars,
        pos: 0,
        line: 1,
    };
    loop {
        cursor.skip_blank();
        let Some(c) = cursor.peek() else { break };
        if c == '#' {
            cursor.skip_line();
            continue;
        }
        let line = cursor.line;
        let mut key = cursor.take_while(|c| !matches!(c, '=' | '\n' | '\r'));
        if let Some(rest) = key.strip_prefix("export ") {
            key = rest.to_string();
        }
        let key = key.trim().to_string();
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')))
        {
            return Err(DotenvError {
                line,
                message: format!("unexpected character {bad:?} in variable name {key:?}"),
            });
        }
        if cursor.peek() != Some('=') {
            // A bare name inherits from the environment.
            let value = lookup.get(&key).cloned();
            out.shift_remove(&key);
            out.insert(key, value);
            continue;
        }
        cursor.pos += 1;
        cursor.skip_inline_space();
        let resolve = |name: &str, out: &IndexMap<String, Option<String>>| {
            out.get(name)
                .cloned()
                .flatten()
                .or_else(|| lookup.get(name).cloned())
        };
        let value = match cursor.peek() {
            Some('\'') => {
                cursor.pos += 1;
                let v = cursor.take_while(|c| c != '\'');
                if cursor.peek() != Some('\'') {
                    return Err(unterminated(line));
                }
                cursor.pos += 1;
                cursor.skip_line();
                v
            }
            Some('"') => {
                cursor.pos += 1;
                let mut raw = String::new();
                loop {
                    match cursor.next() {
                        None => return Err(unterminated(line)),
                        Some('"') => break,
                        Some('\\') => match cursor.next() {
                            Some('n') => raw.push('\n'),
                            Some('t') => raw.push('\t'),
                            Some('r') => raw.push('\r'),
                            Some('$') => raw.push_str("$$"),
                            Some(other) => raw.push(other),
                            None => return Err(unterminated(line)),
                        },
                        Some('$') => raw.push('$'),
                        Some(other) => raw.push(other),
                    }
                }
                cursor.skip_line();
                expand(&raw, |n| resolve(n, &out))
            }
            _ => {
                let raw = cursor.take_while(|c| c != '\n');
                let raw = strip_inline_comment(&raw).trim();
                expand(raw, |n| resolve(n, &out))
            }
        };
        out.shift_remove(&key);
        out.insert(key, Some(value));
    }
    Ok(out)
}

fn unterminated(line: usize) -> DotenvError {
    DotenvError {
        line,
        message: "unterminated quoted value".to_string(),
    }
}

/// ` # comment` ends an unquoted value; `a#b` does not.
fn strip_inline_comment(raw: &str) -> &str {
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &raw[..i];
        }
    }
    raw
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:+a}`, `${VAR+a}` and `$$`.
fn expand(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        rest = &rest[idx + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let Some(end) = after.find('}') else {
                out.push_str("${");
                rest = after;
                continue;
            };
            let inner = &after[..end];
            rest = &after[end + 1..];
            let name_len = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_len);
            let value = lookup(name);
            let set_non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
            let text = if let Some(d) = op.strip_prefix(":-") {
                if set_non_empty {
                    value
                } else {
                    Some(d.to_string())
                }
            } else if let Some(d) = op.strip_prefix('-') {
                value.or_else(|| Some(d.to_string()))
            } else if let Some(a) = op.strip_prefix(":+") {
                set_non_empty.then(|| a.to_string())
            } else if let Some(a) = op.strip_prefix('+') {
                value.map(|_| a.to_string())
            } else {
                value
            };
            out.push_str(&text.unwrap_or_default());
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if name_len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&rest[..name_len]).unwrap_or_default());
            }
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    out
}

struct Cursor<'a> {
    chars: &'a [char],
    pos: usize,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            s.push(c);
            self.next();
        }
        s.trim_end_matches('\r').to_string()
    }

    fn skip_blank(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.next();
        }
    }

    fn skip_inline_space(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.next();
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.next() {
            if c == '\n' {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn p(text: &str) -> IndexMap<String, Option<String>> {
        let env = HashMap::from([("HOME".to_string(), "/root".to_string())]);
        parse(text, &env).unwrap()
    }

    #[test]
    fn plain_lines_comments_and_export() {
        let m = p("# c\nA=1\n\nexport B = two words # note\nC=a#b\nEMPTY=\nHOME\nNOPE");
        assert_eq!(m["A"].as_deref(), Some("1"));
        assert_eq!(m["B"].as_deref(), Some("two words"));
        assert_eq!(m["C"].as_deref(), Some("a#b"));
        assert_eq!(m["EMPTY"].as_deref(), Some(""));
        assert_eq!(m["HOME"].as_deref(), Some("/root"));
        assert_eq!(m["NOPE"], None);
    }

    #[test]
    fn quotes_and_expansion() {
        let m = p(
            "A='$HOME #x'\nB=\"line\\nnext $HOME\"\nC=${A:-d}/${MISSING:-def}\nD=\"multi\nline\"\nE=$$x\n",
        );
        assert_eq!(m["A"].as_deref(), Some("$HOME #x"));
        assert_eq!(m["B"].as_deref(), Some("line\nnext /root"));
        assert_eq!(m["C"].as_deref(), Some("$HOME #x/def"));
        assert_eq!(m["D"].as_deref(), Some("multi\nline"));
        assert_eq!(m["E"].as_deref(), Some("$x"));
    }

    #[test]
    fn later_wins_and_crlf() {
        let m = p("A=1\r\nA=2\r\n");
        assert_eq!(m["A"].as_deref(), Some("2"));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let env = HashMap::new();
        assert_eq!(parse("A=1\nB C=2\n", &env).unwrap_err().line, 2);
        assert_eq!(parse("A=\"open\n", &env).unwrap_err().line, 1);
    }
}
