//! Image references, split the way the Docker CLI and daemon split them.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result};

/// The registry host Docker Hub images are reported under.
pub const DOCKER_HUB_HOST: &str = "docker.io";

/// The key Docker (and balena's registry secrets) use for Docker Hub credentials.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// Host names that all mean Docker Hub (the reference's list, in its order, plus the
/// registry's own host last: `auth` tries the first six, as the reference does).
pub const DOCKER_HUB_ALIASES: &[&str] = &[
    "index.docker.io",
    "idx.docker.io",
    "docker.io",
    "cloud.docker.com",
    "hub.docker.com",
    "docker.com",
    "registry-1.docker.io",
];

static DIGEST: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$").ok()
});

/// An image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The registry host (with port), `None` for Docker Hub.
    pub registry: Option<String>,
    /// The repository path inside the registry, e.g. `library/alpine` is given as `alpine`.
    pub repository: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), if one was given.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses a reference with Docker's rule for the registry part: the first path component
    /// is a registry if it contains `.` or `:` or is `localhost`; otherwise the image is on
    /// Docker Hub.
    ///
    /// Unlike the reference's lazy regex (spec §6.9), `foo/bar.baz/qux` is a Docker Hub
    /// repository here, as it is for Docker.
    pub fn parse(reference: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        if reference.is_empty() {
            return Err(invalid("it is empty"));
        }
        if reference.chars().any(char::is_whitespace) {
            return Err(invalid("it contains whitespace"));
        }
        let (rest, digest) = match reference.rsplit_once('@') {
            Some((rest, digest)) => {
                if !DIGEST.as_ref().is_some_and(|re| re.is_match(digest)) {
                    return Err(invalid(
                        "expected [domain.tld/]repo/image[:tag][@digest] format",
                    ));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':']) || first == "localhost" || first.is_empty() =>
            {
                if first.is_empty() {
                    return Err(invalid("it starts with '/'"));
                }
                (Some(first.to_owned()), path)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(invalid("the repository name is empty"));
        }
        if tag.as_deref() == Some("") {
            return Err(invalid("the tag is empty"));
        }
        Ok(Self {
            registry,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// Whether the image lives on Docker Hub (no registry, or a Hub alias).
    pub fn is_docker_hub(&self) -> bool {
        self.registry
            .as_deref()
            .is_none_or(|r| DOCKER_HUB_ALIASES.contains(&r))
    }

    /// The registry host for messages: `docker.io` for Docker Hub.
    pub fn registry_host(&self) -> &str {
        match &self.registry {
            Some(r) if !self.is_docker_hub() => r,
            _ => DOCKER_HUB_HOST,
        }
    }

    /// `[registry/]repository`, without tag or digest.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// What to pass as the pull's `tag`: the digest, else the tag, else `latest` (an empty tag
    /// would make the daemon pull every tag of the repository).
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parts(s: &str) -> (Option<String>, String, Option<String>, Option<String>) {
        let r = ImageReference::parse(s).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn splits_like_docker() {
        assert_eq!(parts("alpine"), (None, "alpine".into(), None, None));
        assert_eq!(
            parts("registry.balena-staging.com/resin/rpi"),
            (
                Some("registry.balena-staging.com".into()),
                "resin/rpi".into(),
                None,
                None
            )
        );
        assert_eq!(
            parts("localhost:5000/foo:bar"),
            (
                Some("localhost:5000".into()),
                "foo".into(),
                Some("bar".into()),
                None
            )
        );
        assert_eq!(
            parts("localhost/foo"),
            (Some("localhost".into()), "foo".into(), None, None)
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parts(&format!("my.reg/a/b@{digest}")),
            (Some("my.reg".into()), "a/b".into(), None, Some(digest))
        );
        // Docker's rule, not the reference's lazy regex (spec §6.9 quirk).
        assert_eq!(
            parts("foo/bar.baz/qux"),
            (None, "foo/bar.baz/qux".into(), None, None)
        );
        assert_eq!(
            parts("127.0.0.1:5000/local/busybox-multi:latest"),
            (
                Some("127.0.0.1:5000".into()),
                "local/busybox-multi".into(),
                Some("latest".into()),
                None
            )
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "a@sha256:bad", "a b", "/x", "reg.io/", "x:"] {
            let err = ImageReference::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid image reference"), "{bad}: {err}");
        }
        let err = ImageReference::parse("a@sha256:bad")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[domain.tld/]repo/image[:tag][@digest]"),
            "{err}"
        );
    }

    #[test]
    fn hub_and_pull_tag() {
        let r = ImageReference::parse("docker.io/library/alpine").unwrap();
        assert!(r.is_docker_hub());
        assert_eq!(r.registry_host(), "docker.io");
        assert_eq!(r.tag_or_digest(), "latest");
        let r = ImageReference::parse("my.reg:5000/x:1.2").unwrap();
        assert!(!r.is_docker_hub());
        assert_eq!(r.registry_host(), "my.reg:5000");
        assert_eq!(r.tag_or_digest(), "1.2");
        assert_eq!(r.to_string(), "my.reg:5000/x:1.2");
    }
}
