//! Table tests of the planner: the reference's `app.spec.ts` cases that need no engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::model::{NetworkConfig, NetworkEndpoint, ServiceConfig, VolumeConfig, labels};

const UUID: &str = "appuuid";

fn config(image: &str) -> ServiceConfig {
    let net = format!("{UUID}_default");
    ServiceConfig {
        image: image.to_owned(),
        network_mode: net.clone(),
        networks: BTreeMap::from([(net, NetworkEndpoint::default())]),
        restart: "always".into(),
        running: true,
        ..ServiceConfig::default()
    }
}

/// A target service whose image is `image` (also its reference).
fn target(name: &str, commit: &str, image: &str) -> Service {
    Service {
        name: name.into(),
        service_id: 1,
        image_id: 1,
        release_id: 1,
        commit: commit.into(),
        image_name: image.into(),
        container_id: None,
        status: ServiceStatus::Downloaded,
        created_at: None,
        depends_on: vec![],
        exit_error: None,
        config: config(image),
    }
}

/// The running container of a target service.
fn running(t: &Service, created: &str) -> Service {
    Service {
        container_id: Some(format!("id-{}-{created}", t.name)),
        status: ServiceStatus::Running,
        created_at: Some(created.into()),
        ..t.clone()
    }
}

fn with_strategy(mut s: Service, strategy: &str) -> Service {
    s.config
        .labels
        .insert(labels::UPDATE_STRATEGY.into(), strategy.into());
    s
}

fn network(name: &str) -> Network {
    Network {
        name: name.into(),
        docker_name: format!("{UUID}_{name}"),
        id: None,
        config: NetworkConfig {
            driver: "bridge".into(),
            ipam_driver: "default".into(),
            ..NetworkConfig::default()
        },
    }
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.into(),
        docker_name: format!("1_{name}"),
        config: VolumeConfig {
            driver: "local".into(),
            ..VolumeConfig::default()
        },
    }
}

fn app(commit: &str, services: Vec<Service>) -> AppState {
    AppState {
        app_id: 1,
        app_uuid: UUID.into(),
        commit: Some(commit.into()),
        services,
        networks: vec![network("default")],
        volumes: vec![],
    }
}

fn ctx(available: &[&str]) -> PlanContext {
    PlanContext {
        available_images: available.iter().map(|s| (*s).to_owned()).collect(),
        ..PlanContext::default()
    }
}

fn locked(mut c: PlanContext) -> PlanContext {
    c.lock_held = true;
    c
}

fn actions(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| format!("{} {}", s.action(), s.subject()))
        .collect()
}

#[test]
fn volume_create_step_for_target_only_volume() {
    let mut t = app("c1", vec![]);
    t.volumes.push(volume("data"));
    let c = app("c1", vec![]);
    assert_eq!(actions(&plan(&c, &t, &ctx(&[]))), vec!["createVolume data"]);
}

#[test]
fn volume_absent_from_target_is_not_removed() {
    let t = app("c1", vec![]);
    let mut c = app("c1", vec![]);
    c.volumes.push(volume("old"));
    assert!(plan(&c, &t, &ctx(&[])).is_empty());
}

#[test]
fn volume_recreation_is_remove_then_create() {
    let mut t = app("c1", vec![]);
    let mut v = volume("data");
    v.config.labels.insert("x".into(), "1".into());
    t.volumes.push(v);
    let mut c = app("c1", vec![]);
    c.volumes.push(volume("data"));
    assert_eq!(actions(&plan(&c, &t, &ctx(&[]))), vec!["removeVolume data"]);
    c.volumes.clear();
    assert_eq!(actions(&plan(&c, &t, &ctx(&[]))), vec!["createVolume data"]);
}

#[test]
fn volume_users_are_killed_before_the_volume_changes() {
    let mut s = target("main", "c1", "img");
    s.config.volumes.push("1_data:/data".into());
    let mut t = app("c1", vec![s.clone()]);
    let mut v = volume("data");
    v.config.driver_opts.insert("o".into(), "1".into());
    t.volumes.push(v);
    let mut c = app("c1", vec![running(&s, "1")]);
    c.volumes.push(volume("data"));
    let steps = plan(&c, &t, &ctx(&["img"]));
    assert_eq!(
        actions(&steps),
        vec!["takeLock main"],
        "no removeVolume while a user lives"
    );
    let steps = plan(&c, &t, &locked(ctx(&["img"])));
    assert_eq!(actions(&steps), vec!["kill main"]);
}

