//! `build --builder …`: a project built over a pool of Docker daemons (see
//! `multibuild::pool`), each image left on the builder that built it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use futures::future::join_all;
use multibuild::pool::{self, Builder, BuilderSpec};
use platform::Target;
use tokio::sync::mpsc;

use super::build::{Args, BuildArgs, Finished};
use super::output::errln;
use super::progress::Renderer;
use super::project::{self, ProjectArgs, TargetArgs};

/// The builders a project builds over when no `--builder` is given: the `builders` list of
/// the project's `.balena/balena.yml` (a directory project; read by the one metadata reader,
/// `multibuild::metadata`), else of the user's `builders.yml` (see [`user_builders_file`]);
/// with the file they came from. `None` when neither has any.
pub fn configured(project: &ProjectArgs) -> anyhow::Result<Option<(String, Vec<BuilderSpec>)>> {
    let location = project.location();
    if location.is_dir() {
        for dir in context::METADATA_DIRS {
            let metadata_dir = location.join(dir);
            if !metadata_dir.is_dir() {
                continue;
            }
            let metadata = multibuild::metadata::BuildMetadata::read(dir, |name| {
                std::fs::read(metadata_dir.join(name)).ok()
            })?;
            if !metadata.builders.is_empty() {
                let file = metadata.file.unwrap_or_else(|| dir.to_owned());
                return Ok(Some((file, metadata.builders)));
            }
            break;
        }
    }
    let Some(path) = user_builders_file() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let file = path.display().to_string();
    let builders = pool::read_builders_file(&file, &text)?;
    Ok((!builders.is_empty()).then_some((file, builders)))
}

/// `$XDG_CONFIG_HOME/balena-compose/builders.yml`, else `~/.config/balena-compose/builders.yml`.
pub fn user_builders_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("balena-compose").join("builders.yml"))
}

/// Connects to every builder at once; one that cannot be reached is said once and left out.
pub async fn connect_all(args: &BuildArgs) -> anyhow::Result<Vec<Builder>> {
    let tls = args.daemon.resolve_tls()?;
    let connected = join_all(args.builders.iter().map(|spec| connect(spec, &tls))).await;
    let mut up = Vec::new();
    for (spec, result) in args.builders.iter().zip(connected) {
        match result {
            Ok(builder) => up.push(builder),
            Err(e) => errln!(
                "warning: builder {} is down, building on the others: {e:#}",
                spec.name
            ),
        }
    }
    Ok(up)
}

async fn connect(spec: &BuilderSpec, tls: &build::DaemonFlags) -> anyhow::Result<Builder> {
    let daemon = build::Daemon::resolve(&spec.daemon_flags(tls))?;
    let docker = build::connect_to(&daemon).await?;
    Ok(Builder::describe(spec, daemon, docker, emulate::binfmt_registered).await?)
}

