//! The one error type of the composer.

use std::path::PathBuf;

/// Everything that can go wrong while reading or applying an app's state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target state document is malformed.
    #[error("invalid target state: {0}")]
    Target(String),
    /// The app asked for is not in the target state.
    #[error("app {app} is not in the target state")]
    AppNotInTarget {
        /// The app id or uuid asked for.
        app: String,
    },
    /// The release asked for is not in the target app.
    #[error("release {commit} is not in the target state of app {app}")]
    ReleaseNotInTarget {
        /// The app.
        app: String,
        /// The release (commit) asked for.
        commit: String,
    },
    /// A service's compose configuration cannot be turned into a container.
    #[error("service {service}: {field}: {message}")]
    ServiceConfig {
        /// The service.
        service: String,
        /// The compose field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A lockfile held by someone else (a user lock) blocks the update.
    #[error("updates are locked: lockfile exists for {{ appId: {app_id}, service: {service} }} ({})", path.display())]
    UpdatesLocked {
        /// The app.
        app_id: u64,
        /// The service whose lock is held.
        service: String,
        /// The lockfile.
        path: PathBuf,
    },
    /// A lock file or directory could not be read or written.
    #[error("update lock {}: {cause}", path.display())]
    LockIo {
        /// The file or directory.
        path: PathBuf,
        /// The cause. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: std::io::Error,
    },
    /// A name in the target state (app, release, service, network, volume) is not a compose
    /// name; nothing was touched.
    #[error("app {app}: invalid {kind} name {name:?}: names must match {rule}", rule = crate::names::NAME_RULE)]
    InvalidName {
        /// The app (uuid or id).
        app: String,
        /// What the name names: `service`, `network`, …
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// An engine object has the name the app needs but was not created by the composer.
    #[error(
        "{kind} {name} exists but was not created by balena-compose (it lacks the {label} label); \
         remove or rename it: the app needs that name",
        label = crate::model::labels::SUPERVISED
    )]
    ForeignResource {
        /// `network` or `volume`.
        kind: &'static str,
        /// The engine name.
        name: String,
    },
    /// Another apply holds the engine's apply lock and the caller chose not to wait.
    #[error(
        "another balena-compose up is applying to this engine{}; not waiting for it",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    EngineBusy {
        /// The process holding the lock, when it recorded itself.
        holder: Option<u32>,
    },
    /// The update was interrupted; the report says what was done and what state the app is in.
    #[error("{0}")]
    Interrupted(Box<crate::interrupt::Interruption>),
    /// A required service's contract is not met by the device.
    #[error("service {service}: the device does not meet the requirement {requirement}: {reason}")]
    Contract {
        /// The service.
        service: String,
        /// The requirement, e.g. `sw.supervisor >=20.0.0`.
        requirement: String,
        /// Why it is not met (part of the message, not a separate cause).
        reason: crate::contract::Unmet,
    },
    /// An image could not be fetched.
    #[error(
        "service {service}: fetching image {image} failed after {attempts} attempt(s): {message}"
    )]
    Fetch {
        /// The service.
        service: String,
        /// The image reference.
        image: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// A call to the engine failed.
    #[error("engine: {context}: {cause}")]
    Engine {
        /// What was being done, naming the object.
        context: String,
        /// The engine's error. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: bollard::errors::Error,
    },
    /// A container of the app could not be interpreted.
    #[error("container {container}: {message}")]
    Container {
        /// The container name or id.
        container: String,
        /// What is wrong with it.
        message: String,
    },
    /// The update was cancelled through its cancellation token.
    #[error("the update was cancelled")]
    Cancelled,
    /// The planner kept producing steps without reaching the target.
    #[error(
        "the update did not reach the target after {iterations} iterations; last steps: {last}"
    )]
    NotConverging {
        /// Iterations run.
        iterations: usize,
        /// The steps of the last iteration.
        last: String,
    },
    /// The target state could not be fetched from the API.
    #[error("fetching the target state from {url}: {message}")]
    TargetFetch {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A local file (config.json, target state, image records) could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The composer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an engine error with what was being done.
pub(crate) fn engine(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let context = context.into();
    move |cause| Error::Engine { context, cause }
}

/// True when the engine answered 404 (the object is already gone).
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    status_code(e) == Some(404)
}

/// The HTTP status of an engine error, when it has one.
pub(crate) fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
