//! `build` for several targets in one run (`--arch a --arch b`), on one daemon and over
//! builders: each target's images carry its suffix (`<project>_<service>:<tag>-<arch>`) and
//! are of its platform, and every event says which target it is of.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{
    PrivateDaemon, balena_compose, docker_host, json_lines, no_docker_config, unique, write,
};

/// One service `app` built from `local/<arch>-busybox` with a `RUN` (run under qemu for
/// aarch64 on this amd64 machine).
fn project(root: &Path, nonce: &str) {
    write(
        root,
        "docker-compose.yml",
        // `expose` is ignored on balena, with a warning: said once, not once per target.
        "services:\n  app:\n    build: ./app\n    expose: ['80']\n",
    );
    write(
        root,
        "app/Dockerfile.template",
        &format!("FROM local/%%BALENA_ARCH%%-busybox\nRUN echo {nonce}-%%BALENA_ARCH%% > /built\n"),
    );
}

/// The `docker image inspect` architecture of `image` on the daemon at `host`.
fn architecture(host: &str, image: &str) -> String {
    let out = std::process::Command::new(support::DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["image", "inspect", "-f", "{{.Architecture}}", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{image} is not on {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn remove_image(host: &str, image: &str) {
    let _ = std::process::Command::new(support::DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["rmi", "-f", image])
        .output();
}

/// Checks a two-target run's output: the `done` of each target names its image, its
/// platform is the target's, and every service event names its target; returns each
/// image with the daemon holding it (`host_of` maps an event's builder to it).
fn check_two_targets(out: &Output, nonce: &str, host_of: impl Fn(&Value) -> String) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events = json_lines(&out.stdout);
    assert!(out.status.success(), "{stderr}\n{events:#?}");
    let done: Vec<&Value> = events.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 2, "{events:#?}");
    for (target, platform) in [("aarch64", "arm64"), ("amd64", "amd64")] {
        let image = format!("{nonce}_app:v1-{target}");
        let of_target: Vec<&&Value> = done.iter().filter(|d| d["target"] == target).collect();
        assert_eq!(of_target.len(), 1, "{events:#?}");
        assert_eq!(of_target[0]["image"], image.as_str(), "{events:#?}");
        let host = host_of(of_target[0]);
        assert_eq!(architecture(&host, &image), platform, "{image}");
        remove_image(&host, &image);
    }
    // Every event of a service says its target; the summary too.
    for event in &events {
        if event.get("service").is_some() || event["event"] == "summary" {
            let entries = match event["services"].as_array() {
                Some(services) => services.iter().collect(),
                None => vec![event],
            };
            for entry in entries {
                assert!(entry["target"].is_string(), "no target in {entry}");
            }
        }
    }
}

fn build_two_targets(dir: &Path, nonce: &str) -> std::process::Command {
    let mut command = balena_compose();
    command.args([
        "build",
        dir.to_str().unwrap(),
        "-p",
        nonce,
        "--tag",
        "v1",
        "--json",
        "--arch",
        "aarch64",
        "--arch",
        "amd64",
        "--emulated",
    ]);
    command
}

#[test]
fn two_architectures_in_one_run_on_one_daemon_get_suffixed_images_of_their_platform() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("targets");
    project(dir.path(), &nonce);
    // scripts/docker-env registers qemu for aarch64; held so no test removes it meanwhile.
    let _binfmt = support::binfmt_lock(false);
    let out = build_two_targets(dir.path(), &nonce).output().unwrap();
    check_two_targets(&out, &nonce, |_| docker_host());
    let warnings = json_lines(&out.stdout)
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .filter(|e| e["message"].as_str().unwrap_or("").contains("expose"))
        .count();
    assert_eq!(warnings, 1, "the project's warning once");
    // No image without a suffix: a single name would be claimed by both targets.
    assert!(
        !support::docker_cli(&["image", "inspect", &format!("{nonce}_app:v1")])
            .status
            .success()
    );
}

#[test]
fn two_architectures_over_two_builders_share_them() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("targetpool");
    project(dir.path(), &nonce);
    let private = PrivateDaemon::start();
    private.load_base_image(&no_docker_config());
    private.load_image("local/aarch64-busybox", &no_docker_config());
    let _binfmt = support::binfmt_lock(false);
    let out = build_two_targets(dir.path(), &nonce)
        .arg("--builder")
        .arg(format!("private={},jobs=1", private.host()))
        .arg("--builder")
        .arg(format!("main={},jobs=1", docker_host()))
        .output()
        .unwrap();
    check_two_targets(&out, &nonce, |done| match done["builder"].as_str() {
        Some("private") => private.host(),
        Some("main") => docker_host(),
        other => panic!("no builder named {other:?}"),
    });
}

#[test]
fn one_target_keeps_its_names_and_deploy_refuses_several() {
    let out = balena_compose()
        .args([
            "deploy",
            "somefleet",
            ".",
            "--arch",
            "aarch64",
            "--arch",
            "amd64",
        ])
        .env("BALENARC_BALENA_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--arch is given 2 times: only `build` builds for several targets"),
        "{stderr}"
    );
}

