//! Pulling one image, with per-layer progress.

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::events::{BuildEvent, emit};
use crate::reference::ImageReference;

/// A pulled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The reference that was pulled, with `:latest` added when it had no tag or digest.
    pub reference: String,
    /// The local image id, `sha256:…`.
    pub image_id: String,
    /// The registry digest of the pulled manifest, if the daemon recorded one.
    pub digest: Option<String>,
    /// The image's architecture, e.g. `arm64`.
    pub architecture: Option<String>,
}

/// Pulls `reference` (adding `:latest` when it has neither tag nor digest) for `platform`,
/// with `credentials` as `X-Registry-Auth`; each daemon status is reported as
/// [`BuildEvent::Progress`].
pub async fn pull_image(
    docker: &Docker,
    reference: &str,
    platform: Option<&str>,
    credentials: Option<DockerCredentials>,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<Pulled> {
    let parsed = ImageReference::parse(reference)?;
    if let Some(platform) = platform {
        platform.parse::<crate::Platform>()?;
    }
    let name = parsed.name();
    let tag = parsed.tag_or_digest();
    let full = match &parsed.digest {
        Some(digest) => format!("{name}@{digest}"),
        None => format!("{name}:{tag}"),
    };
    let options = CreateImageOptionsBuilder::default()
        .from_image(&name)
        .tag(tag)
        .platform(platform.unwrap_or_default())
        .build();
    let had_credentials = credentials.is_some();
    let stream = docker.create_image(Some(options), None, credentials);
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status {
                    let event = BuildEvent::progress(info.id, status, info.progress_detail);
                    emit(events, event).await;
                }
            }
            Err(error) => {
                let message = match error {
                    bollard::errors::Error::DockerStreamError { error } => error,
                    bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                    other => return Err(Error::docker(format!("pulling {full}"), other)),
                };
                emit(
                    events,
                    BuildEvent::Error {
                        message: message.clone(),
                    },
                )
                .await;
                return Err(classify_pull_error(
                    &parsed,
                    &full,
                    message,
                    had_credentials,
                ));
            }
        }
    }
    let inspect = docker
        .inspect_image(&full)
        .await
        .map_err(|e| Error::docker(format!("inspecting pulled image {full}"), e))?;
    let digest = inspect
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| {
            let (repo, digest) = d.split_once('@')?;
            (repo == name).then(|| digest.to_owned())
        });
    Ok(Pulled {
        image_id: inspect.id.unwrap_or_default(),
        reference: full,
        digest,
        architecture: inspect.architecture,
    })
}

/// Turns the daemon's pull failure into a named error.
pub(crate) fn classify_pull_error(
    reference: &ImageReference,
    full: &str,
    message: String,
    had_credentials: bool,
) -> Error {
    let lower = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let unauthorized = || Error::Unauthorized {
        image: full.to_owned(),
        registry: reference.registry_host().to_owned(),
        credentials: if had_credentials {
            "the given credentials were refused"
        } else {
            "no credentials were given for it"
        },
        message: message.clone(),
    };
    if has(&[
        "unauthorized",
        "no basic auth credentials",
        "authentication required",
        "incorrect username or password",
    ]) {
        unauthorized()
    } else if has(&[
        "not found",
        "manifest unknown",
        "does not exist",
        "name unknown",
    ]) {
        Error::ImageNotFound {
            image: full.to_owned(),
            registry: reference.registry_host().to_owned(),
            message,
        }
    } else if has(&["denied"]) {
        unauthorized()
    } else {
        Error::PullFailed {
            image: full.to_owned(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pull_errors_are_classified() {
        let r = ImageReference::parse("127.0.0.1:5001/private/x").unwrap();
        let e = classify_pull_error(&r, "127.0.0.1:5001/private/x:latest", "Head \"http://127.0.0.1:5001/v2/private/x/manifests/latest\": no basic auth credentials".into(), false);
        assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("127.0.0.1:5001/private/x:latest")
                && text.contains("registry 127.0.0.1:5001")
                && text.contains("no credentials were given"),
            "{text}"
        );
        let e = classify_pull_error(
            &r,
            "x",
            "manifest for x not found: manifest unknown".into(),
            true,
        );
        assert!(matches!(e, Error::ImageNotFound { .. }), "{e}");
        let e = classify_pull_error(&r, "x", "connection refused".into(), true);
        assert!(matches!(e, Error::PullFailed { .. }), "{e}");
    }
}
