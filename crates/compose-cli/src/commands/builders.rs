//! `build --builder …`: a project built over a pool of Docker daemons (see
//! `multibuild::pool`), each image left on the builder that built it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use futures::future::join_all;
use multibuild::pool::{self, Builder, BuilderSpec};
use resolve::Target;
use tokio::sync::mpsc;

use super::build::{Args, BuildArgs, Finished};
use super::output::errln;
use super::progress::Renderer;
use super::project::{self, ProjectArgs, TargetArgs};

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
    renderer.begin(&plan);
    let (tx, rx) = mpsc::channel(1024);
    let run = pool::run_pool(builders, &route, &plan, &options, tx);
    let (outcomes, ()) = tokio::join!(run, super::build::render(rx, flags.nologs, renderer));
    drop(interrupt);
    Ok(Finished { plan, outcomes })
}

/// Runs `build` over the builders of `--builder`.
pub async fn build(args: &Args, renderer: &mut Renderer) -> anyhow::Result<ExitCode> {
    let flags = &args.build;
    refuse_pool_flags(flags, &args.target)?;
    let builders = connect_all(flags).await?;
    let Some(first) = builders.first() else {
        bail!("no builder answered (see the warnings above)");
    };
    let target =
        project::target(flags.arch, &args.target)?.unwrap_or_else(|| Target::generic(first.native));
    let route = pool::route(&builders, target.arch, args.target.emulates())?;
    // Emulating builders run foreign steps through this machine's binfmt_misc: no rewrite.
    let emulation = if route.emulated {
        emulate::Emulation::Binfmt
    } else {
        emulate::Emulation::Native
    };
    let template_vars =
        BTreeMap::from([("BALENA_RELEASE_HASH".to_owned(), "unavailable".to_owned())]);
    let mut plan = project::plan(
        &args.project,
        &target,
        emulation,
        flags.tag.clone(),
        template_vars,
    )?;
    project::only_services(&mut plan, &flags.services)?;

    let interrupt = crate::signals::arm();
    let options = super::build::run_options(
        flags,
        first.native,
        None,
        multibuild::Reuse::Matching,
        interrupt.token(),
    )
    .context("preparing the build")?;
    renderer.begin(&plan);
    let (tx, rx) = mpsc::channel(1024);
    let run = pool::run_pool(&builders, &route, &plan, &options, tx);
    let (outcomes, ()) = tokio::join!(run, super::build::render(rx, flags.nologs, renderer));
    drop(interrupt);
    renderer.summary(&outcomes, None);
    Ok(if outcomes.iter().all(multibuild::ServiceOutcome::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
