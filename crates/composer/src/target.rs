//! The v3 target state document (`GET /device/v3/<uuid>/state`) and `apps.json`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::names;

/// A device's target state: its apps, keyed by app uuid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// The device uuid the document is for, when the document is keyed by it.
    #[serde(skip)]
    pub device_uuid: Option<String>,
    /// The device name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Device configuration variables.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The apps, keyed by app uuid.
    #[serde(default)]
    pub apps: IndexMap<String, TargetApp>,
}

/// One app of the target state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetApp {
    /// The app uuid (the key of the app in the document).
    #[serde(default, skip_serializing)]
    pub uuid: String,
    /// The numeric app id (deprecated upstream, still required).
    #[serde(deserialize_with = "de_id")]
    pub id: u64,
    /// The app name.
    #[serde(default)]
    pub name: String,
    /// `fleet`, `app` or `block`.
    #[serde(default = "default_class")]
    pub class: String,
    /// The releases; only the first one is used.
    #[serde(default)]
    pub releases: IndexMap<String, TargetRelease>,
}

fn default_class() -> String {
    "fleet".to_owned()
}

/// A release: services, volumes and networks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetRelease {
    /// The numeric release id.
    #[serde(deserialize_with = "de_id", default)]
    pub id: u64,
    /// The services, in document order.
    #[serde(default)]
    pub services: IndexMap<String, TargetService>,
    /// The volumes.
    #[serde(default)]
    pub volumes: IndexMap<String, Value>,
    /// The networks.
    #[serde(default)]
    pub networks: IndexMap<String, Value>,
}

/// A service of a release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetService {
    /// The numeric service id.
    #[serde(deserialize_with = "de_id", default)]
    pub id: u64,
    /// The numeric image id.
    #[serde(deserialize_with = "de_id", default)]
    pub image_id: u64,
    /// The image reference.
    pub image: String,
    /// Whether the service should run (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    /// Environment, merged over `composition.environment`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Labels, merged over `composition.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The container contract (requirements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Value>,
    /// The compose service keys, snake_case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<serde_json::Map<String, Value>>,
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            serde::de::Error::custom(format!("id {n} is not a non-negative integer"))
        }),
        Value::String(s) => s.parse().map_err(|_| {
            serde::de::Error::custom(format!("id {s:?} is not a non-negative integer"))
        }),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!(
            "id {other} is not a number"
        ))),
    }
}

impl TargetState {
    /// Parses a target state document: either the v3 endpoint's `{ "<deviceUuid>": { name,
    /// config, apps } }` or the `apps.json` shape `{ config, apps }`.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::Target(format!("not JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Same as [`TargetState::from_json`], from a parsed value.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Error::Target(
                "the document is not a JSON object".to_owned(),
            ));
        };
        if map.contains_key("apps") {
            let state: TargetState = serde_json::from_value(Value::Object(map))
                .map_err(|e| Error::Target(e.to_string()))?;
            return Ok(state.with_app_uuids());
        }
        let mut entries = map.into_iter();
        let Some((uuid, device)) = entries.next() else {
            return Err(Error::Target(
                "the document names no device and no apps".to_owned(),
            ));
        };
        if entries.next().is_some() {
            return Err(Error::Target(
                "the document holds more than one device; expected { \"<uuid>\": {…} }".to_owned(),
            ));
        }
        let mut state: TargetState = serde_json::from_value(device)
            .map_err(|e| Error::Target(format!("device {uuid}: {e}")))?;
        state.device_uuid = Some(uuid);
        Ok(state.with_app_uuids())
    }

    fn with_app_uuids(mut self) -> Self {
        for (uuid, app) in &mut self.apps {
            if app.uuid.is_empty() {
                app.uuid.clone_from(uuid);
            }
        }
        self
    }

    /// Finds an app by numeric id, uuid or name.
    pub fn find_app(&self, app: &str) -> Option<(&str, &TargetApp)> {
        self.apps
            .iter()
            .find(|(uuid, a)| uuid.as_str() == app || a.id.to_string() == app)
            .or_else(|| self.apps.iter().find(|(_, a)| a.name == app))
            .map(|(uuid, a)| (uuid.as_str(), a))
    }
}

impl TargetApp {
    /// The release that applies (the first one) and its commit.
    pub fn release(&self) -> Option<(&str, &TargetRelease)> {
        self.releases.iter().next().map(|(c, r)| (c.as_str(), r))
    }

