//! A dockerd of a test's own, to stop, kill and restart at will.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{DOCKER, docker_host, wait_until};

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
#[derive(Debug)]
pub struct PrivateDaemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateDaemon {
    /// Starts one under a fresh temp dir and waits until it answers.
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

    /// Its unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Its directory: data root, exec root, socket and log.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Its socket as a `DOCKER_HOST` (`unix://…`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Starts (or restarts) the dockerd on its directory and waits until it answers.
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

    /// The last 20 lines of its log, newest first.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    }

    /// Sends `signal` (`-KILL`, `-TERM`) to the dockerd.
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
