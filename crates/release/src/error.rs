//! The crate's errors.

use std::time::Duration;

/// A balena API failure. Statuses map as in `@balena/compose`'s `wrapResponseError`:
/// 400 → [`BadRequest`](ApiError::BadRequest), 401 → [`Unauthorised`](ApiError::Unauthorised),
/// 404 → [`ObjectDoesNotExist`](ApiError::ObjectDoesNotExist), 409 →
/// [`UniqueConstraint`](ApiError::UniqueConstraint) or [`Conflict`](ApiError::Conflict),
/// 500 → [`Server`](ApiError::Server), anything else → [`Http`](ApiError::Http).
/// `request` names the call, e.g. `PATCH /v7/image(12)`. No variant ever holds the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No API key was configured.
    #[error("no balena API key was given (use --api-key or BALENA_API_KEY)")]
    MissingApiKey,
    /// The API URL is not a usable base URL.
    #[error("invalid balena API URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// 400.
    #[error("{request}: bad request (400): {message}")]
    BadRequest {
        /// The call.
        request: String,
        /// The server's message.
        message: String,
    },
    /// 401: the key is wrong, expired or lacks access.
    #[error("{request}: the balena API rejected the API key (401 Unauthorized): {message}")]
    Unauthorised {
        /// The call.
        request: String,
        /// The server's message.
        message: String,
    },
    /// 404.
    #[error("{request}: not found (404): {message}")]
    ObjectDoesNotExist {
        /// The call.
        request: String,
        /// The server's message.
        message: String,
    },
    /// 409 whose message mentions a unique constraint.
    #[error("{request}: unique constraint violated (409): {message}")]
    UniqueConstraint {
        /// The call.
        request: String,
        /// The server's message.
        message: String,
    },
    /// Another 409.
    #[error("{request}: conflict (409): {message}")]
    Conflict {
        /// The call.
        request: String,
        /// The server's message.
        message: String,
    },
    /// 500.
    #[error("{request}: server error (500): {message}")]
    Server {
        /// The call.
        request: String,
        /// The server's message.
        message: String,
    },
    /// Any other unsuccessful status.
    #[error("{request}: HTTP {status}: {message}")]
    Http {
        /// The call.
        request: String,
        /// The status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// No complete response within the request timeout.
    #[error("{request}: no response within {timeout:?}")]
    Timeout {
        /// The call.
        request: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection failed or broke.
    #[error("{request}: cannot reach the balena API: {message}")]
    Transport {
        /// The call.
        request: String,
        /// What went wrong.
        message: String,
    },
    /// A successful status with a body that is not what the call expects.
    #[error("{request}: unexpected response: {message}")]
    InvalidResponse {
        /// The call.
        request: String,
        /// What is wrong with it.
        message: String,
    },
    /// The fleet does not exist or the key cannot see it.
    #[error("fleet {fleet:?} not found, or the API key has no access to it")]
    FleetNotFound {
        /// The slug or id asked for.
        fleet: String,
    },
    /// A record the release needs does not exist.
    #[error("Could not find {resource} with id: {id}")]
    MissingRecord {
        /// `user` or `application`.
        resource: &'static str,
        /// Its id.
        id: u64,
    },
    /// `getOrCreate` of a service gave nothing.
    #[error("Could not create or retrieve service {service}")]
    ServiceNotCreated {
        /// The service name.
        service: String,
    },
    /// The release record was created but one of its services or images was not: the
    /// release exists, marked `failed` unless `cleanup` says why it was left `running`.
    #[error(
        "release {commit} (id {id}) was created, but not all of its images; {}",
        left_as(cleanup.as_deref())
    )]
    IncompleteRelease {
        /// The release's commit.
        commit: String,
        /// The release's id.
        id: u64,
        /// Why an image could not be created.
        #[source]
        source: Box<ApiError>,
        /// Why the release could not be marked `failed`, if it could not.
        cleanup: Option<Box<ApiError>>,
    },
    /// A release tag key that the API would reject.
    #[error("invalid release tag key {key:?}: a key must be non-empty and contain no whitespace")]
    InvalidTagKey {
        /// The key.
        key: String,
    },
}

