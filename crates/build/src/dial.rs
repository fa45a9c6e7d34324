//! The one dialer for the daemon: unix sockets, plain TCP, TCP with TLS and ssh. bollard
//! reaches the daemon through it (see [`crate::connect`]) and so do the raw connections of
//! BuildKit builds (see `buildkit/raw.rs`), so every transport works for both.

use std::future::Future as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};

/// Where the daemon listens and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
    /// `host:port` over TCP with TLS.
    Tls {
        /// `host:port`.
        address: String,
        /// The CA, client certificate and key, and whether the daemon's certificate is checked.
        tls: TlsFiles,
    },
    /// A daemon on another machine reached through `ssh … docker system dial-stdio`.
    Ssh(SshTarget),
}

/// TLS material, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// The CA the daemon's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// The client certificate.
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    pub key: Option<PathBuf>,
    /// Check the daemon's certificate (docker's `--tlsverify`); without it any certificate is
    /// accepted, as docker does with `--tls` alone or a context's `SkipTLSVerify`.
    pub verify: bool,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir` (docker's `DOCKER_CERT_PATH` layout); the
    /// ones that do not exist are left out, except `ca.pem` with `verify`: reading it then
    /// says which file is missing.
    pub fn in_dir(dir: &Path, verify: bool) -> Self {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
        TlsFiles {
            ca: file("ca.pem").or_else(|| verify.then(|| dir.join("ca.pem"))),
            cert: file("cert.pem"),
            key: file("key.pem"),
            verify,
        }
    }
}

/// `ssh://[USER@]HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The login name (`-l`).
    pub user: Option<String>,
    /// The host.
    pub host: String,
    /// The port (`-p`).
    pub port: Option<u16>,
}

impl Endpoint {
    /// `unix://PATH`, an absolute socket path, `tcp://HOST:PORT`, `http://HOST:PORT` or
    /// `ssh://[USER@]HOST[:PORT]`. TLS is never implied by the address alone (see
    /// [`crate::Daemon::resolve`]).
    pub fn parse(host: &str) -> Result<Self> {
        let unsupported = || Error::UnsupportedHost {
            host: host.to_owned(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        if let Some(rest) = host.strip_prefix("ssh://") {
            return parse_ssh(rest.trim_end_matches('/')).ok_or_else(unsupported);
        }
        let address = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(unsupported)?;
        Ok(Endpoint::Tcp(address.to_owned()))
    }
}

fn parse_ssh(rest: &str) -> Option<Endpoint> {
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((user, host_port)) => (Some(user.to_owned()).filter(|u| !u.is_empty()), host_port),
        None => (None, rest),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (host_port, None),
    };
    if host.is_empty() || host.contains('/') || host.starts_with('-') {
        return None;
    }
    Some(Endpoint::Ssh(SshTarget {
        user,
        host: host.to_owned(),
        port,
    }))
}

/// A byte stream to the daemon.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens connections to one endpoint; TLS material is read once, when it is made.
#[derive(Clone)]
pub(crate) struct Dialer {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Dialer {
    /// Reads the TLS files of a TLS endpoint; the error names the file that is wrong.
    pub(crate) fn new(endpoint: &Endpoint) -> std::io::Result<Self> {
        let tls = match endpoint {
            Endpoint::Tls { tls, .. } => Some(Arc::new(crate::tls::client_config(tls)?)),
            _ => None,
        };
        Ok(Dialer {
            endpoint: endpoint.clone(),
            tls,
        })
    }

    /// A new connection.
    pub(crate) async fn open(&self) -> std::io::Result<Box<dyn Io>> {
        match (&self.endpoint, &self.tls) {
            #[cfg(unix)]
            (Endpoint::Unix(path), _) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
            #[cfg(not(unix))]
            (Endpoint::Unix(path), _) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("unix sockets are not available here ({})", path.display()),
            )),
            (Endpoint::Tcp(address), _) => Ok(Box::new(tcp(address).await?)),
            (Endpoint::Tls { address, .. }, Some(config)) => {
                let name = crate::tls::server_name(address)?;
                let stream = tcp(address).await?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                Ok(Box::new(connector.connect(name, stream).await?))
            }
            (Endpoint::Tls { .. }, None) => Err(std::io::Error::other("TLS is not configured")),
            (Endpoint::Ssh(target), _) => Ok(Box::new(SshStream::spawn(target)?)),
        }
    }
}

async fn tcp(address: &str) -> std::io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One `ssh … docker system dial-stdio` child: its stdout and stdin are the connection, as
/// with the docker CLI. When the child ends without a byte (ssh could not connect, no docker
/// on the other side), reading reports what it said on stderr instead of a bare end of file.
struct SshStream {
    io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    received: bool,
    // Killed when the connection is dropped.
    _child: tokio::process::Child,
}

impl SshStream {
    fn spawn(target: &SshTarget) -> std::io::Result<Self> {
        let mut command = tokio::process::Command::new("ssh");
        command.args(["-o", "BatchMode=yes"]);
        if let Some(port) = target.port {
            command.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &target.user {
            command.arg("-l").arg(user);
        }
        command
            .arg("--")
            .arg(&target.host)
            .args(["docker", "system", "dial-stdio"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?;
        let missing = || std::io::Error::other("ssh started without pipes");
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let mut stderr = child.stderr.take().ok_or_else(missing)?;
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Ok(SshStream {
            io: tokio::io::join(stdout, stdin),
            stderr: Some(stderr),
            received: false,
            _child: child,
        })
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && !self.received => {
                // End of file before any answer: the child has ended; its stderr says why.
                let Some(stderr) = self.stderr.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                let text = match Pin::new(stderr).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(text) => text.unwrap_or_default(),
                };
                self.stderr = None;
                let text = text.trim();
                if text.is_empty() {
                    Poll::Ready(Ok(()))
                } else if text.starts_with("ssh:") {
                    Poll::Ready(Err(std::io::Error::other(text.to_owned())))
                } else {
                    Poll::Ready(Err(std::io::Error::other(format!("ssh: {text}"))))
                }
            }
            Poll::Ready(Ok(())) => {
                self.received |= buf.filled().len() > before;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
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
        assert_eq!(
            Endpoint::parse("ssh://root@127.0.0.1:2222").unwrap(),
            Endpoint::Ssh(SshTarget {
                user: Some("root".into()),
                host: "127.0.0.1".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            Endpoint::parse("ssh://box").unwrap(),
            Endpoint::Ssh(SshTarget {
                user: None,
                host: "box".into(),
                port: None
            })
        );
        assert!(Endpoint::parse("ssh://-oProxyCommand=x").is_err());
        assert!(Endpoint::parse("ssh://h:notaport").is_err());
        assert!(Endpoint::parse("ftp://x").is_err());
    }
}
