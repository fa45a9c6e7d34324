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
#[command(name = "balena-compose", version = VERSION, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: GlobalProject,

    #[command(subcommand)]
    command: Command,
    /// How progress is shown: `auto` is `tty` on a terminal (not `TERM=dumb`), else `plain`;
    /// `quiet` shows only errors; `json` is `--json`. A build's output reads like the classic
    /// builder's on BuildKit too (the Dockerfile's steps and their output); `plain`, when
    /// given, also shows BuildKit's own steps (`[internal] load …`) and `CACHED` lines.
    #[arg(long, global = true, value_enum, default_value_t = commands::progress::ProgressMode::Auto)]
    progress: commands::progress::ProgressMode,
    /// Show only errors (`--progress quiet`).
    #[arg(short, long, global = true, conflicts_with = "progress")]
    quiet: bool,
}

/// `--version`: the crate's version, the commit it was built from and the build's date
/// (set by build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BALENA_COMPOSE_COMMIT"),
    " ",
    env!("BALENA_COMPOSE_BUILD_DATE"),
    ")"
);

/// docker compose's options that come before the subcommand (`balena-compose -f a.yml -p x
/// build`). They are not `global = true`: the subcommands have their own `-f`/`-p`, and
/// these only fill in what the subcommand's own flags leave unset.
#[derive(Debug, clap::Args)]
struct GlobalProject {
    /// A compose file for the subcommand, as docker compose takes it before the subcommand;
    /// repeatable.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<std::path::PathBuf>,

    /// The project name, as docker compose takes it before the subcommand.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    project_name: Option<String>,

    /// The project directory, as docker compose's --project-directory.
    #[arg(long = "project-directory", value_name = "DIR")]
    project_directory: Option<std::path::PathBuf>,
}

impl GlobalProject {
    /// Puts these options into a subcommand's project flags where those are unset.
    fn fill(self, project: &mut commands::project::ProjectArgs) {
        if project.files.is_empty() {
            project.files = self.files;
        }
        if project.project_name.is_none() {
            project.project_name = self.project_name;
        }
        if project.project.is_none() {
            project.project = self.project_directory;
        }
    }

    /// Whether any of them was given.
    fn is_set(&self) -> bool {
        !self.files.is_empty() || self.project_name.is_some() || self.project_directory.is_some()
    }

    /// The same for `config`, which has no project name.
    fn fill_config(self, args: &mut commands::config::Args) {
        if args.files.is_empty() {
            args.files = self.files;
        }
        if args.project_dir.is_none() {
            args.project_dir = self.project_directory;
        }
    }
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
    /// Stop and remove an app's containers and networks; its volumes are kept unless
    /// `--volumes` is given. Honours update locks like `up` (exit 3, or `--force`).
    Down(commands::down::Args),
    /// Write the v3 target state of a fleet's release (default: its latest successful final
    /// release), as a device of the fleet would get it, for `up --target`.
    Target(commands::target::Args),
    /// List the services of the apps on this engine (or of one app with -a): status with
    /// uptime and health, ports and image.
    Ps(commands::ps::Args),
    /// Print the output of an app's services, each line prefixed with its service's name;
    /// `-f` streams new output.
    Logs(commands::logs::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    ///
    /// For bash: `balena-compose completions bash > ~/.local/share/bash-completion/completions/balena-compose`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `balena-compose man | man -l -`.
    Man,
}

fn main() -> ExitCode {
    let Cli {
        global,
        mut command,
        progress,
        quiet,
    } = Cli::parse();
    commands::progress::choose(if quiet {
        commands::progress::ProgressMode::Quiet
    } else {
        progress
    });
    match &mut command {
        Command::Build(args) => global.fill(&mut args.project),
        Command::Deploy(args) => global.fill(args.project_mut()),
        Command::Resolve(args) => global.fill(args.project_mut()),
        Command::Config(args) => global.fill_config(args),
        _ if global.is_set() => {
            return report(&anyhow::anyhow!(
                "-f, -p and --project-directory before the subcommand apply to config, resolve, build and deploy only"
            ));
        }
        _ => {}
    }
    // Commands that only read files and print need no worker threads; starting them is a
    // good part of such a command's time.
    let quick = matches!(
        command,
        Command::Config(_) | Command::Template(_) | Command::Completions { .. } | Command::Man
    );
    let mut builder = match quick {
        true => tokio::runtime::Builder::new_current_thread(),
        false => {
            commands::output::remember_open_files_limit();
            tokio::runtime::Builder::new_multi_thread()
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let outcome: anyhow::Result<ExitCode> = runtime.block_on(async move {
        // Every command that can take a while (waiting for a daemon, a registry, a large
        // context): a signal ends it with 128 + its number, after the clean-up of any work
        // it armed (see `signals`). The quick ones keep the default, which ends them at once
        // (a shell reports that as 128 + the number too): on their single thread a handler
        // would only run once they are done.
        if !quick {
            signals::install().map_err(|e| {
                anyhow::Error::new(e).context("cannot listen for SIGINT, SIGTERM and SIGHUP")
            })?;
        }
        match command {
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
            Command::Down(args) => commands::down::run(args).await,
            Command::Target(args) => commands::target::run(args).await,
            Command::Ps(args) => commands::ps::run(args).await,
            Command::Logs(args) => commands::logs::run(args).await,
            Command::Completions { shell } => print_completions(shell),
            Command::Man => print_man_page(),
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

/// `balena-compose completions SHELL`.
fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "balena-compose", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// `balena-compose man`: the top-level page, with every subcommand's summary.
fn print_man_page() -> anyhow::Result<ExitCode> {
    use clap::CommandFactory as _;
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    std::io::stdout().lock().write_all(&page)?;
    Ok(ExitCode::SUCCESS)
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
