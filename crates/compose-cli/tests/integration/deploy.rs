//! `balena-compose deploy` through the binary: the balena API is the suite's fake server (the
//! real one cannot be reached from here), the daemon and registry are real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use balena_api_fake::{FakeApi, FakeConfig, Fault, FaultKind, FaultPhase};
use serde_json::Value;
use support::{ThrottledProxy, balena_compose, docker_cli, json_lines, wait_until, write};

fn deploy_command(api: &FakeApi, key: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = balena_compose();
    cmd.env("BALENA_API_KEY", key)
        .args([
            "deploy",
            "gh_tester/testfleet",
            "--api-url",
            api.url(),
            "--json",
        ])
        .args(args);
    cmd
}

async fn deploy(api: &FakeApi, key: &str, args: &[&str]) -> Output {
    let mut cmd = deploy_command(api, key, args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Removes the images `project` builds as `name` (the build does not clean up after itself).
fn remove_images(name: &str) {
    let _ = docker_cli(&[
        "image",
        "rm",
        &format!("{name}_web"),
        &format!("{name}_worker"),
    ]);
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

    let events = json_lines(&out.stdout);
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
    remove_images(&name);
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
        !json_lines(&out.stdout)
            .iter()
            .any(|e| e["event"] == "start"),
        "a build started"
    );
    assert!(api.records("release").is_empty());
}

/// `balena.yml` is read as every file a project names: a FIFO there fails at once (a plain
/// read would wait for a writer for ever), before any build or release.
#[tokio::test(flavor = "multi_thread")]
async fn a_balena_yml_that_is_not_a_regular_file_fails_before_any_build() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let fifo = dir.path().join("balena.yml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let key = api.api_key().to_owned();
    let mut cmd = deploy_command(&api, &key, &[dir.path().to_str().unwrap()]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Blocking waits off the runtime, which serves the fake API meanwhile.
    let (done, out) = tokio::task::spawn_blocking(move || {
        let done = wait_until(Duration::from_secs(20), || {
            child.try_wait().unwrap().is_some()
        });
        if !done {
            child.kill().unwrap();
        }
        (done, child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(done, "deploy still waiting on the FIFO after 20 s");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: is a FIFO, not a regular file",
            fifo.display()
        )),
        "{stderr}"
    );
    assert!(
        !json_lines(&out.stdout)
            .iter()
            .any(|e| e["event"] == "start")
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
    remove_images(&name);
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
        json_lines(&out.stdout).last().unwrap()["release"]["status"],
        "failed"
    );
    remove_images(&name);
}

/// The API goes away once the images are pushed: nothing can be recorded, not even the
/// failure. The error says the release exists, its id, and that it was left `running`.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_cannot_be_marked_failed_is_named_as_left_running() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    for path_prefix in ["/v7/image(", "/v7/release("] {
        api.inject(Fault {
            method: "PATCH".to_owned(),
            path_prefix: path_prefix.to_owned(),
            times: 1000,
            kind: FaultKind::Status(503),
            phase: FaultPhase::BeforeApply,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let key = api.api_key().to_owned();
    let name = format!("deployleft{}", std::process::id());
    let out = deploy(
        &api,
        &key,
        &[
            dir.path().to_str().unwrap(),
            "-p",
            &name,
            "--api-retries",
            "0",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let releases = api.records("release");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["status"], "running");
    let id = releases[0]["id"].as_u64().unwrap();
    let commit = releases[0]["commit"].as_str().unwrap();
    assert!(
        stderr.contains(&format!(
            "release {commit} (id {id}): it was left `running`: marking it failed failed too: PATCH /v7/release({id}): HTTP 503"
        )),
        "{stderr}"
    );
    assert_eq!(
        json_lines(&out.stdout).last().unwrap()["release"]["status"],
        "running"
    );
    remove_images(&name);
}

/// The HTTP status of a `HEAD` of the manifest `repository:latest` on the local registry.
fn manifest_status(repository: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(support::REGISTRY).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "HEAD /v2/{repository}/manifests/latest HTTP/1.0\r\nHost: {}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\n\r\n",
        support::REGISTRY
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The statuses the fake answered to the requests matching, in order.
fn statuses(api: &FakeApi, method: &str, path_prefix: &str) -> Vec<u16> {
    api.requests_matching(method, path_prefix)
        .iter()
        .map(|r| r.status)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn api_500s_are_retried_and_make_exactly_one_successful_release() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    // The release is created but the answer is lost: the retry must find it, not make another.
    api.fail_next_after_apply("POST", "/v7/release", 1, 500);
    api.fail_next("PATCH", "/v7/image(", 1, 500);
    api.fail_next("PATCH", "/v7/release(", 1, 500);
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let key = api.api_key().to_owned();
    let name = format!("deploy500{}", std::process::id());
    let out = deploy(&api, &key, &[dir.path().to_str().unwrap(), "-p", &name]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let retries = json_lines(&out.stdout)
        .into_iter()
        .filter(|e| {
            e["event"] == "info"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Attempting retry 1 of 6"))
        })
        .count();
    // The two PATCHes are retried and told; the POST is not repeated at all: the release it
    // made is looked up and reused.
    assert_eq!(retries, 2, "each retry is told once");
    assert!(!statuses(&api, "GET", "/v7/release").is_empty());

    let releases = api.records("release");
    assert_eq!(releases.len(), 1, "one release only: {releases:?}");
    assert_eq!(releases[0]["status"], "success");
    assert_eq!(api.records("image").len(), 3, "one image per service");
    assert!(
        api.records("image")
            .iter()
            .all(|i| i["status"] == "success")
    );
    assert_eq!(statuses(&api, "POST", "/v7/release")[0], 500);
    let image_patches = statuses(&api, "PATCH", "/v7/image(");
    assert_eq!(image_patches.first(), Some(&500), "{image_patches:?}");
    assert!(
        image_patches[1..].iter().all(|s| *s == 200),
        "{image_patches:?}"
    );
    assert_eq!(statuses(&api, "PATCH", "/v7/release("), [500, 200]);
    assert_eq!(
        json_lines(&out.stdout).last().unwrap()["release"]["status"],
        "success"
    );
    remove_images(&name);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_that_hangs_times_out_and_the_release_ends_failed() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    // The first image update and its one retry get no answer; later requests are answered,
    // so the release can still be marked failed.
    api.inject(Fault {
        method: "PATCH".to_owned(),
        path_prefix: "/v7/image(".to_owned(),
        times: 2,
        kind: FaultKind::Hang(Duration::from_secs(120)),
        phase: FaultPhase::BeforeApply,
    });
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let key = api.api_key().to_owned();
    let name = format!("deployhang{}", std::process::id());
    let started = Instant::now();
    let out = deploy(
        &api,
        &key,
        &[
            dir.path().to_str().unwrap(),
            "-p",
            &name,
            "--api-timeout",
            "1",
            "--api-retries",
            "1",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no response within 1s") && stderr.contains("marked failed"),
        "{stderr}"
    );
    // Builds are cached by the other tests' runs or quick; the point is no 120 s hang.
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "{:?}",
        started.elapsed()
    );
    let releases = api.records("release");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["status"], "failed");
    assert!(
        api.records("image").iter().any(|i| i["status"] == "failed"),
        "the image whose update timed out is not marked failed"
    );
    assert_eq!(
        json_lines(&out.stdout).last().unwrap()["release"]["status"],
        "failed"
    );
    remove_images(&name);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_mid_push_fails_the_release_and_removes_the_tags() {
    interrupted_mid_push("INT", 130).await;
}

/// What `timeout` and CI cancellation send.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_push_fails_the_release_and_removes_the_tags() {
    interrupted_mid_push("TERM", 143).await;
}

/// What closing the terminal sends.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_mid_push_fails_the_release_and_removes_the_tags() {
    interrupted_mid_push("HUP", 129).await;
}

/// A deploy that gets `signal` while pushing ends with its release and unfinished images
/// `failed`, no registry tag left and exit status `code`.
async fn interrupted_mid_push(signal: &str, code: i32) {
    // A registry at 256 kB/s per connection: the 8 MB layer takes half a minute to push.
    let proxy = ThrottledProxy::start(256 * 1024);
    let config = FakeConfig {
        registry_host: proxy.host(),
        ..FakeConfig::default()
    };
    let api = FakeApi::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Per signal: each test pushes its own 8 MB layer (an identical one would be mounted).
    let nonce = format!("{}{}", std::process::id(), signal.to_lowercase());
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  big:\n    build: ./big\n  small:\n    build: ./small\n",
    );
    write(
        dir.path(),
        "big/Dockerfile",
        &format!(
            "FROM local/amd64-busybox\nRUN echo {nonce} > /n && head -c 8000000 /dev/urandom > /blob\n"
        ),
    );
    write(
        dir.path(),
        "small/Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN echo {nonce} > /small\n"),
    );
    let key = api.api_key().to_owned();
    let name = format!("deployint{nonce}");
    let mut child = deploy_command(
        &api,
        &key,
        &[dir.path().to_str().unwrap(), "-p", &name, "--build"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();

    let pushing = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(180), || proxy.carried() > 512 * 1024)
    });
    assert!(pushing, "the push never started");
    let killed = std::process::Command::new("/bin/kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let interrupted = Instant::now();
    let exited = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            child.try_wait().unwrap().is_some()
        })
    });
    if !exited {
        let _ = child.kill();
    }
    let took = interrupted.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(exited, "deploy still ran 30 s after SIG{signal}: {stderr}");
    // Stopping the pushes and marking the release failed is quick (about 0.1 s here).
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted (SIG{signal})")) && stderr.contains("marked failed"),
        "{stderr}"
    );

    let releases = api.records("release");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["status"], "failed", "{releases:?}");
    let images = api.records("image");
    let big = images
        .iter()
        .find(|i| {
            let service = i["is_a_build_of__service"]
                .as_u64()
                .or_else(|| i["is_a_build_of__service"]["__id"].as_u64());
            api.records("service")
                .iter()
                .any(|s| s["id"].as_u64() == service && s["service_name"] == "big")
        })
        .expect("no image record for service big");
    assert_eq!(big["status"], "failed", "{big}");
    assert!(
        images.iter().all(|i| i["status"] != "running"),
        "an image was left running: {images:?}"
    );

    // The pushes stopped with the process, the daemon's included: once the proxy lets what is
    // still buffered through at full speed, a push that went on would finish within seconds and
    // write its manifest (checked below) ...
    proxy.set_rate(0);
    std::thread::sleep(Duration::from_secs(5));
    // ... the local registry tags are gone, and no manifest was written.
    for image in &images {
        let location = image["is_stored_at__image_location"].as_str().unwrap();
        let tagged = docker_cli(&["image", "inspect", &format!("{location}:latest")]);
        assert!(!tagged.status.success(), "{location} is still tagged");
        let (_, repository) = location.split_once('/').unwrap();
        if image["status"] != "success" {
            assert_eq!(manifest_status(repository), 404, "{location}");
        }
    }
    let _ = docker_cli(&[
        "image",
        "rm",
        &format!("{name}_big"),
        &format!("{name}_small"),
    ]);
}

