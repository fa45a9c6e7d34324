//! A base image is used only in the build's platform: a local image of another platform
//! (say the amd64 variant of a multi-arch image a user once ran) is replaced by the build's
//! variant before a foreign-platform build uses it, instead of silently building on it.

use bollard::Docker;
use bollard::auth::DockerCredentials;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::events::BuildEvent;
use crate::platform::Platform;
use crate::pull::pull_image;

/// What [`ensure_base_platform`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// Not on the daemon: the build pulls it (for its platform, when it names one).
    Absent,
    /// On the daemon, of the build's platform already.
    Matches,
    /// Was of `was`'s platform; the build's variant was pulled over it.
    Pulled {
        /// The platform the local image had.
        was: Platform,
    },
}

/// Makes sure that the daemon's `reference`, if it has one, is of `target`'s platform:
/// when its OS, architecture or variant differ, pulls `reference` for `target` (with
/// `credentials`, progress on `events`) and checks again. Fails naming the image and both
/// platforms when the right variant cannot be had.
pub async fn ensure_base_platform(
    docker: &Docker,
    reference: &str,
    target: &Platform,
    credentials: Option<DockerCredentials>,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<BaseImage> {
    let Some(local) = local_platform(docker, reference).await? else {
        return Ok(BaseImage::Absent);
    };
    if same_platform(&local, target) {
        return Ok(BaseImage::Matches);
    }
    let mismatch = |pull_error| Error::BasePlatform {
        image: reference.to_owned(),
        local: local.to_string(),
        target: target.to_string(),
        pull_error,
    };
    let target_text = target.to_string();
    if let Err(e) = pull_image(docker, reference, Some(&target_text), credentials, events).await {
        return Err(mismatch(Some(Box::new(e))));
    }
    match local_platform(docker, reference).await? {
        Some(now) if same_platform(&now, target) => Ok(BaseImage::Pulled { was: local }),
        _ => Err(mismatch(None)),
    }
}

/// The platform of the daemon's image `reference`; `None` when the daemon has no such image.
async fn local_platform(docker: &Docker, reference: &str) -> Result<Option<Platform>> {
    match docker.inspect_image(reference).await {
        Ok(image) => Ok(Some(Platform {
            os: image.os.unwrap_or_default(),
            architecture: image.architecture.unwrap_or_default(),
            variant: image.variant.filter(|v| !v.is_empty()),
        })),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(Error::docker(
            format!("inspecting base image {reference}"),
            e,
        )),
    }
}

/// Whether an image of platform `image` is what a build for `target` needs. A missing variant
/// is the architecture's default one (`arm64` → `v8`, `arm` → `v7`), as the daemon's own
/// platform matching takes it.
pub fn same_platform(image: &Platform, target: &Platform) -> bool {
    let default_variant = |arch: &str| match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    };
    let variant = |p: &Platform| {
        p.variant
            .as_deref()
            .or_else(|| default_variant(&p.architecture))
            .map(str::to_owned)
    };
    image.os == target.os
        && image.architecture == target.architecture
        && variant(image) == variant(target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(text: &str) -> Platform {
        text.parse().unwrap()
    }

    #[test]
    fn variants_default_per_architecture() {
        assert!(same_platform(&p("linux/arm64/v8"), &p("linux/arm64")));
        assert!(same_platform(&p("linux/arm"), &p("linux/arm/v7")));
        assert!(!same_platform(&p("linux/arm/v7"), &p("linux/arm/v6")));
        assert!(!same_platform(&p("linux/amd64"), &p("linux/arm64")));
        assert!(!same_platform(&p("windows/amd64"), &p("linux/amd64")));
    }
}
