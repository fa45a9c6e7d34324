//! `balena-compose build` end to end, through the binary, against the private daemon and
//! registries of `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use support::docker_ok;

mod support;

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

fn balena_compose(args: &[&str]) -> Output {
    Command::cargo_bin("balena-compose")
        .unwrap()
        .env("DOCKER_HOST", docker_host())
        // The user's docker config must not leak into the tests.
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("balena-compose-tests-no-docker-config"),
        )
        .args(args)
        .output()
        .unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs a command in a container of `image` (through qemu for arm64 images) and returns its
/// stdout.
fn run_in(image: &str, arm64: bool, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("/usr/bin/docker");
    cmd.env("DOCKER_HOST", docker_host())
        .args(["run", "--rm", "--network", "none"]);
    if arm64 {
        cmd.args([
            "-v",
            "/usr/bin/qemu-aarch64-static:/usr/bin/qemu-aarch64-static:ro",
            "--entrypoint",
            "/usr/bin/qemu-aarch64-static",
            image,
            "/bin/busybox",
        ]);
    } else {
        cmd.args(["--entrypoint", "/bin/busybox", image]);
    }
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The three-service project of the issue: a template, an arch-specific Dockerfile, an
/// external image (a manifest list, pulled as its arm64 variant) and build variables from
/// balena.yml, built for aarch64 under emulation.
#[test]
fn three_services_for_aarch64_emulated_with_build_variables() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "docker-compose.yml",
        "services:\n  tmpl:\n    build: ./tmpl\n  archy:\n    build:\n      context: ./archy\n      args:\n        FROM_COMPOSE: compose\n        OVERRIDDEN: compose\n  ext:\n    image: 127.0.0.1:5000/local/busybox-multi\n",
    );
    write(
        root,
        "tmpl/Dockerfile.template",
        "FROM local/%%BALENA_ARCH%%-busybox\nRUN echo %%BALENA_SERVICE_NAME%%-%%BALENA_ARCH%%-%%BALENA_MACHINE_NAME%% > /info\n",
    );
    write(
        root,
        "archy/Dockerfile.amd64",
        "FROM local/amd64-busybox\nRUN echo wrong > /which\n",
    );
    write(
        root,
        "archy/Dockerfile.aarch64",
        "FROM local/aarch64-busybox\nARG FROM_COMPOSE\nARG OVERRIDDEN\nARG GLOBAL\nRUN echo \"aarch64 $FROM_COMPOSE $OVERRIDDEN $GLOBAL\" > /which\n",
    );
    write(
        root,
        ".balena/balena.yml",
        "build-variables:\n  global: [GLOBAL=from-balena-yml]\n  services:\n    archy: {OVERRIDDEN: balena-yml}\n",
    );
    let project = format!("e2e{}", std::process::id());

    let out = balena_compose(&[
        "build",
        root.to_str().unwrap(),
        "--arch",
        "aarch64",
        "--emulated",
        "-p",
        &project,
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "build failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let events = json_lines(&out);
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    let services = summary["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    assert!(services.iter().all(|s| s["ok"] == true), "{summary}");
    // Every line is an event of the documented kinds, and every service started and finished.
    for event in &events {
        let kind = event["event"].as_str().unwrap();
        assert!(
            [
                "start", "step", "log", "pull", "warning", "done", "error", "summary", "reuse"
            ]
            .contains(&kind),
            "{event}"
        );
    }
    for service in ["tmpl", "archy", "ext"] {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "start" && e["service"] == service)
        );
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "done" && e["service"] == service)
        );
    }
    let start_tmpl = events
        .iter()
        .find(|e| e["event"] == "start" && e["service"] == "tmpl")
        .unwrap();
    assert_eq!(start_tmpl["resolver"], "Dockerfile.template");
    assert_eq!(start_tmpl["emulated"], true);
    // The qemu prefix of emulated RUNs is not shown: the RUN reads as the user wrote it.
    let runs: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step" && e["service"] == "tmpl")
        .filter_map(|e| e["instruction"].as_str())
        .filter(|i| i.starts_with("RUN"))
        .collect();
    assert_eq!(runs, ["RUN echo tmpl-aarch64-generic-aarch64 > /info"]);

    let tmpl = format!("{project}_tmpl");
    assert_eq!(
        run_in(&tmpl, true, &["cat", "/info"]).trim(),
        "tmpl-aarch64-generic-aarch64"
    );
    assert_eq!(
        run_in(&format!("{project}_archy"), true, &["cat", "/which"]).trim(),
        "aarch64 compose balena-yml from-balena-yml"
    );
    let ext = events
        .iter()
        .find(|e| e["event"] == "done" && e["service"] == "ext")
        .unwrap();
    let inspect = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .args([
            "image",
            "inspect",
            "-f",
            "{{.Architecture}}",
            ext["id"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "arm64",
        "the arm64 variant was pulled"
    );
}

/// A base image in the password-protected registry: built with --registry-secrets, refused
/// with a clear error without them. The local copy of the base is removed first, and the
/// build pulls, so no cache hides a missing credential.
#[test]
fn private_registry_base_needs_the_registry_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "Dockerfile",
        "FROM 127.0.0.1:5001/private/amd64-busybox\nRUN echo private > /from\n",
    );
    let secrets = root.join("registry-secrets.yml");
    std::fs::write(
        &secrets,
        "'127.0.0.1:5001':\n  username: balena\n  password: balena-test-password\n",
    )
    .unwrap();
    let project = format!("private{}", std::process::id());
    let base = "127.0.0.1:5001/private/amd64-busybox:latest";
    let _ = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .args(["image", "rm", "-f", base])
        .output();

    let out = balena_compose(&["build", root.to_str().unwrap(), "-p", &project, "--pull"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not authorized") && stderr.contains("127.0.0.1:5001"),
        "{stderr}"
    );

    let out = balena_compose(&[
        "build",
        root.to_str().unwrap(),
        "-p",
        &project,
        "--pull",
        "--registry-secrets",
        secrets.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("balena-test-password"),
        "the password leaked: {stderr}"
    );
    assert_eq!(
        run_in(&format!("{project}_main"), false, &["cat", "/from"]).trim(),
        "private"
    );
}

#[test]
fn a_failing_service_does_not_stop_the_others_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "docker-compose.yml",
        "services:\n  good:\n    build: ./good\n  bad:\n    build: ./bad\n",
    );
    write(
        root,
        "good/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo good > /good\n",
    );
    write(
        root,
        "bad/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo about to fail && exit 3\n",
    );
    let project = format!("fail{}", std::process::id());
    let out = balena_compose(&[
        "build",
        root.to_str().unwrap(),
        "-p",
        &project,
        "--arch",
        "amd64",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("service \"bad\" failed"), "{stderr}");
    assert!(stderr.contains("returned a non-zero code: 3"), "{stderr}");
    assert!(
        stderr.contains("about to fail"),
        "the failing step's output is shown: {stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("good") && l.ends_with("ok")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("bad") && l.ends_with("FAILED")),
        "{stdout}"
    );
    assert_eq!(
        run_in(&format!("{project}_good"), false, &["cat", "/good"]).trim(),
        "good"
    );

    // --json: the summary names the failure.
    let out = balena_compose(&["build", root.to_str().unwrap(), "-p", &project, "--json"]);
    assert!(!out.status.success());
    let events = json_lines(&out);
    let summary = events.last().unwrap();
    let bad = summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "bad")
        .unwrap();
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap().contains("non-zero code: 3"),
        "{bad}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "error" && e["service"] == "bad")
    );
}

