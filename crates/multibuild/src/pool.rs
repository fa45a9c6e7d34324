//! A plan run over several daemons ("builders"): each service on a builder that runs the
//! target architecture natively (else, when emulation was asked for, on one that emulates it
//! through binfmt_misc), spread by free job slots, and moved once to another builder when
//! its own stops answering mid-build.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::Docker;
use futures::future::join_all;
use platform::Arch;
use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::plan::{Plan, Task};
use crate::run::{Event, RunOptions, ServiceOutcome, run_tasks};

/// Job slots of a builder when `--builder` gives none.
pub const DEFAULT_BUILDER_JOBS: usize = 4;

/// How long a builder whose build failed has to answer a ping before it counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// One `--builder [NAME=]ENDPOINT[,jobs=N]` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderSpec {
    /// The name in output and events (the endpoint when none is given).
    pub name: String,
    /// A Docker endpoint as `DOCKER_HOST` spells it, or a Docker context name.
    pub endpoint: String,
    /// At most this many services at once on it.
    pub jobs: usize,
}

/// What can go wrong choosing builders.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A `--builder` value that does not parse.
    #[error("--builder {given:?}: {why}")]
    Spec {
        /// The value.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// A builder whose daemon reports an architecture balena does not know.
    #[error("builder {name}: its Docker daemon's architecture {arch:?} is not one balena knows")]
    UnknownArch {
        /// The builder.
        name: String,
        /// What the daemon said.
        arch: String,
    },
    /// A builders file that does not parse or names a bad builder.
    #[error("{file}: {message}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong, with the line and field.
        message: String,
    },
    /// No builder (that is up) can build for the target.
    #[error("no builder can build for {arch}{hint}; the builders: {builders}")]
    NoSuitableBuilder {
        /// The target.
        arch: Arch,
        /// How to get one (e.g. add `--emulated`).
        hint: String,
        /// Each builder with its platforms, or why it is down.
        builders: String,
    },
}

impl std::str::FromStr for BuilderSpec {
    type Err = PoolError;

    fn from_str(given: &str) -> Result<Self, PoolError> {
        parse_spec(given).map_err(|why| PoolError::Spec {
            given: given.to_owned(),
            why: why.to_owned(),
        })
    }
}

/// `[NAME=]ENDPOINT[,jobs=N]`, or what is wrong with it.
fn parse_spec(given: &str) -> Result<BuilderSpec, &'static str> {
    let mut parts = given.split(',');
    let first = parts.next().unwrap_or_default();
    let (name, endpoint) = split_name(first);
    if endpoint.is_empty() {
        return Err("no endpoint (unix://…, tcp://…, ssh://… or a context)");
    }
    let mut jobs = DEFAULT_BUILDER_JOBS;
    for option in parts {
        let Some(value) = option.strip_prefix("jobs=") else {
            return Err("the only option is jobs=N");
        };
        jobs = value
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(JOBS_RULE)?;
    }
    Ok(BuilderSpec {
        name: name.unwrap_or(endpoint).to_owned(),
        endpoint: endpoint.to_owned(),
        jobs,
    })
}

const JOBS_RULE: &str = "jobs must be a whole number of at least 1";

