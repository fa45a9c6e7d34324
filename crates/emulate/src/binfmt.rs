//! binfmt_misc registrations of the host's qemu, so that the daemon's containers run foreign
//! programs with no Dockerfile rewrite (`balena-compose emulation setup|status|remove`).
//!
//! `setup` registers Debian's own lines (`/usr/lib/binfmt.d/qemu-<arch>.conf`: magic, mask,
//! the `-binfmt-P` wrapper and the flags `P`, `O`, `F`) under names of our own
//! (`balena-compose-qemu-<arch>`), so that `remove` undoes only what `setup` did. `F` opens
//! the interpreter at registration time, which makes it usable inside containers; `P` keeps
//! argv[0], without which busybox loses the applet name it was started as.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use platform::Arch;

use crate::Error;

/// Where binfmt_misc is mounted.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// Where Debian's qemu-user-static keeps its registration lines.
pub const DEBIAN_BINFMT_CONF_DIR: &str = "/usr/lib/binfmt.d";
/// The prefix of the registrations `setup` makes.
pub const OUR_PREFIX: &str = "balena-compose-";

/// The foreign architectures `setup` registers by default (rpi shares armv7hf's `arm` qemu).
pub const DEFAULT_ARCHES: [Arch; 3] = [Arch::Aarch64, Arch::Armv7hf, Arch::I386];

/// The name `setup` registers `arch` under (`balena-compose-qemu-aarch64`).
pub fn our_name(arch: Arch) -> String {
    format!("{OUR_PREFIX}qemu-{}", arch.qemu_arch())
}

/// One binfmt_misc entry that runs a qemu.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registration {
    /// The entry's name (`qemu-aarch64`, `balena-compose-qemu-aarch64`).
    pub name: String,
    /// The qemu architecture it emulates (`aarch64`, `arm`, `i386`), from its name.
    pub qemu_arch: String,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// The interpreter the kernel starts.
    pub interpreter: String,
    /// Its flags (`POF`).
    pub flags: String,
    /// Whether the interpreter is usable inside containers: the `F` flag opened it at
    /// registration time.
    pub usable_in_containers: bool,
    /// Whether `setup` made it (and `remove` would remove it).
    pub ours: bool,
}

/// What `setup` did for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    /// The host runs the architecture natively: nothing to register.
    Native(Arch),
    /// Registered now, under this name.
    Registered(Arch, String),
    /// Our registration was there already.
    AlreadyRegistered(Arch, String),
}

/// The qemu entries registered in binfmt_misc at `dir` (empty when it is not mounted).
pub fn registrations_in(dir: &Path) -> Vec<Registration> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Registration> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let qemu_arch = name
                .strip_prefix(OUR_PREFIX)
                .unwrap_or(&name)
                .strip_prefix("qemu-")?
                .to_owned();
            let text = std::fs::read_to_string(entry.path()).ok()?;
            Some(parse_entry(name, qemu_arch, &text))
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The qemu entries of this machine's binfmt_misc.
pub fn registrations() -> Vec<Registration> {
    registrations_in(Path::new(BINFMT_DIR))
}

fn parse_entry(name: String, qemu_arch: String, text: &str) -> Registration {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let flags = field("flags:");
    Registration {
        ours: name.starts_with(OUR_PREFIX),
        enabled: text.lines().next().is_some_and(|l| l.trim() == "enabled"),
        interpreter: field("interpreter"),
        usable_in_containers: flags.contains('F'),
        flags,
        name,
        qemu_arch,
    }
}

/// Whether binfmt_misc at `dir` is enabled and runs `arch` through a qemu that containers
/// can use (an enabled entry named `qemu-<arch>` or ours, with the `F` flag).
pub fn usable_registration_in(dir: &Path, arch: Arch) -> Option<Registration> {
    let enabled = std::fs::read_to_string(dir.join("status"))
        .is_ok_and(|text| text.lines().next().is_some_and(|l| l.trim() == "enabled"));
    if !enabled {
        return None;
    }
    registrations_in(dir)
        .into_iter()
        .find(|r| r.qemu_arch == arch.qemu_arch() && r.enabled && r.usable_in_containers)
}

