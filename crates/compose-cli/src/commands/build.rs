//! `balena-compose build`: every service of a project built or pulled on a Docker daemon.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bollard::Docker;
use platform::{Arch, Target};
use tokio::sync::mpsc;

use super::output::errln;
use super::progress::{OutputMode, Renderer};
use super::project::{self, ProjectArgs, TargetArgs};

/// Build every service of a compose project on a Docker daemon.
///
/// Services with a `build` are built from their context (with the Dockerfile chosen for the
/// target architecture and device type); services with only an `image` use the daemon's copy
/// when it has one for the target, else are pulled (always with --pull). Services
/// build concurrently; one failing does not stop the others unless --fail-fast. Images are
/// named `<project>_<service>[:<tag>]`, and a service's own `image:` name is added.
/// Each image records its build inputs as labels; a service whose image already records the
/// same inputs is not built again and no context is sent ("reusing …"); --nocache or --pull
/// build it anyway.
///
/// Output: one line per service on a terminal, `[service] …` lines otherwise, or with
/// --json one JSON object per line (see the README for the schema). The exit status is 0
/// only when every service succeeded.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  balena-compose build\n  balena-compose build ./myproject --arch aarch64 --emulated\n  balena-compose build --json --jobs 2 --registry-secrets secrets.yml"
)]
pub struct Args {
    #[command(flatten)]
    pub project: ProjectArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub build: BuildArgs,

    /// With --builder: copy each image built on a builder other than the default daemon (the
    /// one DOCKER_HOST or the Docker context names) to it, streamed through this machine
    /// (`docker save | docker load`, never held whole). Without it each image stays on its
    /// builder, which the summary names.
    #[arg(long)]
    pub load: bool,
}

/// The flags of a build, shared with `deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The target architecture: amd64, aarch64, armv7hf, i386 or rpi. Default: the device
    /// type's, else the Docker daemon's. `build` takes it several times (or --device-type
    /// several times) to build for each target in one run; each target's images are then
    /// tagged `<project>_<service>:<tag>-<arch>` (`latest-<arch>` without --tag; the device
    /// type instead of the arch when two targets share an arch).
    #[arg(short = 'A', long, value_name = "ARCH", value_parser = project::parse_arch)]
    pub arch: Vec<Arch>,

    /// The tag of the built images: `<project>_<service>:<tag>`.
    #[arg(short = 't', long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Do not use the build cache.
    #[arg(long, alias = "no-cache")]
    pub nocache: bool,

    /// Squash the built layers into one (the balena CLI's --squash); only a daemon with
    /// experimental features and the classic builder can, so it is refused otherwise.
    #[arg(long)]
    pub squash: bool,

    /// Only this service; repeatable. `build` touches nothing else; `deploy` builds only
    /// these and takes the other services' images from the fleet's current release.
    #[arg(short = 's', long = "service", value_name = "NAME")]
    pub services: Vec<String>,

    /// Always pull the `FROM` images and the images of image-only services, even when
    /// present locally.
    #[arg(long)]
    pub pull: bool,

    /// An image to use as a cache source; repeatable. Builds go through the daemon's
    /// BuildKit (the classic builder when it has none or DOCKER_BUILDKIT=0 is set), where an
    /// image serves as a cache source only if it carries inline cache metadata: every image
    /// balena-compose builds on BuildKit does (BUILDKIT_INLINE_CACHE=1, unless the project's
    /// build args set it), so earlier builds of these services can be used; images built
    /// elsewhere need the same (`docker build --build-arg BUILDKIT_INLINE_CACHE=1`).
    #[arg(long = "cache-from", value_name = "IMAGE")]
    pub cache_from: Vec<String>,

    /// Private registry credentials: a YAML or JSON file mapping registry hosts to
    /// `{username, password}` (the balena CLI's format). Used with the project's
    /// `.balena/registry-secrets.*` and ~/.docker/config.json for every pull and `FROM`.
    #[arg(short = 'R', long, value_name = "FILE")]
    pub registry_secrets: Option<PathBuf>,

    /// At most this many services build or pull at once.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,

    /// Do not show the services' build output, only their progress and outcome.
    #[arg(long)]
    pub nologs: bool,

    /// Stop every other service as soon as one fails.
    #[arg(long)]
    pub fail_fast: bool,

    /// The Docker daemon: unix:///path/to/docker.sock, tcp://host:port (TLS with
    /// DOCKER_TLS_VERIFY) or ssh://[user@]host[:port]. Default: --context, $DOCKER_HOST,
    /// $DOCKER_CONTEXT, the current Docker context, else unix:///var/run/docker.sock.
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,

    #[command(flatten)]
    pub daemon: super::daemon::DaemonArgs,

    /// Build on this Docker daemon, one of a pool; repeatable. ENDPOINT is an address as
    /// DOCKER_HOST spells it (unix://, tcp:// with the TLS settings above, ssh://) or a
    /// Docker context; jobs (default 4) is how many services build on it at once. Each
    /// service goes to a builder that runs its architecture natively (else, with --emulated,
    /// to a local one with binfmt_misc for it); images stay on the builder that built them
    /// (see --load). --jobs does not apply then. Without --builder (and without
    /// --docker-host/--context), `build` takes the `builders` list of .balena/balena.yml, else of
    /// $XDG_CONFIG_HOME/balena-compose/builders.yml (~/.config/…), each item this same
    /// string or a mapping {name, endpoint, jobs}.
    #[arg(long = "builder", value_name = "[NAME=]ENDPOINT[,jobs=N]", value_parser = parse_builder)]
    pub builders: Vec<multibuild::pool::BuilderSpec>,

    /// Give up on a service whose build or pull takes longer than this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Print one JSON object per line on stdout (events, then a summary) and nothing else.
    #[arg(long)]
    pub json: bool,
}

