//! Proves the test harness: the private daemon of `scripts/docker-env` is reachable through
//! `DOCKER_HOST`, bollard negotiates its (older) API version, and both base images run — the
//! arm64 one through the host's qemu, as the emulated builds will.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptions,
};
use futures::StreamExt;
use test_support::docker;

/// Runs `cmd` in a fresh container of `image` and returns what it printed.
async fn run(docker: &Docker, name: &str, image: &str, cmd: &[&str], binds: Vec<String>) -> String {
    let _ = docker
        .remove_container(
            name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: Some(cmd.iter().map(|s| s.to_string()).collect()),
        cmd: Some(vec![]),
        host_config: Some(HostConfig {
            binds: Some(binds),
            network_mode: Some("none".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await
        .expect("create container");
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start");
    let mut wait = docker.wait_container(name, None::<WaitContainerOptions>);
    while let Some(status) = wait.next().await {
        let status = status.expect("wait");
        assert_eq!(status.status_code, 0, "{image} {cmd:?} exited non-zero");
    }
    let mut out = String::new();
    let mut logs = docker.logs(
        name,
        Some(
            LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .build(),
        ),
    );
    while let Some(chunk) = logs.next().await {
        out.push_str(&chunk.expect("logs").to_string());
    }
    docker
        .remove_container(
            name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .expect("remove container");
    out
}

#[tokio::test]
async fn private_daemon_runs_native_and_emulated_containers() {
    let docker = docker().await;
    let version = docker.version().await.expect("version");
    assert!(
        version.api_version.is_some(),
        "the daemon reports its API version"
    );

    let amd64 = docker
        .inspect_image("local/amd64-busybox:latest")
        .await
        .expect("amd64 base");
    assert_eq!(amd64.architecture.as_deref(), Some("amd64"));
    let arm64 = docker
        .inspect_image("local/aarch64-busybox:latest")
        .await
        .expect("arm64 base");
    assert_eq!(arm64.architecture.as_deref(), Some("arm64"));

    let pid = std::process::id();
    let native = run(
        &docker,
        &format!("harness-amd64-{pid}"),
        "local/amd64-busybox:latest",
        &["uname", "-m"],
        vec![],
    )
    .await;
    assert_eq!(native.trim(), "x86_64");

    // No binfmt_misc registration is needed: qemu is the entrypoint and runs busybox itself.
    let qemu = "/usr/bin/qemu-aarch64-static";
    let emulated = run(
        &docker,
        &format!("harness-arm64-{pid}"),
        "local/aarch64-busybox:latest",
        &[qemu, "/bin/busybox", "uname", "-m"],
        vec![format!("{qemu}:{qemu}:ro")],
    )
    .await;
    assert_eq!(emulated.trim(), "aarch64");
}
