//! HTTP/1.1 to the daemon on a connection of our own, for the two requests bollard 0.21.1
//! cannot make without its `buildkit` feature (which brings tonic and serves only Auth): the
//! `/session` upgrade to h2c, and a BuildKit build whose stream carries `moby.buildkit.trace`
//! messages that bollard's `BuildInfo` cannot parse. Same transport as bollard: the unix
//! socket or TCP address of `DOCKER_HOST`.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};

/// Where the daemon listens, from a `DOCKER_HOST`-style address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl Endpoint {
    /// `unix://PATH`, an absolute socket path, `tcp://HOST:PORT` or `http://HOST:PORT`, as
    /// [`crate::connect`] accepts them.
    pub fn parse(host: &str) -> Result<Self> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        let address = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| Error::UnsupportedHost {
                host: host.to_owned(),
            })?;
        Ok(Endpoint::Tcp(address.to_owned()))
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn open(endpoint: &Endpoint) -> std::io::Result<Box<dyn Io>> {
    match endpoint {
        #[cfg(unix)]
        Endpoint::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        #[cfg(not(unix))]
        Endpoint::Unix(path) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("unix sockets are not available here ({})", path.display()),
        )),
        Endpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address.as_str()).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
    }
}

/// Sends one request on a new connection. With `upgrades`, the connection can be taken over
/// after a `101` with `hyper::upgrade::on`.
pub(crate) async fn send<B>(
    endpoint: &Endpoint,
    request: http::Request<B>,
    upgrades: bool,
) -> std::result::Result<http::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = open(endpoint).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // The connection lives as long as its driver; errors surface through the response.
    if upgrades {
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
    } else {
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    Ok(sender.send_request(request).await?)
}

/// The whole body of a (small) response.
pub(crate) async fn read_body(response: http::Response<Incoming>) -> Option<Vec<u8>> {
    let collected = response.into_body().collect().await.ok()?;
    Some(collected.to_bytes().to_vec())
}

/// `application/x-www-form-urlencoded` for query values.
pub(crate) fn query_encode(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode_component(key));
        out.push('=');
        out.push_str(&encode_component(value));
    }
    out
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request body from a stream of chunks.
pub(crate) fn stream_body<S>(
    chunks: S,
) -> http_body_util::StreamBody<
    impl futures::Stream<Item = std::io::Result<hyper::body::Frame<Bytes>>>,
>
where
    S: futures::Stream<Item = std::io::Result<Bytes>>,
{
    use futures::StreamExt;
    http_body_util::StreamBody::new(chunks.map(|chunk| chunk.map(hyper::body::Frame::data)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_from_docker_host() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock").unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("/tmp/d.sock").unwrap(),
            Endpoint::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Endpoint::parse("http://h:1/").unwrap(),
            Endpoint::Tcp("h:1".into())
        );
        assert!(Endpoint::parse("ssh://x").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query_encode(&[
                ("t", "a/b:c".into()),
                ("buildargs", "{\"A\":\"1 2\"}".into())
            ]),
            "t=a%2Fb%3Ac&buildargs=%7B%22A%22%3A%221%202%22%7D"
        );
    }
}
