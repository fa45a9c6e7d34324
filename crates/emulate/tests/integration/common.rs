//! Helpers for the tests that build on the real private Docker daemon.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub use test_support::{binfmt_lock, docker, tar_with_modes};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures::StreamExt;

/// A unique image tag for one test.
pub fn unique_tag(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "balena-compose-emulate-test/{test}:{}-{nanos}",
        std::process::id()
    )
}

/// The outcome of a classic build: the output lines and the daemon's error, if it failed.
pub struct Built {
    pub lines: Vec<String>,
    pub error: Option<String>,
}

/// Build `context` as `tag` with the classic builder (optionally for `platform`).
pub async fn build(docker: &Docker, context: Vec<u8>, tag: &str, platform: Option<&str>) -> Built {
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .version(BuilderVersion::BuilderV1);
    if let Some(platform) = platform {
        options = options.platform(platform);
    }
    let mut stream = docker.build_image(
        options.build(),
        None,
        Some(bollard::body_full(context.into())),
    );
    // Output items may split a line from its newline: join, then split.
    let mut text = String::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => text.push_str(info.stream.as_deref().unwrap_or_default()),
            Err(bollard::errors::Error::DockerStreamError { error: e }) => error = Some(e),
            Err(e) => panic!("build transport error: {e}"),
        }
    }
    Built {
        lines: text.lines().map(str::to_owned).collect(),
        error,
    }
}

/// The contents of `path` in `image`, read without running it (the image may be foreign).
pub async fn read_file(docker: &Docker, image: &str, path: &str) -> String {
    let name = unique_tag("reader").replace(['/', ':'], "-");
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                cmd: Some(vec!["/nothing".to_owned()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut archive = Vec::new();
    let mut stream = docker.download_from_container(
        &created.id,
        Some(
            DownloadFromContainerOptionsBuilder::default()
                .path(path)
                .build(),
        ),
    );
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.unwrap());
    }
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .unwrap();
    let mut tar = tar::Archive::new(archive.as_slice());
    let mut entry = tar.entries().unwrap().next().unwrap().unwrap();
    let mut contents = String::new();
    std::io::Read::read_to_string(&mut entry, &mut contents).unwrap();
    contents
}

/// Remove `image` (best effort: a failed build leaves none).
pub async fn remove_image(docker: &Docker, image: &str) {
    let _ = docker
        .remove_image(
            image,
            Some(RemoveImageOptionsBuilder::default().force(true).build()),
            None,
        )
        .await;
}

/// The enabled qemu registrations for one architecture, disabled (not removed) while this
/// lives: so that a test sees the machine as one without binfmt_misc. Re-enabled on drop, also
/// when the test panics. Hold [`binfmt_lock`] exclusive around it.
pub struct BinfmtDisabled {
    entries: Vec<PathBuf>,
}

impl BinfmtDisabled {
    /// Disable every enabled registration of `qemu_arch` (`aarch64`) in binfmt_misc at `dir`.
    pub fn new(dir: &Path, qemu_arch: &str) -> BinfmtDisabled {
        let mut guard = BinfmtDisabled {
            entries: Vec::new(),
        };
        for entry in emulate::binfmt::registrations_in(dir) {
            if entry.qemu_arch == qemu_arch && entry.enabled {
                let path = dir.join(&entry.name);
                // Writing 0 to an entry disables it, 1 enables it again.
                std::fs::write(&path, "0").unwrap();
                guard.entries.push(path);
            }
        }
        guard
    }
}

impl Drop for BinfmtDisabled {
    fn drop(&mut self) {
        for entry in &self.entries {
            let _ = std::fs::write(entry, "1");
        }
    }
}
