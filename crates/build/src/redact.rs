//! Hiding build secrets in text we show: a `RUN` may print a secret, whole or in part
//! (`tail -c 200 /run/secrets/key`), and its output goes to the terminal, `--json` events and
//! the build log uploaded with a release.
//!
//! The limit: any run of [`MIN_FRAGMENT`] bytes or more that also occurs in a secret is
//! hidden; a shorter piece of a longer secret is not (it would match ordinary output by
//! accident). A secret line shorter than that (but of 4 bytes or more) is hidden whenever it
//! appears whole.
//!
//! Output reaches the redactor line by line (the builders' streams are reassembled into
//! lines first, see `events::LineBuffer`), so a fragment split across stream chunks is seen
//! whole; a fragment that spans a line break is judged per line.

use std::collections::HashSet;
use std::ops::Range;

/// The shortest piece of a secret that is hidden wherever it appears.
pub const MIN_FRAGMENT: usize = 16;

/// The shortest secret line that is hidden when it appears whole; shorter ones would hide
/// ordinary words.
const MIN_WHOLE: usize = 4;

/// What a secret (or a piece of one) looks like in output.
pub const REDACTED: &str = "[secret]";

/// Replaces every piece of a secret of [`MIN_FRAGMENT`] bytes or more, and every short secret
/// line, with [`REDACTED`].
///
/// Hand-written rather than with `aho-corasick`: the needles are every substring of every
/// secret, which a multi-pattern automaton cannot hold; a set of the secrets'
/// `MIN_FRAGMENT`-byte windows finds them all in one pass instead, as every such substring
/// is covered by its windows.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Every `MIN_FRAGMENT`-byte window of every secret.
    windows: HashSet<[u8; MIN_FRAGMENT]>,
    /// Secret lines shorter than `MIN_FRAGMENT`, hidden when they appear whole.
    short: Vec<String>,
}

