//! The `build` stage of balena-compose: build one context, or pull one image, through the
//! Docker Engine API (bollard), with typed progress events and registry credentials.
//!
//! * [`connect`] finds and negotiates with the daemon (`--docker-host`, `DOCKER_HOST`, the
//!   default socket).
//! * [`build_image`] streams a [`ContextBody`] to the classic builder and reports
//!   [`BuildEvent`]s, one per complete output line.
//! * With [`Builder::BuildKit`], [`build_image`] builds on BuildKit instead and serves
//!   [`BuildSecrets`] (for `RUN --mount=type=secret`) and registry credentials over a session
//!   of its own (`POST /session`, upgraded to h2c, we the gRPC server); [`daemon_info`] says
//!   whether the daemon can ([`DaemonInfo::buildkit`]). Its progress is reported as the
//!   classic builder's is: steps, their output, pull progress.
//! * [`pull_image`] pulls with a platform and credentials.
//! * [`copy_image`] copies an image between daemons as one stream (save → load).
//! * [`RegistryAuth`] holds credentials from balena registry secrets (read by the caller into
//!   [`RegistrySecrets`]) and the Docker config;
//!   [`platforms_of`] / [`inspect_manifest`] read a manifest for platform selection.
//!
//! Nothing here prints; secrets never appear in `Debug`, errors or events.
//!
//! ```
//! use build::{BuildEvent, RegistryAuth, RegistryCredential, RegistrySecrets, extract_from_tag};
//!
//! let mut secrets = RegistrySecrets::new();
//! secrets.insert("127.0.0.1:5001", RegistryCredential::new("balena", "balena-test-password"));
//! let auth = RegistryAuth::from_registry_secrets(&secrets);
//! let credentials = auth.for_image("127.0.0.1:5001/private/amd64-busybox").unwrap();
//! assert_eq!(credentials.username.as_deref(), Some("balena"));
//! assert!(!format!("{auth:?}").contains("balena-test-password"));
//!
//! let from = extract_from_tag("Step 1/3 : FROM local/amd64-busybox AS base").unwrap();
//! assert_eq!((from.repo.as_str(), from.alias.as_deref()), ("local/amd64-busybox", Some("base")));
//! # let _ = BuildEvent::Output { line: String::new() };
//! ```
#![deny(missing_docs)]

mod auth;
mod base_image;
mod buildkit;
mod connect;
mod context;
mod copy;
mod daemon;
mod dial;
mod docker_context;
mod error;
mod events;
mod image_build;
mod platform;
mod pull;
mod redact;
mod reference;
mod tls;

pub use auth::{
    BasicAuthError, DockerConfigError, RegistryAuth, RegistryCredential, RegistrySecrets,
    normalise_registry_key,
};
pub use base_image::{BaseImage, ensure_base_platform, same_platform};
pub use bollard::Docker;
pub use bollard::auth::DockerCredentials;
pub use buildkit::{BuildSecrets, INLINE_CACHE_ARG, MAX_SECRET_SIZE};
pub use connect::{
    CONNECT_TIMEOUT, DEFAULT_DOCKER_HOST, REQUEST_TIMEOUT, connect, connect_to, docker_host,
};
pub use context::ContextBody;
pub use copy::{Copied, copy_image};
pub use daemon::{DaemonInfo, MIN_BUILDKIT_SECRETS_API, NoSecretMounts, daemon_info};
pub use dial::Endpoint;
pub use dial::{SshTarget, TlsFiles};
pub use docker_context::{Daemon, DaemonFlags};
pub use error::{Error, Result};
pub use events::{BuildEvent, FromTag, extract_from_tag, extract_layer, parse_step, strip_ansi};
pub use image_build::{BuildOptions, Builder, Built, FAILURE_OUTPUT_LINES, build_image, tag_image};
pub use platform::{
    MEDIATYPE_MANIFEST_LIST_V2, MEDIATYPE_MANIFEST_V1, MEDIATYPE_MANIFEST_V2,
    MEDIATYPE_OCI_IMAGE_INDEX_V1, ManifestInfo, Platform, PlatformSelection, inspect_manifest,
    mixed_platform_warning, platforms_of, select_platform_handling,
};
pub use pull::{Pulled, pull_image};
pub use redact::{MIN_FRAGMENT, REDACTED, Redactor};
pub use reference::{DOCKER_HUB_ALIASES, DOCKER_HUB_AUTH_KEY, DOCKER_HUB_HOST, ImageReference};
