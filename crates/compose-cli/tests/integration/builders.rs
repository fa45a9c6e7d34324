//! `build --builder`: a project spread over several Docker daemons of this machine (the
//! private daemon of `scripts/docker-env`, its TLS and ssh endpoints, and throwaway daemons a
//! test starts), routed by the architecture each daemon reports, with a builder that is down
//! at the start or stops mid-build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{
    Background, DOCKER, PrivateDaemon, balena_compose, docker_host, json_lines, no_docker_config,
    unique, wait_until, write,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(scripts/docker-env up)\"` (or scripts/test) first")
    })
}

/// Services `s1`… `sN`, each built from local/amd64-busybox with a `RUN` of its own.
fn project(root: &Path, services: usize, nonce: &str) {
    let mut compose = "services:\n".to_owned();
    for i in 1..=services {
        compose.push_str(&format!("  s{i}:\n    build: ./s{i}\n"));
        write(
            root,
            &format!("s{i}/Dockerfile"),
            &format!("FROM local/amd64-busybox\nRUN echo {nonce}-{i} > /built\n"),
        );
    }
    write(root, "docker-compose.yml", &compose);
}

/// Whether the daemon at `host` has `image`; `tls` names the certificates of a TLS daemon.
fn has_image(host: &str, tls: Option<&str>, image: &str) -> bool {
    let mut command = Command::new(DOCKER);
    command
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config());
    if let Some(certs) = tls {
        command
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", certs);
    }
    let out = command.args(["image", "inspect", image]).output().unwrap();
    out.status.success()
}

/// Removes `images` from the shared daemon.
fn remove_images(images: &[String]) {
    for image in images {
        let _ = support::docker_cli(&["rmi", "-f", image]);
    }
}

/// `build DIR -p NONCE --json` over `builders` (each a `--builder` value).
fn build_json(dir: &Path, nonce: &str, builders: &[String]) -> Command {
    let mut command = balena_compose();
    command.args(["build", dir.to_str().unwrap(), "-p", nonce, "--json"]);
    for builder in builders {
        command.arg("--builder").arg(builder);
    }
    command
}

/// A PATH on which `ssh` is the one of `scripts/docker-env` (its key, its known host).
fn ssh_path() -> String {
    format!("{}:/usr/bin:/bin", env("BALENA_COMPOSE_TEST_SSH_PATH"))
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn six_services_on_two_builders_stay_on_the_builder_their_events_name() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("spread");
    project(dir.path(), 6, &nonce);
    let private = PrivateDaemon::start();
    private.load_base_image(&no_docker_config());
    let builders = [
        format!("private={},jobs=1", private.host()),
        format!("main={},jobs=1", docker_host()),
    ];
    let out = build_json(dir.path(), &nonce, &builders).output().unwrap();
    let events = json_lines(&out.stdout);
    let done = events_of(&events, "done");
    let images: Vec<String> = done
        .iter()
        .map(|d| d["image"].as_str().unwrap().to_owned())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{events:#?}");
    assert_eq!(done.len(), 6, "{events:#?}");
    let hosts = |builder: &str| match builder {
        "private" => (private.host(), docker_host()),
        "main" => (docker_host(), private.host()),
        other => panic!("unknown builder {other}"),
    };
    let mut used = BTreeSet::new();
    for d in &done {
        let (builder, image) = (d["builder"].as_str().unwrap(), d["image"].as_str().unwrap());
        used.insert(builder.to_owned());
        let (on, other) = hosts(builder);
        assert!(has_image(&on, None, image), "{image} is not on {builder}");
        assert!(
            !has_image(&other, None, image),
            "{image} is on the other builder too"
        );
    }
    assert_eq!(
        used,
        BTreeSet::from(["main".to_owned(), "private".to_owned()])
    );
    // Each service is announced on its builder before it starts, and so is every event of it.
    assert_eq!(events_of(&events, "builder").len(), 6, "{events:#?}");
    assert!(
        events_of(&events, "start")
            .iter()
            .all(|e| e["builder"].is_string())
    );
    let summary = events_of(&events, "summary");
    assert!(
        summary[0]["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["builder"].is_string())
    );
    remove_images(&images);
}

#[test]
fn a_target_no_builder_runs_natively_fails_before_building_naming_the_builders() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("route");
    project(dir.path(), 1, &nonce);
    let builders = [
        format!("main={}", docker_host()),
        format!("remote={}", env("BALENA_COMPOSE_TEST_SSH_HOST")),
    ];
    let out = build_json(dir.path(), &nonce, &builders)
        .env("PATH", ssh_path())
        .args(["--arch", "aarch64"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        "no builder can build for aarch64 natively",
        &format!("main at {}: amd64 (native)", docker_host()),
        &format!(
            "remote at {}: amd64 (native)",
            env("BALENA_COMPOSE_TEST_SSH_HOST")
        ),
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
    assert!(events_of(&json_lines(&out.stdout), "start").is_empty());
}

#[test]
fn a_builder_stopped_mid_build_hands_its_service_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("failover");
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  slow:\n    build: .\n",
    );
    write(
        dir.path(),
        "Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN echo started-{nonce} && sleep 20\n"),
    );
    let mut doomed = PrivateDaemon::start();
    doomed.load_base_image(&no_docker_config());
    let mut command = balena_compose();
    command
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &nonce,
            "--nocache",
        ])
        .env_remove("DOCKER_BUILDKIT")
        // The most free slots take the service first: the doomed builder.
        .arg("--builder")
        .arg(format!("doomed={},jobs=4", doomed.host()))
        .arg("--builder")
        .arg(format!("main={},jobs=1", docker_host()));
    let build = Background::spawn(command);
    let running = format!("[slow] started-{nonce}\n");
    assert!(
        wait_until(Duration::from_secs(90), || build
            .stderr()
            .contains(&running)),
        "the RUN step never started: {}",
        build.stderr()
    );
    assert!(
        build.stderr().contains("[slow] on builder doomed\n"),
        "{}",
        build.stderr()
    );
    doomed.signal("-TERM");
    doomed.reap(Duration::from_secs(30));
    let (code, stdout, stderr) = build.finish(Duration::from_secs(180));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "[slow] on builder main (moved from builder doomed, which went down during the build)"
        ),
        "{stderr}"
    );
    assert!(
        stdout
            .contains("  slow: main (moved from builder doomed, which went down during the build)"),
        "{stdout}"
    );
    let image = format!("{nonce}_slow");
    assert!(has_image(&docker_host(), None, &image));
    remove_images(&[image]);
}

