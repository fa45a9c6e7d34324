//! Running a [`Plan`] against a daemon: every service built or pulled, concurrently (at most
//! `jobs` at a time), each with its own outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use futures::future::join_all;
use platform::Arch;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::inputs::{self, Decision, Reuse};
use crate::plan::{Plan, Task, TaskKind};

mod build_task;

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// At most this many services build or pull at once (at least 1).
    pub jobs: usize,
    /// Stop every other service as soon as one fails.
    pub fail_fast: bool,
    /// Do not use the build cache.
    pub nocache: bool,
    /// Always pull `FROM` images, and the images of image-only services even when the daemon
    /// has them.
    pub pull: bool,
    /// Extra cache sources for every build.
    pub cache_from: Vec<String>,
    /// Registry credentials (the user's); the project's own `.balena/registry-secrets.*`
    /// override them per registry.
    pub registry_auth: build::RegistryAuth,
    /// The daemon's architecture (the host the builds run on).
    pub host_arch: Arch,
    /// Give up on one service after this long.
    pub timeout: Option<Duration>,
    /// Cancelled by the caller (Ctrl-C): every task stops.
    pub cancel: CancellationToken,
    /// The daemon as given to [`build::connect_to`] (`None`: the one the environment names);
    /// builds with secrets open connections of their own to it.
    pub daemon: Option<build::Daemon>,
    /// Which images on the daemon may stand in for a service's build or pull.
    pub reuse: Reuse,
    /// Build with the classic builder even when the daemon has BuildKit (docker's
    /// `DOCKER_BUILDKIT=0`, which the CLI reads). Builds with secrets still go through
    /// BuildKit, the only builder that can mount them, unless balenaEngine's volumes do.
    pub classic_builder: bool,
    /// Show BuildKit's own steps and `CACHED` lines too (`--progress plain`).
    pub plain_progress: bool,
}

/// How the builds with build secrets get them (decided once per run, before any build).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretsMode {
    /// No service has secrets.
    Unused,
    /// BuildKit secret mounts, served over a session (Docker 20.10 and later).
    BuildKit,
    /// balenaEngine's build volumes, as the reference: the secrets in a private directory on
    /// this machine mounted at `/run/secrets` (only for a daemon on a local socket).
    Volumes,
    /// Neither: why, for each service with secrets.
    Unsupported(String),
}

async fn secrets_mode(
    info: &Result<build::DaemonInfo, String>,
    plan: &Plan,
    options: &RunOptions,
) -> SecretsMode {
    let any = plan
        .tasks
        .iter()
        .any(|t| matches!(&t.kind, Ok(TaskKind::Build(task)) if !task.secrets.is_empty()));
    if !any {
        return SecretsMode::Unused;
    }
    let unsupported = |why: String| {
        SecretsMode::Unsupported(format!(
            "this service has build secrets (build-secrets in balena.yml), and {why}; it was not built"
        ))
    };
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            return unsupported(format!(
                "the Docker daemon did not say whether it can serve them: {e}"
            ));
        }
    };
    let daemon = match &options.daemon {
        Some(daemon) => Ok(daemon.clone()),
        None => build::Daemon::resolve(&build::DaemonFlags::default()),
    };
    let host = daemon
        .as_ref()
        .map_or_else(|_| build::docker_host(None), |d| d.host.clone());
    let local = matches!(
        daemon,
        Ok(build::Daemon {
            endpoint: build::Endpoint::Unix(_),
            ..
        })
    );
    if info.balena_engine && local {
        return SecretsMode::Volumes;
    }
    match info.buildkit_secrets() {
        Ok(()) => SecretsMode::BuildKit,
        Err(why) if info.balena_engine => unsupported(format!(
            "{why}; balenaEngine's build volumes would do, but only for a daemon on this machine (a unix socket), not {host}"
        )),
        Err(why) => unsupported(why.to_string()),
    }
}

