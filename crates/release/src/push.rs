//! Pushing images to the locations the API assigned: tag, push concurrently with retries,
//! read the digest and size, untag.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use bollard::Docker;
use bollard::query_parameters::{PushImageOptions, RemoveImageOptions, TagImageOptions};
use futures::{StreamExt, stream};
use reqwest::header::HeaderValue;
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::error::PushError;
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// An `is_stored_at__image_location` split the way the balena CLI splits it
/// (`/(.*?)\/(.*?)(?::([^/]*))?$/`): the registry is the first path segment, the repository
/// the rest, the tag `latest` unless given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLocation {
    /// The registry host, e.g. `registry2.balena-cloud.com` or `127.0.0.1:5000`.
    pub registry: String,
    /// The repository within it, e.g. `v2/c089c421fb2336d0475166fbf3d0f9fa`.
    pub repository: String,
    /// The tag.
    pub tag: String,
}

impl ImageLocation {
    /// Splits a location.
    ///
    /// # Errors
    /// [`PushError::InvalidLocation`] without a registry and a repository.
    pub fn parse(location: &str) -> Result<ImageLocation, PushError> {
        let invalid = || PushError::InvalidLocation(location.to_owned());
        let (registry, rest) = location.split_once('/').ok_or_else(invalid)?;
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        };
        if registry.is_empty() || repository.is_empty() || tag.is_empty() {
            return Err(invalid());
        }
        Ok(ImageLocation {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// `registry/repository`, the name the daemon pushes.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name(), self.tag)
    }
}

/// Credentials for the registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RegistryAuth {
    /// No credentials (the daemon still needs an `X-Registry-Auth` header: `e30=`).
    #[default]
    Anonymous,
    /// A bearer token from `/auth/v1/token`.
    Token(Secret),
    /// A username and password.
    Password {
        /// The username.
        username: String,
        /// The password.
        password: Secret,
    },
}

impl RegistryAuth {
    /// The `X-Registry-Auth` value: base64url *with* padding, which is the only spelling
    /// Docker 20.10 decodes (it treats anything else as no credentials, silently).
    pub fn header(&self, registry: &str) -> String {
        let payload = match self {
            RegistryAuth::Anonymous => json!({}),
            RegistryAuth::Token(token) => json!({"registrytoken": token.expose()}),
            RegistryAuth::Password { username, password } => json!({
                "username": username,
                "password": password.expose(),
                "serveraddress": registry,
            }),
        };
        URL_SAFE.encode(payload.to_string())
    }

    /// Removes the secret part from a message.
    fn redact(&self, text: &str) -> String {
        match self {
            RegistryAuth::Anonymous => text.to_owned(),
            RegistryAuth::Token(secret)
            | RegistryAuth::Password {
                password: secret, ..
            } => secret.redact(text),
        }
    }
}

/// One image to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushJob {
    /// The local image (name, `name:tag` or id).
    pub local_image: String,
    /// Where it goes: the image's `is_stored_at__image_location`.
    pub location: String,
}

/// One image to push from the daemon that holds it (with several builders, the one that
/// built it: the image goes from there to the registry, never through this machine).
#[derive(Debug, Clone)]
pub struct PushFrom {
    /// The daemon that holds `job.local_image` and pushes it.
    pub docker: Docker,
    /// The image and its location.
    pub job: PushJob,
}

/// A pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The local image.
    pub local_image: String,
    /// The location it was pushed to.
    pub location: String,
    /// The manifest digest the registry serves, `sha256:…`.
    pub digest: String,
    /// The local image's size in bytes (the daemon's `Size`).
    pub size: u64,
}

