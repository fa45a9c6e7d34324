//! How a build's events reach a person or a program: one live line per service on a
//! terminal, `[service] …` lines otherwise, or one JSON object per line with `--json`.
//!
//! The JSON schema (one object per line on stdout, nothing else there; under `--builder`
//! every event of a service also has `builder`, the builder it runs on; a build for several
//! targets adds `target`, the target's image suffix, to every event and summary entry of a
//! service — for people the service shows as `service@target`):
//!
//! | `event` | other fields |
//! |---|---|
//! | `start` | `service`, `action` (`build`/`pull`), `resolver`, `dockerfile`, `emulated` (builds), `image` (pulls) |
//! | `reuse` | `service`, `reused` (an image on the daemon is used as it is: no context sent, nothing pulled), `message` (`reusing <image> (…)` / `building <service> (…)`) |
//! | `step` | `service`, `index`, `total`, `instruction` |
//! | `log` | `service`, `line` |
//! | `pull` | `service`, `id`, `status`, `current`, `total` |
//! | `warning` | `service` (absent for the project's and compose file's warnings), `message` |
//! | `builder` | `service`, `builder` (`--builder`: where it builds; before its `start`), `moved` (why not where it started, when it moved) |
//! | `done` | `service`, `ok`, `image`, `id`, `size`, `seconds` |
//! | `error` | `service`, `message` |
//! | `info` | `message` (deploy) |
//! | `push` | `service`, `location`, `status` (`pushed`/`retrying`/`failed`), `digest`, `size`, `error` (deploy) |
//! | `summary` | `services`: `[{service, image, id, ok, reused, error?, builder?, moved?, target?}]` (and `release` for deploys: `{fleet, id, commit, status}`; `releases`, one per fleet, for a deploy to several fleets), last |

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use multibuild::{Action, Event, ServiceOutcome};
use serde_json::{Value, json};

use super::output::{errln, outln};

/// `--progress`: what the user asked for; [`OutputMode::detect`] makes it what is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal that can redraw lines, else `plain`.
    Auto,
    /// Live lines, one per service (a terminal is assumed).
    Tty,
    /// `[service] …` lines.
    Plain,
    /// Errors only.
    Quiet,
    /// One JSON object per line on stdout (`--json`).
    Json,
}

/// The `--progress` of this process, set once by `main` before any command runs.
static CHOSEN: std::sync::OnceLock<ProgressMode> = std::sync::OnceLock::new();

/// Records the global `--progress` (or `-q`).
pub fn choose(mode: ProgressMode) {
    let _ = CHOSEN.set(mode);
}

/// Whether `--progress plain` was given: builds then show BuildKit's own steps
/// (`[internal] load …`) and `CACHED` lines too, as `docker build --progress plain` does.
pub fn plain_requested() -> bool {
    CHOSEN.get() == Some(&ProgressMode::Plain)
}

/// Where output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// JSON lines on stdout.
    Json,
    /// `[service] …` lines.
    Plain,
    /// Live lines on a terminal.
    Terminal,
    /// Errors only.
    Quiet,
}

impl OutputMode {
    /// A command's `--json`, else the global `--progress`; `auto` is a terminal when stderr
    /// is one and `TERM` is not `dumb` (a dumb terminal cannot redraw a line, and indicatif
    /// would show nothing until the end), else plain lines.
    pub fn detect(json: bool) -> Self {
        match CHOSEN.get().copied().unwrap_or(ProgressMode::Auto) {
            _ if json => OutputMode::Json,
            ProgressMode::Json => OutputMode::Json,
            ProgressMode::Quiet => OutputMode::Quiet,
            ProgressMode::Plain => OutputMode::Plain,
            ProgressMode::Tty => OutputMode::Terminal,
            ProgressMode::Auto => {
                let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
                if std::io::stderr().is_terminal() && !dumb {
                    OutputMode::Terminal
                } else {
                    OutputMode::Plain
                }
            }
        }
    }
}

/// Renders events as they come, then a summary.
#[derive(Debug)]
pub struct Renderer {
    mode: OutputMode,
    bars: Option<MultiProgress>,
    lines: HashMap<String, ProgressBar>,
    width: usize,
    push: PushProgress,
    /// Each service's current step (`3/7 RUN npm ci`), kept on its live line under the logs.
    steps: HashMap<String, String>,
    /// When the command started: the summary's time is its wall time.
    started: Instant,
    /// Each service's builder (`--builder`), named in its every event.
    builders: HashMap<String, String>,
    /// The project warnings already shown.
    warned: HashSet<String>,
}