    /// Release `commit`, after [`TargetApp::check_names`]: what an update and its dry run
    /// start from.
    pub fn checked_release(&self, commit: &str) -> Result<&TargetRelease> {
        self.check_names()?;
        self.releases
            .get(commit)
            .ok_or_else(|| Error::ReleaseNotInTarget {
                app: self.uuid.clone(),
                commit: commit.to_owned(),
            })
    }

    /// Checks every name the app gives (its uuid, its releases and their services, networks
    /// and volumes) with [`crate::names::is_compose_name`]; the first bad one is the error.
    /// The display name is not checked: it names nothing on the host or in the engine.
    pub fn check_names(&self) -> Result<()> {
        let app = if self.uuid.is_empty() {
            self.id.to_string()
        } else {
            self.uuid.clone()
        };
        if !self.uuid.is_empty() {
            names::check(&app, "app", &self.uuid)?;
        }
        for (commit, release) in &self.releases {
            names::check(&app, "release", commit)?;
            let named = [
                ("service", release.services.keys().collect::<Vec<_>>()),
                ("network", release.networks.keys().collect()),
                ("volume", release.volumes.keys().collect()),
            ];
            for (kind, list) in named {
                for name in list {
                    names::check(&app, kind, name)?;
                }
            }
        }
        Ok(())
    }
}

/// The parts of a balenaOS `config.json` the composer uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConfig {
    /// The device uuid.
    #[serde(default)]
    pub uuid: Option<String>,
    /// The device API key.
    #[serde(default)]
    pub device_api_key: Option<String>,
    /// The API endpoint, e.g. `https://api.balena-cloud.com`.
    #[serde(default)]
    pub api_endpoint: Option<String>,
    /// The delta server, e.g. `https://delta.balena-cloud.com`.
    #[serde(default)]
    pub delta_endpoint: Option<String>,
    /// The device type slug.
    #[serde(default)]
    pub device_type: Option<String>,
}

impl DeviceConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::File {
            path: path.to_owned(),
            message: format!("not a valid config.json: {e}"),
        })
    }
}

/// Fetches the device's target state from `<apiEndpoint>/device/v3/<uuid>/state` with the
/// device API key as bearer token. `url` overrides the endpoint when given.
pub async fn fetch_target_state(config: &DeviceConfig, url: Option<&str>) -> Result<TargetState> {
    let uuid = config.uuid.as_deref();
    let url = match (url, &config.api_endpoint, uuid) {
        (Some(u), _, _) => u.to_owned(),
        (None, Some(api), Some(uuid)) => {
            format!("{}/device/v3/{uuid}/state", api.trim_end_matches('/'))
        }
        _ => {
            return Err(Error::TargetFetch {
                url: String::new(),
                message: "config.json needs apiEndpoint and uuid".to_owned(),
            });
        }
    };
    let fail = |message: String| Error::TargetFetch {
        url: url.clone(),
        message,
    };
    let mut request = reqwest::Client::new().get(&url);
    if let Some(key) = &config.device_api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the API answered {status}")));
    }
    let value: Value = response.json().await.map_err(|e| fail(e.to_string()))?;
    TargetState::from_value(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_v3_document_and_string_ids() {
        let doc = r#"{"dev1":{"name":"d","config":{},"apps":{"appuuid":{"id":"12","name":"a",
            "releases":{"c0ffee":{"id":3,"services":{"main":{"id":4,"image_id":5,
            "image":"busybox","environment":{"A":"1"},"labels":{}}}}}}}}}"#;
        let state = TargetState::from_json(doc).unwrap();
        assert_eq!(state.device_uuid.as_deref(), Some("dev1"));
        let (uuid, app) = state.find_app("12").unwrap();
        assert_eq!(uuid, "appuuid");
        assert_eq!(app.uuid, "appuuid");
        let (commit, release) = app.release().unwrap();
        assert_eq!(commit, "c0ffee");
        assert_eq!(release.services["main"].image_id, 5);
        assert_eq!(app.class, "fleet");
    }

    #[test]
    fn parses_apps_json_shape() {
        let doc = r#"{"config":{},"apps":{"u":{"id":1,"name":"x","releases":{}}}}"#;
        let state = TargetState::from_json(doc).unwrap();
        assert!(state.device_uuid.is_none());
        assert!(state.find_app("x").is_some());
    }

    #[test]
    fn rejects_negative_ids() {
        let doc = r#"{"apps":{"u":{"id":-1,"releases":{}}}}"#;
        let err = TargetState::from_json(doc).unwrap_err().to_string();
        assert!(err.contains("not a non-negative integer"), "{err}");
    }
}
