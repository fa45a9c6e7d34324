//! `balena-compose ps`: the services of the apps the composer runs on this engine.

use std::collections::HashMap;
use std::process::ExitCode;

use bollard::query_parameters::ListContainersOptions;
use composer::model::labels;
use composer::target::DeviceConfig;

use super::output::outln;

/// The arguments of `balena-compose ps`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app: numeric id, uuid or fleet name (default: every app).
    #[arg(short = 'a', long = "app", value_name = "APP")]
    pub app: Option<String>,
    /// Print one JSON object per service.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: super::up::DeviceArgs,
}

/// One service's container as `ps` shows it.
#[derive(Debug, serde::Serialize)]
struct Row {
    app: String,
    service: String,
    /// `running`, `exited`, …
    state: String,
    /// The engine's own words: uptime and health, e.g. `Up 5 minutes (healthy)`.
    status: String,
    image: String,
    ports: Vec<String>,
}

/// Runs `balena-compose ps`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (docker, _) = args.device.connect(&DeviceConfig::default()).await?;
    // A fleet name is looked up once; ids and uuids match the labels as they are.
    let wanted = match &args.app {
        Some(text) => Some(super::app::select(&docker, Some(text)).await?.to_string()),
        None => None,
    };
    let filters = HashMap::from([("label".to_owned(), vec![labels::APP_ID.to_owned()])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut rows: Vec<Row> = containers
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            let app_id = labels.get(labels::APP_ID)?.clone();
            let app_uuid = labels.get(labels::APP_UUID).cloned().unwrap_or_default();
            if let Some(wanted) = &wanted
                && wanted != &app_id
                && wanted != &app_uuid
            {
                return None;
            }
            let ports = c
                .ports
                .unwrap_or_default()
                .iter()
                .filter_map(|p| {
                    let public = p.public_port?;
                    Some(format!("{public}->{}", p.private_port))
                })
                .collect();
            Some(Row {
                app: app_id,
                service: labels
                    .get(labels::SERVICE_NAME)
                    .cloned()
                    .unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                // The engine knows the image by id; the composer records the name it ran.
                image: labels
                    .get(labels::IMAGE_NAME)
                    .cloned()
                    .or(c.image)
                    .unwrap_or_default(),
                ports,
            })
        })
        .collect();
    if let Some(app) = &args.app
        && rows.is_empty()
    {
        anyhow::bail!("no app {app} on this engine: it has no container");
    }
    rows.sort_by(|a, b| (&a.app, &a.service).cmp(&(&b.app, &b.service)));
    print_rows(&rows, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_rows(rows: &[Row], json: bool) -> anyhow::Result<()> {
    if json {
        for row in rows {
            outln!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    outln!(
        "{:<12} {:<20} {:<30} {:<20} IMAGE",
        "APP",
        "SERVICE",
        "STATUS",
        "PORTS"
    );
    for r in rows {
        outln!(
            "{:<12} {:<20} {:<30} {:<20} {}",
            r.app,
            r.service,
            r.status,
            r.ports.join(","),
            r.image
        );
    }
    Ok(())
}
