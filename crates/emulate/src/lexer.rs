//! A logical-line Dockerfile lexer that keeps byte offsets, so the rewrite can change only the
//! instructions it must and copy every other byte.
//!
//! It follows moby/BuildKit's parser: parser directives (`# syntax=`, `# escape=`, `# check=`)
//! only before the first comment, blank line or instruction; line continuation with the
//! escape character (optionally followed by spaces or tabs); comment and blank lines inside a
//! continuation skipped; heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`) on `RUN`, `COPY` and `ADD`,
//! whose body lines belong to the instruction.

use crate::Error;

/// Directives BuildKit knows; an unknown one ends the directive block like any comment.
const KNOWN_DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];
/// The instructions on which BuildKit reads heredocs.
const HEREDOC_INSTRUCTIONS: [&str; 3] = ["RUN", "COPY", "ADD"];
const UTF8_BOM: &str = "\u{feff}";

/// A lexed Dockerfile.
#[derive(Debug)]
pub(crate) struct Lexed {
    pub instructions: Vec<Instruction>,
}

/// One instruction: its keyword through the end of its last continuation or heredoc line.
#[derive(Debug)]
pub(crate) struct Instruction {
    /// 1-based line number of the keyword.
    pub line: usize,
    /// Byte offset of the keyword.
    pub start: usize,
    /// Byte offset just past the content of the instruction's last line (before `\r\n`/`\n`).
    pub end: usize,
    /// Byte offset of the next line (past the newline), or the text's length.
    pub next: usize,
    /// The line ending of the last line: `"\n"`, `"\r\n"`, or `""` at the end of the text.
    pub newline: &'static str,
    /// The instruction as Docker sees it: continuations joined, comment lines inside them
    /// dropped, surrounding whitespace trimmed. Heredoc bodies are not part of it.
    pub logical: String,
    /// The heredocs of a `RUN`/`COPY`/`ADD`, in order.
    pub heredocs: Vec<Heredoc>,
}

/// A heredoc of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heredoc {
    /// The delimiter word, unquoted.
    pub name: String,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub chomp: bool,
    /// The body, every line followed by `\n`, as written (tabs not yet stripped).
    pub data: String,
}

impl Heredoc {
    /// The body as the shell would read it: with `<<-`, leading tabs stripped from each line.
    pub fn chomped_data(&self) -> String {
        if !self.chomp {
            return self.data.clone();
        }
        self.data
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// A physical line.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    start: usize,
    /// The content, without `\n` and a `\r` before it.
    content: &'a str,
    next: usize,
    newline: &'static str,
}

struct Lines<'a> {
    text: &'a str,
    pos: usize,
    number: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.text[start..];
        let (raw, next, newline) = match rest.find('\n') {
            Some(i) if rest[..i].ends_with('\r') => (&rest[..i - 1], start + i + 1, "\r\n"),
            Some(i) => (&rest[..i], start + i + 1, "\n"),
            None => (rest, self.text.len(), ""),
        };
        self.pos = next;
        self.number += 1;
        Some(Line {
            number: self.number,
            start,
            content: raw,
            next,
            newline,
        })
    }
}

fn is_blank_or_comment(content: &str) -> bool {
    let t = content.trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with('#')
}

/// `# key = value` → `(key, value)`, as BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive(content: &str) -> Option<(&str, &str)> {
    let rest = content.trim_start().strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// If `content` ends with the escape character plus optional spaces/tabs, the content without
/// them.
fn strip_continuation(content: &str, escape: char) -> Option<&str> {
    content.trim_end_matches([' ', '\t']).strip_suffix(escape)
}

