//! Reading a raw build's response: BuildKit's `moby.buildkit.trace` messages or the classic
//! builder's JSON lines, to the events and the [`Built`] (or the error) of the build.

use bollard::Docker;
use bollard::models::BuildInfo;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::trace::{StreamMessage, Trace};
use crate::context::ProducerOutcome;
use crate::error::{Error, Result};
use crate::events::{BuildEvent, emit, extract_from_tag};
use crate::image_build::{BuildOptions, BuildState, Builder, Built, describe_tags, inspect_built};
use crate::pull::classify_pull_error;
use crate::redact::Redactor;
use crate::reference::ImageReference;

/// What reads the response's JSON lines.
pub(super) enum RawStream {
    BuildKit(Trace),
    Classic {
        state: BuildState,
        /// The first error the stream reported.
        error: Option<String>,
    },
}

impl RawStream {
    /// The reader for a build on `options.builder`.
    pub(super) fn new(options: &BuildOptions) -> Self {
        if options.builder == Builder::BuildKit {
            RawStream::BuildKit(Trace::new(
                Redactor::new(options.secrets.values()),
                options.plain_progress,
            ))
        } else {
            RawStream::Classic {
                state: BuildState::default(),
                error: None,
            }
        }
    }

    /// Reads the response to its end; the transport's error, if it broke off.
    pub(super) async fn read(
        &mut self,
        response: http::Response<Incoming>,
        events: &mpsc::Sender<BuildEvent>,
    ) -> Option<String> {
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let frame = match http_body_util::BodyExt::frame(&mut body).await {
                None => return None,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Some(e.to_string()),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=newline).collect();
                let line = line.trim_ascii();
                if !line.is_empty() {
                    self.line(line, events).await;
                }
            }
        }
    }

    async fn line(&mut self, line: &[u8], events: &mpsc::Sender<BuildEvent>) {
        match self {
            RawStream::BuildKit(trace) => {
                if let Ok(message) = serde_json::from_slice::<StreamMessage>(line) {
                    trace.handle(message, events).await;
                }
            }
            RawStream::Classic { state, error } => {
                handle_classic_line(line, state, error, events).await;
            }
        }
    }

    /// The build's outcome once its stream ended (`transport_error` if it broke off).
    pub(super) async fn finish(
        self,
        docker: &Docker,
        transport_error: Option<String>,
        host: String,
        producer: &ProducerOutcome,
        options: &BuildOptions,
        events: &mpsc::Sender<BuildEvent>,
    ) -> Result<Built> {
        match self {
            RawStream::BuildKit(trace) => {
                finish_buildkit(docker, trace, transport_error, host, options, events).await
            }
            RawStream::Classic { state, error } => {
                finish_classic(
                    docker,
                    state,
                    error,
                    transport_error,
                    host,
                    producer,
                    options,
                    events,
                )
                .await
            }
        }
    }
}

