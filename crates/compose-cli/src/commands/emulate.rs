//! `balena-compose emulate`: rewrite one build context so that a foreign-architecture image
//! builds under qemu on any daemon, without binfmt_misc.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use context::{Override, Project};
use platform::Arch;

use super::output::{Stdout, write_output};
use super::project;

/// Write a build context with its Dockerfile rewritten to run every `RUN` under qemu, and
/// the qemu binary added at `.balena/qemu-<arch>-static`.
///
/// The context is a directory, a `.tar` file, or `-` for a tar on standard input; its
/// `.dockerignore` applies, as it would on the daemon. Each stage of the Dockerfile gets
/// `COPY [".balena/qemu-<arch>-static","/usr/bin/qemu-<arch>-static"]` after its `FROM`, and
/// each `RUN` becomes an exec-form `RUN` that starts that qemu. The result is streamed (never
/// held in memory) to -o, or to standard output when that is not a terminal; plain
/// `docker build - < out.tar` then builds it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  balena-compose emulate ./app --arch aarch64 -o app-aarch64.tar\n  tar c -C app . | balena-compose emulate - --arch armv7hf --qemu ./qemu-arm-static | docker build -"
)]
pub struct Args {
    /// The build context: a directory, a `.tar` file, or `-` for a tar on standard input.
    #[arg(value_name = "CONTEXT", default_value = ".")]
    context: PathBuf,

    /// The target architecture: amd64, aarch64, armv7hf, i386 or rpi.
    #[arg(short = 'A', long, value_name = "ARCH", value_parser = project::parse_arch)]
    arch: Arch,

    /// The Dockerfile to rewrite, relative to the context.
    #[arg(long, value_name = "PATH", default_value = "Dockerfile")]
    dockerfile: String,

    /// The qemu binary to put in the context, run with `-execve` (balena's qemu). Default:
    /// the host's qemu-<arch>-static (Debian's qemu-user-static), run without `-execve`.
    #[arg(long, value_name = "PATH")]
    qemu: Option<PathBuf>,

    /// Where to write the context tar; `-` or nothing for standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Indexing the tar and copying it out are blocking file I/O from start to end.
    tokio::task::spawn_blocking(move || emulate_context(&args))
        .await
        .context("the emulate task stopped")??;
    Ok(ExitCode::SUCCESS)
}

fn emulate_context(args: &Args) -> anyhow::Result<()> {
    let (host_qemu, options) = emulate::rewrite(args.arch, args.qemu.as_deref())?;
    if !host_qemu.is_file() {
        bail!("the qemu binary {} is not a file", host_qemu.display());
    }
    let project = open_project(&args.context)?;
    let context = project
        .context(".")
        .with_context(|| format!("reading the context {}", args.context.display()))?;
    let source = context.read_file(&args.dockerfile)?.with_context(|| {
        format!(
            "the context {} has no Dockerfile \"{}\"",
            args.context.display(),
            args.dockerfile
        )
    })?;
    let source = String::from_utf8(source)
        .with_context(|| format!("{} is not UTF-8 text", args.dockerfile))?;
    let transposed = dockerfile::transpose(&source, &options)
        .with_context(|| format!("rewriting {}", args.dockerfile))?;
    let overrides = [
        Override::file(args.dockerfile.as_str(), transposed),
        Override::host_file(options.context_qemu_path.as_str(), host_qemu, 0o755),
    ];
    write_output(args.output.as_deref(), Stdout::NotTerminal, |out| {
        context
            .write_tar(&overrides, out)
            .map(drop)
            .map_err(io::Error::other)
    })
    .map(drop)
}

/// Opens a context or project: `-` is standard input (read in place when it is a file).
pub(crate) fn open_project(path: &Path) -> anyhow::Result<Project> {
    if path == Path::new("-") {
        let stdin = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot read standard input")?;
        return Project::from_tar_file(File::from(stdin)).context("reading standard input");
    }
    Project::open(path).with_context(|| format!("reading {}", path.display()))
}
