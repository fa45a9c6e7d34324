//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while talking to the daemon, building or pulling.
///
/// No variant ever carries a password or token: credentials are only ever passed to the
/// daemon, never formatted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon address is not one we can connect to.
    #[error(
        "unsupported Docker host \"{host}\": expected unix://PATH, tcp://HOST:PORT, http://HOST:PORT or ssh://[USER@]HOST[:PORT]"
    )]
    UnsupportedHost {
        /// The address as given.
        host: String,
    },
    /// A Docker context that cannot be used (missing, unreadable, no docker endpoint).
    #[error("Docker context \"{name}\" ({}): {reason}", .path.display())]
    BadContext {
        /// The context's name.
        name: String,
        /// Its `meta.json`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The daemon did not answer (socket missing, connection refused, version negotiation failed).
    #[error("cannot reach the Docker daemon at {host}: {reason}")]
    Unreachable {
        /// The address we tried.
        host: String,
        /// Why, in the words of the transport.
        reason: String,
    },
    /// The connection to the daemon broke in the middle of a request (the daemon stopped,
    /// crashed or restarted): what was under way did not finish.
    #[error(
        "lost the connection to the Docker daemon at {host} while {action} (did the daemon stop?): {reason}"
    )]
    ConnectionLost {
        /// The daemon's address.
        host: String,
        /// What was under way, e.g. `building web:latest`.
        action: String,
        /// The transport's words.
        reason: String,
    },
    /// The daemon rejected the build or one of its steps failed.
    #[error("{}", build_failure_text(.message, .step.as_deref(), .output))]
    BuildFailed {
        /// The daemon's message, e.g. `The command '/bin/sh -c exit 3' returned a non-zero code: 3`.
        message: String,
        /// The failing step as the daemon printed it, e.g. `Step 2/3 : RUN exit 3`.
        step: Option<String>,
        /// The last output lines of the failing step (at most [`crate::FAILURE_OUTPUT_LINES`]).
        output: Vec<String>,
        /// The layers the steps before it produced (the reference's `buildFailure` gets them).
        layers: Vec<String>,
    },
    /// The build context producer failed; the build was aborted.
    /// The producer's error: shown in the message, so deliberately not a `#[source]`.
    #[error("the build context could not be produced: {0}")]
    Context(std::io::Error),
    /// A build or pull took longer than the caller's deadline.
    #[error("{action} did not finish within {seconds} s")]
    Timeout {
        /// What timed out, e.g. `building web:latest`.
        action: String,
        /// The deadline.
        seconds: u64,
    },
    /// The registry does not have this image (or tag).
    #[error("image \"{image}\" was not found in registry {registry}: {message}")]
    ImageNotFound {
        /// The image reference.
        image: String,
        /// The registry host (`docker.io` for Docker Hub).
        registry: String,
        /// The daemon's message.
        message: String,
    },
    /// The registry refused our credentials, or wanted some and got none.
    #[error(
        "not authorized to pull \"{image}\" from registry {registry} ({credentials}): {message}"
    )]
    Unauthorized {
        /// The image reference.
        image: String,
        /// The registry host (`docker.io` for Docker Hub).
        registry: String,
        /// `no credentials were given for it` or `the given credentials were refused`.
        credentials: &'static str,
        /// The daemon's message.
        message: String,
    },
    /// A pull failed for another reason.
    #[error("pulling \"{image}\" failed: {message}")]
    PullFailed {
        /// The image reference.
        image: String,
        /// The daemon's message.
        message: String,
    },
    /// An image reference that cannot be parsed.
    #[error("invalid image reference \"{reference}\": {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform \"{0}\": expected os/arch[/variant], e.g. linux/arm64")]
    InvalidPlatform(String),
    /// The user's `~/.docker/config.json` cannot be read or parsed.
    #[error("cannot use Docker config file \"{}\": {reason}", .path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (part of the message, not a separate cause).
        reason: crate::auth::DockerConfigError,
    },
    /// A BuildKit session (for build secrets) could not be opened or served.
    #[error("{reason}")]
    Session {
        /// What went wrong; never a secret's contents.
        reason: String,
    },
    /// The build needs something this daemon cannot do (BuildKit secret mounts on an old
    /// daemon, say); nothing was built.
    #[error("{0}")]
    Unsupported(String),
    /// A base image on the daemon is of another platform than the build's, and the build's
    /// platform of it could not be had: the pull failed (`pull_error`) or gave the same.
    #[error(
        "the base image \"{image}\" on the Docker daemon is {local}, not the build's {target}, and {}",
        match pull_error {
            Some(e) => format!("pulling it for {target} failed: {e}"),
            None => format!("pulling it for {target} did not give a {target} image"),
        }
    )]
    BasePlatform {
        /// The `FROM` image.
        image: String,
        /// Its platform on the daemon (`linux/amd64`).
        local: String,
        /// The build's platform (`linux/arm64`).
        target: String,
        /// Why the pull failed, if it did (shown in the message, not as a source).
        pull_error: Option<Box<Error>>,
    },
    /// Any other Docker Engine API failure. The message carries bollard's error with its
    /// causes (bollard's own text hides them: "client error (Connect)" without the "Too many
    /// open files" under it), so it is not also returned as a source.
    #[error("{action}: {}", describe_transport_error(cause))]
    Docker {
        /// What we were doing, e.g. `inspecting image sha256:…`.
        action: String,
        /// The bollard error.
        cause: bollard::errors::Error,
    },
}

fn build_failure_text(message: &str, step: Option<&str>, output: &[String]) -> String {
    let mut text = match step {
        Some(step) => format!("build failed at \"{step}\": {message}"),
        None => format!("build failed: {message}"),
    };
    if !output.is_empty() {
        text.push_str("\nlast output lines:");
        for line in output {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}

impl Error {
    /// Whether BuildKit's scheduler lost the build ("invalid request {…} for build"): a race
    /// of Docker 20.10's BuildKit between concurrent builds of the same steps, seen when
    /// several identical builds run at once. Nothing was built; building again works.
    pub fn is_buildkit_scheduler_race(&self) -> bool {
        matches!(self, Error::BuildFailed { message, .. }
            if message.starts_with("invalid request") && message.ends_with("for build"))
    }

    pub(crate) fn docker(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        Self::Docker {
            action: action.into(),
            cause: source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bollard error with every cause under it that its own text does not already say.
pub(crate) fn describe_transport_error(e: &bollard::errors::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buildkit_scheduler_race_is_recognised_by_its_message() {
        let failed = |message: &str| Error::BuildFailed {
            message: message.to_owned(),
            step: None,
            output: Vec::new(),
            layers: Vec::new(),
        };
        assert!(failed("invalid request {0 0xc001701780} for build").is_buildkit_scheduler_race());
        assert!(!failed("exit code: 3").is_buildkit_scheduler_race());
        assert!(
            !Error::Unsupported("invalid request for build".into()).is_buildkit_scheduler_race()
        );
    }
}