/// Registers Debian's qemu for each of `arches` that `host` does not run natively, under our
/// own names, mounting binfmt_misc at `dir` first when it is not mounted. Idempotent.
pub fn setup(
    dir: &Path,
    conf_dir: &Path,
    host: Arch,
    arches: &[Arch],
) -> Result<Vec<SetupOutcome>, Error> {
    if !dir.join("register").exists() {
        mount_binfmt_misc(dir)?;
    }
    let mut outcomes = Vec::new();
    for &arch in arches {
        if arch.runs_natively_on(host) {
            outcomes.push(SetupOutcome::Native(arch));
            continue;
        }
        let name = our_name(arch);
        if dir.join(&name).exists() {
            outcomes.push(SetupOutcome::AlreadyRegistered(arch, name));
            continue;
        }
        let line = our_register_line(conf_dir, arch)?;
        std::fs::write(dir.join("register"), line.as_bytes()).map_err(|source| {
            io_error(source, format!("registering {name} in {}", dir.display()))
        })?;
        outcomes.push(SetupOutcome::Registered(arch, name));
    }
    Ok(outcomes)
}

/// Debian's register line for `arch`, renamed to [`our_name`].
fn our_register_line(conf_dir: &Path, arch: Arch) -> Result<String, Error> {
    let conf = conf_dir.join(format!("qemu-{}.conf", arch.qemu_arch()));
    let text = std::fs::read_to_string(&conf).map_err(|_| Error::NoBinfmtConf {
        arch,
        conf: conf.clone(),
    })?;
    // `:name:type:offset:magic:mask:interpreter:flags`; the first character is the separator.
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| Error::NoBinfmtConf {
            arch,
            conf: conf.clone(),
        })?;
    let mut chars = line.chars();
    let sep = chars.next().unwrap_or(':');
    let rest = chars.as_str();
    let after_name = rest
        .split_once(sep)
        .map(|(_, after)| after)
        .ok_or_else(|| Error::NoBinfmtConf {
            arch,
            conf: conf.clone(),
        })?;
    Ok(format!("{sep}{}{sep}{after_name}", our_name(arch)))
}

/// Removes the registrations `setup` made (and only those); returns their names.
pub fn remove(dir: &Path) -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    for registration in registrations_in(dir).into_iter().filter(|r| r.ours) {
        let path = dir.join(&registration.name);
        std::fs::write(&path, b"-1")
            .map_err(|source| io_error(source, format!("removing {}", path.display())))?;
        removed.push(registration.name);
    }
    Ok(removed)
}

/// `mount -t binfmt_misc binfmt_misc <dir>`. Hand-called through mount(8) rather than a
/// syscall crate: the workspace has none and forbids `unsafe`.
fn mount_binfmt_misc(dir: &Path) -> Result<(), Error> {
    let output = std::process::Command::new("mount")
        .args(["-t", "binfmt_misc", "binfmt_misc"])
        .arg(dir)
        .output()
        .map_err(|source| io_error(source, format!("mounting binfmt_misc at {}", dir.display())))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if said.contains("ermission") || said.contains("only root") {
        return Err(Error::NeedsRoot {
            doing: format!("mounting binfmt_misc at {}", dir.display()),
        });
    }
    Err(Error::MountBinfmt {
        dir: dir.to_path_buf(),
        said,
    })
}

fn io_error(source: std::io::Error, doing: String) -> Error {
    if source.kind() == ErrorKind::PermissionDenied {
        Error::NeedsRoot { doing }
    } else {
        Error::BinfmtIo {
            doing,
            message: source.to_string(),
        }
    }
}

/// The path of the conf file Debian has for `arch`.
pub fn debian_conf(arch: Arch) -> PathBuf {
    Path::new(DEBIAN_BINFMT_CONF_DIR).join(format!("qemu-{}.conf", arch.qemu_arch()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn debian_line_is_renamed_and_keeps_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("qemu-aarch64.conf"),
            "# comment\n:qemu-aarch64:M::\\x7f\\x45:\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF\n",
        )
        .unwrap();
        let line = our_register_line(dir.path(), Arch::Aarch64).unwrap();
        assert_eq!(
            line,
            ":balena-compose-qemu-aarch64:M::\\x7f\\x45:\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF"
        );
        assert!(matches!(
            our_register_line(dir.path(), Arch::Armv7hf),
            Err(Error::NoBinfmtConf { .. })
        ));
    }

    #[test]
    fn entries_are_read_with_their_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        std::fs::write(
            dir.path().join("qemu-arm"),
            "enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: \noffset 0\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("balena-compose-qemu-aarch64"),
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n",
        )
        .unwrap();
        let found = registrations_in(dir.path());
        assert_eq!(found.len(), 2);
        assert!(found[0].ours && found[0].usable_in_containers);
        assert_eq!(found[0].qemu_arch, "aarch64");
        assert!(!found[1].ours && !found[1].usable_in_containers);
        assert!(usable_registration_in(dir.path(), Arch::Aarch64).is_some());
        // Without F the interpreter is not found inside containers.
        assert!(usable_registration_in(dir.path(), Arch::Armv7hf).is_none());
    }
}