#[test]
fn noop_for_services_already_stopping_during_removal() {
    let s = target("main", "c1", "img");
    let mut r = running(&s, "1");
    r.status = ServiceStatus::Stopping;
    let c = app("c1", vec![r]);
    let steps = plan_removal(&c, &locked(ctx(&[])), false);
    assert_eq!(steps, vec![Step::Noop]);
}

#[test]
fn app_removal_order() {
    let s = target("main", "c1", "img");
    let mut c = app("c1", vec![running(&s, "1")]);
    c.volumes.push(volume("data"));
    assert_eq!(
        actions(&plan_removal(&c, &ctx(&[]), false)),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan_removal(&c, &locked(ctx(&[])), false)),
        vec!["kill main"]
    );
    c.services.clear();
    assert_eq!(
        actions(&plan_removal(&c, &locked(ctx(&[])), false)),
        vec!["removeNetwork default"]
    );
    c.networks.clear();
    assert_eq!(
        actions(&plan_removal(&c, &locked(ctx(&[])), false)),
        vec!["removeVolume data"]
    );
    assert_eq!(
        actions(&plan_removal(&c, &locked(ctx(&[])), true)),
        vec!["releaseLock "]
    );
    c.volumes.clear();
    assert_eq!(
        actions(&plan_removal(&c, &locked(ctx(&[])), false)),
        vec!["releaseLock "]
    );
    assert!(plan_removal(&c, &ctx(&[]), false).is_empty());
}

#[test]
fn duplicate_networks_are_removed() {
    let t = app("c1", vec![]);
    let mut c = app("c1", vec![]);
    c.networks.push(network("default"));
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&[]))),
        vec!["removeNetwork default"]
    );
}

#[test]
fn network_recreation_kills_its_users_first() {
    let s = target("main", "c1", "img");
    let mut t = app("c1", vec![s.clone()]);
    t.networks[0].config.internal = true;
    let c = app("c1", vec![running(&s, "1")]);
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&["img"]))),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img"])))),
        vec!["kill main"]
    );
    let c = app("c1", vec![]);
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img"])))),
        vec!["noop ", "removeNetwork default"]
    );
}

#[test]
fn fetch_comes_before_kills_for_services_on_deleted_networks() {
    let s = target("main", "c1", "img1");
    let mut t = app("c2", vec![target("main", "c2", "img2")]);
    t.networks[0].config.internal = true;
    let c = app("c1", vec![running(&s, "1")]);
    assert_eq!(actions(&plan(&c, &t, &ctx(&["img1"]))), vec!["fetch main"]);
}

#[test]
fn default_network_is_created_when_missing() {
    let t = app("c1", vec![]);
    let mut c = app("c1", vec![]);
    c.networks.clear();
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&[]))),
        vec!["createNetwork default"]
    );
}

#[test]
fn service_no_longer_referenced_is_killed() {
    let s = target("old", "c1", "img");
    let t = app("c1", vec![]);
    let c = app("c1", vec![running(&s, "1")]);
    assert_eq!(actions(&plan(&c, &t, &ctx(&[]))), vec!["takeLock old"]);
    assert_eq!(actions(&plan(&c, &t, &locked(ctx(&[])))), vec!["kill old"]);
}

#[test]
fn leftover_of_interrupted_handover_is_killed() {
    let old = running(&target("main", "c1", "img1"), "1");
    let new_t = target("main", "c2", "img2");
    let new = running(&new_t, "2");
    let t = app("c2", vec![new_t]);
    let c = app("c2", vec![old.clone(), new]);
    let steps = plan(&c, &t, &locked(ctx(&["img2"])));
    assert_eq!(
        steps,
        vec![Step::Kill {
            current: Box::new(old)
        }]
    );
}

