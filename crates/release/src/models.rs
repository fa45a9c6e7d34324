//! The records the release client reads and writes.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// A fleet (an `application` in the API) with what a build needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The application id.
    pub id: u64,
    /// `org/name`.
    pub slug: String,
    /// The device type slug, e.g. `raspberrypi3`.
    pub device_type: String,
    /// The CPU architecture slug, e.g. `armv7hf`.
    pub arch: String,
    /// Whether more than one service may be deployed (true when the API does not say).
    pub supports_multicontainer: bool,
}

/// The user the API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// The user id.
    pub id: u64,
    /// The username.
    #[serde(default)]
    pub username: String,
}

/// The status of a release or an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being built or pushed.
    Running,
    /// Done and usable.
    Success,
    /// Given up.
    Failed,
    /// Stopped by the user.
    Cancelled,
    /// Stopped by the system.
    Interrupted,
    /// An internal error (set by the builder).
    Error,
}

/// A release record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Release {
    /// The release id.
    pub id: u64,
    /// The release commit (32 hex characters for local deploys).
    pub commit: String,
    /// The status, when the API returned it.
    #[serde(default)]
    pub status: Option<Status>,
    /// The composition as sent.
    #[serde(default)]
    pub composition: Value,
    /// `local`, `cloud`, …
    #[serde(default)]
    pub source: Option<String>,
    /// False for draft releases.
    #[serde(default)]
    pub is_final: Option<bool>,
    /// The `balena.yml` contract, if any.
    #[serde(default)]
    pub contract: Option<Value>,
    /// The contract's version.
    #[serde(default)]
    pub semver: Option<String>,
    /// When the release was started.
    #[serde(default)]
    pub start_timestamp: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub end_timestamp: Option<String>,
}

/// An image record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Image {
    /// The image id.
    pub id: u64,
    /// Where the image must be pushed: `<registry host>/<repository>[:tag]`.
    #[serde(rename = "is_stored_at__image_location")]
    pub location: String,
    /// The status, when the API returned it.
    #[serde(default)]
    pub status: Option<Status>,
    /// When the image was started.
    #[serde(default)]
    pub start_timestamp: Option<String>,
}

/// What the release records for one service: its labels, environment and container contract.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSpec {
    /// The service name.
    pub name: String,
    /// Compose labels, recorded as `image_label`s.
    pub labels: IndexMap<String, String>,
    /// Compose environment, recorded as `image_environment_variable`s.
    pub environment: IndexMap<String, String>,
    /// The image's container contract, if the build found one.
    pub contract: Option<Value>,
}

impl ServiceSpec {
    /// The services of a composition (JSON), in order, with their labels and environment.
    /// Both compose spellings are accepted: a map, or a list of `KEY=VALUE` strings. A
    /// `null` value (and a list entry without `=`) is recorded as `""`, as the reference does.
    pub fn from_composition(composition: &Value) -> Vec<ServiceSpec> {
        let Some(services) = composition.get("services").and_then(Value::as_object) else {
            return Vec::new();
        };
        services
            .iter()
            .map(|(name, service)| ServiceSpec {
                name: name.clone(),
                labels: key_values(service.get("labels")),
                environment: key_values(service.get("environment")),
                contract: None,
            })
            .collect()
    }
}

fn key_values(value: Option<&Value>) -> IndexMap<String, String> {
    match value {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), scalar_text(v)))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => IndexMap::new(),
    }
}

/// `(value || '').toString()`.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Everything `create_release` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRelease {
    /// The creating user's id.
    pub user: u64,
    /// The fleet's id.
    pub fleet: u64,
    /// The full composition, skipped services included.
    pub composition: Value,
    /// `local` for deploys from this tool.
    pub source: String,
    /// The release commit; see [`crate::random_commit`].
    pub commit: String,
    /// False for a draft release.
    pub is_final: bool,
    /// The contract's version, sent only when present.
    pub semver: Option<String>,
    /// The `balena.yml` contract.
    pub contract: Option<Value>,
    /// The services to record, normally [`ServiceSpec::from_composition`].
    pub services: Vec<ServiceSpec>,
    /// Services not built for this release: service name → the id of an image of an earlier
    /// release (see [`Api::current_release`](crate::Api::current_release)), linked as it is.
    /// They are left out of [`CreatedRelease::images`], so nothing is pushed for them.
    pub reused: IndexMap<String, u64>,
}

impl NewRelease {
    /// A final `local` release of every service of `composition`, without a contract.
    pub fn new(user: u64, fleet: u64, composition: Value, commit: impl Into<String>) -> NewRelease {
        NewRelease {
            user,
            fleet,
            services: ServiceSpec::from_composition(&composition),
            composition,
            source: "local".to_owned(),
            commit: commit.into(),
            is_final: true,
            semver: None,
            contract: None,
            reused: IndexMap::new(),
        }
    }
}

/// A created release and, per service name (in composition order), its image.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedRelease {
    /// The fleet's id.
    pub fleet: u64,
    /// The release.
    pub release: Release,
    /// Service name → image.
    pub images: IndexMap<String, Image>,
}

