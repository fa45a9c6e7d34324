//! `balena-compose state`: print the current state of an app, read from the engine.

use std::process::ExitCode;

use composer::{Composer, CurrentState};

use super::output::outln;

/// The arguments of `balena-compose state`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app: numeric id, uuid or fleet name (default: the only app on the engine).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    pub app: Option<String>,
    /// Print the state as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: super::up::DeviceArgs,
}

/// Runs `balena-compose state`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_, state, _) = super::app::existing(&args.device, args.app.as_deref()).await?;
    print_state(&state, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The app's state, or an error when the engine holds nothing of it (an unknown app is a
/// mistake in its name, not an idle app).
pub(crate) async fn require_app(composer: &Composer, name: &str) -> anyhow::Result<CurrentState> {
    let state = composer.state().await?;
    if state.services.is_empty() && state.networks.is_empty() && state.volumes.is_empty() {
        anyhow::bail!("no app {name} on this engine: no container, network or volume of it");
    }
    Ok(state)
}

/// Prints a state as JSON or as a short table.
pub fn print_state(state: &CurrentState, json: bool) -> anyhow::Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "state": state }))?
        );
        return Ok(());
    }
    let app = state
        .app_uuid
        .clone()
        .or_else(|| state.app_id.map(|i| i.to_string()))
        .unwrap_or_default();
    outln!(
        "app {app}: {} (release {})",
        state.status,
        state.commit.as_deref().unwrap_or("none")
    );
    for (name, s) in &state.services {
        let status = serde_json::to_value(&s.status)?;
        let status = status.as_str().unwrap_or_default().to_owned();
        let progress = s
            .download_progress
            .map(|p| format!(" {p}%"))
            .unwrap_or_default();
        outln!("  {name:<20} {status:<12}{progress} {}", s.image);
    }
    for n in &state.networks {
        outln!("  network {n}");
    }
    for v in &state.volumes {
        outln!("  volume  {v}");
    }
    Ok(())
}
