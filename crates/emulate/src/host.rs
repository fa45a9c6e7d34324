//! What the build host offers for emulation: a qemu binary, a binfmt_misc registration, and
//! from those the way to build a foreign image.

use std::path::{Path, PathBuf};

use resolve::Arch;

use crate::{Error, TransposeOptions};

/// Where Debian's `qemu-user-static` installs its binaries.
const QEMU_DIR: &str = "/usr/bin";

/// The file name of the static qemu for `arch` (`qemu-aarch64-static`).
pub fn qemu_binary_name(arch: Arch) -> String {
    format!("qemu-{}-static", arch.qemu_arch())
}

/// The host's `qemu-<arch>-static`: in `/usr/bin` (Debian's `qemu-user-static`), else on
/// `PATH`. The error says which package to install.
pub fn host_qemu(arch: Arch) -> Result<PathBuf, Error> {
    let mut dirs = vec![PathBuf::from(QEMU_DIR)];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    host_qemu_in(arch, &dirs)
}

/// [`host_qemu`], searching only `dirs`.
pub fn host_qemu_in(arch: Arch, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    let name = qemu_binary_name(arch);
    dirs.iter()
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::QemuNotFound {
            arch,
            binary: name,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })
}

/// Whether the kernel runs `arch` binaries of containers through an enabled binfmt_misc
/// registration of qemu (Debian's `qemu-<qemu arch>` or `emulation setup`'s own) with the
/// `F` flag, with binfmt_misc itself enabled.
pub fn binfmt_registered(arch: Arch) -> bool {
    binfmt_registered_in(Path::new(crate::binfmt::BINFMT_DIR), arch)
}

/// [`binfmt_registered`], with binfmt_misc mounted at `dir`.
pub fn binfmt_registered_in(dir: &Path, arch: Arch) -> bool {
    crate::binfmt::usable_registration_in(dir, arch).is_some()
}

/// The architecture of this machine, if it is one balena knows.
pub fn host_arch() -> Option<Arch> {
    Arch::from_docker(std::env::consts::ARCH)
}

/// How to build an image for a target architecture on a given Docker host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The host runs the target's binaries itself: build with the target's platform.
    Native,
    /// The kernel runs the target's binaries through binfmt_misc and qemu: build with the
    /// target's platform and the Dockerfile unchanged; every `RUN` works.
    Binfmt,
    /// Transpose the Dockerfile with `options` and put the host's qemu at `host_qemu` into the
    /// build context at `options.context_qemu_path` (mode 0755).
    Rewrite {
        /// The qemu binary on the host to copy into the context.
        host_qemu: PathBuf,
        /// How to transpose.
        options: TransposeOptions,
    },
}

/// Choose how to build for `target` on a Docker host of architecture `host`:
/// * the host runs `target` natively → [`Emulation::Native`];
/// * the user gave `--qemu PATH` (`qemu_override`) → rewrite with that qemu and `-execve`
///   (the reason to pass one is an `-execve`-capable qemu such as balena's);
/// * binfmt_misc has qemu registered for `target` → [`Emulation::Binfmt`];
/// * otherwise → rewrite with the host's `qemu-<arch>-static` and no `-execve`.
pub fn choose_emulation(
    target: Arch,
    host: Arch,
    qemu_override: Option<&Path>,
) -> Result<Emulation, Error> {
    choose_emulation_with(target, host, qemu_override, binfmt_registered, host_qemu)
}

/// [`choose_emulation`] with the host probes supplied (for tests, and for callers that know
/// better whether the daemon sees this machine's binfmt_misc).
pub fn choose_emulation_with(
    target: Arch,
    host: Arch,
    qemu_override: Option<&Path>,
    binfmt: impl Fn(Arch) -> bool,
    find_qemu: impl Fn(Arch) -> Result<PathBuf, Error>,
) -> Result<Emulation, Error> {
    if target.runs_natively_on(host) {
        return Ok(Emulation::Native);
    }
    if let Some(path) = qemu_override {
        let mut options = crate::transpose_options(target);
        options.execve = true;
        return Ok(Emulation::Rewrite {
            host_qemu: path.to_owned(),
            options,
        });
    }
    if binfmt(target) {
        return Ok(Emulation::Binfmt);
    }
    Ok(Emulation::Rewrite {
        host_qemu: find_qemu(target)?,
        options: crate::transpose_options(target),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn no_qemu(arch: Arch) -> Result<PathBuf, Error> {
        host_qemu_in(arch, &[])
    }

    #[test]
    fn strategy_order() {
        let native = choose_emulation_with(Arch::I386, Arch::Amd64, None, |_| true, no_qemu);
        assert_eq!(native.unwrap(), Emulation::Native);
        let binfmt = choose_emulation_with(Arch::Aarch64, Arch::Amd64, None, |_| true, no_qemu);
        assert_eq!(binfmt.unwrap(), Emulation::Binfmt);
        let given = Path::new("/opt/balena/qemu-execve");
        let Emulation::Rewrite { host_qemu, options } =
            choose_emulation_with(Arch::Aarch64, Arch::Amd64, Some(given), |_| true, no_qemu)
                .unwrap()
        else {
            panic!("expected a rewrite")
        };
        assert_eq!(host_qemu, given);
        assert!(options.execve);
        let Emulation::Rewrite { host_qemu, options } = choose_emulation_with(
            Arch::Armv7hf,
            Arch::Amd64,
            None,
            |_| false,
            |_| Ok(PathBuf::from("/usr/bin/qemu-arm-static")),
        )
        .unwrap() else {
            panic!("expected a rewrite")
        };
        assert_eq!(host_qemu, Path::new("/usr/bin/qemu-arm-static"));
        assert!(!options.execve);
        assert_eq!(options.qemu_path, "/usr/bin/qemu-arm-static");
        let missing = choose_emulation_with(Arch::Aarch64, Arch::Amd64, None, |_| false, no_qemu);
        assert!(matches!(missing, Err(Error::QemuNotFound { .. })));
    }

    #[test]
    fn binfmt_entry_must_be_enabled() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!binfmt_registered_in(dir.path(), Arch::Aarch64));
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n",
        )
        .unwrap();
        assert!(!binfmt_registered_in(dir.path(), Arch::Aarch64));
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n",
        )
        .unwrap();
        assert!(binfmt_registered_in(dir.path(), Arch::Aarch64));
        assert!(!binfmt_registered_in(dir.path(), Arch::Armv7hf));
        std::fs::write(dir.path().join("status"), "disabled\n").unwrap();
        assert!(!binfmt_registered_in(dir.path(), Arch::Aarch64));
    }
}
