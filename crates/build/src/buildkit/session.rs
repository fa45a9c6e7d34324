//! A BuildKit session: the daemon's way of asking the client for things during a build.
//!
//! We open `POST /session` with `Upgrade: h2c`; after the `101 Switching Protocols` the
//! roles flip: the daemon is the HTTP/2 (gRPC) *client* on that connection and we are the
//! server. We serve exactly the methods we announce in `X-Docker-Expose-Session-Grpc-Method`:
//!
//! * `/moby.buildkit.secrets.v1.Secrets/GetSecret`: the contents of a build secret by id, for
//!   `RUN --mount=type=secret,id=…`;
//! * `/moby.filesync.v1.Auth/Credentials`: registry credentials for `FROM` images (BuildKit
//!   ignores `X-Registry-Config` and asks the session instead);
//! * `/grpc.health.v1.Health/Check`: the daemon's liveness probe of the session.
//!
//! The protocol messages are a handful of fields, declared here with `prost` (the field
//! numbers are those of moby/buildkit's `secrets.proto`, `auth.proto` and grpc's
//! `health.proto`), so no generated code or gRPC framework is needed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::task::JoinHandle;

use super::raw;
use crate::auth::RegistryAuth;
use crate::dial::Endpoint;
use crate::error::{Error, Result};

/// The gRPC method that hands out secrets.
pub const GET_SECRET_METHOD: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
/// The gRPC method that hands out registry credentials.
pub const CREDENTIALS_METHOD: &str = "/moby.filesync.v1.Auth/Credentials";
/// The gRPC health check the daemon uses to see that the session is alive.
pub const HEALTH_CHECK_METHOD: &str = "/grpc.health.v1.Health/Check";

/// The largest secret BuildKit accepts (its `MaxSecretSize`).
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

/// Build secrets by id (the `id=` of `RUN --mount=type=secret`). The contents never appear in
/// `Debug` output, errors or events; only the ids do.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BuildSecrets {
    by_id: BTreeMap<String, Vec<u8>>,
}

impl BuildSecrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the secret `id`.
    pub fn insert(&mut self, id: impl Into<String>, contents: Vec<u8>) {
        self.by_id.insert(id.into(), contents);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// The contents of each secret, for callers that must make sure none of them is shown.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.by_id.values().map(Vec::as_slice)
    }

    /// Each id with its contents.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.by_id.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The redactor of these secrets, for output a `RUN` printed: build it once per build,
    /// not per line (it holds every window of every secret).
    pub fn redactor(&self) -> crate::Redactor {
        crate::Redactor::new(self.values())
    }

    /// `text` with every piece of a secret hidden (see [`crate::Redactor`]), for a one-off text
    /// such as an error.
    pub fn redact(&self, text: String) -> String {
        self.redactor().apply(text)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&[u8]> {
        self.by_id.get(id).map(Vec::as_slice)
    }
}

impl fmt::Debug for BuildSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSecrets")
            .field("ids", &self.by_id.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a session serves.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionServices {
    pub secrets: BuildSecrets,
    pub registry_auth: RegistryAuth,
}

/// An open session; the daemon can use it while this value lives. Dropping it closes it.
#[derive(Debug)]
pub(crate) struct Session {
    id: String,
    server: JoinHandle<()>,
}

impl Session {
    /// The id to pass as the build's `session` parameter.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Opens a session on the daemon at `endpoint` (API `version`, e.g. `1.41`).
    pub(crate) async fn start(
        endpoint: &Endpoint,
        version: &str,
        services: SessionServices,
    ) -> Result<Session> {
        let id = random_id()?;
        let failed = |reason: String| Error::Session {
            reason: format!("opening a BuildKit session: {reason}"),
        };
        let mut request = http::Request::post(format!("/v{version}/session"))
            .header(http::header::HOST, "docker")
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "h2c")
            .header("X-Docker-Expose-Session-Uuid", &id)
            .header("X-Docker-Expose-Session-Name", "balena-compose")
            // BuildKit keys its file-sync caches by it; we sync no files.
            .header("X-Docker-Expose-Session-Sharedkey", &id);
        for method in [GET_SECRET_METHOD, CREDENTIALS_METHOD, HEALTH_CHECK_METHOD] {
            request = request.header("X-Docker-Expose-Session-Grpc-Method", method);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = raw::send(endpoint, request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let body = raw::read_body(response).await.unwrap_or_default();
            return Err(failed(format!(
                "the daemon answered {status} instead of switching to HTTP/2: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let services = Arc::new(services);
        let server = tokio::spawn(serve(TokioIo::new(upgraded), services));
        Ok(Session { id, server })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the connection ends the session on the daemon's side.
        self.server.abort();
    }
}

/// A session id: 128 random bits, hex. Other clients of the daemon must not guess it.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Session {
        reason: format!("no random numbers for a session id: {e}"),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Serves gRPC requests on the upgraded connection until the daemon closes it.
async fn serve<T>(io: T, services: Arc<SessionServices>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok(mut connection) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((request, respond))) = connection.accept().await {
        let services = services.clone();
        tokio::spawn(async move {
            // A stream the daemon reset is its business; nothing to report.
            let _ = answer(request, respond, &services).await;
        });
    }
}

/// gRPC status codes we use.
mod code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const NOT_FOUND: u32 = 5;
    pub const UNIMPLEMENTED: u32 = 12;
}

/// One gRPC call: a unary request message in, a response message or an error status out.
async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    services: &SessionServices,
) -> std::result::Result<(), h2::Error> {
    let path = request.uri().path().to_owned();
    let mut body = request.into_body();
    let mut received = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
        if received.len() > MAX_SECRET_SIZE {
            break;
        }
    }
    let reply = match unframe(received.freeze()) {
        Some(message) => handle(&path, message, services),
        None => Err((code::INVALID_ARGUMENT, "malformed gRPC message".to_owned())),
    };
    let head = http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(())
        .map_err(|_| h2::Error::from(h2::Reason::INTERNAL_ERROR))?;
    match reply {
        Ok(message) => {
            let mut stream = respond.send_response(head, false)?;
            stream.send_data(frame(&message), false)?;
            stream.send_trailers(trailers(code::OK, ""))?;
        }
        Err((status, text)) => {
            let mut stream = respond.send_response(head, false)?;
            stream.send_trailers(trailers(status, &text))?;
        }
    }
    Ok(())
}

/// The response message of a call, or its error status and message. Error messages name
/// secret ids at most, never contents.
fn handle(
    path: &str,
    message: Bytes,
    services: &SessionServices,
) -> std::result::Result<Vec<u8>, (u32, String)> {
    let invalid = |e: prost::DecodeError| (code::INVALID_ARGUMENT, e.to_string());
    match path {
        GET_SECRET_METHOD => {
            let request = GetSecretRequest::decode(message).map_err(invalid)?;
            let data = services
                .secrets
                .get(&request.id)
                .ok_or_else(|| (code::NOT_FOUND, format!("secret {} not found", request.id)))?;
            Ok(GetSecretResponse {
                data: data.to_vec(),
            }
            .encode_to_vec())
        }
        CREDENTIALS_METHOD => {
            let request = CredentialsRequest::decode(message).map_err(invalid)?;
            // No credentials for a registry is an empty answer, which BuildKit takes as
            // anonymous access, as the Docker CLI's session does.
            let credentials = services
                .registry_auth
                .for_registry(&request.host)
                .map(|c| CredentialsResponse {
                    username: c.username.unwrap_or_default(),
                    secret: c.password.or(c.identitytoken).unwrap_or_default(),
                })
                .unwrap_or_default();
            Ok(credentials.encode_to_vec())
        }
        HEALTH_CHECK_METHOD => Ok(HealthCheckResponse { status: SERVING }.encode_to_vec()),
        other => Err((
            code::UNIMPLEMENTED,
            format!("method {other} is not served by this session"),
        )),
    }
}

/// The message of a gRPC length-prefixed frame (uncompressed only: we announce no encoding).
fn unframe(mut data: Bytes) -> Option<Bytes> {
    if data.len() < 5 {
        return None;
    }
    let compressed = data.get_u8();
    let length = usize::try_from(data.get_u32()).ok()?;
    (compressed == 0 && data.len() >= length).then(|| data.split_to(length))
}

fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 5);
    out.put_u8(0);
    // Messages here are at most a secret (500 KiB) or a few strings.
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

