//! The fleet's current release: what `deploy --service` keeps and push tokens may mount from.

use serde_json::Value;

use super::Api;
use super::odata::{Lit, as_list, odata_filter};
use super::transport::{decode, invalid};
use crate::error::ApiError;
use crate::models::{CurrentRelease, Image};

impl Api {
    /// The image locations of the fleet's latest successful release, so that a push token
    /// can also let the registry mount their blobs.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn previous_image_locations(&self, fleet: u64) -> Result<Vec<String>, ApiError> {
        let current = self.current_release(fleet).await?;
        Ok(current
            .into_iter()
            .flat_map(|release| release.images.into_values())
            .map(|image| image.location)
            .collect())
    }

    /// The fleet's latest successful release, with each service's image (`None` when the
    /// fleet has none): what `deploy --service` takes the services it does not build from.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn current_release(&self, fleet: u64) -> Result<Option<CurrentRelease>, ApiError> {
        let query = [
            ("$select", "id".to_owned()),
            (
                "$filter",
                odata_filter(&[
                    ("belongs_to__application", Lit::Id(fleet)),
                    ("status", Lit::Text("success")),
                ]),
            ),
            (
                "$expand",
                "release_image($select=id;$expand=image($select=id,is_stored_at__image_location;$expand=is_a_build_of__service($select=service_name)))"
                    .to_owned(),
            ),
            ("$orderby", "id desc".to_owned()),
            ("$top", "1".to_owned()),
        ];
        let rows = self.get_rows("/v7/release", &query).await?;
        let Some(release) = rows.first() else {
            return Ok(None);
        };
        let id = release
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("GET /v7/release", "a release without id"))?;
        let mut images = indexmap::IndexMap::new();
        let linked = as_list(release.get("release_image"))
            .into_iter()
            .flat_map(|link| as_list(link.get("image")));
        for image in linked {
            let service = as_list(image.get("is_a_build_of__service"))
                .into_iter()
                .find_map(|s| s.get("service_name")?.as_str())
                .ok_or_else(|| invalid("GET /v7/release", "an image without its service"))?
                .to_owned();
            let image: Image = decode("GET /v7/release", Some(image.clone()))?;
            images.insert(service, image);
        }
        Ok(Some(CurrentRelease { id, images }))
    }
}
