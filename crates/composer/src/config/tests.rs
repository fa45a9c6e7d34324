//! Tests of the mappings.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use serde_json::{Value, json};

use super::*;
use crate::model::PortMapping;
use crate::options::Options;
use crate::target::TargetService;

fn ctx(options: &Options) -> AppContext<'_> {
    AppContext {
        app_id: 1234,
        app_uuid: "deadbeef",
        app_name: "app",
        commit: "c1",
        release_id: 7,
        options,
    }
}

fn svc(comp: Value) -> TargetService {
    TargetService {
        id: 5,
        image_id: 6,
        image: "busybox".into(),
        composition: comp.as_object().cloned(),
        ..TargetService::default()
    }
}

#[test]
fn default_environment_and_binds() {
    let options = Options {
        lock_root: "/locks".into(),
        ..Options::default()
    };
    let (s, _) = target_service("foo", &svc(json!({})), &ctx(&options), None).unwrap();
    let env = &s.config.environment;
    assert_eq!(env["BALENA_SERVICE_NAME"], "foo");
    assert_eq!(env["RESIN_APP_ID"], "1234");
    assert_eq!(env["BALENA_APP_LOCK_PATH"], "/tmp/balena/updates.lock");
    assert_eq!(
        env["BALENA_SERVICE_HANDOVER_COMPLETE_PATH"],
        "/tmp/balena/handover-complete"
    );
    assert_eq!(env["USER"], "root");
    assert_eq!(env["BALENA"], "1");
    assert!(
        s.config
            .volumes
            .contains(&"/locks/1234/foo:/tmp/balena".to_owned())
    );
    assert!(
        s.config
            .volumes
            .contains(&"/locks/1234/foo:/tmp/resin".to_owned())
    );
    assert_eq!(s.config.image, "busybox:latest");
    assert_eq!(s.config.network_mode, "deadbeef_default");
    assert_eq!(
        s.config.networks["deadbeef_default"].aliases,
        vec!["foo".to_owned()]
    );
    assert_eq!(s.config.restart, "always");
    assert!(s.config.tty);
}

#[test]
fn user_env_beats_defaults() {
    let options = Options::default();
    let mut t = svc(json!({"environment": {"USER": "me"}}));
    t.environment
        .insert("BALENA_SERVICE_NAME".into(), "x".into());
    let (s, _) = target_service("foo", &t, &ctx(&options), None).unwrap();
    assert_eq!(s.config.environment["USER"], "me");
    assert_eq!(s.config.environment["BALENA_SERVICE_NAME"], "x");
}

#[test]
fn ports_ranges_and_protocols() {
    let p = parse_ports(&json!([
        "80",
        "8080:80/udp",
        "127.0.0.1:1000-1001:2000-2001",
        53
    ]))
    .unwrap();
    assert_eq!(p.len(), 5);
    assert!(p.contains(&PortMapping {
        container_port: 2001,
        protocol: "tcp".into(),
        host_ip: "127.0.0.1".into(),
        host_port: "1001".into()
    }));
    assert!(parse_ports(&json!(["1-3:1-2"])).is_err());
    assert!(parse_ports(&json!(["abc"])).is_err());
}

#[test]
fn volumes_named_anonymous_and_host_binds_dropped() {
    let options = Options::default();
    let (s, warnings) = target_service(
        "foo",
        &svc(
            json!({"volumes": ["data:/data", "/anon", "/etc:/host-etc", "ro:/r:ro",
            {"type": "tmpfs", "target": "/t"}]}),
        ),
        &ctx(&options),
        None,
    )
    .unwrap();
    assert!(s.config.volumes.contains(&"1234_data:/data".to_owned()));
    assert!(s.config.volumes.contains(&"1234_ro:/r:ro".to_owned()));
    assert!(s.config.volumes.contains(&"/anon".to_owned()));
    assert!(!s.config.volumes.iter().any(|v| v.starts_with("/etc")));
    assert!(warnings.iter().any(|w| w.contains("/etc:/host-etc")));
    assert_eq!(s.config.tmpfs, vec!["/t".to_owned()]);
}

