//! balena CPU architectures and what each means to Docker and to qemu.

use std::fmt;
use std::str::FromStr;

/// A balena CPU architecture slug, as fleets and device types name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// 64-bit x86 (`amd64`).
    Amd64,
    /// 64-bit ARM (`aarch64`).
    Aarch64,
    /// 32-bit ARMv7 with hard float (`armv7hf`).
    Armv7hf,
    /// 32-bit x86 (`i386`).
    I386,
    /// ARMv6 Raspberry Pi 1 / Zero (`rpi`).
    Rpi,
}

/// A string that names none of [`Arch::ALL`] (by slug or an unambiguous alias).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture \"{given}\": valid architectures are {}{}",
    Arch::slugs(),
    did_you_mean(suggestion.as_deref())
)]
pub struct UnknownArch {
    /// What was given.
    pub given: String,
    /// The slug(s) it most likely meant (`"aarch64"`, or `"armv7hf or rpi"` for a name both
    /// could claim), if any is close.
    pub suggestion: Option<String>,
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean {s}?"))
}

/// Names other tools give our architectures (Docker, uname, Debian, OCI platforms), each
/// meaning exactly one of them. `arm`, `linux/arm` and `armel` are left out on purpose:
/// they could be armv7hf or rpi, and guessing wrong builds images that do not run.
const ALIASES: [(&str, Arch); 13] = [
    ("x86_64", Arch::Amd64),
    ("x86-64", Arch::Amd64),
    ("linux/amd64", Arch::Amd64),
    ("arm64", Arch::Aarch64),
    ("linux/arm64", Arch::Aarch64),
    ("linux/arm64/v8", Arch::Aarch64),
    ("armhf", Arch::Armv7hf),
    ("armv7l", Arch::Armv7hf),
    ("armv7", Arch::Armv7hf),
    ("linux/arm/v7", Arch::Armv7hf),
    ("linux/arm/v6", Arch::Rpi),
    ("i686", Arch::I386),
    ("linux/386", Arch::I386),
];

/// Names that could be armv7hf or rpi.
const AMBIGUOUS_ARM: [&str; 3] = ["arm", "linux/arm", "armel"];

/// The edit distance under which a misspelt slug is suggested back.
const SUGGEST_WITHIN: usize = 3;

impl Arch {
    /// Every architecture, in the order error messages list them.
    pub const ALL: [Arch; 5] = [
        Arch::Amd64,
        Arch::Aarch64,
        Arch::Armv7hf,
        Arch::I386,
        Arch::Rpi,
    ];

    /// The balena slug (`"aarch64"`).
    pub fn slug(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7hf => "armv7hf",
            Arch::I386 => "i386",
            Arch::Rpi => "rpi",
        }
    }

    /// The architecture whose slug is exactly `slug` (no aliases, case-sensitive), as balena's
    /// `arch.sw` contract values name them.
    pub fn from_slug(slug: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.slug() == slug)
    }

    /// Every slug, in [`Arch::ALL`]'s order, joined by `", "`.
    pub fn slugs() -> String {
        Arch::ALL.map(Arch::slug).join(", ")
    }

    /// The Docker platform string (`"linux/arm64"`).
    pub fn docker_platform(self) -> &'static str {
        match self {
            Arch::Amd64 => "linux/amd64",
            Arch::Aarch64 => "linux/arm64",
            Arch::Armv7hf => "linux/arm/v7",
            Arch::I386 => "linux/386",
            Arch::Rpi => "linux/arm/v6",
        }
    }

    /// The Docker/OCI `architecture` field of an image config (`"arm64"`).
    pub fn docker_arch(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Armv7hf | Arch::Rpi => "arm",
            Arch::I386 => "386",
        }
    }

    /// The name qemu gives the architecture (`qemu-<this>-static`).
    pub fn qemu_arch(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7hf | Arch::Rpi => "arm",
            Arch::I386 => "i386",
        }
    }

    /// A generic device type for the architecture, used when none is given.
    pub fn default_device_type(self) -> &'static str {
        match self {
            Arch::Amd64 => "generic-amd64",
            Arch::Aarch64 => "generic-aarch64",
            Arch::Armv7hf => "generic-armv7ahf",
            Arch::I386 => "qemux86",
            Arch::Rpi => "raspberry-pi",
        }
    }

    /// The architecture of a Docker daemon or image (`uname -m` or Docker's `Architecture`
    /// field such as `x86_64`, `amd64`, `aarch64`, `arm64`, `armv7l`), if it is one of ours.
    pub fn from_docker(name: &str) -> Option<Arch> {
        match name {
            "x86_64" | "amd64" => Some(Arch::Amd64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            "armv7l" | "armhf" | "arm" | "armv7" => Some(Arch::Armv7hf),
            "armv6l" | "armel" => Some(Arch::Rpi),
            "i386" | "i686" | "386" => Some(Arch::I386),
            _ => None,
        }
    }

    /// Whether an image of this architecture runs natively on a host of `host` architecture.
    pub fn runs_natively_on(self, host: Arch) -> bool {
        self == host
            || matches!(
                (host, self),
                (Arch::Amd64, Arch::I386) | (Arch::Armv7hf, Arch::Rpi)
            )
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;

    /// A slug, or one of [`ALIASES`] (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let by_slug = Arch::from_slug(&lower);
        let by_alias = || {
            ALIASES
                .iter()
                .find(|(alias, _)| *alias == lower)
                .map(|(_, arch)| *arch)
        };
        by_slug.or_else(by_alias).ok_or_else(|| UnknownArch {
            given: s.to_owned(),
            suggestion: suggest(&lower),
        })
    }
}

