//! The `release` stage of balena-compose: a typed balena API client that records releases
//! (`release.create` of `@balena/compose`, plus the calls `balena deploy` makes around it),
//! and the pushing of images to the registry locations the API assigns.
//!
//! * [`Api`]: `whoami`, [`fleet`](Api::fleet) by slug with device type and architecture,
//!   [`create_release`](Api::create_release) (release, services five at a time, images,
//!   labels, environment), image and release updates, release tags, note, and the
//!   registry token. Transient failures are retried with backoff, and a retried POST never
//!   creates a second record.
//! * [`push_images`]: tag, push concurrently through the daemon with the right
//!   `X-Registry-Auth`, read digests and sizes, retry, untag; progress as [`PushEvent`]s.
//!   [`push_images_from`] pushes each image from a daemon of its own (the builder that built
//!   it), nothing copied through this machine.
//! * [`push_and_record`]: both together, ending the release `success` or `failed`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use release::{Api, ImageUpdate, NewRelease, ReleaseUpdate, Status};
//! # let fake = balena_api_fake::FakeApi::start(Default::default()).await?;
//! # let (url, key) = (fake.url().to_owned(), fake.api_key().to_owned());
//!
//! let api = Api::new(&url, key)?;
//! let user = api.whoami().await?;
//! let fleet = api.fleet("gh_tester/testfleet").await?;
//! assert_eq!(fleet.arch, "amd64");
//!
//! let composition = serde_json::json!({"services": {"main": {"labels": {"a": "b"}}}});
//! let new = NewRelease::new(user.id, fleet.id, composition, release::random_commit());
//! let created = api.create_release(&new).await?;
//! let image = &created.images["main"];
//! api.update_image(image.id, &ImageUpdate::pushed("sha256:…", 1024)).await?;
//! api.update_release(created.release.id, &ReleaseUpdate::finished(Status::Success)).await?;
//! # assert_eq!(fake.records("release")[0]["status"], "success");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod api;
mod deploy;
mod error;
mod models;
mod push;
mod retry;
mod secret;
mod time;

pub use api::{Api, DEFAULT_TIMEOUT, RetryNotice};
pub use deploy::{BuiltImage, DeployOutcome, push_and_record};
pub use error::{ApiError, PushError, left_as};
pub use models::{
    BUILD_LOG_CAP, CreatedRelease, CurrentRelease, ERROR_MESSAGE_CAP, Fleet, Image, ImageUpdate,
    NewRelease, Release, ReleaseUpdate, ServiceSpec, Status, User,
};
pub use push::{
    ImageLocation, PushEvent, PushFrom, PushJob, PushOptions, Pushed, RegistryAuth, push_images,
    push_images_from,
};
pub use retry::RetryPolicy;
pub use secret::Secret;
pub use time::{now as timestamp_now, random_commit, timestamp};

/// Any failure of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A balena API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Tagging or pushing an image failed.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A service's image could not be pushed.
    #[error("service {service}: {cause}")]
    ServicePush {
        /// The service.
        service: String,
        /// Why. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: PushError,
    },
    /// A service of the release has no built image.
    #[error("service {service} has no built image to push")]
    MissingBuild {
        /// The service.
        service: String,
    },
}