/// Lex `text`.
pub(crate) fn lex(text: &str) -> Result<Lexed, Error> {
    let mut lines = Lines {
        text,
        pos: 0,
        number: 0,
    }
    .peekable();
    let mut escape = '\\';
    let mut seen_directives: Vec<String> = Vec::new();
    let mut instructions = Vec::new();

    // Parser directives.
    while let Some(line) = lines.peek().copied() {
        let content = if line.number == 1 {
            line.content.strip_prefix(UTF8_BOM).unwrap_or(line.content)
        } else {
            line.content
        };
        let Some((key, value)) = directive(content) else {
            break;
        };
        let key = key.to_ascii_lowercase();
        if !KNOWN_DIRECTIVES.contains(&key.as_str()) {
            break;
        }
        if seen_directives.contains(&key) {
            return Err(Error::DuplicateDirective {
                line: line.number,
                name: key,
            });
        }
        if key == "escape" {
            escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(Error::InvalidEscape {
                        line: line.number,
                        value: value.to_owned(),
                    });
                }
            };
        }
        seen_directives.push(key);
        lines.next();
    }

    while let Some(first) = lines.next() {
        let content = if first.number == 1 {
            first
                .content
                .strip_prefix(UTF8_BOM)
                .unwrap_or(first.content)
        } else {
            first.content
        };
        if is_blank_or_comment(content) {
            continue;
        }
        let indent = first.content.len() - content.trim_start_matches([' ', '\t']).len();
        let start = first.start + indent;
        let mut logical = String::new();
        let mut last = first;
        let mut piece = &first.content[indent..];
        loop {
            match strip_continuation(piece, escape) {
                Some(joined) => {
                    logical.push_str(joined);
                    // Comment and blank lines inside a continuation are skipped.
                    let mut continued = None;
                    for next in lines.by_ref() {
                        last = next;
                        if !is_blank_or_comment(next.content) {
                            continued = Some(next);
                            break;
                        }
                    }
                    match continued {
                        Some(next) => piece = next.content,
                        None => break,
                    }
                }
                None => {
                    logical.push_str(piece);
                    break;
                }
            }
        }
        let logical = logical.trim().to_owned();
        let keyword = split_keyword(&logical).0.to_ascii_uppercase();
        let mut heredocs = Vec::new();
        if HEREDOC_INSTRUCTIONS.contains(&keyword.as_str()) {
            let args = &logical[args_offset(&logical)..];
            if !is_json_array(args) {
                for (name, chomp) in heredoc_markers(args) {
                    let mut data = String::new();
                    let mut terminated = false;
                    for body in lines.by_ref() {
                        last = body;
                        let candidate = if chomp {
                            body.content.trim_start_matches('\t')
                        } else {
                            body.content
                        };
                        if candidate == name {
                            terminated = true;
                            break;
                        }
                        data.push_str(body.content);
                        data.push('\n');
                    }
                    if !terminated {
                        return Err(Error::UnterminatedHeredoc {
                            line: first.number,
                            name,
                        });
                    }
                    heredocs.push(Heredoc { name, chomp, data });
                }
            }
        }
        instructions.push(Instruction {
            line: first.number,
            start,
            end: last.start + last.content.len(),
            next: last.next,
            newline: last.newline,
            logical,
            heredocs,
        });
    }
    Ok(Lexed { instructions })
}

/// `"RUN  echo hi"` → `("RUN", offset of "echo")`.
pub(crate) fn split_keyword(logical: &str) -> (&str, usize) {
    let kw_end = logical
        .find(|c: char| c.is_whitespace())
        .unwrap_or(logical.len());
    let rest = &logical[kw_end..];
    let args = kw_end + (rest.len() - rest.trim_start().len());
    (&logical[..kw_end], args)
}

/// The offset in `logical` where an instruction's arguments start, past its keyword and any
/// leading `--flag` words (as moby's `extractBuilderFlags`, quotes inside a flag allowed).
pub(crate) fn args_offset(logical: &str) -> usize {
    let (_, mut at) = split_keyword(logical);
    loop {
        let rest = &logical[at..];
        if !rest.starts_with("--") {
            return at;
        }
        let word_len = word_end(rest);
        let after = &rest[word_len..];
        at += word_len + (after.len() - after.trim_start().len());
    }
}

/// The length of the first shell word of `s` (which starts at a word), quotes respected.
fn word_end(s: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('"') | None, '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => return i,
            _ => {}
        }
    }
    s.len()
}

/// The shell words of `s`, raw (quotes kept).
fn raw_words(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let len = word_end(rest);
        words.push(&rest[..len]);
        rest = rest[len..].trim_start();
    }
    words
}

