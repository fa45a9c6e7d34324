//! The `emulate` stage of balena-compose: build images for a foreign CPU architecture on a
//! Docker host that cannot run its binaries.
//!
//! Two ways work (see [`choose_emulation`]):
//! * **binfmt_misc**: when the host kernel has qemu registered for the target architecture,
//!   build with the target's platform and an unchanged Dockerfile;
//! * **the rewrite** ([`transpose`]): copy a static qemu into the build context
//!   ([`qemu_context_path`]), and rewrite the Dockerfile so each stage copies it in and each
//!   `RUN` starts under it. Debian's `qemu-user-static` cannot follow an `exec` of another
//!   foreign program (it has no `-execve`), so a `RUN` that starts one fails with "exec format
//!   error"; [`BuildOutput`] recognises that and explains the two ways out.
//!
//! [`filter_line`] shows the builder's `Step N/M : RUN` lines as the user wrote them.
//! [`add_secret_mounts`] (not about emulation, but the same lexer) gives every `RUN` a
//! BuildKit secret mount, for build secrets.
//!
//! ```
//! use emulate::{BuildOutput, TransposeOptions, transpose};
//! use platform::Arch;
//!
//! let opts = TransposeOptions::new(Arch::Aarch64);
//! let dockerfile = "# syntax=docker/dockerfile:1\nFROM local/aarch64-busybox\nRUN uname -m > /arch\n";
//! let out = transpose(dockerfile, &opts)?;
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
//! # Ok::<(), emulate::Error>(())
//! ```
#![deny(missing_docs)]

pub mod binfmt;
mod host;
mod lexer;
mod output;
mod transpose;

use platform::Arch;

pub use host::{
    Emulation, binfmt_registered, binfmt_registered_in, choose_emulation, choose_emulation_with,
    host_arch, host_qemu, host_qemu_in, qemu_binary_name,
};
pub use output::{
    BuildOutput, filter_error_message, filter_line, foreign_exec_error, is_exec_format_error,
    is_platform_mismatch_warning,
};
pub use transpose::{add_secret_mounts, pin_build_platform, transpose};

/// How [`transpose`] rewrites a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransposeOptions {
    /// Where qemu is in the build context, relative to its root (the source of the inserted
    /// `COPY`). Default: [`qemu_context_path`].
    pub context_qemu_path: String,
    /// Where qemu goes inside the image (the `COPY` destination, and the program every `RUN`
    /// starts). Default: `/usr/bin/qemu-<qemu arch>-static`.
    pub qemu_path: String,
    /// Pass `-execve` to qemu, so it also emulates the programs a `RUN` starts. Only balena's
    /// qemu (given with `--qemu PATH`) understands it; Debian's rejects it.
    pub execve: bool,
    /// Mount qemu into each `RUN` from the context (`RUN --mount=type=bind,…`, BuildKit only)
    /// instead of copying it into each stage: no layer of the result holds it.
    pub bind_mount: bool,
}

impl TransposeOptions {
    /// The defaults for `arch`: Debian's qemu, from [`qemu_context_path`] to
    /// `/usr/bin/qemu-<qemu arch>-static`, without `-execve`.
    pub fn new(arch: Arch) -> Self {
        TransposeOptions {
            context_qemu_path: qemu_context_path(arch),
            qemu_path: format!("/usr/bin/{}", qemu_binary_name(arch)),
            execve: false,
            bind_mount: false,
        }
    }

    /// The `RUN` flag that mounts qemu from the context, for [`TransposeOptions::bind_mount`].
    pub fn qemu_mount_flag(&self) -> String {
        format!(
            "--mount=type=bind,source={},target={}",
            self.context_qemu_path, self.qemu_path
        )
    }
}

/// Where the caller puts the qemu binary in a build context (`.balena/qemu-aarch64-static`),
/// with mode 0755: the inserted `COPY` keeps the context's mode, and the classic builder has
/// no `COPY --chmod`.
pub fn qemu_context_path(arch: Arch) -> String {
    format!(".balena/{}", qemu_binary_name(arch))
}

/// What went wrong while emulating, naming the Dockerfile line, binary or build step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("Dockerfile line {line}: invalid escape directive {value:?}: it must be ` or \\")]
    InvalidEscape {
        /// The 1-based line.
        line: usize,
        /// What was given.
        value: String,
    },
    /// A parser directive given twice.
    #[error("Dockerfile line {line}: only one {name:?} parser directive can be used")]
    DuplicateDirective {
        /// The 1-based line of the second one.
        line: usize,
        /// The directive, lower-cased.
        name: String,
    },
    /// A heredoc whose terminator never comes.
    #[error("Dockerfile line {line}: heredoc <<{name} is not terminated by a line \"{name}\"")]
    UnterminatedHeredoc {
        /// The 1-based line of the instruction.
        line: usize,
        /// The heredoc delimiter.
        name: String,
    },
    /// `SHELL` without a non-empty JSON array of strings (Docker rejects it too).
    #[error("Dockerfile line {line}: SHELL requires a JSON array of strings, got {given:?}")]
    InvalidShell {
        /// The 1-based line.
        line: usize,
        /// The arguments given.
        given: String,
    },
    /// `RUN []`.
    #[error("Dockerfile line {line}: RUN with an empty exec-form array has nothing to run")]
    EmptyExec {
        /// The 1-based line.
        line: usize,
    },
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
