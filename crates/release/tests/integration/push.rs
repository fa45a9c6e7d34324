//! Pushing to the real local registries of `scripts/docker-env` through the real daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use balena_api_fake::{FakeApi, FakeConfig};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures::StreamExt;
use indexmap::IndexMap;
use release::{
    Api, BuiltImage, Error, NewRelease, PushError, PushEvent, PushJob, PushOptions, RegistryAuth,
    RetryPolicy, Secret, push_and_record, push_images,
};
use test_support::{docker, tar_of};
use tokio::sync::mpsc;

const REGISTRY: &str = "127.0.0.1:5000";

const FAST_PUSH_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_delay: Duration::from_millis(20),
    factor: 1.4,
    max_delay: Duration::from_millis(100),
};

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}

/// A small image of its own: busybox plus a file and a label, so that its digest is unique.
async fn make_image(docker: &Docker, id: &str) -> String {
    let dockerfile = format!("FROM local/amd64-busybox\nCOPY id.txt /id.txt\nLABEL test.id={id}\n");
    let body = tar_of(&[
        ("Dockerfile", dockerfile.as_bytes()),
        ("id.txt", id.as_bytes()),
    ]);
    let tag = format!("release-push-test/{id}:latest");
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(body.into())));
    while let Some(item) = stream.next().await {
        item.unwrap();
    }
    tag
}

/// What the registry serves for a reference: the `Docker-Content-Digest` of its manifest.
async fn registry_digest(registry: &str, location: &str) -> Option<String> {
    let repo = location.split_once('/').unwrap().1;
    let response = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repo}/manifests/latest"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    if !response.status().is_success() {
        return None;
    }
    response
        .headers()
        .get("Docker-Content-Digest")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn local_exists(docker: &Docker, reference: &str) -> bool {
    docker.inspect_image(reference).await.is_ok()
}

