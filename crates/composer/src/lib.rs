//! The device side of balena-compose: bring an engine to an app's target state.
//!
//! A [`Composer`] manages one app on one engine. [`Composer::state`] reads the app back from
//! the engine's labels (no local database); [`Composer::update`] plans steps with the pure
//! [`planner::plan`] and applies them until the engine holds the target: images first, then
//! networks and volumes, then services in `depends_on` order, honouring update strategies,
//! update locks and container contracts.
//!
//! ```
//! use composer::model::{AppState, Strategy};
//! use composer::planner::{plan, PlanContext, Step};
//! use composer::target::TargetState;
//!
//! let doc = r#"{"apps": {"a1b2": {"id": 1, "name": "demo", "releases": {"c0ffee": {"id": 2,
//!     "services": {"web": {"id": 3, "image_id": 4, "image": "example/web",
//!     "labels": {"io.balena.update.strategy": "kill-then-download"}}}}}}}}"#;
//! let target = TargetState::from_json(doc)?;
//! let (_, app) = target.find_app("demo").expect("the app is in the document");
//! let (commit, release) = app.release().expect("one release");
//! assert_eq!(commit, "c0ffee");
//! assert_eq!(release.services["web"].image, "example/web");
//! assert_eq!(Strategy::from_label(Some("kill-then-download")), Strategy::KillThenDownload);
//!
//! // Nothing current, nothing targeted: nothing to do.
//! assert_eq!(plan(&AppState::default(), &AppState::default(), &PlanContext::default()), Vec::<Step>::new());
//! # Ok::<(), composer::Error>(())
//! ```
#![deny(missing_docs)]

mod apps;
mod config;
pub mod contract;
mod dry_run;
mod engine;
mod error;
mod events;
mod fetch;
mod interrupt;
pub mod lock;
pub mod model;
mod names;
mod options;
pub mod planner;
pub mod release_state;
mod resources;
pub mod target;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use bollard::Docker;
use bollard::models::ImageInspect;
use bollard::query_parameters::LogsOptions;
use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

pub use apps::{AppSummary, list_apps};
pub use config::{normalise_image_name, parse_ports, shell_split};
pub use engine::AppRef;
pub use error::{Error, Result};
pub use events::Event;
pub use fetch::{EngineKind, detect_engine};
pub use interrupt::Interruption;
pub use names::{NAME_RULE, is_compose_name};
pub use options::{COMPATIBLE_SUPERVISOR_VERSION, DeltaOptions, DeviceFacts, Options};

use crate::config::AppContext;
use crate::error::{engine as engine_err, is_not_found};
use crate::events::Emitter;
use crate::lock::{ApplyLock, HeldLock, Locks};
use crate::model::{AppState, ServiceStatus, labels};
use crate::planner::{PlanContext, Step, UnusedImage};
use crate::resources::{target_network, target_volume};
use crate::target::{TargetApp, TargetRelease};

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
    /// Fail with [`Error::EngineBusy`] instead of waiting while another apply holds the
    /// engine's [`ApplyLock`].
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
    /// Fail with [`Error::EngineBusy`] instead of waiting while another apply holds the
    /// engine's [`ApplyLock`].
    pub no_wait: bool,
}

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

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// True for stderr.
    pub stderr: bool,
    /// The text, without the trailing newline.
    pub message: String,
}

/// Which output [`Composer::logs_with`] streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Keep streaming new output.
    pub follow: bool,
    /// Only the last this many lines (default: all).
    pub tail: Option<u64>,
    /// Only output since this Unix time, in seconds.
    pub since: Option<i32>,
    /// Prefix each line with the engine's RFC 3339 timestamp.
    pub timestamps: bool,
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

/// What `converge` works towards.
enum Goal<'a> {
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

