//! Combining compose documents as compose does: several `-f` files (later ones override),
//! `extends`, and `include`. Works on the interpolated YAML trees, before normalisation.

use serde_json::{Map, Value};

use crate::values::{device_target, key_values_as_map, names_as_map, volume_target};

/// Service keys holding `KEY=value` lists or mappings, merged key by key.
const KEY_VALUE_FIELDS: &[&str] = &["environment", "labels", "annotations", "sysctls"];
/// Service keys holding names (list) or name → settings (mapping), merged by name.
const NAME_FIELDS: &[&str] = &["networks", "depends_on"];
/// Service keys whose value an override replaces outright.
const REPLACED_FIELDS: &[&str] = &["command", "entrypoint"];

/// Merges `over` into `base` (both whole documents).
pub(crate) fn merge_documents(base: &mut Value, over: Value) {
    let (Value::Object(base_map), Value::Object(over_map)) = (&mut *base, &over) else {
        if !over.is_null() {
            *base = over;
        }
        return;
    };
    for (key, value) in over_map {
        match (key.as_str(), base_map.get_mut(key)) {
            ("services", Some(Value::Object(base_services))) => {
                if let Value::Object(services) = value {
                    for (name, service) in services {
                        match base_services.get_mut(name) {
                            Some(existing) => merge_service(existing, service.clone()),
                            None => {
                                base_services.insert(name.clone(), service.clone());
                            }
                        }
                    }
                }
            }
            (_, Some(existing)) => deep_merge(existing, value.clone()),
            (_, None) => {
                base_map.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Mappings merge key by key; anything else is replaced.
fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Merges one service definition over another, by the compose-spec merge rules.
pub(crate) fn merge_service(base: &mut Value, over: Value) {
    let Value::Object(over) = over else {
        if !over.is_null() {
            *base = over;
        }
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    let Value::Object(base) = base else { return };
    for (key, value) in over {
        let Some(existing) = base.get_mut(&key) else {
            base.insert(key, value);
            continue;
        };
        let k = key.as_str();
        if k == "build" {
            let mut b = build_as_map(existing);
            let o = build_as_map(&value);
            merge_mapping_fields(&mut b, o, &["args", "labels"]);
            *existing = b;
        } else if KEY_VALUE_FIELDS.contains(&k) {
            merge_converted(existing, &value, key_values_as_map);
        } else if NAME_FIELDS.contains(&k) {
            merge_converted(existing, &value, names_as_map);
        } else if REPLACED_FIELDS.contains(&k) {
            *existing = value;
        } else if k == "volumes" {
            merge_list_by(existing, value, volume_target);
        } else if k == "devices" {
            merge_list_by(existing, value, device_target);
        } else if let (Value::Array(b), Value::Array(o)) = (&mut *existing, &value) {
            for item in o {
                if !b.contains(item) {
                    b.push(item.clone());
                }
            }
        } else {
            deep_merge(existing, value);
        }
    }
}

fn build_as_map(value: &Value) -> Value {
    match value {
        Value::Object(_) => value.clone(),
        Value::Null => Value::Object(Map::new()),
        other => {
            let mut map = Map::new();
            map.insert("context".into(), other.clone());
            Value::Object(map)
        }
    }
}

/// Deep-merges two mappings, with `kv_fields` merged as key/value lists.
fn merge_mapping_fields(base: &mut Value, over: Value, kv_fields: &[&str]) {
    let (Value::Object(b), Value::Object(o)) = (&mut *base, over) else {
        return;
    };
    for (k, v) in o {
        match b.get_mut(&k) {
            Some(existing) if kv_fields.contains(&k.as_str()) => {
                merge_converted(existing, &v, key_values_as_map);
            }
            Some(existing) => deep_merge(existing, v),
            None => {
                b.insert(k, v);
            }
        }
    }
}

fn merge_converted(existing: &mut Value, over: &Value, convert: fn(&Value) -> Option<Value>) {
    match (convert(existing), convert(over)) {
        (Some(mut b), Some(o)) => {
            deep_merge(&mut b, o);
            *existing = b;
        }
        _ => *existing = over.clone(),
    }
}

/// Appends `over`'s items, replacing base items with the same key (mount target).
fn merge_list_by(existing: &mut Value, over: Value, key: fn(&Value) -> Option<String>) {
    let (Value::Array(b), Value::Array(o)) = (&mut *existing, &over) else {
        *existing = over;
        return;
    };
    for item in o {
        let k = key(item);
        match b.iter().position(|x| k.is_some() && key(x) == k) {
            Some(i) => {
                if let Some(slot) = b.get_mut(i) {
                    *slot = item.clone();
                }
            }
            None => b.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn services_merge_field_by_field() {
        let mut base = json!({"services": {"a": {
            "image": "x", "build": "./a",
            "environment": ["A=1", "B=2"], "labels": {"l": "1"},
            "ports": ["80:80"], "command": ["run", "it"],
            "volumes": ["v:/data", "w:/other"], "networks": ["n1"],
            "depends_on": ["b"]
        }, "b": {"image": "b"}}, "volumes": {"v": {}}});
        let over = json!({"services": {"a": {
            "image": "y", "build": {"args": {"X": "1"}},
            "environment": {"B": "3", "C": "4"}, "labels": ["m=2"],
            "ports": ["80:80", "90:90"], "command": "other",
            "volumes": ["v2:/data"], "networks": {"n2": {"aliases": ["z"]}},
            "depends_on": {"c": {"condition": "service_started"}}
        }, "c": {"image": "c"}}, "volumes": {"v2": {}}});
        merge_documents(&mut base, over);
        let a = &base["services"]["a"];
        assert_eq!(a["image"], "y");
        assert_eq!(a["build"], json!({"context": "./a", "args": {"X": "1"}}));
        assert_eq!(a["environment"], json!({"A": "1", "B": "3", "C": "4"}));
        assert_eq!(a["labels"], json!({"l": "1", "m": "2"}));
        assert_eq!(a["ports"], json!(["80:80", "90:90"]));
        assert_eq!(a["command"], "other");
        assert_eq!(a["volumes"], json!(["v2:/data", "w:/other"]));
        assert_eq!(a["networks"], json!({"n1": null, "n2": {"aliases": ["z"]}}));
        assert_eq!(
            a["depends_on"],
            json!({"b": null, "c": {"condition": "service_started"}})
        );
        assert_eq!(base["services"]["c"]["image"], "c");
        assert_eq!(base["volumes"], json!({"v": {}, "v2": {}}));
    }
}