impl ApiError {
    /// Whether retrying the same call may succeed: 5xx, 408, 429, timeouts, broken
    /// connections.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Server { .. } | ApiError::Timeout { .. } | ApiError::Transport { .. } => true,
            ApiError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    /// The HTTP status, for errors that came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::BadRequest { .. } => Some(400),
            ApiError::Unauthorised { .. } => Some(401),
            ApiError::ObjectDoesNotExist { .. } => Some(404),
            ApiError::UniqueConstraint { .. } | ApiError::Conflict { .. } => Some(409),
            ApiError::Server { .. } => Some(500),
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps an unsuccessful status and its message to the typed error.
    pub(crate) fn from_status(request: String, status: u16, message: String) -> ApiError {
        match status {
            400 => ApiError::BadRequest { request, message },
            401 => ApiError::Unauthorised { request, message },
            404 => ApiError::ObjectDoesNotExist { request, message },
            409 if message.to_lowercase().contains("unique") => {
                ApiError::UniqueConstraint { request, message }
            }
            409 => ApiError::Conflict { request, message },
            500 => ApiError::Server { request, message },
            _ => ApiError::Http {
                request,
                status,
                message,
            },
        }
    }
}

/// What became of a release after a failure: `marked failed`, or left `running` and why.
pub fn left_as(cleanup: Option<&ApiError>) -> String {
    match cleanup {
        None => "it was marked failed".to_owned(),
        Some(e) => format!("it was left `running`: marking it failed failed too: {e}"),
    }
}

/// A failure to tag, push or untag an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// An `is_stored_at__image_location` without a `/`.
    #[error("Could not parse imageName: '{0}'")]
    InvalidLocation(String),
    /// The daemon refused to tag the local image.
    #[error("tagging {local} as {target} failed: {message}")]
    Tag {
        /// The local image.
        local: String,
        /// The registry reference.
        target: String,
        /// The daemon's message.
        message: String,
    },
    /// Inspecting an image failed.
    #[error("inspecting image {image} failed: {message}")]
    Inspect {
        /// The image.
        image: String,
        /// The daemon's message.
        message: String,
    },
    /// Every attempt to push failed.
    #[error("pushing {target} failed after {attempts} attempt(s): {message}")]
    Push {
        /// The registry reference.
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// The push finished without telling the digest, and the daemon does not know it either.
    #[error("pushing {target}: no content digest in the push output or the image's RepoDigests")]
    MissingDigest {
        /// The registry reference.
        target: String,
    },
    /// The push was stopped: cancelled, or another push failed first.
    #[error("pushing {target} was cancelled")]
    Cancelled {
        /// The registry reference.
        target: String,
    },
    /// Registry credentials that cannot be encoded.
    #[error("cannot encode the registry credentials: {0}")]
    Credentials(String),
}

impl PushError {
    /// Whether this is a [`PushError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, PushError::Cancelled { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_like_the_reference() {
        let e = |s, m: &str| ApiError::from_status("GET /x".into(), s, m.into());
        assert!(matches!(e(400, ""), ApiError::BadRequest { .. }));
        assert!(matches!(e(401, ""), ApiError::Unauthorised { .. }));
        assert!(matches!(e(404, ""), ApiError::ObjectDoesNotExist { .. }));
        assert!(matches!(
            e(409, "Unique key violated"),
            ApiError::UniqueConstraint { .. }
        ));
        assert!(matches!(e(409, "busy"), ApiError::Conflict { .. }));
        assert!(matches!(e(500, ""), ApiError::Server { .. }));
        assert!(matches!(e(502, ""), ApiError::Http { status: 502, .. }));
        assert!(
            e(503, "").is_transient() && e(500, "").is_transient() && e(429, "").is_transient()
        );
        assert!(!e(401, "").is_transient() && !e(409, "unique").is_transient());
        assert_eq!(e(418, "").status(), Some(418));
        assert_eq!(
            e(500, "Patch Image Error").to_string(),
            "GET /x: server error (500): Patch Image Error"
        );
    }
}
