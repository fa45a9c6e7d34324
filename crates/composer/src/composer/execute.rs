//! Executing one step of a plan on the engine, reported as events.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::Composer;
use super::images::PulledImage;
use crate::engine;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::fetch::{self, EngineKind};
use crate::model::AppState;
use crate::planner::Step;

/// What the steps of one batch run against.
#[derive(Clone, Copy)]
pub(super) struct Batch<'a> {
    /// The app as it was when the batch was planned.
    pub current: &'a AppState,
    /// Container ids by service name (for `service:X` network modes).
    pub container_ids: &'a HashMap<String, String>,
    pub kind: EngineKind,
    pub cancel: &'a CancellationToken,
}

impl Composer {
    pub(super) fn started(&self, step: &Step) {
        self.emitter.emit(Event::StepStarted {
            action: step.action().to_owned(),
            subject: step.subject(),
        });
    }

    pub(super) fn finished(&self, step: &Step) {
        self.emitter.emit(Event::StepFinished {
            action: step.action().to_owned(),
            subject: step.subject(),
        });
    }

    pub(super) fn failed(&self, step: &Step, e: &Error) {
        self.emitter.emit(Event::StepFailed {
            action: step.action().to_owned(),
            subject: step.subject(),
            error: e.to_string(),
        });
    }

    /// Runs `step`, announcing its start and its end or failure.
    pub(super) async fn execute(&self, step: &Step, batch: &Batch<'_>) -> Result<()> {
        self.started(step);
        let result = self.execute_inner(step, batch).await;
        match &result {
            Ok(()) => self.finished(step),
            Err(e) => self.failed(step, e),
        }
        result
    }

    async fn execute_inner(&self, step: &Step, batch: &Batch<'_>) -> Result<()> {
        let Batch {
            current,
            container_ids,
            kind,
            cancel,
        } = *batch;
        let d = &self.docker;
        let device = &self.options.device;
        let lock_dir = |s: &str| self.locks.service_dir(current.app_id, s);
        match step {
            Step::Fetch { service, image } => {
                self.fetch(service, image, current, kind, cancel).await
            }
            Step::Kill { current: s } => engine::kill(d, s).await,
            Step::Stop { current: s } => engine::stop(d, s).await,
            Step::Remove { current: s } => engine::remove(d, s, true).await,
            Step::Start {
                target,
                container_id,
            } => {
                let dir = lock_dir(&target.name)?;
                let id = container_id.as_deref();
                engine::start(d, target, id, &dir, device, container_ids).await
            }
            Step::UpdateMetadata { current: c, target } => {
                engine::update_metadata(d, c, target).await
            }
            Step::Handover { current: c, target } => {
                let dir = lock_dir(&target.name)?;
                engine::handover(d, c, target, &dir, device, container_ids, cancel).await
            }
            Step::CreateNetwork { network } => engine::create_network(d, network).await,
            Step::RemoveNetwork { network } => engine::remove_network(d, network).await,
            Step::CreateVolume { volume } => {
                engine::create_volume(d, volume, &current.app_uuid).await
            }
            Step::RemoveVolume { volume } => engine::remove_volume(d, volume).await,
            Step::RemoveImage { image } => self.remove_image(image, current.app_id).await,
            Step::TakeLock { .. } | Step::ReleaseLock | Step::Noop => Ok(()),
        }
    }

    /// Fetches `image` for `service` (a delta from the image the service runs or last
    /// pulled, when deltas are on), with its progress in the state meanwhile, and records
    /// the pull.
    async fn fetch(
        &self,
        service: &str,
        image: &str,
        current: &AppState,
        kind: EngineKind,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let source = self.delta_source(service, current);
        if let Ok(mut p) = self.emitter.progress.lock() {
            p.insert(service.to_owned(), (image.to_owned(), 0));
        }
        let job = fetch::Fetch {
            service,
            image,
            delta_source: source.as_deref(),
        };
        let result = fetch::fetch(
            &self.docker,
            &job,
            &self.options,
            kind,
            &self.emitter,
            cancel,
        )
        .await;
        if let Ok(mut p) = self.emitter.progress.lock() {
            p.remove(service);
        }
        result?;
        let mut records = self.pulled(current.app_id);
        let record = PulledImage {
            service: service.to_owned(),
            image: image.to_owned(),
        };
        if !records.contains(&record) {
            records.push(record);
            self.save_pulled(current.app_id, &records)?;
        }
        Ok(())
    }

    /// The image a delta for `service` starts from: the one its container runs, else the
    /// one last pulled for it.
    fn delta_source(&self, service: &str, current: &AppState) -> Option<String> {
        current
            .services
            .iter()
            .find(|s| s.name == service)
            .map(|s| s.config.image.clone())
            .or_else(|| {
                self.pulled(current.app_id)
                    .into_iter()
                    .find(|r| r.service == service)
                    .map(|r| r.image)
            })
    }

    /// Removes `image` from the engine and from the record of pulled images.
    async fn remove_image(&self, image: &str, app_id: u64) -> Result<()> {
        engine::remove_image(&self.docker, image).await?;
        let records: Vec<PulledImage> = self
            .pulled(app_id)
            .into_iter()
            .filter(|r| r.image != image)
            .collect();
        self.save_pulled(app_id, &records)
    }
}