#[test]
fn foreign_arch_without_emulated_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM local/aarch64-busybox\n");
    let out = balena_compose(&["build", dir.path().to_str().unwrap(), "--arch", "aarch64"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("add --emulated"), "{stderr}");
}

#[test]
fn unknown_arch_lists_the_valid_ones() {
    let out = balena_compose(&["build", ".", "--arch", "arm64"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("amd64, aarch64, armv7hf, i386, rpi"),
        "{stderr}"
    );
}

/// Build secrets are served to the build (through BuildKit on this Docker daemon) and never
/// printed; `tests/secrets.rs` searches the image and logs for them too.
#[test]
fn build_secrets_are_served_to_runs_and_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "Dockerfile",
        "FROM local/amd64-busybox\nRUN test -s /run/secrets/token && echo has-token\n",
    );
    write(
        root,
        ".balena/balena.yml",
        "build-secrets:\n  global:\n    - source: token.txt\n      dest: token\n",
    );
    write(
        root,
        ".balena/secrets/token.txt",
        "s3cr3t-build-token-value",
    );
    let project = format!("servedsecret{}", std::process::id());
    // --nocache: a cached RUN (from an earlier run) prints nothing.
    let out = balena_compose(&[
        "build",
        root.to_str().unwrap(),
        "-p",
        &project,
        "--json",
        "--nocache",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains("s3cr3t-build-token-value"),
        "the secret leaked: {all}"
    );
    let events = json_lines(&out);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == "has-token"),
        "{all}"
    );
    let _ = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .args(["image", "rm", "-f", &format!("{project}_main")])
        .output();
}

