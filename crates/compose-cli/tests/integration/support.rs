//! What the CLI's test modules share beyond the workspace's `test_support` (re-exported here,
//! so that a module's `use crate::support::…` finds both). Not every module uses every helper,
//! hence the `dead_code` allowance.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use test_support::{
    Background, DOCKER, PrivateDaemon, REGISTRY, binfmt_lock, docker_cli, docker_host, docker_ok,
    json_lines, no_docker_config, wait_until, write,
};

/// `<prefix><pid>`: a project or image name of one test (the prefix says which) and of this
/// test run (the pid), so that concurrent runs on the shared daemon do not meet.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

/// The `balena-compose` binary with the private daemon and no Docker config.
pub fn balena_compose() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("balena-compose"));
    cmd.env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config());
    cmd
}

/// Builds `name` from local/amd64-busybox with a fresh layer of `bytes` random bytes, so a
/// push or pull of it has that much to move.
pub fn image_with_fresh_layer(name: &str, bytes: u64) {
    let mut child = Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["build", "-q", "-t", name, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dockerfile =
        format!("FROM local/amd64-busybox\nRUN head -c {bytes} /dev/urandom > /blob\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP proxy to the local registry whose every connection moves at most `rate` bytes per
/// second each way (0: unlimited, changeable while it runs), counting what it carried.
/// Threads rather than tasks, so that sync and async tests can both use it.
pub struct ThrottledProxy {
    port: u16,
    rate: Arc<AtomicU64>,
    carried: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl ThrottledProxy {
    /// Starts a proxy to [`REGISTRY`] at `rate` bytes per second per connection and direction.
    pub fn start(rate: u64) -> ThrottledProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = ThrottledProxy {
            port,
            rate: Arc::new(AtomicU64::new(rate)),
            carried: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (rate, carried, stop) = (
            Arc::clone(&proxy.rate),
            Arc::clone(&proxy.carried),
            Arc::clone(&proxy.stop),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(REGISTRY) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let (rate, carried, stop) =
                        (Arc::clone(&rate), Arc::clone(&carried), Arc::clone(&stop));
                    std::thread::spawn(move || pipe(from, to, &rate, &carried, &stop));
                }
            }
        });
        proxy
    }

    /// `127.0.0.1:PORT`, a registry host the daemon treats as insecure (loopback).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes carried so far, both directions.
    pub fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }

    /// Changes the rate of every connection, open ones included (0: unlimited).
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }
}

impl Drop for ThrottledProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    rate: &AtomicU64,
    carried: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stop.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
            break;
        }
        carried.fetch_add(n as u64, Ordering::Relaxed);
        let rate = rate.load(Ordering::Relaxed);
        if rate > 0 {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// `balena-compose ARGS` on a pseudo-terminal (util-linux `script` is the terminal), with
/// `TERM=term`: what a person at that terminal sees, escape sequences and all, is the
/// output's stdout (stdout and stderr both go to the terminal).
pub fn balena_compose_on_a_pty(term: &str, args: &[&str]) -> Output {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let bin = assert_cmd::cargo::cargo_bin("balena-compose");
    let line: Vec<String> = std::iter::once(bin.to_str().unwrap())
        .chain(args.iter().copied())
        .map(quote)
        .collect();
    Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config())
        .env("TERM", term)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run script (util-linux)")
}
