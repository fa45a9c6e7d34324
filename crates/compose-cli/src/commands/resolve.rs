//! `balena-compose resolve`: write every service's build context, exactly as `build` sends
//! it to the daemon, without a daemon.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use resolve::Arch;

use super::project::{self, ProjectArgs, TargetArgs};

/// Write each service's resolved build context to `<output-dir>/<service>.tar`.
///
/// For every service with a `build`, picks its Dockerfile for the target (Dockerfile.<device
/// type>, Dockerfile.<arch>, Dockerfile.template, Dockerfile), renders it, and writes the
/// context that `balena-compose build` would send to the daemon. Services with only an
/// `image` are listed, not written. With --emulated and a foreign architecture the
/// Dockerfiles are rewritten to run their `RUN`s under qemu, and qemu is in each context, so
/// `docker build` of the written tar works on a host without binfmt_misc.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  balena-compose resolve . --arch aarch64 --output-dir out/\n  tar c . | balena-compose resolve - --arch amd64 --output-dir out/ --json"
)]
pub struct Args {
    #[command(flatten)]
    project: ProjectArgs,

    #[command(flatten)]
    target: TargetArgs,

    /// The target architecture: amd64, aarch64, armv7hf, i386 or rpi.
    #[arg(short = 'A', long, value_name = "ARCH", value_parser = project::parse_arch)]
    arch: Arch,

    /// Where to write `<service>.tar` files (created if missing).
    #[arg(short = 'o', long, value_name = "DIR")]
    output_dir: PathBuf,

    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
struct ResolvedService {
    service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dockerfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
}

/// Runs the command.
#[allow(clippy::print_stdout)]
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let host = emulate::host_arch().unwrap_or(Arch::Amd64);
    let emulation = project::emulation(args.arch, host, &args.target, false)?;
    let vars = BTreeMap::from([("BALENA_RELEASE_HASH".to_owned(), "unavailable".to_owned())]);
    let plan = project::plan(
        &args.project,
        &args.target,
        args.arch,
        emulation,
        None,
        vars,
    )?;
    fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;

    let mut services = Vec::new();
    for task in &plan.tasks {
        let kind = task.kind.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        services.push(match kind {
            multibuild::TaskKind::Pull { image } => ResolvedService {
                service: task.service.clone(),
                resolver: None,
                dockerfile: None,
                context: None,
                image: Some(image.clone()),
            },
            multibuild::TaskKind::Build(build) => {
                let path = args.output_dir.join(format!("{}.tar", task.service));
                write_atomically(&path, |out| build.write_context(out))?;
                ResolvedService {
                    service: task.service.clone(),
                    resolver: Some(build.resolved.resolver.name().to_owned()),
                    dockerfile: Some(build.resolved.dockerfile_path.clone()),
                    context: Some(path.display().to_string()),
                    image: None,
                }
            }
        });
    }

    if args.json {
        println!("{}", serde_json::json!({ "services": services }));
    } else {
        for s in &services {
            match (&s.resolver, &s.image) {
                (Some(resolver), _) => println!(
                    "{}: {} → {} in {}",
                    s.service,
                    resolver,
                    s.dockerfile.as_deref().unwrap_or(""),
                    s.context.as_deref().unwrap_or("")
                ),
                (None, Some(image)) => println!("{}: external image {image}", s.service),
                (None, None) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `path` through a temporary file in the same directory, so a failure never leaves
/// a truncated tar behind.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut out = BufWriter::new(file);
    write(&mut out).with_context(|| format!("writing {}", path.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    // A temporary file is private (0600); the result is an ordinary file.
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