/// The `builders` list of a config file (`.balena/balena.yml`, the user's `builders.yml`):
/// each item the string `--builder` takes or a mapping `{name, endpoint, jobs}` (`endpoint`
/// required). `lines` are the items' lines in the file when known
/// (`parse::yaml_item_lines`); an error says `line N: builders[i].field: why`.
pub(crate) fn builder_list(value: &Value, lines: &[u64]) -> Result<Vec<BuilderSpec>, String> {
    let Value::Array(items) = value else {
        return Err("builders: expected a list of builders".to_owned());
    };
    let mut specs: Vec<BuilderSpec> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = |field: &str, why: &str| {
            let line = lines
                .get(index)
                .map_or_else(String::new, |line| format!("line {line}: "));
            format!("{line}builders[{index}]{field}: {why}")
        };
        let spec = builder_entry(item).map_err(|(field, why)| at(&field, &why))?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(at(
                ".name",
                &format!("a second builder named {:?}", spec.name),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// One item of a `builders` list, or the field at fault (`.jobs`, empty for the item) and why.
fn builder_entry(item: &Value) -> Result<BuilderSpec, (String, String)> {
    let fault = |field: &str, why: &str| (field.to_owned(), why.to_owned());
    let map = match item {
        Value::String(given) => return parse_spec(given).map_err(|why| fault("", why)),
        Value::Object(map) => map,
        _ => {
            return Err(fault(
                "",
                "expected \"[NAME=]ENDPOINT[,jobs=N]\" or a mapping {name, endpoint, jobs}",
            ));
        }
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !["name", "endpoint", "jobs"].contains(&k.as_str()))
    {
        return Err(fault(
            &format!(".{unknown}"),
            "not a builder field (name, endpoint, jobs)",
        ));
    }
    let text = |field: &str| match map.get(field) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(fault(&format!(".{field}"), "expected a non-empty string")),
    };
    let endpoint = text("endpoint")?.ok_or_else(|| {
        fault(
            ".endpoint",
            "missing (unix://…, tcp://…, ssh://… or a context)",
        )
    })?;
    let jobs = match map.get("jobs") {
        None => DEFAULT_BUILDER_JOBS,
        Some(jobs) => jobs
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| fault(".jobs", JOBS_RULE))?,
    };
    Ok(BuilderSpec {
        name: text("name")?.unwrap_or_else(|| endpoint.clone()),
        endpoint,
        jobs,
    })
}

/// The user's builders file (`~/.config/balena-compose/builders.yml`), named `file` in
/// errors: a `builders:` list as in `balena.yml`, or the list alone. An empty file has none.
pub fn read_builders_file(file: &str, text: &str) -> Result<Vec<BuilderSpec>, PoolError> {
    let invalid = |message: String| PoolError::Config {
        file: file.to_owned(),
        message,
    };
    let value = parse::yaml_value(text).map_err(|e| invalid(e.to_string()))?;
    match &value {
        Value::Null => Ok(Vec::new()),
        Value::Array(_) => builder_list(&value, &parse::yaml_item_lines(text, None)),
        Value::Object(map) => match map.get("builders") {
            Some(list) => builder_list(list, &parse::yaml_item_lines(text, Some("builders"))),
            None => Err("expected a `builders:` list".to_owned()),
        },
        _ => Err("expected a `builders:` list".to_owned()),
    }
    .map_err(invalid)
}

/// `NAME=ENDPOINT` → the name and the endpoint; a name is what a Docker context name may be,
/// so the `=` of an endpoint's own (a query, a path) is not mistaken for one.
fn split_name(text: &str) -> (Option<&str>, &str) {
    match text.split_once('=') {
        Some((name, endpoint))
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c)) =>
        {
            (Some(name), endpoint)
        }
        _ => (None, text),
    }
}

impl BuilderSpec {
    /// The daemon flags naming this builder's endpoint: an address (`scheme://…`) or a
    /// Docker context; `tls` gives the `--ca/--cert/--key` of a `tcp://` address.
    pub fn daemon_flags(&self, tls: &build::DaemonFlags) -> build::DaemonFlags {
        let (docker_host, context) = if self.endpoint.contains("://") {
            (Some(self.endpoint.clone()), None)
        } else {
            (None, Some(self.endpoint.clone()))
        };
        build::DaemonFlags {
            docker_host,
            context,
            ..tls.clone()
        }
    }
}

/// A builder that answered: its daemon and the platforms it runs.
#[derive(Debug, Clone)]
pub struct Builder {
    /// Its name.
    pub name: String,
    /// How to reach it (builds with secrets open sessions of their own).
    pub daemon: build::Daemon,
    /// The connection.
    pub docker: Docker,
    /// The daemon's own architecture.
    pub native: Arch,
    /// Foreign architectures it runs through binfmt_misc (only a daemon on this machine,
    /// whose registrations we can see).
    pub emulates: Vec<Arch>,
    /// Its job slots.
    pub jobs: usize,
}

