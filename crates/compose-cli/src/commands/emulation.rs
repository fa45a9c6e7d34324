//! `balena-compose emulation setup|status|remove`: register the host's qemu in binfmt_misc,
//! so that foreign images build with no Dockerfile rewrite (the way CI users set emulation up).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use emulate::binfmt::{self, SetupOutcome};
use platform::Arch;

use super::project;

/// binfmt_misc registrations of qemu for foreign architectures.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  sudo balena-compose emulation setup\n  balena-compose emulation status --json\n  sudo balena-compose emulation remove"
)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Register Debian's qemu (qemu-user-static) for foreign architectures, with the flags
    /// P, O and F, under names of our own (balena-compose-qemu-<arch>). Needs root; mounts
    /// binfmt_misc when it is not mounted; does nothing for what is registered already.
    Setup {
        /// An architecture to register (aarch64, armv7hf, rpi, i386); repeatable. Default:
        /// aarch64, armv7hf and i386 (those this host does not run natively).
        #[arg(short = 'A', long = "arch", value_name = "ARCH", value_parser = project::parse_arch)]
        arches: Vec<Arch>,
    },
    /// Show the qemu registrations: name, interpreter, flags, and whether containers can use
    /// them (the F flag).
    Status {
        /// Print JSON: `{"mounted": bool, "registrations": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Remove the registrations `setup` made, and no other.
    Remove,
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = Path::new(binfmt::BINFMT_DIR);
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Setup { arches } => {
            let arches = if arches.is_empty() {
                binfmt::DEFAULT_ARCHES.to_vec()
            } else {
                arches
            };
            let host = emulate::host_arch().unwrap_or(Arch::Amd64);
            let conf_dir = Path::new(binfmt::DEBIAN_BINFMT_CONF_DIR);
            let outcomes = binfmt::setup(dir, conf_dir, host, &arches)
                .context("setting up binfmt_misc emulation")?;
            for outcome in outcomes {
                let line = match outcome {
                    SetupOutcome::Native(arch) => format!("{arch}: runs natively on {host}"),
                    SetupOutcome::Registered(arch, name) => format!("{arch}: registered {name}"),
                    SetupOutcome::AlreadyRegistered(arch, name) => {
                        format!("{arch}: {name} already registered")
                    }
                };
                writeln!(out, "{line}")?;
            }
        }
        Action::Status { json } => print_status(&mut out, dir, json)?,
        Action::Remove => {
            let removed = binfmt::remove(dir).context("removing binfmt_misc registrations")?;
            if removed.is_empty() {
                writeln!(out, "nothing to remove: emulation setup registered nothing")?;
            }
            for name in removed {
                writeln!(out, "removed {name}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(out: &mut impl std::io::Write, dir: &Path, json: bool) -> anyhow::Result<()> {
    let mounted = dir.join("register").exists();
    let registrations = binfmt::registrations_in(dir);
    if json {
        let value = serde_json::json!({ "mounted": mounted, "registrations": registrations });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    if !mounted {
        writeln!(
            out,
            "binfmt_misc is not mounted at {}: run `sudo balena-compose emulation setup`",
            dir.display()
        )?;
        return Ok(());
    }
    if registrations.is_empty() {
        writeln!(
            out,
            "no qemu is registered: run `sudo balena-compose emulation setup`"
        )?;
    }
    for r in registrations {
        writeln!(
            out,
            "{name}: {state}, {interp}, flags {flags}, {containers}{ours}",
            name = r.name,
            state = if r.enabled { "enabled" } else { "disabled" },
            interp = r.interpreter,
            flags = if r.flags.is_empty() { "none" } else { &r.flags },
            containers = if r.usable_in_containers {
                "usable from containers"
            } else {
                "not usable from containers (no F flag)"
            },
            ours = if r.ours {
                " (registered by emulation setup)"
            } else {
                ""
            },
        )?;
    }
    Ok(())
}
