//! HTTP/1.1 to the daemon on a connection of our own, for the two requests bollard 0.21.1
//! cannot make without its `buildkit` feature (which brings tonic and serves only Auth): the
//! `/session` upgrade to h2c, and a BuildKit build whose stream carries `moby.buildkit.trace`
//! messages that bollard's `BuildInfo` cannot parse. Same transport as bollard: the dialer
//! of `dial.rs` (unix socket, TCP, TCP with TLS, ssh).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::dial::{Dialer, Endpoint};

/// Sends one request on a new connection, which can be taken over after a `101` with
/// `hyper::upgrade::on`.
pub(crate) async fn send<B>(
    endpoint: &Endpoint,
    request: http::Request<B>,
) -> std::result::Result<http::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut sender = handshake(&Dialer::new(endpoint)?).await?;
    Ok(sender.send_request(request).await?)
}

/// A new HTTP/1 connection whose driver allows upgrades (`hyper::upgrade::on`).
pub(crate) async fn handshake<B>(
    dialer: &Dialer,
) -> std::result::Result<
    hyper::client::conn::http1::SendRequest<B>,
    Box<dyn std::error::Error + Send + Sync>,
>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = dialer.open().await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // The connection lives as long as its driver; errors surface through the response.
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
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
