//! balena's platforms: the CPU architectures balena-compose builds for ([`Arch`]) with what
//! Docker and qemu call each, and balena's device types ([`DeviceType`]) with the architecture
//! each runs. A build's [`Target`] is an architecture and a device type that agree.
//!
//! Every other balena-compose crate takes its architecture names from here, so an
//! architecture or one of its names is defined once.
//!
//! ```
//! use platform::{Arch, DeviceType, Target};
//!
//! // Slugs and unambiguous aliases parse; Docker and qemu names come back out.
//! let arch: Arch = "arm64".parse()?;
//! assert_eq!(arch, Arch::Aarch64);
//! assert_eq!(arch.slug(), "aarch64");
//! assert_eq!(arch.docker_platform(), "linux/arm64");
//! assert_eq!(arch.qemu_arch(), "aarch64");
//! assert_eq!(Arch::from_docker("x86_64"), Some(Arch::Amd64));
//! assert!(Arch::Rpi.runs_natively_on(Arch::Armv7hf));
//!
//! // A device type (slug or alias) names its architecture.
//! let pi = DeviceType::find("raspberrypi4-64")?;
//! assert_eq!(pi.arch()?, Arch::Aarch64);
//!
//! // `--arch` and `--device-type` together: the one place they are made to agree.
//! let target = Target::from_flags(None, Some("raspberrypi4-64"))?;
//! assert_eq!(target.map(|t| t.to_string()).as_deref(), Some("aarch64/raspberrypi4-64"));
//! assert!(Target::from_flags(Some(Arch::Amd64), Some("raspberrypi4-64")).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod arch;
mod device_type;
mod device_type_table;

pub use arch::{Arch, UnknownArch};
pub use device_type::{DeviceType, Target, TargetError, UnknownDeviceType};
