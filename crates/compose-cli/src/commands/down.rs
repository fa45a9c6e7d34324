//! `balena-compose down`: stop and remove an app's containers and networks on this device.

use std::process::ExitCode;

use composer::RemoveOptions;

/// The arguments of `balena-compose down`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app: numeric id, uuid or fleet name (default: the only app on the engine).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    pub app: Option<String>,
    /// Remove the app's volumes (its data) too; by default they are kept.
    #[arg(long)]
    pub volumes: bool,
    #[command(flatten)]
    pub apply: super::up::ApplyArgs,
    #[command(flatten)]
    pub device: super::up::DeviceArgs,
}

/// Runs `balena-compose down`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (composer, _, _) = super::app::existing(&args.device, args.app.as_deref()).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(super::up::print_events(rx, args.apply.json));
    let cancel = crate::signals::arm().token();
    let result = composer
        .with_events(tx)
        .remove(RemoveOptions {
            force: args.apply.force,
            keep_volumes: !args.volumes,
            cancel: Some(cancel),
            no_wait: args.apply.no_wait,
        })
        .await;
    // The composer (and with it the sender) is gone: the printer drains and ends.
    let _ = printer.await;
    super::up::finish(result, args.apply.json)
}
