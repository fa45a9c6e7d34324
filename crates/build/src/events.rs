//! Progress events, and what we read out of the classic builder's output lines.

use std::sync::LazyLock;

use regex::Regex;
use tokio::sync::mpsc;

/// One thing that happened during a build or pull, in order. Output is per complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// The classic builder started a step (`Step 2/5 : RUN make`).
    Step {
        /// 1-based step number.
        index: u32,
        /// Number of steps.
        total: u32,
        /// The instruction as the daemon printed it, e.g. `RUN make`.
        instruction: String,
    },
    /// A line of build output (without its newline). Step lines are reported as
    /// [`BuildEvent::Step`] instead.
    Output {
        /// The line.
        line: String,
    },
    /// A step produced (or reused) this layer; follows the ` ---> <id>` output line.
    Layer {
        /// The short image id of the layer.
        id: String,
    },
    /// Pull progress: for a pull, or for a `FROM` image the build pulls.
    Progress {
        /// The layer id, if the status is about one layer.
        id: Option<String>,
        /// The daemon's status text, e.g. `Downloading` or `Pull complete`.
        status: String,
        /// Bytes done, when known.
        current: Option<u64>,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
    /// The daemon reported an error; the build or pull fails with it.
    Error {
        /// The daemon's message.
        message: String,
    },
}

impl BuildEvent {
    /// The daemon's progress message for one layer (or for the whole pull, without an id).
    pub(crate) fn progress(
        id: Option<String>,
        status: String,
        detail: Option<bollard::models::ProgressDetail>,
    ) -> Self {
        let detail = detail.unwrap_or_default();
        BuildEvent::Progress {
            id,
            status,
            current: detail.current.and_then(|v| u64::try_from(v).ok()),
            total: detail.total.and_then(|v| u64::try_from(v).ok()),
        }
    }
}

/// Sends an event; a receiver that went away is not our failure.
pub(crate) async fn emit(events: &mpsc::Sender<BuildEvent>, event: BuildEvent) {
    let _ = events.send(event).await;
}

/// Reassembles lines from `stream` chunks: the daemon (or bollard's framing) may split a line
/// and its `\n` across chunks.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    partial: String,
}

impl LineBuffer {
    /// Adds a chunk; returns the lines it completes, without `\n` or `\r\n`.
    pub(crate) fn push(&mut self, chunk: &str) -> Vec<String> {
        self.partial.push_str(chunk);
        let Some(last_newline) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        complete
            .lines()
            .map(|l| strip_ansi(l.strip_suffix('\r').unwrap_or(l)))
            .collect()
    }

    /// The unterminated last line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        (!rest.is_empty()).then(|| strip_ansi(&rest))
    }
}

/// The line without terminal escape sequences: the classic builder wraps a `RUN`'s stderr in
/// colour codes (`ESC[91m … ESC[0m`), which mean nothing in a log, an event or an error.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

static LAYER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\s*-+>\s*([a-f0-9]{12}[a-f0-9]*)").ok());
static STEP: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^Step (\d+)/(\d+) : (.*)$").ok());
static STEP_PREFIX: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^Step [^:]*?\s*:\s*").ok());

/// The layer id of a ` ---> 2e2f252f3c88` line (lower-case hex, at least 12 digits; trailing
/// text ignored), as the reference's `extractLayer`.
pub fn extract_layer(line: &str) -> Option<String> {
    let captures = LAYER.as_ref()?.captures(line)?;
    Some(captures.get(1)?.as_str().to_owned())
}

/// `Step 2/5 : RUN make` → `(2, 5, "RUN make")`.
pub fn parse_step(line: &str) -> Option<(u32, u32, String)> {
    let captures = STEP.as_ref()?.captures(line)?;
    let index = captures.get(1)?.as_str().parse().ok()?;
    let total = captures.get(2)?.as_str().parse().ok()?;
    Some((index, total, captures.get(3)?.as_str().to_owned()))
}

/// A base image named by a `FROM` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromTag {
    /// The image name without tag or digest, e.g. `localhost:5000/foo`.
    pub repo: String,
    /// The tag: as written, `latest` when neither tag nor digest is given, `None` with only a
    /// digest.
    pub tag: Option<String>,
    /// The digest, if the reference pins one.
    pub digest: Option<String>,
    /// The stage name given with `AS`.
    pub alias: Option<String>,
}

