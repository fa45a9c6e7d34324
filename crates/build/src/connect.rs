//! Connecting to the daemon: address resolution, version negotiation, timeouts, and the
//! request fix-ups bollard 0.21.1 needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper::client::conn::http1::SendRequest;

use crate::dial::{Dialer, Endpoint};
use crate::docker_context::{Daemon, DaemonFlags};
use crate::error::{Error, Result, describe_transport_error};

/// The address used when neither `--docker-host` nor `DOCKER_HOST` is set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// bollard's timeout covers everything up to the response headers, and the daemon sends those
/// only after it has read the whole build context: it must outlast the longest upload. Our
/// own deadlines (see [`crate::BuildOptions::timeout`]) are enforced with tokio instead.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// How long the first exchange with the daemon (version negotiation) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Separator used to smuggle several values of a repeated query parameter through bollard's
/// single-valued option fields; the request modifier turns it back into repeated keys.
pub(crate) const REPEATED_VALUE_SEPARATOR: char = '\n';

/// Which address [`connect`] uses: `docker_host`, else `DOCKER_HOST`, else the default socket.
/// [`Daemon::resolve`] is the whole rule, with Docker contexts and TLS.
pub fn docker_host(docker_host: Option<&str>) -> String {
    docker_host
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned())
}

/// Connects to the daemon `docker_host` names, else the one [`Daemon::resolve`] finds from
/// the environment and Docker contexts, and negotiates the API version.
pub async fn connect(docker_host: Option<&str>) -> Result<Docker> {
    let flags = DaemonFlags {
        docker_host: docker_host.map(str::to_owned),
        ..DaemonFlags::default()
    };
    connect_to(&Daemon::resolve(&flags)?).await
}

/// Connects to `daemon` and negotiates the API version.
///
/// Unix sockets and plain TCP use bollard's own clients (pooled connections); TLS and ssh go
/// through [`Dialer`] as a bollard custom transport, one connection per request (each is an
/// `ssh` child for ssh, and a TLS handshake is cheap next to a build). The returned client
/// has a long request timeout (see [`REQUEST_TIMEOUT`]) and encodes registry credentials the
/// way the daemon decodes them.
pub async fn connect_to(daemon: &Daemon) -> Result<Docker> {
    let host = &daemon.host;
    let unreachable = |reason: String| Error::Unreachable {
        host: host.clone(),
        reason,
    };
    let timeout = REQUEST_TIMEOUT.as_secs();
    let docker = match &daemon.endpoint {
        Endpoint::Unix(path) => {
            Docker::connect_with_unix(&path.to_string_lossy(), timeout, API_DEFAULT_VERSION)
        }
        Endpoint::Tcp(address) => {
            Docker::connect_with_http(&format!("tcp://{address}"), timeout, API_DEFAULT_VERSION)
        }
        Endpoint::Tls { .. } | Endpoint::Ssh(_) => {
            let dialer = Dialer::new(&daemon.endpoint).map_err(|e| unreachable(e.to_string()))?;
            let idle = IdleConnections::default();
            Docker::connect_with_custom_transport(
                move |request: BollardRequest| {
                    let (dialer, idle) = (dialer.clone(), idle.clone());
                    async move { send_pooled(&dialer, &idle, request).await }
                },
                Some("http://docker"),
                timeout,
                API_DEFAULT_VERSION,
            )
        }
    }
    .map_err(|e| unreachable(e.to_string()))?
    .with_request_modifier(fix_request);

    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(describe_transport_error(&e))),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// The idle HTTP/1 connections of a custom transport: without them every request would pay
/// an `ssh` start (about 0.2 s here) or a TLS handshake. Hand-written rather than hyper-util's
/// pooled client because that one needs its `client-legacy` connector plumbing for a
/// transport that is not a socket address.
struct IdleConnections<B>(Arc<Mutex<Vec<SendRequest<B>>>>);

impl<B> Clone for IdleConnections<B> {
    fn clone(&self) -> Self {
        IdleConnections(Arc::clone(&self.0))
    }
}

impl<B> Default for IdleConnections<B> {
    fn default() -> Self {
        IdleConnections(Arc::new(Mutex::new(Vec::new())))
    }
}

/// At most this many idle connections are kept (each is an `ssh` child for ssh).
const MAX_IDLE_CONNECTIONS: usize = 4;

