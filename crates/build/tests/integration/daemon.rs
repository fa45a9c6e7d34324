//! `build_image`, `pull_image` and manifests against the private daemon of
//! `scripts/docker-env` (see the crate README in the workspace for how to start it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io;

use build::{
    BuildEvent, BuildOptions, ContextBody, Error, MEDIATYPE_MANIFEST_LIST_V2, RegistryAuth,
    RegistryCredential,
};
use common::{
    assert_greeting_labels, build_collecting, collector, context, docker, remove_image, steps,
    unique,
};

const MULTI: &str = "127.0.0.1:5000/local/busybox-multi:latest";
const PRIVATE: &str = "127.0.0.1:5001/private/amd64-busybox";

#[tokio::test]
async fn builds_tags_and_reports_events_in_order() {
    let docker = docker().await;
    let name = unique("small");
    let options = BuildOptions {
        tags: vec![format!("{name}:one"), format!("{name}:two")],
        ..BuildOptions::default()
    };
    let dockerfile = "FROM local/amd64-busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n";
    let (built, events) = build_collecting(
        &docker,
        context(&[
            ("Dockerfile", dockerfile),
            ("hello.txt", "hello from the context\n"),
        ]),
        &options,
    )
    .await;
    let built = built.unwrap();

    let steps: Vec<(u32, u32, String)> = steps(&events);
    assert_eq!(
        steps,
        vec![
            (1, 3, "FROM local/amd64-busybox".to_owned()),
            (2, 3, "COPY hello.txt /hello.txt".to_owned()),
            (3, 3, "RUN cat /hello.txt".to_owned()),
        ]
    );
    let position = |pred: &dyn Fn(&BuildEvent) -> bool| events.iter().position(pred).unwrap();
    let run_step = position(&|e| matches!(e, BuildEvent::Step { index: 3, .. }));
    let output =
        position(&|e| matches!(e, BuildEvent::Output { line } if line == "hello from the context"));
    assert!(
        output > run_step,
        "the RUN's output follows its step: {events:#?}"
    );
    let layers: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Layer { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(layers.len(), 3, "{events:#?}");
    assert_eq!(built.layers.len(), 3);
    assert!(events.iter().all(|e| match e {
        BuildEvent::Output { line } => !line.contains('\n'),
        _ => true,
    }));

    let inspect = docker.inspect_image(&format!("{name}:two")).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(built.image_id.as_str()));
    assert!(built.image_id.starts_with("sha256:"));
    assert!(built.image_id.contains(layers[2].as_str()));
    let inspect_one = docker.inspect_image(&format!("{name}:one")).await.unwrap();
    assert_eq!(inspect_one.id, inspect.id);
    assert_eq!(built.from_tags.len(), 1);
    assert_eq!(built.from_tags[0].repo, "local/amd64-busybox");
    assert_eq!(built.digest, None, "a local build has no registry digest");
    remove_image(&docker, &format!("{name}:one")).await;
    remove_image(&docker, &format!("{name}:two")).await;
}

#[tokio::test]
async fn build_args_labels_target_and_extra_hosts_reach_the_image() {
    let docker = docker().await;
    let name = unique("args");
    let mut options = BuildOptions {
        tags: vec![name.clone()],
        target: Some("first".into()),
        nocache: true,
        extra_hosts: vec!["h-one=10.1.2.3".into(), "h-two:10.4.5.6".into()],
        network_mode: Some("none".into()),
        shm_size: Some(96 * 1024 * 1024),
        ..BuildOptions::default()
    };
    options
        .build_args
        .insert("GREETING".into(), "bonjour".into());
    options.labels.insert("io.balena.test".into(), "yes".into());
    let dockerfile = "FROM local/amd64-busybox AS first\nARG GREETING\nLABEL greeting=$GREETING\n\
        RUN grep -q 'h-one' /etc/hosts && grep -q '10.4.5.6.*h-two' /etc/hosts\n\
        RUN df -k /dev/shm | grep -q ' 98304 '\n\
        FROM local/amd64-busybox AS second\nRUN exit 9\n";
    let (built, _) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    let built = built.unwrap();
    assert_greeting_labels(&docker, &built.image_id).await;
    remove_image(&docker, &name).await;
}