#[test]
fn a_builder_down_at_the_start_is_said_once_and_the_others_build() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("down");
    project(dir.path(), 2, &nonce);
    let certs = env("BALENA_COMPOSE_TEST_TLS_CERTS");
    let tls_host = env("BALENA_COMPOSE_TEST_TLS_HOST");
    let builders = [
        "gone=unix:///nonexistent/balena-compose/docker.sock".to_owned(),
        format!("tls={tls_host},jobs=2"),
    ];
    let out = build_json(dir.path(), &nonce, &builders)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("builder gone is down").count(),
        1,
        "{stderr}"
    );
    let events = json_lines(&out.stdout);
    let done = events_of(&events, "done");
    assert_eq!(done.len(), 2, "{events:#?}");
    for d in done {
        assert_eq!(d["builder"], "tls");
        let image = d["image"].as_str().unwrap();
        assert!(has_image(&tls_host, Some(&certs), image), "{image}");
        let _ = Command::new(DOCKER)
            .env("DOCKER_HOST", &tls_host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &certs)
            .env("DOCKER_CONFIG", no_docker_config())
            .args(["rmi", "-f", image])
            .output();
    }
}

#[test]
fn an_emulated_target_goes_only_to_a_builder_that_emulates_it_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = unique("emulated");
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  arm:\n    build: .\n",
    );
    write(
        dir.path(),
        "Dockerfile",
        &format!("FROM local/aarch64-busybox\nRUN echo {nonce} > /built\n"),
    );
    // scripts/docker-env registers qemu for aarch64 here; held so no test removes it meanwhile.
    let _binfmt = support::binfmt_lock(false);
    // The remote builder has the most free slots, but its binfmt_misc cannot be seen from
    // here: it is not offered aarch64.
    let builders = [
        format!("remote={},jobs=4", env("BALENA_COMPOSE_TEST_SSH_HOST")),
        format!("main={},jobs=1", docker_host()),
    ];
    let out = build_json(dir.path(), &nonce, &builders)
        .env("PATH", ssh_path())
        .args(["--arch", "aarch64", "--emulated"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = json_lines(&out.stdout);
    let done = events_of(&events, "done");
    assert_eq!(done.len(), 1, "{events:#?}");
    assert_eq!(done[0]["builder"], "main", "{events:#?}");
    let image = format!("{nonce}_arm");
    let arch = support::docker_ok(&["image", "inspect", "-f", "{{.Architecture}}", &image]);
    remove_images(&[image]);
    assert_eq!(arch, "arm64");
}

#[test]
fn builders_and_the_one_daemon_flags_do_not_mix() {
    let out = balena_compose()
        .args(["build", ".", "--docker-host", &docker_host()])
        .arg("--builder")
        .arg(format!("main={}", docker_host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--builder names every daemon"), "{stderr}");
    let out = balena_compose()
        .args(["build", ".", "--builder", "main=unix:///s,jobs=0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("jobs must be a whole number"));
    // The rewrite is not carried to the builders: refused, not quietly binfmt.
    for extra in [
        &["--emulation", "rewrite"][..],
        &["--emulated", "--qemu", "/bin/true"],
    ] {
        let out = balena_compose()
            .args(["build", ".", "--arch", "aarch64"])
            .args(extra)
            .arg("--builder")
            .arg(format!("main={}", docker_host()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?}");
        assert!(stderr.contains("cannot be used with --builder"), "{stderr}");
    }
}