impl Builder {
    /// Asks a connected daemon what it runs. `binfmt_registered` says whether this machine
    /// runs an architecture through binfmt_misc (`emulate::binfmt_registered`).
    pub async fn describe(
        spec: &BuilderSpec,
        daemon: build::Daemon,
        docker: Docker,
        binfmt_registered: impl Fn(Arch) -> bool,
    ) -> Result<Builder, PoolError> {
        let reported = docker
            .version()
            .await
            .ok()
            .and_then(|v| v.arch)
            .unwrap_or_default();
        let native = Arch::from_docker(&reported).ok_or_else(|| PoolError::UnknownArch {
            name: spec.name.clone(),
            arch: reported,
        })?;
        let local = matches!(daemon.endpoint, build::Endpoint::Unix(_));
        let emulates = Arch::ALL
            .into_iter()
            .filter(|arch| local && !arch.runs_natively_on(native) && binfmt_registered(*arch))
            .collect();
        Ok(Builder {
            name: spec.name.clone(),
            daemon,
            docker,
            native,
            emulates,
            jobs: spec.jobs,
        })
    }

    /// `amd64 (native), aarch64 (emulated)`.
    pub fn platforms(&self) -> String {
        std::iter::once(format!("{} (native)", self.native))
            .chain(self.emulates.iter().map(|a| format!("{a} (emulated)")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {}",
            self.name,
            self.daemon.host,
            self.platforms()
        )
    }
}

/// The builders a plan's services may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Indices into the pool.
    pub builders: Vec<usize>,
    /// They emulate the target (none runs it natively).
    pub emulated: bool,
}

/// The builders for `arch`: those that run it natively, else (only when `emulated` was asked
/// for) those that emulate it; else an error naming every builder and its platforms.
pub fn route(pool: &[Builder], arch: Arch, emulated: bool) -> Result<Route, PoolError> {
    let indices = |keep: &dyn Fn(&Builder) -> bool| -> Vec<usize> {
        (0..pool.len()).filter(|&i| keep(&pool[i])).collect()
    };
    let native = indices(&|b| arch.runs_natively_on(b.native));
    if !native.is_empty() {
        return Ok(Route {
            builders: native,
            emulated: false,
        });
    }
    let emulating = indices(&|b| b.emulates.contains(&arch));
    if emulated && !emulating.is_empty() {
        return Ok(Route {
            builders: emulating,
            emulated: true,
        });
    }
    let hint = match (emulated, emulating.is_empty()) {
        (false, false) => " natively (add --emulated to build under qemu)",
        (false, true) => " natively",
        _ => "",
    };
    Err(PoolError::NoSuitableBuilder {
        arch,
        hint: hint.to_owned(),
        builders: describe_all(pool),
    })
}

fn describe_all(pool: &[Builder]) -> String {
    if pool.is_empty() {
        return "none answered".to_owned();
    }
    pool.iter()
        .map(Builder::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The job slots of the routed builders, and which of them are down.
struct Slots {
    slots: Vec<Arc<Semaphore>>,
    down: Vec<AtomicBool>,
    /// Woken whenever a slot is freed or a builder goes down.
    changed: Notify,
}

/// A job slot on a builder; freeing it wakes the services waiting for one.
struct Slot<'a> {
    builder: usize,
    _permit: OwnedSemaphorePermit,
    changed: &'a Notify,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.changed.notify_waiters();
    }
}

impl Slots {
    fn new(pool: &[Builder]) -> Self {
        Slots {
            slots: pool
                .iter()
                .map(|b| Arc::new(Semaphore::new(b.jobs.max(1))))
                .collect(),
            down: pool.iter().map(|_| AtomicBool::new(false)).collect(),
            changed: Notify::new(),
        }
    }

