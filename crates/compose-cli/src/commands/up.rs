//! `balena-compose up`: apply an app's target state to the engine of this device.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use composer::target::{DeviceConfig, TargetApp, TargetState, fetch_target_state};
use composer::{AppId, Composer, DeviceFacts, Event, Options, RemoveOptions, UpdateOptions};
use platform::Arch;

/// Exit code when a user's update lock blocks the update, or another apply holds the engine
/// and `--no-wait` is given.
pub const EXIT_LOCKED: u8 = 3;
/// Exit code when the update was interrupted (Ctrl-C).
pub const EXIT_CANCELLED: u8 = 130;

/// The arguments of `balena-compose up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app: numeric id, uuid or name. Optional when the target holds exactly one app.
    #[arg(short = 'a', long = "app", value_name = "APP")]
    pub app: Option<String>,
    /// The target state: a JSON file (v3 device state or apps.json) or an http(s) URL.
    /// Without it, the state is fetched from the API named by --config.
    #[arg(long, value_name = "FILE|URL")]
    pub target: Option<String>,
    /// The device's config.json (uuid, deviceApiKey, apiEndpoint, deviceType).
    #[arg(long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the steps the update would take, touching nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// How `up` and `down` apply a change to the engine.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// Take update locks even when the app's services hold them.
    #[arg(long)]
    pub force: bool,
    /// Fail at once when another `up` or `down` is applying to this engine, instead of
    /// waiting for it.
    #[arg(long = "no-wait")]
    pub no_wait: bool,
    /// Print progress and the final state as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Where the engine and the device's files are, and what the device is.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// The engine: unix:///path, tcp://host:port or ssh://[user@]host[:port]. Default:
    /// --context, $DOCKER_HOST, $DOCKER_CONTEXT, the current context, else
    /// unix:///var/run/docker.sock.
    #[arg(long = "docker-host", value_name = "URL")]
    pub docker_host: Option<String>,
    #[command(flatten)]
    pub daemon: super::daemon::DaemonArgs,
    /// The directory holding every service's update-lock directory.
    #[arg(
        long = "lock-dir",
        value_name = "DIR",
        default_value = "/tmp/balena-supervisor/services"
    )]
    pub lock_dir: PathBuf,
    /// Where balena-compose records the images it pulled and holds the engine's apply lock
    /// (`apply.lock`: one `up` per engine at a time); keep one per engine.
    #[arg(
        long = "state-dir",
        value_name = "DIR",
        default_value = "/var/lib/balena-compose"
    )]
    pub state_dir: PathBuf,
    /// The device type slug (default: config.json's deviceType).
    #[arg(long = "device-type", value_name = "SLUG")]
    pub device_type: Option<String>,
    /// The device architecture (default: the engine's): amd64, aarch64, armv7hf, i386, rpi.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<Arch>,
    /// The host OS version, for `sw.os` contracts.
    #[arg(long = "os-version", value_name = "VERSION")]
    pub os_version: Option<String>,
    /// The supervisor version to claim for `sw.supervisor` contracts.
    #[arg(long = "supervisor-version", value_name = "VERSION", default_value = composer::COMPATIBLE_SUPERVISOR_VERSION)]
    pub supervisor_version: String,
}

impl DeviceArgs {
    /// Connects to the engine and builds the composer options.
    pub async fn connect(
        &self,
        config: &DeviceConfig,
    ) -> anyhow::Result<(bollard::Docker, Options)> {
        let docker = self.daemon.connect(self.docker_host.as_deref()).await?;
        let arch = match self.arch {
            Some(arch) => Some(arch),
            None => {
                let info = docker
                    .info()
                    .await
                    .context("asking the engine for its architecture")?;
                info.architecture.as_deref().and_then(Arch::from_docker)
            }
        };
        let options = Options {
            device: DeviceFacts {
                uuid: config.uuid.clone().unwrap_or_default(),
                name: String::new(),
                device_type: self
                    .device_type
                    .clone()
                    .or_else(|| config.device_type.clone())
                    .unwrap_or_default(),
                arch,
                os_version: self.os_version.clone(),
                supervisor_version: Some(self.supervisor_version.clone()),
                l4t_version: None,
            },
            api_key: config.device_api_key.clone(),
            api_endpoint: config.api_endpoint.clone(),
            lock_root: self.lock_dir.clone(),
            state_dir: self.state_dir.clone(),
            delta: match (&config.delta_endpoint, &config.api_endpoint) {
                (Some(d), Some(a)) => Some(composer::DeltaOptions {
                    endpoint: d.clone(),
                    api_endpoint: a.clone(),
                }),
                _ => None,
            },
            ..Options::default()
        };
        Ok((docker, options))
    }
}

