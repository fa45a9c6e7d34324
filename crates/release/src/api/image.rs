//! A release's images: the service each builds, its record, its link to the release with
//! labels and environment variables, and its updates.

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use super::odata::{Lit, Lookup};
use super::transport::{decode, invalid, to_value};
use super::{Api, CONCURRENCY};
use crate::error::ApiError;
use crate::models::{Image, ImageUpdate, ServiceSpec, Status};
use crate::time;

impl Api {
    /// `getOrCreate` of a service: `GET service(application=…,service_name='…')`, else POST.
    async fn service_id(&self, fleet: u64, name: &str) -> Result<u64, ApiError> {
        let key = format!(
            "/v7/service(application={fleet},service_name={})",
            Lit::Text(name)
        );
        let rows = self.get_rows(&key, &[("$select", "id".to_owned())]).await?;
        let existing = rows
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_u64);
        if let Some(id) = existing {
            return Ok(id);
        }
        let lookup = Lookup::by(vec![
            ("application", Lit::Id(fleet)),
            ("service_name", Lit::Text(name)),
        ]);
        let record = self
            .post_idempotent(
                "service",
                &json!({"application": fleet, "service_name": name}),
                &lookup,
            )
            .await?;
        record
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::ServiceNotCreated {
                service: name.to_owned(),
            })
    }

    pub(super) async fn create_service_image(
        &self,
        fleet: u64,
        release: u64,
        service: &ServiceSpec,
    ) -> Result<(String, Image), ApiError> {
        let service_id = self.service_id(fleet, &service.name).await?;
        let started = time::now();
        let mut body = json!({
            "is_a_build_of__service": service_id,
            "status": Status::Running,
            "start_timestamp": started,
        });
        if let Some(contract) = &service.contract {
            body["contract"] = contract.clone();
        }
        // Images have no natural key: ours is the one of this service, still running, that
        // started at the very millisecond we sent.
        let same_start = |row: &Value| {
            row.get("start_timestamp")
                .and_then(Value::as_str)
                .is_some_and(|t| same_instant(t, &started))
        };
        let lookup = Lookup {
            filter: vec![
                ("is_a_build_of__service", Lit::Id(service_id)),
                ("status", Lit::Text("running")),
            ],
            accept: Some(&same_start),
        };
        let record = self.post_idempotent("image", &body, &lookup).await?;
        let image: Image = decode("POST /v7/image", Some(record))?;
        self.link_image(release, image.id, service).await?;
        Ok((service.name.clone(), image))
    }

    /// Makes `image` part of `release`, with the service's labels and environment.
    pub(super) async fn link_image(
        &self,
        release: u64,
        image: u64,
        service: &ServiceSpec,
    ) -> Result<(), ApiError> {
        let link_lookup = Lookup::by(vec![
            ("image", Lit::Id(image)),
            ("is_part_of__release", Lit::Id(release)),
        ]);
        let link = self
            .post_idempotent(
                "image__is_part_of__release",
                &json!({"is_part_of__release": release, "image": image}),
                &link_lookup,
            )
            .await?;
        let release_image = link
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("POST /v7/image__is_part_of__release", "no record id"))?;

        self.post_pairs(release_image, "image_label", "label_name", &service.labels)
            .await?;
        self.post_pairs(
            release_image,
            "image_environment_variable",
            "name",
            &service.environment,
        )
        .await
    }

    /// Labels or environment variables of one release image, five at a time.
    async fn post_pairs(
        &self,
        release_image: u64,
        resource: &str,
        name_field: &str,
        pairs: &indexmap::IndexMap<String, String>,
    ) -> Result<(), ApiError> {
        stream::iter(pairs)
            .map(|(name, value)| async move {
                let body =
                    json!({"release_image": release_image, name_field: name, "value": value});
                let lookup = Lookup::by(vec![
                    ("release_image", Lit::Id(release_image)),
                    (name_field, Lit::Text(name)),
                ]);
                self.post_idempotent(resource, &body, &lookup)
                    .await
                    .map(drop)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// `PATCH image(<id>)`.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn update_image(&self, id: u64, update: &ImageUpdate) -> Result<(), ApiError> {
        self.patch(&format!("/v7/image({id})"), &to_value(update)?)
            .await
    }
}

/// Whether two API timestamps name the same millisecond (the server may add precision or
/// spell the zone differently).
fn same_instant(a: &str, b: &str) -> bool {
    const MILLIS: usize = "YYYY-MM-DDTHH:MM:SS.mmm".len();
    a.get(..MILLIS).is_some_and(|p| Some(p) == b.get(..MILLIS))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn same_instants_ignore_precision_and_zone_spelling() {
        assert!(same_instant(
            "2024-01-01T00:00:00.123Z",
            "2024-01-01T00:00:00.123+00:00"
        ));
        assert!(!same_instant(
            "2024-01-01T00:00:00.123Z",
            "2024-01-01T00:00:00.124Z"
        ));
    }
}