    fn is_down(&self, builder: usize) -> bool {
        self.down[builder].load(Ordering::SeqCst)
    }

    fn mark_down(&self, builder: usize) {
        self.down[builder].store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// A free slot on the routed builder (up, not in `avoid`) with the most free slots; `None`
    /// when none is free now.
    fn try_take(&self, route: &Route, avoid: &[usize]) -> Option<Slot<'_>> {
        let candidates = route
            .builders
            .iter()
            .copied()
            .filter(|b| !self.is_down(*b) && !avoid.contains(b));
        let builder = candidates.max_by_key(|b| self.slots[*b].available_permits())?;
        let permit = Arc::clone(&self.slots[builder]).try_acquire_owned().ok()?;
        Some(Slot {
            builder,
            _permit: permit,
            changed: &self.changed,
        })
    }

    fn any_usable(&self, route: &Route, avoid: &[usize]) -> bool {
        route
            .builders
            .iter()
            .any(|b| !self.is_down(*b) && !avoid.contains(b))
    }

    /// Waits for a free slot; `None` when every usable builder is down.
    async fn take(&self, route: &Route, avoid: &[usize]) -> Option<Slot<'_>> {
        loop {
            // Created before looking, so a slot freed in between still wakes us.
            let changed = self.changed.notified();
            if let Some(slot) = self.try_take(route, avoid) {
                return Some(slot);
            }
            if !self.any_usable(route, avoid) {
                return None;
            }
            changed.await;
        }
    }
}

/// What every service of one target's part of a pool run shares.
struct Pool<'a> {
    builders: &'a [Builder],
    route: &'a Route,
    plan: &'a Plan,
    options: &'a RunOptions,
    slots: &'a Slots,
    cancel: CancellationToken,
    events: mpsc::Sender<Event>,
}

/// One target's plan in [`run_pools`]: the builders it goes to and where its events go.
#[derive(Debug)]
pub struct TargetRun<'a> {
    /// Its builders (see [`route`]).
    pub route: &'a Route,
    /// Its plan.
    pub plan: &'a Plan,
    /// Its events.
    pub events: mpsc::Sender<Event>,
}

/// Runs every task of `plan` on the builders of `route` (see [`route`]), at most each
/// builder's `jobs` at a time on it; one outcome per service, in plan order, each naming its
/// builder. A service whose builder stops answering is built once more on another.
pub async fn run_pool(
    builders: &[Builder],
    route: &Route,
    plan: &Plan,
    options: &RunOptions,
    events: mpsc::Sender<Event>,
) -> Vec<ServiceOutcome> {
    let run = TargetRun {
        route,
        plan,
        events,
    };
    let mut outcomes = run_pools(builders, vec![run], options).await;
    outcomes.pop().unwrap_or_default()
}

/// [`run_pool`] for several targets' plans at once, sharing the builders' job slots (a
/// builder runs at most its `jobs` services whatever their target); one list of outcomes per
/// plan, in order. `--fail-fast` stops every plan.
pub async fn run_pools(
    builders: &[Builder],
    runs: Vec<TargetRun<'_>>,
    options: &RunOptions,
) -> Vec<Vec<ServiceOutcome>> {
    let slots = Slots::new(builders);
    let cancel = options.cancel.child_token();
    join_all(runs.into_iter().map(|run| {
        let pool = Pool {
            builders,
            route: run.route,
            plan: run.plan,
            options,
            slots: &slots,
            cancel: cancel.clone(),
            events: run.events,
        };
        async move { pool.run().await }
    }))
    .await
}

