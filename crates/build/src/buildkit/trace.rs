//! BuildKit's progress, as the daemon streams it from `POST /build?version=2`: JSON messages
//! whose `aux` is a base64 protobuf `moby.buildkit.v1.StatusResponse` (id
//! `moby.buildkit.trace`), plus the image id (`moby.image.id`) and errors. Turned into the same
//! [`BuildEvent`]s the classic builder gives: a step per vertex named `[i/n] INSTRUCTION`,
//! output lines per vertex log, pull progress per status.

use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;

use base64::Engine as _;
use prost::Message;
use regex::Regex;
use tokio::sync::mpsc;

use crate::events::{BuildEvent, FromTag, LineBuffer, emit, extract_from_tag};
use crate::image_build::FAILURE_OUTPUT_LINES;
use crate::redact::Redactor;

/// `moby.buildkit.v1.StatusResponse` (only the fields we read; prost skips the others).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct StatusResponse {
    #[prost(message, repeated, tag = "1")]
    pub vertexes: Vec<Vertex>,
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<VertexStatus>,
    #[prost(message, repeated, tag = "3")]
    pub logs: Vec<VertexLog>,
}

/// `google.protobuf.Timestamp`; only its presence matters here.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `moby.buildkit.v1.Vertex`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Vertex {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(bool, tag = "4")]
    pub cached: bool,
    #[prost(message, optional, tag = "5")]
    pub started: Option<Timestamp>,
    #[prost(message, optional, tag = "6")]
    pub completed: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub error: String,
}

/// `moby.buildkit.v1.VertexStatus`: progress of one item (a layer download) of a vertex.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct VertexStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub vertex: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(int64, tag = "4")]
    pub current: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    #[prost(message, optional, tag = "8")]
    pub completed: Option<Timestamp>,
}

/// `moby.buildkit.v1.VertexLog`: output of a vertex (a `RUN`'s stdout/stderr).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct VertexLog {
    #[prost(string, tag = "1")]
    pub vertex: String,
    #[prost(bytes = "vec", tag = "4")]
    pub msg: Vec<u8>,
}

/// One JSON message of a BuildKit build's response stream.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct StreamMessage {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub aux: Option<serde_json::Value>,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(rename = "errorDetail", default)]
    pub error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
}

/// `[2/3] RUN x`, `[base 1/2] FROM y`: a Dockerfile step, with its index and count.
static STEP_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\[(?:[^\]]*\s)?(\d+)/(\d+)\]\s+(.*)$").ok());

fn parse_vertex_name(name: &str) -> Option<(u32, u32, String)> {
    let captures = STEP_NAME.as_ref()?.captures(name)?;
    Some((
        captures.get(1)?.as_str().parse().ok()?,
        captures.get(2)?.as_str().parse().ok()?,
        as_written(captures.get(3)?.as_str()),
    ))
}

/// BuildKit names a `FROM` image in full (`docker.io/library/alpine:3.19`); the classic
/// builder, and the Dockerfile, as written (`alpine:3.19`).
fn as_written(instruction: &str) -> String {
    let Some((keyword, rest)) = instruction.split_once(' ') else {
        return instruction.to_owned();
    };
    if !keyword.eq_ignore_ascii_case("FROM") {
        return instruction.to_owned();
    }
    let rest = rest
        .strip_prefix("docker.io/library/")
        .or_else(|| rest.strip_prefix("docker.io/"))
        .unwrap_or(rest);
    format!("{keyword} {rest}")
}

/// A step's vertex name as the classic builder names a step (`Step 2/3 : RUN x`), so that
/// a failure reads the same on either builder; other names as they are.
fn classic_step_name(name: &str) -> String {
    match parse_vertex_name(name) {
        Some((index, total, instruction)) => format!("Step {index}/{total} : {instruction}"),
        None => name.to_owned(),
    }
}

