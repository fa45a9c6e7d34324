//! `balena-compose up` and `balena-compose state` against the private daemon of
//! `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
};
use serde_json::{Value, json};
use support::{
    PrivateDaemon, REGISTRY, ThrottledProxy, balena_compose, docker_cli, docker_host, docker_ok,
    image_with_fresh_layer, wait_until, write,
};

use crate::support;

const BASE: &str = "local/amd64-busybox:latest";

/// An app id unique among this process's tests (a counter: the tests run in parallel and
/// two apps with one id would see each other's containers) and across processes (the pid).
fn unique_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 1000;
    7_000_000 + u64::from(std::process::id() % 1000) * 1000 + n
}

/// Removes the app's engine objects when dropped.
struct Guard {
    app_id: u64,
    uuid: String,
    dir: tempfile::TempDir,
}

impl Guard {
    fn new() -> Self {
        let app_id = unique_id();
        Self {
            app_id,
            uuid: format!("u{app_id}"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A v3 target state document for this app.
    fn document(&self, commit: &str, services: Value) -> Value {
        let mut services = services;
        for (i, svc) in services.as_object_mut().unwrap().values_mut().enumerate() {
            svc["image_id"] = json!(self.app_id * 10 + i as u64);
        }
        json!({"device-uuid-1": {"name": "dev", "config": {}, "apps": {self.uuid.clone(): {
            "id": self.app_id, "name": "cliapp",
            "releases": {commit: {"id": 1, "services": services, "networks": {}, "volumes": {"data": {}}}}}}}})
    }

    fn write(&self, name: &str, value: &Value) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
        path.display().to_string()
    }

    /// `balena-compose ARGS` as a plain process, for tests that signal it.
    fn process(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = balena_compose();
        cmd.args(args)
            .arg("--lock-dir")
            .arg(self.dir.path().join("locks"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"));
        cmd
    }

    /// The container of `service`: its ID and state (`running`, `exited`, …).
    fn container(&self, service: &str) -> Option<(String, String)> {
        let out = docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=io.balena.app-id={}", self.app_id),
            "--filter",
            &format!("label=io.balena.service-name={service}"),
            "--format",
            "{{.ID}} {{.State}}",
        ]);
        let mut lines = out.lines();
        let line = lines.next()?;
        assert!(
            lines.next().is_none(),
            "two containers for {service}: {out}"
        );
        let (id, state) = line.split_once(' ')?;
        Some((id.to_owned(), state.to_owned()))
    }

    /// `balena-compose state --json` of this app.
    fn state(&self) -> Value {
        let app = self.app_id.to_string();
        let out = self
            .cmd(&["state", "-a", &app, "--json"])
            .assert()
            .success();
        last_json(&out.get_output().stdout)
    }

    /// `up --target TARGET --json` (bounded), which must reach release `commit` with
    /// `services` running; its stdout.
    fn up_reaches(&self, target: &str, commit: &str, services: &[&str]) -> String {
        let out = self
            .cmd(&["up", "--target", target, "--json"])
            .timeout(Duration::from_secs(120))
            .assert()
            .success();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        let state = last_json(stdout.as_bytes());
        assert_eq!(state["state"]["commit"], commit, "{state}");
        for service in services {
            let status = &state["state"]["services"][service]["status"];
            assert_eq!(status, "Running", "{service}: {state}");
        }
        stdout
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("balena-compose").unwrap();
        cmd.env("DOCKER_HOST", docker_host())
            .args(args)
            .arg("--lock-dir")
            .arg(self.dir.path().join("locks"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"));
        cmd
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (app_id, uuid) = (self.app_id, self.uuid.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let path = docker_host().trim_start_matches("unix://").to_owned();
                let docker = Docker::connect_with_unix(&path, 60, bollard::API_DEFAULT_VERSION)
                    .unwrap()
                    .negotiate_version()
                    .await
                    .unwrap();
                let filters = HashMap::from([(
                    "label".to_owned(),
                    vec![format!("io.balena.app-id={app_id}")],
                )]);
                for c in docker
                    .list_containers(Some(ListContainersOptions {
                        all: true,
                        filters: Some(filters),
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_default()
                {
                    let _ = docker
                        .remove_container(
                            &c.id.unwrap_or_default(),
                            Some(RemoveContainerOptions {
                                force: true,
                                v: true,
                                link: false,
                            }),
                        )
                        .await;
                }
                for n in docker
                    .list_networks(None::<ListNetworksOptions>)
                    .await
                    .unwrap_or_default()
                {
                    if n.name.unwrap_or_default().starts_with(&format!("{uuid}_")) {
                        let _ = docker.remove_network(&n.id.unwrap_or_default()).await;
                    }
                }
                for v in docker
                    .list_volumes(None::<ListVolumesOptions>)
                    .await
                    .ok()
                    .and_then(|v| v.volumes)
                    .unwrap_or_default()
                {
                    if v.name.starts_with(&format!("{app_id}_")) {
                        let _ = docker
                            .remove_volume(
                                &v.name,
                                None::<bollard::query_parameters::RemoveVolumeOptions>,
                            )
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

fn services(mode: &str) -> Value {
    json!({
        "web": {"id": 1, "image": BASE, "composition": {"command": ["httpd", "-f", "-p", "8080"]}},
        "box": {"id": 2, "image": BASE, "environment": {"MODE": mode},
            "composition": {"command": "sleep 3600", "volumes": ["data:/data"], "stop_grace_period": "1s"}}
    })
}

fn last_json(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().unwrap_or_else(|| panic!("no output"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn up_from_a_file_then_state_then_removal() {
    let g = Guard::new();
    let target = g.write("target.json", &g.document("rel1", services("a")));
    let out = g
        .cmd(&["up", "--target", &target, "--json"])
        .assert()
        .success();
    let out = out.get_output();
    let state = last_json(&out.stdout);
    assert_eq!(state["state"]["commit"], "rel1", "{state}");
    assert_eq!(
        state["state"]["services"]["web"]["status"], "Running",
        "{state}"
    );
    assert_eq!(
        state["state"]["services"]["box"]["status"], "Running",
        "{state}"
    );
    let progress = String::from_utf8_lossy(&out.stdout);
    assert!(
        progress.contains(r#""event":"stepStarted","action":"start","subject":"web""#),
        "{progress}"
    );

    let app = g.app_id.to_string();
    let shown = g.cmd(&["state", "-a", &app, "--json"]).assert().success();
    let shown = last_json(&shown.get_output().stdout);
    assert_eq!(shown["state"]["services"], state["state"]["services"]);
    let human = g.cmd(&["state", "-a", &app]).assert().success();
    let human = String::from_utf8_lossy(&human.get_output().stdout).to_string();
    assert!(
        human.contains("release rel1") && human.contains("web") && human.contains("Running"),
        "{human}"
    );

    // An app named with -a that the target no longer holds is removed.
    let empty = g.write(
        "empty.json",
        &json!({"device-uuid-1": {"name": "dev", "config": {}, "apps": {}}}),
    );
    let removed = g
        .cmd(&["up", "-a", &app, "--target", &empty, "--json"])
        .assert()
        .success();
    let lines = support::json_lines(&removed.get_output().stdout);
    // What goes is said before anything goes: the first line, volumes (data) included.
    let said = &lines[0];
    assert_eq!(said["event"], "removingApp", "{lines:?}");
    assert_eq!(said["services"], json!(["box", "web"]), "{said}");
    assert_eq!(said["volumes"], json!([format!("{app}_data")]), "{said}");
    let removed = last_json(&removed.get_output().stdout);
    assert_eq!(removed["state"]["services"], json!({}), "{removed}");
    assert_eq!(removed["state"]["volumes"], json!([]), "{removed}");
}

/// The engine reached over ssh (`docker system dial-stdio` through scripts/docker-env's sshd)
/// runs the release: every request of up, including container start, goes over ssh.
/// `up --arch` takes what every command's `--arch` takes (`platform::Arch`): a misspelt one
/// is refused, naming the closest slug, before the engine is touched.
#[test]
fn up_refuses_an_unknown_arch() {
    let g = Guard::new();
    let target = g.write("target.json", &g.document("rel1", services("a")));
    let out = g
        .cmd(&["up", "--target", &target, "--arch", "aarch46"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("\"aarch46\"") && stderr.contains("did you mean aarch64?"),
        "{stderr}"
    );
}

#[test]
fn up_over_ssh_runs_the_release() {
    let g = Guard::new();
    let target = g.write("target.json", &g.document("relssh", services("ssh")));
    let ssh_host = std::env::var("BALENA_COMPOSE_TEST_SSH_HOST").unwrap();
    let ssh_path = std::env::var("BALENA_COMPOSE_TEST_SSH_PATH").unwrap();
    let path = format!("{ssh_path}:{}", std::env::var("PATH").unwrap_or_default());
    let out = g
        .cmd(&["up", "--target", &target, "--json"])
        .env("DOCKER_HOST", &ssh_host)
        .env("PATH", path)
        .assert()
        .success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(state["state"]["commit"], "relssh", "{state}");
    for service in ["web", "box"] {
        let (_, running) = g.container(service).expect("no container");
        assert_eq!(running, "running", "{service}: {state}");
    }
}

#[test]
fn a_user_lock_makes_up_exit_3_and_force_overrides_it() {
    let g = Guard::new();
    let v1 = g.write("v1.json", &g.document("rel1", services("a")));
    g.cmd(&["up", "--target", &v1, "--json"]).assert().success();
    let lock = g
        .dir
        .path()
        .join("locks")
        .join(g.app_id.to_string())
        .join("box/updates.lock");
    std::fs::write(&lock, "").unwrap();
    let v2 = g.write("v2.json", &g.document("rel1", services("b")));
    let out = g.cmd(&["up", "--target", &v2]).assert().code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("box") && err.contains("--force"), "{err}");
    let out = g
        .cmd(&["up", "--target", &v2, "--force", "--json"])
        .assert()
        .success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(
        state["state"]["services"]["box"]["status"], "Running",
        "{state}"
    );
}

#[test]
fn ps_then_down_honours_locks_keeps_volumes_unless_asked_and_an_unknown_app_fails() {
    let g = Guard::new();
    let app = g.app_id.to_string();
    let v1 = g.write("v1.json", &g.document("rel1", services("a")));
    g.cmd(&["up", "--target", &v1, "--json"]).assert().success();
    // `ps` lists the app's services, alone with -a and among all apps without.
    let out = g.cmd(&["ps", "-a", &app, "--json"]).assert().success();
    let rows = support::json_lines(&out.get_output().stdout);
    let services: Vec<_> = rows.iter().map(|r| r["service"].clone()).collect();
    assert_eq!(services, [json!("box"), json!("web")], "{rows:?}");
    for row in &rows {
        assert_eq!(row["app"], app.as_str(), "{row}");
        assert_eq!(row["state"], "running", "{row}");
        assert!(row["status"].as_str().unwrap().starts_with("Up"), "{row}");
        assert_eq!(row["image"], BASE, "{row}");
    }
    let out = g.cmd(&["ps"]).assert().success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&app) && l.contains("web")),
        "{table}"
    );
    let lock = g
        .dir
        .path()
        .join("locks")
        .join(&app)
        .join("box/updates.lock");
    std::fs::write(&lock, "").unwrap();
    let out = g.cmd(&["down", "-a", &app]).assert().code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("box") && err.contains("--force"), "{err}");
    assert!(
        g.container("web").is_some(),
        "down removed web despite the lock"
    );

    let out = g
        .cmd(&["down", "-a", &app, "--force", "--json"])
        .assert()
        .success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(state["state"]["services"], json!({}), "{state}");
    assert_eq!(state["state"]["networks"], json!([]), "{state}");
    assert_eq!(g.container("web"), None);
    assert_eq!(g.container("box"), None);
    let volume = format!("{app}_data");
    docker_ok(&["volume", "inspect", &volume]);

    // Only the kept volume is left; `down --volumes` removes it.
    g.cmd(&["down", "-a", &app, "--volumes"]).assert().success();
    assert!(!docker_cli(&["volume", "inspect", &volume]).status.success());

    // Nothing of the app is left: it is unknown, and saying "Idle" would hide a typo.
    for command in ["state", "down", "ps"] {
        let out = g.cmd(&[command, "-a", &app]).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains(&format!("no app {app}")), "{command}: {err}");
        assert!(out.get_output().stdout.is_empty(), "{command}");
    }
}

#[test]
fn logs_prefix_each_line_with_its_service_tail_timestamps_and_follow() {
    let g = Guard::new();
    let app = g.app_id.to_string();
    let script = "echo one; echo two; echo three; while true; do echo tick; sleep 0.2; done";
    let svcs = json!({
        "talker": {"id": 1, "image": BASE, "composition": {"command": ["sh", "-c", script], "stop_grace_period": "1s"}},
        "quiet": {"id": 2, "image": BASE, "composition": {"command": ["sh", "-c", "echo hush; exec sleep 3600"], "stop_grace_period": "1s"}}
    });
    let target = g.write("t.json", &g.document("rel1", svcs));
    g.up_reaches(&target, "rel1", &["talker", "quiet"]);
    let logs = |args: &[&str]| {
        let mut all = vec!["logs", "-a", &app];
        all.extend_from_slice(args);
        let out = g
            .cmd(&all)
            .timeout(Duration::from_secs(30))
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stdout).to_string()
    };
    assert!(
        wait_until(Duration::from_secs(10), || logs(&[])
            .contains("quiet  | hush")),
        "{}",
        logs(&[])
    );
    let all = logs(&[]);
    assert!(all.lines().any(|l| l == "talker | one"), "{all}");
    assert!(
        wait_until(Duration::from_secs(10), || logs(&["talker"])
            .matches("tick")
            .count()
            > 2),
        "talker does not tick"
    );
    let tail = logs(&["talker", "--tail", "2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l == "talker | tick"), "{tail}");
    let stamped = logs(&["quiet", "--timestamps"]);
    assert!(
        stamped.starts_with("quiet | 20") && stamped.trim_end().ends_with(" hush"),
        "{stamped}"
    );
    let future = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    assert_eq!(logs(&["quiet", "--since", &future]), "");
    let out = g.cmd(&["logs", "-a", &app, "nope"]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no service nope"), "{err}");

    // -f streams: lines printed after it started arrive while it runs.
    let mut follow = g
        .process(&["logs", "-a", &app, "talker", "-f", "--tail", "0"])
        .env("DOCKER_HOST", docker_host())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(first.as_deref(), Ok("talker | tick"));
}

#[test]
fn an_unmet_contract_fails_naming_the_service() {
    let g = Guard::new();
    let mut svcs = services("a");
    svcs["web"]["labels"] = json!({"io.balena.features.requires.sw.supervisor": ">=99"});
    let target = g.write("t.json", &g.document("rel1", svcs));
    let out = g.cmd(&["up", "--target", &target]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("service web") && err.contains("sw.supervisor"),
        "{err}"
    );
}

#[test]
fn up_fetches_the_target_from_the_api_with_config_json() {
    let g = Guard::new();
    let document = g.document("relapi", services("a"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let app = axum::Router::new().route(
            "/device/v3/device-uuid-1/state",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let document = document.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    if auth == "Bearer secret-key" {
                        Ok(axum::Json(document))
                    } else {
                        Err(axum::http::StatusCode::UNAUTHORIZED)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let config = |key: &str| {
        json!({"uuid": "device-uuid-1", "deviceApiKey": key,
        "apiEndpoint": format!("http://{addr}"), "deviceType": "genericx86-64-ext"})
    };
    let bad = g.write("bad.json", &config("wrong"));
    let out = g.cmd(&["up", "--config", &bad]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("401"), "{err}");
    let good = g.write("config.json", &config("secret-key"));
    let out = g
        .cmd(&["up", "--config", &good, "--json"])
        .assert()
        .success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(state["state"]["commit"], "relapi", "{state}");
    drop(rt);
}

#[test]
fn help_describes_the_commands() {
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args(["up", "--help"])
        .assert()
        .success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    for flag in [
        "--target",
        "--config",
        "--force",
        "--json",
        "--docker-host",
        "-a",
    ] {
        assert!(help.contains(flag), "{flag} missing from {help}");
    }
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args(["state", "--help"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("labels"));
}

/// Runs `cmd` to its end (bounded), failing the test on a non-zero exit; its stdout.
fn run_ok(mut cmd: std::process::Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

#[test]
fn a_built_and_pushed_project_runs_with_up_target() {
    let g = Guard::new();
    let project = tempfile::tempdir().unwrap();
    let nonce = g.app_id;
    write(
        project.path(),
        "docker-compose.yml",
        "services:\n  main:\n    build: ./main\n",
    );
    write(
        project.path(),
        "main/Dockerfile",
        &format!(
            "FROM local/amd64-busybox\nRUN mkdir /www && echo hello-{nonce} > /www/index.html\nCMD [\"sh\", \"-c\", \"cat /www/index.html; exec httpd -f -p 8080 -h /www\"]\n"
        ),
    );
    let dir = project.path().to_str().unwrap();
    let name = format!("roundtrip{nonce}");

    // 1. build.
    let mut build = balena_compose();
    build.args(["build", dir, "-p", &name, "--arch", "amd64"]);
    run_ok(build, "balena-compose build");

    // 2. push: `deploy` reuses the built image and pushes it to the local registry.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt
        .block_on(balena_api_fake::FakeApi::start(Default::default()))
        .unwrap();
    let mut deploy = balena_compose();
    deploy
        .env("BALENA_API_KEY", api.api_key())
        .args(["deploy", "gh_tester/testfleet", dir, "-p", &name])
        .args(["--api-url", api.url(), "--json"]);
    let events = support::json_lines(&run_ok(deploy, "balena-compose deploy"));
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "start" && e["action"] == "build"),
        "deploy rebuilt what build had built: {events:?}"
    );
    let images = api.records("image");
    assert_eq!(images.len(), 1, "{images:?}");
    let location = images[0]["is_stored_at__image_location"].as_str().unwrap();
    let digest = images[0]["content_hash"].as_str().unwrap();
    let reference = format!("{location}@{digest}");
    // Only the registry has it now: `up` has to pull.
    docker_ok(&["image", "rm", &format!("{name}_main")]);

    // 3. up --target a file that names the pushed image.
    let services = json!({"main": {"id": 1, "image": reference,
        "labels": {"com.example.round-trip": "yes"}, "composition": {}}});
    let target = g.write("target.json", &g.document("built1", services));
    let out = g
        .cmd(&["up", "--target", &target, "--json"])
        .assert()
        .success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(state["state"]["commit"], "built1", "{state}");
    assert_eq!(
        state["state"]["services"]["main"]["status"], "Running",
        "{state}"
    );

    let (id, running) = g.container("main").expect("no container for main");
    assert_eq!(running, "running");
    let labels = docker_ok(&["inspect", "--format", "{{json .Config.Labels}}", &id]);
    let labels: Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["com.example.round-trip"], "yes", "{labels}");
    assert_eq!(labels["io.balena.app-id"], g.app_id.to_string(), "{labels}");
    let expected = format!("hello-{nonce}");
    assert!(
        wait_until(Duration::from_secs(10), || docker_ok(&["logs", &id])
            .contains(&expected)),
        "the built command did not run"
    );
    let served = || {
        let out = docker_cli(&["exec", &id, "wget", "-qO-", "http://127.0.0.1:8080/"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(
        wait_until(Duration::from_secs(10), || served() == expected),
        "httpd does not serve the built file: {:?}",
        served()
    );

    // 4. removal.
    let empty = g.write(
        "empty.json",
        &json!({"device-uuid-1": {"name": "dev", "config": {}, "apps": {}}}),
    );
    let app = g.app_id.to_string();
    g.cmd(&["up", "-a", &app, "--target", &empty, "--json"])
        .assert()
        .success();
    assert_eq!(g.container("main"), None, "the app was not removed");
    let _ = docker_cli(&["image", "rm", &reference]);
}

/// A project of one service `main` whose httpd serves `text`; the fleet's update strategy is
/// kill-then-download.
fn write_served_project(root: &std::path::Path, text: &str) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  main:\n    build: ./main\n    labels:\n      io.balena.update.strategy: kill-then-download\n",
    );
    write(
        root,
        "main/Dockerfile",
        &format!(
            "FROM local/amd64-busybox\nRUN mkdir /www && echo {text} > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        ),
    );
}

/// What `main` of the guard's app serves, once it serves `expected` (bounded).
fn wait_for_served(g: &Guard, expected: &str) {
    let (id, _) = g.container("main").expect("no container for main");
    let served = || {
        let out = docker_cli(&["exec", &id, "wget", "-qO-", "http://127.0.0.1:8080/"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(
        wait_until(Duration::from_secs(15), || served() == expected),
        "main does not serve {expected}: {:?}",
        served()
    );
}

/// `deploy FLEET PROJECT` against the fake; the new release's commit. The built image is
/// removed from the engine afterwards, so `up` has to pull it from the registry.
fn deploy_release(api: &balena_api_fake::FakeApi, fleet: &str, dir: &str, name: &str) -> String {
    let mut deploy = balena_compose();
    deploy.env("BALENA_API_KEY", api.api_key()).args([
        "deploy",
        fleet,
        dir,
        "-p",
        name,
        "--api-url",
        api.url(),
        "--json",
    ]);
    run_ok(deploy, "balena-compose deploy");
    let releases = api.records("release");
    let release = releases.last().expect("deploy made no release");
    assert_eq!(release["status"], "success", "{release}");
    let _ = docker_cli(&["image", "rm", &format!("{name}_main")]);
    release["commit"].as_str().unwrap().to_owned()
}

#[test]
fn deploy_then_up_a_with_config_json_runs_the_release_and_applies_the_next() {
    let mut g = Guard::new();
    let fleet_id = g.app_id;
    // The fake names the fleet's app by this uuid: the guard cleans its networks up.
    g.uuid = balena_api_fake::fleet_uuid(fleet_id);
    let slug = format!("gh_tester/loop{fleet_id}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = balena_api_fake::FakeConfig {
        fleets: vec![balena_api_fake::FakeFleet {
            id: fleet_id,
            slug: slug.clone(),
            device_type: "intel-nuc".to_owned(),
            arch: "amd64".to_owned(),
            supports_multicontainer: true,
        }],
        ..Default::default()
    };
    let api = rt
        .block_on(balena_api_fake::FakeApi::start(config))
        .unwrap();
    let device = format!("dev{fleet_id}");
    api.register_device(&balena_api_fake::FakeDevice {
        uuid: device.clone(),
        api_key: format!("device-key-{fleet_id}"),
        fleet_id,
        pinned_release: None,
    });
    let config_json = g.write(
        "config.json",
        &json!({"uuid": device, "deviceApiKey": format!("device-key-{fleet_id}"),
            "apiEndpoint": api.url(), "deviceType": "intel-nuc"}),
    );
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    let name = format!("loop{fleet_id}");
    let app = name.clone();
    let mut pulled = Vec::new();

    // Release 1: deploy, then the device runs it through its state endpoint.
    write_served_project(project.path(), &format!("one-{fleet_id}"));
    let first = deploy_release(&api, &slug, dir, &name);
    let out = g
        .cmd(&["up", "-a", &app, "--config", &config_json, "--json"])
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
    let events = support::json_lines(&out.get_output().stdout);
    let state = events.last().unwrap();
    assert_eq!(state["state"]["commit"], first.as_str(), "{state}");
    assert!(
        api.requests_matching("GET", &format!("/device/v3/{device}/state"))
            .iter()
            .all(|r| r.authorized && r.status == 200),
        "the state was not read with the device's key"
    );
    wait_for_served(&g, &format!("one-{fleet_id}"));
    pulled.extend(api.records("image").iter().map(image_reference));
    // What runs, by the fleet's name (the README's loop).
    let out = g.cmd(&["ps", "-a", &app, "--json"]).assert().success();
    let rows = support::json_lines(&out.get_output().stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["service"], "main", "{rows:?}");

    // Release 2: a change; `up -a` again applies it, killing first (the fleet's strategy),
    // as `up --dry-run` says beforehand.
    write_served_project(project.path(), &format!("two-{fleet_id}"));
    let second = deploy_release(&api, &slug, dir, &name);
    assert_ne!(first, second);
    let planned = g
        .cmd(&["up", "-a", &app, "--config", &config_json, "--dry-run"])
        .assert()
        .success();
    let planned = String::from_utf8_lossy(&planned.get_output().stdout).to_string();
    assert!(
        planned.contains("kill main") && planned.contains("fetch main"),
        "{planned}"
    );
    let out = g
        .cmd(&["up", "-a", &app, "--config", &config_json, "--json"])
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
    let events = support::json_lines(&out.get_output().stdout);
    assert_eq!(events.last().unwrap()["state"]["commit"], second.as_str());
    let started = |action: &str| {
        events
            .iter()
            .position(|e| e["event"] == "stepStarted" && e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} step: {events:?}"))
    };
    assert!(
        started("kill") < started("fetch"),
        "kill-then-download fetched before killing: {events:?}"
    );
    wait_for_served(&g, &format!("two-{fleet_id}"));
    pulled.extend(api.records("image").iter().map(image_reference));

    // `target` writes a release's state for `up --target`: the latest, or the one named.
    let target = |release: Option<&str>, file: &str| {
        let path = g.dir.path().join(file);
        let mut cmd = balena_compose();
        cmd.env("BALENA_API_KEY", api.api_key())
            .args(["target", &slug, "--api-url", api.url(), "-o"])
            .arg(&path);
        if let Some(commit) = release {
            cmd.args(["--release", commit]);
        }
        run_ok(cmd, "balena-compose target");
        path.display().to_string()
    };
    let latest = target(None, "latest.json");
    let text = std::fs::read_to_string(&latest).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    let releases = &document["local-device"]["apps"][&g.uuid]["releases"];
    assert!(releases.get(&second).is_some(), "{text}");
    let back = target(Some(&first), "first.json");
    g.up_reaches(&back, &first, &["main"]);
    wait_for_served(&g, &format!("one-{fleet_id}"));
    for reference in pulled {
        let _ = docker_cli(&["image", "rm", &reference]);
    }
}

fn image_reference(image: &Value) -> String {
    format!(
        "{}@{}",
        image["is_stored_at__image_location"]
            .as_str()
            .unwrap_or_default(),
        image["content_hash"].as_str().unwrap_or_default()
    )
}

/// An image with a 24 MB layer, only in the registry, reached through a 512 kB/s proxy: the
/// proxy and the image's name through it.
fn slow_image(repository: &str) -> (ThrottledProxy, String) {
    let pushed = format!("{REGISTRY}/{repository}:latest");
    image_with_fresh_layer(&pushed, 24_000_000);
    docker_ok(&["push", &pushed]);
    docker_ok(&["image", "rm", &pushed]);
    let proxy = ThrottledProxy::start(512 * 1024);
    let slow = format!("{}/{repository}:latest", proxy.host());
    (proxy, slow)
}

/// `up --target TARGET --json` running, its output piped, once 2 MB came through `proxy`.
fn up_mid_download(g: &Guard, target: &str, proxy: &ThrottledProxy) -> std::process::Child {
    let child = g
        .process(&["up", "--target", target, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || proxy.carried() > 2_000_000),
        "the download never started"
    );
    child
}

/// SIGTERM (`docker stop` of a container running `up`, a service manager stopping it) is
/// handled like Ctrl-C: the update stops, the running release is untouched, exit 143.
#[test]
fn sigterm_mid_download_is_handled_like_ctrl_c() {
    let g = Guard::new();
    let (proxy, slow) = slow_image(&format!("up-term-{}", g.app_id));
    let service = |image: &str| {
        json!({"id": 1, "image": image, "composition": {"command": ["sleep", "3600"],
            "stop_grace_period": "1s"}})
    };
    let v1 = g.write(
        "v1.json",
        &g.document("rel1", json!({"main": service(BASE)})),
    );
    g.cmd(&["up", "--target", &v1, "--json"]).assert().success();
    let main1 = g.container("main").expect("main is not there");

    let v2 = g.write(
        "v2.json",
        &g.document("rel2", json!({"main": service(&slow)})),
    );
    let child = up_mid_download(&g, &v2, &proxy);
    let killed = std::process::Command::new("/bin/kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(g.container("main").as_ref(), Some(&main1));
    assert_eq!(g.state()["state"]["commit"], "rel1");
    drop(g);
    let _ = docker_cli(&["image", "rm", &slow]);
}

#[test]
fn an_update_killed_mid_download_leaves_the_release_running_and_converges_on_retry() {
    let g = Guard::new();
    let (proxy, slow) = slow_image(&format!("up-interrupt-{}", g.app_id));

    let box_service = |image: &str, command: &str| {
        json!({"id": 2, "image": image, "composition": {"command": ["sh", "-c", command],
            "volumes": ["data:/data"], "stop_grace_period": "1s"}})
    };
    let web =
        json!({"id": 1, "image": BASE, "composition": {"command": ["httpd", "-f", "-p", "8080"]}});
    let v1 =
        json!({"web": web, "box": box_service(BASE, "echo v1-data > /data/keep; exec sleep 3600")});
    let v1 = g.write("v1.json", &g.document("rel1", v1));
    g.cmd(&["up", "--target", &v1, "--json"]).assert().success();
    let web1 = g.container("web").expect("web is not there");
    let box1 = g.container("box").expect("box is not there");
    assert_eq!(box1.1, "running");

    let v2 = json!({"web": web, "box": box_service(&slow, "exec sleep 3600")});
    let v2 = g.write("v2.json", &g.document("rel2", v2));
    let mut child = up_mid_download(&g, &v2, &proxy);
    // Mid-download, the running release is as it was (download-then-kill) ...
    assert_eq!(g.container("box").as_ref(), Some(&box1));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let progress = String::from_utf8_lossy(&out.stdout);
    assert!(progress.contains("fetchProgress"), "{progress}");

    // ... and stays so once the update is killed: same containers, running, same release.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(g.container("box").as_ref(), Some(&box1));
    assert_eq!(g.container("web").as_ref(), Some(&web1));
    assert_eq!(g.state()["state"]["commit"], "rel1");
    assert!(
        !docker_cli(&["image", "inspect", &slow]).status.success(),
        "the interrupted pull left a complete image"
    );

    // `up` again, at full speed, converges to the target with the volume's data intact.
    proxy.set_rate(0);
    let started = Instant::now();
    let out = g
        .cmd(&["up", "--target", &v2, "--json"])
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(state["state"]["commit"], "rel2", "{state}");
    assert_eq!(
        state["state"]["services"]["box"]["status"], "Running",
        "{state}"
    );
    // The layer came over a fresh connection at full speed (about 3.5 s here).
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let box2 = g.container("box").expect("box is not there");
    assert_ne!(box2.0, box1.0, "box was not recreated on its new image");
    assert_eq!(box2.1, "running");
    assert_eq!(
        docker_ok(&["exec", &box2.0, "cat", "/data/keep"]),
        "v1-data",
        "the volume's data was lost"
    );
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.Image}}", &box2.0]),
        docker_ok(&["image", "inspect", "--format", "{{.Id}}", &slow]),
        "box does not run the new image"
    );

    drop(g);
    let _ = docker_cli(&["image", "rm", &slow]);
}

/// Two services whose `sleep` (PID 1, deaf to SIGTERM) takes `grace` to stop: a kill step
/// lasts that long.
fn sleepers(mode: &str, grace: &str) -> Value {
    let svc = |id: u64, volumes: Value| {
        json!({"id": id, "image": BASE, "environment": {"MODE": mode},
            "composition": {"command": ["sleep", "3600"], "volumes": volumes, "stop_grace_period": grace}})
    };
    json!({"web": svc(1, json!([])), "box": svc(2, json!(["data:/data"]))})
}

/// `up --target TARGET --json` in the background, its stdout collected as it comes.
struct Background {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    fn up(g: &Guard, target: &str) -> Self {
        let mut child = g
            .process(&["up", "--target", target, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Self { child, stdout }
    }

    /// With `sleepers` of release rel1 running, `up` to rel2 in the background, caught
    /// while it kills (each kill lasts `grace`); and rel2's target file.
    fn killing(g: &Guard, grace: &str) -> (Self, String) {
        let v1 = g.write("v1.json", &g.document("rel1", sleepers("a", grace)));
        g.cmd(&["up", "--target", &v1]).assert().success();
        let v2 = g.write("v2.json", &g.document("rel2", sleepers("b", grace)));
        let running = Self::up(g, &v2);
        running.wait_for_step("kill");
        (running, v2)
    }

    /// Waits until a step with `action` started.
    fn wait_for_step(&self, action: &str) {
        let needle = format!(r#""event":"stepStarted","action":"{action}""#);
        assert!(
            wait_until(Duration::from_secs(60), || self
                .stdout
                .lock()
                .unwrap()
                .contains(&needle)),
            "no {action} step started: {}",
            self.stdout.lock().unwrap()
        );
    }
}

#[test]
fn two_concurrent_ups_on_one_app_leave_it_running() {
    let g = Guard::new();
    let v0 = g.write("v0.json", &g.document("rel0", sleepers("m0", "1s")));
    g.cmd(&["up", "--target", &v0]).assert().success();
    let mut waited = false;
    for round in 1..=3 {
        let commit = format!("rel{round}");
        let doc = g.document(&commit, sleepers(&format!("m{round}"), "1s"));
        let target = g.write(&format!("v{round}.json"), &doc);
        let spawn = || {
            g.process(&["up", "--target", &target])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(), spawn());
        for out in [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ] {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "round {round}: {}\n{stdout}",
                String::from_utf8_lossy(&out.stderr)
            );
            waited |= stdout.contains("another balena-compose up is applying to this engine (pid");
        }
        for service in ["web", "box"] {
            let (_, state) = g
                .container(service)
                .unwrap_or_else(|| panic!("round {round}: {service} has no container"));
            assert_eq!(state, "running", "round {round}: {service}");
        }
        assert_eq!(g.state()["state"]["commit"], commit.as_str());
    }
    assert!(waited, "no run ever waited for the other");
}

#[test]
fn no_wait_fails_fast_while_an_up_applies_and_a_killed_holder_frees_the_engine() {
    let g = Guard::new();
    let (mut holder, v2) = Background::killing(&g, "6s");

    let started = Instant::now();
    let out = g
        .cmd(&["up", "--target", &v2, "--no-wait"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(3);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--no-wait waited"
    );
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let expected = format!(
        "another balena-compose up is applying to this engine (pid {})",
        holder.child.id()
    );
    assert!(
        err.contains(&expected) && err.contains("--no-wait"),
        "{err}"
    );

    // The holder dies mid-apply without a chance to clean up: the next `up` does not wait.
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let stdout = g.up_reaches(&v2, "rel2", &["web", "box"]);
    assert!(!stdout.contains("waitingForEngine"), "{stdout}");
}

/// The `names: phrase` groups of an interrupt report, by service name.
fn reported_services(report: &str) -> HashMap<String, String> {
    let start = report.find("updated (").expect("no service list") + "updated (".len();
    let end = start
        + report[start..]
            .find("); run")
            .expect("no end of service list");
    let mut out = HashMap::new();
    for group in report[start..end].split("; ") {
        let (names, phrase) = group.split_once(": ").unwrap();
        for name in names.split(", ") {
            out.insert(name.to_owned(), phrase.to_owned());
        }
    }
    out
}

#[test]
fn an_interrupt_during_the_kill_phase_reports_what_the_app_is_left_with() {
    let g = Guard::new();
    let (running, v2) = Background::killing(&g, "3s");
    let pid = running.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = running.child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted after") && err.contains("kill") && !err.contains("untouched"),
        "{err}"
    );
    // The report matches the engine: a service it calls container-less has no container,
    // and one it calls running on the old release is running.
    let reported = reported_services(&err);
    for service in ["web", "box"] {
        let phrase = reported.get(service).unwrap_or_else(|| panic!("{err}"));
        match g.container(service) {
            None => assert_eq!(phrase, "no container", "{service}: {err}"),
            Some((_, state)) => {
                let shown = if state == "running" {
                    "running"
                } else {
                    "stopped"
                };
                assert!(phrase.starts_with(shown), "{service} is {state}: {err}");
            }
        }
    }
    assert!(
        reported.values().any(|p| p == "no container"),
        "nothing was stopped: {err}"
    );

    g.up_reaches(&v2, "rel2", &["web", "box"]);
}

#[test]
fn a_foreign_network_or_volume_with_the_apps_name_fails_up_at_once() {
    let g = Guard::new();
    let target = g.write("t.json", &g.document("rel1", sleepers("a", "1s")));
    // `up` fails at once naming the foreign object, and creates nothing.
    let refused_naming = |object: &str| {
        let started = Instant::now();
        let out = g.cmd(&["up", "--target", &target]).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        let expected = format!("{object} exists but was not created by balena-compose");
        assert!(err.contains(&expected), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30), "{object}");
        assert_eq!(g.container("web"), None, "{object}");
        assert_eq!(g.container("box"), None, "{object}");
    };

    let network = format!("{}_default", g.uuid);
    docker_ok(&["network", "create", &network]);
    refused_naming(&format!("network {network}"));
    let named = docker_ok(&[
        "network",
        "ls",
        "--filter",
        &format!("name={network}"),
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(
        named.lines().filter(|n| *n == network).count(),
        1,
        "a duplicate network"
    );
    docker_ok(&["network", "rm", &network]);

    let volume = format!("{}_data", g.app_id);
    docker_ok(&["volume", "create", "--label", "owner=someone", &volume]);
    refused_naming(&format!("volume {volume}"));
    let labels = docker_ok(&["volume", "inspect", "--format", "{{json .Labels}}", &volume]);
    assert_eq!(
        labels, r#"{"owner":"someone"}"#,
        "the foreign volume was touched"
    );
    docker_ok(&["volume", "rm", &volume]);

    // Without them, the same target applies.
    g.cmd(&["up", "--target", &target]).assert().success();
}

#[test]
fn names_in_a_target_that_are_not_compose_names_are_refused_before_anything_is_touched() {
    let g = Guard::new();
    let v1 = g.write("v1.json", &g.document("rel1", sleepers("a", "1s")));
    g.cmd(&["up", "--target", &v1]).assert().success();
    let web = g.container("web").expect("web is not there");
    // What `--lock-dir DIR/locks` + `<appId>/../../victim` would reach, with a "lock" inside
    // that `--force` would delete.
    let victim = g.dir.path().join("victim");
    std::fs::create_dir_all(victim.join("updates.lock")).unwrap();
    std::fs::write(victim.join("updates.lock/precious.txt"), "keep").unwrap();

    let bad = "../../victim";
    let mut services = sleepers("b", "1s");
    services[bad] = json!({"id": 3, "image": BASE, "composition": {"command": ["sleep", "3600"]}});
    let mut doc = g.document("rel2", services);
    let target = g.write("bad-service.json", &doc);
    let out = g
        .cmd(&["up", "--target", &target, "--force"])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(&format!("invalid service name {bad:?}")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("updates.lock/precious.txt")).unwrap(),
        "keep"
    );
    assert_eq!(g.container("web"), Some(web.clone()), "web was touched");

    // Networks and volumes are checked the same way.
    let release = &mut doc["device-uuid-1"]["apps"][g.uuid.as_str()]["releases"]["rel2"];
    release["services"].as_object_mut().unwrap().remove(bad);
    for (kind, key) in [("network", "networks"), ("volume", "volumes")] {
        let mut doc = doc.clone();
        let release = &mut doc["device-uuid-1"]["apps"][g.uuid.as_str()]["releases"]["rel2"];
        release[key]["a/b"] = json!({});
        let target = g.write(&format!("bad-{kind}.json"), &doc);
        let out = g.cmd(&["up", "--target", &target]).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(
            err.contains(&format!(r#"invalid {kind} name "a/b""#)),
            "{err}"
        );
        assert_eq!(
            g.container("web"),
            Some(web.clone()),
            "{kind}: web was touched"
        );
    }
}

/// The app's containers (id and state), networks and volumes, as the engine lists them.
fn engine_objects(g: &Guard) -> Vec<String> {
    let containers = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.balena.app-id={}", g.app_id),
        "--format",
        "{{.ID}} {{.Names}} {{.State}}",
    ]);
    let networks = docker_ok(&["network", "ls", "--format", "{{.ID}} {{.Name}}"]);
    let volumes = docker_ok(&["volume", "ls", "--format", "{{.Name}}"]);
    let mut objects: Vec<String> = containers.lines().map(str::to_owned).collect();
    let (net_prefix, vol_prefix) = (format!(" {}_", g.uuid), format!("{}_", g.app_id));
    objects.extend(
        networks
            .lines()
            .filter(|l| l.contains(&net_prefix))
            .map(str::to_owned),
    );
    objects.extend(
        volumes
            .lines()
            .filter(|l| l.starts_with(&vol_prefix))
            .map(str::to_owned),
    );
    objects.sort();
    objects
}

/// `up --dry-run --json ARGS`: the planned steps as `action subject`, the engine untouched.
fn dry_run(g: &Guard, args: &[&str]) -> Vec<String> {
    let before = engine_objects(g);
    let out = g
        .cmd(&[&["up", "--dry-run", "--json"], args].concat())
        .assert()
        .success();
    assert_eq!(engine_objects(g), before, "a dry run changed the engine");
    support::json_lines(&out.get_output().stdout)
        .iter()
        .map(|l| {
            assert_eq!(l["event"], "plannedStep", "{l}");
            format!(
                "{} {}",
                l["action"].as_str().unwrap(),
                l["subject"].as_str().unwrap()
            )
        })
        .collect()
}

/// `up --json ARGS`: the steps it started, noops aside, as `action subject`.
fn steps_taken(g: &Guard, args: &[&str]) -> Vec<String> {
    let out = g
        .cmd(&[&["up", "--json"], args].concat())
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    support::json_lines(&out.get_output().stdout)
        .iter()
        .filter(|l| l["event"] == "stepStarted" && l["action"] != "noop")
        .map(|l| {
            format!(
                "{} {}",
                l["action"].as_str().unwrap(),
                l["subject"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn up_dry_run_prints_the_steps_up_then_takes_and_touches_nothing() {
    let g = Guard::new();
    // An image the engine does not hold by that name, so the plan starts with a fetch.
    let image = format!("{REGISTRY}/dry-run-{}:1", g.app_id);
    docker_ok(&["tag", BASE, &image]);
    docker_ok(&["push", "-q", &image]);
    docker_ok(&["rmi", &image]);
    let mut first = services("a");
    first["web"]["image"] = json!(image);
    let v1 = g.write("v1.json", &g.document("rel1", first));
    let v2 = g.write("v2.json", &g.document("rel2", services("b")));
    let empty = g.write(
        "empty.json",
        &json!({"device-uuid-1": {"name": "dev", "config": {}, "apps": {}}}),
    );
    let app = g.app_id.to_string();
    // Install, update (a new release, one service's config changed), removal.
    for args in [
        vec!["--target", v1.as_str()],
        vec!["--target", v2.as_str()],
        vec!["-a", app.as_str(), "--target", empty.as_str()],
    ] {
        let planned = dry_run(&g, &args);
        assert!(!planned.is_empty(), "{args:?}: nothing planned");
        assert_eq!(steps_taken(&g, &args), planned, "{args:?}");
        assert_eq!(
            dry_run(&g, &args),
            Vec::<String>::new(),
            "{args:?}: not done"
        );
    }
    // The human form: the same steps, and the word that nothing changed.
    let out = g
        .cmd(&["up", "--dry-run", "--target", &v1])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        text.contains("fetch web") || text.contains("  fetch web"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(g.container("web"), None, "{text}");
}

#[test]
fn device_commands_find_an_app_by_its_fleet_name_and_without_a_ask_to_choose() {
    let (g, other) = (Guard::new(), Guard::new());
    let name = format!("fleet-{}", g.app_id);
    for (guard, fleet) in [
        (&g, name.clone()),
        (&other, format!("fleet-{}", other.app_id)),
    ] {
        let mut doc = guard.document("rel1", services("a"));
        doc["device-uuid-1"]["apps"][&guard.uuid]["name"] = json!(fleet);
        let target = guard.write("v1.json", &doc);
        guard.cmd(&["up", "--target", &target]).assert().success();
    }
    let app = g.app_id.to_string();
    let state = g.cmd(&["state", "-a", &name, "--json"]).assert().success();
    let state = last_json(&state.get_output().stdout);
    assert_eq!(state["state"]["appId"].as_u64(), Some(g.app_id), "{state}");
    let out = g.cmd(&["ps", "-a", &name, "--json"]).assert().success();
    let rows = support::json_lines(&out.get_output().stdout);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["app"] == app.as_str()), "{rows:?}");
    let out = g
        .cmd(&["logs", "-a", &name, "--tail", "1", "box"])
        .assert()
        .success();
    assert!(out.get_output().stderr.is_empty());
    // Two apps (at least) and no -a: an error that lists them, nothing done.
    for command in ["logs", "down"] {
        let out = g.cmd(&[command]).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains("choose one with -a"), "{command}: {err}");
        assert!(
            err.contains(&format!("{app} ({name}, {})", g.uuid)),
            "{command}: {err}"
        );
    }
    assert!(g.container("web").is_some());
    g.cmd(&["down", "-a", &name]).assert().success();
    assert_eq!(g.container("web"), None);
    let out = g.cmd(&["state", "-a", "no-such-fleet"]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no app no-such-fleet"), "{err}");
}

/// With one app on the engine (a daemon of this test's own: the shared one runs other
/// tests' apps), `-a` may be left out, as a docker compose project's name is.
#[test]
fn without_a_the_only_app_on_the_engine_is_meant() {
    let daemon = PrivateDaemon::start();
    let g = Guard::new();
    daemon.load_base_image(&g.dir.path().join("docker-config"));
    let on = |args: &[&str]| {
        let mut cmd = g.cmd(args);
        cmd.env("DOCKER_HOST", daemon.host());
        cmd
    };
    let target = g.write("v1.json", &g.document("rel1", services("a")));
    on(&["up", "--target", &target])
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let state = on(&["state", "--json"]).assert().success();
    let state = last_json(&state.get_output().stdout);
    assert_eq!(state["state"]["appId"].as_u64(), Some(g.app_id), "{state}");
    on(&["logs", "--tail", "1"]).assert().success();
    let out = on(&["down", "--json"]).assert().success();
    let state = last_json(&out.get_output().stdout);
    assert_eq!(state["state"]["services"], json!({}), "{state}");
    // Nothing runs now: no app to mean.
    let out = on(&["logs"]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no app runs under the composer"), "{err}");
}
