//! Platforms, manifests and the reference's rule for passing `platform` (spec §6.10).

use std::fmt;
use std::str::FromStr;

use bollard::Docker;
use bollard::auth::DockerCredentials;

use crate::error::{Error, Result};
use crate::reference::ImageReference;

/// `application/vnd.docker.distribution.manifest.v1+prettyjws`
pub const MEDIATYPE_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// `application/vnd.docker.distribution.manifest.v2+json`
pub const MEDIATYPE_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const MEDIATYPE_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIATYPE_OCI_IMAGE_INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";

/// An `os/architecture[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `arm64`, `amd64`, `arm`.
    pub architecture: String,
    /// e.g. `v7`.
    pub variant: Option<String>,
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| !p.is_empty() && !p.contains(char::is_whitespace);
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(Error::InvalidPlatform(s.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// What the daemon's `GET /distribution/<ref>/json` says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The media type of the manifest the reference points at.
    pub media_type: Option<String>,
    /// Its digest.
    pub digest: Option<String>,
    /// The platforms it offers (one for a single-platform image).
    pub platforms: Vec<Platform>,
}

impl ManifestInfo {
    /// Whether the daemon picks a variant by platform: a manifest list or an OCI index.
    pub fn supports_platform_selection(&self) -> bool {
        matches!(
            self.media_type.as_deref(),
            Some(MEDIATYPE_MANIFEST_LIST_V2 | MEDIATYPE_OCI_IMAGE_INDEX_V1)
        )
    }
}

/// Asks the daemon (which asks the registry) for an image's manifest, with `credentials` sent
/// as `X-Registry-Auth`.
pub async fn inspect_manifest(
    docker: &Docker,
    reference: &str,
    credentials: Option<DockerCredentials>,
) -> Result<ManifestInfo> {
    let parsed = ImageReference::parse(reference)?;
    let inspect = docker
        .inspect_registry_image(reference, credentials)
        .await
        .map_err(|e| Error::docker(format!("reading the manifest of {parsed}"), e))?;
    let platforms = inspect
        .platforms
        .into_iter()
        .filter_map(|p| {
            Some(Platform {
                os: p.os.filter(|s| !s.is_empty())?,
                architecture: p.architecture.filter(|s| !s.is_empty())?,
                variant: p.variant.filter(|s| !s.is_empty()),
            })
        })
        .collect();
    Ok(ManifestInfo {
        media_type: inspect.descriptor.media_type,
        digest: inspect.descriptor.digest,
        platforms,
    })
}

/// The platforms an image offers, from its manifest.
pub async fn platforms_of(
    docker: &Docker,
    reference: &str,
    credentials: Option<DockerCredentials>,
) -> Result<Vec<Platform>> {
    Ok(inspect_manifest(docker, reference, credentials)
        .await?
        .platforms)
}

/// The reference's decision (`checkAllowDockerPlatformHandling`) from the manifests of a
/// build's base images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformSelection {
    /// Every readable base image is a manifest list or index: pass `platform`.
    Use,
    /// All single-platform, or nothing readable: do not pass `platform`.
    DoNotUse,
    /// Some of each: do not pass `platform`, and warn (see [`mixed_platform_warning`]).
    Mixed {
        /// Base images that support selection.
        with: Vec<String>,
        /// Base images that do not.
        without: Vec<String>,
    },
}

/// Applies the rule to `(reference, manifest)` pairs; `None` manifests (errors) are ignored.
pub fn select_platform_handling<'a>(
    manifests: impl IntoIterator<Item = (&'a str, Option<&'a ManifestInfo>)>,
) -> PlatformSelection {
    let mut with = Vec::new();
    let mut without = Vec::new();
    for (reference, manifest) in manifests {
        match manifest {
            Some(m) if m.supports_platform_selection() => with.push(reference.to_owned()),
            Some(_) => without.push(reference.to_owned()),
            None => {}
        }
    }
    match (with.is_empty(), without.is_empty()) {
        (false, true) => PlatformSelection::Use,
        (false, false) => PlatformSelection::Mixed { with, without },
        _ => PlatformSelection::DoNotUse,
    }
}

/// The reference's warning for [`PlatformSelection::Mixed`], word for word.
pub fn mixed_platform_warning(service: &str, with: &[String], without: &[String]) -> String {
    format!(
        "Service '{service}':\n  Multi-stage Dockerfile found with a mix of base images that require\n  CPU architecture selection and base images that do not support it.\n  The following base images do not support CPU architecture selection:\n  - {}\n  The following base images require CPU architecture selection:\n  - {}\n  As a result, the CPU architecture of the machine where the Docker Engine\n  is running will be used by default to select base images that require\n  architecture selection. This may result in incorrect architecture selection\n  and \"exec format error\" at runtime. It is usually possible to override the\n  architecture in the FROM line with e.g. \"FROM --platform=linux/arm/v7\",\n  or by adding the sha256 digest of the image for a specific architecture\n  with e.g. \"FROM debian@sha256:094f57...\".",
        without.join("\n  - "),
        with.join("\n  - "),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn platform_strings() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.architecture, "arm");
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64"
        );
        for bad in ["linux", "linux/", "a/b/c/d", "linux/arm 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    fn manifest(media_type: &str) -> ManifestInfo {
        ManifestInfo {
            media_type: Some(media_type.into()),
            digest: None,
            platforms: vec![],
        }
    }

    #[test]
    fn selection_rule() {
        let list = manifest(MEDIATYPE_MANIFEST_LIST_V2);
        let index = manifest(MEDIATYPE_OCI_IMAGE_INDEX_V1);
        let single = manifest(MEDIATYPE_MANIFEST_V2);
        assert_eq!(
            select_platform_handling([("a", Some(&list)), ("b", Some(&index)), ("c", None)]),
            PlatformSelection::Use
        );
        assert_eq!(
            select_platform_handling([("a", Some(&single)), ("c", None)]),
            PlatformSelection::DoNotUse
        );
        assert_eq!(
            select_platform_handling([("c", None)]),
            PlatformSelection::DoNotUse
        );
        assert_eq!(
            select_platform_handling([("a", Some(&list)), ("b", Some(&single))]),
            PlatformSelection::Mixed {
                with: vec!["a".into()],
                without: vec!["b".into()]
            }
        );
    }

    #[test]
    fn warning_text() {
        let text = mixed_platform_warning("web", &["a".into()], &["b".into(), "c".into()]);
        assert!(text.starts_with("Service 'web':\n  Multi-stage Dockerfile found"));
        assert!(text.contains("do not support CPU architecture selection:\n  - b\n  - c\n"));
        assert!(text.contains("require CPU architecture selection:\n  - a\n"));
    }
}