impl Pool<'_> {
    async fn run(&self) -> Vec<ServiceOutcome> {
        join_all(self.plan.tasks.iter().map(|task| async move {
            let outcome = self.service(task).await;
            if !outcome.ok() && self.options.fail_fast {
                self.cancel.cancel();
            }
            let _ = self
                .events
                .send(Event::Done(Box::new(outcome.clone())))
                .await;
            outcome
        }))
        .await
    }

    /// One service: on a builder, and on a second one if the first went down under it.
    async fn service(&self, task: &Task) -> ServiceOutcome {
        let mut tried = Vec::new();
        let mut moved = None;
        loop {
            let slot = tokio::select! {
                slot = self.slots.take(self.route, &tried) => slot,
                () = self.cancel.cancelled() => return failed(task, &Error::Cancelled),
            };
            let Some(slot) = slot else {
                return self.nowhere(task, moved);
            };
            let index = slot.builder;
            let builder = &self.builders[index];
            self.announce(task, builder, moved.clone()).await;
            let mut outcome = self.build_on(builder, task).await;
            drop(slot);
            outcome.builder = Some(builder.name.clone());
            outcome.moved.clone_from(&moved);
            // Once only: a second builder going down under the same service ends it.
            if outcome.ok() || !tried.is_empty() || !self.went_down(index, &outcome).await {
                return outcome;
            }
            tried.push(index);
            moved = Some(format!(
                "moved from builder {}, which went down during the build",
                builder.name
            ));
        }
    }

    async fn announce(&self, task: &Task, builder: &Builder, moved: Option<String>) {
        let _ = self
            .events
            .send(Event::Builder {
                service: task.service.clone(),
                builder: builder.name.clone(),
                moved,
            })
            .await;
    }

    /// Runs `task` on `builder`, passing on its events but its `Done` (the pool says that,
    /// once the service is finished for good).
    async fn build_on(&self, builder: &Builder, task: &Task) -> ServiceOutcome {
        let options = RunOptions {
            jobs: 1,
            fail_fast: false,
            host_arch: builder.native,
            daemon: Some(builder.daemon.clone()),
            cancel: self.cancel.clone(),
            ..self.options.clone()
        };
        let (tx, mut rx) = mpsc::channel(256);
        let tasks = [task];
        let run = run_tasks(&builder.docker, self.plan, &tasks, &options, tx);
        let forward = async {
            while let Some(event) = rx.recv().await {
                if !matches!(event, Event::Done(_)) {
                    let _ = self.events.send(event).await;
                }
            }
        };
        let (mut outcomes, ()) = tokio::join!(run, forward);
        outcomes
            .pop()
            .unwrap_or_else(|| failed(task, &Error::Cancelled))
    }

    /// After a failed build: whether its builder is gone (the connection ended, or it no
    /// longer answers a ping: a daemon being stopped first kills the running step, whose
    /// failure alone reads like the Dockerfile's); if so it is marked down.
    async fn went_down(&self, builder: usize, outcome: &ServiceOutcome) -> bool {
        let answers = || async {
            let ping = self.builders[builder].docker.ping();
            matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)))
        };
        let down = self.slots.is_down(builder) || outcome.connection_lost || !answers().await;
        if down {
            self.slots.mark_down(builder);
        }
        down
    }

    /// The outcome of a service no builder is left for.
    fn nowhere(&self, task: &Task, moved: Option<String>) -> ServiceOutcome {
        let names: Vec<&str> = self
            .route
            .builders
            .iter()
            .map(|b| self.builders[*b].name.as_str())
            .collect();
        let mut outcome = ServiceOutcome::new_failed(
            &task.service,
            format!(
                "every builder for {} is down ({}); it was not built",
                self.plan.arch,
                names.join(", ")
            ),
        );
        outcome.moved = moved;
        outcome
    }
}