#[test]
fn older_duplicate_of_same_commit_is_killed_by_container_id() {
    let t1 = target("main", "c1", "img");
    let older = running(&t1, "1");
    let newer = running(&t1, "2");
    let t = app("c1", vec![t1]);
    let c = app("c1", vec![newer, older.clone()]);
    let steps = plan(&c, &t, &locked(ctx(&["img"])));
    assert_eq!(steps.len(), 1);
    match &steps[0] {
        Step::Kill { current } => assert_eq!(current.container_id, older.container_id),
        other => panic!("expected a kill, got {other:?}"),
    }
}

#[test]
fn dead_containers_are_removed_without_lock() {
    let s = target("main", "c1", "img");
    let mut dead = running(&s, "1");
    dead.status = ServiceStatus::Dead;
    let t = app("c1", vec![s.clone()]);
    let c = app("c1", vec![dead]);
    let steps = plan(&c, &t, &ctx(&["img"]));
    assert_eq!(actions(&steps)[0], "remove main");
    assert!(!actions(&steps).contains(&"takeLock main".to_owned()));
    // Not referenced by the target either.
    let steps = plan(&c, &app("c1", vec![]), &ctx(&[]));
    assert_eq!(actions(&steps), vec!["remove main"]);
}

#[test]
fn noop_while_an_image_downloads() {
    let t = app("c1", vec![target("main", "c1", "img")]);
    let c = app("c1", vec![]);
    let mut cx = ctx(&[]);
    cx.downloading.insert("img".into());
    assert_eq!(plan(&c, &t, &cx), vec![Step::Noop]);
}

#[test]
fn fetch_when_image_missing() {
    let t = app("c1", vec![target("main", "c1", "img")]);
    let c = app("c1", vec![]);
    assert_eq!(
        plan(&c, &t, &ctx(&[])),
        vec![Step::Fetch {
            service: "main".into(),
            image: "img".into()
        }]
    );
}

#[test]
fn no_lock_while_release_changes_and_images_download() {
    let a1 = target("a", "c1", "a1");
    let b1 = target("b", "c1", "b1");
    let t = app("c2", vec![target("a", "c2", "a1"), target("b", "c2", "b2")]);
    let c = app("c1", vec![running(&a1, "1"), running(&b1, "1")]);
    let steps = plan(&c, &t, &ctx(&["a1", "b1"]));
    assert_eq!(
        actions(&steps),
        vec!["noop a".replace(" a", " "), "fetch b".into()]
    );
    assert!(!steps.iter().any(|s| matches!(s, Step::TakeLock { .. })));
}

#[test]
fn release_change_with_same_config_is_lock_then_update_metadata() {
    let s1 = target("main", "c1", "img");
    let t = app("c2", vec![target("main", "c2", "img")]);
    let c = app("c1", vec![running(&s1, "1")]);
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&["img"]))),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img"])))),
        vec!["updateMetadata main"]
    );
}

#[test]
fn running_false_stops_with_lock() {
    let s = target("main", "c1", "img");
    let mut stopped = s.clone();
    stopped.config.running = false;
    let t = app("c1", vec![stopped]);
    let c = app("c1", vec![running(&s, "1")]);
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&["img"]))),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img"])))),
        vec!["stop main"]
    );
}

#[test]
fn exited_container_is_not_restarted() {
    let s = target("main", "c1", "img");
    let mut exited = running(&s, "1");
    exited.status = ServiceStatus::Exited;
    exited.config.running = false;
    let t = app("c1", vec![s]);
    assert!(plan(&app("c1", vec![exited.clone()]), &t, &ctx(&["img"])).is_empty());
    // …unless the engine failed to bind a port on an interface that did not exist yet.
    exited.exit_error = Some("driver failed: Error starting userland proxy: listen tcp 10.0.0.1:80: bind: cannot assign requested address".into());
    let steps = plan(&app("c1", vec![exited]), &t, &ctx(&["img"]));
    assert_eq!(actions(&steps), vec!["start main"]);
}

