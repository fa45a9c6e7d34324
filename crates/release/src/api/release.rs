//! Releases: creating one with its services' images, updating, tagging and failing it.

use futures::{StreamExt, stream};
use serde_json::{Value, json};

use super::odata::{Lit, Lookup};
use super::transport::{decode, to_value};
use super::{Api, CONCURRENCY};
use crate::error::ApiError;
use crate::models::{
    CreatedRelease, Image, ImageUpdate, NewRelease, Release, ReleaseUpdate, Status,
};
use crate::time;

impl Api {
    /// `release.create`: the release (`running`), then per service (at most five at a time)
    /// its service record (found or created), a `running` image, the image's link to the
    /// release, and its labels and environment variables.
    ///
    /// If anything fails after the release exists, the release and the images made so far
    /// are marked `failed` (best effort) before the error is returned, so no release is left
    /// `running`.
    ///
    /// # Errors
    /// [`ApiError::MissingRecord`] when the user or fleet does not exist,
    /// [`ApiError::IncompleteRelease`] when the release was created but not all of its
    /// images, and any API error.
    pub async fn create_release(&self, new: &NewRelease) -> Result<CreatedRelease, ApiError> {
        let (user, fleet) = tokio::try_join!(
            self.require("user", new.user),
            self.require("application", new.fleet)
        )?;
        let mut body = json!({
            "is_created_by__user": user,
            "belongs_to__application": fleet,
            "composition": new.composition,
            "commit": new.commit,
            "status": Status::Running,
            "source": new.source,
            "start_timestamp": time::now(),
            "is_final": new.is_final,
        });
        if let Some(contract) = &new.contract {
            body["contract"] = contract.clone();
        }
        if let Some(semver) = new.semver.as_ref().filter(|s| !s.is_empty()) {
            body["semver"] = json!(semver);
        }
        let lookup = Lookup::by(vec![
            ("belongs_to__application", Lit::Id(fleet)),
            ("commit", Lit::Text(&new.commit)),
        ]);
        let record = self.post_idempotent("release", &body, &lookup).await?;
        let release: Release = decode("POST /v7/release", Some(record))?;

        let results: Vec<Result<Option<(String, Image)>, ApiError>> = stream::iter(&new.services)
            .map(|service| async {
                match new.reused.get(&service.name) {
                    Some(&image) => self
                        .link_image(release.id, image, service)
                        .await
                        .map(|()| None),
                    None => self
                        .create_service_image(fleet, release.id, service)
                        .await
                        .map(Some),
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut images = indexmap::IndexMap::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Some((name, image))) => {
                    images.insert(name, image);
                }
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let created = CreatedRelease {
            fleet,
            release,
            images,
        };
        if let Some(error) = first_error {
            let message = format!("Creating the release failed: {error}");
            let cleanup = self.fail_all(&created, &[], &message).await.err();
            return Err(ApiError::IncompleteRelease {
                commit: created.release.commit,
                id: created.release.id,
                source: Box::new(error),
                cleanup: cleanup.map(Box::new),
            });
        }
        Ok(created)
    }

    /// `PATCH release(<id>)`.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn update_release(&self, id: u64, update: &ReleaseUpdate) -> Result<(), ApiError> {
        self.patch(&format!("/v7/release({id})"), &to_value(update)?)
            .await
    }

    /// Sets the release's note.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn set_note(&self, release: u64, note: &str) -> Result<(), ApiError> {
        let update = ReleaseUpdate {
            note: Some(note.to_owned()),
            ..ReleaseUpdate::default()
        };
        self.update_release(release, &update).await
    }

    /// Sets (creates or changes) a release tag.
    ///
    /// # Errors
    /// [`ApiError::InvalidTagKey`] for an empty key or one with whitespace; API errors.
    pub async fn set_release_tag(
        &self,
        release: u64,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(ApiError::InvalidTagKey {
                key: key.to_owned(),
            });
        }
        let lookup = Lookup::by(vec![
            ("release", Lit::Id(release)),
            ("tag_key", Lit::Text(key)),
        ]);
        let existing = self.find("release_tag", &lookup).await?;
        match existing.and_then(|row| row.get("id").and_then(Value::as_u64)) {
            Some(id) => {
                self.patch(&format!("/v7/release_tag({id})"), &json!({"value": value}))
                    .await
            }
            None => {
                let body = json!({"release": release, "tag_key": key, "value": value});
                self.post_idempotent("release_tag", &body, &lookup)
                    .await
                    .map(drop)
            }
        }
    }

    /// Marks every image of `created` that is not in `finished` as `failed` with `message`,
    /// then the release `failed`. Every update is tried even when one fails. Use it on any
    /// error or interruption after the release exists.
    ///
    /// # Errors
    /// The error of marking the release `failed`: it was left `running`. An image that could
    /// not be marked is no error once its release is `failed` (the release decides what
    /// devices run), so it is only logged.
    pub async fn fail_all(
        &self,
        created: &CreatedRelease,
        finished: &[u64],
        message: &str,
    ) -> Result<(), ApiError> {
        let failed = ImageUpdate::failed(message);
        let unfinished: Vec<u64> = created
            .images
            .values()
            .map(|i| i.id)
            .filter(|id| !finished.contains(id))
            .collect();
        let results: Vec<Result<(), ApiError>> = stream::iter(unfinished)
            .map(|id| {
                let failed = &failed;
                async move { self.update_image(id, failed).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for error in results.into_iter().filter_map(Result::err) {
            tracing::debug!("could not mark an image of a failed release failed: {error}");
        }
        self.update_release(created.release.id, &ReleaseUpdate::finished(Status::Failed))
            .await
    }
}