/// The base image of a `FROM` line or `Step n/m : FROM …` line, like the reference's
/// `extractFromTag` but without its quirks (spec §5.3): `AS` in any case, `--platform=…` and
/// other flags skipped, registry ports and digests understood, and `from` in lower case
/// accepted. An unexpanded `${VAR}` is not an image: `None`.
pub fn extract_from_tag(line: &str) -> Option<FromTag> {
    let prefix_len = STEP_PREFIX
        .as_ref()
        .and_then(|re| re.find(line))
        .map_or(0, |m| m.end());
    let mut words = line[prefix_len..].split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("FROM") {
        return None;
    }
    let mut words = words.skip_while(|w| w.starts_with("--"));
    let image = words.next()?;
    if image.contains('$') {
        return None;
    }
    let alias = match (words.next(), words.next()) {
        (Some(keyword), Some(name)) if keyword.eq_ignore_ascii_case("as") => Some(name.to_owned()),
        _ => None,
    };
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest.to_owned())),
        None => (image, None),
    };
    let (repo, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
        _ => (name, None),
    };
    let tag = match (tag, &digest) {
        (None, None) => Some("latest".to_owned()),
        (tag, _) => tag,
    };
    Some(FromTag {
        repo: repo.to_owned(),
        tag,
        digest,
        alias,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn extract_layer_cases_from_the_spec() {
        assert_eq!(
            extract_layer(" ---> 2e2f252f3c88\n").as_deref(),
            Some("2e2f252f3c88")
        );
        assert_eq!(
            extract_layer("--->abcdef123456").as_deref(),
            Some("abcdef123456")
        );
        assert_eq!(
            extract_layer(" -> 0123456789abcdef").as_deref(),
            Some("0123456789abcdef")
        );
        for none in [
            " ---> Running in 2730e2762325",
            " ---> Using cache",
            " ---> abc",
            " ---> ABCDEF123456",
            "Successfully built 2e2f252f3c88",
        ] {
            assert_eq!(extract_layer(none), None, "{none}");
        }
    }

    fn tag(repo: &str, tag: Option<&str>, alias: Option<&str>) -> Option<FromTag> {
        Some(FromTag {
            repo: repo.into(),
            tag: tag.map(Into::into),
            digest: None,
            alias: alias.map(Into::into),
        })
    }

    #[test]
    fn extract_from_tag_cases_from_the_spec() {
        assert_eq!(
            extract_from_tag("FROM ubuntu:18.04"),
            tag("ubuntu", Some("18.04"), None)
        );
        assert_eq!(
            extract_from_tag("Step 1/28 : FROM ubuntu"),
            tag("ubuntu", Some("latest"), None)
        );
        assert_eq!(extract_from_tag("something different"), None);
        assert_eq!(
            extract_from_tag("Step 1/28 : FROM ubuntu as base"),
            tag("ubuntu", Some("latest"), Some("base"))
        );
        assert_eq!(
            extract_from_tag("Step 1/28 : FROM some/image-name:1.2.3-tag as my-name"),
            tag("some/image-name", Some("1.2.3-tag"), Some("my-name"))
        );
    }

    /// The reference gets these wrong (spec §5.3 quirks); we do not.
    #[test]
    fn extract_from_tag_fixes_the_reference_quirks() {
        assert_eq!(
            extract_from_tag("FROM alpine AS base"),
            tag("alpine", Some("latest"), Some("base"))
        );
        assert_eq!(
            extract_from_tag("FROM --platform=linux/amd64 alpine"),
            tag("alpine", Some("latest"), None)
        );
        assert_eq!(
            extract_from_tag("FROM localhost:5000/foo:bar"),
            tag("localhost:5000/foo", Some("bar"), None)
        );
        let digest = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            extract_from_tag(&format!("FROM ubuntu@{digest}")),
            Some(FromTag {
                repo: "ubuntu".into(),
                tag: None,
                digest: Some(digest),
                alias: None
            })
        );
        assert_eq!(extract_from_tag("FROM ${BASE}"), None);
        assert_eq!(
            extract_from_tag("from alpine"),
            tag("alpine", Some("latest"), None)
        );
    }

    #[test]
    fn steps() {
        assert_eq!(
            parse_step("Step 2/3 : RUN exit 3"),
            Some((2, 3, "RUN exit 3".into()))
        );
        assert_eq!(parse_step(" ---> Running in 1234"), None);
    }

    #[test]
    fn line_buffer_joins_split_lines() {
        let mut b = LineBuffer::default();
        assert!(b.push("Step 1/2 : FROM x").is_empty());
        assert_eq!(b.push("\n"), ["Step 1/2 : FROM x"]);
        assert_eq!(b.push("a\r\nb\nc"), ["a", "b"]);
        assert_eq!(b.push("\n\n"), ["c", ""]);
        assert_eq!(b.push("tail"), Vec::<String>::new());
        assert_eq!(b.finish().as_deref(), Some("tail"));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn colour_codes_are_stripped_from_lines() {
        assert_eq!(strip_ansi("\u{1b}[91mboom\u{1b}[0m"), "boom");
        assert_eq!(strip_ansi("plain"), "plain");
        let mut b = LineBuffer::default();
        assert_eq!(b.push("\u{1b}[91merr\n"), vec!["err".to_owned()]);
    }
}
