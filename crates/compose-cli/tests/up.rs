//! `balena-compose up` and `balena-compose state` against the private daemon of
//! `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
};
use serde_json::{Value, json};
use support::{
    REGISTRY, ThrottledProxy, balena_compose, docker_cli, docker_host, docker_ok,
    image_with_fresh_layer, wait_until, write,
};

mod support;

const BASE: &str = "local/amd64-busybox:latest";

fn unique_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    7_000_000 + u64::from(std::process::id() % 1000) * 1000 + nanos / 1000 % 1000
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
    let removed = last_json(&removed.get_output().stdout);
    assert_eq!(removed["state"]["services"], json!({}), "{removed}");
    assert_eq!(removed["state"]["volumes"], json!([]), "{removed}");
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