/// Progress of a push, sent on [`PushOptions::events`]. Every event names the location.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PushEvent {
    /// The local image was tagged to its location.
    Tagged {
        /// The location.
        location: String,
    },
    /// Bytes sent so far, summed over the layers seen so far.
    Progress {
        /// The location.
        location: String,
        /// Bytes sent.
        current: u64,
        /// Bytes to send.
        total: u64,
    },
    /// A status line of the daemon (`Preparing`, `Layer already exists`, `latest: digest: …`).
    Status {
        /// The location.
        location: String,
        /// The line.
        status: String,
    },
    /// An attempt failed; another follows after `delay`.
    Retrying {
        /// The location.
        location: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Attempts allowed.
        max_attempts: u32,
        /// The wait before the next one.
        delay: Duration,
        /// Why it failed.
        error: String,
    },
    /// Pushed.
    Pushed {
        /// The location.
        location: String,
        /// The digest.
        digest: String,
        /// The image size.
        size: u64,
    },
    /// Given up (or cancelled).
    Failed {
        /// The location.
        location: String,
        /// Why.
        error: String,
    },
    /// The location's local tag was removed.
    Untagged {
        /// The location.
        location: String,
    },
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Pushes at a time (at least 1).
    pub concurrency: usize,
    /// Attempts per image and the backoff between them.
    pub retry: RetryPolicy,
    /// The longest one attempt may take (none by default: the daemon retries layers itself).
    pub attempt_timeout: Option<Duration>,
    /// Stop the other pushes as soon as one fails for good (they end as
    /// [`PushError::Cancelled`]).
    pub fail_fast: bool,
    /// Cancels every push; already tagged images are still untagged.
    pub cancel: CancellationToken,
    /// Where progress goes; nothing is ever printed.
    pub events: Option<UnboundedSender<PushEvent>>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: 5,
            retry: RetryPolicy::PUSH,
            attempt_timeout: None,
            fail_fast: true,
            cancel: CancellationToken::new(),
            events: None,
        }
    }
}

/// Shared by the pushes of one [`push_images_from`] call.
struct Run<'a> {
    auth: &'a RegistryAuth,
    options: &'a PushOptions,
    stop: CancellationToken,
    tags: Arc<TagGuard>,
}

impl Run<'_> {
    fn emit(&self, event: PushEvent) {
        if let Some(events) = &self.options.events {
            // A receiver that went away only means nobody is watching.
            let _ = events.send(event);
        }
    }
}

/// The registry tags made so far, each with the daemon it is on; whatever is still listed
/// when it drops (the future was dropped mid-push) is removed in the background.
#[derive(Default)]
struct TagGuard {
    tags: Mutex<Vec<(Docker, String)>>,
}

impl TagGuard {
    fn add(&self, docker: &Docker, reference: String) {
        self.tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((docker.clone(), reference));
    }

    fn take(&self) -> Vec<(Docker, String)> {
        std::mem::take(&mut *self.tags.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for TagGuard {
    fn drop(&mut self) {
        let left = self.take();
        if left.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for (docker, reference) in left {
                    let _ = untag(&docker, &reference).await;
                }
            });
        }
    }
}

async fn untag(docker: &Docker, reference: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveImageOptions {
        force: false,
        noprune: true,
        platforms: None,
    };
    docker
        .remove_image(reference, Some(options), None)
        .await
        .map(drop)
}

/// Tags each job's image to its location, pushes them (at most
/// [`PushOptions::concurrency`] at a time, each retried as [`PushOptions::retry`] says),
/// and removes the registry tags afterwards — always, once every push has stopped, even
/// after failures or cancellation. Dropping the returned future stops every push (the tags
/// are then removed in the background).
///
/// The `X-Registry-Auth` header is set from `auth` (see [`RegistryAuth::header`]) on a
/// private clone of `docker`, whose own request modifier, if any, is not used for pushes.
///
/// Returns one result per job, in job order.
pub async fn push_images(
    docker: &Docker,
    jobs: &[PushJob],
    auth: &RegistryAuth,
    options: &PushOptions,
) -> Vec<Result<Pushed, PushError>> {
    let jobs: Vec<PushFrom> = jobs
        .iter()
        .map(|job| PushFrom {
            docker: docker.clone(),
            job: job.clone(),
        })
        .collect();
    push_images_from(&jobs, auth, options).await
}

/// [`push_images`] with each image pushed by a daemon of its own (`PushFrom::docker`, which
/// is also where it is tagged and untagged); the concurrency limit, `fail_fast` and
/// cancellation span every daemon.
pub async fn push_images_from(
    jobs: &[PushFrom],
    auth: &RegistryAuth,
    options: &PushOptions,
) -> Vec<Result<Pushed, PushError>> {
    let tags = Arc::new(TagGuard::default());
    let run = Run {
        auth,
        options,
        stop: options.cancel.child_token(),
        tags: Arc::clone(&tags),
    };
    let results: Vec<Result<Pushed, PushError>> = stream::iter(jobs)
        .map(|from| push_one(&run, &from.docker, &from.job))
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    for (docker, reference) in tags.take() {
        match untag(&docker, &reference).await {
            Ok(()) => run.emit(PushEvent::Untagged {
                location: reference,
            }),
            Err(e) => tracing::warn!("could not remove the tag {reference}: {e}"),
        }
    }
    results
}

