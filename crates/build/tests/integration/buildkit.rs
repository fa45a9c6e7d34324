//! BuildKit builds against the private daemon of `scripts/docker-env`: everything the classic
//! builder's tests (`daemon.rs`) check, on BuildKit — events that read like the classic
//! builder's, build args, labels, target, extra hosts, network mode, shm size, platform,
//! inline cache metadata, private base images — and builds with secrets: the secret is
//! readable by the `RUN` (its hash lands in the image) and found nowhere else — not in any
//! layer (`docker save`), the image's history, the events, or the error of a failing build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Read;
use std::process::Command;

use build::{BuildEvent, BuildOptions, BuildSecrets, Builder, Error};
use common::{
    assert_greeting_labels, build_collecting, collector, context, daemon, docker, docker_host,
    remove_image, steps, unique,
};

const DOCKER: &str = "/usr/bin/docker";

/// A value no image, log or event contains by chance.
fn secret_value() -> String {
    format!(
        "s3cret-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn sha256_hex(data: &[u8]) -> String {
    // busybox sha256sum prints "<hex>  -"; compute the same with the system's tool.
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Every file of every layer of `image` (`docker save`), as (path, contents).
fn layer_files(image: &str) -> Vec<(String, Vec<u8>)> {
    let out = Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .args(["save", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path.ends_with("layer.tar") {
            let mut layer = tar::Archive::new(data.as_slice());
            for inner in layer.entries().unwrap() {
                let mut inner = inner.unwrap();
                let inner_path = inner.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                inner.read_to_end(&mut bytes).unwrap();
                files.push((format!("{path}:{inner_path}"), bytes));
            }
        }
        files.push((path, data));
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn secrets(id: &str, value: &str) -> BuildSecrets {
    let mut secrets = BuildSecrets::new();
    secrets.insert(id, value.as_bytes().to_vec());
    secrets
}

#[tokio::test]
async fn a_secret_is_readable_by_run_and_in_no_layer_history_or_event() {
    let docker = docker().await;
    let name = unique("bk-secret");
    let value = secret_value();
    let options = BuildOptions {
        tags: vec![format!("{name}:latest")],
        // A secret is not part of BuildKit's cache key (nor of the classic builder's with
        // balenaEngine volumes): a cached RUN from an earlier run saw an earlier value.
        nocache: true,
        builder: Builder::BuildKit,
        secrets: secrets("token", &value),
        daemon: Some(daemon()),
        ..BuildOptions::default()
    };
    let dockerfile = "FROM local/amd64-busybox\nRUN --mount=type=secret,id=token,target=/run/secrets/token cat /run/secrets/token | sha256sum > /hash && echo hashed\nRUN test ! -e /run/secrets/token && echo gone\n";
    let (built, events) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    let built = built.unwrap();

    // The RUN read the secret: the hash of exactly its contents is in the image.
    let files = layer_files(&format!("{name}:latest"));
    let hash = files
        .iter()
        .find(|(path, _)| path.ends_with(":hash"))
        .map(|(_, data)| String::from_utf8_lossy(data).into_owned())
        .expect("the image has /hash");
    assert_eq!(
        hash.split_whitespace().next(),
        Some(sha256_hex(value.as_bytes()).as_str())
    );
    // …and the secret itself is in no layer, config or manifest.
    for (path, data) in &files {
        assert!(!contains(data, value.as_bytes()), "the secret is in {path}");
    }
    let history = docker
        .image_history(&built.image_id)
        .await
        .unwrap()
        .iter()
        .map(|h| format!("{} {}", h.created_by, h.comment))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!history.contains(&value), "{history}");
    assert!(!format!("{events:?}").contains(&value));
    assert!(!format!("{options:?}").contains(&value));

    let steps: Vec<(u32, u32, String)> = steps(&events);
    assert_eq!(steps.len(), 3, "{events:#?}");
    assert_eq!(steps[0].0, 1);
    assert!(steps[0].2.starts_with("FROM "), "{steps:?}");
    assert!(
        steps[1].2.starts_with("RUN --mount=type=secret"),
        "{steps:?}"
    );
    let output: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Output { line } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert!(output.contains(&"hashed"), "{output:?}");
    assert!(output.contains(&"gone"), "{output:?}");
    assert!(built.image_id.starts_with("sha256:"));
    remove_image(&docker, &format!("{name}:latest")).await;
}

#[tokio::test]
async fn a_printed_secret_is_redacted_and_a_failing_step_is_named() {
    let docker = docker().await;
    let value = secret_value();
    let options = BuildOptions {
        builder: Builder::BuildKit,
        secrets: secrets("token", &value),
        ..BuildOptions::default()
    };
    let dockerfile = "FROM local/amd64-busybox\nRUN --mount=type=secret,id=token cat /run/secrets/token; echo; echo about to fail; exit 3\n";
    let (err, events) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    let err = err.unwrap_err();
    match &err {
        Error::BuildFailed {
            message,
            step,
            output,
            ..
        } => {
            assert!(message.contains("exit code: 3"), "{message}");
            assert!(
                step.as_deref()
                    .is_some_and(|s| s.starts_with("Step 2/2 : RUN ")),
                "{step:?}"
            );
            assert!(output.iter().any(|l| l == "about to fail"), "{output:?}");
            assert!(output.iter().any(|l| l == "[secret]"), "{output:?}");
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    assert!(!err.to_string().contains(&value));
    assert!(!format!("{events:?}").contains(&value), "{events:#?}");
    assert!(matches!(events.last(), Some(BuildEvent::Error { .. })));
}

#[tokio::test]
async fn a_missing_secret_fails_the_run_that_needs_it() {
    let docker = docker().await;
    let options = BuildOptions {
        builder: Builder::BuildKit,
        secrets: secrets("other", "x"),
        ..BuildOptions::default()
    };
    let dockerfile = "FROM local/amd64-busybox\nRUN --mount=type=secret,id=token,required=true cat /run/secrets/token\n";
    let (err, _) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    let err = err.unwrap_err();
    assert!(
        err.to_string().contains("token"),
        "the error names the secret: {err}"
    );
}

#[tokio::test]
async fn secrets_without_buildkit_are_refused_before_the_build() {
    let docker = docker().await;
    let options = BuildOptions {
        secrets: secrets("token", "x"),
        ..BuildOptions::default()
    };
    let (err, _) = build_collecting(
        &docker,
        context(&[("Dockerfile", "FROM local/amd64-busybox\n")]),
        &options,
    )
    .await;
    let err = err.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn this_daemon_can_mount_secrets() {
    let docker = docker().await;
    let info = build::daemon_info(&docker).await.unwrap();
    assert!(!info.balena_engine, "{info:?}");
    assert_eq!(info.buildkit_secrets(), Ok(()));
    assert!(info.buildkit(), "builds go through BuildKit here: {info:?}");
}

/// BuildKit asks the session, not `X-Registry-Config`, for registry credentials: a `FROM` the
/// password-protected registry builds with them and fails without.
#[tokio::test]
async fn a_private_base_image_gets_its_credentials_from_the_session() {
    let docker = docker().await;
    let dockerfile = "FROM 127.0.0.1:5001/private/amd64-busybox\nRUN --mount=type=secret,id=token test -s /run/secrets/token\n";
    let mut options = BuildOptions {
        builder: Builder::BuildKit,
        secrets: secrets("token", "x-value"),
        pull: true,
        nocache: true,
        ..BuildOptions::default()
    };
    let (err, _) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    let err = err.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("401") || text.to_lowercase().contains("unauthorized"),
        "{text}"
    );

    let mut auth = build::RegistryAuth::new();
    auth.insert(
        "127.0.0.1:5001",
        build::RegistryCredential::new("balena", "balena-test-password"),
    );
    options.registry_auth = auth;
    let name = unique("bk-private");
    options.tags = vec![name.clone()];
    let (result, events) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    result.unwrap();
    assert!(!format!("{events:?}").contains("balena-test-password"));
    remove_image(&docker, &name).await;
}

/// balenaEngine's build volumes go through our own connection and the classic builder's
/// stream. Plain Docker ignores `volumes`, so this checks the path's events, id and failure
/// reporting (not the mount, which only balenaEngine makes).
#[tokio::test]
async fn the_volumes_path_builds_and_fails_like_the_classic_one() {
    let docker = docker().await;
    let name = unique("volumes");
    let options = BuildOptions {
        tags: vec![format!("{name}:latest")],
        volumes: vec!["/nonexistent-balena-compose-test:/run/secrets:ro".to_owned()],
        daemon: Some(daemon()),
        ..BuildOptions::default()
    };
    let (built, events) = build_collecting(
        &docker,
        context(&[(
            "Dockerfile",
            "FROM local/amd64-busybox\nRUN echo through the volumes path\n",
        )]),
        &options,
    )
    .await;
    let built = built.unwrap();
    assert!(
        events.iter().any(|e| matches!(e, BuildEvent::Step { index: 2, total: 2, instruction } if instruction == "RUN echo through the volumes path")),
        "{events:#?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, BuildEvent::Output { line } if line == "through the volumes path")
        )
    );
    assert_eq!(built.layers.len(), 2, "{events:#?}");
    let inspect = docker
        .inspect_image(&format!("{name}:latest"))
        .await
        .unwrap();
    assert_eq!(inspect.id.as_deref(), Some(built.image_id.as_str()));
    remove_image(&docker, &format!("{name}:latest")).await;

    let (tx, _events) = collector();
    let err = build::build_image(
        &docker,
        context(&[(
            "Dockerfile",
            "FROM local/amd64-busybox\nRUN echo about to fail && exit 3\n",
        )]),
        &BuildOptions {
            tags: Vec::new(),
            ..options
        },
        &tx,
    )
    .await
    .unwrap_err();
    match err {
        Error::BuildFailed {
            message,
            step,
            output,
            ..
        } => {
            assert!(message.contains("returned a non-zero code: 3"), "{message}");
            assert_eq!(
                step.as_deref(),
                Some("Step 2/2 : RUN echo about to fail && exit 3")
            );
            assert!(output.iter().any(|l| l == "about to fail"), "{output:?}");
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
}

fn buildkit() -> BuildOptions {
    BuildOptions {
        builder: Builder::BuildKit,
        daemon: Some(daemon()),
        ..BuildOptions::default()
    }
}

fn outputs(events: &[BuildEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Output { line } => Some(line.as_str()),
            _ => None,
        })
        .collect()
}

/// The image's config as `docker save` has it (what `inspect` does not show, such as
/// BuildKit's inline cache metadata).
fn saved_config(image: &str) -> String {
    let files = layer_files(image);
    let manifest = files
        .iter()
        .find(|(path, _)| path == "manifest.json")
        .map(|(_, data)| serde_json::from_slice::<serde_json::Value>(data).unwrap())
        .unwrap();
    let config = manifest[0]["Config"].as_str().unwrap().to_owned();
    let data = &files.iter().find(|(path, _)| *path == config).unwrap().1;
    String::from_utf8_lossy(data).into_owned()
}

/// The classic builder's `builds_tags_and_reports_events_in_order`, on BuildKit: the same
/// steps (the image as written), the `RUN`'s output after its step, none of BuildKit's own
/// work, every tag, and the image's layers.
#[tokio::test]
async fn buildkit_progress_reads_like_the_classic_builders() {
    let docker = docker().await;
    let name = unique("bk-small");
    // No cache: the RUN runs (and prints) even if an earlier test run built the same.
    let options = BuildOptions {
        tags: vec![format!("{name}:one"), format!("{name}:two")],
        nocache: true,
        ..buildkit()
    };
    let dockerfile = "FROM local/amd64-busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n";
    let files = [
        ("Dockerfile", dockerfile),
        ("hello.txt", "hello from the context\n"),
    ];
    let (built, events) = build_collecting(&docker, context(&files), &options).await;
    let built = built.unwrap();
    assert_eq!(
        steps(&events),
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
    assert!(output > run_step, "{events:#?}");
    let noise = |line: &&str| line.starts_with("[internal]") || *line == "CACHED";
    assert!(
        !outputs(&events).iter().any(noise),
        "BuildKit's own steps are not shown: {events:#?}"
    );
    assert!(
        !events.iter().any(
            |e| matches!(e, BuildEvent::Progress { id: Some(id), .. } if id.contains("naming to"))
        ),
        "{events:#?}"
    );

    let inspect = docker.inspect_image(&format!("{name}:two")).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(built.image_id.as_str()));
    let one = docker.inspect_image(&format!("{name}:one")).await.unwrap();
    assert_eq!(one.id, inspect.id);
    let root_layers = inspect.root_fs.unwrap().layers.unwrap();
    assert_eq!(built.layers, root_layers);
    assert!(built.layers.len() >= 2, "{:?}", built.layers);
    let layer_events = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Layer { .. }))
        .count();
    assert_eq!(layer_events, built.layers.len());
    assert_eq!(built.from_tags.len(), 1);
    assert_eq!(built.from_tags[0].repo, "local/amd64-busybox");

    // `--progress plain`: the same build again shows BuildKit's own steps and its cache hits.
    let plain = BuildOptions {
        plain_progress: true,
        nocache: false,
        ..options.clone()
    };
    let (rebuilt, events) = build_collecting(&docker, context(&files), &plain).await;
    rebuilt.unwrap();
    let lines = outputs(&events);
    assert!(
        lines.iter().any(|l| l.starts_with("[internal] load")),
        "{events:#?}"
    );
    assert!(lines.contains(&"CACHED"), "{events:#?}");
    remove_image(&docker, &format!("{name}:one")).await;
    remove_image(&docker, &format!("{name}:two")).await;
}

/// The classic builder's `build_args_labels_target_and_extra_hosts_reach_the_image`, plus
/// network mode, on BuildKit. (Shm size is sent too, but BuildKit of Docker 20.10 ignores it,
/// as `DOCKER_BUILDKIT=1 docker build --shm-size` does there: see `daemon.rs`.)
#[tokio::test]
async fn buildkit_build_args_labels_target_hosts_and_network_reach_the_build() {
    let docker = docker().await;
    let name = unique("bk-args");
    let mut options = BuildOptions {
        tags: vec![name.clone()],
        target: Some("first".into()),
        nocache: true,
        extra_hosts: vec!["h-one=10.1.2.3".into(), "h-two:10.4.5.6".into()],
        network_mode: Some("none".into()),
        ..buildkit()
    };
    options
        .build_args
        .insert("GREETING".into(), "bonjour".into());
    options.labels.insert("io.balena.test".into(), "yes".into());
    let dockerfile = "FROM local/amd64-busybox AS first\nARG GREETING\nLABEL greeting=$GREETING\n\
        RUN grep -q 'h-one' /etc/hosts && grep -q '10.4.5.6.*h-two' /etc/hosts\n\
        RUN test \"$(ls /sys/class/net)\" = lo\n\
        FROM local/amd64-busybox AS second\nRUN exit 9\n";
    let (built, events) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    let built = built.unwrap_or_else(|e| panic!("{e}\n{events:#?}"));
    assert_greeting_labels(&docker, &built.image_id).await;
    remove_image(&docker, &name).await;
}

/// The classic builder's `failing_run_names_the_step_and_its_output`, on BuildKit: the step
/// is named as the classic builder names it.
#[tokio::test]
async fn a_failing_buildkit_run_names_the_step_and_its_output() {
    let docker = docker().await;
    let dockerfile = "FROM local/amd64-busybox\nRUN echo about to fail && exit 3\n";
    let (err, events) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &buildkit()).await;
    let err = err.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("build failed at \"Step 2/2 : RUN echo about to fail && exit 3\": ")
            && text.contains("\n  about to fail"),
        "{text}"
    );
    assert!(matches!(events.last(), Some(BuildEvent::Error { .. })));
}

/// Images built on BuildKit carry inline cache metadata, so they can be `cache_from` sources
/// later; a build that sets `BUILDKIT_INLINE_CACHE` itself keeps its choice.
#[tokio::test]
async fn buildkit_images_carry_inline_cache_metadata() {
    let docker = docker().await;
    let name = unique("bk-inline");
    let dockerfile = "FROM local/amd64-busybox\nRUN echo cached > /cached\n";
    let options = BuildOptions {
        tags: vec![name.clone()],
        ..buildkit()
    };
    let (built, _) =
        build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &options).await;
    built.unwrap();
    assert!(
        saved_config(&name).contains("moby.buildkit.cache.v0"),
        "no inline cache metadata in the image config"
    );
    remove_image(&docker, &name).await;

    let mut off = options.clone();
    off.build_args
        .insert(build::INLINE_CACHE_ARG.into(), "0".into());
    let (built, _) = build_collecting(&docker, context(&[("Dockerfile", dockerfile)]), &off).await;
    built.unwrap();
    assert!(!saved_config(&name).contains("moby.buildkit.cache.v0"));
    remove_image(&docker, &name).await;
}

/// A private base image on BuildKit: its credentials come from the session; refused, the
/// build fails as a pull would, with `Unauthorized` naming image and registry.
#[tokio::test]
async fn a_refused_base_image_on_buildkit_is_unauthorized() {
    let docker = docker().await;
    let image = "127.0.0.1:5001/private/amd64-busybox";
    let dockerfile = format!("FROM {image}\nRUN echo private base\n");
    let mut options = BuildOptions {
        pull: true,
        nocache: true,
        ..buildkit()
    };
    let (err, _) =
        build_collecting(&docker, context(&[("Dockerfile", &dockerfile)]), &options).await;
    let err = err.unwrap_err();
    match &err {
        Error::Unauthorized {
            registry,
            credentials,
            ..
        } => {
            assert_eq!(registry, "127.0.0.1:5001");
            assert_eq!(*credentials, "no credentials were given for it");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    let mut wrong = build::RegistryAuth::new();
    wrong.insert(
        "127.0.0.1:5001",
        build::RegistryCredential::new("balena", "not-the-password"),
    );
    options.registry_auth = wrong;
    let (err, events) =
        build_collecting(&docker, context(&[("Dockerfile", &dockerfile)]), &options).await;
    let err = err.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { credentials, .. } if *credentials == "the given credentials were refused"),
        "{err:?}"
    );
    assert!(!format!("{err}{events:?}").contains("not-the-password"));
}

/// A foreign platform on BuildKit builds from the local base of that platform.
#[tokio::test]
async fn buildkit_builds_for_a_foreign_platform() {
    let docker = docker().await;
    let name = unique("bk-arm64");
    let options = BuildOptions {
        tags: vec![name.clone()],
        platform: Some("linux/arm64".into()),
        ..buildkit()
    };
    let dockerfile = "FROM local/aarch64-busybox\nCOPY hello.txt /hello.txt\n";
    let files = [("Dockerfile", dockerfile), ("hello.txt", "hi\n")];
    let (built, events) = build_collecting(&docker, context(&files), &options).await;
    let built = built.unwrap_or_else(|e| panic!("{e}\n{events:#?}"));
    let inspect = docker.inspect_image(&built.image_id).await.unwrap();
    assert_eq!(inspect.architecture.as_deref(), Some("arm64"));
    remove_image(&docker, &name).await;
}