/// A fleet's latest successful release and, per service name, its image.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentRelease {
    /// The release id.
    pub id: u64,
    /// Service name → image (its id and registry location).
    pub images: IndexMap<String, Image>,
}

/// The largest `build_log` sent, as the reference caps it.
pub const BUILD_LOG_CAP: usize = 512 * 1024;
/// The largest `error_message` sent, in characters.
pub const ERROR_MESSAGE_CAP: usize = 300_000;

/// A partial image update: only the fields the balena CLI sends, each only when set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageUpdate {
    /// `running`, `success` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// When the build started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    /// When the build (or the failure) ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
    /// When the push finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_timestamp: Option<String>,
    /// `sha256:…` as the registry serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The image size in bytes, sent as a string like the reference.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_text")]
    pub image_size: Option<u64>,
    /// The resolved Dockerfile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The project type the resolver chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_type: Option<String>,
    /// The build log (see [`ImageUpdate::with_build_log`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_log: Option<String>,
    /// Why the image failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

fn as_text<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(&v.to_string()),
        None => s.serialize_none(),
    }
}

impl ImageUpdate {
    /// A pushed image: `success`, its digest and size, pushed and ended now.
    pub fn pushed(content_hash: impl Into<String>, image_size: u64) -> ImageUpdate {
        let now = crate::time::now();
        ImageUpdate {
            status: Some(Status::Success),
            content_hash: Some(content_hash.into()),
            image_size: Some(image_size),
            push_timestamp: Some(now.clone()),
            end_timestamp: Some(now),
            ..ImageUpdate::default()
        }
    }

    /// A failed image: `failed`, the message (capped at [`ERROR_MESSAGE_CAP`] characters),
    /// ended now.
    pub fn failed(error_message: &str) -> ImageUpdate {
        ImageUpdate {
            status: Some(Status::Failed),
            error_message: Some(error_message.chars().take(ERROR_MESSAGE_CAP).collect()),
            end_timestamp: Some(crate::time::now()),
            ..ImageUpdate::default()
        }
    }

    /// Sets the build log, keeping its last [`BUILD_LOG_CAP`] bytes (the end of a log says
    /// most), cut at a character boundary.
    pub fn with_build_log(mut self, log: &str) -> ImageUpdate {
        let mut start = log.len().saturating_sub(BUILD_LOG_CAP);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        self.build_log = Some(log[start..].to_owned());
        self
    }
}

/// A partial release update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReleaseUpdate {
    /// The new status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// When the release ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
    /// The release note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Finalise (or draft) the release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
}

impl ReleaseUpdate {
    /// The final status, ended now.
    pub fn finished(status: Status) -> ReleaseUpdate {
        ReleaseUpdate {
            status: Some(status),
            end_timestamp: Some(crate::time::now()),
            ..ReleaseUpdate::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn services_come_with_labels_and_environment_in_both_spellings() {
        let c = json!({"services": {
            "main": {"labels": {"io.balena.features.dbus": "1", "n": null}, "environment": ["A=1", "B", "C=x=y"]},
            "other": {"environment": {"PORT": 80, "ON": true}},
        }});
        let s = ServiceSpec::from_composition(&c);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "main");
        assert_eq!(s[0].labels["io.balena.features.dbus"], "1");
        assert_eq!(s[0].labels["n"], "");
        assert_eq!(s[0].environment["B"], "");
        assert_eq!(s[0].environment["C"], "x=y");
        assert_eq!(s[1].environment["PORT"], "80");
        assert_eq!(s[1].environment["ON"], "true");
        assert!(ServiceSpec::from_composition(&json!({})).is_empty());
    }

    #[test]
    fn image_updates_send_only_set_fields_and_size_as_text() {
        let u = serde_json::to_value(ImageUpdate::pushed("sha256:ab", 1234)).unwrap();
        assert_eq!(u["status"], "success");
        assert_eq!(u["image_size"], "1234");
        assert_eq!(u["content_hash"], "sha256:ab");
        assert!(u.get("error_message").is_none() && u.get("build_log").is_none());
        let f =
            serde_json::to_value(ImageUpdate::failed(&"x".repeat(ERROR_MESSAGE_CAP + 5))).unwrap();
        assert_eq!(
            f["error_message"].as_str().unwrap().len(),
            ERROR_MESSAGE_CAP
        );
        assert!(f.get("image_size").is_none());
    }

    #[test]
    fn build_logs_keep_their_tail_on_a_char_boundary() {
        let log = format!("é{}", "z".repeat(BUILD_LOG_CAP - 1));
        let u = ImageUpdate::default().with_build_log(&log);
        let kept = u.build_log.unwrap();
        assert!(kept.len() <= BUILD_LOG_CAP && kept.ends_with('z') && !kept.starts_with('é'));
        let short = ImageUpdate::default().with_build_log("ok");
        assert_eq!(short.build_log.as_deref(), Some("ok"));
    }
}
