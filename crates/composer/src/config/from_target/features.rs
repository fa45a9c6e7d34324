//! The environment every service gets and the feature labels (spec §6.4).

use platform::Arch;
use std::collections::BTreeMap;
use std::path::Path;

use super::Draft;
use crate::config::AppContext;
use crate::config::values::truthy;

/// The variables balena sets in every service, under both `BALENA_` and `RESIN_`.
pub(super) fn default_env(service: &str, app: &AppContext<'_>) -> BTreeMap<String, String> {
    let d = &app.options.device;
    let mut env = BTreeMap::new();
    for ns in ["BALENA", "RESIN"] {
        for (k, v) in [
            ("APP_ID", app.app_id.to_string()),
            ("APP_UUID", app.app_uuid.to_owned()),
            ("APP_NAME", app.app_name.to_owned()),
            ("SERVICE_NAME", service.to_owned()),
            ("DEVICE_UUID", d.uuid.clone()),
            ("DEVICE_TYPE", d.device_type.clone()),
            ("DEVICE_ARCH", d.arch.map_or("", Arch::slug).to_owned()),
            ("HOST_OS_VERSION", d.os_version.clone().unwrap_or_default()),
            ("APP_LOCK_PATH", "/tmp/balena/updates.lock".to_owned()),
        ] {
            env.insert(format!("{ns}_{k}"), v);
        }
        env.insert(ns.to_owned(), "1".to_owned());
    }
    env.insert(
        "RESIN_SERVICE_KILL_ME_PATH".into(),
        "/tmp/balena/handover-complete".into(),
    );
    env.insert(
        "BALENA_SERVICE_HANDOVER_COMPLETE_PATH".into(),
        "/tmp/balena/handover-complete".into(),
    );
    env.insert("USER".into(), "root".into());
    env
}

/// Feature labels (spec §6.4), read from the draft's labels: the only way a host path
/// reaches a container. They add host binds, variables, and the GPU request.
pub(super) fn features(app: &AppContext<'_>, env: &mut BTreeMap<String, String>, d: &mut Draft) {
    let on = |f: &str| truthy(d.config.labels.get(&format!("io.balena.features.{f}")));
    let binds = &mut d.feature_binds;
    if on("balena-socket") {
        engine_socket(&app.options.engine_socket, env, binds);
    }
    if on("dbus") {
        binds.push("/run/dbus:/host/run/dbus".into());
    }
    if on("journal-logs") {
        binds.push("/var/log/journal:/var/log/journal:ro".into());
        binds.push("/run/log/journal:/run/log/journal:ro".into());
        binds.push("/etc/machine-id:/etc/machine-id:ro".into());
    }
    for (f, path) in [
        ("kernel-modules", "/lib/modules"),
        ("firmware", "/lib/firmware"),
    ] {
        if on(f) && Path::new(path).exists() {
            binds.push(format!("{path}:{path}"));
        }
    }
    if on("sysfs") {
        binds.push("/sys:/sys".into());
    }
    if on("procfs") {
        binds.push("/proc:/proc".into());
    }
    if on("gpu") {
        d.config.gpu = true;
    }
    if on("balena-api") {
        balena_api(app, env);
    }
}

/// `io.balena.features.balena-socket`: the engine's socket, where tools look for it.
fn engine_socket(sock: &str, env: &mut BTreeMap<String, String>, binds: &mut Vec<String>) {
    binds.push(format!("{sock}:/host/run/balena-engine.sock"));
    binds.push(format!("{sock}:{sock}"));
    if sock != "/var/run/balena.sock" {
        binds.push(format!("{sock}:/var/run/balena.sock"));
    }
    env.insert(
        "DOCKER_HOST".into(),
        "unix:///host/run/balena-engine.sock".into(),
    );
}

/// `io.balena.features.balena-api`: the API key and endpoint, under both prefixes.
fn balena_api(app: &AppContext<'_>, env: &mut BTreeMap<String, String>) {
    let key = app.options.api_key.clone().unwrap_or_default();
    let url = app.options.api_endpoint.clone().unwrap_or_default();
    for ns in ["BALENA", "RESIN"] {
        env.insert(format!("{ns}_API_KEY"), key.clone());
        env.insert(format!("{ns}_API_URL"), url.clone());
    }
}