/// A fleet's device type comes from the API, which knows device types newer than the table
/// `--device-type` is checked against: deploy takes it (and its arch) as the API says.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_device_type_newer_than_the_table_deploys() {
    let mut config = FakeConfig::default();
    config.fleets[0].device_type = "brand-new-board".to_owned();
    let api = FakeApi::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nonce = std::process::id();
    write(
        dir.path(),
        "Dockerfile.template",
        &format!("FROM local/amd64-busybox\nLABEL machine=%%BALENA_MACHINE_NAME%%-{nonce}\n"),
    );
    let key = api.api_key().to_owned();
    let name = format!("deploynewtype{nonce}");
    let out = deploy(&api, &key, &[dir.path().to_str().unwrap(), "-p", &name]).await;
    let label = docker_cli(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"machine\"}}",
        &format!("{name}_main"),
    ]);
    let _ = docker_cli(&["image", "rm", &format!("{name}_main")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&label.stdout).trim(),
        format!("brand-new-board-{nonce}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_balena_cli_login_is_the_key_when_none_is_given() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(&dir.path().join("project"), false);
    let home = dir.path().join("home");
    let key = api.api_key().to_owned();
    write(&home, ".balena/token", &format!("{key}\n"));
    let name = format!("deploytoken{}", std::process::id());
    let mut cmd = balena_compose();
    cmd.env_remove("BALENA_API_KEY")
        .env_remove("BALENARC_DATA_DIRECTORY")
        .env("HOME", &home)
        .args([
            "deploy",
            "gh_tester/testfleet",
            "--api-url",
            api.url(),
            "--json",
        ])
        .args([dir.path().join("project").to_str().unwrap(), "-p", &name]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    remove_images(&name);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(&key), "the token leaked: {all}");
    let releases = api.records("release");
    assert_eq!(releases.len(), 1, "{all}");
    assert_eq!(releases[0]["status"], "success");
}

#[test]
fn balenarc_balena_url_names_the_api_when_no_url_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = balena_compose()
        .env_remove("BALENA_API_URL")
        .env("BALENA_API_KEY", "some-key-0123")
        .env("BALENA_API_RETRIES", "0")
        .env("BALENARC_BALENA_URL", "balena-compose-test.invalid")
        .args([
            "deploy",
            "gh_tester/testfleet",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("https://api.balena-compose-test.invalid"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("some-key-0123"),
        "the key leaked: {stderr}"
    );
}

/// A `RUN` that prints pieces of a build secret (`tail -c 200`, `head -c 40`, a `cut` from the
/// middle): no 16-character piece of it reaches the plain output, the `--json` events or the
/// build log uploaded to the API.
#[tokio::test(flavor = "multi_thread")]
async fn printed_pieces_of_a_build_secret_are_hidden_everywhere() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    // 300 characters that look like a key, unique to this run.
    let secret: String = (0..300u32)
        .map(|i| {
            let n = (i * 7919 + pid) % 62;
            let n = u8::try_from(n).unwrap();
            char::from(match n {
                0..=9 => b'0' + n,
                10..=35 => b'a' + n - 10,
                _ => b'A' + n - 36,
            })
        })
        .collect();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  keyed:\n    build: .\n",
    );
    write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM local/amd64-busybox\nRUN echo run-{pid} && tail -c 200 /run/secrets/key && echo && head -c 40 /run/secrets/key && echo && cut -c 30-60 /run/secrets/key\n"
        ),
    );
    write(
        dir.path(),
        ".balena/balena.yml",
        "build-secrets:\n  global:\n    - source: key.txt\n      dest: key\n",
    );
    write(dir.path(), ".balena/secrets/key.txt", &secret);
    let pieces: Vec<&str> = (0..=secret.len() - 16)
        .map(|i| &secret[i..i + 16])
        .collect();
    let assert_hidden = |what: &str, text: &str| {
        assert!(
            text.contains(&format!("run-{pid}")),
            "the RUN did not run: {text}"
        );
        assert!(
            text.matches("[secret]").count() >= 3,
            "{what}: the three pieces are not shown hidden: {text}"
        );
        if let Some(piece) = pieces.iter().find(|p| text.contains(**p)) {
            panic!("{what} holds {piece:?}, a piece of the secret: {text}");
        }
    };
    let name = format!("deploypieces{pid}");

    let mut plain = support::balena_compose();
    plain.args([
        "build",
        dir.path().to_str().unwrap(),
        "-p",
        &name,
        "--nocache",
    ]);
    let plain = tokio::task::spawn_blocking(move || plain.output().unwrap())
        .await
        .unwrap();
    let plain_text = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(plain.status.success(), "{plain_text}");
    assert_hidden("the build's output", &plain_text);

    let key = api.api_key().to_owned();
    let out = deploy(
        &api,
        &key,
        &[
            dir.path().to_str().unwrap(),
            "-p",
            &name,
            "--build",
            "--nocache",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_hidden("the --json events", &String::from_utf8_lossy(&out.stdout));
    let images = api.records("image");
    let log = images[0]["build_log"].as_str().unwrap();
    assert_hidden("the uploaded build log", log);
    let _ = docker_cli(&["image", "rm", &format!("{name}_keyed")]);
}

/// A one-service project whose `web` builds from the target arch's busybox, with a file of
/// its context copied into the image.
fn reuse_project(root: &Path) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  web:\n    build: ./web\n",
    );
    write(
        root,
        "web/Dockerfile.template",
        "FROM local/%%BALENA_ARCH%%-busybox\nARG FLAVOUR=plain\nCOPY page.txt /page.txt\nRUN echo $FLAVOUR > /flavour\n",
    );
    write(root, "web/page.txt", "one\n");
}