/// The aggregate of a deploy's concurrent pushes: one bar on a terminal, a line every
/// [`PLAIN_PUSH_INTERVAL`] otherwise.
#[derive(Debug, Default)]
struct PushProgress {
    /// Bytes sent and to send, by location.
    bytes: HashMap<String, (u64, u64)>,
    /// The service whose image goes to each location: people know services, not registry
    /// paths.
    services: HashMap<String, String>,
    images: usize,
    pushed: usize,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl PushProgress {
    fn totals(&self) -> (u64, u64) {
        self.bytes
            .values()
            .fold((0, 0), |(c, t), (current, total)| (c + current, t + total))
    }

    fn text(&self) -> String {
        let (current, total) = self.totals();
        format!(
            "{} of {} sent, {} of {} images pushed",
            human_size(current),
            human_size(total),
            self.pushed,
            self.images
        )
    }
}

/// The last lines of a deploy (per release), on stdout for `| tail -3`: what was made.
fn release_lines(release: &Value) {
    outln!("Release id: {}", release["id"]);
    outln!("Commit:     {}", release["commit"].as_str().unwrap_or("-"));
    outln!("Status:     {}", release["status"].as_str().unwrap_or("-"));
}

/// How often plain output tells the push's progress.
const PLAIN_PUSH_INTERVAL: Duration = Duration::from_secs(5);

impl Renderer {
    /// A renderer for `mode`.
    pub fn new(mode: OutputMode) -> Self {
        let bars = (mode == OutputMode::Terminal)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Renderer {
            mode,
            bars,
            lines: HashMap::new(),
            width: 0,
            push: PushProgress::default(),
            steps: HashMap::new(),
            started: Instant::now(),
            builders: HashMap::new(),
            warned: HashSet::new(),
        }
    }

    /// A line of information (to stderr, or a JSON `info` event).
    pub fn info(&self, message: &str) {
        match self.mode {
            OutputMode::Json => outln!("{}", json!({"event": "info", "message": message})),
            OutputMode::Quiet => {}
            _ => self.println(message),
        }
    }

    /// Prints `info` lines like [`Renderer::info`] from anywhere (another task, a callback),
    /// without borrowing the renderer.
    pub fn info_printer(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let (mode, bars) = (self.mode, self.bars.clone());
        move |message: &str| match (mode, &bars) {
            (OutputMode::Json, _) => outln!("{}", json!({"event": "info", "message": message})),
            (OutputMode::Quiet, _) => {}
            (_, Some(bars)) => {
                let _ = bars.println(message);
            }
            (_, None) => errln!("{message}"),
        }
    }

