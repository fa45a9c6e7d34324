//! Who the key is, and the fleets it can see.

use reqwest::Method;
use serde_json::Value;

use super::Api;
use super::odata::{Lit, as_list, odata_filter};
use super::transport::{decode, invalid};
use crate::error::ApiError;
use crate::models::{Fleet, User};

impl Api {
    /// The user the key belongs to (`GET /user/v1/whoami`); the cheapest way to check a key.
    ///
    /// # Errors
    /// [`ApiError::Unauthorised`] for a wrong key, and the usual transport errors.
    pub async fn whoami(&self) -> Result<User, ApiError> {
        let path = "/user/v1/whoami";
        let value = self.send(Method::GET, path, &[], None).await?;
        decode(&format!("GET {path}"), value)
    }

    /// A fleet by slug (`org/name`, case-insensitive) or numeric id, with its device type and
    /// architecture.
    ///
    /// # Errors
    /// [`ApiError::FleetNotFound`] when it does not exist or the key cannot see it.
    pub async fn fleet(&self, fleet: &str) -> Result<Fleet, ApiError> {
        let mut query = vec![
            ("$select", "id,slug".to_owned()),
            (
                "$expand",
                "is_for__device_type($select=slug;$expand=is_of__cpu_architecture($select=slug)),\
                 application_type($select=supports_multicontainer)"
                    .to_owned(),
            ),
        ];
        let path = match fleet.parse::<u64>() {
            Ok(id) => format!("/v7/application({id})"),
            Err(_) => {
                let slug = fleet.to_lowercase();
                query.push(("$filter", odata_filter(&[("slug", Lit::Text(&slug))])));
                "/v7/application".to_owned()
            }
        };
        let rows = self.get_rows(&path, &query).await?;
        let Some(row) = rows.first() else {
            return Err(ApiError::FleetNotFound {
                fleet: fleet.to_owned(),
            });
        };
        parse_fleet(row).ok_or_else(|| invalid(&format!("GET {path}"), "incomplete application"))
    }

    pub(super) async fn require(&self, resource: &'static str, id: u64) -> Result<u64, ApiError> {
        let rows = self
            .get_rows(
                &format!("/v7/{resource}({id})"),
                &[("$select", "id".to_owned())],
            )
            .await?;
        if rows.is_empty() {
            return Err(ApiError::MissingRecord { resource, id });
        }
        Ok(id)
    }
}

fn parse_fleet(row: &Value) -> Option<Fleet> {
    let device_type = *as_list(row.get("is_for__device_type")).first()?;
    let arch = *as_list(device_type.get("is_of__cpu_architecture")).first()?;
    let supports_multicontainer = as_list(row.get("application_type"))
        .first()
        .and_then(|t| t.get("supports_multicontainer"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Some(Fleet {
        id: row.get("id")?.as_u64()?,
        slug: row.get("slug")?.as_str()?.to_owned(),
        device_type: device_type.get("slug")?.as_str()?.to_owned(),
        arch: arch.get("slug")?.as_str()?.to_owned(),
        supports_multicontainer,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn fleets_parse_from_expanded_rows() {
        let row = json!({"id": 5, "slug": "org/app",
            "is_for__device_type": [{"slug": "raspberrypi3", "is_of__cpu_architecture": [{"slug": "armv7hf"}]}],
            "application_type": [{"supports_multicontainer": false}]});
        let fleet = parse_fleet(&row).unwrap();
        assert_eq!(
            (fleet.device_type.as_str(), fleet.arch.as_str()),
            ("raspberrypi3", "armv7hf")
        );
        assert!(!fleet.supports_multicontainer);
        assert!(parse_fleet(&json!({"id": 5, "slug": "x"})).is_none());
    }
}