/// Runs `build` over the builders of `--builder`, for each of `targets` (the repeatable
/// `--arch`/`--device-type`; none: the first builder's architecture) at once, the builders'
/// job slots shared by all.
pub async fn build(
    args: &Args,
    targets: &[Target],
    renderer: &mut Renderer,
) -> anyhow::Result<ExitCode> {
    refuse_pool_flags(&args.build, &args.target)?;
    let builders = connect_all(&args.build).await?;
    let Some(first) = builders.first() else {
        bail!("no builder answered (see the warnings above)");
    };
    let targets = match targets {
        [] => vec![Target::generic(first.native)],
        given => given.to_vec(),
    };
    let mut planned = Vec::new();
    for target in &targets {
        let suffix = multibuild::naming::target_suffix(target, &targets);
        planned.push(plan_target(args, &builders, target, suffix)?);
    }

    let interrupt = crate::signals::arm();
    let options = super::build::run_options(
        &args.build,
        first.native,
        None,
        multibuild::Reuse::Matching,
        interrupt.token(),
    )
    .context("preparing the build")?;
    for target in &planned {
        renderer.begin_target(&target.plan, target.suffix.as_deref());
    }
    let (tagged_tx, tagged_rx) = mpsc::channel(1024);
    let mut runs = Vec::new();
    let mut forwards = Vec::new();
    for target in &planned {
        let (tx, rx) = mpsc::channel(1024);
        runs.push(pool::TargetRun {
            route: &target.route,
            plan: &target.plan,
            events: tx,
        });
        forwards.push(tag_events(rx, target.suffix.clone(), tagged_tx.clone()));
    }
    drop(tagged_tx);
    let run = pool::run_pools(&builders, runs, &options);
    let (per_target, _, ()) = tokio::join!(
        run,
        join_all(forwards),
        render_tagged(tagged_rx, args.build.nologs, renderer)
    );
    drop(interrupt);
    let mut outcomes = with_targets(per_target, &planned);
    if args.load {
        load_onto_default(&args.build, &builders, &mut outcomes, renderer).await?;
    }
    renderer.summary(&outcomes, None);
    Ok(if outcomes.iter().all(multibuild::ServiceOutcome::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The flags a pool cannot honour, refused before anything is built (`build` and `deploy`).
pub(crate) fn refuse_pool_flags(flags: &BuildArgs, target: &TargetArgs) -> anyhow::Result<()> {
    if flags.squash {
        bail!("--squash cannot be used with --builder");
    }
    // A pool emulates only through the binfmt_misc of a builder's own machine: the rewrite
    // (and the qemu it copies or mounts) is not carried to the builders.
    if target.qemu.is_some() || matches!(target.emulation, Some(project::EmulationMode::Rewrite)) {
        bail!(
            "--emulation rewrite and --qemu cannot be used with --builder: builders emulate through binfmt_misc (`balena-compose emulation setup` on the builder's machine)"
        );
    }
    let daemon = &flags.daemon;
    if flags.docker_host.is_some()
        || daemon.context.is_some()
        || daemon.balena_docker_host.is_some()
    {
        bail!(
            "--builder names every daemon to build on: give the one of --docker-host, --context or --dockerHost as a --builder too"
        );
    }
    Ok(())
}

/// One target built over `builders` for `deploy --builder` (as `build --builder` does, with
/// the target and reuse deploy chooses): each image stays on the builder its outcome names.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn build_target(
    builders: &[Builder],
    project_args: &ProjectArgs,
    target_args: &TargetArgs,
    flags: &BuildArgs,
    target: &Target,
    template_vars: BTreeMap<String, String>,
    reuse: multibuild::Reuse,
    renderer: &mut Renderer,
) -> anyhow::Result<Finished> {
    let Some(first) = builders.first() else {
        bail!("no builder answered (see the warnings above)");
    };
    let route = pool::route(builders, target.arch, target_args.emulates())?;
    let emulation = if route.emulated {
        emulate::Emulation::Binfmt
    } else {
        emulate::Emulation::Native
    };
    let mut plan = project::plan(
        project_args,
        target,
        emulation,
        flags.tag.clone(),
        template_vars,
    )?;
    project::only_services(&mut plan, &flags.services)?;
    let interrupt = crate::signals::arm();
    let options = super::build::run_options(flags, first.native, None, reuse, interrupt.token())
        .context("preparing the build")?;
    renderer.begin_target(&plan, None);
    let (tx, rx) = mpsc::channel(1024);
    let run = pool::run_pool(builders, &route, &plan, &options, tx);
    let render = super::build::render_for(rx, flags.nologs, None, renderer);
    let (outcomes, ()) = tokio::join!(run, render);
    drop(interrupt);
    Ok(Finished { plan, outcomes })
}

/// One target's plan, the builders it goes to, and its image suffix.
struct PlannedTarget {
    plan: multibuild::Plan,
    route: pool::Route,
    suffix: Option<String>,
}

fn plan_target(
    args: &Args,
    builders: &[Builder],
    target: &Target,
    suffix: Option<String>,
) -> anyhow::Result<PlannedTarget> {
    let route = pool::route(builders, target.arch, args.target.emulates())?;
    // Emulating builders run foreign steps through this machine's binfmt_misc: no rewrite.
    let emulation = if route.emulated {
        emulate::Emulation::Binfmt
    } else {
        emulate::Emulation::Native
    };
    let tag = multibuild::naming::target_tag(args.build.tag.as_deref(), suffix.as_deref());
    let mut plan = project::plan(
        &args.project,
        target,
        emulation,
        tag,
        super::build::unavailable_release_hash(),
    )?;
    project::only_services(&mut plan, &args.build.services)?;
    if suffix.is_some() {
        super::build::keep_project_names(&mut plan);
    }
    Ok(PlannedTarget {
        plan,
        route,
        suffix,
    })
}

/// Passes one target's events on with its suffix.
async fn tag_events(
    mut rx: mpsc::Receiver<multibuild::Event>,
    suffix: Option<String>,
    tx: mpsc::Sender<(Option<String>, multibuild::Event)>,
) {
    while let Some(event) = rx.recv().await {
        if tx.send((suffix.clone(), event)).await.is_err() {
            return;
        }
    }
}

async fn render_tagged(
    mut rx: mpsc::Receiver<(Option<String>, multibuild::Event)>,
    nologs: bool,
    renderer: &mut Renderer,
) {
    while let Some((suffix, event)) = rx.recv().await {
        if nologs && matches!(event, multibuild::Event::Progress { .. }) {
            continue;
        }
        renderer.event_for(suffix.as_deref(), &event);
    }
}

/// Every target's outcomes in one list, each naming its target.
fn with_targets(
    per_target: Vec<Vec<multibuild::ServiceOutcome>>,
    planned: &[PlannedTarget],
) -> Vec<multibuild::ServiceOutcome> {
    per_target
        .into_iter()
        .zip(planned)
        .flat_map(|(outcomes, target)| {
            outcomes.into_iter().map(|mut outcome| {
                outcome.target.clone_from(&target.suffix);
                outcome
            })
        })
        .collect()
}

/// `--load`: every image of a service that succeeded on a builder other than the default
/// daemon is copied there ([`build::copy_image`], one stream each); a copy that fails fails
/// its service.
async fn load_onto_default(
    flags: &BuildArgs,
    builders: &[Builder],
    outcomes: &mut [multibuild::ServiceOutcome],
    renderer: &Renderer,
) -> anyhow::Result<()> {
    let default = flags.daemon.resolve(None)?;
    let docker = flags
        .daemon
        .connect(None)
        .await
        .context("connecting to the default daemon for --load")?;
    for outcome in outcomes.iter_mut().filter(|o| o.ok()) {
        let Some(builder) = builders
            .iter()
            .find(|b| Some(&b.name) == outcome.builder.as_ref())
        else {
            continue;
        };
        let Some(image) = outcome.image.clone() else {
            continue;
        };
        if builder.daemon.host == default.host {
            continue;
        }
        match build::copy_image(&builder.docker, &docker, &image).await {
            Ok(copied) => renderer.info(&format!(
                "loaded {image} ({}) from builder {} onto {}",
                super::progress::human_size(copied.bytes),
                builder.name,
                default.host
            )),
            Err(e) => {
                outcome.error = Some(format!(
                    "built on builder {}, but loading it onto {} failed: {e}",
                    builder.name, default.host
                ));
            }
        }
    }
    Ok(())
}