/// One JSON line of a classic build's stream, as bollard would have parsed it.
async fn handle_classic_line(
    line: &[u8],
    state: &mut BuildState,
    error: &mut Option<String>,
    events: &mpsc::Sender<BuildEvent>,
) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
        return;
    };
    let message = value
        .get("errorDetail")
        .and_then(|d| d.get("message"))
        .or_else(|| value.get("error"))
        .and_then(|m| m.as_str());
    if let Some(message) = message {
        error.get_or_insert_with(|| message.to_owned());
        return;
    }
    if let Ok(info) = serde_json::from_value::<BuildInfo>(value) {
        state.handle(info, events).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_classic(
    docker: &Docker,
    mut state: BuildState,
    error: Option<String>,
    transport_error: Option<String>,
    host: String,
    producer: &ProducerOutcome,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<Built> {
    state.flush(events).await;
    match (error, transport_error) {
        (Some(message), _) => {
            let error = bollard::errors::Error::DockerStreamError { error: message };
            state.fail(docker, error, producer, events, options).await
        }
        (None, Some(reason)) if state.announced_id().is_none() => Err(Error::ConnectionLost {
            host,
            action: format!("building {}", describe_tags(&options.tags)),
            reason,
        }),
        (None, _) => state.finish(docker, options).await,
    }
}

async fn finish_buildkit(
    docker: &Docker,
    mut trace: Trace,
    transport_error: Option<String>,
    host: String,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<Built> {
    trace.finish(events).await;
    if let Some(message) = trace.error.clone() {
        let error = buildkit_failure(&trace, message.clone(), options);
        // A scheduler race is no failure of the user's build: the caller builds again.
        if !error.is_buildkit_scheduler_race() {
            emit(events, BuildEvent::Error { message }).await;
        }
        return Err(error);
    }
    if let Some(reason) = transport_error {
        return Err(Error::ConnectionLost {
            host,
            action: format!("building {}", describe_tags(&options.tags)),
            reason,
        });
    }
    let announced = trace
        .image_id
        .clone()
        .or_else(|| options.tags.first().cloned())
        .ok_or_else(|| Error::BuildFailed {
            message: "the daemon finished the build without reporting an image id".into(),
            step: None,
            output: Vec::new(),
            layers: Vec::new(),
        })?;
    let inspect = inspect_built(docker, &announced).await?;
    let digest = inspect
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_owned()));
    // BuildKit commits no intermediate images: the image's own layers stand for the steps'.
    let layers = inspect
        .root_fs
        .and_then(|root| root.layers)
        .unwrap_or_default();
    for id in &layers {
        emit(events, BuildEvent::Layer { id: id.clone() }).await;
    }
    Ok(Built {
        image_id: inspect.id.unwrap_or(announced),
        digest,
        layers,
        from_tags: trace.from_tags,
        tags: options.tags.clone(),
    })
}

/// A failed BuildKit build: the failing base image's pull error when the registry refused
/// or lacks it (as on the classic builder), otherwise the failing step and its output.
fn buildkit_failure(trace: &Trace, message: String, options: &BuildOptions) -> Error {
    let (step, output) = trace.failure();
    if let Some(e) = step
        .as_deref()
        .and_then(|step| base_image_pull_error(step, &message, options))
    {
        return e;
    }
    Error::BuildFailed {
        message,
        step,
        output,
        layers: Vec::new(),
    }
}

/// The base image a failing BuildKit vertex was resolving or pulling:
/// `[internal] load metadata for <image>` or `Step 1/3 : FROM <image>`.
fn failing_base_image(step: &str) -> Option<String> {
    if let Some(image) = step.strip_prefix("[internal] load metadata for ") {
        return Some(image.trim().to_owned());
    }
    let from = extract_from_tag(step)?;
    Some(match (&from.tag, &from.digest) {
        (_, Some(digest)) => format!("{}@{digest}", from.repo),
        (Some(tag), None) => format!("{}:{tag}", from.repo),
        (None, None) => from.repo,
    })
}

fn base_image_pull_error(step: &str, message: &str, options: &BuildOptions) -> Option<Error> {
    let image = failing_base_image(step)?;
    let reference = ImageReference::parse(&image).ok()?;
    let had_credentials = options.registry_auth.for_image(&image).is_some();
    match classify_pull_error(&reference, &image, message.to_owned(), had_credentials) {
        e @ (Error::Unauthorized { .. } | Error::ImageNotFound { .. }) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failing_base_images_are_read_from_vertex_names() {
        assert_eq!(
            failing_base_image("[internal] load metadata for 127.0.0.1:5001/private/x:latest")
                .as_deref(),
            Some("127.0.0.1:5001/private/x:latest")
        );
        assert_eq!(
            failing_base_image("Step 1/2 : FROM docker.io/library/alpine:3.19@sha256:abc")
                .as_deref(),
            Some("docker.io/library/alpine@sha256:abc")
        );
        assert_eq!(failing_base_image("Step 2/2 : RUN exit 3"), None);
    }
}
