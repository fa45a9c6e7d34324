//! The v3 target state of a fleet's release, read with a user's API key: what
//! `GET /device/v3/<uuid>/state` would give a device of the fleet, for `up --target` on
//! devices without API access and for tests.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// Which release of which fleet, read from which API.
#[derive(Debug, Clone)]
pub struct ReleaseQuery<'a> {
    /// The API, e.g. `https://api.balena-cloud.com`.
    pub api_url: &'a str,
    /// The user's API key.
    pub api_key: &'a str,
    /// The fleet slug, `org/name`.
    pub fleet: &'a str,
    /// The release commit; without it, the latest successful final release.
    pub commit: Option<&'a str>,
}

/// A pine/OData reader of one API.
struct Pine<'a> {
    client: reqwest::Client,
    query: &'a ReleaseQuery<'a>,
}

impl Pine<'_> {
    /// `GET /v7/<resource>` with these query pairs; the records of `d`.
    async fn get(&self, resource: &str, params: &[(&str, String)]) -> Result<Vec<Value>> {
        let url = format!("{}/v7/{resource}", self.query.api_url.trim_end_matches('/'));
        let fail = |message: String| Error::TargetFetch {
            url: url.clone(),
            message,
        };
        let response = self
            .client
            .get(&url)
            .query(params)
            .bearer_auth(self.query.api_key)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("the API answered {status}")));
        }
        let body: Value = response.json().await.map_err(|e| fail(e.to_string()))?;
        match body.get("d") {
            Some(Value::Array(rows)) => Ok(rows.clone()),
            _ => Err(fail("the answer holds no `d` list".to_owned())),
        }
    }

    /// The one record of `resource` matching `filter`, or an error naming `what`.
    async fn one(&self, resource: &str, filter: String, what: String) -> Result<Value> {
        let rows = self.get(resource, &[("$filter", filter)]).await?;
        rows.into_iter().next().ok_or_else(|| Error::TargetFetch {
            url: self.query.api_url.to_owned(),
            message: format!("{what} not found"),
        })
    }
}

fn id_of(record: &Value, field: &str) -> u64 {
    record
        .get(field)
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

/// Quotes a pine string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Reads the release and builds its v3 target state, keyed by `device_uuid`.
///
/// # Errors
/// [`Error::TargetFetch`] when the API cannot be read or the fleet or release is not there.
pub async fn release_target_state(query: &ReleaseQuery<'_>, device_uuid: &str) -> Result<Value> {
    let pine = Pine {
        client: reqwest::Client::new(),
        query,
    };
    let slug = query.fleet.to_lowercase();
    let fleet = pine
        .one(
            "application",
            format!("slug eq {}", literal(&slug)),
            format!("fleet {slug}"),
        )
        .await?;
    let fleet_id = id_of(&fleet, "id");
    let (filter, what) = match query.commit {
        Some(commit) => (
            format!(
                "belongs_to__application eq {fleet_id} and commit eq {}",
                literal(commit)
            ),
            format!("release {commit} of {slug}"),
        ),
        None => (
            format!(
                "belongs_to__application eq {fleet_id} and status eq 'success' and is_final eq true"
            ),
            format!("a successful release of {slug}"),
        ),
    };
    let releases = pine
        .get(
            "release",
            &[
                ("$filter", filter),
                ("$orderby", "id desc".to_owned()),
                ("$top", "1".to_owned()),
            ],
        )
        .await?;
    let release = releases
        .into_iter()
        .next()
        .ok_or_else(|| Error::TargetFetch {
            url: query.api_url.to_owned(),
            message: format!("{what} not found"),
        })?;
    let commit = release
        .get("commit")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let release_state = read_release(&pine, &release).await?;
    // The real API gives every fleet a uuid; the app is keyed by it on the device.
    let app_uuid = fleet
        .get("uuid")
        .and_then(Value::as_str)
        .map_or_else(|| fleet_id.to_string(), str::to_owned);
    Ok(json!({ device_uuid: {
        "name": device_uuid,
        "config": {},
        "apps": { app_uuid: {
            "id": fleet_id,
            "name": fleet.get("app_name").cloned().unwrap_or(Value::Null),
            "is_host": false,
            "class": "fleet",
            "releases": { commit: release_state },
        }},
    }}))
}

/// A release's services (image location@digest, labels, environment, compose keys), volumes
/// and networks.
async fn read_release(pine: &Pine<'_>, release: &Value) -> Result<Value> {
    let release_id = id_of(release, "id");
    let composition = release.get("composition").cloned().unwrap_or(Value::Null);
    let links = pine
        .get(
            "image__is_part_of__release",
            &[("$filter", format!("is_part_of__release eq {release_id}"))],
        )
        .await?;
    let mut services = Map::new();
    for link in links {
        let (image_id, link_id) = (id_of(&link, "image"), id_of(&link, "id"));
        let image = pine
            .one(
                "image",
                format!("id eq {image_id}"),
                format!("image {image_id}"),
            )
            .await?;
        let service_id = id_of(&image, "is_a_build_of__service");
        let service = pine
            .one(
                "service",
                format!("id eq {service_id}"),
                format!("service {service_id}"),
            )
            .await?;
        let name = service
            .get("service_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let labels = pairs(pine, "image_label", "label_name", link_id).await?;
        let environment = pairs(pine, "image_environment_variable", "name", link_id).await?;
        let compose = composition
            .get("services")
            .and_then(|s| s.get(&name))
            .cloned()
            .unwrap_or_else(|| json!({}));
        services.insert(
            name,
            service_state(&image, service_id, compose, labels, environment),
        );
    }
    Ok(json!({
        "id": release_id,
        "services": services,
        "volumes": composition.get("volumes").cloned().unwrap_or_else(|| json!({})),
        "networks": composition.get("networks").cloned().unwrap_or_else(|| json!({})),
    }))
}

/// The `name → value` records of a release image (labels or environment).
async fn pairs(pine: &Pine<'_>, resource: &str, key: &str, link_id: u64) -> Result<Value> {
    let rows = pine
        .get(
            resource,
            &[("$filter", format!("release_image eq {link_id}"))],
        )
        .await?;
    let map: Map<String, Value> = rows
        .into_iter()
        .filter_map(|r| Some((r.get(key)?.as_str()?.to_owned(), r.get("value")?.clone())))
        .collect();
    Ok(Value::Object(map))
}

fn service_state(
    image: &Value,
    service_id: u64,
    mut compose: Value,
    labels: Value,
    environment: Value,
) -> Value {
    let location = image
        .get("is_stored_at__image_location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A pushed image is named by location and digest, as the device state names it.
    let reference = match image.get("content_hash").and_then(Value::as_str) {
        Some(digest) => format!("{location}@{digest}"),
        None => location.to_owned(),
    };
    if let Value::Object(map) = &mut compose {
        // Build keys say how the image was made; labels and environment come from the
        // release's records.
        for key in ["build", "image", "labels", "environment"] {
            map.remove(key);
        }
    }
    json!({
        "id": service_id,
        "image_id": id_of(image, "id"),
        "image": reference,
        "running": true,
        "environment": environment,
        "labels": labels,
        "contract": image.get("contract").cloned().unwrap_or(Value::Null),
        "composition": compose,
    })
}
