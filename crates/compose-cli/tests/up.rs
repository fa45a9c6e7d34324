//! `balena-compose up` and `balena-compose state` against the private daemon of
//! `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
};
use serde_json::{Value, json};

const BASE: &str = "local/amd64-busybox:latest";

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").expect(
        "DOCKER_HOST is not set: run `eval \"$(scripts/docker-env up)\"` before these tests",
    )
}

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
