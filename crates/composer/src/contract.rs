//! Container contracts (`io.balena.features.requires.*` labels and the `contract.requires`
//! list): what a service needs from the device.

use nodejs_semver::{Range, Version};
use platform::Arch;
use serde_json::Value;

use crate::options::DeviceFacts;
use crate::target::TargetService;

/// One requirement of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// `sw.supervisor`, `sw.os`, `sw.l4t`, `hw.device-type` or `arch.sw`.
    pub kind: String,
    /// A semver range (versions) or a slug (device type, arch).
    pub value: String,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.value)
    }
}

const LABEL_PREFIX: &str = "io.balena.features.requires.";

/// The requirements a target service declares.
pub fn requirements(service: &TargetService) -> Vec<Requirement> {
    let mut labels: Vec<(String, String)> = service
        .composition
        .as_ref()
        .and_then(|c| c.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    labels.extend(service.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut out: Vec<Requirement> = labels
        .into_iter()
        .filter_map(|(k, value)| {
            k.strip_prefix(LABEL_PREFIX).map(|kind| Requirement {
                kind: kind.to_owned(),
                value,
            })
        })
        .collect();
    if let Some(reqs) = service
        .contract
        .as_ref()
        .and_then(|c| c.get("requires"))
        .and_then(Value::as_array)
    {
        for r in reqs {
            let Some(kind) = r.get("type").and_then(Value::as_str) else {
                continue;
            };
            let value = r
                .get("version")
                .or_else(|| r.get("slug"))
                .and_then(Value::as_str)
                .unwrap_or("*");
            out.push(Requirement {
                kind: kind.to_owned(),
                value: value.to_owned(),
            });
        }
    }
    out.sort_by(|a, b| (&a.kind, &a.value).cmp(&(&b.kind, &b.value)));
    out.dedup();
    out
}

/// Extracts the first `x.y.z` of a version string such as `balenaOS 2.88.4+rev1`.
fn coerce_version(v: &str) -> Option<Version> {
    let start = v.find(|c: char| c.is_ascii_digit())?;
    let core: String = v[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts: Vec<&str> = core.split('.').filter(|p| !p.is_empty()).take(3).collect();
    while parts.len() < 3 {
        parts.push("0");
    }
    Version::parse(parts.join(".")).ok()
}

/// Why a device does not meet a requirement (see [`check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unmet {
    /// The requirement's value is not a semver range.
    #[error("{range:?} is not a version range: {reason}")]
    NotARange {
        /// The range as declared.
        range: String,
        /// What the semver parser says.
        reason: String,
    },
    /// The device does not report the version the requirement is about.
    #[error("the device reports no {what} version")]
    NoVersion {
        /// `supervisor`, `OS` or `L4T`.
        what: &'static str,
    },
    /// The device reports a version that is not one.
    #[error("{what} version {have:?} is not a version")]
    NotAVersion {
        /// `supervisor`, `OS` or `L4T`.
        what: &'static str,
        /// What the device reports.
        have: String,
    },
    /// The device's version is outside the range.
    #[error("the device has {what} {have}")]
    OutOfRange {
        /// `supervisor`, `OS` or `L4T`.
        what: &'static str,
        /// What the device reports.
        have: String,
    },
    /// Another device type is required.
    #[error("the device type is {device_type:?}")]
    DeviceType {
        /// The device's type.
        device_type: String,
    },
    /// Another architecture is required.
    #[error("the device architecture is {arch:?}")]
    Arch {
        /// The device's architecture.
        arch: String,
    },
    /// A requirement type this composer does not know.
    #[error("unknown requirement type {kind:?}")]
    UnknownKind {
        /// The type as declared.
        kind: String,
    },
}

/// Checks one requirement; `Err` says why it is not met.
pub fn check(req: &Requirement, device: &DeviceFacts) -> Result<(), Unmet> {
    let version = |have: Option<&String>, what: &'static str| -> Result<(), Unmet> {
        let range = Range::parse(&req.value).map_err(|e| Unmet::NotARange {
            range: req.value.clone(),
            reason: e.to_string(),
        })?;
        let have = have.ok_or(Unmet::NoVersion { what })?;
        let v = coerce_version(have).ok_or_else(|| Unmet::NotAVersion {
            what,
            have: have.clone(),
        })?;
        if v.satisfies(&range) {
            Ok(())
        } else {
            Err(Unmet::OutOfRange {
                what,
                have: have.clone(),
            })
        }
    };
    match req.kind.as_str() {
        "sw.supervisor" => version(device.supervisor_version.as_ref(), "supervisor"),
        "sw.os" | "sw.os-version" => version(device.os_version.as_ref(), "OS"),
        "sw.l4t" => version(device.l4t_version.as_ref(), "L4T"),
        "hw.device-type" => {
            if req.value == device.device_type {
                Ok(())
            } else {
                Err(Unmet::DeviceType {
                    device_type: device.device_type.clone(),
                })
            }
        }
        "arch.sw" => {
            let arch = device.arch.map_or("", Arch::slug);
            if device.arch.is_some() && req.value == arch {
                Ok(())
            } else {
                Err(Unmet::Arch {
                    arch: arch.to_owned(),
                })
            }
        }
        other => Err(Unmet::UnknownKind {
            kind: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn device() -> DeviceFacts {
        DeviceFacts {
            device_type: "raspberrypi4-64".into(),
            arch: Some(Arch::Aarch64),
            os_version: Some("balenaOS 2.88.4+rev1".into()),
            supervisor_version: Some("14.0.0".into()),
            ..DeviceFacts::default()
        }
    }

    fn service(labels: &[(&str, &str)], contract: Option<Value>) -> TargetService {
        TargetService {
            image: "x".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            contract,
            ..TargetService::default()
        }
    }

    #[test]
    fn supervisor_version_ranges() {
        let s = service(
            &[("io.balena.features.requires.sw.supervisor", ">=13.0.0")],
            None,
        );
        let reqs = requirements(&s);
        assert_eq!(reqs.len(), 1);
        assert!(check(&reqs[0], &device()).is_ok());
        let s = service(
            &[("io.balena.features.requires.sw.supervisor", "<14")],
            None,
        );
        let err = check(&requirements(&s)[0], &device())
            .unwrap_err()
            .to_string();
        assert!(err.contains("14.0.0"), "{err}");
    }

    #[test]
    fn os_version_is_coerced() {
        let s = service(&[("io.balena.features.requires.sw.os", ">2.80.0")], None);
        assert!(check(&requirements(&s)[0], &device()).is_ok());
    }

    #[test]
    fn contract_requires_list_and_slugs() {
        let s = service(
            &[],
            Some(json!({"type": "sw.container", "requires": [
                {"type": "hw.device-type", "slug": "raspberrypi3"},
                {"type": "arch.sw", "slug": "aarch64"}]})),
        );
        let reqs = requirements(&s);
        assert_eq!(reqs.len(), 2);
        let results: Vec<bool> = reqs.iter().map(|r| check(r, &device()).is_ok()).collect();
        assert_eq!(results, vec![true, false], "{reqs:?}");
    }

    #[test]
    fn arch_requirements_need_the_device_arch() {
        let arch = |slug| service(&[("io.balena.features.requires.arch.sw", slug)], None);
        assert!(check(&requirements(&arch("aarch64"))[0], &device()).is_ok());
        let err = check(&requirements(&arch("amd64"))[0], &device()).unwrap_err();
        assert!(err.to_string().contains("\"aarch64\""), "{err}");
        let unknown = DeviceFacts {
            arch: None,
            ..device()
        };
        assert!(check(&requirements(&arch("aarch64"))[0], &unknown).is_err());
        assert!(check(&requirements(&arch(""))[0], &unknown).is_err());
    }

    #[test]
    fn missing_fact_and_bad_range_fail() {
        let s = service(&[("io.balena.features.requires.sw.l4t", "32")], None);
        assert!(
            check(&requirements(&s)[0], &device())
                .unwrap_err()
                .to_string()
                .contains("no L4T")
        );
        let s = service(
            &[("io.balena.features.requires.sw.os", "not a range !!")],
            None,
        );
        assert!(check(&requirements(&s)[0], &device()).is_err());
    }
}
