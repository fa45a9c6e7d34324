//! What a device asks the API for: `GET /device/v3/<uuid>/state`, built like the real API
//! builds it from the device's fleet and the release it should run.
//!
//! Devices are `device` records in the fake's state: `uuid`, `api_key` (the bearer token the
//! device authenticates with), `belongs_to__application` and an optional
//! `is_pinned_on__release`. A fleet pins a release with `should_be_running__release` on its
//! `application` record; without a pin the target is the fleet's latest successful final
//! release.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::{Answer, FakeApi, State, record_id};

/// A device registered with the fake.
#[derive(Debug, Clone)]
pub struct FakeDevice {
    /// The device uuid (config.json's `uuid`).
    pub uuid: String,
    /// The device API key (config.json's `deviceApiKey`).
    pub api_key: String,
    /// The id of the fleet the device belongs to.
    pub fleet_id: u64,
    /// The release id the device is pinned to, if any.
    pub pinned_release: Option<u64>,
}

/// The uuid the fake gives a seeded fleet (its `application` record's `uuid`): 32 hex digits
/// derived from its id, so tests can predict the engine objects' names.
pub fn fleet_uuid(fleet_id: u64) -> String {
    format!("{fleet_id:032x}")
}

impl FakeApi {
    /// Registers a device: a `device` record its state requests are answered from.
    pub fn register_device(&self, device: &FakeDevice) {
        let mut state = self.state();
        let id = state.new_id();
        let record = json!({
            "id": id,
            "uuid": device.uuid,
            "api_key": device.api_key,
            "belongs_to__application": device.fleet_id,
            "is_pinned_on__release": device.pinned_release,
        });
        state
            .resources
            .entry("device".to_owned())
            .or_default()
            .push(record);
    }

    /// Pins a fleet to a release (`None` unpins: the latest successful release applies).
    pub fn pin_fleet(&self, fleet_id: u64, release_id: Option<u64>) {
        let mut state = self.state();
        if let Some(fleets) = state.resources.get_mut("application") {
            for fleet in fleets.iter_mut() {
                if record_id(fleet) == Some(fleet_id)
                    && let Value::Object(map) = fleet
                {
                    map.insert("should_be_running__release".to_owned(), json!(release_id));
                }
            }
        }
    }
}

/// The device uuid of a `/device/v3/<uuid>/state` path.
pub(crate) fn state_path(path: &str) -> Option<&str> {
    path.strip_prefix("/device/v3/")?
        .strip_suffix("/state")
        .filter(|uuid| !uuid.is_empty() && !uuid.contains('/'))
}

/// Whether `token` is the API key of the device `uuid`.
pub(crate) fn authorizes(state: &State, uuid: &str, token: Option<&str>) -> bool {
    find_device(state, uuid)
        .and_then(|d| d.get("api_key"))
        .and_then(Value::as_str)
        .is_some_and(|key| Some(key) == token)
}

fn find_device<'a>(state: &'a State, uuid: &str) -> Option<&'a Value> {
    state
        .records("device")
        .iter()
        .find(|d| d.get("uuid").and_then(Value::as_str) == Some(uuid))
}

fn id_field(record: &Value, field: &str) -> Option<u64> {
    record.get(field).and_then(Value::as_u64)
}

/// The v3 target state of device `uuid`.
pub(crate) fn target_state(state: &State, uuid: &str) -> Answer {
    let Some(device) = find_device(state, uuid) else {
        return Answer::error(StatusCode::NOT_FOUND, format!("No device {uuid}"));
    };
    let Some(fleet) =
        id_field(device, "belongs_to__application").and_then(|id| state.record("application", id))
    else {
        return Answer::error(StatusCode::NOT_FOUND, "The device's fleet is gone");
    };
    let fleet_id = record_id(fleet).unwrap_or_default();
    let release = id_field(device, "is_pinned_on__release")
        .or_else(|| id_field(fleet, "should_be_running__release"))
        .and_then(|id| state.record("release", id))
        .or_else(|| latest_release(state, fleet_id));
    let releases = match release {
        Some(release) => {
            let commit = release.get("commit").and_then(Value::as_str).unwrap_or("");
            json!({ commit: release_state(state, release) })
        }
        None => json!({}),
    };
    let app = json!({
        "id": fleet_id,
        "name": fleet.get("app_name").cloned().unwrap_or(Value::Null),
        "is_host": false,
        "class": "fleet",
        "releases": releases,
    });
    Answer::json(
        StatusCode::OK,
        json!({ uuid: {
            "name": uuid,
            "config": {},
            "apps": { fleet_uuid(fleet_id): app },
        }}),
    )
}

/// The fleet's latest release that finished successfully and is final.
fn latest_release(state: &State, fleet_id: u64) -> Option<&Value> {
    state.records("release").iter().rev().find(|r| {
        id_field(r, "belongs_to__application") == Some(fleet_id)
            && r.get("status").and_then(Value::as_str) == Some("success")
            && r.get("is_final").and_then(Value::as_bool) != Some(false)
    })
}

/// One release of the v3 state: its services with image locations, labels and environment
/// as recorded, and the composition's volumes and networks.
fn release_state(state: &State, release: &Value) -> Value {
    let release_id = record_id(release).unwrap_or_default();
    let composition = release.get("composition").cloned().unwrap_or(Value::Null);
    let mut services = Map::new();
    for link in state.records("image__is_part_of__release") {
        if id_field(link, "is_part_of__release") != Some(release_id) {
            continue;
        }
        let Some(image) = id_field(link, "image").and_then(|id| state.record("image", id)) else {
            continue;
        };
        let Some(service) =
            id_field(image, "is_a_build_of__service").and_then(|id| state.record("service", id))
        else {
            continue;
        };
        let name = service
            .get("service_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let compose = composition
            .get("services")
            .and_then(|s| s.get(name))
            .cloned()
            .unwrap_or_else(|| json!({}));
        services.insert(
            name.to_owned(),
            service_state(state, link, image, service, compose),
        );
    }
    json!({
        "id": release_id,
        "services": services,
        "volumes": composition.get("volumes").cloned().unwrap_or_else(|| json!({})),
        "networks": composition.get("networks").cloned().unwrap_or_else(|| json!({})),
    })
}

fn service_state(
    state: &State,
    link: &Value,
    image: &Value,
    service: &Value,
    mut compose: Value,
) -> Value {
    let link_id = record_id(link);
    let pairs = |resource: &str, key: &str, value: &str| -> Map<String, Value> {
        state
            .records(resource)
            .iter()
            .filter(|r| id_field(r, "release_image") == link_id)
            .filter_map(|r| Some((r.get(key)?.as_str()?.to_owned(), r.get(value)?.clone())))
            .collect()
    };
    let location = image
        .get("is_stored_at__image_location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The real API names the image by location and digest once it is pushed.
    let reference = match image.get("content_hash").and_then(Value::as_str) {
        Some(digest) => format!("{location}@{digest}"),
        None => location.to_owned(),
    };
    if let Value::Object(map) = &mut compose {
        for key in ["build", "image", "labels", "environment"] {
            map.remove(key);
        }
    }
    json!({
        "id": record_id(service),
        "image_id": record_id(image),
        "image": reference,
        "running": true,
        "environment": pairs("image_environment_variable", "name", "value"),
        "labels": pairs("image_label", "label_name", "value"),
        "contract": image.get("contract").cloned().unwrap_or(Value::Null),
        "composition": compose,
    })
}
