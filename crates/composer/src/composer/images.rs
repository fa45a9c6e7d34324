//! The images the composer pulled for an app, recorded in the state directory so that it may
//! remove them when nothing uses them any more.

use std::path::PathBuf;

use bollard::models::ImageInspect;
use serde::{Deserialize, Serialize};

use super::Composer;
use crate::dry_run;
use crate::error::{Error, Result, engine as engine_err, is_not_found};
use crate::model::AppState;
use crate::planner::UnusedImage;

/// An image the composer pulled, recorded so that it may remove it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PulledImage {
    pub service: String,
    pub image: String,
}

impl Composer {
    fn pulled_path(&self, app_id: u64) -> PathBuf {
        self.options.state_dir.join(format!("images-{app_id}.json"))
    }

    /// The record of the app's pulled images (none when it cannot be read).
    pub(super) fn pulled(&self, app_id: u64) -> Vec<PulledImage> {
        std::fs::read_to_string(self.pulled_path(app_id))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub(super) fn save_pulled(&self, app_id: u64, records: &[PulledImage]) -> Result<()> {
        let path = self.pulled_path(app_id);
        let fail = |message: String| Error::File {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(&self.options.state_dir).map_err(|e| fail(e.to_string()))?;
        let text = serde_json::to_string_pretty(records).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| fail(e.to_string()))
    }

    /// Pulled images no current container uses and the target does not name.
    pub(super) async fn unused_images(
        &self,
        current: &AppState,
        target: Option<&AppState>,
    ) -> Result<Vec<UnusedImage>> {
        let pulled = self.pulled_images(current, target).await?;
        Ok(pulled
            .into_iter()
            .filter(|p| !current.services.iter().any(|s| s.config.image == p.id))
            .map(|p| p.image)
            .collect())
    }

    /// The images the composer pulled for the app that are on the engine and that the
    /// target does not name, with their engine ids.
    pub(super) async fn pulled_images(
        &self,
        current: &AppState,
        target: Option<&AppState>,
    ) -> Result<Vec<dry_run::Pulled>> {
        let mut out = Vec::new();
        for r in self.pulled(current.app_id) {
            if target.is_some_and(|t| t.services.iter().any(|s| s.image_name == r.image)) {
                continue;
            }
            let Some(inspect) = self.inspect_image(&r.image).await? else {
                continue;
            };
            out.push(dry_run::Pulled {
                image: UnusedImage {
                    service: r.service,
                    image: r.image,
                },
                id: inspect.id.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// The image `name`, when the engine has it.
    pub(super) async fn inspect_image(&self, name: &str) -> Result<Option<ImageInspect>> {
        match self.docker.inspect_image(name).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(format!("inspecting image {name}"))(e)),
        }
    }
}
