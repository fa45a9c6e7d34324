//! Which fleets a deploy goes to and how its targets are built: one build per distinct
//! (architecture, device type) of the fleets, on one daemon or over the builders of
//! `--builder`.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use platform::{Arch, Target};

use super::Args;
use crate::commands::build::{BuildArgs, Finished, build_project, connect};
use crate::commands::progress::Renderer;

/// A fleet of the deploy, with the index of its target in [`distinct_targets`].
pub(super) struct DeployFleet {
    pub(super) fleet: release::Fleet,
    arch: Arch,
    pub(super) target: usize,
}

/// Looks up FLEET and every `--fleet` (each checked against `--arch`/`--device-type`); a
/// fleet given twice is an error.
pub(super) async fn fleets(api: &release::Api, args: &Args) -> anyhow::Result<Vec<DeployFleet>> {
    let mut fleets: Vec<DeployFleet> = Vec::new();
    let mut targets: Vec<(Arch, String)> = Vec::new();
    for given in std::iter::once(&args.fleet).chain(&args.fleets) {
        let fleet = api
            .fleet(given)
            .await
            .with_context(|| format!("looking up fleet {given}"))?;
        if fleets.iter().any(|f| f.fleet.id == fleet.id) {
            bail!("fleet {} is given twice", fleet.slug);
        }
        let arch: Arch = fleet.arch.parse().map_err(|e| {
            anyhow::anyhow!("fleet {} has architecture {}: {e}", fleet.slug, fleet.arch)
        })?;
        fleet_agrees(args, &fleet.slug, arch, &fleet.device_type)?;
        let key = (arch, fleet.device_type.clone());
        let target = match targets.iter().position(|t| *t == key) {
            Some(index) => index,
            None => {
                targets.push(key);
                targets.len() - 1
            }
        };
        fleets.push(DeployFleet {
            fleet,
            arch,
            target,
        });
    }
    Ok(fleets)
}

/// The distinct (architecture, device type) of the fleets, in the order they first appear:
/// each is built once, whatever number of fleets share it.
pub(super) fn distinct_targets(fleets: &[DeployFleet]) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    for fleet in fleets {
        if fleet.target == targets.len() {
            targets.push(Target {
                arch: fleet.arch,
                device_type: fleet.fleet.device_type.clone(),
            });
        }
    }
    targets
}

/// Where a deploy builds: one Docker daemon, or the builders of `--builder`.
pub(super) enum Daemons {
    One(bollard::Docker),
    Pool(Vec<multibuild::pool::Builder>),
}

impl Daemons {
    pub(super) async fn connect(flags: &BuildArgs) -> anyhow::Result<Daemons> {
        if flags.builders.is_empty() {
            return Ok(Daemons::One(connect(flags).await?));
        }
        // Each image is pushed from the builder its outcome names: names must tell them apart.
        for (i, spec) in flags.builders.iter().enumerate() {
            if flags.builders[..i].iter().any(|b| b.name == spec.name) {
                bail!(
                    "two --builder are named {}: give each its own NAME= (deploy pushes each image from the builder that built it)",
                    spec.name
                );
            }
        }
        let builders = crate::commands::builders::connect_all(flags).await?;
        if builders.is_empty() {
            bail!("no builder answered (see the warnings above)");
        }
        Ok(Daemons::Pool(builders))
    }

    /// The daemon images are pushed from unless their [`release::BuiltImage`] names another.
    pub(super) fn default_docker(&self) -> Option<&bollard::Docker> {
        match self {
            Daemons::One(docker) => Some(docker),
            Daemons::Pool(builders) => builders.first().map(|b| &b.docker),
        }
    }

    /// The daemon holding a service's image.
    fn docker_for(&self, outcome: &multibuild::ServiceOutcome) -> Option<bollard::Docker> {
        match self {
            Daemons::One(docker) => Some(docker.clone()),
            Daemons::Pool(_) => self.holding(outcome),
        }
    }

    /// The daemon holding a built service's image when it is a builder of a pool: the one its
    /// outcome names.
    pub(super) fn holding(&self, outcome: &multibuild::ServiceOutcome) -> Option<bollard::Docker> {
        let Daemons::Pool(builders) = self else {
            return None;
        };
        let name = outcome.builder.as_deref()?;
        builders
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.docker.clone())
    }
}

