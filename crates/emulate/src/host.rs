//! What the build host offers for emulation: a qemu binary, a binfmt_misc registration.

use std::path::{Path, PathBuf};

use platform::Arch;

use crate::Error;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
