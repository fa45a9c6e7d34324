//! The composer against the private daemon of `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use bollard::query_parameters::InspectContainerOptions;
use common::*;
use composer::model::ServiceStatus;
use composer::{Error, Event, RemoveOptions, UpdateOptions};
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn three_services(app_id: u64, worker_env: &str, db_cmd: &str) -> serde_json::Value {
    let port = format!("{}:8080", 20_000 + app_id % 20_000);
    json!({
        "services": {
            "web": {"id": 1, "image_id": 11, "image": BASE,
                "composition": {"command": ["httpd", "-f", "-p", "8080"], "networks": ["backend", "default"],
                    "ports": [port]}},
            "db": {"id": 2, "image_id": 12, "image": BASE,
                "composition": {"command": ["sh", "-c", db_cmd], "volumes": ["data:/data"],
                    "networks": ["backend"]}},
            "worker": {"id": 3, "image_id": 13, "image": BASE, "environment": {"MODE": worker_env},
                "composition": {"command": "sleep 3600", "depends_on": ["db"]}}
        },
        "networks": {"backend": {}},
        "volumes": {"data": {}}
    })
}

const DB_FIRST: &str = "echo hello > /data/x && exec sleep 3600";
const DB_SECOND: &str = "test -f /data/x && exec sleep 3600";