async fn load_target(args: &Args, config: &DeviceConfig) -> anyhow::Result<TargetState> {
    match args.target.as_deref() {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(fetch_target_state(config, Some(url)).await?)
        }
        Some(file) => {
            let text = tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("reading the target state {file}"))?;
            TargetState::from_json(&text).with_context(|| format!("in {file}"))
        }
        None => {
            if args.config.is_none() {
                bail!(
                    "give --target FILE|URL, or --config config.json to fetch the target from the API"
                );
            }
            Ok(fetch_target_state(config, None).await?)
        }
    }
}

/// Runs `balena-compose up`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => DeviceConfig::from_file(path)?,
        None => DeviceConfig::default(),
    };
    let target = load_target(&args, &config).await?;
    let (docker, mut options) = args.device.connect(&config).await?;
    if options.device.uuid.is_empty() {
        options.device.uuid = target.device_uuid.clone().unwrap_or_default();
    }
    options.device.name = target.name.clone().unwrap_or_default();

    let app: Option<(String, &TargetApp)> = match &args.app {
        Some(a) => target.find_app(a).map(|(_, app)| (a.clone(), app)),
        None => match target.apps.len() {
            1 => target.apps.values().next().map(|a| (a.id.to_string(), a)),
            0 => bail!("the target state holds no app; name the app to remove with -a"),
            n => bail!("the target state holds {n} apps; choose one with -a"),
        },
    };
    if args.dry_run {
        return dry_run(docker, options, app.map(|(_, a)| a), &args).await;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(print_events(rx, args.apply.json));
    let interrupt = crate::signals::arm();
    let cancel = interrupt.token();
    let result = match app {
        Some((_, app)) => {
            let Some((commit, _)) = app.release() else {
                bail!(
                    "app {} ({}) has no release in the target state",
                    app.name,
                    app.uuid
                );
            };
            let commit = commit.to_owned();
            let composer = Composer::new(docker, AppId::Id(app.id), options).with_events(tx);
            composer
                .update(
                    &commit,
                    app,
                    UpdateOptions {
                        force: args.apply.force,
                        cancel: Some(cancel),
                        no_wait: args.apply.no_wait,
                    },
                )
                .await
        }
        None => {
            let Some(name) = &args.app else {
                bail!("no app selected")
            };
            let id: AppId = name.parse().unwrap_or(AppId::Uuid(name.clone()));
            let composer = Composer::new(docker, id, options);
            announce_removal(&composer.state().await?, name, args.apply.json)?;
            let composer = composer.with_events(tx);
            composer
                .remove(RemoveOptions {
                    force: args.apply.force,
                    keep_volumes: false,
                    cancel: Some(cancel),
                    no_wait: args.apply.no_wait,
                })
                .await
        }
    };
    // The composer (and with it the sender) is gone: the printer drains and ends.
    let _ = printer.await;
    finish(result, args.apply.json)
}

