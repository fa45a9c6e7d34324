//! [`multibuild::run`] on a generated project, on the private daemon: the events of each
//! service in order, one outcome per service, a failing service's error (the others still
//! built), and cancellation (by the caller, and by `fail_fast`) stopping a build mid-way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multibuild::{Event, Plan, PlanOptions, ProjectSource, RunOptions, ServiceOutcome};
use test_support::{docker_cli, docker_host, write};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A project name of one test and one run: the tests of this binary share the pid, so a
/// counter tells them apart.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Removes the images of `services` of `project` when dropped (also when the test fails).
struct Images {
    project: String,
    services: Vec<&'static str>,
}

impl Drop for Images {
    fn drop(&mut self) {
        for service in &self.services {
            let _ = docker_cli(&["image", "rm", "-f", &format!("{}_{service}", self.project)]);
        }
    }
}

/// A project of `services`: each `(name, dockerfile)` under `name/`, in a compose file that
/// also pulls `local/amd64-busybox` as service `db` when `with_db`.
fn project(dir: &Path, services: &[(&str, &str)], with_db: bool) {
    let mut compose = String::from("services:\n");
    for (name, dockerfile) in services {
        compose.push_str(&format!("  {name}:\n    build: ./{name}\n"));
        write(dir, &format!("{name}/Dockerfile"), dockerfile);
    }
    if with_db {
        compose.push_str("  db:\n    image: local/amd64-busybox\n");
    }
    write(dir, "docker-compose.yml", &compose);
}

fn plan(dir: &Path, project: &str) -> Plan {
    multibuild::plan(PlanOptions {
        source: ProjectSource::Dir(dir.to_owned()),
        compose_files: vec![],
        env_file: None,
        project_name: Some(project.to_owned()),
        arch: "amd64".parse().unwrap(),
        device_type: None,
        emulation: emulate::Emulation::Native,
        tag: None,
        build_args: Default::default(),
        template_vars: Default::default(),
        multi_dockerignore: false,
    })
    .unwrap()
}

fn options(cancel: CancellationToken, fail_fast: bool) -> RunOptions {
    RunOptions {
        jobs: 4,
        fail_fast,
        nocache: false,
        pull: false,
        cache_from: vec![],
        registry_auth: Default::default(),
        host_arch: "amd64".parse().unwrap(),
        timeout: Some(Duration::from_secs(300)),
        cancel,
        daemon: None,
        reuse: multibuild::Reuse::Never,
        classic_builder: false,
        plain_progress: false,
    }
}

/// Runs `plan` on the private daemon: the outcomes, and every event sent, in order. Each
/// event also goes to `watch` as it comes (for a test that acts on progress).
async fn run(
    plan: &Plan,
    options: &RunOptions,
    watch: impl Fn(&Event) + Send + 'static,
) -> (Vec<ServiceOutcome>, Vec<Event>) {
    let docker = build::connect(Some(&docker_host())).await.unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(event) = rx.recv().await {
            watch(&event);
            all.push(event);
        }
        all
    });
    let outcomes = multibuild::run(&docker, plan, options, tx).await;
    (outcomes, collect.await.unwrap())
}

/// The service an event is about.
fn service_of(event: &Event) -> &str {
    match event {
        Event::Start { service, .. }
        | Event::Progress { service, .. }
        | Event::Warning { service, .. }
        | Event::Reuse { service, .. }
        | Event::Builder { service, .. } => service,
        Event::Done(outcome) => &outcome.service,
    }
}

/// The kinds of `service`'s events in order, runs of `Progress` as one.
fn kinds(events: &[Event], service: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for event in events.iter().filter(|e| service_of(e) == service) {
        let kind = match event {
            Event::Start { .. } => "start",
            Event::Progress { .. } => "progress",
            Event::Warning { .. } => "warning",
            Event::Reuse { .. } => "reuse",
            Event::Builder { .. } => "builder",
            Event::Done(_) => "done",
        };
        if kinds.last() != Some(&kind) || kind != "progress" {
            kinds.push(kind);
        }
    }
    kinds
}