impl BuildArgs {
    /// The one `--arch` of a command that builds for one target (`deploy`): several are an
    /// error.
    pub fn single_arch(&self) -> anyhow::Result<Option<Arch>> {
        match self.arch.as_slice() {
            [] => Ok(None),
            [arch] => Ok(Some(*arch)),
            several => bail!(
                "--arch is given {} times: only `build` builds for several targets in one run",
                several.len()
            ),
        }
    }
}

fn parse_builder(s: &str) -> Result<multibuild::pool::BuilderSpec, String> {
    s.parse()
        .map_err(|e: multibuild::pool::PoolError| e.to_string())
}

/// Whether `DOCKER_BUILDKIT` (docker's switch, a Go boolean) turns BuildKit off.
fn buildkit_switched_off(value: Option<&str>) -> bool {
    matches!(
        value.map(str::trim),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False")
    )
}

/// What a finished build leaves: the plan and each service's outcome.
#[derive(Debug)]
pub struct Finished {
    /// The plan that was run.
    pub plan: multibuild::Plan,
    /// One outcome per service, in plan order.
    pub outcomes: Vec<multibuild::ServiceOutcome>,
}

/// Connects to the daemon the flags name.
pub async fn connect(args: &BuildArgs) -> anyhow::Result<Docker> {
    args.daemon.connect(args.docker_host.as_deref()).await
}

/// The daemon's architecture.
pub async fn daemon_arch(docker: &Docker) -> anyhow::Result<Arch> {
    let version = docker
        .version()
        .await
        .context("asking the Docker daemon for its version")?;
    let arch = version.arch.unwrap_or_default();
    Arch::from_docker(&arch).with_context(|| {
        format!("the Docker daemon's architecture \"{arch}\" is not one balena knows")
    })
}

