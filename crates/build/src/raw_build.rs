//! A build on a connection of our own: BuildKit (`version=2`, with a session) or the classic
//! builder with balenaEngine volumes, neither of which bollard 0.21.1 can send or parse.

use base64::Engine as _;
use bollard::Docker;
use bollard::models::BuildInfo;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::connect::to_base64url;
use crate::context::{ContextBody, ProducerOutcome};
use crate::error::{Error, Result};
use crate::events::{BuildEvent, emit, extract_from_tag};
use crate::image_build::{
    BuildOptions, BuildState, Builder, Built, compose_host_to_docker, describe_tags, inspect_built,
};
use crate::pull::classify_pull_error;
use crate::raw;
use crate::redact::Redactor;
use crate::reference::ImageReference;
use crate::session::{Session, SessionServices};
use crate::trace::{StreamMessage, Trace};

/// The build argument that makes BuildKit write its cache metadata into the image config, so
/// that the image can be a `cache_from` source of a later build (BuildKit ignores an image
/// without it as a cache source).
pub const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

pub(crate) async fn run_raw_build(
    docker: &Docker,
    context: ContextBody,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<Built> {
    let daemon = match &options.daemon {
        Some(daemon) => daemon.clone(),
        None => crate::Daemon::resolve(&crate::DaemonFlags::default())?,
    };
    let version = docker.client_version();
    let version = format!("{}.{}", version.major_version, version.minor_version);
    let buildkit = options.builder == Builder::BuildKit;

    // The session must exist before the build names it; it lives until this function returns.
    let session = if buildkit {
        let services = SessionServices {
            secrets: options.secrets.clone(),
            registry_auth: options.registry_auth.clone(),
        };
        Some(Session::start(&daemon.endpoint, &version, services).await?)
    } else {
        None
    };
    let network_mode = network_mode(docker, options).await;
    let query = build_query(options, network_mode, session.as_ref().map(Session::id));
    let (chunks, producer) = context.into_stream();
    let request = build_request(&version, &query, options, raw::stream_body(chunks))?;
    let response = send_request(&daemon, request, &producer).await?;

    let mut stream = if buildkit {
        RawStream::BuildKit(Trace::new(
            Redactor::new(options.secrets.values()),
            options.plain_progress,
        ))
    } else {
        RawStream::Classic {
            state: BuildState::default(),
            error: None,
        }
    };
    let transport_error = stream.read(response, events).await;
    drop(session);
    if let Some(e) = producer.take_error() {
        return Err(Error::Context(e));
    }
    let host = daemon.host;
    match stream {
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
                &producer,
                options,
                events,
            )
            .await
        }
    }
}

/// BuildKit's default network is `bridge`; a daemon started with `--bridge=none` has none,
/// and every RUN would fail with "network bridge not found": `host` there. The classic
/// builder copes without (`None`).
async fn network_mode(docker: &Docker, options: &BuildOptions) -> Option<String> {
    if let Some(mode) = &options.network_mode {
        return Some(mode.clone());
    }
    if options.builder != Builder::BuildKit {
        return None;
    }
    let bridge = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await;
    bridge.is_err().then(|| "host".to_owned())
}

