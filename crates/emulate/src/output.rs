//! The classic builder's output, seen through the rewrite: `Step N/M : RUN` lines shown as the
//! user wrote them (spec §4.3), and the "exec format error" of a foreign exec explained.

use std::borrow::Cow;

use platform::Arch;

use crate::{Error, TransposeOptions};

/// If `line` is a `Step N[/M] :` line (case-insensitive, spaces optional as in the reference's
/// `/^step\s\d+(\/\d+)?\s?:/i`), the offset just past its `:`.
fn step_colon(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    if !bytes.get(..4)?.eq_ignore_ascii_case(b"step") {
        return None;
    }
    let mut at = 4;
    if !bytes.get(at)?.is_ascii_whitespace() {
        return None;
    }
    at += 1;
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let n = digits(at);
    if n == 0 {
        return None;
    }
    at += n;
    if bytes.get(at) == Some(&b'/') {
        let m = digits(at + 1);
        if m > 0 {
            at += 1 + m;
        }
    }
    if bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    (bytes.get(at) == Some(&b':')).then_some(at + 1)
}

/// If `line` is the step line of a `RUN`, the offset just past the `RUN` keyword.
fn run_step_keyword_end(line: &str) -> Option<usize> {
    let colon = step_colon(line)?;
    let rest = &line[colon..];
    let skip = rest
        .chars()
        .next()
        .filter(|c| c.is_whitespace())
        .map_or(0, char::len_utf8);
    let word_len = rest[skip..]
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len() - skip);
    let keyword = &rest[skip..skip + word_len];
    let after = &rest[skip + word_len..];
    // The reference requires whitespace (optionally after a ':') after the keyword.
    let spaced = after.starts_with(|c: char| c.is_whitespace())
        || after
            .strip_prefix(':')
            .is_some_and(|a| a.starts_with(|c: char| c.is_whitespace()));
    (keyword.eq_ignore_ascii_case("RUN") && spaced).then_some(colon + skip + word_len)
}

/// Show a daemon output line as if the Dockerfile had not been rewritten.
///
/// On a `Step N/M : RUN` line:
/// * our exec array `["<qemu>",("-execve",)…,"-c","cmd"]` is shown as `cmd`, and an exec-form
///   argv `["<qemu>","a","b"]` as `["a","b"]`;
/// * for parity with the reference, the first case-insensitive occurrence of
///   `"<qemu> -execve /bin/sh -c "` is removed, wherever it is on the line.
///
/// Every other line is returned unchanged. Unlike the reference's stream, no newline is
/// appended: the function works on one line, without its terminator.
pub fn filter_line<'a>(line: &'a str, opts: &TransposeOptions) -> Cow<'a, str> {
    let Some(keyword_end) = run_step_keyword_end(line) else {
        return Cow::Borrowed(line);
    };
    let after = &line[keyword_end..];
    let args = after.trim_start();
    if let Some(argv) = dockerfile::parse_json_array(args)
        && let Some(shown) = unwrap_qemu_argv(&argv, opts)
    {
        let head = &line[..line.len() - args.len()];
        return Cow::Owned(format!("{head}{shown}"));
    }
    let prefix = format!("{} -execve /bin/sh -c ", opts.qemu_path);
    match find_ignore_ascii_case(line, &prefix) {
        Some(at) => Cow::Owned(format!("{}{}", &line[..at], &line[at + prefix.len()..])),
        None => Cow::Borrowed(line),
    }
}

/// The classic builder's failure message (`The command '<argv joined>' returned a non-zero
/// code: N`) with the qemu prefix removed.
pub fn filter_error_message<'a>(message: &'a str, opts: &TransposeOptions) -> Cow<'a, str> {
    const OPEN: &str = "The command '";
    let Some(open) = message.find(OPEN) else {
        return Cow::Borrowed(message);
    };
    let at = open + OPEN.len();
    let Some(rest) = message[at..].strip_prefix(opts.qemu_path.as_str()) else {
        return Cow::Borrowed(message);
    };
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let rest = rest.strip_prefix("-execve ").unwrap_or(rest);
    Cow::Owned(format!("{}{rest}", &message[..at]))
}

