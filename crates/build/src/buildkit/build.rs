//! A build on a connection of our own: BuildKit (`version=2`, with a session) or the classic
//! builder with balenaEngine volumes, neither of which bollard 0.21.1 can send or parse.

use base64::Engine as _;
use bollard::Docker;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::raw;
use super::session::{Session, SessionServices};
use super::stream::RawStream;
use crate::connect::to_base64url;
use crate::context::{ContextBody, ProducerOutcome};
use crate::error::{Error, Result};
use crate::events::BuildEvent;
use crate::image_build::{BuildOptions, Builder, Built, compose_host_to_docker, describe_tags};

/// The build argument that makes BuildKit write its cache metadata into the image config, so
/// that the image can be a `cache_from` source of a later build (BuildKit ignores an image
/// without it as a cache source).
pub const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// Builds `context` on a connection of our own (BuildKit, or classic with volumes).
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

    let mut stream = RawStream::new(options);
    let transport_error = stream.read(response, events).await;
    drop(session);
    if let Some(e) = producer.take_error() {
        return Err(Error::Context(e));
    }
    stream
        .finish(
            docker,
            transport_error,
            daemon.host,
            &producer,
            options,
            events,
        )
        .await
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