#[derive(Debug, Default)]
struct VertexState {
    name: String,
    /// A Dockerfile step (`[i/n] …`), as opposed to BuildKit's own work (`[internal] …`,
    /// `exporting to image`), which only plain progress shows.
    step: bool,
    started: bool,
    completed: bool,
    lines: LineBuffer,
    tail: VecDeque<String>,
}

impl VertexState {
    fn keep(&mut self, line: &str) {
        if self.tail.len() == FAILURE_OUTPUT_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }
}

/// The progress of one BuildKit build.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    vertices: HashMap<String, VertexState>,
    /// The order vertices were first seen in, for a stable "last failed" choice.
    order: Vec<String>,
    /// The vertex that reported an error first.
    failed: Option<String>,
    pub image_id: Option<String>,
    pub error: Option<String>,
    pub from_tags: Vec<FromTag>,
    pub redactor: Redactor,
    /// `stream` text, joined into lines before it is redacted: a secret split across two
    /// messages is then seen whole.
    stream_lines: LineBuffer,
    /// Report BuildKit's internal vertices and `CACHED` lines too (`--progress plain`).
    plain: bool,
}

impl Trace {
    pub(crate) fn new(redactor: Redactor, plain: bool) -> Self {
        Trace {
            redactor,
            plain,
            ..Trace::default()
        }
    }

    /// Whether the vertex's progress is shown: its steps always, the rest only when plain.
    fn shown(&self, digest: &str) -> bool {
        self.plain || self.vertices.get(digest).is_some_and(|v| v.step)
    }