fn trailers(status: u32, message: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert("grpc-status", http::HeaderValue::from(status));
    if !message.is_empty() {
        let encoded = percent_encode(message);
        if let Ok(value) = http::HeaderValue::from_str(&encoded) {
            map.insert("grpc-message", value);
        }
    }
    map
}

/// gRPC's `grpc-message` encoding: printable ASCII except `%` as is, the rest `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `moby.buildkit.secrets.v1.GetSecretRequest`.
#[derive(Clone, PartialEq, Message)]
struct GetSecretRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(map = "string, string", tag = "2")]
    annotations: std::collections::HashMap<String, String>,
}

/// `moby.buildkit.secrets.v1.GetSecretResponse`.
#[derive(Clone, PartialEq, Message)]
struct GetSecretResponse {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
}

/// `moby.filesync.v1.CredentialsRequest`.
#[derive(Clone, PartialEq, Message)]
struct CredentialsRequest {
    #[prost(string, tag = "1")]
    host: String,
}

/// `moby.filesync.v1.CredentialsResponse`.
#[derive(Clone, PartialEq, Message)]
struct CredentialsResponse {
    #[prost(string, tag = "1")]
    username: String,
    #[prost(string, tag = "2")]
    secret: String,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn services() -> SessionServices {
        let mut secrets = BuildSecrets::new();
        secrets.insert("token", b"hunter2".to_vec());
        SessionServices {
            secrets,
            registry_auth: RegistryAuth::new(),
        }
    }

    #[test]
    fn get_secret_answers_by_id() {
        let request = GetSecretRequest {
            id: "token".into(),
            annotations: Default::default(),
        }
        .encode_to_vec();
        let framed = frame(&request);
        let message = unframe(framed).unwrap();
        let reply = handle(GET_SECRET_METHOD, message, &services()).unwrap();
        assert_eq!(
            GetSecretResponse::decode(reply.as_slice()).unwrap().data,
            b"hunter2"
        );
        let missing = GetSecretRequest {
            id: "other".into(),
            annotations: Default::default(),
        }
        .encode_to_vec();
        let (status, text) =
            handle(GET_SECRET_METHOD, Bytes::from(missing), &services()).unwrap_err();
        assert_eq!(status, code::NOT_FOUND);
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn unknown_methods_and_bad_frames_are_errors() {
        let (status, _) = handle("/x.Y/Z", Bytes::new(), &services()).unwrap_err();
        assert_eq!(status, code::UNIMPLEMENTED);
        assert_eq!(unframe(Bytes::from_static(&[0, 0, 0, 0, 9, 1])), None);
        assert_eq!(unframe(Bytes::from_static(&[1, 0, 0, 0, 0])), None);
        let health = handle(HEALTH_CHECK_METHOD, Bytes::new(), &services()).unwrap();
        assert_eq!(health, vec![8, 1]);
    }

    #[test]
    fn debug_shows_ids_only() {
        let text = format!("{:?}", services());
        assert!(text.contains("token"));
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b%\n"), "a b%25%0A");
    }
}