/// Whether `args` is an exec-form JSON array of strings (moby's `parseJSON`).
pub(crate) fn is_json_array(args: &str) -> bool {
    parse_json_array(args).is_some()
}

/// `args` as an exec-form JSON array of strings, if it is one.
pub(crate) fn parse_json_array(args: &str) -> Option<Vec<String>> {
    let args = args.trim();
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(args).ok()
}

/// The heredocs a line opens: every word `[n]<<[-]NAME` (NAME possibly quoted), in order.
pub(crate) fn heredoc_markers(args: &str) -> Vec<(String, bool)> {
    raw_words(args)
        .into_iter()
        .filter_map(|word| {
            let word = word.trim_start_matches(|c: char| c.is_ascii_digit());
            let rest = word.strip_prefix("<<")?;
            let (chomp, rest) = match rest.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            if rest.contains('<') {
                return None;
            }
            let name: String = rest.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
            (!name.is_empty()).then_some((name, chomp))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn logicals(text: &str) -> Vec<String> {
        lex(text)
            .unwrap()
            .instructions
            .into_iter()
            .map(|i| i.logical)
            .collect()
    }

    #[test]
    fn continuations_and_comments_inside_them() {
        let text =
            "FROM a\nRUN echo 1 && \\\n# inner comment\n\n    echo 2 \\  \n  && echo 3\nCMD x";
        assert_eq!(
            logicals(text),
            vec!["FROM a", "RUN echo 1 &&     echo 2   && echo 3", "CMD x"]
        );
        let lexed = lex(text).unwrap();
        assert_eq!(lexed.instructions[1].line, 2);
        assert_eq!(
            &text[lexed.instructions[1].start..lexed.instructions[1].end],
            &text[7..text.len() - 6]
        );
    }

    #[test]
    fn escape_directive_changes_the_continuation_character() {
        let text = "# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n";
        assert_eq!(logicals(text), vec!["FROM a", "RUN dir c:\\   /w"]);
    }

    #[test]
    fn directives_end_at_the_first_other_line() {
        // After a blank line `# escape=` is a comment, so `\` still continues lines.
        let text = "\n# escape=`\nRUN a \\\n b";
        assert_eq!(logicals(text), vec!["RUN a  b"]);
        assert!(matches!(
            lex("# escape=x\nFROM a"),
            Err(Error::InvalidEscape { line: 1, .. })
        ));
        assert!(matches!(
            lex("# escape=`\n# escape=\\\nFROM a"),
            Err(Error::DuplicateDirective { line: 2, .. })
        ));
    }

    #[test]
    fn heredoc_bodies_belong_to_their_instruction() {
        let text = "FROM a\nRUN <<EOF\nFROM evil\nRUN x\nEOF\nCOPY <<-\"X\" /f\n\thi\n\tX\nCMD y\n";
        let lexed = lex(text).unwrap();
        let kinds: Vec<_> = lexed
            .instructions
            .iter()
            .map(|i| i.logical.as_str())
            .collect();
        assert_eq!(
            kinds,
            vec!["FROM a", "RUN <<EOF", "COPY <<-\"X\" /f", "CMD y"]
        );
        assert_eq!(lexed.instructions[1].heredocs[0].data, "FROM evil\nRUN x\n");
        assert_eq!(lexed.instructions[2].heredocs[0].chomped_data(), "hi\n");
        assert!(matches!(
            lex("RUN <<EOF\nno end"),
            Err(Error::UnterminatedHeredoc { line: 1, .. })
        ));
    }

    #[test]
    fn flags_and_markers() {
        let run = "RUN --mount=type=secret,id=\"a b\" --network=none echo";
        assert_eq!(args_offset(run), run.find("echo").unwrap());
        assert_eq!(args_offset("RUN echo --x"), 4);
        assert_eq!(
            heredoc_markers("cat <<EOF 3<<-'B' <<<no a<<b"),
            vec![("EOF".to_owned(), false), ("B".to_owned(), true)]
        );
        assert_eq!(directive("#  Escape = ` "), Some(("Escape", "`")));
        assert_eq!(directive("# not a directive"), None);
    }
}
