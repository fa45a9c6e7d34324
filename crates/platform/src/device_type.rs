//! balena device types and the architecture each one runs, and the rule that a target's
//! device type and architecture agree.
//!
//! The table is data: `data/device-types.json` (from balena's public contracts) turned into
//! `device_type_table.rs` by `data/generate.py`; see the README to refresh it.

use std::fmt;

use crate::arch::Arch;
use crate::device_type_table::DEVICE_TYPES;

/// How many close slugs an unknown device type's error suggests.
const SUGGESTIONS: usize = 3;

/// One balena device type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceType {
    /// The slug fleets and `Dockerfile.<device type>` files use (`raspberrypi4-64`).
    pub slug: &'static str,
    /// The human name (`Raspberry Pi 4 (using 64bit OS)`).
    pub name: &'static str,
    /// balena's architecture slug (`aarch64`); one of [`Arch`]'s, or `i386-nlp`.
    pub arch: &'static str,
    /// Other names that mean this device type.
    pub aliases: &'static [&'static str],
    /// Whether balena lists it only for some organisations.
    pub private: bool,
}

impl DeviceType {
    /// Every known device type, sorted by slug.
    pub fn all() -> &'static [DeviceType] {
        DEVICE_TYPES
    }

    /// The device type whose slug or alias is `name` (case-insensitively, as balena's API
    /// matches them); otherwise an error listing the closest slugs.
    pub fn find(name: &str) -> Result<&'static DeviceType, UnknownDeviceType> {
        let named = |d: &&DeviceType| {
            d.slug.eq_ignore_ascii_case(name)
                || d.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        };
        DEVICE_TYPES
            .iter()
            .find(named)
            .ok_or_else(|| UnknownDeviceType {
                given: name.to_owned(),
                closest: closest_slugs(name),
            })
    }

    /// The device type's architecture, if balena-compose builds for it (`i386-nlp` is not
    /// one of [`Arch`]'s).
    pub fn arch(&self) -> Result<Arch, TargetError> {
        self.arch.parse().map_err(|_| TargetError::UnsupportedArch {
            device_type: self.slug,
            arch: self.arch,
        })
    }
}

/// The known slugs nearest to `name` by edit distance (nearest first, ties by slug).
fn closest_slugs(name: &str) -> Vec<&'static str> {
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = DEVICE_TYPES
        .iter()
        .map(|d| (strsim::levenshtein(&lower, d.slug), d.slug))
        .collect();
    scored.sort_unstable();
    scored
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, slug)| slug)
        .collect()
}

/// A device type that is not in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown device type \"{}\": the closest known device types are {}",
    given.escape_debug(),
    closest.join(", ")
)]
pub struct UnknownDeviceType {
    /// What was given.
    pub given: String,
    /// The nearest known slugs.
    pub closest: Vec<&'static str>,
}

/// The architecture and device type a build is for, agreeing with each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The architecture.
    pub arch: Arch,
    /// The device type's slug (an alias given is replaced by its slug).
    pub device_type: String,
}

/// A target whose flags contradict each other, or name what is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The device type is not in the table.
    #[error(transparent)]
    UnknownDeviceType(#[from] UnknownDeviceType),
    /// The architecture given is not the device type's.
    #[error(
        "the architecture {arch} does not match the device type {device_type}, which is {device_arch}: drop --arch or pick a device type of {arch}"
    )]
    Mismatch {
        /// The architecture given.
        arch: Arch,
        /// The device type's slug.
        device_type: &'static str,
        /// The device type's architecture.
        device_arch: Arch,
    },
    /// The device type's architecture is not one balena-compose builds for.
    #[error(
        "the device type {device_type} is {arch}, an architecture balena-compose does not build for"
    )]
    UnsupportedArch {
        /// The device type's slug.
        device_type: &'static str,
        /// Its architecture slug.
        arch: &'static str,
    },
}

impl Target {
    /// The target that `--arch` and `--device-type` name: the device type's architecture
    /// when only it is given, the architecture's generic device type when only that is, and
    /// an error when they disagree. `None` when neither is given (the caller's default).
    pub fn from_flags(
        arch: Option<Arch>,
        device_type: Option<&str>,
    ) -> Result<Option<Target>, TargetError> {
        let Some(name) = device_type else {
            return Ok(arch.map(Target::generic));
        };
        let found = DeviceType::find(name)?;
        let device_arch = found.arch()?;
        match arch {
            Some(arch) if arch != device_arch => Err(TargetError::Mismatch {
                arch,
                device_type: found.slug,
                device_arch,
            }),
            _ => Ok(Some(Target {
                arch: device_arch,
                device_type: found.slug.to_owned(),
            })),
        }
    }

    /// `arch` with its generic device type ([`Arch::default_device_type`]).
    pub fn generic(arch: Arch) -> Target {
        Target {
            arch,
            device_type: arch.default_device_type().to_owned(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.arch, self.device_type)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The generated table is exactly the JSON it was generated from.
    #[test]
    fn table_matches_its_json() {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../data/device-types.json")).unwrap();
        let rows = json["device_types"].as_array().unwrap();
        assert_eq!(rows.len(), DEVICE_TYPES.len());
        assert_eq!(DEVICE_TYPES.len(), 145);
        for row in rows {
            let slug = row["slug"].as_str().unwrap();
            let d = DEVICE_TYPES.iter().find(|d| d.slug == slug).unwrap();
            assert_eq!(d.name, row["name"].as_str().unwrap());
            assert_eq!(d.arch, row["arch"].as_str().unwrap());
            assert_eq!(d.private, row["private"].as_bool().unwrap());
            for alias in row["aliases"].as_array().unwrap() {
                let alias = alias.as_str().unwrap();
                assert!(
                    alias == slug || d.aliases.contains(&alias),
                    "{slug}: {alias}"
                );
            }
        }
    }

    #[test]
    fn every_generic_device_type_is_known_and_of_its_arch() {
        for arch in Arch::ALL {
            let d = DeviceType::find(arch.default_device_type()).unwrap();
            assert_eq!(d.arch().unwrap(), arch, "{}", d.slug);
        }
    }

    #[test]
    fn device_type_alone_gives_its_arch_and_aliases_their_slug() {
        let t = Target::from_flags(None, Some("raspberrypi4-64"))
            .unwrap()
            .unwrap();
        assert_eq!(t.arch, Arch::Aarch64);
        let t = Target::from_flags(Some(Arch::Armv7hf), Some("apalis-imx6")).unwrap();
        assert_eq!(t.unwrap().device_type, "apalis-imx6q");
        assert_eq!(Target::from_flags(None, None).unwrap(), None);
        let err = Target::from_flags(Some(Arch::Amd64), Some("raspberrypi4-64")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("amd64") && text.contains("device type raspberrypi4-64,"),
            "{text}"
        );
        let err = Target::from_flags(None, Some("iot2000")).unwrap_err();
        assert!(err.to_string().contains("i386-nlp"), "{err}");
    }

    #[test]
    fn unknown_device_types_name_the_closest_slugs() {
        let err = DeviceType::find("raspberrypi4-46").unwrap_err();
        assert_eq!(err.closest.first(), Some(&"raspberrypi4-64"));
        assert!(err.to_string().contains("\"raspberrypi4-46\""), "{err}");
        let err = DeviceType::find("rpi\nFROM evil").unwrap_err();
        assert!(err.to_string().contains("rpi\\nFROM evil"), "{err}");
    }
}