/// An image the composer pulled, recorded so that it may remove it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PulledImage {
    service: String,
    image: String,
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

    /// The app's current state, from the engine's labels.
    pub async fn state(&self) -> Result<CurrentState> {
        let app = self.app_ref();
        let current = engine::read_app(&self.docker, &app).await?;
        let progress = self
            .emitter
            .progress
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        let mut services = BTreeMap::new();
        let mut sorted = current.services.clone();
        sorted.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        for s in sorted {
            services.insert(
                s.name.clone(),
                ServiceReport {
                    image: s.image_name.clone(),
                    status: s.status.clone(),
                    container_id: s.container_id.clone(),
                    commit: Some(s.commit.clone()),
                    release_id: Some(s.release_id),
                    download_progress: None,
                },
            );
        }
        for (service, (image, percent)) in &progress {
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

    /// Streams the output of the newest container of `service`.
    pub async fn logs(
        &self,
        service: &str,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogLine>>> {
        let query = LogQuery {
            follow,
            ..LogQuery::default()
        };
        self.logs_with(service, &query).await
    }

    /// Streams the output of the newest container of `service`, as `query` asks.
    pub async fn logs_with(
        &self,
        service: &str,
        query: &LogQuery,
    ) -> Result<BoxStream<'static, Result<LogLine>>> {
        let current = engine::read_app(&self.docker, &self.app_ref()).await?;
        let container = current
            .services
            .iter()
            .filter(|s| s.name == service)
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .and_then(|s| s.container_id.clone())
            .ok_or_else(|| Error::Container {
                container: service.to_owned(),
                message: "the service has no container".to_owned(),
            })?;
        let options = LogsOptions {
            follow: query.follow,
            stdout: true,
            stderr: true,
            tail: query
                .tail
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            since: query.since.unwrap_or(0),
            timestamps: query.timestamps,
            ..LogsOptions::default()
        };
        let docker = self.docker.clone();
        let context = format!("reading the logs of {service}");
        let stream = docker.logs(&container, Some(options)).map(move |item| {
            use bollard::container::LogOutput;
            match item {
                Ok(out) => {
                    let stderr = matches!(out, LogOutput::StdErr { .. });
                    let bytes = out.into_bytes();
                    let message = String::from_utf8_lossy(&bytes)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned();
                    Ok(LogLine { stderr, message })
                }
                Err(e) => Err(engine_err(context.clone())(e)),
            }
        });
        Ok(stream.boxed())
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

    /// Converges on `goal` (the caller holds the app's mutex) and returns the state reached:
    /// status `Updating` meanwhile, and any update lock taken on the way released at the
    /// end, whatever the outcome.
    async fn reach(
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
            last = steps
                .iter()
                .map(|s| format!("{} {}", s.action(), s.subject()))
                .collect::<Vec<_>>()
                .join("; ");
            // Lock steps first and alone: a refused lock must leave everything untouched.
            let mut others = Vec::new();
            for step in steps {
                match step {
                    Step::TakeLock { services } => {
                        self.started(&Step::TakeLock {
                            services: services.clone(),
                        });
                        let lock = self.locks.take(app_id, &services, force).inspect_err(|e| {
                            self.failed(
                                &Step::TakeLock {
                                    services: services.clone(),
                                },
                                e,
                            );
                        })?;
                        *held = Some(lock);
                        self.finished(&Step::TakeLock { services });
                    }
                    Step::ReleaseLock => {
                        self.started(&Step::ReleaseLock);
                        self.locks.release(app_id, held.take().unwrap_or_default());
                        self.finished(&Step::ReleaseLock);
                    }
                    other => others.push(other),
                }
            }
            if !others.is_empty() && others.iter().all(|s| *s == Step::Noop) {
                tokio::time::sleep(self.options.noop_delay).await;
                continue;
            }
            let container_ids: HashMap<String, String> = current
                .services
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.container_id.clone()?)))
                .collect();
            let others: Vec<Step> = others.into_iter().filter(|s| *s != Step::Noop).collect();
            let runs = others
                .iter()
                .map(|s| self.execute(s, &current, &container_ids, kind, &cancel));
            // Every step of the batch runs to its end (an interrupt waits for the steps in
            // flight); the ones that changed the engine are recorded for the report.
            let results = futures::future::join_all(runs).await;
            let mut first_error = None;
            for (step, r) in others.iter().zip(results) {
                match r {
                    Ok(()) if !matches!(step, Step::Fetch { .. }) => {
                        changes.push(format!("{} {}", step.action(), step.subject()));
                    }
                    Ok(()) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Err(Error::NotConverging {
            iterations: self.options.max_iterations,
            last,
        })
    }

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

    fn started(&self, step: &Step) {
        self.emitter.emit(Event::StepStarted {
            action: step.action().to_owned(),
            subject: step.subject(),
        });
    }
    fn finished(&self, step: &Step) {
        self.emitter.emit(Event::StepFinished {
            action: step.action().to_owned(),
            subject: step.subject(),
        });
    }
    fn failed(&self, step: &Step, e: &Error) {
        self.emitter.emit(Event::StepFailed {
            action: step.action().to_owned(),
            subject: step.subject(),
            error: e.to_string(),
        });
    }

    async fn execute(
        &self,
        step: &Step,
        current: &AppState,
        container_ids: &HashMap<String, String>,
        kind: EngineKind,
        cancel: &CancellationToken,
    ) -> Result<()> {
        self.started(step);
        let result = self
            .execute_inner(step, current, container_ids, kind, cancel)
            .await;
        match &result {
            Ok(()) => self.finished(step),
            Err(e) => self.failed(step, e),
        }
        result
    }

    async fn execute_inner(
        &self,
        step: &Step,
        current: &AppState,
        container_ids: &HashMap<String, String>,
        kind: EngineKind,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let d = &self.docker;
        let device = &self.options.device;
        let lock_dir = |s: &str| self.locks.service_dir(current.app_id, s);
        match step {
            Step::Fetch { service, image } => {
                let records = self.pulled(current.app_id);
                let source = current
                    .services
                    .iter()
                    .find(|s| s.name == *service)
                    .map(|s| s.config.image.clone())
                    .or_else(|| {
                        records
                            .iter()
                            .find(|r| r.service == *service)
                            .map(|r| r.image.clone())
                    });
                if let Ok(mut p) = self.emitter.progress.lock() {
                    p.insert(service.clone(), (image.clone(), 0));
                }
                let job = fetch::Fetch {
                    service,
                    image,
                    delta_source: source.as_deref(),
                };
                let result =
                    fetch::fetch(d, &job, &self.options, kind, &self.emitter, cancel).await;
                if let Ok(mut p) = self.emitter.progress.lock() {
                    p.remove(service);
                }
                result?;
                let mut records = self.pulled(current.app_id);
                let record = PulledImage {
                    service: service.clone(),
                    image: image.clone(),
                };
                if !records.contains(&record) {
                    records.push(record);
                    self.save_pulled(current.app_id, &records)?;
                }
                Ok(())
            }
            Step::Kill { current: s } => engine::kill(d, s).await,
            Step::Stop { current: s } => engine::stop(d, s).await,
            Step::Remove { current: s } => engine::remove(d, s, true).await,
            Step::Start {
                target,
                container_id,
            } => {
                engine::start(
                    d,
                    target,
                    container_id.as_deref(),
                    &lock_dir(&target.name)?,
                    device,
                    container_ids,
                )
                .await
            }
            Step::UpdateMetadata { current: c, target } => {
                engine::update_metadata(d, c, target).await
            }
            Step::Handover { current: c, target } => {
                engine::handover(
                    d,
                    c,
                    target,
                    &lock_dir(&target.name)?,
                    device,
                    container_ids,
                    cancel,
                )
                .await
            }
            Step::CreateNetwork { network } => engine::create_network(d, network).await,
            Step::RemoveNetwork { network } => engine::remove_network(d, network).await,
            Step::CreateVolume { volume } => {
                engine::create_volume(d, volume, &current.app_uuid).await
            }
            Step::RemoveVolume { volume } => engine::remove_volume(d, volume).await,
            Step::RemoveImage { image } => {
                engine::remove_image(d, image).await?;
                let records: Vec<PulledImage> = self
                    .pulled(current.app_id)
                    .into_iter()
                    .filter(|r| r.image != *image)
                    .collect();
                self.save_pulled(current.app_id, &records)
            }
            Step::TakeLock { .. } | Step::ReleaseLock | Step::Noop => Ok(()),
        }
    }

    fn pulled_path(&self, app_id: u64) -> PathBuf {
        self.options.state_dir.join(format!("images-{app_id}.json"))
    }

    fn pulled(&self, app_id: u64) -> Vec<PulledImage> {
        std::fs::read_to_string(self.pulled_path(app_id))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn save_pulled(&self, app_id: u64, records: &[PulledImage]) -> Result<()> {
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
    async fn unused_images(
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
    async fn pulled_images(
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

    async fn inspect_image(&self, name: &str) -> Result<Option<ImageInspect>> {
        match self.docker.inspect_image(name).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(format!("inspecting image {name}"))(e)),
        }
    }

    /// Validates every service's contract; returns the optional services to skip.
    fn check_contracts(&self, release: &TargetRelease) -> Result<BTreeSet<String>> {
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
    async fn target_state(
        &self,
        app: &TargetApp,
        commit: &str,
        release: &TargetRelease,
        skipped: &BTreeSet<String>,
    ) -> Result<(AppState, BTreeSet<String>, Vec<String>)> {
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
        for (name, value) in &release.networks {
            state
                .networks
                .push(target_network(&ctx, name, value, false));
        }
        if !release.networks.contains_key("default") {
            let host_only = state
                .services
                .iter()
                .all(|s| s.config.network_mode == "host");
            state
                .networks
                .push(target_network(&ctx, "default", &Value::Null, host_only));
        }
        for (name, value) in &release.volumes {
            state.volumes.push(target_volume(&ctx, name, value));
        }
        Ok((state, available, warnings))
    }
}