#[test]
fn a_daemon_that_is_not_there_is_a_clear_error() {
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args([
            "build",
            ".",
            "--docker-host",
            "unix:///nonexistent/docker.sock",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Docker daemon"),
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
}

fn now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{:.3}", since.as_secs_f64())
}

/// The daemon's image events between `since` and `until` that name `image`.
fn image_events(image: &str, since: &str, until: &str) -> Vec<String> {
    let format = "{{.Action}} {{.Actor.Attributes.name}}";
    let window = ["--since", since, "--until", until];
    let events = docker_ok(
        &[
            &["events"][..],
            &window,
            &["--filter", "type=image", "--format", format],
        ]
        .concat(),
    );
    events
        .lines()
        .filter(|l| l.contains(image))
        .map(str::to_owned)
        .collect()
}

/// The no-op path: a second `build` of an unchanged project sends no context (no build
/// starts, the daemon tags nothing, the image id stays); `--nocache` builds again.
#[test]
fn an_unchanged_project_is_not_built_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "docker-compose.yml",
        "services:\n  app:\n    build: ./app\n",
    );
    write(
        root,
        "app/Dockerfile",
        "FROM local/amd64-busybox\nCOPY data.txt /data.txt\nRUN cat /data.txt\n",
    );
    write(root, "app/data.txt", "unchanged\n");
    let project = format!("noop{}", std::process::id());
    let image = format!("{project}_app");
    let build = |extra: &[&str]| {
        let mut args = vec!["build", root.to_str().unwrap(), "-p", &project, "--json"];
        args.extend_from_slice(extra);
        let out = balena_compose(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out)
    };
    let first = build(&[]);
    assert!(first.iter().any(|e| e["event"] == "start"), "{first:?}");
    let image_id = || docker_ok(&["image", "inspect", "-f", "{{.Id}}", &image]);
    let built = image_id();
    let labels: Value = serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        &image,
    ]))
    .unwrap();
    assert_eq!(labels["io.balena-compose.arch"], "amd64", "{labels}");
    assert_eq!(labels["io.balena-compose.device-type"], "generic-amd64");
    assert_eq!(
        labels["io.balena-compose.inputs"].as_str().map(str::len),
        Some(64),
        "{labels}"
    );

    let since = now();
    let second = build(&[]);
    let until = now();
    assert!(
        !second
            .iter()
            .any(|e| e["event"] == "start" || e["event"] == "step"),
        "the second build sent its context: {second:?}"
    );
    let reuse = second.iter().find(|e| e["event"] == "reuse").unwrap();
    assert_eq!(reuse["reused"], true);
    assert_eq!(reuse["message"], format!("reusing {image} (inputs match)"));
    let summary = second.last().unwrap();
    assert_eq!(summary["services"][0]["reused"], true);
    assert_eq!(summary["services"][0]["id"], built.as_str());
    assert_eq!(image_id(), built);
    let events = image_events(&image, &since, &until);
    assert!(events.is_empty(), "the daemon built: {events:?}");

    // --nocache (and --pull) always build.
    let forced = build(&["--nocache"]);
    assert!(forced.iter().any(|e| e["event"] == "start"), "{forced:?}");
    assert!(!forced.iter().any(|e| e["event"] == "reuse"), "{forced:?}");
    let _ = support::docker_cli(&["image", "rm", &image]);
}
