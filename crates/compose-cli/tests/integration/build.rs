//! `balena-compose build` end to end, through the binary, against the private daemon and
//! registries of `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use support::{docker_host, docker_ok, json_lines, no_docker_config, write};

fn balena_compose(args: &[&str]) -> Output {
    Command::cargo_bin("balena-compose")
        .unwrap()
        .env("DOCKER_HOST", docker_host())
        // The user's docker config must not leak into the tests.
        .env("DOCKER_CONFIG", no_docker_config())
        .args(args)
        .output()
        .unwrap()
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
        // The rewrite (binfmt_misc is registered by docker-env: --emulated would use it).
        "--emulation",
        "rewrite",
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
    let events = json_lines(&out.stdout);
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
    // BuildKit's words ("exit code: 3"), or the classic builder's ("returned a non-zero
    // code: 3").
    let exit_3 = |text: &str| text.contains("exit code: 3") || text.contains("non-zero code: 3");
    assert!(exit_3(&stderr), "{stderr}");
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
    let events = json_lines(&out.stdout);
    let summary = events.last().unwrap();
    let bad = summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "bad")
        .unwrap();
    assert_eq!(bad["ok"], false);
    assert!(exit_3(bad["error"].as_str().unwrap()), "{bad}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "error" && e["service"] == "bad")
    );
}

/// Without --emulated, a foreign target on a daemon that cannot run it fails before building,
/// saying how to get emulation. The daemon is the TLS one of `scripts/docker-env`: a remote
/// daemon, for which this machine's binfmt_misc (registered by `docker-env up`) does not count.
#[test]
fn foreign_arch_without_emulated_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM local/aarch64-busybox\n");
    let project = format!("foreignrefused{}", std::process::id());
    let root = dir.path().to_str().unwrap();
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    for target in [&["--arch", "aarch64"][..], &["-d", "raspberrypi4-64"][..]] {
        let out = Command::cargo_bin("balena-compose")
            .unwrap()
            .env("DOCKER_HOST", env("BALENA_COMPOSE_TEST_TLS_HOST"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", env("BALENA_COMPOSE_TEST_TLS_CERTS"))
            .env("DOCKER_CONFIG", support::no_docker_config())
            .args(["build", root, "-p", &project])
            .args(target)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot run aarch64 build steps")
                && stderr.contains("it is a remote daemon")
                && stderr.contains("Add --emulated")
                && stderr.contains("emulation setup"),
            "{stderr}"
        );
    }
    let out = balena_compose(&[
        "build",
        root,
        "-p",
        &project,
        "--arch",
        "amd64",
        "-d",
        "raspberrypi4-64",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("architecture amd64 does not match the device type raspberrypi4-64"),
        "{stderr}"
    );
    let inspect = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .args(["image", "inspect", &format!("{project}_main")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "nothing was built");
}

#[test]
fn unknown_arch_lists_the_valid_ones() {
    let out = balena_compose(&["build", ".", "--arch", "aarch46"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("amd64, aarch64, armv7hf, i386, rpi"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean aarch64?"), "{stderr}");

    // An alias that means one architecture is that one: a project that only has a
    // Dockerfile.aarch64 resolves for `linux/arm64` and `arm64`, not for `x86_64`.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile.aarch64",
        "FROM local/arm64-busybox\n",
    );
    let resolve = |arch: &str| {
        balena_compose(&[
            "resolve",
            dir.path().to_str().unwrap(),
            "--dry-run",
            "--arch",
            arch,
        ])
    };
    for arch in ["linux/arm64", "arm64"] {
        let out = resolve(arch);
        assert!(
            out.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!resolve("x86_64").status.success());
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
    let events = json_lines(&out.stdout);
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

/// `balena-compose build ROOT -p PROJECT --json` running, its stdout and stderr piped.
fn spawn_json_build(root: &Path, project: &str) -> std::process::Child {
    support::balena_compose()
        .args(["build", root.to_str().unwrap(), "-p", project, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM (`timeout`, CI cancellation) stops a build the way Ctrl-C does: every service is
/// cancelled, the summary says so, and the exit status is 143.
#[test]
fn sigterm_cancels_the_build_and_exits_143() {
    use std::io::BufRead as _;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let nonce = std::process::id();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  slow:\n    build: ./slow\n",
    );
    write(
        dir.path(),
        "slow/Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN echo {nonce} && sleep 300\n"),
    );
    let project = format!("buildterm{nonce}");
    let mut child = spawn_json_build(dir.path(), &project);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                lines.lock().unwrap().push(line.unwrap());
            }
        })
    };
    let running = support::wait_until(Duration::from_secs(120), || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&nonce.to_string()))
    });
    assert!(
        running,
        "the RUN never started: {:?}",
        lines.lock().unwrap()
    );
    let killed = std::process::Command::new("/bin/kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let signalled = Instant::now();
    let exited = support::wait_until(Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(exited, "build still ran 30 s after SIGTERM: {stderr}");
    assert!(signalled.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let lines = lines.lock().unwrap();
    let summary: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary", "{lines:?}");
    assert_eq!(summary["services"][0]["ok"], false, "{summary}");
    assert_eq!(summary["services"][0]["error"], "cancelled", "{summary}");
}

/// `docker ARGS` against the private daemon (with the Docker config dir `config`), which
/// must succeed; its trimmed stdout.
fn docker_ok_in(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `balena-compose build DIR -p PROJECT --arch aarch64 --emulated EXTRA…`.
fn build_emulated_aarch64(dir: &Path, project: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "build",
        dir.to_str().unwrap(),
        "-p",
        project,
        "--arch",
        "aarch64",
        "--emulated",
    ];
    args.extend_from_slice(extra);
    let _binfmt = support::binfmt_lock(false);
    balena_compose(&args)
}

/// A build for aarch64 `FROM` a multi-arch image whose amd64 variant the daemon already holds
/// under that name (a user ran it once) builds on its arm64 variant, not silently on the
/// amd64 one. The test publishes its own manifest list (amd64 + arm64 busybox) under a unique
/// name, so as not to disturb other tests using `local/busybox-multi`.
#[test]
fn a_foreign_build_uses_the_base_image_of_its_platform_only() {
    let config = tempfile::tempdir().unwrap();
    let config = config.path();
    let id = std::process::id();
    let repo = format!("127.0.0.1:5000/local/platform-base-{id}");
    publish_busybox_list_dirty(config, &repo);
    let arm64_layer = first_layer("local/aarch64-busybox");
    assert_ne!(arm64_layer, first_layer("local/amd64-busybox"));

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile",
        &format!("FROM {repo}\nLABEL platform-test={id}\n"),
    );
    let project = format!("platformbase{id}");
    let out = build_emulated_aarch64(dir.path(), &project, &["--json"]);
    let built = format!("{project}_main");
    let layer = first_layer(&built);
    untag(config, &repo, &built);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        layer, arm64_layer,
        "the built image is on the arm64 busybox"
    );
    let events = json_lines(&out.stdout);
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains(&repo) && m.contains("linux/amd64"))),
        "a warning says the amd64 variant was replaced: {events:?}"
    );
}