/// The slug closest to an unknown name, the way `device_type` suggests slugs (edit distance
/// over slugs and aliases), if one is close enough to be a likely typo.
fn suggest(lower: &str) -> Option<String> {
    if AMBIGUOUS_ARM.contains(&lower) {
        return Some("armv7hf or rpi".to_owned());
    }
    let names = Arch::ALL
        .into_iter()
        .map(|a| (a.slug(), a))
        .chain(ALIASES.iter().copied());
    names
        .map(|(name, arch)| (strsim::levenshtein(lower, name), arch))
        .filter(|(distance, _)| *distance <= SUGGEST_WITHIN)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, arch)| arch.slug().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_round_trip_and_unknown_lists_valid() {
        for a in Arch::ALL {
            assert_eq!(a.slug().parse::<Arch>(), Ok(a));
        }
        let err = "sparc".parse::<Arch>().unwrap_err();
        assert!(err.to_string().contains("\"sparc\""));
        assert!(
            err.to_string()
                .contains("amd64, aarch64, armv7hf, i386, rpi")
        );
        assert!(!err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn unambiguous_aliases_are_accepted_and_near_misses_suggested() {
        for (given, arch) in [
            ("arm64", Arch::Aarch64),
            ("linux/arm64", Arch::Aarch64),
            ("x86_64", Arch::Amd64),
            ("armhf", Arch::Armv7hf),
            ("AMD64", Arch::Amd64),
            ("linux/arm/v6", Arch::Rpi),
        ] {
            assert_eq!(given.parse::<Arch>(), Ok(arch), "{given}");
        }
        let err = "aarch46".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("did you mean aarch64?"), "{err}");
        let err = "arm".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("did you mean armv7hf or rpi?"), "{err}");
    }

    #[test]
    fn from_slug_takes_exact_slugs_only() {
        for a in Arch::ALL {
            assert_eq!(Arch::from_slug(a.slug()), Some(a));
        }
        assert_eq!(Arch::from_slug("arm64"), None);
        assert_eq!(Arch::from_slug("AMD64"), None);
        assert_eq!(Arch::slugs(), "amd64, aarch64, armv7hf, i386, rpi");
    }

    #[test]
    fn docker_names_map_back() {
        assert_eq!(Arch::from_docker("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_docker("x86_64"), Some(Arch::Amd64));
        assert_eq!(Arch::from_docker("mips"), None);
        // What an engine's `Architecture` (`uname -m`) reports on each of balena's devices.
        for (uname, arch) in [
            ("x86_64", Arch::Amd64),
            ("aarch64", Arch::Aarch64),
            ("armv7l", Arch::Armv7hf),
            ("armv6l", Arch::Rpi),
            ("i686", Arch::I386),
            ("i386", Arch::I386),
        ] {
            assert_eq!(Arch::from_docker(uname), Some(arch), "{uname}");
        }
        assert!(Arch::I386.runs_natively_on(Arch::Amd64));
        assert!(!Arch::Aarch64.runs_natively_on(Arch::Amd64));
    }
}