#[test]
fn unsupported_keys_warn_and_misc_normalisation() {
    let options = Options::default();
    let (s, warnings) = target_service(
        "foo",
        &svc(
            json!({"build": ".", "restart": "bogus", "extra_hosts": ["a=1.2.3.4"],
            "working_dir": "/app/", "mem_limit": "64m", "stop_grace_period": "1m30s",
            "security_opt": ["label=x", "no-new-privileges"], "command": "sh -c 'echo \"hi\"'"}),
        ),
        &ctx(&options),
        None,
    )
    .unwrap();
    assert!(warnings[0].contains("build"));
    assert_eq!(s.config.restart, "always");
    assert_eq!(s.config.extra_hosts, vec!["a:1.2.3.4".to_owned()]);
    assert_eq!(s.config.working_dir, "/app");
    assert_eq!(s.config.mem_limit, 64 << 20);
    assert_eq!(s.config.stop_grace_period, 90);
    assert_eq!(s.config.security_opt, vec!["no-new-privileges".to_owned()]);
    assert_eq!(s.config.command, vec!["sh", "-c", "echo \"hi\""]);
}

#[test]
fn feature_labels() {
    let options = Options::default();
    let mut t = svc(json!({}));
    t.labels
        .insert("io.resin.features.balena-socket".into(), "1".into());
    t.labels
        .insert("io.balena.features.gpu".into(), "true".into());
    t.labels
        .insert("io.balena.features.sysfs".into(), "on".into());
    let (s, _) = target_service("foo", &t, &ctx(&options), None).unwrap();
    assert_eq!(
        s.config.environment["DOCKER_HOST"],
        "unix:///host/run/balena-engine.sock"
    );
    assert!(
        s.config
            .volumes
            .iter()
            .any(|v| v.ends_with(":/host/run/balena-engine.sock"))
    );
    assert!(s.config.volumes.contains(&"/sys:/sys".to_owned()));
    assert!(s.config.gpu);
    assert!(
        s.config
            .labels
            .contains_key("io.balena.features.balena-socket")
    );
}

#[test]
fn network_mode_service_adds_dependency_and_host_has_no_networks() {
    let options = Options::default();
    let (s, _) = target_service(
        "foo",
        &svc(json!({"network_mode": "service:bar"})),
        &ctx(&options),
        None,
    )
    .unwrap();
    assert_eq!(s.depends_on, vec!["bar".to_owned()]);
    assert!(s.config.networks.is_empty());
    let (h, _) = target_service(
        "foo",
        &svc(json!({"network_mode": "host"})),
        &ctx(&options),
        None,
    )
    .unwrap();
    assert_eq!(h.config.network_mode, "host");
    assert!(h.config.networks.is_empty());
    let (n, _) = target_service(
        "foo",
        &svc(json!({"networks": {"front": {"aliases": ["web"]}, "back": null}})),
        &ctx(&options),
        None,
    )
    .unwrap();
    assert_eq!(n.config.network_mode, "deadbeef_front");
    assert_eq!(
        n.config.networks["deadbeef_front"].aliases,
        vec!["foo".to_owned(), "web".to_owned()]
    );
    assert!(n.config.networks.contains_key("deadbeef_back"));
}

#[test]
fn image_names_are_normalised() {
    assert_eq!(normalise_image_name("a/b"), "a/b:latest");
    assert_eq!(
        normalise_image_name("127.0.0.1:5000/a"),
        "127.0.0.1:5000/a:latest"
    );
    assert_eq!(normalise_image_name("a:1@sha256:00"), "a@sha256:00");
    assert_eq!(
        normalise_image_name("127.0.0.1:5000/a:2"),
        "127.0.0.1:5000/a:2"
    );
}

#[test]
fn shell_split_handles_quotes() {
    assert_eq!(
        shell_split("a 'b c' \"d\\\"e\" f\\ g").unwrap(),
        vec!["a", "b c", "d\"e", "f g"]
    );
    assert!(shell_split("'open").is_err());
}
