//! [`Composer`]: one app on one engine, brought to a target release or removed.
//!
//! Here are the entry points (`update`, `remove`, their dry runs) and the locks they take;
//! `converge` plans and applies batches until the engine holds the goal, `execute` runs one
//! step, `target_state` normalises a target release, `images` keeps the record of pulled
//! images, `state` reports the app, and `logs` streams a service's output.

mod converge;
mod execute;
mod images;
mod logs;
mod state;
mod target_state;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use bollard::Docker;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

pub use logs::{LogLine, LogQuery};
pub use state::{CurrentState, ServiceReport};

use crate::dry_run;
use crate::engine::{self, AppRef};
use crate::error::Result;
use crate::events::{Emitter, Event};
use crate::fetch::{EngineKind, detect_engine};
use crate::lock::{ApplyLock, Locks};
use crate::options::Options;
use crate::planner::{self, PlanContext, Step};
use crate::resources;
use crate::target::TargetApp;
use converge::Goal;

/// An app, by numeric id or uuid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppId {
    /// The numeric app id.
    Id(u64),
    /// The app uuid.
    Uuid(String),
}

impl FromStr for AppId {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(s.parse()
            .map_or_else(|_| AppId::Uuid(s.to_owned()), AppId::Id))
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppId::Id(id) => write!(f, "{id}"),
            AppId::Uuid(u) => f.write_str(u),
        }
    }
}

/// Options of one update.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Take update locks even when the user holds them.
    pub force: bool,
    /// Cancels the update between steps and during fetches.
    pub cancel: Option<CancellationToken>,
    /// Fail with [`Error::EngineBusy`](crate::Error::EngineBusy) instead of waiting while
    /// another apply holds the engine's [`ApplyLock`].
    pub no_wait: bool,
}

/// Options of an app removal.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// Take update locks even when the user holds them.
    pub force: bool,
    /// Keep the app's volumes (data).
    pub keep_volumes: bool,
    /// Cancels the removal between steps.
    pub cancel: Option<CancellationToken>,
    /// Fail with [`Error::EngineBusy`](crate::Error::EngineBusy) instead of waiting while
    /// another apply holds the engine's [`ApplyLock`].
    pub no_wait: bool,
}

/// One app on one engine.
#[derive(Debug)]
pub struct Composer {
    docker: Docker,
    app: Mutex<AppRef>,
    options: Options,
    locks: Locks,
    emitter: Emitter,
    status: Arc<Mutex<&'static str>>,
    engine: tokio::sync::OnceCell<EngineKind>,
}

/// One in-process update per app at a time, across composers.
static APP_MUTEXES: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn app_mutex(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = APP_MUTEXES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(key.to_owned()).or_default().clone()
}

impl Composer {
    /// A composer for `app` on `docker`.
    pub fn new(docker: Docker, app: AppId, options: Options) -> Self {
        let app = match app {
            AppId::Id(id) => AppRef {
                id: Some(id),
                uuid: None,
            },
            AppId::Uuid(u) => AppRef {
                id: None,
                uuid: Some(u),
            },
        };
        let locks = Locks::new(options.lock_root.clone(), options.lock_uid);
        Self {
            docker,
            app: Mutex::new(app),
            options,
            locks,
            emitter: Emitter::default(),
            status: Arc::new(Mutex::new("Idle")),
            engine: tokio::sync::OnceCell::new(),
        }
    }

