//! `balena-compose logs`: the output of an app's services, each line prefixed with its
//! service's name.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use composer::LogQuery;
use futures::StreamExt;

use super::output::outln;

/// The arguments of `balena-compose logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app: numeric id, uuid or fleet name (default: the only app on the engine).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    pub app: Option<String>,
    /// The services (default: every service of the app).
    pub services: Vec<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only output since a Unix time in seconds, or for the last duration (`30s`, `10m`, `2h`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only the last N lines of each service.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Prefix each line with its timestamp.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    #[command(flatten)]
    pub device: super::up::DeviceArgs,
}

/// `--since` as Unix seconds: a Unix time as given, or now minus a duration. Hand-written:
/// three units are all docker compose's users type, not worth a dependency.
fn since_unix(text: &str) -> anyhow::Result<i32> {
    let bad = || format!("--since {text}: give Unix seconds or a duration such as 30s, 10m, 2h");
    if let Ok(seconds) = text.parse::<i32>() {
        return Ok(seconds);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let amount: u64 = number.parse().with_context(bad)?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => bail!(bad()),
    };
    let ago = Duration::from_secs(amount.saturating_mul(scale));
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let since = now.saturating_sub(ago).as_secs();
    i32::try_from(since).with_context(bad)
}

/// Runs `balena-compose logs`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let query = LogQuery {
        follow: args.follow,
        tail: args.tail,
        since: args.since.as_deref().map(since_unix).transpose()?,
        timestamps: args.timestamps,
    };
    let (composer, state, name) = super::app::existing(&args.device, args.app.as_deref()).await?;
    let services: Vec<String> = if args.services.is_empty() {
        state.services.keys().cloned().collect()
    } else {
        args.services.clone()
    };
    let width = services.iter().map(String::len).max().unwrap_or(0);
    let mut streams = Vec::new();
    for service in &services {
        if !state.services.contains_key(service) {
            bail!("app {name} has no service {service}");
        }
        let prefix = format!("{service:<width$} | ");
        let lines = composer.logs_with(service, &query).await?;
        streams.push(lines.map(move |line| (prefix.clone(), line)).boxed());
    }
    // Lines are printed as they come, from every service at once.
    let mut merged = futures::stream::select_all(streams);
    while let Some((prefix, line)) = merged.next().await {
        let line = line?;
        for text in line.message.lines() {
            outln!("{prefix}{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
