//! Helpers shared by the daemon tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use build::{BuildEvent, ContextBody, Docker};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use test_support::{append_file, docker_host};

/// The private daemon as [`build::BuildOptions::daemon`] takes it.
pub fn daemon() -> build::Daemon {
    let flags = build::DaemonFlags {
        docker_host: Some(docker_host()),
        ..build::DaemonFlags::default()
    };
    build::Daemon::resolve(&flags).unwrap()
}

/// A client of the private daemon through the crate's own `connect` (its timeout and
/// credential encoding are part of what is tested).
pub async fn docker() -> Docker {
    build::connect(Some(&docker_host())).await.unwrap()
}

/// A name no other test (or test run) uses.
pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "balena-compose-build-test/{name}-{}-{nanos}",
        std::process::id()
    )
}

/// A context with these small files, produced on a blocking thread.
pub fn context(files: &[(&str, &str)]) -> ContextBody {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    ContextBody::from_producer(move |w| {
        let mut out = tar::Builder::new(w);
        for (path, content) in &files {
            append_file(&mut out, path, content.len() as u64, content.as_bytes())?;
        }
        out.finish()
    })
}

/// An events channel whose receiver collects everything until the sender is dropped.
pub fn collector() -> (mpsc::Sender<BuildEvent>, JoinHandle<Vec<BuildEvent>>) {
    let (tx, mut rx) = mpsc::channel(64);
    let handle = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(e) = rx.recv().await {
            all.push(e);
        }
        all
    });
    (tx, handle)
}

pub async fn remove_image(docker: &Docker, name: &str) {
    let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
        .force(true)
        .build();
    let _ = docker.remove_image(name, Some(options), None).await;
}

/// Builds `context` and returns the outcome with every event the build sent.
pub async fn build_collecting(
    docker: &Docker,
    context: ContextBody,
    options: &build::BuildOptions,
) -> (build::Result<build::Built>, Vec<BuildEvent>) {
    let (tx, events) = collector();
    let outcome = build::build_image(docker, context, options, &tx).await;
    drop(tx);
    (outcome, events.await.unwrap())
}

/// The `Step` events as `(index, total, instruction)`.
pub fn steps(events: &[BuildEvent]) -> Vec<(u32, u32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Step {
                index,
                total,
                instruction,
            } => Some((*index, *total, instruction.clone())),
            _ => None,
        })
        .collect()
}

/// The labels of the build-args-and-labels tests (`LABEL greeting=$GREETING` with `bonjour`,
/// and `io.balena.test=yes` from the options) are on `image`.
pub async fn assert_greeting_labels(docker: &Docker, image: &str) {
    let labels = docker
        .inspect_image(image)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(labels.get("greeting").map(String::as_str), Some("bonjour"));
    assert_eq!(
        labels.get("io.balena.test").map(String::as_str),
        Some("yes")
    );
}
