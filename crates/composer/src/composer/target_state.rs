//! The target of an update: the release's services normalised (contracts checked first),
//! networks and volumes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Composer;
use crate::config::{self, AppContext, normalise_image_name};
use crate::contract;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{AppState, labels};
use crate::resources::{target_network, target_volume};
use crate::target::{TargetApp, TargetRelease};

/// The normalised target app, the target images present, and warnings.
pub(super) type Target = (AppState, BTreeSet<String>, Vec<String>);

impl Composer {
    /// Validates every service's contract; returns the optional services to skip.
    pub(super) fn check_contracts(&self, release: &TargetRelease) -> Result<BTreeSet<String>> {
        let mut skipped = BTreeSet::new();
        for (name, svc) in &release.services {
            for req in contract::requirements(svc) {
                if let Err(reason) = contract::check(&req, &self.options.device) {
                    let optional = svc
                        .labels
                        .get(labels::OPTIONAL)
                        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "on"));
                    if optional {
                        self.emitter.emit(Event::ServiceSkipped {
                            service: name.clone(),
                            reason: format!("{req}: {reason}"),
                        });
                        skipped.insert(name.clone());
                        break;
                    }
                    return Err(Error::Contract {
                        service: name.clone(),
                        requirement: req.to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(skipped)
    }

    /// The normalised target app, the target images present, and warnings.
    pub(super) async fn target_state(
        &self,
        app: &TargetApp,
        commit: &str,
        release: &TargetRelease,
        skipped: &BTreeSet<String>,
    ) -> Result<Target> {
        let ctx = AppContext {
            app_id: app.id,
            app_uuid: &app.uuid,
            app_name: &app.name,
            commit,
            release_id: release.id,
            options: &self.options,
        };
        let mut state = AppState {
            app_id: app.id,
            app_uuid: app.uuid.clone(),
            commit: Some(commit.to_owned()),
            ..AppState::default()
        };
        let mut available = BTreeSet::new();
        let mut warnings = Vec::new();
        for (name, svc) in release
            .services
            .iter()
            .filter(|(n, _)| !skipped.contains(*n))
        {
            let image_name = normalise_image_name(&svc.image);
            let image = self.inspect_image(&image_name).await?;
            if image.is_some() {
                available.insert(image_name);
            }
            let (service, w) = config::target_service(name, svc, &ctx, image.as_ref())?;
            warnings.extend(w);
            state.services.push(service);
        }
        add_resources(&mut state, &ctx, release);
        Ok((state, available, warnings))
    }
}

/// The release's networks (and the default one, which it need not name) and volumes.
fn add_resources(state: &mut AppState, ctx: &AppContext<'_>, release: &TargetRelease) {
    for (name, value) in &release.networks {
        state.networks.push(target_network(ctx, name, value, false));
    }
    if !release.networks.contains_key("default") {
        let host_only = state
            .services
            .iter()
            .all(|s| s.config.network_mode == "host");
        state
            .networks
            .push(target_network(ctx, "default", &Value::Null, host_only));
    }
    for (name, value) in &release.volumes {
        state.volumes.push(target_volume(ctx, name, value));
    }
}