    fn println(&self, line: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(line);
            }
            None => errln!("{line}"),
        }
    }

    /// Called once the plan is known, for each target of a build for several (`target` is its
    /// suffix, see [`multibuild::naming::target_suffix`]; `None` for a single target).
    pub fn begin_target(&mut self, plan: &multibuild::Plan, target: Option<&str>) {
        self.width = plan
            .tasks
            .iter()
            .map(|t| label(&t.service, target).len())
            .max()
            .unwrap_or(0)
            .max(self.width);
        if matches!(self.mode, OutputMode::Plain | OutputMode::Terminal) {
            self.println(&format!(
                "Building {} for {}/{}",
                plan.project_name, plan.arch, plan.device_type
            ));
        }
        for warning in plan.warnings() {
            // A build for several targets plans the project once per target: said once.
            if !self.warned.insert(warning.to_owned()) {
                continue;
            }
            match self.mode {
                OutputMode::Json => outln!("{}", json!({"event": "warning", "message": warning})),
                OutputMode::Quiet => {}
                _ => self.println(&format!("warning: {warning}")),
            }
        }
        if let Some(bars) = &self.bars {
            let style =
                ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for task in &plan.tasks {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                let name = label(&task.service, target);
                bar.set_prefix(format!("{name:width$}", width = self.width));
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                self.lines.insert(name, bar);
            }
        }
    }

    /// One event (of the target whose suffix is `target` in a build for several).
    pub fn event_for(&mut self, target: Option<&str>, event: &Event) {
        if let Event::Builder {
            service, builder, ..
        } = event
        {
            self.builders
                .insert(label(service, target), builder.clone());
        }
        match self.mode {
            OutputMode::Json => {
                if let Some(mut value) = event_json(event) {
                    let service = value["service"].as_str().unwrap_or_default();
                    if let Some(builder) = self.builders.get(&label(service, target)) {
                        value["builder"] = json!(builder);
                    }
                    if let Some(target) = target {
                        value["target"] = json!(target);
                    }
                    outln!("{value}");
                }
            }
            OutputMode::Plain => {
                if let Some((service, text)) = event_text(event) {
                    errln!("[{}] {text}", label(service, target));
                }
            }
            OutputMode::Terminal => self.terminal(target, event),
            OutputMode::Quiet => {}
        }
    }

    fn terminal(&mut self, target: Option<&str>, event: &Event) {
        if let Event::Warning { service, message } = event {
            self.println(&format!("warning: {}: {message}", label(service, target)));
            return;
        }
        let Some((service, text)) = event_text(event) else {
            return;
        };
        let service = label(service, target);
        let service = service.as_str();
        let Some(bar) = self.lines.get(service) else {
            return;
        };
        match event {
            Event::Progress {
                event:
                    build::BuildEvent::Step {
                        index,
                        total,
                        instruction,
                    },
                ..
            } => {
                let step = format!("{index}/{total} {instruction}");
                bar.set_message(step.clone());
                self.steps.insert(service.to_owned(), step);
            }
            // A log line shows under its step, which stays in view.
            Event::Progress { .. } => match self.steps.get(service) {
                Some(step) => bar.set_message(format!("{step} | {text}")),
                None => bar.set_message(text),
            },
            Event::Done(outcome) => {
                bar.finish_with_message(match &outcome.error {
                    None if outcome.reused => "up to date (reused)".to_owned(),
                    None => format!("done in {}", seconds(outcome.duration)),
                    // The error, with its last log lines, follows once, in the summary.
                    Some(_) => "FAILED (see below)".to_owned(),
                });
            }
            _ => bar.set_message(text),
        }
    }

    /// Called once before a deploy's pushes start, with each service's image location; all
    /// pushes run at once.
    pub fn begin_push(&mut self, locations: impl IntoIterator<Item = (String, String)>) {
        let services: HashMap<String, String> = locations
            .into_iter()
            .map(|(service, location)| (location, service))
            .collect();
        let images = services.len();
        self.push = PushProgress {
            images,
            services,
            last_line: Some(Instant::now()),
            ..PushProgress::default()
        };
        if let Some(bars) = &self.bars {
            let style = ProgressStyle::with_template(
                "{spinner} pushing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(style);
            bar.set_message(format!("0/{images} images"));
            bar.enable_steady_tick(Duration::from_millis(120));
            self.push.bar = Some(bar);
        }
    }

    /// Folds a push event into the aggregate, and shows it as the mode wants.
    fn push_progress(&mut self, event: &release::PushEvent) {
        use release::PushEvent as P;
        match event {
            P::Progress {
                location,
                current,
                total,
            } => {
                // Never backwards: a retried push starts its count again.
                let entry = self.push.bytes.entry(location.clone()).or_default();
                *entry = (entry.0.max(*current), entry.1.max(*total));
            }
            P::Pushed { location, size, .. } => {
                self.push.pushed += 1;
                // Layers already in the registry send nothing: count the image as done.
                let entry = self.push.bytes.entry(location.clone()).or_default();
                if entry.1 == 0 {
                    *entry = (*size, *size);
                } else {
                    entry.0 = entry.1;
                }
            }
            _ => return,
        }
        match self.mode {
            OutputMode::Terminal => {
                if let Some(bar) = &self.push.bar {
                    let (current, total) = self.push.totals();
                    bar.set_length(total);
                    bar.set_position(current);
                    bar.set_message(format!("{}/{} images", self.push.pushed, self.push.images));
                }
            }
            OutputMode::Plain => {
                let due = self
                    .push
                    .last_line
                    .is_none_or(|t| t.elapsed() >= PLAIN_PUSH_INTERVAL);
                if due {
                    self.push.last_line = Some(Instant::now());
                    errln!("[push] {}", self.push.text());
                }
            }
            OutputMode::Json | OutputMode::Quiet => {}
        }
    }

    /// A push event of a deploy.
    pub fn push_event(&mut self, event: &release::PushEvent) {
        use release::PushEvent as P;
        self.push_progress(event);
        let (location, text, value) = match event {
            P::Pushed {
                location,
                digest,
                size,
            } => (
                location,
                format!("pushed {digest} ({})", human_size(*size)),
                json!({"event": "push", "location": location, "status": "pushed", "digest": digest, "size": size}),
            ),
            P::Retrying {
                location,
                attempt,
                max_attempts,
                delay,
                error,
            } => (
                location,
                format!(
                    "retrying after {:.1}s ({attempt} of {max_attempts}) due to: {error}",
                    delay.as_secs_f64()
                ),
                json!({"event": "push", "location": location, "status": "retrying", "attempt": attempt, "error": error}),
            ),
            P::Failed { location, error } => (
                location,
                format!("push failed: {error}"),
                json!({"event": "push", "location": location, "status": "failed", "error": error}),
            ),
            _ => return,
        };
        let service = self.push.services.get(location).map_or("", String::as_str);
        match self.mode {
            OutputMode::Json => {
                let mut value = value;
                value["service"] = json!(service);
                outln!("{value}");
            }
            OutputMode::Quiet if !matches!(event, P::Failed { .. }) => {}
            _ => self.println(&format!("[push] {service}: {text}")),
        }
    }

    /// The last word: a table for people, a `summary` event for programs. `release` is a
    /// deploy's release, or an array of them (a deploy to several fleets).
    pub fn summary(&mut self, outcomes: &[ServiceOutcome], release: Option<Value>) {
        if let Some(bars) = self.bars.take() {
            for bar in self.lines.values() {
                bar.finish();
            }
            if let Some(bar) = self.push.bar.take() {
                bar.finish_and_clear();
            }
            let _ = bars.clear();
        }
        if self.mode == OutputMode::Json {
            let services: Vec<Value> = outcomes
                .iter()
                .map(|o| {
                    let mut v = json!({
                        "service": o.service,
                        "image": o.image,
                        "id": o.image_id,
                        "ok": o.ok(),
                        "reused": o.reused,
                    });
                    if let Some(e) = &o.error {
                        v["error"] = json!(e);
                    }
                    if let Some(builder) = &o.builder {
                        v["builder"] = json!(builder);
                    }
                    if let Some(moved) = &o.moved {
                        v["moved"] = json!(moved);
                    }
                    if let Some(target) = &o.target {
                        v["target"] = json!(target);
                    }
                    v
                })
                .collect();
            let mut summary = json!({"event": "summary", "services": services});
            match release {
                // A deploy to several fleets: one release each.
                Some(releases @ Value::Array(_)) => summary["releases"] = releases,
                Some(release) => summary["release"] = release,
                None => {}
            }
            outln!("{summary}");
            return;
        }
        if self.mode != OutputMode::Quiet {
            self.table(outcomes);
            where_built(outcomes);
        }
        self.failures(outcomes);
        match release {
            Some(Value::Array(releases)) => {
                for release in releases {
                    outln!("Fleet:      {}", release["fleet"].as_str().unwrap_or("-"));
                    release_lines(&release);
                }
            }
            Some(release) => release_lines(&release),
            None => {}
        }
    }

    /// The summary's table on stdout; on a terminal it fits [`TERMINAL_COLUMNS`], image names
    /// shortened from the left (their tag is what tells builds apart).
    fn table(&self, outcomes: &[ServiceOutcome]) {
        let width = outcomes
            .iter()
            .map(|o| outcome_label(o).len())
            .max()
            .unwrap_or(7)
            .max(7);
        let image_width = outcomes
            .iter()
            .map(|o| o.image.as_deref().map_or(1, str::len))
            .max()
            .unwrap_or(5)
            .max(5);
        // SERVICE, ID (12), SIZE (9), TIME (7), STATUS (6) and five gaps of two.
        let others = width + 12 + 9 + 7 + 6 + 10;
        let image_width = if self.mode == OutputMode::Terminal {
            image_width.min(
                TERMINAL_COLUMNS
                    .saturating_sub(others)
                    .max(MIN_IMAGE_COLUMN),
            )
        } else {
            image_width
        };
        outln!(
            "{:width$}  {:image_width$}  {:12}  {:>9}  {:>7}  STATUS",
            "SERVICE",
            "IMAGE",
            "ID",
            "SIZE",
            "TIME"
        );
        for o in outcomes {
            let id = o
                .image_id
                .as_deref()
                .map(|id| id.trim_start_matches("sha256:").chars().take(12).collect())
                .unwrap_or_else(|| "-".to_owned());
            outln!(
                "{:width$}  {:image_width$}  {:12}  {:>9}  {:>7}  {}",
                outcome_label(o),
                shorten_left(o.image.as_deref().unwrap_or("-"), image_width),
                id,
                o.size.map_or_else(|| "-".to_owned(), human_size),
                seconds(o.duration),
                match (o.ok(), o.reused) {
                    (true, true) => "reused",
                    (true, false) => "ok",
                    (false, _) => "FAILED",
                },
            );
        }
    }

    /// Each failed service's error, once, then the closing line with the wall time.
    fn failures(&self, outcomes: &[ServiceOutcome]) {
        let failed: Vec<&ServiceOutcome> = outcomes.iter().filter(|o| !o.ok()).collect();
        for o in &failed {
            errln!("\nerror: service \"{}\" failed:", outcome_label(o));
            for line in o.error.as_deref().unwrap_or("").lines() {
                errln!("  {line}");
            }
        }
        if failed.is_empty() {
            if self.mode != OutputMode::Quiet {
                errln!(
                    "\nBuilt {} in {}",
                    services(outcomes.len()),
                    seconds(self.started.elapsed())
                );
            }
        } else {
            errln!("\n{} of {} failed", services(failed.len()), outcomes.len());
            let errors: Vec<&str> = failed.iter().filter_map(|o| o.error.as_deref()).collect();
            if let Some(note) = super::output::open_files_note(&errors.join("\n")) {
                errln!("error: {note}");
            }
        }
    }
}