impl<B> IdleConnections<B> {
    /// A connection whose previous exchange has ended; closed ones are dropped.
    fn take_ready(&self) -> Option<SendRequest<B>> {
        let mut idle = self.0.lock().ok()?;
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().position(SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    /// Keeps `sender` for a later request (it becomes ready once its response is read).
    fn put(&self, sender: SendRequest<B>) {
        if let Ok(mut idle) = self.0.lock() {
            idle.retain(|sender| !sender.is_closed());
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push(sender);
            }
        }
    }
}

/// bollard's custom transport: the request on an idle connection, else on a new one (see
/// `buildkit/raw.rs`). Upgraded connections (attach, exec) are never reused.
async fn send_pooled<B>(
    dialer: &Dialer,
    idle: &IdleConnections<B>,
    request: http::Request<B>,
) -> std::result::Result<http::Response<hyper::body::Incoming>, bollard::errors::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    // bollard writes absolute URIs (http://docker/v1.x/...); on a connection of our own the
    // request line takes the origin form and the host goes in the Host header.
    let origin = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<http::Uri>()
        .map_err(|e| bollard::errors::Error::from(http::Error::from(e)))?;
    parts.uri = origin;
    parts
        .headers
        .insert(http::header::HOST, http::HeaderValue::from_static("docker"));
    let upgrade = parts.headers.contains_key(http::header::UPGRADE);
    let request = http::Request::from_parts(parts, body);
    let io_error = |e: Box<dyn std::error::Error + Send + Sync>| bollard::errors::Error::IOError {
        err: std::io::Error::other(e),
    };
    let mut sender = match idle.take_ready() {
        Some(sender) => sender,
        None => crate::buildkit::raw::handshake(dialer)
            .await
            .map_err(io_error)?,
    };
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| io_error(e.into()))?;
    if !upgrade && response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        idle.put(sender);
    }
    Ok(response)
}

/// Runs before every request bollard sends.
fn fix_request(mut request: BollardRequest) -> BollardRequest {
    fix_registry_headers(&mut request);
    expand_repeated_query_values(&mut request);
    request
}

/// bollard 0.21.1 encodes `X-Registry-Auth` and `X-Registry-Config` with the standard base64
/// alphabet, but the daemon decodes them as base64url and silently drops credentials it cannot
/// decode. Both alphabets agree except for `+`/`/`, so translating those two is exact.
fn fix_registry_headers(request: &mut BollardRequest) {
    for name in ["X-Registry-Auth", "X-Registry-Config"] {
        let Some(value) = request.headers().get(name) else {
            continue;
        };
        let Ok(text) = value.to_str() else {
            continue;
        };
        if !text.contains(['+', '/']) {
            continue;
        }
        let url_safe = to_base64url(text);
        if let Ok(value) = url_safe.parse() {
            request.headers_mut().insert(name, value);
        }
    }
}

pub(crate) fn to_base64url(standard: &str) -> String {
    standard.replace('+', "-").replace('/', "_")
}

/// bollard models `extrahosts` as one string, but the daemon reads every `extrahosts=` key.
/// [`crate::build_image`] joins several hosts with [`REPEATED_VALUE_SEPARATOR`]; here they
/// become repeated keys again.
fn expand_repeated_query_values(request: &mut BollardRequest) {
    let uri = request.uri();
    if uri.path() != "/build" && !uri.path().ends_with("/build") {
        return;
    }
    let Some(query) = uri.query() else {
        return;
    };
    let Some(expanded) = expand_query(query, "extrahosts") else {
        return;
    };
    let full = uri.to_string();
    let base = full.split_once('?').map_or(full.as_str(), |(base, _)| base);
    // The URI type is inferred from the assignment, which spares a direct `http` dependency.
    if let Ok(new_uri) = format!("{base}?{expanded}").parse() {
        *request.uri_mut() = new_uri;
    }
}

/// Splits `key=a%0Ab` into `key=a&key=b`; `None` when nothing needs to change.
fn expand_query(query: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    let encoded_separator = "%0A";
    let mut changed = false;
    let mut out = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix(&prefix) {
            Some(value) if value.contains(encoded_separator) => {
                changed = true;
                out.extend(
                    value
                        .split(encoded_separator)
                        .filter(|v| !v.is_empty())
                        .map(|v| format!("{prefix}{v}")),
                );
            }
            _ => out.push(pair.to_owned()),
        }
    }
    changed.then(|| out.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_query_splits_joined_values() {
        assert_eq!(
            expand_query(
                "t=a&extrahosts=h1%3A1.2.3.4%0Ah2%3A5.6.7.8&q=false",
                "extrahosts"
            )
            .as_deref(),
            Some("t=a&extrahosts=h1%3A1.2.3.4&extrahosts=h2%3A5.6.7.8&q=false")
        );
        assert_eq!(expand_query("extrahosts=h1%3A1.2.3.4", "extrahosts"), None);
    }

    #[test]
    fn base64url_translation_matches_the_url_alphabet() {
        use base64::Engine;
        // '?' and '>' at the third byte of a group give sextets 62 and 63.
        let payload = "{\"password\":\"a?b>c~d??>>\"}";
        let standard = base64::engine::general_purpose::STANDARD.encode(payload);
        let url = base64::engine::general_purpose::URL_SAFE.encode(payload);
        assert!(
            standard.contains(['+', '/']),
            "the sample must exercise the bug"
        );
        assert_eq!(to_base64url(&standard), url);
    }

    #[test]
    fn docker_host_prefers_the_argument() {
        assert_eq!(
            docker_host(Some("tcp://1.2.3.4:2375")),
            "tcp://1.2.3.4:2375"
        );
    }
}
