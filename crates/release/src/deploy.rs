//! Pushing a created release's images and recording the outcome, all or nothing.

use bollard::Docker;
use indexmap::IndexMap;

use crate::api::Api;
use crate::error::PushError;
use crate::models::{CreatedRelease, ImageUpdate, ReleaseUpdate, Status};
use crate::push::{PushFrom, PushJob, PushOptions, Pushed, RegistryAuth, push_images_from};
use crate::{ApiError, Error};

/// What the build produced for one service.
#[derive(Debug, Clone, Default)]
pub struct BuiltImage {
    /// The local image to push.
    pub local_image: String,
    /// The daemon that holds `local_image` and pushes it (with several builders, the one
    /// that built it); `None`: the daemon given to [`push_and_record`].
    pub daemon: Option<Docker>,
    /// The resolved Dockerfile.
    pub dockerfile: Option<String>,
    /// The build log; `None` to not upload it (`--nologupload`).
    pub build_log: Option<String>,
    /// The project type the resolver chose.
    pub project_type: Option<String>,
    /// When the build started.
    pub start_timestamp: Option<String>,
    /// When the build ended.
    pub end_timestamp: Option<String>,
}

/// A deploy that failed after the release existed: the release and its unfinished images
/// are `failed` (unless marking them failed failed too, see `cleanup`).
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct DeployOutcome {
    /// What went wrong first.
    pub cause: Error,
    /// The images that were pushed before the failure, by service.
    pub pushed: IndexMap<String, Pushed>,
    /// Set when the release could not be marked `failed`.
    pub cleanup: Option<ApiError>,
}

/// Pushes every image of `created` (service → `built[service].local_image`, from
/// `built[service].daemon`, else from `docker`), records each
/// image's details (`success` with digest, size, Dockerfile, build log and timestamps, or
/// `failed` with the error), and ends the release `success` only when every image is pushed
/// and recorded; otherwise the release and every unfinished image end `failed`.
///
/// `auth` defaults to a token from [`Api::push_token`]. Cancel
/// [`PushOptions::cancel`] (e.g. on Ctrl-C) to stop: the release still ends `failed` and the
/// tags are removed; dropping the future instead leaves the release `running`.
///
/// # Errors
/// A [`DeployOutcome`] naming the first failure.
pub async fn push_and_record(
    api: &Api,
    docker: &Docker,
    created: &CreatedRelease,
    built: &IndexMap<String, BuiltImage>,
    auth: Option<RegistryAuth>,
    options: &PushOptions,
) -> Result<IndexMap<String, Pushed>, Box<DeployOutcome>> {
    let fail = |cause: Error, pushed: IndexMap<String, Pushed>, finished: Vec<u64>| async move {
        let cleanup = api
            .fail_all(created, &finished, &cause.to_string())
            .await
            .err();
        Err(Box::new(DeployOutcome {
            cause,
            pushed,
            cleanup,
        }))
    };

    let jobs = match push_jobs(docker, created, built) {
        Ok(jobs) => jobs,
        Err(e) => return fail(e, IndexMap::new(), Vec::new()).await,
    };
    let auth = match auth {
        Some(auth) => auth,
        None => match api.push_token(created).await {
            Ok(Some((_, token))) => RegistryAuth::Token(token),
            Ok(None) => RegistryAuth::Anonymous,
            Err(e) => return fail(e, IndexMap::new(), Vec::new()).await,
        },
    };

    let results = push_images_from(&jobs, &auth, options).await;

    let Recorded {
        pushed,
        finished,
        mut first_error,
    } = record_pushes(api, created, built, results, options).await;
    if first_error.is_none() && options.cancel.is_cancelled() {
        first_error = Some(Error::Push(PushError::Cancelled {
            target: format!("release {}", created.release.commit),
        }));
    }
    if let Some(cause) = first_error {
        return fail(cause, pushed, finished).await;
    }
    match api
        .update_release(
            created.release.id,
            &ReleaseUpdate::finished(Status::Success),
        )
        .await
    {
        Ok(()) => Ok(pushed),
        Err(e) => fail(e.into(), pushed, finished).await,
    }
}

/// One push per image of the release, from the daemon that holds it.
fn push_jobs(
    docker: &Docker,
    created: &CreatedRelease,
    built: &IndexMap<String, BuiltImage>,
) -> Result<Vec<PushFrom>, Error> {
    let mut jobs = Vec::new();
    for (service, image) in &created.images {
        let Some(local) = built.get(service) else {
            return Err(Error::MissingBuild {
                service: service.clone(),
            });
        };
        jobs.push(PushFrom {
            docker: local.daemon.clone().unwrap_or_else(|| docker.clone()),
            job: PushJob {
                local_image: local.local_image.clone(),
                location: image.location.clone(),
            },
        });
    }
    Ok(jobs)
}

/// What the API was told about the pushes.
struct Recorded {
    /// The images pushed, by service.
    pushed: IndexMap<String, Pushed>,
    /// The images whose record is final (pushed or failed).
    finished: Vec<u64>,
    /// The first push or record that failed.
    first_error: Option<Error>,
}

/// Records each push's outcome on its image.
async fn record_pushes(
    api: &Api,
    created: &CreatedRelease,
    built: &IndexMap<String, BuiltImage>,
    results: Vec<Result<Pushed, PushError>>,
    options: &PushOptions,
) -> Recorded {
    let mut pushed = IndexMap::new();
    let mut finished = Vec::new();
    let mut first_error: Option<Error> = None;
    for ((service, image), result) in created.images.iter().zip(results) {
        let update = match &result {
            Ok(p) => details(
                ImageUpdate::pushed(p.digest.clone(), p.size),
                built.get(service),
            ),
            // Stopped because another push failed: that one is the cause, this one is just
            // unfinished, and `fail_all` marks it.
            Err(e) if e.is_cancelled() && !options.cancel.is_cancelled() => continue,
            Err(e) => details(ImageUpdate::failed(&e.to_string()), built.get(service)),
        };
        let recorded = api.update_image(image.id, &update).await;
        match (result, recorded) {
            (Ok(p), Ok(())) => {
                finished.push(image.id);
                pushed.insert(service.clone(), p);
            }
            (Err(e), recorded) => {
                if recorded.is_ok() {
                    finished.push(image.id);
                }
                first_error.get_or_insert(Error::ServicePush {
                    service: service.clone(),
                    cause: e,
                });
            }
            (Ok(p), Err(e)) => {
                pushed.insert(service.clone(), p);
                first_error.get_or_insert(e.into());
            }
        }
    }
    Recorded {
        pushed,
        finished,
        first_error,
    }
}

/// Adds the build's details to an image update; the build's timestamps win over "now".
fn details(mut update: ImageUpdate, built: Option<&BuiltImage>) -> ImageUpdate {
    let Some(built) = built else {
        return update;
    };
    if let Some(log) = &built.build_log {
        update = update.with_build_log(log);
    }
    update.dockerfile.clone_from(&built.dockerfile);
    update.project_type.clone_from(&built.project_type);
    update.start_timestamp.clone_from(&built.start_timestamp);
    if built.end_timestamp.is_some() {
        update.end_timestamp.clone_from(&built.end_timestamp);
    }
    update
}
