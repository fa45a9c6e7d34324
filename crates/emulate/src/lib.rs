//! The `emulate` stage of balena-compose: build images for a foreign CPU architecture on a
//! Docker host that cannot run its binaries.
//!
//! Two ways work (see [`choose_emulation`]):
//! * **binfmt_misc**: when the host kernel has qemu registered for the target architecture,
//!   build with the target's platform and an unchanged Dockerfile;
//! * **the rewrite** ([`dockerfile::transpose`], with [`transpose_options`]): copy a static qemu
//!   into the build context ([`qemu_context_path`]), and rewrite the Dockerfile so each stage
//!   copies it in and each `RUN` starts under it. Debian's `qemu-user-static` cannot follow an
//!   `exec` of another foreign program (it has no `-execve`), so a `RUN` that starts one fails
//!   with "exec format error"; [`BuildOutput`] recognises that and explains the two ways out.
//!
//! This crate is qemu on the build host: finding it ([`host_qemu`]), its binfmt_misc
//! registrations ([`binfmt`]), the choice between the ways above, and the build's output:
//! [`filter_line`] shows the builder's `Step N/M : RUN` lines as the user wrote them. The
//! Dockerfile's text is the `dockerfile` crate's.
//!
//! ```
//! use emulate::{BuildOutput, transpose_options};
//! use platform::Arch;
//!
//! let opts = transpose_options(Arch::Aarch64);
//! let text = "# syntax=docker/dockerfile:1\nFROM local/aarch64-busybox\nRUN uname -m > /arch\n";
//! let out = dockerfile::transpose(text, &opts)?;
//! assert_eq!(
//!     out,
//!     "# syntax=docker/dockerfile:1\n\
//!      FROM local/aarch64-busybox\n\
//!      COPY [\".balena/qemu-aarch64-static\",\"/usr/bin/qemu-aarch64-static\"]\n\
//!      RUN [\"/usr/bin/qemu-aarch64-static\",\"/bin/sh\",\"-c\",\"uname -m > /arch\"]\n"
//! );
//!
//! let mut output = BuildOutput::new(Arch::Aarch64, opts);
//! let shown = output.line(
//!     "Step 3/3 : RUN [\"/usr/bin/qemu-aarch64-static\",\"/bin/sh\",\"-c\",\"uname -m > /arch\"]",
//! );
//! assert_eq!(shown, "Step 3/3 : RUN uname -m > /arch");
//! output.line("/bin/sh: /bin/uname: Exec format error");
//! let err = output.explain_failure("The command '/usr/bin/qemu-aarch64-static /bin/sh -c uname -m > /arch' returned a non-zero code: 126");
//! assert!(err.unwrap().to_string().contains("binfmt_misc"));
//! # Ok::<(), dockerfile::SyntaxError>(())
//! ```
#![deny(missing_docs)]

pub mod binfmt;
mod choice;
mod host;
mod output;

use platform::Arch;

pub use choice::{
    Daemon, Emulation, Mode, Request, build_emulation, choose_emulation, choose_emulation_with,
    resolve_emulation, rewrite,
};
/// How [`dockerfile::transpose`] rewrites a Dockerfile (re-exported: [`Emulation::Rewrite`]
/// carries one).
pub use dockerfile::TransposeOptions;
pub use host::{
    binfmt_registered, binfmt_registered_in, host_arch, host_qemu, host_qemu_in, qemu_binary_name,
};
pub use output::{
    BuildOutput, filter_error_message, filter_line, foreign_exec_error, is_exec_format_error,
    is_platform_mismatch_warning,
};

/// The [`TransposeOptions`] for `arch` with Debian's qemu: from [`qemu_context_path`] in the
/// context to `/usr/bin/qemu-<qemu arch>-static` in the image, without `-execve`.
pub fn transpose_options(arch: Arch) -> TransposeOptions {
    TransposeOptions::new(&qemu_binary_name(arch))
}

/// Where the caller puts the qemu binary in a build context (`.balena/qemu-aarch64-static`),
/// with mode 0755: the inserted `COPY` keeps the context's mode, and the classic builder has
/// no `COPY --chmod`.
pub fn qemu_context_path(arch: Arch) -> String {
    transpose_options(arch).context_qemu_path
}