fn drain(mut rx: mpsc::UnboundedReceiver<PushEvent>) -> Vec<PushEvent> {
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn remove(docker: &Docker, images: &[String]) {
    for image in images {
        let _ = docker
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}

#[tokio::test]
async fn pushes_distinct_images_concurrently_with_the_registry_digests_and_untags() {
    let docker = docker().await;
    let run = unique("multi");
    let mut jobs = Vec::new();
    for i in 0..3 {
        let local = make_image(&docker, &format!("{run}-{i}")).await;
        jobs.push(PushJob {
            local_image: local,
            location: format!("{REGISTRY}/v2/{run}-{i}"),
        });
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let options = PushOptions {
        events: Some(tx),
        ..PushOptions::default()
    };
    let results = push_images(&docker, &jobs, &RegistryAuth::Anonymous, &options).await;
    let mut digests = Vec::new();
    for (job, result) in jobs.iter().zip(&results) {
        let pushed = result.as_ref().unwrap();
        assert_eq!(pushed.location, job.location);
        assert!(pushed.size > 1_000_000, "{pushed:?}");
        let served = registry_digest(REGISTRY, &job.location).await;
        assert_eq!(served.as_deref(), Some(pushed.digest.as_str()), "{job:?}");
        // The registry tag is gone, the local image is not.
        assert!(!local_exists(&docker, &format!("{}:latest", job.location)).await);
        assert!(local_exists(&docker, &job.local_image).await);
        digests.push(pushed.digest.clone());
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3, "each image has its own digest");

    let events = drain(rx);
    for job in &jobs {
        let of = |f: fn(&PushEvent) -> Option<&String>| {
            events
                .iter()
                .filter(|e| f(e) == Some(&job.location))
                .count()
        };
        assert_eq!(
            of(|e| match e {
                PushEvent::Tagged { location } => Some(location),
                _ => None,
            }),
            1
        );
        assert_eq!(
            of(|e| match e {
                PushEvent::Pushed { location, .. } => Some(location),
                _ => None,
            }),
            1
        );
        assert!(
            of(|e| match e {
                PushEvent::Status { location, .. } => Some(location),
                _ => None,
            }) > 0
        );
    }
    let untagged = events
        .iter()
        .filter(|e| matches!(e, PushEvent::Untagged { .. }))
        .count();
    assert_eq!(untagged, 3);
    remove(
        &docker,
        &jobs
            .iter()
            .map(|j| j.local_image.clone())
            .collect::<Vec<_>>(),
    )
    .await;
}

#[tokio::test]
async fn a_push_to_a_dead_registry_fails_after_the_bounded_retries() {
    let docker = docker().await;
    let run = unique("dead");
    let local = make_image(&docker, &run).await;
    let location = format!("127.0.0.1:{}/v2/{run}", closed_port());
    let (tx, rx) = mpsc::unbounded_channel();
    let options = PushOptions {
        retry: FAST_PUSH_RETRY,
        events: Some(tx),
        ..PushOptions::default()
    };
    let jobs = [PushJob {
        local_image: local.clone(),
        location: location.clone(),
    }];
    let results = push_images(&docker, &jobs, &RegistryAuth::Anonymous, &options).await;
    let err = results.into_iter().next().unwrap().unwrap_err();
    assert!(
        matches!(err, PushError::Push { attempts: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pushing {location}:latest failed after 3 attempt(s): "
        )),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    let retries = drain(rx)
        .into_iter()
        .filter(|e| matches!(e, PushEvent::Retrying { .. }))
        .count();
    assert_eq!(retries, 2);
    assert!(!local_exists(&docker, &format!("{location}:latest")).await);
    remove(&docker, &[local]).await;
}

#[tokio::test]
async fn credentials_reach_the_authenticated_registry_and_stay_secret() {
    let docker = docker().await;
    let registry =
        std::env::var("BALENA_COMPOSE_TEST_AUTH_REGISTRY").unwrap_or("127.0.0.1:5001".into());
    let user = std::env::var("BALENA_COMPOSE_TEST_AUTH_USER").unwrap_or("balena".into());
    let password =
        std::env::var("BALENA_COMPOSE_TEST_AUTH_PASSWORD").unwrap_or("balena-test-password".into());
    let run = unique("auth");
    let local = make_image(&docker, &run).await;
    let job = |n: &str| PushJob {
        local_image: local.clone(),
        location: format!("{registry}/v2/{run}-{n}"),
    };
    let options = PushOptions {
        retry: RetryPolicy::NONE,
        ..PushOptions::default()
    };
    let good = RegistryAuth::Password {
        username: user.clone(),
        password: Secret::new(password.clone()),
    };
    let ok = push_images(&docker, &[job("good")], &good, &options).await;
    let pushed = ok.into_iter().next().unwrap().unwrap();
    assert!(pushed.digest.starts_with("sha256:"));

    let wrong_password = "not-the-password-9f8e";
    let bad = RegistryAuth::Password {
        username: user,
        password: Secret::new(wrong_password),
    };
    let failed = push_images(&docker, &[job("bad")], &bad, &options).await;
    let err = failed.into_iter().next().unwrap().unwrap_err();
    let text = format!("{err} {err:?} {bad:?}");
    assert!(matches!(err, PushError::Push { .. }), "{text}");
    assert!(
        !text.contains(wrong_password) && !text.contains(&password),
        "{text}"
    );
    // Anonymous is refused too: the good push really carried the credentials.
    let anonymous = push_images(&docker, &[job("anon")], &RegistryAuth::Anonymous, &options).await;
    assert!(anonymous[0].is_err());
    remove(&docker, &[local]).await;
}

#[tokio::test]
async fn a_cancelled_push_stops_and_untags() {
    let docker = docker().await;
    let run = unique("cancel");
    let local = make_image(&docker, &run).await;
    let location = format!("{REGISTRY}/v2/{run}");
    let options = PushOptions::default();
    options.cancel.cancel();
    let jobs = [PushJob {
        local_image: local.clone(),
        location: location.clone(),
    }];
    let results = push_images(&docker, &jobs, &RegistryAuth::Anonymous, &options).await;
    assert!(results[0].as_ref().unwrap_err().is_cancelled());
    assert_eq!(registry_digest(REGISTRY, &location).await, None);
    assert!(!local_exists(&docker, &format!("{location}:latest")).await);
    remove(&docker, &[local]).await;
}

fn built(locals: &[(String, String)]) -> IndexMap<String, BuiltImage> {
    locals
        .iter()
        .map(|(service, local)| {
            (
                service.clone(),
                BuiltImage {
                    local_image: local.clone(),
                    daemon: None,
                    dockerfile: Some("FROM local/amd64-busybox\n".into()),
                    build_log: Some(format!("Step 1/3 : FROM local/amd64-busybox ({service})")),
                    project_type: Some("Standard Dockerfile".into()),
                    start_timestamp: Some(release::timestamp_now()),
                    end_timestamp: Some(release::timestamp_now()),
                },
            )
        })
        .collect()
}

async fn three_service_deploy(
    registry_host: String,
) -> (
    FakeApi,
    Result<IndexMap<String, release::Pushed>, Box<release::DeployOutcome>>,
    Docker,
) {
    let docker = docker().await;
    let fake = FakeApi::start(FakeConfig {
        registry_host,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(fake.url(), fake.api_key()).unwrap();
    let run = unique("deploy");
    let mut locals = Vec::new();
    for service in ["web", "api", "worker"] {
        locals.push((
            service.to_owned(),
            make_image(&docker, &format!("{run}-{service}")).await,
        ));
    }
    let composition = serde_json::json!({"services": {"web": {}, "api": {}, "worker": {}}});
    let new = NewRelease::new(7, 1001, composition, release::random_commit());
    let created = api.create_release(&new).await.unwrap();
    let options = PushOptions {
        retry: FAST_PUSH_RETRY,
        ..PushOptions::default()
    };
    let result = push_and_record(&api, &docker, &created, &built(&locals), None, &options).await;
    remove(
        &docker,
        &locals.into_iter().map(|(_, l)| l).collect::<Vec<_>>(),
    )
    .await;
    (fake, result, docker)
}

#[tokio::test]
async fn push_and_record_ends_the_release_success_with_the_registry_digests() {
    let (fake, result, docker) = three_service_deploy(REGISTRY.to_owned()).await;
    let pushed = result.unwrap();
    assert_eq!(pushed.len(), 3);
    assert_eq!(fake.records("release")[0]["status"], "success");
    let token = fake.requests_matching("GET", "/auth/v1/token");
    assert_eq!(token.len(), 1);
    for image in fake.records("image") {
        let location = image["is_stored_at__image_location"].as_str().unwrap();
        let served = registry_digest(REGISTRY, location).await.unwrap();
        assert_eq!(image["status"], "success", "{image}");
        assert_eq!(image["content_hash"].as_str(), Some(served.as_str()));
        assert!(
            image["image_size"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_000_000
        );
        assert_eq!(image["project_type"], "Standard Dockerfile");
        assert!(image["build_log"].as_str().unwrap().starts_with("Step 1/3"));
        assert!(image["push_timestamp"].is_string() && image["end_timestamp"].is_string());
        // The image can be pulled back by its digest.
        let by_digest = format!("{location}@{served}");
        let options = CreateImageOptionsBuilder::default()
            .from_image(&by_digest)
            .build();
        let mut pull = docker.create_image(Some(options), None, None);
        while let Some(item) = pull.next().await {
            item.unwrap();
        }
        assert!(local_exists(&docker, &by_digest).await);
        remove(&docker, &[by_digest]).await;
    }
}

#[tokio::test]
async fn push_and_record_ends_the_release_failed_when_the_registry_is_gone() {
    let (fake, result, _) = three_service_deploy(format!("127.0.0.1:{}", closed_port())).await;
    let outcome = result.unwrap_err();
    assert!(
        matches!(&outcome.cause, Error::ServicePush { .. }),
        "{:?}",
        outcome.cause
    );
    let text = outcome.to_string();
    assert!(
        text.starts_with("service ") && text.contains(": pushing 127.0.0.1:"),
        "{text}"
    );
    assert!(outcome.cleanup.is_none());
    assert_eq!(fake.records("release")[0]["status"], "failed");
    assert!(fake.records("release")[0]["end_timestamp"].is_string());
    for image in fake.records("image") {
        assert_eq!(image["status"], "failed", "{image}");
        assert!(
            image["error_message"].as_str().unwrap().contains("push"),
            "{image}"
        );
    }
}