#[test]
fn installed_container_is_started_without_create() {
    let s = target("main", "c1", "img");
    let mut installed = running(&s, "1");
    installed.status = ServiceStatus::Installed;
    installed.config.running = false;
    let steps = plan(
        &app("c1", vec![installed.clone()]),
        &app("c1", vec![s]),
        &ctx(&["img"]),
    );
    assert_eq!(steps.len(), 1);
    assert!(
        matches!(&steps[0], Step::Start { container_id, .. } if *container_id == installed.container_id)
    );
}

#[test]
fn config_change_recreates_with_lock() {
    let s = target("main", "c1", "img");
    let mut privileged = s.clone();
    privileged.config.privileged = true;
    let t = app("c1", vec![privileged]);
    let c = app("c1", vec![running(&s, "1")]);
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&["img"]))),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img"])))),
        vec!["kill main"]
    );
    let empty = app("c1", vec![]);
    assert_eq!(
        actions(&plan(&empty, &t, &locked(ctx(&["img"])))),
        vec!["start main"]
    );
}

#[test]
fn dependency_being_installed_blocks_start() {
    let dep = target("dep", "c1", "img");
    let mut main = target("main", "c1", "img");
    main.depends_on = vec!["dep".into()];
    let t = app("c1", vec![dep.clone(), main]);
    // Nothing exists: dep starts, main waits.
    let steps = plan(&app("c1", vec![]), &t, &locked(ctx(&["img"])));
    assert_eq!(actions(&steps), vec!["start dep", "noop "]);
    // dep created but not started yet: main still waits.
    let mut installed = running(&dep, "1");
    installed.status = ServiceStatus::Installed;
    installed.config.running = false;
    let steps = plan(&app("c1", vec![installed]), &t, &locked(ctx(&["img"])));
    assert!(actions(&steps).contains(&"noop ".to_owned()), "{steps:?}");
    assert!(!actions(&steps).contains(&"start main".to_owned()));
    // dep running: main starts.
    let steps = plan(
        &app("c1", vec![running(&dep, "1")]),
        &t,
        &locked(ctx(&["img"])),
    );
    assert_eq!(actions(&steps), vec!["start main"]);
}

#[test]
fn running_state_only_change_needs_no_start_step_for_running_container() {
    let s = target("main", "c1", "img");
    let t = app("c1", vec![s.clone()]);
    assert!(plan(&app("c1", vec![running(&s, "1")]), &t, &ctx(&["img"])).is_empty());
}

#[test]
fn kill_then_download_kills_before_fetch() {
    let s1 = with_strategy(target("main", "c1", "img1"), "kill-then-download");
    let t = app(
        "c2",
        vec![with_strategy(
            target("main", "c2", "img2"),
            "kill-then-download",
        )],
    );
    let c = app("c1", vec![running(&s1, "1")]);
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&["img1"]))),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img1"])))),
        vec!["kill main"]
    );
    let empty = app("c2", vec![]);
    assert_eq!(
        actions(&plan(&empty, &t, &locked(ctx(&[])))),
        vec!["fetch main"]
    );
}

#[test]
fn download_then_kill_waits_for_every_image() {
    let a1 = target("a", "c1", "a1");
    let b1 = target("b", "c1", "b1");
    let t = app("c2", vec![target("a", "c2", "a2"), target("b", "c2", "b2")]);
    let c = app("c1", vec![running(&a1, "1"), running(&b1, "1")]);
    let steps = plan(&c, &t, &locked(ctx(&["a1", "b1", "a2"])));
    assert_eq!(
        actions(&steps),
        vec!["noop ", "fetch b"],
        "no kill before b2 is there"
    );
    let steps = plan(&c, &t, &locked(ctx(&["a2", "b2"])));
    assert_eq!(actions(&steps), vec!["kill a", "kill b"]);
}

#[test]
fn default_strategy_multi_container_compliance() {
    // main keeps its image, old is removed, new is added.
    let main = target("main", "c1", "m");
    let old = target("old", "c1", "o");
    let t = app(
        "c2",
        vec![target("main", "c2", "m"), target("new", "c2", "n")],
    );
    let c = app("c1", vec![running(&main, "1"), running(&old, "1")]);
    let steps = plan(&c, &t, &locked(ctx(&["m", "o"])));
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Kill { .. })),
        "{steps:?}"
    );
    assert!(actions(&steps).contains(&"fetch new".to_owned()));
    let steps = plan(&c, &t, &locked(ctx(&["m", "o", "n"])));
    let a = actions(&steps);
    assert!(
        a.contains(&"kill old".to_owned()) && a.contains(&"start new".to_owned()),
        "{a:?}"
    );
}

