//! The private daemon and registries of `scripts/docker-env`.

use std::path::PathBuf;
use std::process::{Command, Output};

use bollard::Docker;

/// The Docker CLI (Debian's client), for setting up and inspecting what the tests need.
pub const DOCKER: &str = "/usr/bin/docker";

/// The local registry of `scripts/docker-env`.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The local registry, or `BALENA_COMPOSE_TEST_REGISTRY` when set.
pub fn registry() -> String {
    std::env::var("BALENA_COMPOSE_TEST_REGISTRY").unwrap_or_else(|_| REGISTRY.to_owned())
}

/// The private daemon of `scripts/docker-env` (`unix://…`); fails (never skips) without
/// `DOCKER_HOST`.
pub fn docker_host() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host,
        _ => panic!(
            "DOCKER_HOST is not set: these tests need the private daemon; run \
             `eval \"$(scripts/docker-env up)\"` (or scripts/test) in the same shell first"
        ),
    }
}

/// A client of the private daemon, its API version negotiated.
pub async fn docker() -> Docker {
    let host = docker_host();
    let socket = host
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("DOCKER_HOST must be a unix:// socket, got {host}"));
    Docker::connect_with_unix(socket, 600, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .expect("negotiate the API version with the private daemon")
}

/// A Docker config directory with no credentials, so nothing of the user's leaks in.
pub fn no_docker_config() -> PathBuf {
    std::env::temp_dir().join("balena-compose-tests-no-docker-config")
}

/// `docker ARGS` against the private daemon, with no Docker config.
pub fn docker_cli(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", no_docker_config())
        .args(args)
        .output()
        .expect("cannot run /usr/bin/docker")
}

/// `docker ARGS` that must succeed; its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker_cli(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