/// The same from the registry that wants credentials: the right variant is pulled with the
/// registry secrets, and without them the build fails naming the image and both platforms.
#[test]
fn a_private_base_of_the_wrong_platform_is_pulled_with_the_registry_secrets() {
    let config = tempfile::tempdir().unwrap();
    let config = config.path();
    docker_ok_in(
        config,
        &[
            "login",
            "-u",
            "balena",
            "-p",
            "balena-test-password",
            "127.0.0.1:5001",
        ],
    );
    let id = std::process::id();
    let repo = format!("127.0.0.1:5001/private/platform-base-{id}");
    publish_busybox_list_dirty(config, &repo);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", &format!("FROM {repo}\n"));
    let secrets = dir.path().join("registry-secrets.yml");
    std::fs::write(
        &secrets,
        "'127.0.0.1:5001':\n  username: balena\n  password: balena-test-password\n",
    )
    .unwrap();
    let project = format!("platformprivate{id}");
    let refused = build_emulated_aarch64(dir.path(), &project, &[]);
    let out = build_emulated_aarch64(
        dir.path(),
        &project,
        &["--registry-secrets", secrets.to_str().unwrap()],
    );
    let built = format!("{project}_main");
    let layer = first_layer(&built);
    untag(config, &repo, &built);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!("the base image \"{repo}\" on the Docker daemon is linux/amd64, not the build's linux/arm64"))
            && stderr.contains("not authorized"),
        "{stderr}"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layer, first_layer("local/aarch64-busybox"));
}

