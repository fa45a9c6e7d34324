//! Helpers shared by the CLI's test files (`mod support;` in each). Not every file uses every
//! helper, hence the `dead_code` allowance.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Docker CLI (Debian's client), for setting up and inspecting what the tests need.
pub const DOCKER: &str = "/usr/bin/docker";

/// The local registry of `scripts/docker-env`.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The private daemon of `scripts/docker-env`.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").expect(
        "DOCKER_HOST is not set: run `eval \"$(scripts/docker-env up)\"` (or scripts/test) first",
    )
}

/// A Docker config directory with no credentials, so nothing of the user's leaks in.
pub fn no_docker_config() -> PathBuf {
    std::env::temp_dir().join("balena-compose-tests-no-docker-config")
}

/// Writes `contents` to `root/path`, creating the directories.
pub fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// Every stdout line as JSON; a line that is not JSON fails the test.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The `balena-compose` binary with the private daemon and no Docker config.
pub fn balena_compose() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("balena-compose"));
    cmd.env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config());
    cmd
}

/// `docker ARGS` against the private daemon.
pub fn docker_cli(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config())
        .args(args)
        .output()
        .expect("cannot run /usr/bin/docker")
}

/// `docker ARGS` that must succeed; its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker_cli(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `ready` every 100 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
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

/// The lock on binfmt_misc (`$BALENA_COMPOSE_DEV_ROOT/binfmt.lock`), which is global to the
/// machine: a build that may go through the aarch64 and armv7hf registrations `scripts/docker-env
/// up` made holds it shared; a test that removes or disables them for a while (emulation.rs,
/// the emulate crate's daemon tests) holds it exclusive, so no such build runs meanwhile.
pub fn binfmt_lock(exclusive: bool) -> std::fs::File {
    let root = std::env::var("BALENA_COMPOSE_DEV_ROOT")
        .unwrap_or_else(|_| "/var/tmp/balena-compose-dev".to_owned());
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(root).join("binfmt.lock"))
        .unwrap();
    if exclusive {
        file.lock().unwrap();
    } else {
        file.lock_shared().unwrap();
    }
    file
}

/// One HTTP/1.0 GET over a unix socket; the whole response, or `None` if nothing answers.
pub fn unix_get(socket: &Path, path: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: d\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A dockerd of this test's own, with the flags `scripts/docker-env` uses, under a temp dir.
pub struct PrivateDaemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateDaemon {
    pub fn start() -> PrivateDaemon {
        // Short: containerd's socket path under the exec root must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bcf")
            .tempdir_in("/tmp")
            .unwrap();
        let mut daemon = PrivateDaemon { dir, child: None };
        daemon.spawn();
        daemon
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Its directory: data root, exec root, socket and log.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn spawn(&mut self) {
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dockerd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("-H")
            .arg(self.host())
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(["--bridge=none", "--shutdown-timeout", "2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: a Ctrl-C of the test run is not its business.
            .process_group(0)
            .spawn()
            .expect("cannot start /usr/sbin/dockerd");
        self.child = Some(child);
        let socket = self.socket();
        let up = wait_until(Duration::from_secs(30), || {
            unix_get(&socket, "/_ping").is_some_and(|r| r.ends_with("OK"))
        });
        assert!(
            up,
            "the private dockerd did not answer within 30 s: {}",
            self.log_tail()
        );
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    }

    pub fn signal(&mut self, signal: &str) {
        let child = self.child.as_mut().expect("the daemon is running");
        let status = Command::new("/bin/kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits for the daemon process to exit (it was signalled).
    pub fn reap(&mut self, limit: Duration) {
        let mut child = self.child.take().expect("the daemon is running");
        let exited = wait_until(limit, || child.try_wait().unwrap().is_some());
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(exited, "the private dockerd did not exit within {limit:?}");
        // Its containerd dies with it (parent-death signal), a moment later; a restart
        // before that would find the pid file and wait on the dying one.
        let pid_file = self.dir.path().join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
            assert!(
                wait_until(Duration::from_secs(20), || !proc_dir.exists()),
                "the private daemon's containerd (pid {pid}) outlived it"
            );
        }
    }

    /// Loads `local/amd64-busybox` from the shared daemon (docker save | docker load), so
    /// builds and containers there have a base image without a registry.
    pub fn load_base_image(&self, docker_config: &Path) {
        self.load_image("local/amd64-busybox", docker_config);
    }

    /// Loads `image` from the shared daemon (docker save | docker load).
    pub fn load_image(&self, image: &str, docker_config: &Path) {
        let save = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "{DOCKER} -H {} save {image} | {DOCKER} -H {} load",
                docker_host(),
                self.host()
            ))
            .env("DOCKER_CONFIG", docker_config)
            .output()
            .unwrap();
        assert!(
            save.status.success(),
            "loading the base image: {}",
            String::from_utf8_lossy(&save.stderr)
        );
    }

    /// Whether one of its containers runs (the build's RUN step has started).
    pub fn has_running_container(&self) -> bool {
        unix_get(&self.socket(), "/containers/json")
            .and_then(|r| {
                r.split_once("\r\n\r\n")
                    .map(|(_, body)| body.trim().to_owned())
            })
            .is_some_and(|body| body.starts_with('[') && body != "[]")
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("/bin/kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if !wait_until(Duration::from_secs(20), || {
                child.try_wait().ok().flatten().is_some()
            }) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // dockerd bind-mounts its data root onto itself and leaves the mount behind; the
        // temp dir can only go once it is undone.
        let _ = Command::new("/bin/umount")
            .arg(self.dir.path().join("data"))
            .status();
    }
}

/// A command run in the background, its stdout and stderr collected as they come (by
/// threads), so a test can act on its progress (stop a daemon mid-build) and then wait.
pub struct Background {
    child: Child,
    stdout: Arc<std::sync::Mutex<String>>,
    stderr: Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut command: Command) -> Background {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Background {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits at most `limit` for it to end (killing it then, and failing the test): its exit
    /// code, stdout and stderr.
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let ended = wait_until(limit, || self.child.try_wait().unwrap().is_some());
        if !ended {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        for reader in self.readers {
            let _ = reader.join();
        }
        let (stdout, stderr) = (
            self.stdout.lock().unwrap().clone(),
            self.stderr.lock().unwrap().clone(),
        );
        assert!(ended, "still running after {limit:?}\n{stdout}\n{stderr}");
        (status.code(), stdout, stderr)
    }
}

fn collect(
    mut pipe: impl Read + Send + 'static,
    sink: Arc<std::sync::Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}
