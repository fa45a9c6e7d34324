//! BuildKit builds with secrets, against the private daemon of `scripts/docker-env`: the
//! secret is readable by the `RUN` (its hash lands in the image) and found nowhere else — not
//! in any layer (`docker save`), the image's history, the events, or the error of a failing
//! build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Command;

use build::{BuildEvent, BuildOptions, BuildSecrets, Builder, Error};
use common::{
    build_collecting, collector, context, daemon, docker, docker_host, remove_image, steps, unique,
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
                step.as_deref().is_some_and(|s| s.starts_with("[2/2] RUN ")),
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