/// Publishes `REPO:latest`, a manifest list of the amd64 and arm64 busyboxes under a name of
/// the test's own (so other tests' `local/busybox-multi` is left alone), and leaves its amd64
/// variant under that name on the daemon, as after a user ran it once.
fn publish_busybox_list_dirty(config: &Path, repo: &str) {
    let list = format!("{repo}:latest");
    let children = [format!("{repo}:amd64"), format!("{repo}:arm64")];
    for (child, local) in children
        .iter()
        .zip(["local/amd64-busybox", "local/aarch64-busybox"])
    {
        docker_ok_in(config, &["tag", local, child]);
        docker_ok_in(config, &["push", child]);
        docker_ok_in(config, &["rmi", child]);
    }
    let create = [
        "manifest",
        "create",
        "--insecure",
        &list,
        &children[0],
        &children[1],
    ];
    docker_ok_in(config, &create);
    docker_ok_in(
        config,
        &["manifest", "push", "--insecure", "--purge", &list],
    );
    docker_ok_in(config, &["pull", "--platform", "linux/amd64", &list]);
    let arch = docker_ok_in(
        config,
        &["image", "inspect", "-f", "{{.Architecture}}", &list],
    );
    assert_eq!(arch, "amd64");
}

/// The first layer of `image`; empty when the daemon has no such image.
fn first_layer(image: &str) -> String {
    let out = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .args([
            "image",
            "inspect",
            "-f",
            "{{index .RootFS.Layers 0}}",
            image,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Untags `built` and every name of `repo` (by name and digest, never by id: the ids are
/// local/*-busybox's).
fn untag(config: &Path, repo: &str, built: &str) {
    let digests = docker_ok_in(
        config,
        &[
            "images",
            "--digests",
            "--format",
            "{{.Repository}}@{{.Digest}}",
            repo,
        ],
    );
    let mut names = vec![built.to_owned(), format!("{repo}:latest")];
    names.extend(
        digests
            .lines()
            .filter(|l| !l.ends_with("<none>"))
            .map(str::to_owned),
    );
    let _ = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", docker_host())
        .arg("rmi")
        .args(&names)
        .output();
}

/// A local base image of another platform whose registry has no variant of the target's
/// fails the build, naming the image and both platforms.
#[test]
fn a_base_image_without_the_target_platform_fails_naming_both() {
    let config = tempfile::tempdir().unwrap();
    let base = "127.0.0.1:5000/local/amd64-busybox:latest";
    docker_ok_in(config.path(), &["pull", base]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "ARG BASE\nFROM $BASE\n");
    let project = format!("platformmissing{}", std::process::id());
    let out = build_emulated_aarch64(
        dir.path(),
        &project,
        &["--build-arg", &format!("BASE={base}")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the base image \"{base}\" on the Docker daemon is linux/amd64, not the build's linux/arm64")),
        "{stderr}"
    );
    assert_eq!(
        docker_ok_in(
            config.path(),
            &["image", "inspect", "-f", "{{.Architecture}}", base]
        ),
        "amd64"
    );
}

/// Descriptors running out (a low `ulimit -n`) is named, with the limit and the way out,
/// wherever in the build it happens.
#[test]
fn too_many_open_files_is_named_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  a:\n    build: ./a\n  b:\n    build: ./b\n",
    );
    for service in ["a", "b"] {
        write(
            dir.path(),
            &format!("{service}/Dockerfile"),
            "FROM local/amd64-busybox\nRUN true\n",
        );
    }
    let project = format!("buildemfile{}", std::process::id());
    let bin = assert_cmd::cargo::cargo_bin("balena-compose");
    let mut failed = 0;
    // Where the descriptors run out depends on the limit: the runtime, the daemon's
    // connection, the contexts. Each of those failures must say so.
    for limit in ["8", "10", "12"] {
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", r#"ulimit -n "$1" && shift && exec "$@""#, "sh", limit])
            .arg(&bin)
            .args(["build", dir.path().to_str().unwrap(), "-p", &project])
            .env("DOCKER_HOST", docker_host())
            .env("DOCKER_CONFIG", support::no_docker_config())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            continue;
        }
        failed += 1;
        assert!(stderr.contains("os error 24"), "limit {limit}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "too many open files (limit {limit}): raise it with `ulimit -n`"
            )),
            "limit {limit}: {stderr}"
        );
    }
    assert!(failed > 0, "no limit was low enough to fail the build");
    for service in ["a", "b"] {
        let _ = support::docker_cli(&["image", "rm", &format!("{project}_{service}")]);
    }
}

/// `balena-compose build --json | head -0`: the reader of standard output is gone before the
/// first line. The build goes on and ends as it would, without a panic.
#[test]
fn a_closed_standard_output_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  a:\n    build: ./a\n",
    );
    write(
        dir.path(),
        "a/Dockerfile",
        "FROM local/amd64-busybox\nRUN true\n",
    );
    let project = format!("buildclosed{}", std::process::id());
    let mut child = spawn_json_build(dir.path(), &project);
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    let _ = support::docker_cli(&["image", "rm", &format!("{project}_a")]);
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
        json_lines(&out.stdout)
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