fn outcome<'a>(outcomes: &'a [ServiceOutcome], service: &str) -> &'a ServiceOutcome {
    outcomes
        .iter()
        .find(|o| o.service == service)
        .unwrap_or_else(|| panic!("no outcome for {service}: {outcomes:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_starts_progresses_and_ends_once_with_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("mbevents");
    let _images = Images {
        project: name.clone(),
        services: vec!["app", "web"],
    };
    project(
        dir.path(),
        &[
            (
                "app",
                &format!("FROM local/amd64-busybox\nRUN echo app-{name} > /built\n"),
            ),
            (
                "web",
                &format!("FROM local/amd64-busybox\nRUN echo web-{name} > /built\n"),
            ),
        ],
        true,
    );
    let plan = plan(dir.path(), &name);
    let (outcomes, events) = run(&plan, &options(CancellationToken::new(), false), |_| {}).await;

    for service in ["app", "web"] {
        assert_eq!(
            kinds(&events, service),
            ["start", "progress", "done"],
            "{service}"
        );
    }
    // The pulled service's image is on the daemon already: it starts and is done.
    assert_eq!(kinds(&events, "db").first(), Some(&"start"));
    assert_eq!(kinds(&events, "db").last(), Some(&"done"));
    let Some(Event::Start { action, .. }) = events
        .iter()
        .find(|e| matches!(e, Event::Start { service, .. } if service == "db"))
    else {
        panic!("no start of db");
    };
    assert!(
        matches!(action, multibuild::Action::Pull { image } if image == "local/amd64-busybox:latest"),
        "{action:?}"
    );

    assert_eq!(outcomes.len(), 3, "{outcomes:#?}");
    for service in ["app", "web"] {
        let built = outcome(&outcomes, service);
        assert!(built.ok(), "{service}: {:?}\n{}", built.error, built.log);
        assert_eq!(built.image.as_deref(), Some(&*format!("{name}_{service}")));
        assert!(
            built
                .image_id
                .as_deref()
                .is_some_and(|id| id.starts_with("sha256:")),
            "{built:?}"
        );
        assert!(!built.external);
        let label = docker_cli(&["run", "--rm", &format!("{name}_{service}"), "cat", "/built"]);
        assert_eq!(
            String::from_utf8_lossy(&label.stdout).trim(),
            format!("{service}-{name}")
        );
    }
    let db = outcome(&outcomes, "db");
    assert!(db.ok(), "{:?}", db.error);
    assert!(db.external);
    // One `Done` per service, each the outcome returned.
    let done: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Done(o) => Some(o.service.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 3, "{done:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_service_fails_alone_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("mbfail");
    let _images = Images {
        project: name.clone(),
        services: vec!["good", "bad"],
    };
    project(
        dir.path(),
        &[
            (
                "good",
                &format!("FROM local/amd64-busybox\nRUN echo {name} > /built\n"),
            ),
            (
                "bad",
                "FROM local/amd64-busybox\nRUN echo going wrong && exit 3\n",
            ),
        ],
        false,
    );
    let plan = plan(dir.path(), &name);
    let (outcomes, events) = run(&plan, &options(CancellationToken::new(), false), |_| {}).await;

    let bad = outcome(&outcomes, "bad");
    let error = bad.error.as_deref().expect("the bad service fails");
    assert!(
        error.contains("exit code: 3") || error.contains("code: 3"),
        "{error}"
    );
    assert!(bad.log.contains("going wrong"), "{}", bad.log);
    assert_eq!(bad.image_id, None);
    assert_eq!(kinds(&events, "bad").last(), Some(&"done"));
    // Without fail_fast the other service is built all the same.
    let good = outcome(&outcomes, "good");
    assert!(good.ok(), "{:?}\n{}", good.error, good.log);
    assert!(good.image_id.is_some());
}

/// Runs a project whose service `slow` sleeps two minutes after printing `sleeping`, with
/// the services of `extra` beside it; the run is cancelled as soon as `slow` prints when
/// `cancel_on_sleep`. The outcomes, and how long the run took.
async fn stopped_mid_build(
    name: &str,
    extra: &[(&str, &str)],
    fail_fast: bool,
    cancel_on_sleep: bool,
) -> (Vec<ServiceOutcome>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let slow = format!("FROM local/amd64-busybox\nRUN echo sleeping {name} && sleep 120\n");
    let mut services = vec![("slow", slow.as_str())];
    services.extend_from_slice(extra);
    project(dir.path(), &services, false);
    let plan = plan(dir.path(), name);
    let cancel = CancellationToken::new();
    let options = options(cancel.clone(), fail_fast);
    let started = Instant::now();
    let (outcomes, _) = run(&plan, &options, move |event| {
        if cancel_on_sleep
            && let Event::Progress { service, event } = event
            && service == "slow"
            && format!("{event:?}").contains("sleeping")
        {
            cancel.cancel();
        }
    })
    .await;
    (outcomes, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_stops_its_builds_and_says_so() {
    let name = unique("mbcancel");
    let _images = Images {
        project: name.clone(),
        services: vec!["slow"],
    };
    let (outcomes, took) = stopped_mid_build(&name, &[], false, true).await;
    let slow = outcome(&outcomes, "slow");
    assert_eq!(slow.error.as_deref(), Some("cancelled"), "{slow:?}");
    assert!(took < Duration::from_secs(90), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_fast_cancels_the_other_services_when_one_fails() {
    let name = unique("mbfailfast");
    let _images = Images {
        project: name.clone(),
        services: vec!["slow", "bad"],
    };
    let bad = "FROM local/amd64-busybox\nRUN sleep 2 && exit 4\n";
    let (outcomes, took) = stopped_mid_build(&name, &[("bad", bad)], true, false).await;
    let bad = outcome(&outcomes, "bad");
    assert!(
        bad.error.as_deref().is_some_and(|e| e != "cancelled"),
        "{bad:?}"
    );
    let slow = outcome(&outcomes, "slow");
    assert_eq!(slow.error.as_deref(), Some("cancelled"), "{slow:?}");
    assert!(took < Duration::from_secs(90), "took {took:?}");
}