/// Whether builds go through BuildKit: whenever the daemon has it, unless the caller asked
/// for the classic builder. Rewrite builds then bind-mount qemu into each `RUN`, so no layer
/// holds it.
pub fn uses_buildkit(info: Option<&build::DaemonInfo>, classic_builder: bool) -> bool {
    !classic_builder && info.is_some_and(build::DaemonInfo::buildkit)
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pulling an image.
    Pull {
        /// The reference.
        image: String,
    },
    /// Building.
    Build {
        /// The resolver that chose the Dockerfile.
        resolver: String,
        /// The Dockerfile's path in the context.
        dockerfile: String,
        /// Whether its `RUN`s run under qemu through the rewrite.
        emulated: bool,
    },
}

/// Progress of a run, in order per service.
#[derive(Debug, Clone)]
pub enum Event {
    /// A service starts (it got a job slot).
    Start {
        /// The service.
        service: String,
        /// What it does.
        action: Action,
    },
    /// Something happened in a service's build or pull. Output lines of emulated builds are
    /// shown without the qemu prefix.
    Progress {
        /// The service.
        service: String,
        /// What.
        event: build::BuildEvent,
    },
    /// Something the user should know that does not fail the service.
    Warning {
        /// The service.
        service: String,
        /// The text.
        message: String,
    },
    /// Whether an image on the daemon stands in for the service's build or pull, and why
    /// (only when [`RunOptions::reuse`] allows any; before its `Start`, if it builds).
    Reuse {
        /// The service.
        service: String,
        /// The image is used as it is: no context is sent, nothing pulled.
        reused: bool,
        /// `reusing <image> (…)` or `building <service> (…)`.
        message: String,
    },
    /// A service goes to a builder of a pool (only with [`crate::pool`]; before its `Start`).
    Builder {
        /// The service.
        service: String,
        /// The builder's name.
        builder: String,
        /// Why it is not on the builder it started on (it went down), when it moved.
        moved: Option<String>,
    },
    /// A service finished, well or not (boxed: an outcome is far larger than the other events).
    Done(Box<ServiceOutcome>),
}

/// How one service ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceOutcome {
    /// The service.
    pub service: String,
    /// The image name (the first tag for builds, the reference for pulls).
    pub image: Option<String>,
    /// The image id, `sha256:…`.
    pub image_id: Option<String>,
    /// The image size in bytes.
    pub size: Option<u64>,
    /// Pulled rather than built.
    pub external: bool,
    /// An image already on the daemon was used as it is (see [`Reuse`]).
    pub reused: bool,
    /// The resolver (project type) for builds; `external service` for pulls.
    pub resolver: String,
    /// The Dockerfile the daemon built (after rendering and transposition).
    #[serde(skip)]
    pub dockerfile: Option<String>,
    /// The service's container contract.
    pub contract: Option<serde_json::Value>,
    /// The build output, at most [`MAX_LOG_BYTES`], cut at a line.
    #[serde(skip)]
    pub log: String,
    /// How long the service took.
    pub duration: Duration,
    /// Why it failed.
    pub error: Option<String>,
    /// The builder of a pool that holds the image (only with [`crate::pool`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// Why the service is not on the builder it started on, when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<String>,
    /// Which of a run's several targets the image is for ([`crate::naming::target_suffix`]);
    /// `None` with a single target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The daemon's connection ended mid-build ([`build::Error::ConnectionLost`]).
    #[serde(skip)]
    pub connection_lost: bool,
}

impl ServiceOutcome {
    /// Whether the service succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    fn failed(service: &str, error: &Error) -> Self {
        ServiceOutcome {
            error: Some(error.to_string()),
            ..Self::new(service)
        }
    }

    /// A service's failure, in words.
    pub(crate) fn new_failed(service: &str, error: String) -> Self {
        ServiceOutcome {
            error: Some(error),
            ..Self::new(service)
        }
    }

    /// A service's outcome before anything is known: no image, no error.
    fn new(service: &str) -> Self {
        ServiceOutcome {
            service: service.to_owned(),
            image: None,
            image_id: None,
            size: None,
            external: false,
            reused: false,
            resolver: String::new(),
            dockerfile: None,
            contract: None,
            log: String::new(),
            duration: Duration::ZERO,
            error: None,
            builder: None,
            moved: None,
            target: None,
            connection_lost: false,
        }
    }
}

