//! A dry run: the steps an update or removal would take, found by running the planner against
//! a model of the engine that each planned step changes as executing it would. The executor
//! re-plans after every batch from what the engine then holds; the model stands in for the
//! engine so that later batches can be planned without touching anything.

use crate::model::{AppState, ServiceStatus};
use crate::planner::{PlanContext, Step, UnusedImage};

/// An image the composer pulled for the app that the target does not name, with its engine
/// id: it becomes a removal candidate once no container uses it (as `unused_images` decides).
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    pub(crate) image: UnusedImage,
    pub(crate) id: String,
}

/// The engine as the planner sees it, changed by planned steps instead of executed ones.
struct Model {
    current: AppState,
    ctx: PlanContext,
    pulled: Vec<Pulled>,
}

/// Every step, batch after batch, until the planner has nothing left, plans only waits
/// (`noop`: something in flight, which a model never has), or `max_batches` pass. Noops are
/// left out: the executor does not run them either.
pub(crate) fn simulate(
    current: AppState,
    ctx: PlanContext,
    pulled: Vec<Pulled>,
    max_batches: usize,
    plan: impl Fn(&AppState, &PlanContext) -> Vec<Step>,
) -> Vec<Step> {
    let mut model = Model {
        current,
        ctx,
        pulled,
    };
    let mut taken = Vec::new();
    for _ in 0..max_batches {
        model.refresh_unused();
        let batch: Vec<Step> = plan(&model.current, &model.ctx)
            .into_iter()
            .filter(|s| *s != Step::Noop)
            .collect();
        if batch.is_empty() {
            break;
        }
        for step in &batch {
            model.apply(step);
        }
        taken.extend(batch);
    }
    taken
}

impl Model {
    /// The removal candidates now: pulled images no container of the model uses.
    fn refresh_unused(&mut self) {
        let current = &self.current;
        self.ctx.unused_images = self
            .pulled
            .iter()
            .filter(|p| !current.services.iter().any(|s| s.config.image == p.id))
            .map(|p| p.image.clone())
            .collect();
    }

    fn apply(&mut self, step: &Step) {
        let services = &mut self.current.services;
        match step {
            Step::Fetch { image, .. } => {
                self.ctx.available_images.insert(image.clone());
            }
            Step::Kill { current } | Step::Remove { current } => {
                services.retain(|s| s != current.as_ref());
            }
            Step::Stop { current } => {
                for s in services.iter_mut().filter(|s| *s == current.as_ref()) {
                    s.status = ServiceStatus::Exited;
                }
            }
            Step::Start {
                container_id: Some(id),
                ..
            } => {
                for s in services.iter_mut() {
                    if s.container_id.as_deref() == Some(id.as_str()) {
                        s.status = ServiceStatus::Running;
                    }
                }
            }
            Step::Start { target, .. } => services.push(running(target)),
            Step::UpdateMetadata { current, target } | Step::Handover { current, target } => {
                services.retain(|s| s != current.as_ref());
                services.push(running(target));
            }
            Step::TakeLock { .. } => self.ctx.lock_held = true,
            Step::ReleaseLock => {
                self.ctx.lock_held = false;
                self.ctx.leftover_locks = false;
            }
            Step::CreateNetwork { network } => self.current.networks.push(network.clone()),
            Step::RemoveNetwork { network } => self.current.networks.retain(|n| n != network),
            Step::CreateVolume { volume } => self.current.volumes.push(volume.clone()),
            Step::RemoveVolume { volume } => self.current.volumes.retain(|v| v != volume),
            Step::RemoveImage { image } => self.pulled.retain(|p| p.image.image != *image),
            Step::Noop => {}
        }
    }
}

/// The container a start would leave: the target, running, with an id.
fn running(target: &crate::model::Service) -> crate::model::Service {
    let mut s = target.clone();
    s.status = ServiceStatus::Running;
    s.container_id.get_or_insert_with(|| "dry-run".to_owned());
    s
}
