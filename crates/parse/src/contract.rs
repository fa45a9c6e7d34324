//! Label rules, container contracts from `io.balena.features.requires.*` labels, and image
//! descriptors (the reference's `toImageDescriptors` / `createContractFromLabels`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::model::{Build, Composition, Service};

const REQUIRES_PREFIX: &str = "io.balena.features.requires.";
const SEMVER_LABELS: &[&str] = &["sw.supervisor", "sw.l4t", "sw.balena-os", "sw.linux"];

static LABEL_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9.-]+$").ok());

/// Checks label names and the values of contract labels; the error is the reference's message.
pub(crate) fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in labels {
        let valid_name = LABEL_NAME.as_ref().is_some_and(|re| re.is_match(name));
        if !valid_name {
            return Err(format!(
                "Invalid label name: \"{name}\". Label names must only contain alphanumeric characters, periods \".\" and dashes \"-\"."
            ));
        }
        let Some(kind) = name.strip_prefix(REQUIRES_PREFIX) else {
            continue;
        };
        if SEMVER_LABELS.contains(&kind) && !is_valid_range(value) {
            return Err(format!(
                "Invalid value for label '{name}'. Expected a valid semver range; got '{value}'"
            ));
        }
        if kind == "arch.sw" && platform::Arch::from_slug(value).is_none() {
            return Err(format!(
                "Invalid value for label '{name}'. Expected a valid architecture string got '{value}'"
            ));
        }
    }
    Ok(())
}

/// npm `semver.validRange` semantics (`>=1 <2`, `^1.2 || ~2.0`, `1.0.0 - 2.0.0`).
fn is_valid_range(value: &str) -> bool {
    nodejs_semver::Range::parse(value).is_ok()
}

/// A container contract, as the balena API expects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// Always `sw.container`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `contract-for-<service>`.
    pub slug: String,
    /// What the device must provide.
    pub requires: Vec<Requirement>,
}

/// One entry of [`Contract::requires`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Requirement {
    /// A single requirement.
    One(ContractRef),
    /// Any one of several (the OS and kernel variants).
    Or {
        /// The alternatives.
        or: Vec<ContractRef>,
    },
}

/// A reference to a contract by type, and slug and/or version range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractRef {
    /// Contract type (`sw.supervisor`, `hw.device-type`, `sw.os`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Contract slug, when the requirement names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Semver range, when the requirement has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl ContractRef {
    fn new(kind: &str, slug: Option<&str>, version: Option<&str>) -> Self {
        ContractRef {
            kind: kind.to_string(),
            slug: slug.map(str::to_string),
            version: version.map(str::to_string),
        }
    }
}

/// What a service runs: an image to pull, or a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ImageSource {
    /// An image name (the service has `image` and no `build`).
    Image(String),
    /// How to build it.
    Build(Build),
}

/// One service's image and contract (the reference's `ImageDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDescriptor {
    /// The service.
    pub service_name: String,
    /// Its image or build.
    pub image: ImageSource,
    /// Its contract, when it has requirement labels or uses new compose fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
}

impl Composition {
    /// One descriptor per service, in service order (`toImageDescriptors`).
    pub fn image_descriptors(&self) -> Vec<ImageDescriptor> {
        self.services
            .iter()
            .filter_map(|(name, service)| {
                let image = match (&service.build, &service.image) {
                    (Some(build), _) => ImageSource::Build(build.clone()),
                    (None, Some(image)) => ImageSource::Image(image.clone()),
                    // Normalisation refuses services with neither.
                    (None, None) => return None,
                };
                Some(ImageDescriptor {
                    service_name: name.clone(),
                    image,
                    contract: contract_for(name, service),
                })
            })
            .collect()
    }
}

/// The contract of one service: `createContractFromLabels` plus the `sw.spec` requirement
/// for services that use compose fields legacy supervisors do not know.
pub fn contract_for(service_name: &str, service: &Service) -> Option<Contract> {
    let mut requires = Vec::new();
    let mut os = Vec::new();
    let mut kernel = Vec::new();
    // Labels are a sorted map, so requirements follow sorted label-key order as compose-go's.
    for (name, value) in &service.labels {
        let Some(kind) = name.strip_prefix(REQUIRES_PREFIX) else {
            continue;
        };
        let v = Some(value.as_str());
        match kind {
            "sw.supervisor" | "sw.l4t" => {
                requires.push(Requirement::One(ContractRef::new(kind, None, v)));
            }
            "hw.device-type" | "arch.sw" => {
                requires.push(Requirement::One(ContractRef::new(kind, v, None)));
            }
            "sw.balena-os" => os.push(ContractRef::new("sw.os", Some("balena-os"), v)),
            "sw.linux" => kernel.push(ContractRef::new("sw.kernel", Some("linux"), v)),
            _ => {}
        }
    }
    if !os.is_empty() {
        requires.push(Requirement::Or { or: os });
    }
    if !kernel.is_empty() {
        requires.push(Requirement::Or { or: kernel });
    }
    if service.uses_new_compose_fields() {
        requires.push(Requirement::One(ContractRef::new(
            "sw.spec",
            Some("compose"),
            Some(">=2"),
        )));
    }
    (!requires.is_empty()).then(|| Contract {
        kind: "sw.container".to_string(),
        slug: format!("contract-for-{service_name}"),
        requires,
    })
}

