//! `balena-compose resolve`: write every service's build context, exactly as `build` sends
//! it to the daemon, without a daemon.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use platform::Arch;

use super::output::{Stdout, count_output, errln, outln, write_output};
use super::project::{self, ProjectArgs, TargetArgs};

/// Write each service's resolved build context to `<output-dir>/<service>.tar`.
///
/// For every service with a `build`, picks its Dockerfile for the target (Dockerfile.<device
/// type>, Dockerfile.<arch>, Dockerfile.template, Dockerfile), renders it, and writes the
/// context that `balena-compose build` would send to the daemon. Services with only an
/// `image` are listed, not written. The contexts are what a daemon of the target's
/// architecture builds, whatever this machine is. With --emulated and an architecture this
/// machine cannot run, the Dockerfiles are rewritten to run their `RUN`s under qemu, and qemu
/// is in each context, so `docker build` of the written tar works here without binfmt_misc.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  balena-compose resolve . --arch aarch64 --output-dir out/\n  tar c . | balena-compose resolve - --arch amd64 --output-dir out/ --json\n  balena-compose resolve . --arch armv7hf --dry-run\n  balena-compose resolve . -d raspberrypi4-64 --output-dir out/"
)]
pub struct Args {
    #[command(flatten)]
    project: ProjectArgs,

    #[command(flatten)]
    target: TargetArgs,

    /// The target architecture: amd64, aarch64, armv7hf, i386 or rpi. Default: the device
    /// type's.
    #[arg(short = 'A', long, value_name = "ARCH", value_parser = project::parse_arch,
          required_unless_present = "device_type")]
    arch: Option<Arch>,

    /// Where to write `<service>.tar` files (created if missing).
    #[arg(
        short = 'o',
        long,
        value_name = "DIR",
        required_unless_present = "dry_run"
    )]
    output_dir: Option<PathBuf>,

    /// Cut, resolve and stream every context as `--output-dir` would, but write nothing: check
    /// that the project resolves and see how big each context is.
    #[arg(long, conflicts_with = "output_dir")]
    dry_run: bool,

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
    /// The context tar's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
}

impl Args {
    /// The project flags, for the options given before the subcommand.
    pub fn project_mut(&mut self) -> &mut ProjectArgs {
        &mut self.project
    }
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // clap requires --arch or --device-type, so there is a target.
    let target =
        project::target(args.arch, &args.target)?.context("give --arch or --device-type")?;
    let emulation = project::resolve_emulation(target.arch, &args.target)?;
    let vars = BTreeMap::from([("BALENA_RELEASE_HASH".to_owned(), "unavailable".to_owned())]);
    let plan = project::plan(&args.project, &target, emulation, None, vars)?;
    for warning in plan.warnings() {
        errln!("warning: {warning}");
    }
    if let Some(dir) = &args.output_dir {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }

    let mut services = Vec::new();
    for task in &plan.tasks {
        let kind = task.kind.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        services.push(match kind {
            multibuild::TaskKind::Pull { image } => ResolvedService {
                service: task.service.clone(),
                resolver: None,
                dockerfile: None,
                context: None,
                size: None,
                image: Some(image.clone()),
            },
            multibuild::TaskKind::Build(build) => {
                let (context, size) = match &args.output_dir {
                    Some(dir) => {
                        let path = dir.join(format!("{}.tar", task.service));
                        let size = write_output(Some(&path), Stdout::NotTerminal, |out| {
                            build.write_context(out)
                        })?;
                        (Some(path.display().to_string()), size)
                    }
                    None => {
                        let size =
                            count_output(|out| build.write_context(out)).with_context(|| {
                                format!("service \"{}\": cannot stream its context", task.service)
                            })?;
                        (None, size)
                    }
                };
                ResolvedService {
                    service: task.service.clone(),
                    resolver: Some(build.resolved.resolver.name().to_owned()),
                    dockerfile: Some(build.resolved.dockerfile_path.clone()),
                    context,
                    size: Some(size),
                    image: None,
                }
            }
        });
    }

    if args.json {
        outln!("{}", serde_json::json!({ "services": services }));
    } else {
        for s in &services {
            match (&s.resolver, &s.image) {
                (Some(resolver), _) => outln!(
                    "{}: {} → {} in {} ({})",
                    s.service,
                    resolver,
                    s.dockerfile.as_deref().unwrap_or(""),
                    s.context.as_deref().unwrap_or("a context not written"),
                    human_size(s.size.unwrap_or(0)),
                ),
                (None, Some(image)) => outln!("{}: external image {image}", s.service),
                (None, None) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `1536` → `1.5 KiB`: context sizes as people read them.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)] // a display value: three significant digits suffice
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
