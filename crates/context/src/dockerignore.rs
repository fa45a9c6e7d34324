//! A `.dockerignore` matcher with moby's exact semantics.
//!
//! Reading follows moby's `ignorefile.ReadAll`: a UTF-8 BOM on the first line is dropped, a
//! line is a comment only when it *starts* with `#`, lines are trimmed and empty ones
//! skipped, a leading `!` makes an exception, and each pattern is `filepath.Clean`ed with
//! a leading `/` dropped.
//!
//! Matching follows moby's `patternmatcher`: a pattern is anchored at the context root, `*`
//! and `?` never cross `/`, `**` crosses any number of directories, `[...]` is a Go
//! `filepath.Match` class (negated by `^`), `\` escapes the next character. A path is
//! excluded when a pattern matches it **or any of its parent directories**, and the last
//! matching pattern wins, so `!` re-includes even inside an excluded directory.
//!
//! Like moby, each pattern is classified first: a pattern without wildcards is compared as
//! a string, `dir/**` as a prefix, `**/name` (or `**name`) as a suffix, and only the rest
//! becomes a regular expression. This classification is part of the semantics: `**file`
//! matches `myfile`.
//!
//! Deliberate differences from moby, all about patterns moby itself mishandles:
//! * inside `[...]` every character is literal (moby pastes `*` and `?` into the regex
//!   class unchanged, producing a different class);
//! * `\x` always means a literal `x` (moby hands `\d` to Go's regexp, where it means a
//!   digit);
//! * a pattern that moby accepts when read but cannot compile later (such as the range
//!   `[l-O]`) is rejected when read, with its line number, instead of at the first match.
//!
//! ```
//! use context::dockerignore::Dockerignore;
//! let ignore = Dockerignore::parse(".dockerignore", b"docs\n!docs/README.md\n*.log\n").unwrap();
//! assert!(ignore.matches("docs/guide.md"));
//! assert!(!ignore.matches("docs/README.md"));
//! assert!(ignore.matches("build.log"));
//! assert!(!ignore.matches("logs/build.log"));
//! ```

use regex::Regex;

use crate::error::{Error, Result};
use crate::path::go_clean;

/// One compiled rule.
#[derive(Debug, Clone)]
struct Pattern {
    exception: bool,
    matcher: Matcher,
}

/// How a rule is tested, chosen as moby's `compile` does.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|bare| path == bare)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Dockerignore {
    patterns: Vec<Pattern>,
    exceptions: bool,
}

/// The patterns of an ignore file after moby's `ReadAll`, each with its 1-based line.
///
/// ```
/// let lines = context::dockerignore::read_patterns(b"\xEF\xBB\xBFa\n# c\n ! /b/ \n");
/// assert_eq!(lines, [(1, "a".to_owned()), (3, "!b".to_owned())]);
/// ```
pub fn read_patterns(contents: &[u8]) -> Vec<(usize, String)> {
    let text = String::from_utf8_lossy(contents);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines: Vec<&str> = text.split('\n').collect();
    // Go's line scanner yields no final empty line after a trailing newline.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::new();
    for (index, line) in lines.into_iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push((index + 1, cleaned));
    }
    out
}

impl Dockerignore {
    /// Reads and compiles an ignore file. `file` names it in errors.
    pub fn parse(file: &str, contents: &[u8]) -> Result<Self> {
        Self::from_patterns(file, read_patterns(contents))
    }

    /// Compiles patterns as moby's `patternmatcher.New` does (trim, skip empty, clean,
    /// leading `!`), each paired with the line number used in errors.
    pub fn from_patterns<S: AsRef<str>>(
        file: &str,
        patterns: impl IntoIterator<Item = (usize, S)>,
    ) -> Result<Self> {
        let mut out = Self::default();
        for (line, raw) in patterns {
            out.push(file, line, raw.as_ref())?;
        }
        Ok(out)
    }

    /// Compiles a list of patterns, numbering them from line 1.
    pub fn from_lines<S: AsRef<str>>(file: &str, patterns: &[S]) -> Result<Self> {
        Self::from_patterns(file, patterns.iter().enumerate().map(|(i, p)| (i + 1, p)))
    }