fn ids(state: &composer::CurrentState) -> Vec<(String, String)> {
    state
        .services
        .iter()
        .map(|(k, v)| (k.clone(), v.container_id.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn fresh_install_is_idempotent_and_update_recreates_only_the_changed_service() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let composer = guard.composer();
    let empty = composer.state().await.unwrap();
    assert_eq!(empty.status, "Idle");
    assert!(empty.services.is_empty());

    let v1 = guard.target("c0mmit1", 1, three_services(guard.app_id, "a", DB_FIRST));
    let state = composer
        .update("c0mmit1", &v1, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(state.services.len(), 3, "{state:#?}");
    for (name, s) in &state.services {
        assert_eq!(s.status, ServiceStatus::Running, "{name}: {state:#?}");
        assert_eq!(s.commit.as_deref(), Some("c0mmit1"));
    }
    assert_eq!(state.commit.as_deref(), Some("c0mmit1"));
    let uuid = &guard.uuid;
    assert_eq!(
        state.networks,
        vec![format!("{uuid}_backend"), format!("{uuid}_default")]
    );
    assert_eq!(state.volumes, vec![format!("{}_data", guard.app_id)]);

    // Names, labels and default environment as the reference sets them.
    let web = docker
        .inspect_container(
            state.services["web"].container_id.as_deref().unwrap(),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    assert_eq!(
        web.name,
        Some(format!("/web_{}_1_c0mmit1", guard.image_id(11)))
    );
    let config = web.config.unwrap();
    let labels = config.labels.unwrap();
    assert_eq!(labels["io.balena.supervised"], "true");
    assert_eq!(labels["io.balena.app-id"], guard.app_id.to_string());
    assert_eq!(labels["io.balena.service-name"], "web");
    let env = config.env.unwrap();
    assert!(
        env.contains(&"BALENA_SERVICE_NAME=web".to_owned()),
        "{env:?}"
    );
    assert!(
        env.contains(&"BALENA_DEVICE_NAME_AT_INIT=test-device".to_owned()),
        "{env:?}"
    );
    let networks = web.network_settings.unwrap().networks.unwrap();
    assert!(
        networks.contains_key(&format!("{uuid}_backend"))
            && networks.contains_key(&format!("{uuid}_default"))
    );

    // The same target again changes nothing: what the engine reports compares equal.
    let again = composer
        .update("c0mmit1", &v1, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&state));

    // Change only the worker; the db's new command needs the volume data written by the old one.
    let v2 = guard.target("c0mmit1", 1, three_services(guard.app_id, "b", DB_SECOND));
    let updated = composer
        .update("c0mmit1", &v2, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        updated.services["web"].container_id,
        state.services["web"].container_id
    );
    assert_ne!(
        updated.services["worker"].container_id,
        state.services["worker"].container_id
    );
    assert_ne!(
        updated.services["db"].container_id,
        state.services["db"].container_id
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let settled = composer.state().await.unwrap();
    assert_eq!(
        settled.services["db"].status,
        ServiceStatus::Running,
        "the volume kept /data/x: {settled:#?}"
    );

    // A new release with the same config only renames the containers.
    let v3 = guard.target("c0mmit2", 2, three_services(guard.app_id, "b", DB_SECOND));
    let renamed = composer
        .update("c0mmit2", &v3, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&renamed), ids(&settled));
    assert_eq!(renamed.commit.as_deref(), Some("c0mmit2"));
    assert!(
        renamed
            .services
            .values()
            .all(|s| s.commit.as_deref() == Some("c0mmit2"))
    );

    // Logs through the library.
    let mut logs = composer.logs("web", false).await.unwrap();
    let mut n = 0;
    while let Some(line) = logs.next().await {
        line.unwrap();
        n += 1;
    }
    assert_eq!(n, 0, "httpd -f prints nothing");

    // Removal of the app.
    let removed = composer.remove(RemoveOptions::default()).await.unwrap();
    assert!(
        removed.services.is_empty() && removed.networks.is_empty() && removed.volumes.is_empty(),
        "{removed:#?}"
    );
}

#[tokio::test]
async fn logs_are_readable() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let composer = guard.composer();
    let t = guard.target("c1", 1, json!({"services": {"talker": {"id": 1, "image_id": 1, "image": BASE,
        "composition": {"command": ["sh", "-c", "echo hello-out; echo hello-err >&2; exec sleep 3600"], "tty": false}}}}));
    composer
        .update("c1", &t, UpdateOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines: Vec<_> = composer
        .logs("talker", false)
        .await
        .unwrap()
        .collect()
        .await;
    let lines: Vec<_> = lines.into_iter().map(Result::unwrap).collect();
    assert!(
        lines.iter().any(|l| l.message == "hello-out" && !l.stderr),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.message == "hello-err" && l.stderr),
        "{lines:?}"
    );
    assert!(composer.logs("nope", false).await.is_err());
}

fn one_service(image: &str, strategy: &str, extra_labels: serde_json::Value) -> serde_json::Value {
    let mut labels = json!({"io.balena.update.strategy": strategy});
    if let (Some(l), Some(extra)) = (labels.as_object_mut(), extra_labels.as_object()) {
        l.extend(extra.clone());
    }
    json!({"services": {"main": {"id": 1, "image_id": 1, "image": image, "labels": labels,
        "composition": {"command": ["sleep", "3600"], "stop_grace_period": "1s"}}}})
}

/// Installs v1 (pulled), updates to v2 with `strategy`, returns the engine events of the update.
async fn strategy_run(
    strategy: &str,
    extra: serde_json::Value,
) -> (Vec<String>, Duration, [String; 3]) {
    let docker = docker().await;
    let mut guard = Guard::new(&docker, unique_id());
    let v1 = pushed_image(&docker, &mut guard, "main", "v1").await;
    let v2 = pushed_image(&docker, &mut guard, "main", "v2").await;
    let composer = guard.composer();
    let t1 = guard.target("c1", 1, one_service(&v1, strategy, extra.clone()));
    let first = composer
        .update("c1", &t1, UpdateOptions::default())
        .await
        .unwrap();
    let old_image = docker.inspect_image(&v1).await.unwrap().id.unwrap();
    let since = now_nanos();
    let t2 = guard.target("c2", 2, one_service(&v2, strategy, extra));
    let started = Instant::now();
    let second = composer
        .update("c2", &t2, UpdateOptions::default())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_ne!(
        first.services["main"].container_id,
        second.services["main"].container_id
    );
    assert_eq!(second.services["main"].status, ServiceStatus::Running);
    assert_eq!(second.services.len(), 1, "{second:#?}");
    let events = engine_events(&docker, since, guard.app_id, &[old_image]).await;
    let image_id = guard.image_id(1);
    let names = [
        format!("main_{image_id}_1_c1"),
        format!("main_{image_id}_2_c2"),
        format!("old_main_{image_id}_1_c1"),
    ];
    (events, took, names)
}

#[tokio::test]
async fn download_then_kill_pulls_before_killing() {
    let (e, _, [old, new, _]) = strategy_run("download-then-kill", json!({})).await;
    let pull = position(&e, &["image pull"]);
    let kill = position(&e, &["container destroy", &old]);
    let create = position(&e, &["container create", &new]);
    assert!(pull < kill && kill < create, "{e:#?}");
}

#[tokio::test]
async fn kill_then_download_kills_before_pulling() {
    let (e, _, [old, new, _]) = strategy_run("kill-then-download", json!({})).await;
    let kill = position(&e, &["container destroy", &old]);
    let pull = position(&e, &["image pull"]);
    let create = position(&e, &["container create", &new]);
    assert!(kill < pull && pull < create, "{e:#?}");
    // The old image stays until the new one is in (delta source), then goes.
    let delete = position(&e, &["image delete"]);
    assert!(pull < delete, "{e:#?}");
}

#[tokio::test]
async fn delete_then_download_deletes_the_old_image_before_pulling() {
    let (e, _, [old, new, _]) = strategy_run("delete-then-download", json!({})).await;
    let kill = position(&e, &["container destroy", &old]);
    let delete = position(&e, &["image delete"]);
    let pull = position(&e, &["image pull"]);
    let create = position(&e, &["container create", &new]);
    assert!(kill < delete && delete < pull && pull < create, "{e:#?}");
}

#[tokio::test]
async fn hand_over_starts_new_before_killing_old_and_honours_the_timeout() {
    let (e, took, [_, new, old]) = strategy_run(
        "hand-over",
        json!({"io.balena.update.handover-timeout": "2000"}),
    )
    .await;
    let pull = position(&e, &["image pull"]);
    let start = position(&e, &["container start", &new]);
    let kill = position(&e, &["container destroy", &old]);
    assert!(pull < start && start < kill, "{e:#?}");
    assert!(
        took >= Duration::from_millis(2000),
        "the old container waited for the timeout: {took:?}"
    );
}

#[tokio::test]
async fn hand_over_completes_early_when_the_new_service_signals() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let composer = guard.composer();
    let svc = |cmd: &str| {
        json!({"services": {"main": {"id": 1, "image_id": 1, "image": BASE,
        "labels": {"io.balena.update.strategy": "hand-over", "io.balena.update.handover-timeout": "30000"},
        "composition": {"command": ["sh", "-c", cmd], "stop_grace_period": "1s"}}}})
    };
    composer
        .update(
            "c1",
            &guard.target("c1", 1, svc("exec sleep 3600")),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let t2 = guard.target(
        "c2",
        2,
        svc("touch \"$BALENA_SERVICE_HANDOVER_COMPLETE_PATH\"; exec sleep 3600"),
    );
    let state = composer
        .update("c2", &t2, UpdateOptions::default())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(state.services["main"].commit.as_deref(), Some("c2"));
    assert!(
        !guard
            .options()
            .lock_root
            .join(guard.app_id.to_string())
            .join("main/handover-complete")
            .exists()
    );
}

#[tokio::test]
async fn an_interrupt_during_a_hand_over_finishes_it_and_reports_the_new_release() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let (composer, mut events) = guard.composer_with_events();
    // The new container never signals: only the 30 s timeout or the interrupt ends the wait.
    let svc = |mode: &str| {
        json!({"services": {"main": {"id": 1, "image_id": 1, "image": BASE,
        "environment": {"MODE": mode},
        "labels": {"io.balena.update.strategy": "hand-over", "io.balena.update.handover-timeout": "30000"},
        "composition": {"command": ["sleep", "3600"], "stop_grace_period": "1s"}}}})
    };
    let t1 = guard.target("c1", 1, svc("a"));
    composer
        .update("c1", &t1, UpdateOptions::default())
        .await
        .unwrap();
    while events.try_recv().is_ok() {}
    let cancel = CancellationToken::new();
    let on_handover = cancel.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if matches!(&e, Event::StepStarted { action, .. } if action == "handover") {
                tokio::time::sleep(Duration::from_millis(500)).await;
                on_handover.cancel();
            }
        }
    });
    let started = Instant::now();
    let t2 = guard.target("c2", 2, svc("b"));
    let options = UpdateOptions {
        cancel: Some(cancel),
        ..Default::default()
    };
    let err = composer.update("c2", &t2, options).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    let report = err.to_string();
    assert!(
        report.contains("handover main") && report.contains("main: running new release c2"),
        "{report}"
    );
    // The step finished: the old container is gone, the new one runs.
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("io.balena.app-id={}", guard.app_id)],
    )]);
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:#?}");
    assert_eq!(
        composer.state().await.unwrap().commit.as_deref(),
        Some("c2")
    );
}