    /// Sends progress events to `tx`.
    pub fn with_events(mut self, tx: UnboundedSender<Event>) -> Self {
        self.emitter.tx = Some(tx);
        self
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    fn app_ref(&self) -> AppRef {
        self.app.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn set_status(&self, s: &'static str) {
        if let Ok(mut st) = self.status.lock() {
            *st = s;
        }
    }

    /// The engine kind, asked once.
    pub async fn engine_kind(&self) -> Result<EngineKind> {
        self.engine
            .get_or_try_init(|| detect_engine(&self.docker))
            .await
            .copied()
    }

    /// Applies release `commit` of `target` and returns the state reached.
    pub async fn update(
        &self,
        commit: &str,
        target: &TargetApp,
        opts: UpdateOptions,
    ) -> Result<CurrentState> {
        let release = target.checked_release(commit)?;
        self.adopt(target);
        let cancel = opts.cancel.unwrap_or_default();
        let _engine = self.apply_lock(opts.no_wait, &cancel).await?;
        let mutex = app_mutex(&target.id.to_string());
        let _guard = mutex.lock().await;
        let skipped = self.check_contracts(release)?;
        let goal = Goal::Update {
            target,
            commit,
            release,
            skipped: &skipped,
        };
        self.reach(target.id, &goal, opts.force, cancel).await
    }

    /// The app is the target's: its id and uuid.
    fn adopt(&self, target: &TargetApp) {
        if let Ok(mut app) = self.app.lock() {
            app.id = Some(target.id);
            if !target.uuid.is_empty() {
                app.uuid = Some(target.uuid.clone());
            }
        }
    }

    /// The steps [`Composer::update`] would take now, without taking any (a dry run): the
    /// planner run batch after batch against a model of the engine (`dry_run.rs`). Update
    /// locks are not tried: a user's lock still makes the real update wait or fail.
    pub async fn plan_update(&self, commit: &str, target: &TargetApp) -> Result<Vec<Step>> {
        let release = target.checked_release(commit)?;
        self.adopt(target);
        let skipped = self.check_contracts(release)?;
        let current = engine::read_app(&self.docker, &self.app_ref()).await?;
        let (goal, available, _) = self.target_state(target, commit, release, &skipped).await?;
        resources::refuse_foreign(&self.docker, &current, &goal).await?;
        let pulled = self.pulled_images(&current, Some(&goal)).await?;
        let ctx = PlanContext {
            available_images: available,
            leftover_locks: !self.locks.leftovers(current.app_id).is_empty(),
            ..PlanContext::default()
        };
        let max = self.options.max_iterations;
        Ok(dry_run::simulate(current, ctx, pulled, max, |c, ctx| {
            planner::plan(c, &goal, ctx)
        }))
    }

    /// The steps [`Composer::remove`] would take now, without taking any (a dry run).
    pub async fn plan_remove(&self, keep_volumes: bool) -> Result<Vec<Step>> {
        let current = engine::read_app(&self.docker, &self.app_ref()).await?;
        let pulled = self.pulled_images(&current, None).await?;
        let ctx = PlanContext {
            leftover_locks: !self.locks.leftovers(current.app_id).is_empty(),
            ..PlanContext::default()
        };
        let max = self.options.max_iterations;
        Ok(dry_run::simulate(current, ctx, pulled, max, |c, ctx| {
            planner::plan_removal(c, ctx, keep_volumes)
        }))
    }

    /// Removes the app: its containers, networks and (unless kept) volumes.
    pub async fn remove(&self, opts: RemoveOptions) -> Result<CurrentState> {
        let cancel = opts.cancel.unwrap_or_default();
        let _engine = self.apply_lock(opts.no_wait, &cancel).await?;
        let app = self.app_ref();
        let current = engine::read_app(&self.docker, &app).await?;
        let app_id = current.app_id;
        let mutex = app_mutex(&app_id.to_string());
        let _guard = mutex.lock().await;
        let goal = Goal::Remove {
            keep_volumes: opts.keep_volumes,
        };
        self.reach(app_id, &goal, opts.force, cancel).await
    }

    /// Takes the engine's apply lock (one apply per engine, across processes), waiting for
    /// it unless `no_wait`; announces the wait once with [`Event::WaitingForEngine`].
    async fn apply_lock(&self, no_wait: bool, cancel: &CancellationToken) -> Result<ApplyLock> {
        let on_wait = |pid| self.emitter.emit(Event::WaitingForEngine { pid });
        ApplyLock::take(&self.options.state_dir, no_wait, cancel, on_wait).await
    }
}
