//! `balena-compose target`: write the v3 target state of a fleet's release, for
//! `up --target` on devices without API access and for tests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use composer::release_state::{ReleaseQuery, release_target_state};

use super::output::outln;

/// The arguments of `balena-compose target`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  balena-compose target myorg/myfleet -o target.json\n  balena-compose up --target target.json"
)]
pub struct Args {
    /// The fleet, `org/name`.
    pub fleet: String,
    /// The release commit (default: the latest successful final release).
    #[arg(long, value_name = "COMMIT")]
    pub release: Option<String>,
    /// Write the state to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The device uuid the state is keyed by.
    #[arg(
        long = "device-uuid",
        value_name = "UUID",
        default_value = "local-device"
    )]
    pub device_uuid: String,
    /// The balena API's base URL. Default: https://api.<BALENARC_BALENA_URL> (the balena
    /// CLI's setting), else https://api.balena-cloud.com.
    #[arg(long, env = "BALENA_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// The balena API key (sent as a bearer token, never printed). Default: the balena CLI's
    /// login, ~/.balena/token.
    #[arg(
        long,
        env = "BALENA_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
}

/// Runs `balena-compose target`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = match args.api_key.filter(|k| !k.is_empty()) {
        Some(key) => key,
        None => super::balena_login::stored_token()?.context(
            "no balena API key: pass --api-key, set BALENA_API_KEY or log in with the balena CLI",
        )?,
    };
    let api_url = args.api_url.unwrap_or_else(super::balena_login::api_url);
    let query = ReleaseQuery {
        api_url: &api_url,
        api_key: &key,
        fleet: &args.fleet,
        commit: args.release.as_deref(),
    };
    let state = release_target_state(&query, &args.device_uuid).await?;
    let text = serde_json::to_string_pretty(&state)?;
    match &args.output {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => outln!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
