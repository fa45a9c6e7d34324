//! `balena-compose`: build, deploy and run compose projects for fleets of edge devices.
//!
//! This is the only crate that prints. Every subcommand lives in `commands/<name>.rs` as an
//! `Args` struct (clap) and an `async fn run(args) -> anyhow::Result<ExitCode>`; errors come
//! back here and are reported once, as `error: …` with their chain of causes, exit code 1 —
//! or 128 + the signal's number when SIGINT, SIGTERM or SIGHUP interrupted the command
//! (see `signals`).

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod signals;

/// 128 + SIGPIPE: the exit status when standard output's reader went away.
const EXIT_BROKEN_PIPE: u8 = 141;

/// Build, deploy and run multi-service compose projects for fleets of edge devices.
///
/// balena-compose reads a compose project (docker-compose.yml plus the services' build
/// contexts), renders each service's Dockerfile for the target architecture and device type,
/// builds or pulls every image through a Docker daemon, pushes them as a release, and applies
/// releases on devices.
#[derive(Debug, Parser)]
#[command(name = "balena-compose", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // One variant per subcommand, in the order a user meets them.
    /// Validate the compose files and print the normalised composition.
    Config(commands::config::Args),
    /// Write each service's resolved build context as a tar, without a daemon.
    Resolve(commands::resolve::Args),
    /// Build (or pull) every service of a project on a Docker daemon.
    Build(commands::build::Args),
    /// Build what is missing, push every image and record a release on the balena API.
    Deploy(commands::deploy::Args),
    /// Render one Dockerfile template for a target architecture and device type.
    Template(commands::template::Args),
    /// Rewrite one build context to run its `RUN` steps under qemu.
    Emulate(commands::emulate::Args),
    /// Register qemu in binfmt_misc so foreign images build without a rewrite.
    Emulation(commands::emulation::Args),
    /// Apply a release's target state to this device's engine.
    ///
    /// Apply a release to the device's engine: fetch images, create networks and volumes, and
    /// replace services following their update strategies and update locks.
    ///
    /// The target state comes from a file (`--target state.json`), a URL, or the API's device
    /// state endpoint (`<apiEndpoint>/device/v3/<uuid>/state`, using config.json's `uuid`,
    /// `deviceApiKey` and `apiEndpoint`). An app named with `-a` that is not in the target is
    /// removed. Exits 0 once the engine runs the target, 3 when update locks are held (retry
    /// later, or use --force), 130/143/129 when SIGINT/SIGTERM/SIGHUP interrupts it; an
    /// interrupted update leaves the running release untouched and `up` can simply be run
    /// again.
    Up(commands::up::Args),
    /// Print the current state of an app on this device's engine.
    ///
    /// Print the current state of an app as the engine holds it: its release, services and their
    /// status, networks and volumes. Nothing is read from a local database: the containers',
    /// networks' and volumes' labels are the only source.
    State(commands::state::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that only read files and print need no worker threads; starting them is a
    // good part of such a command's time.
    let mut builder = match cli.command {
        Command::Config(_) | Command::Template(_) => tokio::runtime::Builder::new_current_thread(),
        _ => {
            commands::output::remember_open_files_limit();
            tokio::runtime::Builder::new_multi_thread()
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let outcome: anyhow::Result<ExitCode> = runtime.block_on(async move {
        if matches!(
            cli.command,
            Command::Build(_) | Command::Deploy(_) | Command::Up(_)
        ) {
            signals::install().map_err(|e| {
                anyhow::Error::new(e).context("cannot listen for SIGINT, SIGTERM and SIGHUP")
            })?;
        }
        match cli.command {
            // One arm per subcommand: `Command::X(args) => commands::x::run(args).await,`
            Command::Config(args) => commands::config::run(args).await,
            Command::Resolve(args) => commands::resolve::run(args).await,
            Command::Build(args) => commands::build::run(args).await,
            Command::Deploy(args) => commands::deploy::run(args).await,
            Command::Template(args) => commands::template::run(args).await,
            Command::Emulate(args) => commands::emulate::run(args).await,
            Command::Emulation(args) => commands::emulation::run(args).await,
            Command::Up(args) => commands::up::run(args).await,
            Command::State(args) => commands::state::run(args).await,
        }
    });
    let code = match outcome {
        Ok(code) => code,
        Err(e) => report(&e),
    };
    // An interrupted command has cleaned up; its exit status says which signal stopped it.
    match signals::received().and_then(|signo| u8::try_from(128 + signo).ok()) {
        Some(interrupted) => ExitCode::from(interrupted),
        None => code,
    }
}

/// Prints an error and its causes the way every subcommand reports failure.
fn report(error: &anyhow::Error) -> ExitCode {
    // Standard output closed by its reader (`| head`): nothing is wrong, and nobody is left
    // to tell. The status is the one of a process that SIGPIPE ended.
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::from(EXIT_BROKEN_PIPE);
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    for cause in error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(note) = commands::output::open_files_note(&format!("{error:#}")) {
        let _ = writeln!(stderr, "error: {note}");
    }
    ExitCode::FAILURE
}
