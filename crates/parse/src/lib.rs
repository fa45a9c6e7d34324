//! The `parse` stage of balena-compose: compose files in, a typed, normalised
//! [`Composition`] out.
//!
//! It reads compose-spec files (including the `version: '2.x'` files balena projects still
//! use) with anchors, merge keys and compose interpolation, merges several files, folds
//! `env_file` into `environment`, and applies every balena rule: forbidden fields, bind mounts
//! that become `io.balena.features.*` labels, short-syntax ports and volumes, label and
//! contract checks. A rule violation is an [`Error`] naming the file, service and field with
//! the reference implementation's message.
//!
//! ```
//! use parse::{LoadOptions, parse_str};
//!
//! let yaml = r#"
//! services:
//!   web:
//!     build: ./web
//!     image: example/web:${TAG:-latest}
//!     ports: ["80:8080", {target: 53, protocol: udp}]
//!     volumes: ["/var/run/balena-engine.sock:/var/run/balena-engine.sock"]
//! "#;
//! let options = LoadOptions {
//!     project_dir: Some("/project".into()),
//!     environment: Some(Default::default()),
//!     ..LoadOptions::default()
//! };
//! let composition = parse_str(yaml, &options)?;
//! let web = &composition.services["web"];
//! let build = web.build.as_ref().expect("a build");
//! assert_eq!(build.context, "web");
//! assert_eq!(build.dockerfile, "Dockerfile");
//! assert_eq!(build.tags, ["example/web:latest"]);
//! assert_eq!(web.ports, ["80:8080", "53/udp"]);
//! assert_eq!(web.labels["io.balena.features.balena-socket"], "1");
//! assert!(composition.networks.contains_key("default"));
//!
//! let refused = parse_str("services: {s: {image: x, privileged: true, runtime: nvidia}}", &options);
//! assert_eq!(
//!     refused.unwrap_err().to_string(),
//!     r#"/project/docker-compose.yml: service "s": service.runtime is not allowed"#
//! );
//! # Ok::<(), parse::Error>(())
//! ```
#![deny(missing_docs)]

mod contract;
mod dotenv;
mod error;
mod file;
mod load;
mod merge;
mod model;
mod normalize;
mod values;
mod yaml;

pub use contract::{
    Contract, ContractRef, ImageDescriptor, ImageSource, Requirement, contract_for,
};
pub use error::{Error, YamlValueError};
pub use file::{FileReader, MAX_FILE_SIZE, read_project_file};
pub use load::{
    COMPOSE_FILE_NAMES, Discovered, LoadOptions, default_composition, discover,
    is_default_dockerfile_name, load, parse_str,
};
pub use model::{Build, Composition, Ipam, IpamConfig, Network, Service, ServiceNetwork, Volume};

/// Reads a YAML document that is not a compose file (`balena.yml`, `contract.yml`, registry
/// secrets) into a JSON tree, with the YAML rules and limits compose files get (`no` stays a
/// string, alias bombs fail fast) and no interpolation. An empty document is `Null`. The error
/// names the line and column but quotes nothing of the text.
///
/// Every YAML read of balena-compose goes through this crate, so the YAML parser is swapped in
/// one place.
pub fn yaml_value(text: &str) -> Result<serde_json::Value, YamlValueError> {
    yaml::plain_document(text)
}

/// The 1-based line of each item of the YAML list at the top-level key `key` of `text` (`None`:
/// the document is the list), for errors about one item of a list [`yaml_value`] read; empty
/// when there is no such list (or the text is not YAML).
pub fn yaml_item_lines(text: &str, key: Option<&str>) -> Vec<u64> {
    yaml::item_lines(text, key)
}

impl Composition {
    /// The composition as one JSON object (compose-spec key names, normalised shapes).
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The composition as a YAML document.
    pub fn to_yaml(&self) -> String {
        yaml::to_yaml(&self.to_json())
    }

    /// The composition as a compose file in JSON: [`Self::to_json`] with every `$` in a string
    /// value written `$$`, so that loading it back (which interpolates) gives the same composition.
    /// This is what `balena-compose config --format json` prints.
    pub fn to_compose_json(&self) -> serde_json::Value {
        let mut value = self.to_json();
        escape_dollars(&mut value);
        value
    }

    /// The composition as a compose file in YAML, `$` escaped as for [`Self::to_compose_json`].
    pub fn to_compose_yaml(&self) -> String {
        yaml::to_yaml(&self.to_compose_json())
    }

    /// Service names in order.
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }
}

/// Writes every `$` of the tree's string values as `$$`, compose's escape. Keys are left as
/// they are: compose interpolates values only.
fn escape_dollars(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}
