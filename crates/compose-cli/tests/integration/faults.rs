//! Faults against the real daemon and registry, each bounded in time:
//! * a Docker daemon that dies (SIGKILL) or is stopped (SIGTERM) mid-build — a private dockerd
//!   of this test's own, never the shared one;
//! * a registry that refuses connections, or drops them mid-push (a TCP proxy in front of
//!   127.0.0.1:5000), through `release::push_images` (the deploy-level faults — API errors,
//!   hangs, Ctrl-C — are in `deploy.rs`; an interrupted `up` is in `up.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{PrivateDaemon, docker_host, image_with_fresh_layer, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support;

const DOCKER: &str = "/usr/bin/docker";

/// `docker` (Debian's 20.10 client) against `host`, with a throwaway config directory.
fn docker_cli(host: &str, config: &Path, args: &[&str]) -> Output {
    Command::new(DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .expect("cannot run /usr/bin/docker")
}

/// `balena-compose build` started in the background, its output collected.
struct BuildRun {
    child: Child,
    /// Its standard error, where progress goes, so far (read by a thread as it comes).
    stderr: Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl BuildRun {
    fn start(project: &Path, name: &str, host: &str, home: &Path, classic: bool) -> BuildRun {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("balena-compose"));
        if classic {
            command.env("DOCKER_BUILDKIT", "0");
        } else {
            command.env_remove("DOCKER_BUILDKIT");
        }
        let mut child = command
            .args([
                "build",
                project.to_str().unwrap(),
                "--arch",
                "amd64",
                "--nocache",
                "-p",
                name,
            ])
            .arg("--docker-host")
            .arg(host)
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        BuildRun {
            child,
            stderr,
            reader,
        }
    }

    /// Whether the build printed `line` (as `[main] line`).
    fn printed(&self, line: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .contains(&format!("[main] {line}\n"))
    }

    /// Waits at most `limit` for the build to end; fails the test if it hangs.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let ended = wait_until(limit, || self.child.try_wait().unwrap().is_some());
        if !ended {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        let _ = self.reader.join();
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(
            ended,
            "balena-compose build still ran {limit:?} after the daemon went away: a hang\n{stderr}"
        );
        (status.code(), stderr)
    }
}

fn sleepy_project(root: &Path) {
    std::fs::write(
        root.join("Dockerfile"),
        "FROM local/amd64-busybox\nRUN echo started && sleep 120\n",
    )
    .unwrap();
}

#[test]
fn a_daemon_that_dies_or_stops_mid_build_ends_the_build_with_a_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("docker-config");
    let project = scratch.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    sleepy_project(&project);

    let mut daemon = PrivateDaemon::start();
    daemon.load_base_image(&config);

    // On BuildKit (the default) and on the classic builder.
    for classic in [false, true] {
        if classic {
            daemon.spawn();
        }
        daemon_faults_mid_build(&mut daemon, &project, scratch.path(), &config, classic);
    }
}

fn daemon_faults_mid_build(
    daemon: &mut PrivateDaemon,
    project: &Path,
    scratch: &Path,
    config: &Path,
    classic: bool,
) {
    // 1. SIGKILL: the connection drops in the middle of the build's output stream.
    let name = format!("faultkill{classic}{}", std::process::id());
    let build = BuildRun::start(project, &name, &daemon.host(), scratch, classic);
    // The classic builder's RUN is a container; BuildKit's is not: its output says it runs.
    assert!(
        wait_until(Duration::from_secs(60), || daemon.has_running_container()
            || build.printed("started")),
        "the build's RUN step never started: {}",
        build.stderr.lock().unwrap()
    );
    daemon.signal("-KILL");
    daemon.reap(Duration::from_secs(10));
    let (code, stderr) = build.finish(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("service \"main\" failed"), "{stderr}");
    // Said once, in people's words, naming the daemon: not a bare stream error.
    let lost = format!(
        "lost the connection to the Docker daemon at {} while building {name}_main (did the daemon stop?)",
        daemon.host()
    );
    assert_eq!(stderr.matches(&lost).count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Restarting on the same state cleans up the killed build's container; no image was made.
    daemon.spawn();
    let inspect = docker_cli(
        &daemon.host(),
        config,
        &["image", "inspect", &format!("{name}_main")],
    );
    assert!(!inspect.status.success(), "a half-built image was tagged");

    // 2. SIGTERM (`systemctl stop docker`): the daemon stops the RUN and shuts down.
    let name = format!("faultterm{classic}{}", std::process::id());
    let build = BuildRun::start(project, &name, &daemon.host(), scratch, classic);
    // The classic builder's RUN is a container; BuildKit's is not: its output says it runs.
    assert!(
        wait_until(Duration::from_secs(60), || daemon.has_running_container()
            || build.printed("started")),
        "the build's RUN step never started: {}",
        build.stderr.lock().unwrap()
    );
    let stopped_at = Instant::now();
    daemon.signal("-TERM");
    let (code, stderr) = build.finish(Duration::from_secs(40));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("service \"main\" failed"), "{stderr}");
    // The step the stopping daemon killed is not blamed alone: the daemon's going is said.
    let gone = format!(
        "the Docker daemon at {} no longer answers: it stopped during the build",
        daemon.host()
    );
    assert!(stderr.contains(&gone), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(40),
        "{:?}",
        stopped_at.elapsed()
    );
    daemon.reap(Duration::from_secs(30));
}

