//! A logical-line Dockerfile lexer that keeps byte offsets, so the rewrite can change only the
//! instructions it must and copy every other byte.
//!
//! It follows moby/BuildKit's parser: parser directives (`# syntax=`, `# escape=`, `# check=`)
//! only before the first comment, blank line or instruction; line continuation with the
//! escape character (optionally followed by spaces or tabs); comment and blank lines inside a
//! continuation skipped; heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`) on `RUN`, `COPY` and `ADD`,
//! whose body lines belong to the instruction.

use std::iter::Peekable;

use crate::SyntaxError as Error;

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

/// The physical lines not yet lexed.
type Remaining<'a> = Peekable<Lines<'a>>;

/// Lex `text`.
pub(crate) fn lex(text: &str) -> Result<Lexed, Error> {
    let mut lines = Lines {
        text,
        pos: 0,
        number: 0,
    }
    .peekable();
    let escape = parser_directives(&mut lines)?;
    let mut instructions = Vec::new();
    while let Some(first) = lines.next() {
        if !is_blank_or_comment(without_bom(first)) {
            instructions.push(instruction(first, &mut lines, escape)?);
        }
    }
    Ok(Lexed { instructions })
}

/// A line's content, without the UTF-8 byte order mark that may open the text.
fn without_bom(line: Line<'_>) -> &str {
    if line.number == 1 {
        line.content.strip_prefix(UTF8_BOM).unwrap_or(line.content)
    } else {
        line.content
    }
}

/// Consumes the parser directives at the top of the text; returns the escape character.
fn parser_directives(lines: &mut Remaining<'_>) -> Result<char, Error> {
    let mut escape = '\\';
    let mut seen: Vec<String> = Vec::new();
    while let Some(line) = lines.peek().copied() {
        let Some((key, value)) = directive(without_bom(line)) else {
            break;
        };
        let key = key.to_ascii_lowercase();
        if !KNOWN_DIRECTIVES.contains(&key.as_str()) {
            break;
        }
        if seen.contains(&key) {
            return Err(Error::DuplicateDirective {
                line: line.number,
                name: key,
            });
        }
        if key == "escape" {
            escape = escape_character(line.number, value)?;
        }
        seen.push(key);
        lines.next();
    }
    Ok(escape)
}

/// The character `# escape=value` on line `line` asks for.
fn escape_character(line: usize, value: &str) -> Result<char, Error> {
    match value {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        _ => Err(Error::InvalidEscape {
            line,
            value: value.to_owned(),
        }),
    }
}

/// The instruction starting on `first` (neither blank nor a comment), with its continuation
/// and heredoc lines taken from `lines`.
fn instruction<'a>(
    first: Line<'a>,
    lines: &mut Remaining<'a>,
    escape: char,
) -> Result<Instruction, Error> {
    let content = without_bom(first);
    let indent = first.content.len() - content.trim_start_matches([' ', '\t']).len();
    let (logical, mut last) = join_continuations(first, indent, lines, escape);
    let logical = logical.trim().to_owned();
    let heredocs = heredocs(&logical, first.number, lines, &mut last)?;
    Ok(Instruction {
        line: first.number,
        start: first.start + indent,
        end: last.start + last.content.len(),
        next: last.next,
        newline: last.newline,
        logical,
        heredocs,
    })
}

/// The logical line starting at byte `indent` of `first`: its continuation lines joined
/// (without the escape character), the comment and blank lines inside them skipped. Also the
/// last physical line it took.
fn join_continuations<'a>(
    first: Line<'a>,
    indent: usize,
    lines: &mut Remaining<'a>,
    escape: char,
) -> (String, Line<'a>) {
    let mut logical = String::new();
    let mut last = first;
    let mut piece = &first.content[indent..];
    while let Some(joined) = strip_continuation(piece, escape) {
        logical.push_str(joined);
        match next_instruction_line(lines, &mut last) {
            Some(next) => piece = next.content,
            None => return (logical, last),
        }
    }
    logical.push_str(piece);
    (logical, last)
}

/// The next line that is neither blank nor a comment, recording every line taken in `last`.
fn next_instruction_line<'a>(lines: &mut Remaining<'a>, last: &mut Line<'a>) -> Option<Line<'a>> {
    for next in lines.by_ref() {
        *last = next;
        if !is_blank_or_comment(next.content) {
            return Some(next);
        }
    }
    None
}

/// The heredocs that `logical` (on line `line`) opens, their bodies taken from `lines`; none
/// unless it is a shell-form `RUN`, `COPY` or `ADD`.
fn heredocs<'a>(
    logical: &str,
    line: usize,
    lines: &mut Remaining<'a>,
    last: &mut Line<'a>,
) -> Result<Vec<Heredoc>, Error> {
    let keyword = split_keyword(logical).0.to_ascii_uppercase();
    if !HEREDOC_INSTRUCTIONS.contains(&keyword.as_str()) {
        return Ok(Vec::new());
    }
    let args = &logical[args_offset(logical)..];
    if is_json_array(args) {
        return Ok(Vec::new());
    }
    heredoc_markers(args)
        .into_iter()
        .map(|(name, chomp)| heredoc_body(name, chomp, line, lines, last))
        .collect()
}

/// The body of heredoc `name` (opened on line `line`): the lines up to its terminator.
fn heredoc_body<'a>(
    name: String,
    chomp: bool,
    line: usize,
    lines: &mut Remaining<'a>,
    last: &mut Line<'a>,
) -> Result<Heredoc, Error> {
    let mut data = String::new();
    for body in lines.by_ref() {
        *last = body;
        let candidate = if chomp {
            body.content.trim_start_matches('\t')
        } else {
            body.content
        };
        if candidate == name {
            return Ok(Heredoc { name, chomp, data });
        }
        data.push_str(body.content);
        data.push('\n');
    }
    Err(Error::UnterminatedHeredoc { line, name })
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

/// `args` (an instruction's arguments) as an exec-form JSON array of strings, if it is one:
/// `["/bin/sh", "-c"]` → `/bin/sh`, `-c`.
pub fn parse_json_array(args: &str) -> Option<Vec<String>> {
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