async fn push_one(run: &Run<'_>, docker: &Docker, job: &PushJob) -> Result<Pushed, PushError> {
    let result = tag_and_push(run, docker, job).await;
    if let Err(error) = &result {
        if run.options.fail_fast && !error.is_cancelled() {
            run.stop.cancel();
        }
        run.emit(PushEvent::Failed {
            location: job.location.clone(),
            error: error.to_string(),
        });
    }
    result
}

async fn tag_and_push(run: &Run<'_>, docker: &Docker, job: &PushJob) -> Result<Pushed, PushError> {
    let location = ImageLocation::parse(&job.location)?;
    let cancelled = || PushError::Cancelled {
        target: location.reference(),
    };
    if run.stop.is_cancelled() {
        return Err(cancelled());
    }
    let tag = TagImageOptions {
        repo: Some(location.name()),
        tag: Some(location.tag.clone()),
    };
    docker
        .tag_image(&job.local_image, Some(tag))
        .await
        .map_err(|e| PushError::Tag {
            local: job.local_image.clone(),
            target: location.reference(),
            message: e.to_string(),
        })?;
    run.tags.add(docker, location.reference());
    run.emit(PushEvent::Tagged {
        location: job.location.clone(),
    });

    let header = HeaderValue::from_str(&run.auth.header(&location.registry))
        .map_err(|e| PushError::Credentials(e.to_string()))?;
    // bollard encodes X-Registry-Auth with the standard alphabet, which the daemon decodes
    // as URL-safe base64: any `+` or `/` silently drops the credentials. Set it ourselves.
    let pusher = docker.clone().with_request_modifier(move |mut request| {
        if request.uri().path().ends_with("/push") {
            request
                .headers_mut()
                .insert("X-Registry-Auth", header.clone());
        }
        request
    });

    let policy = run.options.retry;
    let mut attempt = 1;
    let digest = loop {
        let outcome = tokio::select! {
            () = run.stop.cancelled() => return Err(cancelled()),
            outcome = push_attempt(run, &pusher, &location, &job.location) => outcome,
        };
        match outcome {
            Ok(digest) => break digest,
            Err(message) if policy.allows_retry_after(attempt) => {
                let delay = policy.delay(attempt);
                run.emit(PushEvent::Retrying {
                    location: job.location.clone(),
                    attempt,
                    max_attempts: policy.max_attempts,
                    delay,
                    error: message,
                });
                tokio::select! {
                    () = run.stop.cancelled() => return Err(cancelled()),
                    () = tokio::time::sleep(delay) => {}
                }
                attempt += 1;
            }
            Err(message) => {
                return Err(PushError::Push {
                    target: location.reference(),
                    attempts: attempt,
                    message,
                });
            }
        }
    };

    let digest = match digest {
        Some(d) => d,
        None => repo_digest(docker, &location)
            .await?
            .ok_or_else(|| PushError::MissingDigest {
                target: location.reference(),
            })?,
    };
    let size = image_size(docker, &job.local_image).await?;
    run.emit(PushEvent::Pushed {
        location: job.location.clone(),
        digest: digest.clone(),
        size,
    });
    Ok(Pushed {
        local_image: job.local_image.clone(),
        location: job.location.clone(),
        digest,
        size,
    })
}