/// What went wrong while emulating, naming the binary or build step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No `qemu-<arch>-static` on the host.
    #[error(
        "{binary} (to emulate {arch}) was not found in {searched}: install Debian's \
         qemu-user-static package (apt-get install qemu-user-static), or pass --qemu PATH"
    )]
    QemuNotFound {
        /// The target architecture.
        arch: Arch,
        /// The binary looked for.
        binary: String,
        /// The directories searched, `:`-separated.
        searched: String,
    },
    /// `resolve` asked for `--emulation binfmt`, which a context written for any daemon
    /// cannot use.
    #[error(
        "resolve writes contexts for any daemon: --emulation binfmt does not apply; use --emulated or --emulation rewrite"
    )]
    BinfmtForResolve,
    /// `--qemu` (the rewrite's qemu) with `--emulation binfmt`.
    #[error("--qemu is the qemu of the rewrite: it cannot be used with --emulation binfmt")]
    QemuWithBinfmt,
    /// `--emulation binfmt`, but the daemon does not run the target through binfmt_misc.
    #[error(
        "--emulation binfmt: the Docker daemon does not run {target} programs through binfmt_misc (no registration of qemu-{qemu_arch} with the F flag on its machine, or it is a remote daemon): run `sudo balena-compose emulation setup --arch {target}` on the daemon's machine, or use --emulation rewrite",
        qemu_arch = target.qemu_arch()
    )]
    BinfmtNotRegistered {
        /// The target architecture.
        target: Arch,
    },
    /// A foreign target without emulation asked for, on a daemon that cannot run it.
    #[error(
        "the Docker daemon ({daemon}) cannot run {target} build steps: {why}. Add --emulated to run them under qemu, register qemu for {target} in binfmt_misc on the daemon's machine (`sudo balena-compose emulation setup` there, with Debian's qemu-user-static installed), or build on a {target} daemon (--docker-host)",
        why = if *local {
            format!("this machine has no binfmt_misc registration for {}", qemu_binary_name(*target))
        } else {
            "it is a remote daemon".to_owned()
        }
    )]
    DaemonCannotRun {
        /// The target architecture.
        target: Arch,
        /// The daemon's architecture.
        daemon: Arch,
        /// Whether the daemon runs on this machine.
        local: bool,
    },
    /// binfmt_misc needs root.
    #[error("{doing} needs root: run the command as root (sudo)")]
    NeedsRoot {
        /// What was being done.
        doing: String,
    },
    /// Debian's registration line for an architecture is missing.
    #[error(
        "{conf} (the binfmt_misc registration of qemu for {arch}) is missing or empty: install \
         Debian's qemu-user-static package (apt-get install qemu-user-static)",
        conf = conf.display()
    )]
    NoBinfmtConf {
        /// The architecture.
        arch: Arch,
        /// The file looked for.
        conf: std::path::PathBuf,
    },
    /// mount(8) failed.
    #[error("cannot mount binfmt_misc at {dir}: {said}", dir = dir.display())]
    MountBinfmt {
        /// The mount point.
        dir: std::path::PathBuf,
        /// What mount said.
        said: String,
    },
    /// Reading or writing binfmt_misc failed.
    #[error("{doing}: {message}")]
    BinfmtIo {
        /// What was being done.
        doing: String,
        /// The I/O error.
        message: String,
    },
    /// A `RUN` under the rewrite started a foreign program, which the kernel could not execute.
    #[error(
        "{step} failed: a program it started is an {arch} binary the build host cannot execute \
         ({evidence:?}; the daemon said: {daemon_error}). Under the emulation rewrite only the \
         RUN's own shell runs under {qemu}{execve_note}. Two ways out: register qemu for {arch} \
         with binfmt_misc on the Docker host (`sudo balena-compose emulation setup --arch {arch}` \
         there), \
         and the build runs with platform {platform} and no rewrite; or pass --qemu PATH with a \
         qemu that supports -execve (such as balena's qemu-{qemu_arch}-static)",
        qemu_arch = arch.qemu_arch(),
        platform = arch.docker_platform(),
        execve_note = if *execve { " (with -execve, which did not help here)" } else { ", which without -execve cannot follow an exec" }
    )]
    ForeignExec {
        /// The target architecture.
        arch: Arch,
        /// The step that failed (`Step 2/3 : RUN uname -m`).
        step: String,
        /// The output line that reported the failed exec.
        evidence: String,
        /// The daemon's failure message, qemu prefix removed.
        daemon_error: String,
        /// The qemu inside the image.
        qemu: String,
        /// Whether `-execve` was passed.
        execve: bool,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_options_use_debians_qemu_without_execve() {
        let opts = transpose_options(Arch::Armv7hf);
        assert_eq!(opts.qemu_path, "/usr/bin/qemu-arm-static");
        assert_eq!(opts.context_qemu_path, ".balena/qemu-arm-static");
        assert_eq!(
            qemu_context_path(Arch::Aarch64),
            ".balena/qemu-aarch64-static"
        );
        assert_eq!(
            dockerfile::transpose("FROM a\nRUN x", &opts).unwrap(),
            "FROM a\nCOPY [\".balena/qemu-arm-static\",\"/usr/bin/qemu-arm-static\"]\n\
             RUN [\"/usr/bin/qemu-arm-static\",\"/bin/sh\",\"-c\",\"x\"]"
        );
    }
}
