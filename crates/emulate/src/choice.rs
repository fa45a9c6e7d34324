//! The choice of how to build for a foreign architecture: natively, through binfmt_misc, or
//! with the Dockerfile rewrite, from what the user asked for and what the daemon can do.

use std::path::{Path, PathBuf};

use platform::Arch;

use crate::{Error, TransposeOptions};

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
    choose_emulation_with(
        target,
        host,
        qemu_override,
        crate::binfmt_registered,
        crate::host_qemu,
    )
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
    if qemu_override.is_none() && binfmt(target) {
        return Ok(Emulation::Binfmt);
    }
    let (host_qemu, options) = rewrite_with(target, qemu_override, find_qemu)?;
    Ok(Emulation::Rewrite { host_qemu, options })
}

/// The rewrite's qemu for `target` and how to transpose with it: with `qemu_override`
/// (`--qemu PATH`) that qemu, with `-execve` (the reason to pass one is an `-execve`-capable
/// qemu such as balena's); otherwise the host's `qemu-<arch>-static` ([`crate::host_qemu`]),
/// without.
pub fn rewrite(
    target: Arch,
    qemu_override: Option<&Path>,
) -> Result<(PathBuf, TransposeOptions), Error> {
    rewrite_with(target, qemu_override, crate::host_qemu)
}

/// [`rewrite`] with the host's qemu found by `find_qemu`.
fn rewrite_with(
    target: Arch,
    qemu_override: Option<&Path>,
    find_qemu: impl Fn(Arch) -> Result<PathBuf, Error>,
) -> Result<(PathBuf, TransposeOptions), Error> {
    let mut options = crate::transpose_options(target);
    match qemu_override {
        Some(path) => {
            options.execve = true;
            Ok((path.to_owned(), options))
        }
        None => Ok((find_qemu(target)?, options)),
    }
}

/// How the user asked to emulate (`--emulation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// binfmt_misc when the daemon runs the target through it, else the rewrite.
    #[default]
    Auto,
    /// binfmt_misc only.
    Binfmt,
    /// The Dockerfile rewrite only.
    Rewrite,
}

/// What the user asked for: whether to emulate at all, how, and with which qemu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request<'a> {
    /// `None`: no emulation asked for (no `--emulated`, no `--emulation`).
    pub mode: Option<Mode>,
    /// `--qemu PATH`: the qemu the rewrite copies in, run with `-execve`.
    pub qemu: Option<&'a Path>,
}

/// The Docker daemon a build runs on, as far as running foreign binaries is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    /// Its own architecture (`/version`).
    pub arch: Arch,
    /// Whether it runs on this machine (a unix socket), so that this machine's binfmt_misc
    /// registrations are the daemon's.
    pub local: bool,
}

/// How `resolve` writes contexts for `target`: plain, as a daemon that runs the target builds
/// them (a native ARM host, a cloud builder), whatever this machine (of architecture `host`)
/// is; when emulation is asked for, transposed to run under this host's qemu when the host
/// cannot run the target. binfmt_misc does not apply: the contexts must build anywhere.
pub fn resolve_emulation(
    target: Arch,
    host: Arch,
    request: Request<'_>,
) -> Result<Emulation, Error> {
    let Some(mode) = request.mode else {
        return Ok(Emulation::Native);
    };
    if mode == Mode::Binfmt {
        return Err(Error::BinfmtForResolve);
    }
    emulation(target, host, mode, request.qemu, |_| false)
}

/// How `build` builds for `target` on `daemon`. Without emulation asked for, a foreign
/// target goes ahead only when the daemon runs it anyway (binfmt_misc registered on this
/// machine for a local daemon); otherwise the error says how to get emulation. `binfmt`
/// probes this machine's registrations ([`crate::binfmt_registered`]).
pub fn build_emulation(
    target: Arch,
    daemon: Daemon,
    request: Request<'_>,
    binfmt: impl Fn(Arch) -> bool,
) -> Result<Emulation, Error> {
    if target.runs_natively_on(daemon.arch) {
        return Ok(Emulation::Native);
    }
    if let Some(mode) = request.mode {
        // A remote daemon does not see this machine's binfmt_misc: rewrite instead.
        return emulation(target, daemon.arch, mode, request.qemu, |arch| {
            daemon.local && binfmt(arch)
        });
    }
    if daemon.local && binfmt(target) {
        return Ok(Emulation::Binfmt);
    }
    Err(Error::DaemonCannotRun {
        target,
        daemon: daemon.arch,
        local: daemon.local,
    })
}