/// The `/build` query of `options`.
fn build_query(
    options: &BuildOptions,
    network_mode: Option<String>,
    session: Option<&str>,
) -> Vec<(&'static str, String)> {
    let json = |value: serde_json::Value| value.to_string();
    let mut build_args = options.build_args.clone();
    if session.is_some() && !build_args.contains_key(INLINE_CACHE_ARG) {
        build_args.insert(INLINE_CACHE_ARG.to_owned(), "1".to_owned());
    }
    let mut query: Vec<(&str, String)> = vec![
        (
            "dockerfile",
            options
                .dockerfile
                .clone()
                .unwrap_or_else(|| "Dockerfile".to_owned()),
        ),
        ("buildargs", json(serde_json::json!(build_args))),
        ("labels", json(serde_json::json!(options.labels))),
        ("rm", "1".to_owned()),
        ("forcerm", "1".to_owned()),
    ];
    query.extend(options.tags.iter().map(|tag| ("t", tag.clone())));
    let flag = |on: bool| on.then(|| "1".to_owned());
    let optional = [
        ("nocache", flag(options.nocache)),
        ("pull", flag(options.pull)),
        ("platform", options.platform.clone()),
        ("target", options.target.clone()),
        (
            "cachefrom",
            (!options.cache_from.is_empty()).then(|| json(serde_json::json!(options.cache_from))),
        ),
        ("networkmode", network_mode),
        (
            "volumes",
            (!options.volumes.is_empty()).then(|| json(serde_json::json!(options.volumes))),
        ),
        ("shmsize", options.shm_size.map(|bytes| bytes.to_string())),
        ("version", session.map(|_| "2".to_owned())),
        ("session", session.map(str::to_owned)),
    ];
    query.extend(
        optional
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v))),
    );
    for host in &options.extra_hosts {
        query.push(("extrahosts", compose_host_to_docker(host)));
    }
    query
}

fn build_request<B>(
    version: &str,
    query: &[(&str, String)],
    options: &BuildOptions,
    body: B,
) -> Result<http::Request<B>> {
    let failed = |reason: String| Error::Session {
        reason: format!("building {}: {reason}", describe_tags(&options.tags)),
    };
    let credentials = serde_json::to_string(&options.registry_auth.as_build_config())
        .map_err(|e| failed(format!("encoding registry credentials: {e}")))?;
    http::Request::post(format!("/v{version}/build?{}", raw::query_encode(query)))
        .header(http::header::HOST, "docker")
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .header(
            "X-Registry-Config",
            to_base64url(&base64::engine::general_purpose::STANDARD.encode(credentials)),
        )
        .body(body)
        .map_err(|e| failed(e.to_string()))
}

/// Sends the build; a refusal before any stream (HTTP error) is the build's failure.
async fn send_request<B>(
    daemon: &crate::Daemon,
    request: http::Request<B>,
    producer: &ProducerOutcome,
) -> Result<http::Response<Incoming>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = match raw::send(&daemon.endpoint, request).await {
        Ok(response) => response,
        Err(e) => {
            if let Some(e) = producer.take_failure() {
                return Err(Error::Context(e));
            }
            return Err(Error::Unreachable {
                host: daemon.host.clone(),
                reason: e.to_string(),
            });
        }
    };
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = raw::read_body(response).await.unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    if let Some(e) = producer.take_error() {
        return Err(Error::Context(e));
    }
    Err(Error::BuildFailed {
        message: format!("{message} (HTTP {status})"),
        step: None,
        output: Vec::new(),
        layers: Vec::new(),
    })
}

/// What reads the response's JSON lines.
enum RawStream {
    BuildKit(Trace),
    Classic {
        state: BuildState,
        /// The first error the stream reported.
        error: Option<String>,
    },
}

impl RawStream {
    /// Reads the response to its end; the transport's error, if it broke off.
    async fn read(
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

    #[test]
    fn buildkit_builds_write_inline_cache_metadata_unless_told_otherwise() {
        let options = BuildOptions::default();
        let args = |query: &[(&str, String)]| {
            query
                .iter()
                .find(|(k, _)| *k == "buildargs")
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert!(args(&build_query(&options, None, Some("s"))).contains("BUILDKIT_INLINE_CACHE"));
        assert!(!args(&build_query(&options, None, None)).contains("BUILDKIT_INLINE_CACHE"));
        let mut off = options.clone();
        off.build_args.insert(INLINE_CACHE_ARG.into(), "0".into());
        assert!(
            args(&build_query(&off, None, Some("s"))).contains(r#""BUILDKIT_INLINE_CACHE":"0""#)
        );
    }
}