#[test]
fn kill_then_download_multi_container_fetches_and_kills_together_and_waits_to_start() {
    let ktd = |s| with_strategy(s, "kill-then-download");
    let main = ktd(target("main", "c1", "m"));
    let old = ktd(target("old", "c1", "o"));
    let t = app(
        "c2",
        vec![
            ktd(target("main", "c2", "m")),
            ktd(target("new", "c2", "n")),
        ],
    );
    let c = app("c1", vec![running(&main, "1"), running(&old, "1")]);
    let a = actions(&plan(&c, &t, &locked(ctx(&["m", "o"]))));
    assert!(a.contains(&"fetch new".to_owned()), "{a:?}");
    assert!(a.contains(&"kill old".to_owned()), "{a:?}");
    assert!(a.contains(&"updateMetadata main".to_owned()), "{a:?}");
}

#[test]
fn delete_then_download_removes_the_old_image_before_fetching() {
    let dtd = |s| with_strategy(s, "delete-then-download");
    let t = app("c2", vec![dtd(target("main", "c2", "img2"))]);
    let c = app("c2", vec![]);
    let mut cx = locked(ctx(&[]));
    cx.unused_images.push(UnusedImage {
        service: "main".into(),
        image: "img1".into(),
    });
    assert_eq!(
        plan(&c, &t, &cx),
        vec![Step::RemoveImage {
            image: "img1".into()
        }]
    );
    // With kill-then-download the old image is a delta source and stays until the new one is in.
    let ktd = app(
        "c2",
        vec![with_strategy(
            target("main", "c2", "img2"),
            "kill-then-download",
        )],
    );
    assert_eq!(actions(&plan(&c, &ktd, &cx)), vec!["fetch main"]);
    cx.available_images.insert("img2".into());
    assert_eq!(
        plan(&c, &ktd, &cx),
        vec![Step::RemoveImage {
            image: "img1".into()
        }]
    );
}

#[test]
fn no_image_removal_while_downloading() {
    let t = app("c2", vec![target("main", "c2", "img2")]);
    let mut cx = ctx(&[]);
    cx.downloading.insert("img2".into());
    cx.unused_images.push(UnusedImage {
        service: "other".into(),
        image: "img1".into(),
    });
    assert_eq!(plan(&app("c2", vec![]), &t, &cx), vec![Step::Noop]);
}

#[test]
fn handover_fetches_then_hands_over_with_lock() {
    let ho = |s| with_strategy(s, "hand-over");
    let s1 = ho(target("main", "c1", "img1"));
    let t = app("c2", vec![ho(target("main", "c2", "img2"))]);
    let c = app("c1", vec![running(&s1, "1")]);
    assert_eq!(actions(&plan(&c, &t, &ctx(&["img1"]))), vec!["fetch main"]);
    assert_eq!(
        actions(&plan(&c, &t, &ctx(&["img2"]))),
        vec!["takeLock main"]
    );
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img2"])))),
        vec!["handover main"]
    );
}

#[test]
fn invalid_handover_value_means_download_then_kill() {
    let s1 = with_strategy(target("main", "c1", "img1"), "handover");
    let t = app(
        "c2",
        vec![with_strategy(target("main", "c2", "img2"), "handover")],
    );
    let c = app("c1", vec![running(&s1, "1")]);
    assert_eq!(actions(&plan(&c, &t, &ctx(&["img1"]))), vec!["fetch main"]);
    assert_eq!(
        actions(&plan(&c, &t, &locked(ctx(&["img2"])))),
        vec!["kill main"]
    );
}

#[test]
fn start_waits_for_network_creation() {
    let t = app("c1", vec![target("main", "c1", "img")]);
    let mut c = app("c1", vec![]);
    c.networks.clear();
    let steps = plan(&c, &t, &locked(ctx(&["img"])));
    assert_eq!(actions(&steps), vec!["noop ", "createNetwork default"]);
}