/// How to build for `target` on a host of `host`'s architecture when emulation is asked for,
/// in `mode`.
///
/// `binfmt` says whether the daemon runs `target` through binfmt_misc; it answers `false` for
/// contexts that must build anywhere (`resolve` writes them out for plain `docker build`) and
/// for daemons that do not share this machine's kernel. `--qemu` always means the rewrite
/// (it is the qemu to copy in).
fn emulation(
    target: Arch,
    host: Arch,
    mode: Mode,
    qemu: Option<&Path>,
    binfmt: impl Fn(Arch) -> bool,
) -> Result<Emulation, Error> {
    if target.runs_natively_on(host) {
        return Ok(Emulation::Native);
    }
    let registered = binfmt(target);
    match mode {
        Mode::Binfmt if qemu.is_some() => return Err(Error::QemuWithBinfmt),
        Mode::Binfmt if !registered => return Err(Error::BinfmtNotRegistered { target }),
        Mode::Binfmt => return Ok(Emulation::Binfmt),
        Mode::Auto if registered && qemu.is_none() => return Ok(Emulation::Binfmt),
        Mode::Auto | Mode::Rewrite => {}
    }
    choose_emulation_with(target, host, qemu, |_| false, crate::host_qemu)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const LOCAL: Daemon = Daemon {
        arch: Arch::Amd64,
        local: true,
    };
    const REMOTE: Daemon = Daemon {
        arch: Arch::Amd64,
        local: false,
    };

    fn no_qemu(arch: Arch) -> Result<PathBuf, Error> {
        crate::host_qemu_in(arch, &[])
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
    fn foreign_build_goes_ahead_only_where_the_daemon_runs_it() {
        let (local, remote) = (LOCAL, REMOTE);
        let arm = Daemon {
            arch: Arch::Aarch64,
            local: false,
        };
        let registered = |_: Arch| true;
        let none = |_: Arch| false;
        let plain = Request::default();
        let build = |t, d, b: &dyn Fn(Arch) -> bool| build_emulation(t, d, plain, b);
        assert_eq!(build(Arch::Aarch64, arm, &none).unwrap(), Emulation::Native);
        assert_eq!(build(Arch::I386, local, &none).unwrap(), Emulation::Native);
        assert_eq!(
            build(Arch::Aarch64, local, &registered).unwrap(),
            Emulation::Binfmt
        );
        let err = build(Arch::Aarch64, remote, &registered).unwrap_err();
        assert!(err.to_string().contains("remote daemon"), "{err}");
        let err = build(Arch::Aarch64, local, &none).unwrap_err().to_string();
        assert!(
            err.contains("add --emulated") || err.contains("Add --emulated"),
            "{err}"
        );
        assert!(
            err.contains("binfmt_misc") && err.contains("qemu-aarch64-static"),
            "{err}"
        );
    }

    #[test]
    fn the_mode_asked_for_is_kept_or_refused_with_its_reason() {
        let qemu = Path::new("/opt/qemu-aarch64-static");
        let ask = |mode, qemu| Request { mode, qemu };
        let (local, remote) = (LOCAL, REMOTE);
        let registered = |_: Arch| true;
        let unregistered = |_: Arch| false;
        let build = |request, daemon, binfmt: &dyn Fn(Arch) -> bool| {
            build_emulation(Arch::Aarch64, daemon, request, binfmt)
        };

        let binfmt = ask(Some(Mode::Binfmt), None);
        assert_eq!(build(binfmt, local, &registered), Ok(Emulation::Binfmt));
        let err = build(binfmt, remote, &registered).unwrap_err();
        assert_eq!(
            err,
            Error::BinfmtNotRegistered {
                target: Arch::Aarch64
            }
        );
        assert!(
            err.to_string().contains("qemu-aarch64 with the F flag"),
            "{err}"
        );
        let err = build(ask(Some(Mode::Binfmt), Some(qemu)), local, &registered);
        assert_eq!(err, Err(Error::QemuWithBinfmt));

        // Auto takes binfmt_misc only where the daemon sees it and no qemu was given.
        let auto = ask(Some(Mode::Auto), Some(qemu));
        let Ok(Emulation::Rewrite { host_qemu, options }) = build(auto, local, &registered) else {
            panic!("--qemu means the rewrite")
        };
        assert_eq!(host_qemu, qemu);
        assert!(options.execve);
        assert!(matches!(
            build(ask(Some(Mode::Rewrite), Some(qemu)), local, &registered),
            Ok(Emulation::Rewrite { .. })
        ));

        let err = build(ask(None, None), local, &unregistered).unwrap_err();
        assert!(
            err.to_string()
                .contains("no binfmt_misc registration for qemu-aarch64-static"),
            "{err}"
        );
        let err = build(ask(None, None), remote, &registered).unwrap_err();
        assert!(err.to_string().contains("it is a remote daemon"), "{err}");

        let resolve = |request| resolve_emulation(Arch::Aarch64, Arch::Amd64, request);
        assert_eq!(resolve(ask(None, None)), Ok(Emulation::Native));
        assert_eq!(resolve(binfmt), Err(Error::BinfmtForResolve));
        assert!(matches!(
            resolve(ask(Some(Mode::Auto), Some(qemu))),
            Ok(Emulation::Rewrite { .. })
        ));
        assert_eq!(
            resolve_emulation(Arch::Aarch64, Arch::Aarch64, binfmt),
            Err(Error::BinfmtForResolve)
        );
    }
}
