//! The reported state of the app: what runs, read back from the engine, and what is being
//! downloaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Composer;
use crate::engine;
use crate::error::Result;
use crate::model::{AppState, ServiceStatus};

/// The reported state of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentState {
    /// The numeric app id, when known.
    pub app_id: Option<u64>,
    /// The app uuid, when known.
    pub app_uuid: Option<String>,
    /// The release the app runs.
    pub commit: Option<String>,
    /// `Idle`, `Downloading` or `Updating`.
    pub status: String,
    /// Services by name (the newest container of each).
    pub services: BTreeMap<String, ServiceReport>,
    /// Engine names of the app's networks.
    pub networks: Vec<String>,
    /// Engine names of the app's volumes.
    pub volumes: Vec<String>,
}

/// One service of [`CurrentState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    /// The image reference.
    pub image: String,
    /// The status.
    pub status: ServiceStatus,
    /// The container id.
    pub container_id: Option<String>,
    /// The release of the container.
    pub commit: Option<String>,
    /// The release id.
    pub release_id: Option<u64>,
    /// Download progress in percent while the image is fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_progress: Option<u8>,
}

/// Download progress by service: the image and the percent fetched.
type Downloads = BTreeMap<String, (String, u8)>;

impl Composer {
    /// The app's current state, from the engine's labels.
    pub async fn state(&self) -> Result<CurrentState> {
        let app = self.app_ref();
        let current = engine::read_app(&self.docker, &app).await?;
        let progress: Downloads = self
            .emitter
            .progress
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        let mut services = service_reports(&current);
        add_downloads(&mut services, &progress);
        let mut status = self.status.lock().map(|s| *s).unwrap_or("Idle");
        if status == "Updating" && !progress.is_empty() {
            status = "Downloading";
        }
        Ok(CurrentState {
            app_id: (current.app_id != 0).then_some(current.app_id).or(app.id),
            app_uuid: Some(current.app_uuid.clone())
                .filter(|u| !u.is_empty())
                .or(app.uuid),
            commit: current.commit,
            status: status.to_owned(),
            services,
            networks: current
                .networks
                .iter()
                .map(|n| n.docker_name.clone())
                .collect(),
            volumes: current
                .volumes
                .iter()
                .map(|v| v.docker_name.clone())
                .collect(),
        })
    }
}

/// The report of each service's newest container.
fn service_reports(current: &AppState) -> BTreeMap<String, ServiceReport> {
    let mut by_age = current.services.clone();
    by_age.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    by_age
        .into_iter()
        .map(|s| {
            let report = ServiceReport {
                image: s.image_name.clone(),
                status: s.status.clone(),
                container_id: s.container_id.clone(),
                commit: Some(s.commit.clone()),
                release_id: Some(s.release_id),
                download_progress: None,
            };
            (s.name, report)
        })
        .collect()
}

/// The download progress of each service being fetched (a service without a container yet
/// is reported `Downloading`).
fn add_downloads(services: &mut BTreeMap<String, ServiceReport>, progress: &Downloads) {
    for (service, (image, percent)) in progress {
        let entry = services
            .entry(service.clone())
            .or_insert_with(|| ServiceReport {
                image: image.clone(),
                status: ServiceStatus::Downloading,
                container_id: None,
                commit: None,
                release_id: None,
                download_progress: None,
            });
        entry.download_progress = Some(*percent);
    }
}