/// `--squash`: Docker squashes only with the classic builder on a daemon whose experimental
/// features are on; our builds need BuildKit (secrets, sessions), so it is refused, saying
/// which of the two stands in the way.
async fn refuse_squash(docker: &Docker) -> anyhow::Result<()> {
    let info = docker
        .info()
        .await
        .context("asking the Docker daemon whether it can squash")?;
    if info.experimental_build != Some(true) {
        bail!(
            "--squash is not supported by this daemon: squashing needs a daemon with experimental features enabled"
        );
    }
    bail!(
        "--squash is not supported with BuildKit, which balena-compose builds with on this daemon"
    )
}

/// Plans and builds; shared with `deploy`. `arch`/`device_type` override the flags (deploy
/// takes them from the fleet). `reuse` says which images already on the daemon stand in for
/// a service's build or pull (see [`multibuild::Reuse`]); `--nocache` and `--pull` build all.
#[allow(clippy::too_many_arguments)]
pub async fn build_project(
    docker: &Docker,
    project_args: &ProjectArgs,
    target: &TargetArgs,
    args: &BuildArgs,
    arch: Option<Arch>,
    template_vars: BTreeMap<String, String>,
    reuse: multibuild::Reuse,
    renderer: &mut Renderer,
) -> anyhow::Result<Finished> {
    let host = daemon_arch(docker).await?;
    let target_args = target;
    let target = match arch {
        // deploy: the fleet's arch and device type come from the balena API, which knows
        // device types newer than our table.
        Some(arch) => Target {
            arch,
            device_type: target_args
                .single_device_type()?
                .map_or_else(|| arch.default_device_type().to_owned(), str::to_owned),
        },
        None => project::target(args.single_arch()?, target_args)?
            .unwrap_or_else(|| Target::generic(host)),
    };
    let inputs = Inputs {
        project: project_args,
        target: target_args,
        build: args,
        template_vars,
        reuse,
    };
    build_target(docker, host, &inputs, &target, None, renderer).await
}

/// What every target of a build shares.
struct Inputs<'a> {
    project: &'a ProjectArgs,
    target: &'a TargetArgs,
    build: &'a BuildArgs,
    template_vars: BTreeMap<String, String>,
    reuse: multibuild::Reuse,
}

/// Plans and builds the project for one target on `docker` (whose architecture is `host`);
/// `suffix` tells this target's images and events from the others' of a run for several
/// (see [`multibuild::naming::target_suffix`]).
async fn build_target(
    docker: &Docker,
    host: Arch,
    inputs: &Inputs<'_>,
    target: &Target,
    suffix: Option<&str>,
    renderer: &mut Renderer,
) -> anyhow::Result<Finished> {
    let args = inputs.build;
    let daemon_spec = args.daemon.resolve(args.docker_host.as_deref())?;
    let daemon = project::Daemon {
        arch: host,
        local: matches!(daemon_spec.endpoint, build::Endpoint::Unix(_)),
    };
    let emulation = project::build_emulation(
        target.arch,
        daemon,
        inputs.target,
        emulate::binfmt_registered,
    )?;
    let classic_builder = classic_builder();
    // The rewrite bind-mounts qemu on BuildKit (multibuild decides the same way).
    let buildkit = matches!(emulation, emulate::Emulation::Rewrite { .. })
        && multibuild::uses_buildkit(
            build::daemon_info(docker).await.ok().as_ref(),
            classic_builder,
        );
    for warning in project::rewrite_warnings(&emulation, buildkit) {
        errln!("warning: {warning}");
    }
    let plan = target_plan(inputs, target, emulation, suffix)?;
    if args.squash {
        refuse_squash(docker).await?;
    }

    // A signal cancels every task; the run then ends on its own with each service's outcome.
    let interrupt = crate::signals::arm();
    let options = run_options(
        args,
        host,
        Some(daemon_spec),
        inputs.reuse,
        interrupt.token(),
    )?;
    renderer.begin_target(&plan, suffix);
    let (tx, rx) = mpsc::channel(1024);
    let run = multibuild::run(docker, &plan, &options, tx);
    let (mut outcomes, ()) = tokio::join!(run, render_for(rx, args.nologs, suffix, renderer));
    drop(interrupt);
    for outcome in &mut outcomes {
        outcome.target = suffix.map(str::to_owned);
    }
    Ok(Finished { plan, outcomes })
}