#[test]
fn start_waits_for_volume_creation() {
    let mut s = target("main", "c1", "img");
    s.config.volumes.push("1_data:/data".into());
    let mut t = app("c1", vec![s]);
    t.volumes.push(volume("data"));
    let steps = plan(&app("c1", vec![]), &t, &locked(ctx(&["img"])));
    assert_eq!(actions(&steps), vec!["noop ", "createVolume data"]);
}

#[test]
fn start_waits_for_all_images() {
    let t = app("c1", vec![target("a", "c1", "a"), target("b", "c1", "b")]);
    let steps = plan(&app("c1", vec![]), &t, &locked(ctx(&["a"])));
    assert_eq!(actions(&steps), vec!["noop ", "fetch b"]);
    let steps = plan(&app("c1", vec![]), &t, &locked(ctx(&["a", "b"])));
    assert_eq!(actions(&steps), vec!["start a", "start b"]);
}

#[test]
fn lock_covers_all_current_and_target_services() {
    let a = target("a", "c1", "img");
    let mut b = target("b", "c1", "img");
    b.config.privileged = true;
    let t = app("c1", vec![a.clone(), b, target("c", "c1", "img")]);
    let c = app(
        "c1",
        vec![
            running(&a, "1"),
            running(&target("b", "c1", "img"), "1"),
            running(&target("z", "c1", "img"), "1"),
        ],
    );
    let steps = plan(&c, &t, &ctx(&["img"]));
    assert_eq!(
        steps[0],
        Step::TakeLock {
            services: vec!["a".into(), "b".into(), "c".into(), "z".into()]
        }
    );
}

#[test]
fn release_lock_only_when_settled() {
    let s = target("main", "c1", "img");
    let t = app("c1", vec![s.clone()]);
    let c = app("c1", vec![running(&s, "1")]);
    assert_eq!(
        plan(&c, &t, &locked(ctx(&["img"]))),
        vec![Step::ReleaseLock]
    );
    assert!(
        plan(&c, &t, &ctx(&["img"])).is_empty(),
        "no locks, nothing to release"
    );
    let mut leftover = ctx(&["img"]);
    leftover.leftover_locks = true;
    assert_eq!(plan(&c, &t, &leftover), vec![Step::ReleaseLock]);
    // While other steps remain, no release.
    let t2 = app("c1", vec![s.clone(), target("other", "c1", "img")]);
    let steps = plan(&c, &t2, &locked(ctx(&["img"])));
    assert!(!steps.contains(&Step::ReleaseLock), "{steps:?}");
}

#[test]
fn config_equality_rules() {
    let a = config("img");
    let mut b = a.clone();
    b.running = false;
    b.hostname = "other".into();
    assert!(a.is_equal(&b), "running and hostname are not compared");
    b.labels.insert(labels::IMAGE_NAME.into(), "x".into());
    assert!(a.is_equal(&b), "the image-name label is not compared");
    let mut current = a.clone();
    current
        .networks
        .values_mut()
        .for_each(|e| e.aliases = vec!["main".into(), "abc123".into()]);
    let mut target_ = a.clone();
    target_
        .networks
        .values_mut()
        .for_each(|e| e.aliases = vec!["main".into()]);
    assert!(
        current.is_equal(&target_),
        "target aliases ⊆ current aliases"
    );
    assert!(!target_.is_equal(&current));
    current
        .networks
        .insert("extra".into(), NetworkEndpoint::default());
    assert!(
        current.is_equal(&target_),
        "extra current networks are ignored"
    );
    let mut dns = a.clone();
    dns.dns = vec!["1.1.1.1".into(), "8.8.8.8".into()];
    let mut dns2 = a.clone();
    dns2.dns = vec!["8.8.8.8".into(), "1.1.1.1".into()];
    assert_eq!(dns.differences(&dns2), vec!["dns"], "dns is ordered");
    let mut init = a.clone();
    init.init = Some(true);
    assert!(
        init.is_equal(&a),
        "init compared only when the target sets it"
    );
    assert!(!a.is_equal(&init));
}
