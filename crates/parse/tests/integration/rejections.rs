//! The balena CLI's rejection tests (balena-cli spec §4.5) plus the other rule violations of
//! toolkit spec §1.2: each composition is refused with the reference's message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{parse, refused};
use parse::Error;

/// A one-service composition with `extra` appended under the service, then `top` at the top.
fn with_service(extra: &str, top: &str) -> String {
    format!("services:\n  main:\n    image: busybox\n{extra}{top}")
}

fn assert_refused(yaml: &str, message: &str) {
    let err = refused(yaml);
    assert_eq!(err.message(), message, "{yaml}");
}

#[test]
fn secrets_and_configs() {
    for top in [
        "secrets:\n  s:\n    file: ./s\n",
        "configs:\n  c:\n    file: ./c\n",
    ] {
        let err = refused(&with_service("", top));
        assert!(matches!(err, Error::Validation { .. }), "{err:?}");
        assert_eq!(
            err.message(),
            "Top-level secrets and/or configs are not supported"
        );
    }
}

#[test]
fn service_deny_list() {
    for (field, value) in [
        ("blkio_config", "{weight: 300}"),
        ("cpu_count", "2"),
        ("deploy", "{replicas: 2}"),
        ("links", "[other]"),
        ("logging", "{driver: json-file}"),
        ("platform", "linux/amd64"),
        ("runtime", "nvidia"),
        ("scale", "2"),
        ("secrets", "[s]"),
        ("stdin_open", "true"),
        ("storage_opt", "{size: 1G}"),
    ] {
        let err = refused(&with_service(&format!("    {field}: {value}\n"), ""));
        assert_eq!(err.message(), format!("service.{field} is not allowed"));
        assert_eq!(err.service(), Some("main"));
        assert!(
            matches!(&err, Error::Service { field: Some(f), .. } if f == field),
            "{err:?}"
        );
    }
}

#[test]
fn build_deny_list() {
    for field in [
        "isolation",
        "network",
        "ssh",
        "tags",
        "platforms",
        "secrets",
        "no_cache",
    ] {
        let yaml = format!("services:\n  main:\n    build:\n      context: .\n      {field}: x\n");
        assert_refused(&yaml, &format!("service.build.{field} is not allowed"));
    }
}

#[test]
fn remote_build_context() {
    assert_refused(
        "services:\n  main:\n    build: https://github.com/balena-io/x.git\n",
        "service.build.context cannot be a remote context",
    );
}

#[test]
fn network_mode_and_pid_container() {
    assert_refused(
        &with_service("    network_mode: container:abc\n", ""),
        "service.network_mode container:${containerId} is not allowed",
    );
    assert_refused(
        &with_service("    pid: container:abc\n", ""),
        "service.pid container:${containerId} is not allowed",
    );
}

#[test]
fn volumes_from_container() {
    assert_refused(
        &with_service("    volumes_from: ['container:abc']\n", ""),
        "service.volumes_from which references a containerId is not allowed",
    );
}

#[test]
fn security_opt() {
    assert_refused(
        &with_service("    security_opt: ['label:disable']\n", ""),
        "Only no-new-privileges and unconfined apparmor and seccomp are allowed for service.security_opt",
    );
    let c = parse(&with_service(
        "    security_opt: ['apparmor:unconfined', 'no-new-privileges']\n",
        "",
    ))
    .unwrap();
    assert_eq!(
        c.services["main"].security_opt,
        ["apparmor=unconfined", "no-new-privileges"]
    );
}

#[test]
fn ipc_service() {
    assert_refused(
        &with_service("    ipc: service:other\n", ""),
        "service.ipc which references service:${serviceName} is not supported",
    );
}

#[test]
fn negative_pids_limit() {
    assert_refused(
        &with_service("    pids_limit: -1\n", ""),
        "negative service.pids_limit is not supported",
    );
    assert!(parse(&with_service("    pids_limit: 100\n", "")).is_ok());
}