impl Redactor {
    /// A redactor for these secrets' contents.
    pub fn new<'a>(secrets: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut redactor = Redactor::default();
        for secret in secrets {
            redactor.windows.extend(
                secret
                    .windows(MIN_FRAGMENT)
                    .filter_map(|w| <[u8; MIN_FRAGMENT]>::try_from(w).ok()),
            );
            redactor.short.extend(
                String::from_utf8_lossy(secret)
                    .lines()
                    .map(str::trim)
                    .filter(|l| (MIN_WHOLE..MIN_FRAGMENT).contains(&l.len()))
                    .map(str::to_owned),
            );
        }
        redactor.short.sort();
        redactor.short.dedup();
        redactor
    }

    /// Whether there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.short.is_empty()
    }

    /// `text` with every piece of a secret replaced; adjacent or overlapping pieces become one
    /// [`REDACTED`].
    pub fn apply(&self, text: String) -> String {
        let ranges = self.secret_ranges(&text);
        if ranges.is_empty() {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut shown = 0;
        for range in ranges {
            out.push_str(text.get(shown..range.start).unwrap_or_default());
            out.push_str(REDACTED);
            shown = range.end;
        }
        out.push_str(text.get(shown..).unwrap_or_default());
        out
    }

    /// The byte ranges of `text` that are pieces of a secret: sorted, merged, and widened to
    /// character boundaries (a secret's bytes need not end on one).
    fn secret_ranges(&self, text: &str) -> Vec<Range<usize>> {
        let bytes = text.as_bytes();
        let mut found: Vec<Range<usize>> = bytes
            .windows(MIN_FRAGMENT)
            .enumerate()
            .filter(|(_, w)| {
                <[u8; MIN_FRAGMENT]>::try_from(*w).is_ok_and(|w| self.windows.contains(&w))
            })
            .map(|(start, _)| start..start + MIN_FRAGMENT)
            .collect();
        for needle in &self.short {
            found.extend(
                text.match_indices(needle.as_str())
                    .map(|(start, m)| start..start + m.len()),
            );
        }
        found.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for mut range in found {
            while !text.is_char_boundary(range.start) {
                range.start -= 1;
            }
            while !text.is_char_boundary(range.end) {
                range.end += 1;
            }
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const KEY: &str = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nshort-line\n-----END KEY-----\n";

    fn redactor() -> Redactor {
        Redactor::new([KEY.as_bytes(), b"tiny".as_slice(), b"abc".as_slice()].into_iter())
    }

    #[test]
    fn any_piece_of_sixteen_bytes_or_more_is_hidden_and_shorter_pieces_are_not() {
        let r = redactor();
        let line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
        assert_eq!(r.apply(format!("key: {line}!")), "key: [secret]!");
        // A middle slice, a head and a tail of the line, each 16 bytes or more.
        assert_eq!(r.apply(format!("<{}>", &line[10..40])), "<[secret]>");
        assert_eq!(r.apply(format!("<{}>", &line[..16])), "<[secret]>");
        assert_eq!(r.apply(format!("<{}>", &line[30..])), "<[secret]>");
        // 15 bytes of a long line is below the limit.
        assert_eq!(r.apply(line[..15].to_owned()), &line[..15]);
        // Short secret lines are hidden whole; shorter than 4 bytes they are not.
        assert_eq!(
            r.apply("a tiny short-line abc".into()),
            "a [secret] [secret] abc"
        );
        assert_eq!(r.apply("nothing here".into()), "nothing here");
    }

    #[test]
    fn pieces_next_to_each_other_become_one_and_multibyte_text_stays_valid() {
        let r = Redactor::new(
            [
                "ééééééééééééé-secret".as_bytes(),
                b"0123456789abcdefXYZ".as_slice(),
            ]
            .into_iter(),
        );
        // Two fragments back to back: one marker.
        assert_eq!(
            r.apply("x 0123456789abcdef0123456789abcdef y".into()),
            "x [secret] y"
        );
        // A window starting inside an `é` widens to the whole character.
        assert_eq!(
            r.apply("é-secret and ééééééé-secret".into()),
            "é-secret and [secret]"
        );
    }

    #[tokio::test]
    async fn a_secret_split_across_log_chunks_is_hidden() {
        // BuildKit's logs come in chunks; `Trace` joins them into lines before redacting.
        use crate::buildkit::trace::{StatusResponse, StreamMessage, Trace, Vertex, VertexLog};
        use crate::events::BuildEvent;
        use base64::Engine as _;
        use prost::Message as _;
        let line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        let mut trace = Trace::new(redactor(), false);
        let chunks = [
            format!("tail: {}", &line[20..30]),
            format!("{}\nhead: {}", &line[30..], &line[..8]),
            format!("{} done\n", &line[8..20]),
        ];
        for (i, chunk) in chunks.iter().enumerate() {
            let status = StatusResponse {
                vertexes: if i == 0 {
                    vec![Vertex {
                        digest: "sha256:r".into(),
                        name: "[1/1] RUN tail -c 32 /run/secrets/key".into(),
                        started: Some(crate::buildkit::trace::Timestamp::default()),
                        ..Vertex::default()
                    }]
                } else {
                    vec![]
                },
                statuses: vec![],
                logs: vec![VertexLog {
                    vertex: "sha256:r".into(),
                    msg: chunk.as_bytes().to_vec(),
                }],
            };
            let message = StreamMessage {
                id: Some("moby.buildkit.trace".into()),
                aux: Some(serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec()),
                )),
                ..StreamMessage::default()
            };
            trace.handle(message, &tx).await;
        }
        drop(tx);
        let mut lines = Vec::new();
        while let Some(event) = rx.recv().await {
            if let BuildEvent::Output { line } = event {
                lines.push(line);
            }
        }
        // `stream` text too, with the last line unterminated.
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        for chunk in [&line[..10], &line[10..], "\nend: ", &line[..20]] {
            let message = StreamMessage {
                stream: Some(chunk.to_owned()),
                ..StreamMessage::default()
            };
            trace.handle(message, &tx).await;
        }
        trace.finish(&tx).await;
        drop(tx);
        while let Some(event) = rx.recv().await {
            if let BuildEvent::Output { line } = event {
                lines.push(line);
            }
        }
        assert_eq!(
            lines,
            [
                "tail: [secret]",
                "head: [secret] done",
                "[secret]",
                "end: [secret]"
            ]
        );
    }
}