const NEW_SERVICE_FIELDS: &[&str] = &[
    "annotations",
    "attach",
    "cgroup",
    "cpu_rt_runtime",
    "cpu_rt_period",
    "cpus",
    "device_cgroup_rules",
    "post_start",
    "pre_stop",
    "uts",
];

const NEW_NETWORK_FIELDS: &[&str] = &["mac_address", "driver_opts", "gw_priority", "priority"];

impl Service {
    /// Whether the service uses compose fields that legacy supervisors may not support (then
    /// its contract requires `sw.spec` `compose >=2`).
    pub fn uses_new_compose_fields(&self) -> bool {
        let other_field = NEW_SERVICE_FIELDS
            .iter()
            .any(|f| self.other.contains_key(*f));
        let pid_service = self
            .other
            .get("pid")
            .and_then(|p| p.as_str())
            .is_some_and(|p| p.starts_with("service:"));
        let start_interval = self
            .other
            .get("healthcheck")
            .and_then(|h| h.as_object())
            .is_some_and(|h| h.contains_key("start_interval"));
        let network_field = self.networks.values().flatten().any(|n| {
            n.ipv6_address.is_some() || NEW_NETWORK_FIELDS.iter().any(|f| n.other.contains_key(*f))
        });
        other_field
            || pid_service
            || start_interval
            || network_field
            || !self.volumes_from.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn npm_ranges_are_valid() {
        for range in [
            ">=1 <2",
            "^1.2 || ~2.0",
            "1.0.0 - 2.0.0",
            "*",
            "1.x",
            ">=12.1.0",
        ] {
            let l = labels(&[("io.balena.features.requires.sw.supervisor", range)]);
            assert!(validate_labels(&l).is_ok(), "{range}");
        }
    }

    /// `arch.sw` takes the reference's five slugs exactly: no aliases, no other case.
    #[test]
    fn arch_labels_take_exact_slugs() {
        let arch = |value| labels(&[("io.balena.features.requires.arch.sw", value)]);
        for slug in ["aarch64", "rpi", "amd64", "armv7hf", "i386"] {
            assert!(validate_labels(&arch(slug)).is_ok(), "{slug}");
        }
        for other in ["arm64", "AMD64", "i386-nlp", ""] {
            assert!(validate_labels(&arch(other)).is_err(), "{other}");
        }
    }

    #[test]
    fn contract_order_and_variants() {
        let service = Service {
            labels: labels(&[
                ("io.balena.features.requires.sw.supervisor", ">=16"),
                ("io.balena.features.requires.arch.sw", "amd64"),
                ("io.balena.features.requires.sw.linux", ">=5"),
                ("io.balena.features.requires.sw.balena-os", ">=2.50"),
                ("io.balena.features.requires.hw.device-type", "nuc"),
                ("other", "x"),
            ]),
            ..Service::default()
        };
        let contract = contract_for("main", &service).unwrap();
        assert_eq!(
            serde_json::to_value(&contract).unwrap(),
            serde_json::json!({
                "type": "sw.container",
                "slug": "contract-for-main",
                "requires": [
                    {"type": "arch.sw", "slug": "amd64"},
                    {"type": "hw.device-type", "slug": "nuc"},
                    {"type": "sw.supervisor", "version": ">=16"},
                    {"or": [{"type": "sw.os", "slug": "balena-os", "version": ">=2.50"}]},
                    {"or": [{"type": "sw.kernel", "slug": "linux", "version": ">=5"}]},
                ]
            })
        );
        assert_eq!(contract_for("main", &Service::default()), None);
    }

    #[test]
    fn new_compose_fields_add_sw_spec() {
        let mut service = Service::default();
        service.other.insert("cpus".into(), serde_json::json!(1.5));
        let contract = contract_for("s", &service).unwrap();
        assert_eq!(
            contract.requires,
            [Requirement::One(ContractRef::new(
                "sw.spec",
                Some("compose"),
                Some(">=2")
            ))]
        );
    }
}