/// The most build output kept per service (as the balena CLI keeps for the image record).
pub const MAX_LOG_BYTES: usize = 512 * 1024;

/// Runs every task of `plan`; returns one outcome per service, in plan order. Never fails as
/// a whole: each failure is in its service's outcome.
pub async fn run(
    docker: &Docker,
    plan: &Plan,
    options: &RunOptions,
    events: mpsc::Sender<Event>,
) -> Vec<ServiceOutcome> {
    let tasks: Vec<&Task> = plan.tasks.iter().collect();
    run_tasks(docker, plan, &tasks, options, events).await
}

/// [`run`] for some of `plan`'s tasks: what a builder of a pool runs.
pub(crate) async fn run_tasks(
    docker: &Docker,
    plan: &Plan,
    tasks: &[&Task],
    options: &RunOptions,
    events: mpsc::Sender<Event>,
) -> Vec<ServiceOutcome> {
    let mut auth = options.registry_auth.clone();
    auth.merge(&plan.registry_auth);
    let auth = Arc::new(auth);
    let slots = Arc::new(Semaphore::new(options.jobs.max(1)));
    let cancel = options.cancel.child_token();

    // Asked once per run: which builder, and how secrets are served, are decided before any
    // build starts; a daemon that can serve no secrets fails those services up front rather
    // than build them without.
    let info = build::daemon_info(docker).await.map_err(|e| e.to_string());
    let buildkit = uses_buildkit(info.as_ref().ok(), options.classic_builder);
    let secrets_mode = secrets_mode(&info, plan, options).await;
    let secrets_error = match &secrets_mode {
        SecretsMode::Unsupported(why) => Some(Error::SecretsUnsupported(why.clone())),
        _ => None,
    };

    let secrets_mode = &secrets_mode;
    let tasks = tasks.iter().map(|task| {
        let slots = slots.clone();
        let auth = auth.clone();
        let cancel = cancel.clone();
        let events = events.clone();
        let secrets_error = secrets_error.as_ref();
        async move {
            let outcome = match (&task.kind, secrets_error) {
                (Err(error), _) => ServiceOutcome::failed(&task.service, error),
                (Ok(TaskKind::Build(build)), Some(error)) if !build.secrets.is_empty() => {
                    ServiceOutcome::failed(&task.service, error)
                }
                (Ok(kind), _) => {
                    let Ok(_slot) = slots.acquire().await else {
                        return ServiceOutcome::failed(&task.service, &Error::Cancelled);
                    };
                    let work = Worker {
                        docker,
                        plan,
                        options,
                        auth: &auth,
                        service: &task.service,
                        events: &events,
                        secrets_mode,
                        buildkit,
                    };
                    tokio::select! {
                        outcome = work.run(kind) => outcome,
                        () = cancel.cancelled() => ServiceOutcome::failed(&task.service, &Error::Cancelled),
                    }
                }
            };
            if !outcome.ok() && options.fail_fast {
                cancel.cancel();
            }
            let _ = events.send(Event::Done(Box::new(outcome.clone()))).await;
            outcome
        }
    });
    join_all(tasks).await
}

struct Worker<'a> {
    docker: &'a Docker,
    plan: &'a Plan,
    options: &'a RunOptions,
    auth: &'a build::RegistryAuth,
    service: &'a str,
    events: &'a mpsc::Sender<Event>,
    secrets_mode: &'a SecretsMode,
    /// Builds go through BuildKit (see [`uses_buildkit`]).
    buildkit: bool,
}