/// The plan of one target: its images tagged with `suffix` (see
/// [`multibuild::naming::target_tag`]). With a suffix, a service's own `image:` name is not
/// added (see [`keep_project_names`]).
fn target_plan(
    inputs: &Inputs<'_>,
    target: &Target,
    emulation: emulate::Emulation,
    suffix: Option<&str>,
) -> anyhow::Result<multibuild::Plan> {
    let tag = multibuild::naming::target_tag(inputs.build.tag.as_deref(), suffix);
    let mut plan = project::plan(
        inputs.project,
        target,
        emulation,
        tag,
        inputs.template_vars.clone(),
    )?;
    project::only_services(&mut plan, &inputs.build.services)?;
    if suffix.is_some() {
        keep_project_names(&mut plan);
    }
    Ok(plan)
}

/// Leaves each build only its `<project>_<service>:<tag>` name: in a build for several
/// targets a service's own `image:` name would be claimed by each.
pub(crate) fn keep_project_names(plan: &mut multibuild::Plan) {
    for task in &mut plan.tasks {
        if let Ok(multibuild::TaskKind::Build(build)) = &mut task.kind {
            build.tags.truncate(1);
        }
    }
}

/// `build --arch a --arch b` (or several --device-type) on one daemon: each target in turn
/// (so --jobs holds), every image named with its target's suffix.
async fn build_targets(
    args: &Args,
    targets: &[Target],
    renderer: &mut Renderer,
) -> anyhow::Result<ExitCode> {
    let docker = connect(&args.build).await?;
    let host = daemon_arch(&docker).await?;
    let inputs = Inputs {
        project: &args.project,
        target: &args.target,
        build: &args.build,
        template_vars: unavailable_release_hash(),
        reuse: multibuild::Reuse::Matching,
    };
    let mut outcomes = Vec::new();
    for target in targets {
        let suffix = multibuild::naming::target_suffix(target, targets);
        let finished =
            build_target(&docker, host, &inputs, target, suffix.as_deref(), renderer).await?;
        let failed = !finished.outcomes.iter().all(multibuild::ServiceOutcome::ok);
        outcomes.extend(finished.outcomes);
        // --fail-fast and a signal stop the targets still to come as well.
        if (failed && args.build.fail_fast) || crate::signals::received().is_some() {
            break;
        }
    }
    renderer.summary(&outcomes, None);
    if outcomes.iter().all(multibuild::ServiceOutcome::ok) {
        return Ok(ExitCode::SUCCESS);
    }
    report_daemon_gone(&docker, &args.build).await;
    Ok(ExitCode::FAILURE)
}

/// `build` has no release: `%%BALENA_RELEASE_HASH%%` says so.
pub(crate) fn unavailable_release_hash() -> BTreeMap<String, String> {
    BTreeMap::from([("BALENA_RELEASE_HASH".to_owned(), "unavailable".to_owned())])
}

