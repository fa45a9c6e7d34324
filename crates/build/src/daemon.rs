//! What the daemon can do for build secrets: BuildKit secret mounts (Docker 20.10 and later,
//! API 1.41, Linux), or balenaEngine's build volumes.

use bollard::Docker;

use crate::error::{Error, Result};

/// The oldest API whose built-in Dockerfile frontend accepts `RUN --mount=type=secret`
/// without a `# syntax` image (Docker 20.10; 18.09 and 19.03 needed the experimental
/// frontend, pulled from Docker Hub).
pub const MIN_BUILDKIT_SECRETS_API: (u32, u32) = (1, 41);

/// The daemon, as far as build secrets are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonInfo {
    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The highest API version the daemon speaks, e.g. `1.41`.
    pub api_version: String,
    /// `linux` or `windows`.
    pub os: String,
    /// Whether it is balenaEngine, whose classic builder honours build `volumes`.
    pub balena_engine: bool,
}

impl DaemonInfo {
    /// From the daemon's `GET /version` answer.
    pub fn from_version(version: &bollard::models::SystemVersion) -> Self {
        let mentions_balena = |text: &str| text.to_ascii_lowercase().contains("balena");
        let balena_engine = version
            .platform
            .as_ref()
            .is_some_and(|p| mentions_balena(&p.name))
            || version
                .components
                .iter()
                .flatten()
                .any(|c| mentions_balena(&c.name) || mentions_balena(&c.version))
            || version.version.as_deref().is_some_and(mentions_balena);
        DaemonInfo {
            version: version.version.clone().unwrap_or_default(),
            api_version: version.api_version.clone().unwrap_or_default(),
            os: version.os.clone().unwrap_or_default(),
            balena_engine,
        }
    }

    /// Whether builds can go through this daemon's BuildKit (`/build?version=2` with a
    /// session), as [`crate::Builder::BuildKit`] drives it: a Linux daemon of API 1.41
    /// (Docker 20.10) or later, whose built-in Dockerfile frontend has everything we send
    /// (secret and bind mounts, `$BUILDPLATFORM`). Older daemons build with the classic builder.
    pub fn buildkit(&self) -> bool {
        self.buildkit_secrets().is_ok()
    }

    /// `Ok` if BuildKit on this daemon can mount secrets into `RUN`s; otherwise why not.
    pub fn buildkit_secrets(&self) -> std::result::Result<(), NoSecretMounts> {
        if !self.os.is_empty() && self.os != "linux" {
            return Err(NoSecretMounts::NotLinux {
                os: self.os.clone(),
            });
        }
        let or_unknown = |text: &str| {
            if text.is_empty() {
                "unknown".to_owned()
            } else {
                text.to_owned()
            }
        };
        match parse_api(&self.api_version) {
            Some(api) if api >= MIN_BUILDKIT_SECRETS_API => Ok(()),
            _ => Err(NoSecretMounts::TooOld {
                version: or_unknown(&self.version),
                api_version: or_unknown(&self.api_version),
            }),
        }
    }
}

/// Why a daemon's BuildKit cannot mount secrets into `RUN`s
/// ([`DaemonInfo::buildkit_secrets`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoSecretMounts {
    /// A daemon on another OS than Linux.
    #[error("the Docker daemon runs on {os}; BuildKit secret mounts need a Linux daemon")]
    NotLinux {
        /// What the daemon runs on.
        os: String,
    },
    /// A daemon older than Docker 20.10 (API 1.41).
    #[error(
        "the Docker daemon (version {version}, API {api_version}) is too old for BuildKit secret mounts, \
         which need Docker 20.10 (API {}.{}) or later",
        MIN_BUILDKIT_SECRETS_API.0,
        MIN_BUILDKIT_SECRETS_API.1
    )]
    TooOld {
        /// The engine's version (`unknown` when it says none).
        version: String,
        /// Its API version (`unknown` when it says none).
        api_version: String,
    },
}

fn parse_api(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Asks the daemon what it is.
pub async fn daemon_info(docker: &Docker) -> Result<DaemonInfo> {
    let version = docker
        .version()
        .await
        .map_err(|e| Error::docker("asking the Docker daemon for its version", e))?;
    Ok(DaemonInfo::from_version(&version))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bollard::models::{SystemVersion, SystemVersionComponents, SystemVersionPlatform};

    fn version(platform: &str, api: &str, os: &str) -> SystemVersion {
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: platform.to_owned(),
            }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".to_owned(),
                version: "20.10.24".to_owned(),
                details: None,
            }]),
            version: Some("20.10.24".to_owned()),
            api_version: Some(api.to_owned()),
            os: Some(os.to_owned()),
            ..SystemVersion::default()
        }
    }

    #[test]
    fn docker_20_10_can_mount_secrets() {
        let info = DaemonInfo::from_version(&version("Docker Engine - Community", "1.41", "linux"));
        assert!(!info.balena_engine);
        assert_eq!(info.buildkit_secrets(), Ok(()));
        assert!(info.buildkit());
    }

    #[test]
    fn old_or_windows_daemons_say_why_not() {
        let old = DaemonInfo::from_version(&version("", "1.40", "linux"));
        assert!(
            old.buildkit_secrets()
                .unwrap_err()
                .to_string()
                .contains("Docker 20.10 (API 1.41)")
        );
        let windows = DaemonInfo::from_version(&version("", "1.43", "windows"));
        assert!(
            windows
                .buildkit_secrets()
                .unwrap_err()
                .to_string()
                .contains("windows")
        );
        assert!(!old.buildkit() && !windows.buildkit());
    }

    #[test]
    fn balena_engine_is_recognised() {
        let info = DaemonInfo::from_version(&version("balenaEngine", "1.41", "linux"));
        assert!(info.balena_engine);
    }
}