#[tokio::test]
async fn a_user_lock_blocks_the_update_and_force_overrides_it() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let composer = guard.composer();
    let svc = |mode: &str| {
        json!({"services": {
        "main": {"id": 1, "image_id": 1, "image": BASE, "environment": {"MODE": mode},
            "composition": {"command": "sleep 3600", "stop_grace_period": "1s"}},
        "other": {"id": 2, "image_id": 2, "image": BASE, "composition": {"command": "sleep 3600"}}}})
    };
    let before = composer
        .update(
            "c1",
            &guard.target("c1", 1, svc("a")),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    // The user's lock, in the other service's lock dir, blocks the whole app.
    let lock = guard
        .options()
        .lock_root
        .join(guard.app_id.to_string())
        .join("other/updates.lock");
    std::fs::write(&lock, "").unwrap();
    let t2 = guard.target("c1", 1, svc("b"));
    let err = composer
        .update("c1", &t2, UpdateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UpdatesLocked { ref service, .. } if service == "other"),
        "{err}"
    );
    let after = composer.state().await.unwrap();
    assert_eq!(ids(&after), ids(&before), "nothing changed");
    assert!(lock.exists(), "the user's lock is untouched");
    let main_lock = guard
        .options()
        .lock_root
        .join(guard.app_id.to_string())
        .join("main/updates.lock");
    assert!(!main_lock.exists(), "no lock of ours is left behind");

    let forced = composer
        .update(
            "c1",
            &t2,
            UpdateOptions {
                force: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(
        forced.services["main"].container_id,
        before.services["main"].container_id
    );
    assert_eq!(
        forced.services["other"].container_id,
        before.services["other"].container_id
    );
    assert!(
        !lock.exists() && !main_lock.exists(),
        "locks released after the update"
    );
}

#[tokio::test]
async fn an_interrupted_fetch_leaves_the_release_running_and_the_next_update_converges() {
    let docker = docker().await;
    let mut guard = Guard::new(&docker, unique_id());
    let v1 = pushed_image(&docker, &mut guard, "main", "v1").await;
    let v2 = pushed_image(&docker, &mut guard, "main", "v2").await;
    let (composer, mut events) = guard.composer_with_events();
    let t1 = guard.target("c1", 1, one_service(&v1, "download-then-kill", json!({})));
    let first = composer
        .update("c1", &t1, UpdateOptions::default())
        .await
        .unwrap();
    while events.try_recv().is_ok() {}

    let cancel = CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if matches!(&e, Event::StepStarted { action, .. } if action == "fetch") {
                    cancel.cancel();
                    return true;
                }
            }
            false
        })
    };
    let t2 = guard.target("c2", 2, one_service(&v2, "download-then-kill", json!({})));
    let err = composer
        .update(
            "c2",
            &t2,
            UpdateOptions {
                cancel: Some(cancel),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    // Interrupted mid-download: nothing changed, and the report says so.
    assert!(
        matches!(&err, Error::Interrupted(r) if r.changes.is_empty()),
        "{err}"
    );
    assert!(err.to_string().contains("untouched"), "{err}");
    assert!(watcher.await.unwrap(), "a fetch started");
    let mid = composer.state().await.unwrap();
    assert_eq!(ids(&mid), ids(&first), "the running release is untouched");
    assert_eq!(mid.services["main"].status, ServiceStatus::Running);
    assert_eq!(mid.commit.as_deref(), Some("c1"));

    let done = composer
        .update("c2", &t2, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(done.commit.as_deref(), Some("c2"));
    assert_eq!(done.services["main"].image, v2);
    assert_eq!(done.services["main"].status, ServiceStatus::Running);
}

#[tokio::test]
async fn an_unmet_contract_fails_before_any_step_and_optional_services_are_skipped() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let composer = guard.composer();
    let release = |optional: bool| {
        let mut needy = json!({"id": 2, "image_id": 2, "image": BASE,
            "labels": {"io.balena.features.requires.sw.supervisor": ">=99.0.0"},
            "composition": {"command": "sleep 3600"}});
        if optional {
            needy["labels"]["io.balena.features.optional"] = json!("true");
        }
        json!({"services": {"plain": {"id": 1, "image_id": 1, "image": BASE, "composition": {"command": "sleep 3600"}},
            "needy": needy}})
    };
    let err = composer
        .update(
            "c1",
            &guard.target("c1", 1, release(false)),
            UpdateOptions::default(),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Contract { .. }), "{msg}");
    assert!(
        msg.contains("needy") && msg.contains("sw.supervisor >=99.0.0") && msg.contains("19.0.5"),
        "{msg}"
    );
    let state = composer.state().await.unwrap();
    assert!(
        state.services.is_empty() && state.networks.is_empty(),
        "nothing ran: {state:#?}"
    );

    let state = composer
        .update(
            "c1",
            &guard.target("c1", 1, release(true)),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(state.services.keys().collect::<Vec<_>>(), vec!["plain"]);
}

#[tokio::test]
async fn deltas_are_never_requested_from_plain_docker() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({"token": "t", "name": "nope"})) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let docker = docker().await;
    let mut guard = Guard::new(&docker, unique_id());
    let v1 = pushed_image(&docker, &mut guard, "main", "v1").await;
    let v2 = pushed_image(&docker, &mut guard, "main", "v2").await;
    let mut options = guard.options();
    options.delta = Some(composer::DeltaOptions {
        endpoint: format!("http://{addr}"),
        api_endpoint: format!("http://{addr}"),
    });
    options.api_key = Some("key".into());
    let composer =
        composer::Composer::new(docker.clone(), composer::AppId::Id(guard.app_id), options);
    assert_eq!(
        composer.engine_kind().await.unwrap(),
        composer::EngineKind::Docker
    );
    composer
        .update(
            "c1",
            &guard.target("c1", 1, one_service(&v1, "download-then-kill", json!({}))),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    let state = composer
        .update(
            "c2",
            &guard.target("c2", 2, one_service(&v2, "download-then-kill", json!({}))),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(state.services["main"].image, v2);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no delta request on plain Docker"
    );
}

#[tokio::test]
async fn fetch_retries_then_fails_naming_the_service() {
    let docker = docker().await;
    let guard = Guard::new(&docker, unique_id());
    let (composer, mut events) = guard.composer_with_events();
    let missing = format!("{}/composer-test/{}-missing:v1", registry(), guard.app_id);
    let t = guard.target(
        "c1",
        1,
        one_service(&missing, "download-then-kill", json!({})),
    );
    let err = composer
        .update("c1", &t, UpdateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Fetch { ref service, attempts: 4, .. } if service == "main"),
        "{err}"
    );
    let mut retries = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, Event::FetchRetry { .. }) {
            retries += 1;
        }
    }
    assert_eq!(retries, 3);
}