/// How to run a plan with these flags: `host` is the daemon's architecture, `daemon` the one
/// builds with secrets open sessions to.
pub(crate) fn run_options(
    args: &BuildArgs,
    host: Arch,
    daemon: Option<build::Daemon>,
    reuse: multibuild::Reuse,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<multibuild::RunOptions> {
    let mut registry_auth = build::RegistryAuth::from_default_docker_config()?;
    if let Some(file) = &args.registry_secrets {
        let secrets = multibuild::registry_secrets::read_file(file)?;
        registry_auth.merge(&build::RegistryAuth::from_registry_secrets(&secrets));
    }
    Ok(multibuild::RunOptions {
        jobs: usize::from(args.jobs),
        fail_fast: args.fail_fast,
        nocache: args.nocache,
        pull: args.pull,
        cache_from: args.cache_from.clone(),
        registry_auth,
        host_arch: host,
        timeout: args.timeout.map(Duration::from_secs),
        cancel,
        daemon,
        reuse: if args.nocache || args.pull {
            multibuild::Reuse::Never
        } else {
            reuse
        },
        classic_builder: classic_builder(),
        plain_progress: super::progress::plain_requested(),
    })
}

/// docker's own `DOCKER_BUILDKIT=0` asks for the classic builder.
fn classic_builder() -> bool {
    buildkit_switched_off(std::env::var("DOCKER_BUILDKIT").ok().as_deref())
}

/// Shows a run's events as they come (without build output under --nologs); `target` is the
/// suffix of the run's target in a build for several.
pub(crate) async fn render_for(
    mut rx: mpsc::Receiver<multibuild::Event>,
    nologs: bool,
    target: Option<&str>,
    renderer: &mut Renderer,
) {
    while let Some(event) = rx.recv().await {
        if nologs && matches!(event, multibuild::Event::Progress { .. }) {
            continue;
        }
        renderer.event_for(target, &event);
    }
}

/// Runs the command.
pub async fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    let mut renderer = Renderer::new(OutputMode::detect(args.build.json));
    let targets = project::targets(&args.build.arch, &args.target)?;
    // `--builder` replaces the builders of balena.yml or builders.yml; naming one daemon
    // (--docker-host, --context, --dockerHost) builds on it alone.
    let one_daemon = args.build.docker_host.is_some()
        || args.build.daemon.context.is_some()
        || args.build.daemon.balena_docker_host.is_some();
    if args.build.builders.is_empty()
        && !one_daemon
        && let Some((file, builders)) = super::builders::configured(&args.project)?
    {
        renderer.info(&format!("building over the builders of {file}"));
        args.build.builders = builders;
    }
    if !args.build.builders.is_empty() {
        return super::builders::build(&args, &targets, &mut renderer).await;
    }
    if args.load {
        bail!(
            "--load copies images from builders: give --builder, or a `builders` list in .balena/balena.yml or {}",
            super::builders::user_builders_file()
                .map_or_else(|| "builders.yml".to_owned(), |p| p.display().to_string())
        );
    }
    if targets.len() > 1 {
        return build_targets(&args, &targets, &mut renderer).await;
    }
    let docker = connect(&args.build).await?;
    let finished = build_project(
        &docker,
        &args.project,
        &args.target,
        &args.build,
        None,
        unavailable_release_hash(),
        multibuild::Reuse::Matching,
        &mut renderer,
    )
    .await?;
    renderer.summary(&finished.outcomes, None);
    if finished.outcomes.iter().all(multibuild::ServiceOutcome::ok) {
        return Ok(ExitCode::SUCCESS);
    }
    report_daemon_gone(&docker, &args.build).await;
    Ok(ExitCode::FAILURE)
}

/// After a failed build, says so when the daemon no longer answers: a daemon being stopped
/// (`systemctl stop docker`) first kills the running step, whose failure alone reads like the
/// Dockerfile's fault.
pub(crate) async fn report_daemon_gone(docker: &Docker, args: &BuildArgs) {
    let ping = tokio::time::timeout(Duration::from_secs(5), docker.ping()).await;
    if matches!(ping, Ok(Ok(_))) {
        return;
    }
    let host = args
        .daemon
        .resolve(args.docker_host.as_deref())
        .map_or_else(|_| "its address".to_owned(), |d| d.host);
    errln!("error: the Docker daemon at {host} no longer answers: it stopped during the build");
}

#[cfg(test)]
mod tests {
    use super::buildkit_switched_off;

    #[test]
    fn docker_buildkit_zero_or_false_switches_buildkit_off() {
        for off in ["0", "false", "FALSE", "f"] {
            assert!(buildkit_switched_off(Some(off)), "{off}");
        }
        for on in [None, Some("1"), Some("true"), Some("")] {
            assert!(!buildkit_switched_off(on), "{on:?}");
        }
    }
}