fn failed(task: &Task, error: &Error) -> ServiceOutcome {
    ServiceOutcome::new_failed(&task.service, error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn builder_specs_parse_with_and_without_name_and_jobs() {
        let spec: BuilderSpec = "arm=ssh://user@arm-host,jobs=2".parse().unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.endpoint.as_str(), spec.jobs),
            ("arm", "ssh://user@arm-host", 2)
        );
        let spec: BuilderSpec = "unix:///run/docker.sock".parse().unwrap();
        assert_eq!(spec.name, "unix:///run/docker.sock");
        assert_eq!(spec.jobs, DEFAULT_BUILDER_JOBS);
        let context: BuilderSpec = "my-context".parse().unwrap();
        assert_eq!(
            context.daemon_flags(&build::DaemonFlags::default()).context,
            Some("my-context".to_owned())
        );
        for bad in ["", "a=", "x=unix:///s,jobs=0", "x=unix:///s,cpus=2"] {
            assert!(bad.parse::<BuilderSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn builders_files_take_strings_and_mappings_and_name_line_and_field_when_bad() {
        let file = "builders:\n  - arm=ssh://u@arm,jobs=2\n  - name: x86\n    endpoint: tcp://h:2376\n  - endpoint: my-context\n";
        let specs = read_builders_file("b.yml", file).unwrap();
        let described: Vec<(&str, &str, usize)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.endpoint.as_str(), s.jobs))
            .collect();
        assert_eq!(
            described,
            [
                ("arm", "ssh://u@arm", 2),
                ("x86", "tcp://h:2376", DEFAULT_BUILDER_JOBS),
                ("my-context", "my-context", DEFAULT_BUILDER_JOBS)
            ]
        );
        assert_eq!(
            read_builders_file("b.yml", "- unix:///s\n").unwrap().len(),
            1
        );
        assert!(read_builders_file("b.yml", "").unwrap().is_empty());
        for (text, expected) in [
            (
                "builders:\n  - a=unix:///s\n  - name: b\n    endpoint: unix:///t\n    jobs: 0\n",
                "b.yml: line 3: builders[1].jobs: jobs must be a whole number",
            ),
            (
                "builders:\n  - name: b\n",
                "b.yml: line 2: builders[0].endpoint: missing",
            ),
            (
                "builders:\n\n  - x=unix:///s,cpus=1\n",
                "b.yml: line 3: builders[0]: the only option is jobs=N",
            ),
            (
                "builders:\n  - {endpoint: unix:///s, cpu: 2}\n",
                "b.yml: line 2: builders[0].cpu: not a builder field",
            ),
            (
                "builders:\n  - a=unix:///s\n  - a=unix:///t\n",
                "b.yml: line 3: builders[1].name: a second builder named \"a\"",
            ),
            ("builders: 3\n", "b.yml: builders: expected a list"),
        ] {
            let err = read_builders_file("b.yml", text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    fn builder(name: &str, native: Arch, emulates: Vec<Arch>) -> Builder {
        let socket = format!("/nonexistent/{name}.sock");
        Builder {
            name: name.to_owned(),
            daemon: build::Daemon {
                host: format!("unix://{socket}"),
                endpoint: build::Endpoint::Unix(socket.clone().into()),
            },
            // bollard connects on the first request only: none is made here.
            docker: Docker::connect_with_http(
                "http://127.0.0.1:9",
                1,
                bollard::API_DEFAULT_VERSION,
            )
            .unwrap(),
            native,
            emulates,
            jobs: 1,
        }
    }

    #[test]
    fn routing_prefers_native_builders_and_emulates_only_when_asked() {
        let pool = [
            builder("x86", Arch::Amd64, vec![Arch::Aarch64]),
            builder("arm", Arch::Aarch64, vec![]),
        ];
        let native = route(&pool, Arch::Aarch64, true).unwrap();
        assert_eq!((native.builders, native.emulated), (vec![1], false));
        // armv7hf runs natively on neither; only x86's binfmt could, and it has none for it.
        assert!(route(&pool, Arch::Armv7hf, true).is_err());
        assert_eq!(route(&pool, Arch::I386, false).unwrap().builders, vec![0]);
        let emulating = route(&pool[..1], Arch::Aarch64, true).unwrap();
        assert_eq!((emulating.builders, emulating.emulated), (vec![0], true));
        let refused = route(&pool[..1], Arch::Aarch64, false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("add --emulated"), "{refused}");
        assert!(
            refused.contains(
                "x86 at unix:///nonexistent/x86.sock: amd64 (native), aarch64 (emulated)"
            ),
            "{refused}"
        );
    }
}