/// A service as people read it: `service`, or `service@target` in a build for several.
fn label(service: &str, target: Option<&str>) -> String {
    match target {
        Some(target) => format!("{service}@{target}"),
        None => service.to_owned(),
    }
}

fn outcome_label(outcome: &ServiceOutcome) -> String {
    label(&outcome.service, outcome.target.as_deref())
}

fn services(n: usize) -> String {
    if n == 1 {
        "1 service".to_owned()
    } else {
        format!("{n} services")
    }
}

/// The width the summary table keeps to on a terminal.
const TERMINAL_COLUMNS: usize = 80;
/// The image column is never narrower than this, even for long service names.
const MIN_IMAGE_COLUMN: usize = 16;

/// `text` in at most `width` characters, its start replaced by `…` when it is longer.
fn shorten_left(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width || width == 0 {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - width + 1).collect();
    format!("…{tail}")
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Bytes as people read them (`1.2 MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Under `--builder`: which builder holds each image, and which services moved.
fn where_built(outcomes: &[ServiceOutcome]) {
    if outcomes.iter().all(|o| o.builder.is_none()) {
        return;
    }
    outln!("\nEach image is on the builder that built it:");
    for o in outcomes {
        let builder = o.builder.as_deref().unwrap_or("-");
        match &o.moved {
            Some(moved) => outln!("  {}: {builder} ({moved})", outcome_label(o)),
            None => outln!("  {}: {builder}", outcome_label(o)),
        }
    }
}

/// The service and a one-line text of an event, for people.
fn event_text(event: &Event) -> Option<(&str, String)> {
    Some(match event {
        Event::Start { service, action } => (
            service,
            match action {
                Action::Pull { image } => format!("pulling {image}"),
                Action::Build {
                    resolver,
                    dockerfile,
                    emulated,
                } => format!(
                    "building with {dockerfile} ({resolver}{})",
                    if *emulated { ", emulated" } else { "" }
                ),
            },
        ),
        Event::Progress { service, event } => (
            service,
            match event {
                build::BuildEvent::Step {
                    index,
                    total,
                    instruction,
                } => format!("Step {index}/{total} : {instruction}"),
                build::BuildEvent::Output { line } => line.clone(),
                build::BuildEvent::Progress { id, status, .. } => match id {
                    Some(id) => format!("{id}: {status}"),
                    None => status.clone(),
                },
                // A failed build's error is printed once, in the summary, not as it comes.
                _ => return None,
            },
        ),
        Event::Warning { service, message } => (service, format!("warning: {message}")),
        Event::Reuse {
            service, message, ..
        } => (service, message.clone()),
        Event::Builder {
            service,
            builder,
            moved,
        } => (
            service,
            match moved {
                Some(moved) => format!("on builder {builder} ({moved})"),
                None => format!("on builder {builder}"),
            },
        ),
        Event::Done(outcome) => (
            &outcome.service,
            match &outcome.error {
                None => format!(
                    "done: {} ({}) in {}",
                    outcome.image.as_deref().unwrap_or("-"),
                    outcome.size.map_or_else(|| "-".to_owned(), human_size),
                    seconds(outcome.duration)
                ),
                Some(_) => "FAILED (see below)".to_owned(),
            },
        ),
    })
}

/// An event as the JSON schema above.
fn event_json(event: &Event) -> Option<Value> {
    Some(match event {
        Event::Start { service, action } => match action {
            Action::Pull { image } => {
                json!({"event": "start", "service": service, "action": "pull", "image": image})
            }
            Action::Build {
                resolver,
                dockerfile,
                emulated,
            } => json!({"event": "start", "service": service, "action": "build",
                        "resolver": resolver, "dockerfile": dockerfile, "emulated": emulated}),
        },
        Event::Progress { service, event } => match event {
            build::BuildEvent::Step {
                index,
                total,
                instruction,
            } => json!({"event": "step", "service": service, "index": index, "total": total,
                        "instruction": instruction}),
            build::BuildEvent::Output { line } => {
                json!({"event": "log", "service": service, "line": line})
            }
            build::BuildEvent::Progress {
                id,
                status,
                current,
                total,
            } => json!({"event": "pull", "service": service, "id": id, "status": status,
                        "current": current, "total": total}),
            _ => return None,
        },
        Event::Warning { service, message } => {
            json!({"event": "warning", "service": service, "message": message})
        }
        Event::Reuse {
            service,
            reused,
            message,
        } => json!({"event": "reuse", "service": service, "reused": reused, "message": message}),
        Event::Builder {
            service,
            builder,
            moved,
        } => {
            let mut value = json!({"event": "builder", "service": service, "builder": builder});
            if let Some(moved) = moved {
                value["moved"] = json!(moved);
            }
            value
        }
        Event::Done(o) => match &o.error {
            None => json!({"event": "done", "service": o.service, "ok": true, "image": o.image,
                           "id": o.image_id, "size": o.size,
                           "seconds": o.duration.as_secs_f64()}),
            Some(e) => json!({"event": "error", "service": o.service, "message": e}),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_progress_sums_the_concurrent_pushes() {
        use release::PushEvent as P;
        let mut renderer = Renderer::new(OutputMode::Json);
        renderer.begin_push(["a", "b", "c"].map(|s| (s.to_owned(), s.to_owned())));
        let progress = |location: &str, current, total| P::Progress {
            location: location.to_owned(),
            current,
            total,
        };
        renderer.push_event(&progress("a", 500_000, 1_000_000));
        renderer.push_event(&progress("b", 0, 2_000_000));
        renderer.push_event(&progress("a", 1_000_000, 1_000_000));
        assert_eq!(renderer.push.totals(), (1_000_000, 3_000_000));
        // An image whose layers were all in the registry already counts in full.
        renderer.push_event(&P::Pushed {
            location: "c".to_owned(),
            digest: "sha256:c".to_owned(),
            size: 4_000_000,
        });
        assert_eq!(renderer.push.totals(), (5_000_000, 7_000_000));
        assert_eq!(
            renderer.push.text(),
            "5.0 MB of 7.0 MB sent, 1 of 3 images pushed"
        );
    }

    #[test]
    fn sizes_read_like_the_balena_cli() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_140_000), "1.1 MB");
        assert_eq!(human_size(2_500_000_000), "2.5 GB");
    }
}