    /// Handles one JSON message of the stream.
    pub(crate) async fn handle(
        &mut self,
        message: StreamMessage,
        events: &mpsc::Sender<BuildEvent>,
    ) {
        if let Some(error) = message
            .error_detail
            .and_then(|d| d.message)
            .or(message.error)
        {
            self.error = Some(self.redactor.apply(error));
        }
        if let Some(text) = message.stream {
            for line in self.stream_lines.push(&text) {
                self.stream_line(line, events).await;
            }
        }
        match (message.id.as_deref(), message.aux) {
            (Some("moby.buildkit.trace"), Some(serde_json::Value::String(encoded))) => {
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
                    return;
                };
                if let Ok(status) = StatusResponse::decode(bytes.as_slice()) {
                    self.status(status, events).await;
                }
            }
            (Some("moby.image.id"), Some(aux)) => {
                if let Some(id) = aux.get("ID").and_then(|v| v.as_str()) {
                    self.image_id = Some(id.to_owned());
                }
            }
            _ => {}
        }
    }

    /// Emits what is left of the `stream` text once the response ended.
    pub(crate) async fn finish(&mut self, events: &mpsc::Sender<BuildEvent>) {
        if let Some(line) = self.stream_lines.finish() {
            self.stream_line(line, events).await;
        }
    }

    async fn stream_line(&self, line: String, events: &mpsc::Sender<BuildEvent>) {
        if !line.trim().is_empty() {
            let line = self.redactor.apply(line);
            emit(events, BuildEvent::Output { line }).await;
        }
    }

    async fn status(&mut self, status: StatusResponse, events: &mpsc::Sender<BuildEvent>) {
        for vertex in status.vertexes {
            if !self.vertices.contains_key(&vertex.digest) {
                self.order.push(vertex.digest.clone());
            }
            let state = self.vertices.entry(vertex.digest.clone()).or_default();
            if !vertex.name.is_empty() {
                state.name = vertex.name.clone();
                state.step = parse_vertex_name(&vertex.name).is_some();
            }
            if (vertex.started.is_some() || vertex.cached)
                && !state.started
                && (state.step || self.plain)
            {
                state.started = true;
                let name = self.redactor.apply(state.name.clone());
                match parse_vertex_name(&name) {
                    Some((index, total, instruction)) => {
                        if let Some(from) = extract_from_tag(&instruction) {
                            self.from_tags.push(from);
                        }
                        emit(
                            events,
                            BuildEvent::Step {
                                index,
                                total,
                                instruction,
                            },
                        )
                        .await;
                    }
                    None => emit(events, BuildEvent::Output { line: name }).await,
                }
            }
            let Some(state) = self.vertices.get_mut(&vertex.digest) else {
                continue;
            };
            let shown = self.plain || state.step;
            if vertex.completed.is_some() && !state.completed {
                state.completed = true;
                if let Some(line) = state.lines.finish() {
                    let line = self.redactor.apply(line);
                    state.keep(&line);
                    if shown {
                        emit(events, BuildEvent::Output { line }).await;
                    }
                }
                if vertex.cached && self.plain {
                    emit(
                        events,
                        BuildEvent::Output {
                            line: "CACHED".to_owned(),
                        },
                    )
                    .await;
                }
            }
            if !vertex.error.is_empty() {
                // The vertex's error is the build's message; it is not repeated as output.
                self.error
                    .get_or_insert_with(|| self.redactor.apply(vertex.error));
                self.failed.get_or_insert(vertex.digest);
            }
        }
        for item in status.statuses {
            if !self.shown(&item.vertex) {
                continue;
            }
            emit(
                events,
                BuildEvent::Progress {
                    id: Some(item.id),
                    status: if item.completed.is_some() {
                        "done".to_owned()
                    } else {
                        item.name
                    },
                    current: u64::try_from(item.current).ok(),
                    total: u64::try_from(item.total).ok().filter(|t| *t > 0),
                },
            )
            .await;
        }
        for log in status.logs {
            let shown = self.shown(&log.vertex);
            let Some(state) = self.vertices.get_mut(&log.vertex) else {
                continue;
            };
            let text = String::from_utf8_lossy(&log.msg);
            for line in state.lines.push(&text) {
                let line = self.redactor.apply(line);
                state.keep(&line);
                if shown {
                    emit(events, BuildEvent::Output { line }).await;
                }
            }
        }
    }

    /// The failing step (`[2/3] RUN exit 3`) and its last output lines.
    pub(crate) fn failure(&self) -> (Option<String>, Vec<String>) {
        let digest = self.failed.as_ref().or_else(|| {
            // No vertex said it failed: the last one that started and did not finish.
            self.order.iter().rev().find(|d| {
                self.vertices
                    .get(*d)
                    .is_some_and(|v| v.started && !v.completed)
            })
        });
        match digest.and_then(|d| self.vertices.get(d)) {
            Some(state) => (
                Some(self.redactor.apply(classic_step_name(&state.name))),
                state.tail.iter().cloned().collect(),
            ),
            None => (None, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ts() -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1,
            nanos: 0,
        })
    }

    fn trace_message(status: &StatusResponse) -> StreamMessage {
        StreamMessage {
            id: Some("moby.buildkit.trace".into()),
            aux: Some(serde_json::Value::String(
                base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec()),
            )),
            ..StreamMessage::default()
        }
    }

    #[tokio::test]
    async fn vertices_become_steps_logs_lines_and_failures_are_named() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut trace = Trace::new(
            Redactor::new([b"sup3r-secret\n".as_slice()].into_iter()),
            false,
        );
        let run = Vertex {
            digest: "sha256:b".into(),
            name: "[2/2] RUN exit 3".into(),
            started: ts(),
            ..Vertex::default()
        };
        let status = StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "sha256:a".into(),
                    name: "[1/2] FROM docker.io/local/amd64-busybox".into(),
                    started: ts(),
                    completed: ts(),
                    ..Vertex::default()
                },
                run.clone(),
            ],
            statuses: vec![],
            logs: vec![VertexLog {
                vertex: "sha256:b".into(),
                msg: b"hello\nhas sup3r-secret in it\npart".to_vec(),
            }],
        };
        trace.handle(trace_message(&status), &tx).await;
        let failed = StatusResponse {
            vertexes: vec![Vertex {
                completed: ts(),
                error: "exit code: 3".into(),
                ..run
            }],
            statuses: vec![],
            logs: vec![],
        };
        trace.handle(trace_message(&failed), &tx).await;
        trace
            .handle(
                StreamMessage {
                    error: Some("executor failed running [/bin/sh -c exit 3]: exit code: 3".into()),
                    ..StreamMessage::default()
                },
                &tx,
            )
            .await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(e) = rx.recv().await {
            got.push(e);
        }
        let out = |l: &str| BuildEvent::Output { line: l.into() };
        assert_eq!(
            got,
            vec![
                BuildEvent::Step {
                    index: 1,
                    total: 2,
                    instruction: "FROM local/amd64-busybox".into()
                },
                BuildEvent::Step {
                    index: 2,
                    total: 2,
                    instruction: "RUN exit 3".into()
                },
                out("hello"),
                out("has [secret] in it"),
                out("part"),
            ]
        );
        let (step, output) = trace.failure();
        assert_eq!(step.as_deref(), Some("Step 2/2 : RUN exit 3"));
        assert_eq!(output, vec!["hello", "has [secret] in it", "part"]);
        assert_eq!(
            trace.error.as_deref(),
            Some("executor failed running [/bin/sh -c exit 3]: exit code: 3")
        );
        assert_eq!(trace.from_tags[0].repo, "local/amd64-busybox");
    }

    /// BuildKit's own vertices (and their logs and statuses) and `CACHED` lines only show
    /// with plain progress; a failing internal vertex still fails the build.
    #[tokio::test]
    async fn internal_vertices_and_cache_hits_show_only_when_plain() {
        let status = StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "sha256:i".into(),
                    name: "[internal] load build context".into(),
                    started: ts(),
                    completed: ts(),
                    ..Vertex::default()
                },
                Vertex {
                    digest: "sha256:c".into(),
                    name: "[2/2] COPY a /a".into(),
                    cached: true,
                    started: ts(),
                    completed: ts(),
                    ..Vertex::default()
                },
                Vertex {
                    digest: "sha256:m".into(),
                    name: "[internal] load metadata for docker.io/library/x:latest".into(),
                    started: ts(),
                    error: "401 Unauthorized".into(),
                    ..Vertex::default()
                },
            ],
            statuses: vec![VertexStatus {
                id: "naming to docker.io/library/x".into(),
                vertex: "sha256:i".into(),
                ..VertexStatus::default()
            }],
            logs: vec![VertexLog {
                vertex: "sha256:i".into(),
                msg: b"transferring context: 2B\n".to_vec(),
            }],
        };
        for plain in [false, true] {
            let (tx, mut rx) = mpsc::channel(100);
            let mut trace = Trace::new(Redactor::default(), plain);
            trace.handle(trace_message(&status), &tx).await;
            drop(tx);
            let mut got = Vec::new();
            while let Some(e) = rx.recv().await {
                got.push(e);
            }
            let shows = |line: &str| got.contains(&BuildEvent::Output { line: line.into() });
            assert_eq!(shows("[internal] load build context"), plain, "{got:#?}");
            assert_eq!(shows("transferring context: 2B"), plain, "{got:#?}");
            assert_eq!(shows("CACHED"), plain, "{got:#?}");
            let progress = got.iter().any(|e| matches!(e, BuildEvent::Progress { .. }));
            assert_eq!(progress, plain, "{got:#?}");
            assert!(got.contains(&BuildEvent::Step {
                index: 2,
                total: 2,
                instruction: "COPY a /a".into()
            }));
            assert_eq!(trace.error.as_deref(), Some("401 Unauthorized"));
            assert_eq!(
                trace.failure().0.as_deref(),
                Some("[internal] load metadata for docker.io/library/x:latest")
            );
        }
    }

    #[test]
    fn vertex_names() {
        assert_eq!(
            parse_vertex_name("[base 1/3] FROM alpine"),
            Some((1, 3, "FROM alpine".into()))
        );
        assert_eq!(parse_vertex_name("[internal] load .dockerignore"), None);
    }
}