/// Builds every target, in turn, on `daemons`; the first target with a failed service ends
/// the deploy before any release exists.
pub(super) async fn build_targets(
    args: &Args,
    daemons: &Daemons,
    fleets: &[DeployFleet],
    targets: &[Target],
    renderer: &mut Renderer,
) -> anyhow::Result<Vec<Finished>> {
    let reuse = if args.rebuild {
        multibuild::Reuse::Never
    } else {
        multibuild::Reuse::MatchingOrPlatform
    };
    let mut built: Vec<Finished> = Vec::new();
    for target in targets {
        let mut flags = args.build.clone();
        let suffix = multibuild::naming::target_suffix(target, targets);
        flags.tag = multibuild::naming::target_tag(args.build.tag.as_deref(), suffix.as_deref());
        let mut target_args = args.target.clone();
        target_args.device_type = vec![target.device_type.clone()];
        renderer.info(&format!(
            "Deploying to {} ({}/{})",
            fleet_names(fleets, built.len()),
            target.arch,
            target.device_type
        ));
        let finished = match daemons {
            Daemons::One(docker) => {
                build_project(
                    docker,
                    &args.project,
                    &target_args,
                    &flags,
                    Some(target.arch),
                    BTreeMap::new(),
                    reuse,
                    renderer,
                )
                .await?
            }
            Daemons::Pool(builders) => {
                crate::commands::builders::build_target(
                    builders,
                    &args.project,
                    &target_args,
                    &flags,
                    target,
                    BTreeMap::new(),
                    reuse,
                    renderer,
                )
                .await?
            }
        };
        let mut finished = finished;
        let failed = finished.outcomes.iter().any(|o| !o.ok());
        if suffix.is_some() && !failed {
            name_pulled_images(daemons, &mut finished, flags.tag.as_deref()).await?;
        }
        built.push(finished);
        if failed {
            let outcomes: Vec<_> = built.iter().flat_map(|f| f.outcomes.clone()).collect();
            renderer.summary(&outcomes, None);
            if let Daemons::One(docker) = daemons {
                crate::commands::build::report_daemon_gone(docker, &args.build).await;
            }
            bail!("a build failed: no release was created");
        }
    }
    Ok(built)
}

/// With several targets, each pulled (or reused) image of an image-only service is tagged
/// `<project>_<service>:<tag>-<target>` like the built ones and pushed by that name: its
/// own reference names only the platform pulled last on the daemon, and an image left
/// without any name would be removed by the untag after the first fleet's push.
async fn name_pulled_images(
    daemons: &Daemons,
    finished: &mut Finished,
    tag: Option<&str>,
) -> anyhow::Result<()> {
    let project = finished.plan.project_name.clone();
    for outcome in finished.outcomes.iter_mut().filter(|o| o.external) {
        let (Some(id), Some(docker)) = (outcome.image_id.clone(), daemons.docker_for(outcome))
        else {
            continue;
        };
        let name = multibuild::naming::image_name(&project, &outcome.service, tag);
        let (repo, tag) = name.rsplit_once(':').unwrap_or((name.as_str(), "latest"));
        let options = bollard::query_parameters::TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
        };
        docker
            .tag_image(&id, Some(options))
            .await
            .with_context(|| format!("service {}: naming its image {name}", outcome.service))?;
        outcome.image = Some(name);
    }
    Ok(())
}

/// The slugs of the fleets of target `index`, for the line announcing its build.
fn fleet_names(fleets: &[DeployFleet], index: usize) -> String {
    fleets
        .iter()
        .filter(|f| f.target == index)
        .map(|f| f.fleet.slug.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--arch`/`--device-type`, when given, must be the fleet's: deploy builds for the fleet.
fn fleet_agrees(args: &Args, fleet: &str, arch: Arch, device_type: &str) -> anyhow::Result<()> {
    if let Some(given) = args.build.single_arch()?.filter(|given| *given != arch) {
        bail!("--arch {given} disagrees with fleet {fleet}, whose architecture is {arch}");
    }
    if let Some(given) = args
        .target
        .single_device_type()?
        .filter(|given| *given != device_type)
    {
        bail!(
            "--device-type {given} disagrees with fleet {fleet}, whose device type is {device_type}"
        );
    }
    Ok(())
}