/// One push; the digest if the stream told it. Errors are messages, already redacted.
async fn push_attempt(
    run: &Run<'_>,
    pusher: &Docker,
    location: &ImageLocation,
    event_location: &str,
) -> Result<Option<String>, String> {
    let options = PushImageOptions {
        tag: Some(location.tag.clone()),
        platform: None,
    };
    let work = async {
        let mut stream = pusher.push_image(&location.name(), Some(options), None);
        let mut digest = None;
        // The push stream has no layer ids: layers are told apart by their totals.
        let mut layers: BTreeMap<u64, u64> = BTreeMap::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| run.auth.redact(&e.to_string()))?;
            let detail = info.progress_detail.as_ref();
            let total = detail
                .and_then(|d| d.total)
                .and_then(|t| u64::try_from(t).ok());
            let current = detail
                .and_then(|d| d.current)
                .and_then(|c| u64::try_from(c).ok());
            if let (Some(total), Some(current)) = (total, current)
                && total > 0
            {
                layers.insert(total, current.min(total));
                run.emit(PushEvent::Progress {
                    location: event_location.to_owned(),
                    current: layers.values().sum(),
                    total: layers.keys().sum(),
                });
            } else if let Some(status) = info.status {
                if let Some(d) = digest_in_status(&status) {
                    digest = Some(d);
                }
                run.emit(PushEvent::Status {
                    location: event_location.to_owned(),
                    status,
                });
            }
        }
        Ok(digest)
    };
    match run.options.attempt_timeout {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(format!("no result within {limit:?}"))),
        None => work.await,
    }
}

/// The digest in the daemon's `<tag>: digest: sha256:… size: N` line.
fn digest_in_status(status: &str) -> Option<String> {
    let (_, rest) = status.split_once(": digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| digest.to_owned())
}

/// The digest of `location` among the image's `RepoDigests`.
async fn repo_digest(
    docker: &Docker,
    location: &ImageLocation,
) -> Result<Option<String>, PushError> {
    let reference = location.reference();
    let inspect = docker
        .inspect_image(&reference)
        .await
        .map_err(|e| PushError::Inspect {
            image: reference.clone(),
            message: e.to_string(),
        })?;
    let prefix = format!("{}@", location.name());
    Ok(inspect
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_owned)))
}

async fn image_size(docker: &Docker, image: &str) -> Result<u64, PushError> {
    let inspect = docker
        .inspect_image(image)
        .await
        .map_err(|e| PushError::Inspect {
            image: image.to_owned(),
            message: e.to_string(),
        })?;
    Ok(inspect
        .size
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn locations_split_like_the_cli() {
        let l =
            ImageLocation::parse("registry2.balena-cloud.com/v2/c089c421fb2336d0475166fbf3d0f9fa")
                .unwrap();
        assert_eq!(l.registry, "registry2.balena-cloud.com");
        assert_eq!(l.repository, "v2/c089c421fb2336d0475166fbf3d0f9fa");
        assert_eq!(l.tag, "latest");
        let l = ImageLocation::parse("127.0.0.1:5000/v2/abc:v1").unwrap();
        assert_eq!(
            (l.registry.as_str(), l.repository.as_str(), l.tag.as_str()),
            ("127.0.0.1:5000", "v2/abc", "v1")
        );
        assert_eq!(l.reference(), "127.0.0.1:5000/v2/abc:v1");
        assert_eq!(
            ImageLocation::parse("noslash").unwrap_err().to_string(),
            "Could not parse imageName: 'noslash'"
        );
        assert!(ImageLocation::parse("/x").is_err());
        assert!(ImageLocation::parse("host/").is_err());
    }

    #[test]
    fn auth_headers_are_padded_url_safe_base64() {
        assert_eq!(RegistryAuth::Anonymous.header("r"), "e30=");
        let decode = |h: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE.decode(h).unwrap()).unwrap()
        };
        // `?>` encodes to `/` and `+` in the standard alphabet.
        let auth = RegistryAuth::Password {
            username: "u".into(),
            password: Secret::new("??>>~~"),
        };
        let h = auth.header("127.0.0.1:5001");
        assert!(!h.contains('+') && !h.contains('/'), "{h}");
        assert_eq!(h.len() % 4, 0);
        assert_eq!(decode(&h)["password"], "??>>~~");
        assert_eq!(decode(&h)["serveraddress"], "127.0.0.1:5001");
        let t = RegistryAuth::Token(Secret::new("jwt.x.y")).header("r");
        assert_eq!(decode(&t), json!({"registrytoken": "jwt.x.y"}));
        assert!(!format!("{auth:?}").contains("??>>"));
        assert_eq!(auth.redact("bad ??>>~~"), "bad ***");
    }

    #[test]
    fn digests_come_from_status_lines() {
        let d = "sha256:".to_owned() + &"a".repeat(64);
        assert_eq!(
            digest_in_status(&format!("latest: digest: {d} size: 527")),
            Some(d)
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("latest: digest: sha256:zz size: 1"), None);
    }
}