/// Removes these images when dropped, so that a failing test leaves nothing behind either.
struct RemoveImages(Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        let mut args = vec!["image", "rm"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = docker_cli(&args);
    }
}

/// The fake API, a [`reuse_project`] and the name of its `web` image, for project `prefix` +
/// this process's id.
async fn reuse_setup(prefix: &str) -> (FakeApi, tempfile::TempDir, String, String) {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    reuse_project(dir.path());
    let name = format!("{prefix}{}", std::process::id());
    let image = format!("{name}_web");
    (api, dir, name, image)
}

/// `balena-compose build` of `root` as project `name`, which must succeed.
fn build_ok(root: &Path, name: &str, extra: &[&str]) {
    let out = balena_compose()
        .args(["build", root.to_str().unwrap(), "-p", name, "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `reuse` event of `service` in a deploy's events.
fn reuse_event(out: &Output, service: &str) -> Value {
    assert!(
        out.status.success(),
        "deploy: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_lines(&out.stdout);
    events
        .iter()
        .find(|e| e["event"] == "reuse" && e["service"] == service)
        .cloned()
        .unwrap_or_else(|| panic!("no reuse event for {service}: {events:?}"))
}

fn architecture(image: &str) -> String {
    let out = docker_cli(&["image", "inspect", "-f", "{{.Architecture}}", image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aarch64_build_is_not_pushed_to_an_amd64_fleet() {
    let (api, dir, name, image) = reuse_setup("reusearch").await;
    let _cleanup = RemoveImages(vec![image.clone()]);
    let binfmt = support::binfmt_lock(false);
    build_ok(dir.path(), &name, &["--arch", "aarch64", "--emulated"]);
    drop(binfmt);
    assert_eq!(architecture(&image), "arm64");

    let key = api.api_key().to_owned();
    let out = deploy(&api, &key, &[dir.path().to_str().unwrap(), "-p", &name]).await;
    let reuse = reuse_event(&out, "web");
    assert_eq!(reuse["reused"], false, "{reuse}");
    assert_eq!(
        reuse["message"],
        "building web (inputs differ: arch aarch64 ≠ amd64)"
    );
    // What the registry now serves for the release is an amd64 image.
    let images = api.records("image");
    assert_eq!(images.len(), 1, "{images:?}");
    let location = images[0]["is_stored_at__image_location"].as_str().unwrap();
    let digest = images[0]["content_hash"].as_str().unwrap();
    let pushed = format!("{location}@{digest}");
    let pulled = docker_cli(&["pull", &pushed]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(architecture(&pushed), "amd64");
    let _ = docker_cli(&["image", "rm", &pushed]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_reuses_an_image_only_while_its_inputs_match() {
    let (api, dir, name, image) = reuse_setup("reusematch").await;
    let _cleanup = RemoveImages(vec![image.clone()]);
    let project = dir.path().to_str().unwrap();
    build_ok(dir.path(), &name, &["--arch", "amd64"]);
    let key = api.api_key().to_owned();

    let out = deploy(&api, &key, &[project, "-p", &name]).await;
    let reuse = reuse_event(&out, "web");
    assert_eq!(reuse["reused"], true, "{reuse}");
    assert_eq!(reuse["message"], format!("reusing {image} (inputs match)"));
    assert!(
        !json_lines(&out.stdout)
            .iter()
            .any(|e| e["event"] == "start"),
        "a build started"
    );

    // A file of the context changed: built again.
    write(dir.path(), "web/page.txt", "two\n");
    let out = deploy(&api, &key, &[project, "-p", &name]).await;
    let reuse = reuse_event(&out, "web");
    assert_eq!(reuse["message"], "building web (inputs differ: context)");
    assert!(
        json_lines(&out.stdout)
            .iter()
            .any(|e| e["event"] == "start")
    );

    // A build arg changed: built again; the same one again: reused.
    let flavoured = [project, "-p", &name, "--build-arg", "FLAVOUR=spicy"];
    let out = deploy(&api, &key, &flavoured).await;
    let reuse = reuse_event(&out, "web");
    assert_eq!(reuse["message"], "building web (inputs differ: build-args)");
    let out = deploy(&api, &key, &flavoured).await;
    assert_eq!(reuse_event(&out, "web")["reused"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_without_build_labels_is_reused_only_for_the_fleets_platform() {
    let (api, dir, name, image) = reuse_setup("reuseunlabelled").await;
    let _cleanup = RemoveImages(vec![image.clone()]);
    let project = dir.path().to_str().unwrap();
    let key = api.api_key().to_owned();

    // Of another platform: built.
    assert!(
        docker_cli(&["tag", "local/aarch64-busybox", &image])
            .status
            .success()
    );
    let out = deploy(&api, &key, &[project, "-p", &name]).await;
    assert_eq!(
        reuse_event(&out, "web")["message"],
        "building web (no build labels and platform linux/arm64 differs from linux/amd64)"
    );
    assert_eq!(architecture(&image), "amd64");

    // Of the fleet's platform: reused, with a note.
    assert!(
        docker_cli(&["tag", "local/amd64-busybox", &image])
            .status
            .success()
    );
    let out = deploy(&api, &key, &[project, "-p", &name]).await;
    let reuse = reuse_event(&out, "web");
    assert_eq!(reuse["reused"], true, "{reuse}");
    assert!(
        reuse["message"].as_str().unwrap().starts_with(&format!(
            "reusing {image} (no build labels, platform linux/amd64 matches"
        )),
        "{reuse}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_arch_or_device_type_that_disagrees_with_the_fleet_is_an_error() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    reuse_project(dir.path());
    let key = api.api_key().to_owned();
    let project = dir.path().to_str().unwrap();
    for (flags, message) in [
        (
            ["--arch", "aarch64"],
            "--arch aarch64 disagrees with fleet gh_tester/testfleet, whose architecture is amd64",
        ),
        (
            ["-d", "raspberrypi4-64"],
            "--device-type raspberrypi4-64 disagrees with fleet gh_tester/testfleet, whose device type is intel-nuc",
        ),
    ] {
        let out = deploy(
            &api,
            &key,
            &[&[project, "-p", "reusewrongarch"][..], &flags[..]].concat(),
        )
        .await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(
            !json_lines(&out.stdout)
                .iter()
                .any(|e| e["event"] == "start" || e["event"] == "reuse"),
            "a build started"
        );
    }
    assert!(api.records("release").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_present_image_of_a_pulled_service_is_reused_only_for_the_fleets_platform() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Only on this daemon, never in the registry: a pull of it fails.
    let image = format!("127.0.0.1:5000/reuse-ext-{}:latest", std::process::id());
    write(
        dir.path(),
        "docker-compose.yml",
        &format!("services:\n  ext:\n    image: {image}\n"),
    );
    let project = dir.path().to_str().unwrap();
    let key = api.api_key().to_owned();

    assert!(
        docker_cli(&["tag", "local/aarch64-busybox", &image])
            .status
            .success()
    );
    let _cleanup = RemoveImages(vec![image.clone()]);
    let out = deploy(&api, &key, &[project, "-p", "reuseext"]).await;
    assert!(!out.status.success(), "the arm64 image was deployed");
    let reuse = json_lines(&out.stdout)
        .into_iter()
        .find(|e| e["event"] == "reuse")
        .unwrap();
    assert_eq!(
        reuse["message"],
        format!(
            "pulling {image} for ext (the local image's platform linux/arm64 differs from linux/amd64)"
        )
    );
    assert!(api.records("release").is_empty());

    assert!(
        docker_cli(&["tag", "local/amd64-busybox", &image])
            .status
            .success()
    );
    let out = deploy(&api, &key, &[project, "-p", "reuseext"]).await;
    let reuse = reuse_event(&out, "ext");
    assert_eq!(reuse["reused"], true, "{reuse}");
    assert_eq!(
        reuse["message"],
        format!("reusing {image} (platform linux/amd64 matches)")
    );
}

/// `deploy --service web` after a full deploy: only web is built (worker, now broken, is
/// not touched) and pushed; the new release links the current release's worker and ext
/// images as they are and records the rebuilt services in a release tag. The balena CLI's
/// `--source` names the project.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_service_rebuilds_one_service_and_reuses_the_others() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), false);
    let name = format!("deploysvc{}", std::process::id());
    let key = api.api_key().to_owned();
    let project_dir = dir.path().to_str().unwrap();
    let no_release = deploy(&api, &key, &[project_dir, "-p", &name, "-s", "web"]).await;
    let stderr = String::from_utf8_lossy(&no_release.stderr);
    assert!(!no_release.status.success());
    assert!(stderr.contains("has no successful release"), "{stderr}");
    assert!(api.records("image").is_empty(), "nothing recorded");
    let before = deploy(&api, &key, &[project_dir, "-p", &name, "--build"]).await;
    project(dir.path(), true);
    let after = deploy(
        &api,
        &key,
        &[
            "--source",
            project_dir,
            "-p",
            &name,
            "--build",
            "--service",
            "web",
        ],
    )
    .await;
    remove_images(&name);
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    let stderr = String::from_utf8_lossy(&after.stderr);
    assert!(after.status.success(), "{stderr}");

    let releases = api.records("release");
    assert_eq!(releases.len(), 2);
    assert!(
        releases.iter().all(|r| r["status"] == "success"),
        "{releases:?}"
    );
    let (first, second) = (releases[0]["id"].clone(), releases[1]["id"].clone());
    let images = api.records("image");
    assert_eq!(images.len(), 4, "only web got a new image: {images:?}");
    let links = api.records("image__is_part_of__release");
    let linked = |release: &Value| -> Vec<Value> {
        links
            .iter()
            .filter(|l| &l["is_part_of__release"] == release)
            .map(|l| l["image"].clone())
            .collect()
    };
    let (old, new) = (linked(&first), linked(&second));
    assert_eq!(new.len(), 3, "{links:?}");
    assert_eq!(
        old.iter().filter(|image| new.contains(image)).count(),
        2,
        "worker and ext are the current release's images"
    );
    let tags = api.records("release_tag");
    assert!(
        tags.iter().any(|t| t["release"] == second
            && t["tag_key"] == "balena-compose.rebuilt-services"
            && t["value"] == "web"),
        "{tags:?}"
    );
}

/// `deploy FLEET IMAGE`: the image (here only on the daemon) is released as the single
/// service `main` of the default composition, pushed and recorded; with --build it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_fleet_image_releases_that_image_as_one_service() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let key = api.api_key().to_owned();
    let image = format!("deployimage{}:v1", std::process::id());
    assert!(
        docker_cli(&["tag", "local/amd64-busybox", &image])
            .status
            .success()
    );
    let out = deploy(&api, &key, &[&image]).await;
    let refused = deploy(&api, &key, &[&image, "--build"]).await;
    let _ = docker_cli(&["image", "rm", &image]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Creating default composition with image: \\\"{image}\\\""
        )),
        "{stdout}"
    );
    let releases = api.records("release");
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["status"], "success");
    let services = &releases[0]["composition"]["services"];
    assert_eq!(
        services.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["main"]
    );
    assert_eq!(services["main"]["image"], image.as_str());
    let images = api.records("image");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["status"], "success", "{:?}", images[0]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--build cannot be used"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