#[test]
fn network_rules() {
    let net = |body: &str| with_service("", &format!("networks:\n  n:\n{body}"));
    assert_refused(
        &net("    attachable: true\n"),
        "network.attachable is not allowed",
    );
    assert_refused(
        &net("    external: true\n"),
        "network.external is not allowed",
    );
    assert_refused(
        &net("    driver: overlay\n"),
        "Only \"bridge\" and \"default\" are supported for network.driver, got \"overlay\"",
    );
    assert_refused(
        &net(
            "    ipam:\n      config:\n        - subnet: 10.0.0.0/24\n          aux_addresses: {a: 10.0.0.5}\n",
        ),
        "network.ipam.config.aux_addresses is not supported",
    );
    assert_refused(
        &net("    enable_ipv4: true\n"),
        "enable_ipv4 is not supported",
    );
    assert_refused(
        &net("    enable_ipv6: true\n"),
        "enable_ipv6 is not supported",
    );
    let ok = parse(&net(
        "    driver: bridge\n    ipam:\n      config:\n        - subnet: 10.0.0.0/24\n",
    ))
    .unwrap();
    assert_eq!(
        ok.networks["n"].ipam.config[0].subnet.as_deref(),
        Some("10.0.0.0/24")
    );
}

#[test]
fn volume_rules() {
    let vol = |body: &str| with_service("", &format!("volumes:\n  v:\n{body}"));
    assert_refused(
        &vol("    external: true\n"),
        "volume.external is not allowed",
    );
    assert_refused(
        &vol("    driver: nfs\n"),
        "Only \"local\" and \"default\" are supported for volume.driver, got \"nfs\"",
    );
}

#[test]
fn bind_mount() {
    assert_refused(
        &with_service("    volumes: ['/tmp/data:/data']\n", ""),
        "service.volumes cannot be of type \"bind\"",
    );
}

#[test]
fn journal_bind_mounts_need_all_three() {
    // Some of them only: dropped with a warning, as the reference drops them.
    let c = parse(&with_service(
        "    volumes: ['/var/log/journal:/var/log/journal']\n",
        "",
    ))
    .unwrap();
    assert!(c.services["main"].volumes.is_empty());
    assert!(
        !c.services["main"]
            .labels
            .contains_key("io.balena.features.journal-logs")
    );
    assert_eq!(
        c.warnings,
        [
            "/tmp/compose.yml: service \"main\": the bind mounts of /var/log/journal are ignored: the journal-logs feature needs all of /var/log/journal, /run/log/journal, /etc/machine-id"
        ]
    );
}

#[test]
fn user_labels_win_over_bind_mount_labels() {
    let c = parse(&with_service(
        "    volumes: ['/run/dbus:/run/dbus']\n    labels: {io.balena.features.dbus: '0'}\n",
        "",
    ))
    .unwrap();
    assert_eq!(c.services["main"].labels["io.balena.features.dbus"], "0");
}

#[test]
fn network_link_local_ips() {
    assert_refused(
        &with_service(
            "    networks:\n      n:\n        link_local_ips: [169.254.0.1]\n",
            "networks:\n  n: {}\n",
        ),
        "service.network.link_local_ips is not supported",
    );
}

#[test]
fn unknown_keys_are_named() {
    let err = refused(&with_service("    imagee: typo\n", ""));
    assert_eq!(err.service(), Some("main"));
    assert!(err.message().contains("\"imagee\""), "{err}");
    let err = refused("services:\n  main:\n    build:\n      contxt: .\n");
    assert!(err.message().contains("build.contxt"), "{err}");
    let err = refused(&with_service("", "servicez: {}\n"));
    assert!(err.message().contains("servicez"), "{err}");
}

#[test]
fn neither_image_nor_build() {
    let err = refused("services:\n  main:\n    restart: always\n");
    assert_eq!(err.service(), Some("main"));
    assert!(
        err.message().contains("neither an image nor a build"),
        "{err}"
    );
}

#[test]
fn undefined_references() {
    let err = refused(&with_service("    depends_on: [ghost]\n", ""));
    assert!(
        err.message().contains("undefined service \"ghost\""),
        "{err}"
    );
    let err = refused(&with_service("    networks: [ghost]\n", ""));
    assert!(err.message().contains("undefined network ghost"), "{err}");
}

#[test]
fn cdi_devices() {
    let err = refused(&with_service("    devices: ['nvidia.com/gpu=all']\n", ""));
    assert!(err.message().contains("CDI"), "{err}");
}

#[test]
fn long_depends_on_not_required() {
    let yaml = "services:\n  main:\n    image: x\n    depends_on:\n      dep:\n        condition: service_started\n        required: false\n  dep:\n    image: x\n";
    assert_refused(
        yaml,
        r#"Long syntax depends_on dep:{"condition":"service_started","required":false} for service "main" is not yet supported"#,
    );
}

#[test]
fn display_names_file_and_service() {
    let err = refused(&with_service("    runtime: nvidia\n", ""));
    assert_eq!(
        err.to_string(),
        r#"/tmp/compose.yml: service "main": service.runtime is not allowed"#
    );
}