    fn push(&mut self, file: &str, line: usize, raw: &str) -> Result<()> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(());
        }
        let cleaned = go_clean(trimmed);
        let error = |message: String| Error::Ignore {
            file: file.to_owned(),
            line,
            message,
        };
        let (exception, body) = match cleaned.strip_prefix('!') {
            Some("") => return Err(error("illegal exclusion pattern: \"!\"".to_owned())),
            Some(body) => (true, body),
            None => (false, cleaned.as_str()),
        };
        let matcher = compile(body).map_err(|m| error(format!("pattern {body:?}: {m}")))?;
        self.exceptions |= exception;
        self.patterns.push(Pattern { exception, matcher });
        Ok(())
    }

    /// Wraps the rules the way the balena CLI does: `**/.git` first, then these rules,
    /// then `!**/.balena`, `!**/.resin`, `!**/Dockerfile`, `!**/Dockerfile.*` and
    /// `!**/docker-compose.yml`.
    pub fn with_balena_defaults(self) -> Self {
        let mut out = Self::default();
        let head = Self::builtin(&["**/.git"]);
        let tail = Self::builtin(&[
            "!**/.balena",
            "!**/.resin",
            "!**/Dockerfile",
            "!**/Dockerfile.*",
            "!**/docker-compose.yml",
        ]);
        for part in [head, self, tail] {
            out.exceptions |= part.exceptions;
            out.patterns.extend(part.patterns);
        }
        out
    }

    fn builtin(patterns: &[&str]) -> Self {
        // These fixed patterns are valid, so a failure here cannot happen; an empty
        // matcher is the harmless fallback.
        Self::from_lines("<balena defaults>", patterns).unwrap_or_default()
    }

    /// Whether any rule is a `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.exceptions
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// moby's `MatchesOrParentMatches`: is `path` (clean, slash-separated, relative)
    /// excluded, given that a rule matching a parent directory also excludes it?
    pub fn matches(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            // As moby: an inclusion cannot change an already-excluded path, and an
            // exception only matters once something excluded it.
            if pattern.exception != matched {
                continue;
            }
            let hit = pattern.matcher.is_match(path)
                || crate::path::ancestors(path).any(|dir| pattern.matcher.is_match(dir));
            if hit {
                matched = !pattern.exception;
            }
        }
        matched
    }

    /// moby's `MatchesExact`: like [`Self::matches`] without the parent-directory rule.
    pub fn matches_exact(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exception != matched {
                continue;
            }
            if pattern.matcher.is_match(path) {
                matched = !pattern.exception;
            }
        }
        matched
    }
}

/// What `compile` has decided the pattern needs so far (moby's `matchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

fn push_literal(re: &mut String, c: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Translates one (cleaned, `!`-less) pattern.
fn compile(pattern: &str) -> std::result::Result<Matcher, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let mut pos = 0;
    let mut step = 0;
    while pos < chars.len() {
        let c = chars[pos];
        pos += 1;
        match c {
            '*' if chars.get(pos) == Some(&'*') => {
                pos += 1;
                // `**/` is treated as `**`.
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if step == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '\\' => {
                let escaped = *chars.get(pos).ok_or("trailing backslash")?;
                pos += 1;
                push_literal(&mut re, escaped);
                kind = Kind::Regex;
            }
            '[' => {
                pos = class(&chars, pos, &mut re)?;
                kind = Kind::Regex;
            }
            ']' => {
                re.push_str("\\]");
                kind = Kind::Regex;
            }
            other => push_literal(&mut re, other),
        }
        step += 1;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact(pattern.to_owned()),
        // Both affixes are the two ASCII bytes `**`.
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_owned()),
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&re).map_err(|e| format!("invalid pattern: {e}"))?)
        }
    })
}

/// Parses a Go `filepath.Match` class starting just after `[`, appends its regex and
/// returns the position after the closing `]`.
fn class(chars: &[char], mut pos: usize, re: &mut String) -> std::result::Result<usize, String> {
    const BAD: &str = "syntax error in pattern";
    re.push('[');
    if chars.get(pos) == Some(&'^') {
        re.push('^');
        pos += 1;
    }
    let mut ranges = 0;
    loop {
        if chars.get(pos) == Some(&']') && ranges > 0 {
            re.push(']');
            return Ok(pos + 1);
        }
        let lo = class_char(chars, &mut pos).ok_or(BAD)?;
        push_literal(re, lo);
        if chars.get(pos) == Some(&'-') {
            pos += 1;
            let hi = class_char(chars, &mut pos).ok_or(BAD)?;
            if hi < lo {
                return Err(format!("invalid character range {lo}-{hi}"));
            }
            re.push('-');
            push_literal(re, hi);
        }
        ranges += 1;
    }
}

/// Go's `getEsc`: one (possibly escaped) class character, which must not be the last
/// character of the pattern.
fn class_char(chars: &[char], pos: &mut usize) -> Option<char> {
    let mut c = *chars.get(*pos)?;
    if c == '-' || c == ']' {
        return None;
    }
    if c == '\\' {
        *pos += 1;
        c = *chars.get(*pos)?;
    }
    *pos += 1;
    // An unterminated class.
    if *pos >= chars.len() {
        return None;
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let kind = |p: &str| match compile(p) {
            Ok(Matcher::Exact(_)) => "exact",
            Ok(Matcher::Prefix(_)) => "prefix",
            Ok(Matcher::Suffix(_)) => "suffix",
            Ok(Matcher::Regex(_)) => "regex",
            Err(_) => "error",
        };
        assert_eq!(kind("abc.def"), "exact");
        assert_eq!(kind("dir/**"), "prefix");
        assert_eq!(kind("**/dir"), "suffix");
        assert_eq!(kind("**"), "suffix");
        assert_eq!(kind("**/**"), "regex");
        assert_eq!(kind("a*"), "regex");
        assert_eq!(kind("[z-a]"), "error");
    }
}
