//! Converging on a goal: plan a batch against the engine as it is, apply it, again, until
//! the planner has nothing left; an interrupt reports what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_util::sync::CancellationToken;

use super::Composer;
use super::execute::Batch;
use crate::engine;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::fetch::EngineKind;
use crate::interrupt::Interruption;
use crate::lock::HeldLock;
use crate::model::AppState;
use crate::planner::{self, PlanContext, Step};
use crate::resources;
use crate::target::{TargetApp, TargetRelease};

use super::state::CurrentState;

/// What `converge` works towards.
pub(super) enum Goal<'a> {
    Update {
        target: &'a TargetApp,
        commit: &'a str,
        release: &'a TargetRelease,
        skipped: &'a BTreeSet<String>,
    },
    Remove {
        keep_volumes: bool,
    },
}

/// A step as the reports name it: its action and subject.
fn describe(step: &Step) -> String {
    format!("{} {}", step.action(), step.subject())
}

impl Composer {
    /// Converges on `goal` (the caller holds the app's mutex) and returns the state reached:
    /// status `Updating` meanwhile, and any update lock taken on the way released at the
    /// end, whatever the outcome.
    pub(super) async fn reach(
        &self,
        app_id: u64,
        goal: &Goal<'_>,
        force: bool,
        cancel: CancellationToken,
    ) -> Result<CurrentState> {
        self.set_status("Updating");
        let mut held = None;
        let mut changes = Vec::new();
        let result = self
            .converge(goal, &mut held, force, cancel, &mut changes)
            .await;
        if let Some(h) = held.take() {
            self.locks.release(app_id, h);
        }
        self.set_status("Idle");
        if let Ok(mut p) = self.emitter.progress.lock() {
            p.clear();
        }
        match result {
            Err(Error::Cancelled) => Err(self.interruption(goal, changes).await),
            other => other,
        }?;
        self.state().await
    }

    /// The report of an interrupt after `changes`, from the app's state read back now.
    async fn interruption(&self, goal: &Goal<'_>, changes: Vec<String>) -> Error {
        let app_ref = self.app_ref();
        let (app, commit, services) = match goal {
            Goal::Update {
                target,
                commit,
                release,
                skipped,
            } => (
                Some(target.name.clone()).filter(|n| !n.is_empty()),
                Some(*commit),
                release
                    .services
                    .keys()
                    .filter(|s| !skipped.contains(*s))
                    .cloned()
                    .collect(),
            ),
            Goal::Remove { .. } => (None, None, Vec::new()),
        };
        let app = app
            .or_else(|| app_ref.id.map(|i| i.to_string()))
            .or_else(|| app_ref.uuid.clone())
            .unwrap_or_default();
        let report = match engine::read_app(&self.docker, &app_ref).await {
            Ok(current) => Interruption::new(app, changes, &current, commit, &services),
            Err(e) => Interruption {
                app,
                changes,
                services: BTreeMap::new(),
                unknown: Some(e.to_string()),
            },
        };
        Error::Interrupted(Box::new(report))
    }

    /// Plans and applies batches until the planner has nothing left.
    async fn converge(
        &self,
        goal: &Goal<'_>,
        held: &mut Option<HeldLock>,
        force: bool,
        cancel: CancellationToken,
        changes: &mut Vec<String>,
    ) -> Result<()> {
        let kind = self.engine_kind().await?;
        let mut last = String::new();
        for _ in 0..self.options.max_iterations {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let current = engine::read_app(&self.docker, &self.app_ref()).await?;
            let app_id = current.app_id;
            let ctx = PlanContext {
                lock_held: held.is_some(),
                leftover_locks: held.is_none() && !self.locks.leftovers(app_id).is_empty(),
                ..PlanContext::default()
            };
            let steps = self.plan_next(goal, &current, ctx).await?;
            if steps.is_empty() {
                return Ok(());
            }
            last = steps.iter().map(describe).collect::<Vec<_>>().join("; ");
            let others = self.run_lock_steps(steps, app_id, held, force)?;
            if !others.is_empty() && others.iter().all(|s| *s == Step::Noop) {
                tokio::time::sleep(self.options.noop_delay).await;
                continue;
            }
            self.run_batch(others, &current, kind, &cancel, changes)
                .await?;
        }
        Err(Error::NotConverging {
            iterations: self.options.max_iterations,
            last,
        })
    }

    /// Runs the lock steps of a batch, first and alone (a refused lock must leave
    /// everything untouched), and returns the other steps.
    fn run_lock_steps(
        &self,
        steps: Vec<Step>,
        app_id: u64,
        held: &mut Option<HeldLock>,
        force: bool,
    ) -> Result<Vec<Step>> {
        let mut others = Vec::new();
        for step in steps {
            match step {
                Step::TakeLock { services } => {
                    *held = Some(self.take_lock(app_id, services, force)?);
                }
                Step::ReleaseLock => {
                    self.started(&Step::ReleaseLock);
                    self.locks.release(app_id, held.take().unwrap_or_default());
                    self.finished(&Step::ReleaseLock);
                }
                other => others.push(other),
            }
        }
        Ok(others)
    }

    /// Takes the update locks of `services`, reporting the step.
    fn take_lock(&self, app_id: u64, services: Vec<String>, force: bool) -> Result<HeldLock> {
        let step = Step::TakeLock {
            services: services.clone(),
        };
        self.started(&step);
        let lock = self
            .locks
            .take(app_id, &services, force)
            .inspect_err(|e| self.failed(&step, e))?;
        self.finished(&step);
        Ok(lock)
    }

    /// Runs the steps of a batch together. Every step runs to its end (an interrupt waits
    /// for the steps in flight); the ones that changed the engine are recorded in `changes`
    /// and the first error is returned.
    async fn run_batch(
        &self,
        steps: Vec<Step>,
        current: &AppState,
        kind: EngineKind,
        cancel: &CancellationToken,
        changes: &mut Vec<String>,
    ) -> Result<()> {
        let container_ids: HashMap<String, String> = current
            .services
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.container_id.clone()?)))
            .collect();
        let batch = Batch {
            current,
            container_ids: &container_ids,
            kind,
            cancel,
        };
        let steps: Vec<Step> = steps.into_iter().filter(|s| *s != Step::Noop).collect();
        let runs = steps.iter().map(|s| self.execute(s, &batch));
        let results = futures::future::join_all(runs).await;
        let mut first_error = None;
        for (step, r) in steps.iter().zip(results) {
            match r {
                Ok(()) if !matches!(step, Step::Fetch { .. }) => changes.push(describe(step)),
                Ok(()) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The next batch of steps towards `goal`.
    async fn plan_next(
        &self,
        goal: &Goal<'_>,
        current: &AppState,
        mut ctx: PlanContext,
    ) -> Result<Vec<Step>> {
        match goal {
            Goal::Update {
                target,
                commit,
                release,
                skipped,
            } => {
                let (target_state, available, warnings) =
                    self.target_state(target, commit, release, skipped).await?;
                for message in warnings {
                    self.emitter.emit(Event::Warning { message });
                }
                resources::refuse_foreign(&self.docker, current, &target_state).await?;
                ctx.available_images = available;
                ctx.unused_images = self.unused_images(current, Some(&target_state)).await?;
                Ok(planner::plan(current, &target_state, &ctx))
            }
            Goal::Remove { keep_volumes } => {
                ctx.unused_images = self.unused_images(current, None).await?;
                Ok(planner::plan_removal(current, &ctx, *keep_volumes))
            }
        }
    }
}