/// `up --dry-run`: the steps the composer would take for `app` (or to remove the app `-a`
/// names when the target lacks it), printed as `up` prints the steps it starts.
async fn dry_run(
    docker: bollard::Docker,
    options: Options,
    app: Option<&TargetApp>,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let steps = match app {
        Some(app) => {
            let Some((commit, _)) = app.release() else {
                bail!(
                    "app {} ({}) has no release in the target state",
                    app.name,
                    app.uuid
                );
            };
            Composer::new(docker, AppId::Id(app.id), options)
                .plan_update(commit, app)
                .await?
        }
        None => {
            let name = args.app.as_deref().unwrap_or_default();
            let id: AppId = name.parse().unwrap_or(AppId::Uuid(name.to_owned()));
            Composer::new(docker, id, options)
                .plan_remove(false)
                .await?
        }
    };
    print_plan(&steps, args.apply.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The planned steps: one JSON object each (`plannedStep`), or lines as `up` prints them.
fn print_plan(steps: &[composer::planner::Step], json: bool) -> anyhow::Result<()> {
    for step in steps {
        let (action, subject) = (step.action(), step.subject());
        if json {
            let event =
                serde_json::json!({"event": "plannedStep", "action": action, "subject": subject});
            super::output::outln!("{event}");
        } else {
            super::output::outln!("{action:>15} {subject}");
        }
    }
    if !json {
        match steps.len() {
            0 => super::output::outln!("dry run: nothing to do"),
            n => super::output::outln!("dry run: {n} steps; nothing was changed"),
        }
    }
    Ok(())
}

/// The exit of a command that changed the engine (`up`, `down`): the state reached, or the
/// error, with the exit codes of locks (3) and interrupts (130).
pub(crate) fn finish(
    result: Result<composer::CurrentState, composer::Error>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(state) => {
            super::state::print_state(&state, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ composer::Error::UpdatesLocked { .. }) => {
            report_line(&format!("{e}; retry later, or use --force"));
            Ok(ExitCode::from(EXIT_LOCKED))
        }
        Err(e @ composer::Error::EngineBusy { .. }) => {
            report_line(&format!("{e} (--no-wait)"));
            Ok(ExitCode::from(EXIT_LOCKED))
        }
        Err(composer::Error::Interrupted(report)) => {
            report_line(&report.to_string());
            Ok(ExitCode::from(EXIT_CANCELLED))
        }
        Err(composer::Error::Cancelled) => {
            // Only while waiting for the engine: no step had started.
            report_line("interrupted before the update started: nothing was changed");
            Ok(ExitCode::from(EXIT_CANCELLED))
        }
        Err(e) => Err(e.into()),
    }
}

/// Says what removing an app the target no longer holds deletes, before it is deleted: the
/// supervisor removes a removed app's volumes (its data) with it.
fn announce_removal(state: &composer::CurrentState, name: &str, json: bool) -> anyhow::Result<()> {
    let services: Vec<&String> = state.services.keys().collect();
    if services.is_empty() && state.networks.is_empty() && state.volumes.is_empty() {
        return Ok(());
    }
    if json {
        let event = serde_json::json!({"event": "removingApp", "app": name,
            "services": services, "networks": state.networks, "volumes": state.volumes});
        super::output::outln!("{event}");
        return Ok(());
    }
    let list = |items: Vec<&String>| {
        let names: Vec<&str> = items.iter().map(|s| s.as_str()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    super::output::outln!(
        "app {name} is not in the target: removing its services ({}), networks ({}) and volumes ({}, their data is deleted)",
        list(services),
        list(state.networks.iter().collect()),
        list(state.volumes.iter().collect())
    );
    Ok(())
}

#[allow(clippy::print_stderr)]
fn report_line(message: &str) {
    eprintln!("error: {message}");
}

#[allow(clippy::print_stdout)]
pub(crate) async fn print_events(mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>, json: bool) {
    let mut last_percent = std::collections::HashMap::new();
    while let Some(event) = rx.recv().await {
        if json {
            if let Ok(line) = serde_json::to_string(&event) {
                println!("{line}");
            }
            continue;
        }
        match event {
            Event::StepStarted { action, subject } if action != "noop" => {
                println!("{action:>15} {subject}");
            }
            Event::StepFailed {
                action,
                subject,
                error,
            } => println!("{action:>15} {subject}: failed: {error}"),
            Event::FetchProgress {
                service, percent, ..
            } => {
                // One line per 10 %, not per layer chunk.
                let decile = percent / 10;
                if last_percent.insert(service.clone(), decile) != Some(decile) {
                    println!("{:>15} {service} {percent}%", "downloading");
                }
            }
            Event::FetchRetry {
                service,
                attempt,
                error,
                ..
            } => {
                println!(
                    "{:>15} {service}: attempt {attempt} failed ({error}); retrying",
                    "fetch"
                );
            }
            Event::ServiceSkipped { service, reason } => {
                println!("{:>15} {service}: {reason}", "skipped")
            }
            Event::Warning { message } => println!("{:>15} {message}", "warning"),
            Event::WaitingForEngine { pid } => {
                let holder = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                println!(
                    "{:>15} another balena-compose up is applying to this engine{holder}; waiting…",
                    "waiting"
                );
            }
            _ => {}
        }
    }
}