// ---------------------------------------------------------------------------------------------
// Registry faults.
// ---------------------------------------------------------------------------------------------

/// A TCP proxy to 127.0.0.1:5000 that cuts every connection once it has carried `limit`
/// bytes from the client (so small requests pass and a layer upload is cut mid-body).
async fn dropping_proxy(limit: u64) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cuts = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&cuts);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect("127.0.0.1:5000").await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut upstream_read, mut upstream_write) = upstream.into_split();
                let upload = async {
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        sent += n as u64;
                        if sent > limit {
                            counter.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        if upstream_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let download = tokio::io::copy(&mut upstream_read, &mut client_write);
                // Whichever side ends first ends the connection: dropping both halves
                // closes the sockets, mid-request when the limit was hit.
                tokio::select! {
                    () = upload => {}
                    _ = download => {}
                }
            });
        }
    });
    (port, cuts)
}

/// The HTTP status of the registry's manifest for `repository:tag` on 127.0.0.1:5000.
async fn manifest_status(repository: &str, tag: &str) -> u16 {
    let mut stream = TcpStream::connect("127.0.0.1:5000").await.unwrap();
    let request = format!(
        "HEAD /v2/{repository}/manifests/{tag} HTTP/1.0\r\nHost: 127.0.0.1:5000\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the registry did not answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn connect(host: &str) -> bollard::Docker {
    let socket = host
        .strip_prefix("unix://")
        .expect("DOCKER_HOST must be unix://");
    bollard::Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

fn quick_retries(attempts: u32, attempt_timeout: Duration) -> release::PushOptions {
    release::PushOptions {
        concurrency: 1,
        retry: release::RetryPolicy {
            max_attempts: attempts,
            initial_delay: Duration::from_millis(200),
            factor: 1.0,
            max_delay: Duration::from_millis(200),
        },
        attempt_timeout: Some(attempt_timeout),
        ..release::PushOptions::default()
    }
}

/// Whether the daemon still has the registry tag `reference`.
fn tagged(host: &str, config: &Path, reference: &str) -> bool {
    docker_cli(host, config, &["image", "inspect", reference])
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_connections_fails_the_push_after_its_retries() {
    let host = docker_host();
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("docker-config");
    let local = format!("fault-refused-{}:latest", std::process::id());
    image_with_fresh_layer(&local, 2_000_000);
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let location = format!("127.0.0.1:{port}/fault/refused-{}", std::process::id());

    let docker = connect(&host).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = release::PushOptions {
        events: Some(tx),
        ..quick_retries(2, Duration::from_secs(30))
    };
    let jobs = [release::PushJob {
        local_image: local.clone(),
        location: location.clone(),
    }];
    let started = Instant::now();
    let results = tokio::time::timeout(
        Duration::from_secs(90),
        release::push_images(&docker, &jobs, &release::RegistryAuth::Anonymous, &options),
    )
    .await
    .expect("the push did not give up within 90 s");
    let error = results[0]
        .as_ref()
        .expect_err("a push to a closed port succeeded")
        .to_string();
    assert!(
        error.contains(&location) && error.contains("after 2 attempt(s)"),
        "{error}"
    );
    assert!(
        error.contains("connection refused"),
        "the error should say why: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    let mut retried = false;
    while let Ok(event) = rx.try_recv() {
        retried |= matches!(event, release::PushEvent::Retrying { .. });
    }
    assert!(retried, "the first failure was not retried");
    assert!(
        !tagged(&host, &config, &format!("{location}:latest")),
        "the registry tag was left behind"
    );
    let _ = docker_cli(&host, &config, &["image", "rm", "-f", &local]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_dropping_connections_mid_push_fails_bounded_and_leaves_no_manifest() {
    let host = docker_host();
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("docker-config");
    let id = std::process::id();
    let local = format!("fault-dropped-{id}:latest");
    image_with_fresh_layer(&local, 2_000_000);
    let (port, cuts) = dropping_proxy(256 * 1024).await;
    let repository = format!("fault/dropped-{id}");
    let location = format!("127.0.0.1:{port}/{repository}");

    let docker = connect(&host).await;
    let jobs = [release::PushJob {
        local_image: local.clone(),
        location: location.clone(),
    }];
    // The daemon retries a failed layer upload itself, for a long while: the attempt
    // timeout is what bounds the push.
    let options = quick_retries(1, Duration::from_secs(15));
    let started = Instant::now();
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        release::push_images(&docker, &jobs, &release::RegistryAuth::Anonymous, &options),
    )
    .await
    .expect("the push did not give up within 60 s");
    let elapsed = started.elapsed();
    let error = results[0]
        .as_ref()
        .expect_err("a push through a cut connection succeeded")
        .to_string();
    eprintln!("after {elapsed:?}: {error}");
    assert!(error.contains(&location), "{error}");
    assert!(elapsed < Duration::from_secs(40), "took {elapsed:?}");
    assert!(
        cuts.load(Ordering::Relaxed) > 0,
        "the proxy never cut a connection: {error}"
    );

    assert_eq!(
        manifest_status(&repository, "latest").await,
        404,
        "a manifest was written"
    );
    assert!(
        !tagged(&host, &config, &format!("{location}:latest")),
        "the registry tag was left behind"
    );
    let _ = docker_cli(&host, &config, &["image", "rm", "-f", &local]);
}