impl Worker<'_> {
    async fn send(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    async fn run(&self, kind: &TaskKind) -> ServiceOutcome {
        let started = Instant::now();
        let mut outcome = match kind {
            TaskKind::Pull { image } => self.pull(image).await,
            TaskKind::Build(task) => self.build(task).await,
        };
        outcome.duration = started.elapsed();
        outcome
    }

    /// Whether the target is not the daemon's own architecture.
    fn foreign(&self) -> bool {
        self.plan.arch != self.options.host_arch
    }

    /// Sends every build event of `rx` as this service's progress, until its senders are gone.
    async fn forward(&self, rx: &mut mpsc::Receiver<build::BuildEvent>) {
        while let Some(event) = rx.recv().await {
            self.send(Event::Progress {
                service: self.service.to_owned(),
                event,
            })
            .await;
        }
    }

    /// Tells the user `decision`; the outcome of a reused image, or `None` to go on.
    async fn announce(&self, decision: Decision, image: &str) -> Option<ServiceOutcome> {
        let (reused, message) = match &decision {
            Decision::Reuse { message, .. } => (true, message.clone()),
            Decision::Build { message } => (false, message.clone()),
        };
        self.send(Event::Reuse {
            service: self.service.to_owned(),
            reused,
            message: message.clone(),
        })
        .await;
        let Decision::Reuse { id, size, .. } = decision else {
            return None;
        };
        Some(ServiceOutcome {
            image: Some(image.to_owned()),
            image_id: Some(id),
            size,
            reused: true,
            log: message,
            ..ServiceOutcome::new(self.service)
        })
    }

    async fn pull(&self, image: &str) -> ServiceOutcome {
        if self.options.reuse == Reuse::MatchingOrPlatform {
            let decision =
                inputs::decide_pull(self.docker, self.service, image, self.plan.arch).await;
            if let Some(outcome) = self.announce(decision, image).await {
                return ServiceOutcome {
                    external: true,
                    resolver: "external service".to_owned(),
                    ..outcome
                };
            }
        }
        self.send(Event::Start {
            service: self.service.to_owned(),
            action: Action::Pull {
                image: image.to_owned(),
            },
        })
        .await;
        if !self.options.pull
            && let Some(outcome) = self.local_image(image).await
        {
            return outcome;
        }
        // The reference always names the platform when pulling for a target arch; on the
        // daemon's own arch it makes no difference, so leave it out there.
        let platform = self.foreign().then(|| self.plan.arch.docker_platform());
        let (tx, mut rx) = mpsc::channel(256);
        let pull = async move {
            let result = build::pull_image(
                self.docker,
                image,
                platform,
                self.auth.for_image(image),
                &tx,
            )
            .await;
            drop(tx);
            result
        };
        let (result, ()) = tokio::join!(pull, self.forward(&mut rx));
        let mut outcome = ServiceOutcome {
            image: Some(image.to_owned()),
            external: true,
            resolver: "external service".to_owned(),
            ..ServiceOutcome::new(self.service)
        };
        match result {
            Ok(pulled) => {
                outcome.image = Some(pulled.reference.clone());
                outcome.image_id = Some(pulled.image_id);
                outcome.size = self.image_size(&pulled.reference).await;
            }
            Err(e) => outcome.error = Some(Error::Build(e).to_string()),
        }
        outcome
    }

    /// An image-only service's image, when the daemon already has it for the target's
    /// architecture: docker compose's default pull policy (`missing`), so an image built or
    /// loaded locally needs no registry. The reference always pulls, and fails offline.
    async fn local_image(&self, image: &str) -> Option<ServiceOutcome> {
        let inspect = self.docker.inspect_image(image).await.ok()?;
        let target = self.plan.arch.docker_arch();
        if inspect
            .architecture
            .as_deref()
            .is_some_and(|arch| arch != target)
        {
            return None;
        }
        self.send(Event::Progress {
            service: self.service.to_owned(),
            event: build::BuildEvent::Output {
                line: format!("using the local image {image} (--pull pulls it again)"),
            },
        })
        .await;
        Some(ServiceOutcome {
            image: Some(image.to_owned()),
            image_id: inspect.id,
            size: inspect.size.and_then(|s| u64::try_from(s).ok()),
            external: true,
            resolver: "external service".to_owned(),
            ..ServiceOutcome::new(self.service)
        })
    }

    async fn image_size(&self, image: &str) -> Option<u64> {
        let inspect = self.docker.inspect_image(image).await.ok()?;
        inspect.size.and_then(|s| u64::try_from(s).ok())
    }
}