/// The id of `image` on the daemon at `host`, if it has it.
fn image_id(host: &str, image: &str) -> Option<String> {
    let out = std::process::Command::new(support::DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn load_copies_what_other_builders_built_onto_the_default_daemon_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("load");
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  big:\n    build: ./big\n  small:\n    build: ./small\n",
    );
    // A layer of 48 MB: the copy goes through this process as a stream.
    write(
        dir.path(),
        "big/Dockerfile",
        &format!(
            "FROM local/amd64-busybox\nRUN echo {nonce} && head -c 48000000 /dev/urandom > /blob\n"
        ),
    );
    write(
        dir.path(),
        "small/Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN echo {nonce} > /built\n"),
    );
    let private = PrivateDaemon::start();
    private.load_base_image(&no_docker_config());
    let out = balena_compose()
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &nonce,
            "--json",
            "--load",
        ])
        .arg("--builder")
        .arg(format!("private={},jobs=1", private.host()))
        .arg("--builder")
        .arg(format!("main={},jobs=1", docker_host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events = json_lines(&out.stdout);
    assert!(out.status.success(), "{stderr}\n{events:#?}");
    let loaded: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "info")
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("loaded "))
        .collect();
    let done: Vec<&Value> = events.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 2, "{events:#?}");
    for d in &done {
        let image = d["image"].as_str().unwrap();
        let built_id = d["id"].as_str().unwrap();
        assert_eq!(
            image_id(&docker_host(), image).as_deref(),
            Some(built_id),
            "{image} is not on the default daemon as built: {events:#?}"
        );
        let said = loaded
            .iter()
            .any(|m| m.starts_with(&format!("loaded {image} (")));
        // Only what another builder built is copied; the default daemon's own stay as they are.
        assert_eq!(said, d["builder"] == "private", "{image}: {loaded:?}");
        remove_image(&docker_host(), image);
    }
    assert!(
        done.iter().any(|d| d["builder"] == "private"),
        "nothing was built on the private builder: {events:#?}"
    );
}

#[test]
fn load_needs_builders() {
    let home = tempfile::tempdir().unwrap();
    let out = balena_compose()
        .args(["build", ".", "--load"])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--load copies images from builders: give --builder"),
        "{stderr}"
    );
}

/// `build DIR -p NONCE --json` with HOME (and no XDG_CONFIG_HOME) at `home`.
fn build_with_home(dir: &Path, nonce: &str, home: &Path) -> Output {
    balena_compose()
        .args(["build", dir.to_str().unwrap(), "-p", nonce, "--json"])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

/// The builder each `done` event names.
fn builders_of(out: &Output) -> Vec<String> {
    let events = json_lines(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{events:#?}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| e["builder"].as_str().unwrap_or("-").to_owned())
        .collect()
}

/// One service `app` from local/amd64-busybox; its image is removed by the caller.
fn amd64_project(root: &Path, nonce: &str) -> String {
    write(
        root,
        "docker-compose.yml",
        "services:\n  app:\n    build: .\n",
    );
    write(
        root,
        "Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN echo {nonce} > /built\n"),
    );
    format!("{nonce}_app")
}

#[test]
fn builders_come_from_balena_yml_else_the_users_builders_yml_and_flags_replace_both() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let nonce = unique("cfgbuilders");
    let image = amd64_project(dir.path(), &nonce);
    // The user's file, under HOME: a mapping and a builder that is down.
    write(
        home.path(),
        ".config/balena-compose/builders.yml",
        &format!(
            "builders:\n  - name: mine\n    endpoint: {}\n    jobs: 1\n  - gone=unix:///nonexistent/docker.sock\n",
            docker_host()
        ),
    );
    assert_eq!(
        builders_of(&build_with_home(dir.path(), &nonce, home.path())),
        ["mine"]
    );
    // XDG_CONFIG_HOME comes first.
    let xdg = tempfile::tempdir().unwrap();
    write(
        xdg.path(),
        "balena-compose/builders.yml",
        &format!("- xdg={},jobs=1\n", docker_host()),
    );
    let out = balena_compose()
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &nonce,
            "--json",
        ])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", xdg.path())
        .output()
        .unwrap();
    assert_eq!(builders_of(&out), ["xdg"]);
    // The project's balena.yml comes before the user's file.
    write(
        dir.path(),
        ".balena/balena.yml",
        &format!("builders:\n  - project={}\n", docker_host()),
    );
    assert_eq!(
        builders_of(&build_with_home(dir.path(), &nonce, home.path())),
        ["project"]
    );
    // --builder replaces both.
    let out = balena_compose()
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &nonce,
            "--json",
        ])
        .arg("--builder")
        .arg(format!("flag={}", docker_host()))
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(builders_of(&out), ["flag"]);
    remove_image(&docker_host(), &image);
}

