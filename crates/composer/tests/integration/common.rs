//! Helpers for the tests against the private daemon of `scripts/docker-env`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptions, EventsOptions, ListContainersOptions, ListNetworksOptions,
    ListVolumesOptions, PushImageOptions, RemoveContainerOptions, RemoveImageOptions,
};
use composer::target::{TargetApp, TargetState};
use composer::{AppId, Composer, Event, Options};
use futures::StreamExt;
use serde_json::{Value, json};
use test_support::tar_of;

pub use test_support::{docker, registry};

pub const BASE: &str = "local/amd64-busybox:latest";

/// A unique app id per test (and per process).
pub fn unique_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let pid = u64::from(std::process::id());
    100_000
        + (pid % 1000) * 100_000
        + (nanos / 1000 % 1000) * 100
        + N.fetch_add(1, Ordering::SeqCst) % 100
}

/// Removes the app's containers, networks, volumes and pushed images when dropped.
pub struct Guard {
    pub docker: Docker,
    pub app_id: u64,
    pub uuid: String,
    pub images: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Guard {
    pub fn new(docker: &Docker, app_id: u64) -> Self {
        Self {
            docker: docker.clone(),
            app_id,
            uuid: format!("a{app_id:x}"),
            images: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn options(&self) -> Options {
        let mut o = Options {
            lock_root: self.dir.path().join("locks"),
            state_dir: self.dir.path().join("state"),
            fetch_backoff: Duration::from_millis(100),
            ..Options::default()
        };
        o.device.uuid = "device0".into();
        o.device.name = "test-device".into();
        o.device.device_type = "genericx86-64-ext".into();
        o.device.arch = Some(platform::Arch::Amd64);
        o.device.os_version = Some("balenaOS 2.113.4".into());
        o
    }

    pub fn composer(&self) -> Composer {
        Composer::new(self.docker.clone(), AppId::Id(self.app_id), self.options())
    }

    pub fn composer_with_events(&self) -> (Composer, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (self.composer().with_events(tx), rx)
    }

    /// A target app document for this app.
    pub fn target(&self, commit: &str, release_id: u64, release: Value) -> TargetApp {
        let doc = json!({"apps": {self.uuid.clone(): {"id": self.app_id, "name": "testapp",
            "releases": {commit: {"id": release_id,
                "services": release.get("services").cloned().unwrap_or(json!({})),
                "networks": release.get("networks").cloned().unwrap_or(json!({})),
                "volumes": release.get("volumes").cloned().unwrap_or(json!({}))}}}}});
        let state = TargetState::from_value(doc).unwrap();
        let mut app = state.apps[0].clone();
        // Container names are global: make them unique per test through the image ids.
        for release in app.releases.values_mut() {
            for svc in release.services.values_mut() {
                svc.image_id = self.image_id(svc.image_id);
            }
        }
        app
    }

    /// The image id a test's service with image id `n` gets.
    pub fn image_id(&self, n: u64) -> u64 {
        self.app_id * 100 + n
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let app_id = self.app_id;
        let uuid = self.uuid.clone();
        let images = std::mem::take(&mut self.images);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(cleanup(&docker, app_id, &uuid, &images));
        })
        .join();
    }
}

pub async fn cleanup(docker: &Docker, app_id: u64, uuid: &str, images: &[String]) {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("io.balena.app-id={app_id}")],
    )]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    for c in containers {
        if let Some(id) = c.id {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    }),
                )
                .await;
        }
    }
    for n in docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .unwrap_or_default()
    {
        if n.name
            .as_deref()
            .is_some_and(|name| name.starts_with(&format!("{uuid}_")))
        {
            let _ = docker
                .remove_network(n.id.as_deref().unwrap_or_default())
                .await;
        }
    }
    let volumes = docker
        .list_volumes(None::<ListVolumesOptions>)
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default();
    for v in volumes {
        if v.name.starts_with(&format!("{app_id}_")) {
            let _ = docker
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
    }
    for i in images {
        let _ = docker
            .remove_image(
                i,
                Some(RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await;
    }
}

/// Builds a tiny image `FROM` the base with a distinguishing label, pushes it to the local
/// registry and removes it locally, so that an update has to pull it.
pub async fn pushed_image(docker: &Docker, guard: &mut Guard, name: &str, tag: &str) -> String {
    let repo = format!("{}/composer-test/{}-{name}", registry(), guard.app_id);
    let reference = format!("{repo}:{tag}");
    let context = tar_of(&[("Dockerfile", format!("FROM {BASE}\n"))]);
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(reference.clone()),
        rm: true,
        labels: Some(HashMap::from([(
            "test.version".to_owned(),
            format!("{name}-{tag}-{}", guard.app_id),
        )])),
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = build.next().await {
        item.unwrap();
    }
    let mut push = docker.push_image(
        &repo,
        Some(PushImageOptions {
            tag: Some(tag.to_owned()),
            platform: None,
        }),
        Some(DockerCredentials::default()),
    );
    while let Some(item) = push.next().await {
        item.unwrap();
    }
    docker
        .remove_image(&reference, None::<RemoveImageOptions>, None)
        .await
        .unwrap();
    guard.images.push(reference.clone());
    reference
}

/// Engine events since `since` (unix seconds) until now, as `type action name-or-image`.
pub async fn engine_events(
    docker: &Docker,
    since_nanos: i64,
    app_id: u64,
    extra_ids: &[String],
) -> Vec<String> {
    let since = since_nanos / 1_000_000_000;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut stream = docker.events(Some(EventsOptions {
        since: Some(since.to_string()),
        until: Some(until.to_string()),
        filters: None,
    }));
    let mut out = Vec::new();
    while let Some(Ok(e)) = stream.next().await {
        if e.time_nano.unwrap_or(0) < since_nanos {
            continue;
        }
        let typ = e.typ.map(|t| t.to_string()).unwrap_or_default();
        let action = e.action.unwrap_or_default();
        let actor = e.actor.unwrap_or_default();
        let attrs = actor.attributes.unwrap_or_default();
        let ours = attrs
            .get("io.balena.app-id")
            .is_some_and(|a| *a == app_id.to_string())
            || actor
                .id
                .as_deref()
                .is_some_and(|i| i.contains(&format!("composer-test/{app_id}-")))
            || actor.id.as_ref().is_some_and(|i| extra_ids.contains(i));
        if !ours {
            continue;
        }
        let subject = attrs
            .get("name")
            .cloned()
            .unwrap_or_else(|| actor.id.clone().unwrap_or_default());
        out.push(format!("{typ} {action} {subject}"));
    }
    out
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Position of the first event matching all the words.
pub fn position(events: &[String], words: &[&str]) -> usize {
    events
        .iter()
        .position(|e| words.iter().all(|w| e.contains(w)))
        .unwrap_or_else(|| panic!("no event with {words:?} in {events:#?}"))
}
