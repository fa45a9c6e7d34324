//! Which apps the engine holds, read from the labels of the composer's containers and
//! networks: how the CLI finds an app named by its fleet name, or the only app there is.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListNetworksOptions,
};
use serde::Serialize;

use crate::error::{Result, engine, is_not_found};
use crate::model::labels;

/// An app with containers or networks on the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSummary {
    /// The numeric app id.
    pub id: u64,
    /// The app uuid (empty when no object of the app carries it).
    pub uuid: String,
    /// The app's (fleet's) name, as its containers were given it in `BALENA_APP_NAME`; `None`
    /// when the app has no container left.
    pub name: Option<String>,
}

impl AppSummary {
    /// Whether `text` names this app: its id, its uuid or its name.
    pub fn is_named(&self, text: &str) -> bool {
        text == self.id.to_string()
            || (!self.uuid.is_empty() && text == self.uuid)
            || self.name.as_deref() == Some(text)
    }
}

fn supervised() -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(
        "label".to_owned(),
        vec![labels::SUPERVISED.to_owned()],
    )]))
}

/// Every app of the composer on the engine, by id.
pub async fn list_apps(docker: &Docker) -> Result<Vec<AppSummary>> {
    let mut apps: BTreeMap<u64, AppSummary> = BTreeMap::new();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: supervised(),
            ..ListContainersOptions::default()
        }))
        .await
        .map_err(engine("listing the composer's containers"))?;
    for c in containers {
        let labels_ = c.labels.unwrap_or_default();
        let Some(id) = labels_.get(labels::APP_ID).and_then(|v| v.parse().ok()) else {
            continue;
        };
        let app = apps.entry(id).or_insert_with(|| AppSummary {
            id,
            uuid: labels_.get(labels::APP_UUID).cloned().unwrap_or_default(),
            name: None,
        });
        // The name lives only in the environment: one inspect per app is enough.
        if app.name.is_none()
            && let Some(container) = &c.id
        {
            app.name = app_name(docker, container).await?;
        }
    }
    add_network_apps(docker, &mut apps).await?;
    Ok(apps.into_values().collect())
}

/// Apps whose containers are gone but whose networks are left (an interrupted removal).
async fn add_network_apps(docker: &Docker, apps: &mut BTreeMap<u64, AppSummary>) -> Result<()> {
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: supervised(),
        }))
        .await
        .map_err(engine("listing the composer's networks"))?;
    for n in networks {
        let labels_ = n.labels.unwrap_or_default();
        let Some(id) = labels_.get(labels::APP_ID).and_then(|v| v.parse().ok()) else {
            continue;
        };
        let uuid = n
            .name
            .as_deref()
            .and_then(|name| name.split_once('_'))
            .map(|(uuid, _)| uuid.to_owned())
            .unwrap_or_default();
        apps.entry(id).or_insert(AppSummary {
            id,
            uuid,
            name: None,
        });
    }
    Ok(())
}

async fn app_name(docker: &Docker, container: &str) -> Result<Option<String>> {
    let inspect = match docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => i,
        // Removed between list and inspect.
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(engine(format!("inspecting container {container}"))(e)),
    };
    let env = inspect.config.and_then(|c| c.env).unwrap_or_default();
    Ok(env
        .iter()
        .find_map(|e| e.strip_prefix("BALENA_APP_NAME="))
        .map(str::to_owned))
}
