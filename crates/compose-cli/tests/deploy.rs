//! `balena-compose deploy` through the binary: the balena API is the suite's fake server (the
//! real one cannot be reached from here), the daemon and registry are real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use balena_api_fake::{FakeApi, FakeConfig};
use serde_json::Value;

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").expect(
        "DOCKER_HOST is not set: run the suite through scripts/test (it starts the private daemon)",
    )
}

fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

async fn deploy(api: &FakeApi, key: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("balena-compose"));
    cmd.env("DOCKER_HOST", docker_host())
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("balena-compose-tests-no-docker-config"),
        )
        .env("BALENA_API_KEY", key)
        .args([
            "deploy",
            "gh_tester/testfleet",
            "--api-url",
            api.url(),
            "--json",
        ])
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn project(root: &Path, fail: bool) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  web:\n    build: ./web\n    labels:\n      io.balena.features.supervisor-api: '1'\n    environment:\n      MODE: prod\n  worker:\n    build: ./worker\n  ext:\n    image: 127.0.0.1:5000/local/amd64-busybox\n",
    );
    let nonce = std::process::id();
    write(
        root,
        "web/Dockerfile.template",
        &format!("FROM local/%%BALENA_ARCH%%-busybox\nRUN echo web-{nonce}-$RANDOM > /web\n"),
    );
    let run = if fail {
        "exit 7"
    } else {
        "echo worker > /worker"
    };
    write(
        root,
        "worker/Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN {run}\n"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_services_are_pushed_and_recorded_as_one_successful_release() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let name = format!("deploy{}", std::process::id());
    let key = api.api_key().to_owned();
    let out = deploy(
        &api,
        &key,
        &[
            dir.path().to_str().unwrap(),
            "-p",
            &name,
            "--build",
            "--release-tag",
            "version",
            "1.0",
            "--note",
            "first",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let all = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(!all.contains(&key), "the API key leaked");

    let events = json_lines(&out);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["release"]["status"], "success");

    let releases = api.records("release");
    assert_eq!(releases.len(), 1, "one release only");
    assert_eq!(releases[0]["status"], "success");
    assert_eq!(releases[0]["commit"], summary["release"]["commit"]);
    let images = api.records("image");
    assert_eq!(images.len(), 3);
    let client = reqwest_free_get;
    for image in &images {
        assert_eq!(image["status"], "success", "{image}");
        let location = image["is_stored_at__image_location"].as_str().unwrap();
        let digest = image["content_hash"].as_str().unwrap();
        // The registry serves exactly the recorded digest.
        let (host, repo) = location.split_once('/').unwrap();
        let served = client(host, &format!("/v2/{repo}/manifests/latest"));
        assert_eq!(served, digest, "{location}");
    }
    assert!(images.iter().any(|i| {
        i["dockerfile"]
            .as_str()
            .unwrap_or("")
            .contains("FROM local/amd64-busybox")
    }));
    let labels = api.records("image_label");
    assert!(
        labels
            .iter()
            .any(|l| l["label_name"] == "io.balena.features.supervisor-api")
    );
    let env = api.records("image_environment_variable");
    assert!(
        env.iter()
            .any(|e| e["name"] == "MODE" && e["value"] == "prod")
    );
    let tags = api.records("release_tag");
    assert!(
        tags.iter()
            .any(|t| t["tag_key"] == "version" && t["value"] == "1.0")
    );
}

/// A minimal HTTP GET to the local registry that returns `Docker-Content-Digest`.
fn reqwest_free_get(host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "HEAD {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no digest in {response}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_fails_before_any_build() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let out = deploy(&api, "not-the-key-0123", &[dir.path().to_str().unwrap()]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("API key"), "{stderr}");
    assert!(
        !stderr.contains("not-the-key-0123"),
        "the key leaked: {stderr}"
    );
    assert!(
        !json_lines(&out).iter().any(|e| e["event"] == "start"),
        "a build started"
    );
    assert!(api.records("release").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_failure_creates_no_release() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), true);
    let key = api.api_key().to_owned();
    let name = format!("deployfail{}", std::process::id());
    let out = deploy(
        &api,
        &key,
        &[dir.path().to_str().unwrap(), "-p", &name, "--build"],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release was created"));
    assert!(api.records("release").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_is_gone_ends_with_a_failed_release() {
    let config = FakeConfig {
        // Nothing listens there: every push fails its retries.
        registry_host: "127.0.0.1:9".to_owned(),
        ..FakeConfig::default()
    };
    let api = FakeApi::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let key = api.api_key().to_owned();
    let name = format!("deploygone{}", std::process::id());
    let out = deploy(&api, &key, &[dir.path().to_str().unwrap(), "-p", &name]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("marked failed"), "{stderr}");
    let releases = api.records("release");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["status"], "failed");
    assert!(api.records("image").iter().all(|i| i["status"] == "failed"));
    assert_eq!(
        json_lines(&out).last().unwrap()["release"]["status"],
        "failed"
    );
}