/// `argv` without its leading qemu (and `-execve`), shown as the user wrote it, if it starts
/// with the qemu of `opts`.
fn unwrap_qemu_argv(argv: &[String], opts: &TransposeOptions) -> Option<String> {
    let (first, rest) = argv.split_first()?;
    if *first != opts.qemu_path {
        return None;
    }
    let rest = match rest.split_first() {
        Some((flag, after)) if flag == "-execve" => after,
        _ => rest,
    };
    match rest {
        [.., c, cmd] if c == "-c" => Some(cmd.clone()),
        _ => {
            let items: Vec<&str> = rest.iter().map(String::as_str).collect();
            Some(dockerfile::json_array(&items))
        }
    }
}

fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() || n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Whether `text` reports a failed exec of a binary the kernel cannot run
/// (`ENOEXEC`, "Exec format error" in any case).
pub fn is_exec_format_error(text: &str) -> bool {
    find_ignore_ascii_case(text, "exec format error").is_some()
}

/// Follows a build's output: filters each line like [`filter_line`] and remembers the step
/// being run and any "exec format error", to explain a failure with
/// [`BuildOutput::explain_failure`].
#[derive(Debug, Clone)]
pub struct BuildOutput {
    arch: Arch,
    opts: TransposeOptions,
    step: Option<String>,
    exec_format_error: Option<String>,
}

/// Whether `line` is the daemon's warning that a base image's platform is not the host's
/// (`[Warning] The requested image's platform (linux/arm64) does not match the detected host
/// platform (linux/amd64) …`), which the classic builder prints at every step of a foreign
/// build.
pub fn is_platform_mismatch_warning(line: &str) -> bool {
    line.contains("The requested image's platform") && line.contains("does not match")
}

impl BuildOutput {
    /// Follow the output of a build of a Dockerfile transposed for `arch` with `opts`.
    pub fn new(arch: Arch, opts: TransposeOptions) -> Self {
        BuildOutput {
            arch,
            opts,
            step: None,
            exec_format_error: None,
        }
    }

    /// Take one output line (without its newline) and return it filtered.
    pub fn line<'a>(&mut self, line: &'a str) -> Cow<'a, str> {
        let shown = filter_line(line, &self.opts);
        if step_colon(&shown).is_some() {
            self.step = Some(shown.trim_end().to_owned());
        } else if is_exec_format_error(line) && self.exec_format_error.is_none() {
            self.exec_format_error = Some(line.trim_end().to_owned());
        }
        shown
    }

    /// The step last seen, as shown to the user.
    pub fn current_step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    /// Given the daemon's error for the failed build, the helpful error if the failure was a
    /// foreign exec under a qemu without `-execve`: what failed and the two ways out. `None`
    /// if it was something else.
    pub fn explain_failure(&self, daemon_error: &str) -> Option<Error> {
        let evidence = if is_exec_format_error(daemon_error) {
            daemon_error.to_owned()
        } else {
            self.exec_format_error.clone()?
        };
        Some(foreign_exec_error(
            self.arch,
            self.step.as_deref(),
            &evidence,
            &filter_error_message(daemon_error, &self.opts),
            &self.opts,
        ))
    }
}

/// The error for a `RUN` (`step`) whose foreign program could not be executed (`evidence`:
/// the output line that said so; `daemon_error`: the daemon's failure message).
pub fn foreign_exec_error(
    arch: Arch,
    step: Option<&str>,
    evidence: &str,
    daemon_error: &str,
    opts: &TransposeOptions,
) -> Error {
    Error::ForeignExec {
        arch,
        step: step.unwrap_or("a RUN step").to_owned(),
        evidence: evidence.to_owned(),
        daemon_error: daemon_error.to_owned(),
        qemu: opts.qemu_path.clone(),
        execve: opts.execve,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn step_prefixes() {
        assert_eq!(step_colon("Step 3/3 : RUN x"), Some(10));
        assert_eq!(step_colon("step 3 : run x"), Some(8));
        assert_eq!(step_colon("Step 3/3: RUN x"), Some(9));
        assert_eq!(step_colon("Step x/3 : RUN x"), None);
        assert_eq!(step_colon("Steps 3 : RUN"), None);
        assert_eq!(step_colon("Step"), None);
        assert!(run_step_keyword_end("Step 1/2 : RUNNER x").is_none());
        assert!(run_step_keyword_end("Step 1/2 : CMD x").is_none());
    }
}