/// A project of two services whose `worker` cannot build: anything that touches it fails.
fn web_and_broken_worker(root: &Path) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  web:\n    build: ./web\n  worker:\n    build: ./worker\n",
    );
    write(
        root,
        "web/Dockerfile",
        "FROM local/amd64-busybox\nARG FLAVOUR\nRUN echo \"log-line-$FLAVOUR\" && echo \"$FLAVOUR\" > /flavour\n",
    );
    write(
        root,
        "worker/Dockerfile",
        "FROM local/amd64-busybox\nRUN exit 7\n",
    );
}

/// `--service` builds that service only; the balena CLI's spellings (`-n`, `-B`, `-e`,
/// `--deviceType`, `--no-cache`, `--nologs`) work as their canonical flags do.
#[test]
fn service_flag_builds_only_that_service_under_the_balena_cli_spellings() {
    let dir = tempfile::tempdir().unwrap();
    web_and_broken_worker(dir.path());
    let name = format!("svcflag{}", std::process::id());
    let out = balena_compose(&[
        "build",
        dir.path().to_str().unwrap(),
        "-s",
        "web",
        "-n",
        &name,
        "-B",
        "FLAVOUR=mint",
        "-e",
        "--deviceType",
        "generic-amd64",
        "--no-cache",
        "--nologs",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let web = format!("{name}_web");
    let flavour = out
        .status
        .success()
        .then(|| run_in(&web, false, &["cat", "/flavour"]));
    let _ = support::docker_cli(&["image", "rm", &web]);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(flavour.unwrap().trim(), "mint");
    assert!(
        !stderr.contains("log-line-mint"),
        "--nologs shows the log: {stderr}"
    );
    assert!(!stderr.contains("worker"), "worker was touched: {stderr}");
    let worker = support::docker_cli(&["image", "inspect", &format!("{name}_worker")]);
    assert!(!worker.status.success(), "worker was built");

    let out = balena_compose(&["build", dir.path().to_str().unwrap(), "--service", "wbe"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--service wbe") && stderr.contains("web, worker"),
        "{stderr}"
    );
}

/// `build web` where `web` is a service of the project here, not a project: the user meant
/// `--service web`, and nothing is built.
#[test]
fn a_service_name_given_as_the_project_asks_for_service() {
    let dir = tempfile::tempdir().unwrap();
    web_and_broken_worker(dir.path());
    let name = format!("neverbuilt{}", std::process::id());
    let out = support::balena_compose()
        .current_dir(dir.path())
        .args(["build", "web", "-p", &name])
        .output()
        .unwrap();
    let built = support::docker_cli(&["image", "inspect", &format!("{name}_main")]);
    let _ = support::docker_cli(&["image", "rm", &format!("{name}_main")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("did you mean --service web?"), "{stderr}");
    assert!(!built.status.success(), "web was built as a project");
}

/// A project without a compose file inside one that has one is probably the wrong folder:
/// warned about as the balena CLI words it, unless --noparent-check. docker compose's `-p`
/// before the subcommand names the images; --squash is refused by this daemon.
#[test]
fn a_compose_file_in_the_parent_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    web_and_broken_worker(dir.path());
    let sub = dir.path().join("web");
    let name = format!("parentchk{}", std::process::id());
    let build = |extra: &[&str]| {
        let mut cmd = support::balena_compose();
        cmd.args(["-p", &name, "build", sub.to_str().unwrap()])
            .args(extra);
        cmd.output().unwrap()
    };
    let warned = build(&[]);
    let silent = build(&["--noparent-check"]);
    let squash = build(&["--squash"]);
    let image = support::docker_cli(&["image", "inspect", &format!("{name}_main")]);
    let _ = support::docker_cli(&["image", "rm", &format!("{name}_main")]);
    let warned_err = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{warned_err}");
    assert!(
        image.status.success(),
        "-p before build did not name the image"
    );
    assert!(
        warned_err.contains("\"docker-compose.yml\" file found in parent directory")
            && warned_err.contains("--noparent-check"),
        "{warned_err}"
    );
    let silent_err = String::from_utf8_lossy(&silent.stderr);
    assert!(silent.status.success(), "{silent_err}");
    assert!(!silent_err.contains("parent directory"), "{silent_err}");
    let squash_err = String::from_utf8_lossy(&squash.stderr);
    assert!(!squash.status.success());
    assert!(
        squash_err.contains("--squash is not supported by this daemon"),
        "{squash_err}"
    );
}

/// `--help` shows the canonical spellings only; the balena CLI's are hidden.
#[test]
fn help_shows_only_the_canonical_spellings() {
    for command in ["build", "deploy"] {
        let out = support::balena_compose()
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(
            help.contains("--device-type") && help.contains("--build-arg"),
            "{help}"
        );
        for hidden in [
            "deviceType",
            "buildArg",
            "projectName",
            "--no-cache",
            "-B,",
            "-n,",
            "-e,",
            "dockerHost",
            "dockerPort",
            "--source",
        ] {
            assert!(
                !help.contains(hidden),
                "{command} --help shows {hidden}:\n{help}"
            );
        }
    }
}

/// The balena CLI's `--dockerfile`: a project without a compose file builds its service
/// `main` with that Dockerfile; one outside the project is refused; a compose file wins, with
/// a warning.
#[test]
fn dockerfile_flag_picks_the_dockerfile_of_a_project_without_compose_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("plain");
    write(&root, "marker", "from-bar\n");
    write(
        &root,
        "bar/Dockerfile",
        "FROM local/amd64-busybox\nCOPY marker /marker\n",
    );
    let name = format!("dockerfileflag{}", std::process::id());
    let project = root.to_str().unwrap();
    let out = balena_compose(&[
        "build",
        project,
        "--dockerfile",
        "bar/Dockerfile",
        "-p",
        &name,
    ]);
    let image = format!("{name}_main");
    let marker = out
        .status
        .success()
        .then(|| run_in(&image, false, &["cat", "/marker"]));
    let _ = support::docker_cli(&["image", "rm", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(marker.unwrap(), "from-bar\n");

    let outside = balena_compose(&["build", project, "--dockerfile", "../bar/Dockerfile"]);
    assert!(!outside.status.success());
    let stderr = String::from_utf8_lossy(&outside.stderr);
    assert!(stderr.contains("inside, the project directory"), "{stderr}");

    web_and_broken_worker(&root);
    let ignored = balena_compose(&[
        "build",
        project,
        "--dockerfile",
        "bar/Dockerfile",
        "-s",
        "web",
        "-p",
        &name,
    ]);
    let _ = support::docker_cli(&["image", "rm", &format!("{name}_web")]);
    let stderr = String::from_utf8_lossy(&ignored.stderr);
    assert!(ignored.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Ignoring alternative dockerfile \"bar/Dockerfile\" because composition file \"docker-compose.yml\" exists"
        ),
        "{stderr}"
    );
}

/// `balena-compose build` of `root` with `env` set, in plain (non-terminal) output.
fn build_with_env(root: &Path, project: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::cargo_bin("balena-compose").unwrap();
    cmd.env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config())
        .env_remove("DOCKER_BUILDKIT");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.args([
        "build",
        root.to_str().unwrap(),
        "-p",
        project,
        "--arch",
        "amd64",
    ])
    .args(extra)
    .output()
    .unwrap()
}

/// What the command printed, on stdout and stderr.
fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The parent image the classic builder records (one image per step); BuildKit records none.
fn parent_of(image: &str) -> String {
    docker_ok(&["image", "inspect", "--format", "{{.Parent}}", image])
        .trim()
        .to_owned()
}

/// Builds go through the daemon's BuildKit by default, with output that reads like the
/// classic builder's (steps and the RUN's output, none of BuildKit's own steps unless
/// `--progress plain`); docker's own `DOCKER_BUILDKIT=0` switches to the classic builder.
#[test]
fn buildkit_by_default_and_the_classic_builder_with_docker_buildkit_0() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "docker-compose.yml",
        "services:\n  web:\n    build: ./web\n",
    );
    write(
        root,
        "web/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo printed by the run && echo built > /which\n",
    );
    let project = format!("bkdefault{}", std::process::id());
    let image = format!("{project}_web");

    let out = build_with_env(root, &project, &["--nocache"], &[]);
    let stdout = all_output(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("[web] Step 2/2 : RUN echo printed by the run")
            && stdout.contains("[web] printed by the run"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("---> Running in") && !stdout.contains("[internal]"),
        "{stdout}"
    );
    assert_eq!(parent_of(&image), "", "built on BuildKit");

    let out = build_with_env(root, &project, &["--nocache", "--progress", "plain"], &[]);
    let stdout = all_output(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("[web] [internal] load"), "{stdout}");

    let out = build_with_env(root, &project, &["--nocache"], &[("DOCKER_BUILDKIT", "0")]);
    let stdout = all_output(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("---> Running in") && stdout.contains("[web] printed by the run"),
        "{stdout}"
    );
    assert_ne!(parent_of(&image), "", "built by the classic builder");
    assert_eq!(run_in(&image, false, &["cat", "/which"]).trim(), "built");
    docker_ok(&["image", "rm", "-f", &image]);
}