#[test]
fn a_bad_builder_entry_is_an_error_naming_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let nonce = unique("badbuilders");
    amd64_project(dir.path(), &nonce);
    write(
        home.path(),
        ".config/balena-compose/builders.yml",
        "builders:\n  - ok=unix:///s\n  - name: bad\n    endpoint: unix:///t\n    jobs: none\n",
    );
    let out = build_with_home(dir.path(), &nonce, home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let file = home.path().join(".config/balena-compose/builders.yml");
    let expected = format!("{}: line 3: builders[1].jobs: jobs must be", file.display());
    assert!(stderr.contains(&expected), "no {expected:?} in {stderr}");

    write(
        dir.path(),
        ".balena/balena.yml",
        "build-variables: {}\nbuilders:\n  - {name: x, endpoint: unix:///s, cpus: 2}\n",
    );
    let out = build_with_home(dir.path(), &nonce, home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(".balena/balena.yml") && stderr.contains("line 3: builders[0].cpus"),
        "{stderr}"
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `docker save` of `image` on the daemon at `host`.
fn saved(host: &str, image: &str) -> Vec<u8> {
    let out = std::process::Command::new(support::DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["save", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker save {image} on {host}");
    out.stdout
}

/// Every regular file under `dir` that holds `needle` (sockets and unreadable files skipped).
fn files_holding(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file()
                && std::fs::read(entry.path()).is_ok_and(|data| contains(&data, needle))
            {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Two services reading a build secret, one on each of two builders (a local socket and one
/// over ssh): each build gets the secret through its own builder's BuildKit session (the RUN's hash of it is in the image),
/// and the secret is in no output, event, layer, nor anywhere on the other builder's disk.
#[test]
fn build_secrets_reach_every_builder_and_leak_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("poolsecret");
    let secret = format!("p00l-secret-{nonce}-value");
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  one:\n    build: ./one\n  two:\n    build: ./two\n",
    );
    for service in ["one", "two"] {
        write(
            dir.path(),
            &format!("{service}/Dockerfile"),
            &format!(
                "FROM local/amd64-busybox\nRUN sha256sum /run/secrets/token > /hash && echo {service}-read-{nonce}\n"
            ),
        );
    }
    write(
        dir.path(),
        ".balena/balena.yml",
        "build-secrets:\n  global:\n    - source: token.txt\n      dest: token\n",
    );
    write(dir.path(), ".balena/secrets/token.txt", &secret);
    let private = PrivateDaemon::start();
    private.load_base_image(&no_docker_config());
    let out = balena_compose()
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &nonce,
            "--json",
        ])
        .arg("--builder")
        .arg(format!("private={},jobs=1", private.host()))
        // The shared daemon through ssh (`docker system dial-stdio`): its session goes there too.
        .arg("--builder")
        .arg(format!(
            "remote={},jobs=1",
            std::env::var("BALENA_COMPOSE_TEST_SSH_HOST").unwrap()
        ))
        .env(
            "PATH",
            format!(
                "{}:/usr/bin:/bin",
                std::env::var("BALENA_COMPOSE_TEST_SSH_PATH").unwrap()
            ),
        )
        .output()
        .unwrap();
    let events = json_lines(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{events:#?}");
    assert!(
        !contains(&out.stdout, &secret),
        "the secret is in the events"
    );
    assert!(!contains(&out.stderr, &secret), "the secret is in stderr");
    let hash = sha256_hex(secret.as_bytes());
    let mut builders = Vec::new();
    for done in events.iter().filter(|e| e["event"] == "done") {
        let image = done["image"].as_str().unwrap();
        let builder = done["builder"].as_str().unwrap();
        builders.push(builder.to_owned());
        let host = if builder == "private" {
            private.host()
        } else {
            docker_host()
        };
        let layers = saved(&host, image);
        assert!(
            contains(&layers, &hash),
            "{image} on {builder}: the RUN did not read the secret"
        );
        assert!(
            !contains(&layers, &secret),
            "{image}: the secret is in a layer"
        );
        remove_image(&host, image);
    }
    builders.sort();
    assert_eq!(builders, ["private", "remote"], "{events:#?}");
    // The private builder stands in for a remote host: nothing of the secret on its disk
    // (data root, its BuildKit's state, its log).
    let on_disk = files_holding(private.root(), &secret);
    assert!(
        on_disk.is_empty(),
        "the secret is on the builder's disk: {on_disk:?}"
    );
}

#[test]
fn two_device_types_of_one_architecture_are_told_apart_by_device_type() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("devicetypes");
    project(dir.path(), &nonce);
    let _binfmt = support::binfmt_lock(false);
    let out = balena_compose()
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &nonce,
            "--json",
        ])
        .args([
            "-d",
            "raspberrypi4-64",
            "-d",
            "generic-aarch64",
            "--emulated",
        ])
        .output()
        .unwrap();
    let events = json_lines(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{events:#?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut images: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| e["image"].as_str().unwrap())
        .collect();
    images.sort_unstable();
    let expected = [
        format!("{nonce}_app:latest-generic-aarch64"),
        format!("{nonce}_app:latest-raspberrypi4-64"),
    ];
    assert_eq!(images, expected, "{events:#?}");
    for image in &expected {
        assert_eq!(architecture(&docker_host(), image), "arm64");
        remove_image(&docker_host(), image);
    }
}