#[tokio::test]
async fn failing_run_names_the_step_and_its_output() {
    let docker = docker().await;
    let dockerfile = "FROM local/amd64-busybox\nRUN echo about to fail && exit 3\n";
    let (err, events) = build_collecting(
        &docker,
        context(&[("Dockerfile", dockerfile)]),
        &BuildOptions::default(),
    )
    .await;
    let err = err.unwrap_err();
    match &err {
        Error::BuildFailed {
            message,
            step,
            output,
            layers,
        } => {
            assert!(message.contains("returned a non-zero code: 3"), "{message}");
            assert_eq!(
                step.as_deref(),
                Some("Step 2/2 : RUN echo about to fail && exit 3")
            );
            assert!(output.iter().any(|l| l == "about to fail"), "{output:?}");
            // Like the reference's failure-layers case: the layers before the failing step.
            assert_eq!(layers.len(), 1, "{layers:?}");
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("build failed at \"Step 2/2 : RUN echo about to fail && exit 3\": ")
            && text.contains("\nlast output lines:\n")
            && text.contains("\n  about to fail"),
        "{text}"
    );
    assert!(
        matches!(events.last(), Some(BuildEvent::Error { .. })),
        "{events:#?}"
    );
}

#[tokio::test]
async fn missing_dockerfile_is_a_build_failure() {
    let docker = docker().await;
    let (err, _) = build_collecting(
        &docker,
        context(&[("other", "x")]),
        &BuildOptions::default(),
    )
    .await;
    let err = err.unwrap_err();
    assert!(
        matches!(err, Error::BuildFailed { step: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Dockerfile"), "{err}");
}

#[tokio::test]
async fn a_failing_producer_aborts_the_build_with_its_error() {
    let docker = docker().await;
    let body = ContextBody::from_producer(|w| {
        let mut out = tar::Builder::new(w);
        let dockerfile = "FROM local/amd64-busybox\nCOPY . /ctx\n";
        common::append_file(
            &mut out,
            "Dockerfile",
            dockerfile.len() as u64,
            dockerfile.as_bytes(),
        )?;
        // Half a megabyte of a file, then the source breaks.
        let data = vec![7u8; 512 * 1024];
        out.get_mut().write_all(&data)?;
        Err(io::Error::other("spool file vanished"))
    });
    let (tx, _events) = collector();
    let name = unique("producer");
    let options = BuildOptions {
        tags: vec![name.clone()],
        ..BuildOptions::default()
    };
    let err = build::build_image(&docker, body, &options, &tx)
        .await
        .unwrap_err();
    match &err {
        Error::Context(e) => assert_eq!(e.to_string(), "spool file vanished"),
        other => panic!("expected the producer's error, got {other:?}"),
    }
    assert!(
        docker.inspect_image(&name).await.is_err(),
        "nothing was built"
    );
}

use std::io::Write as _;

#[tokio::test]
async fn private_registry_needs_credentials_for_pulls_and_builds() {
    let docker = docker().await;
    remove_image(&docker, PRIVATE).await;
    remove_image(&docker, &format!("{PRIVATE}:latest")).await;

    // A pull without credentials: unauthorized, naming image and registry.
    let (tx, _events) = collector();
    let err = build::pull_image(&docker, PRIVATE, None, None, &tx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(PRIVATE) && text.contains("registry 127.0.0.1:5001"),
        "{text}"
    );

    // A build FROM it without credentials.
    let dockerfile = format!("FROM {PRIVATE}\nRUN echo private base\n");
    let name = unique("private");
    let mut options = BuildOptions {
        tags: vec![name.clone()],
        nocache: true,
        pull: true,
        ..BuildOptions::default()
    };
    let err = build::build_image(
        &docker,
        context(&[("Dockerfile", &dockerfile)]),
        &options,
        &tx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no credentials were given"),
        "{err}"
    );

    // With credentials. Another registry's password full of '?', '>' and '~' makes the
    // standard base64 of X-Registry-Config contain '/' and '+', which the daemon cannot
    // decode: it then drops every credential, so this also checks the base64url fix.
    let mut auth = RegistryAuth::new();
    auth.insert(
        "127.0.0.1:5001",
        RegistryCredential::new("balena", "balena-test-password"),
    );
    auth.insert(
        "other.example:5000",
        RegistryCredential::new("u", "???>>>~~~???"),
    );
    options.registry_auth = auth;
    let (tx2, events) = collector();
    let built = build::build_image(
        &docker,
        context(&[("Dockerfile", &dockerfile)]),
        &options,
        &tx2,
    )
    .await
    .unwrap();
    drop(tx2);
    let events = events.await.unwrap();
    assert!(built.image_id.starts_with("sha256:"));
    let rendered = format!("{events:?}{built:?}{options:?}");
    assert!(
        !rendered.contains("balena-test-password"),
        "a secret leaked"
    );

    // And a pull with credentials.
    remove_image(&docker, &name).await;
    remove_image(&docker, PRIVATE).await;
    let credentials = options.registry_auth.for_image(PRIVATE);
    let pulled = build::pull_image(&docker, PRIVATE, None, credentials, &tx)
        .await
        .unwrap();
    assert_eq!(pulled.reference, format!("{PRIVATE}:latest"));
    assert!(
        pulled
            .digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{pulled:?}"
    );
}

#[tokio::test]
async fn pull_with_platform_gets_that_variant() {
    let docker = docker().await;
    let (tx, events) = collector();
    let pulled = build::pull_image(&docker, MULTI, Some("linux/arm64"), None, &tx)
        .await
        .unwrap();
    drop(tx);
    let events = events.await.unwrap();
    assert_eq!(pulled.architecture.as_deref(), Some("arm64"));
    let inspect = docker.inspect_image(&pulled.image_id).await.unwrap();
    assert_eq!(inspect.architecture.as_deref(), Some("arm64"));
    assert!(
        events.iter().any(|e| matches!(e, BuildEvent::Progress { status, .. } if status.starts_with("Status:") || status.contains("Pull complete") || status.contains("Already exists"))),
        "{events:#?}"
    );
}

#[tokio::test]
async fn pull_of_a_missing_image_says_not_found() {
    let docker = docker().await;
    let (tx, _events) = collector();
    let err = build::pull_image(
        &docker,
        "127.0.0.1:5000/local/no-such-image:nope",
        None,
        None,
        &tx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ImageNotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("127.0.0.1:5000/local/no-such-image:nope"),
        "{err}"
    );
}

#[tokio::test]
async fn manifests_and_platforms() {
    let docker = docker().await;
    let platforms = build::platforms_of(&docker, MULTI, None).await.unwrap();
    let mut archs: Vec<String> = platforms.iter().map(|p| p.architecture.clone()).collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);
    let multi = build::inspect_manifest(&docker, MULTI, None).await.unwrap();
    assert_eq!(
        multi.media_type.as_deref(),
        Some(MEDIATYPE_MANIFEST_LIST_V2)
    );
    assert!(multi.supports_platform_selection());
    let single = build::inspect_manifest(&docker, "127.0.0.1:5000/local/amd64-busybox", None)
        .await
        .unwrap();
    assert!(!single.supports_platform_selection(), "{single:?}");
    let mut auth = RegistryAuth::new();
    auth.insert(
        "127.0.0.1:5001",
        RegistryCredential::new("balena", "balena-test-password"),
    );
    let private = build::inspect_manifest(&docker, PRIVATE, auth.for_image(PRIVATE))
        .await
        .unwrap();
    assert_eq!(private.platforms.len(), 1);
    assert!(
        build::inspect_manifest(&docker, PRIVATE, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unreachable_daemon_is_a_clear_error() {
    let err = build::connect(Some("unix:///nonexistent/docker.sock"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot reach the Docker daemon at unix:///nonexistent/docker.sock: "),
        "{text}"
    );
    let err = build::connect(Some("tcp://127.0.0.1:1")).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot reach the Docker daemon at tcp://127.0.0.1:1: "),
        "{err}"
    );
    let err = build::connect(Some("ftp://x")).await.unwrap_err();
    assert!(matches!(err, Error::UnsupportedHost { .. }), "{err:?}");
}

#[tokio::test]
async fn a_build_past_its_deadline_times_out() {
    let docker = docker().await;
    let options = BuildOptions {
        nocache: true,
        timeout: Some(std::time::Duration::from_secs(1)),
        ..BuildOptions::default()
    };
    let (tx, _events) = collector();
    let dockerfile = "FROM local/amd64-busybox\nRUN sleep 5\n";
    let started = std::time::Instant::now();
    let err = build::build_image(
        &docker,
        context(&[("Dockerfile", dockerfile)]),
        &options,
        &tx,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { seconds: 1, .. }), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[tokio::test]
async fn build_with_platform_uses_that_variant_of_a_multi_arch_base() {
    let docker = docker().await;
    let name = unique("platform");
    let options = BuildOptions {
        tags: vec![name.clone()],
        platform: Some("linux/arm64".into()),
        pull: true,
        ..BuildOptions::default()
    };
    // No RUN: without binfmt_misc an arm64 RUN cannot execute on this machine.
    let dockerfile = format!("FROM {MULTI}\nLABEL built-for=arm64\n");
    let (built, _) =
        build_collecting(&docker, context(&[("Dockerfile", &dockerfile)]), &options).await;
    let built = built.unwrap();
    let inspect = docker.inspect_image(&built.image_id).await.unwrap();
    assert_eq!(inspect.architecture.as_deref(), Some("arm64"));
    remove_image(&docker, &name).await;
}
