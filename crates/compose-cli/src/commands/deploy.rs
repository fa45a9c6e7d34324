//! `balena-compose deploy`: build what is missing, then push every image and record a
//! release on the balena API — all or nothing.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use indexmap::IndexMap;
use serde_json::{Value, json};

use super::build::{BuildArgs, Finished};
use super::progress::{OutputMode, Renderer};
use super::project::{ProjectArgs, TargetArgs};
use targets::{Daemons, DeployFleet, build_targets, distinct_targets, fleets};

mod targets;

/// Build a project for a fleet, push its images and create a release.
///
/// The fleet's architecture and device type decide the build (--arch/--device-type that say
/// otherwise are an error). A service's image already on the daemon is reused, without
/// --build, only when its recorded build inputs (arch, device type, Dockerfile, context,
/// build args, base images) are what the fleet's build would use now, or, for an image
/// without those labels, when its platform is the fleet's. The release is created only after
/// every build succeeded; it ends `success` only when every image is pushed and recorded. Any
/// failure after it exists (a push that fails its retries, the registry or API going away,
/// SIGINT/SIGTERM/SIGHUP) ends with the release and its unfinished images marked `failed`, the local
/// registry tags removed, and a non-zero exit.
///
/// `deploy FLEET IMAGE` (a PROJECT argument that is neither a file nor a directory) releases
/// that image as the single service `main`, as the balena CLI does. With --service, only
/// those services are built; the others keep the images of the fleet's current release
/// (nothing pulled or pushed for them), and the release's `balena-compose.rebuilt-services`
/// tag names the rebuilt ones.
///
/// `--fleet OTHER` (repeatable) releases the same project to more fleets: one build per
/// distinct architecture and device type among them, all before any release, then one
/// release per fleet (one fleet's failure does not stop the others). With --builder the
/// services are spread over those daemons as `build --builder` does, each image is pushed
/// from the builder that built it, and an image is reused only from the builder its service
/// lands on.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  balena-compose deploy myorg/myfleet\n  balena-compose deploy myorg/myfleet --service web\n  balena-compose deploy myorg/myfleet myorg/myimage:1.0\n  balena-compose deploy myorg/myfleet ./project --build --release-tag version 1.2 --note 'first'\n  balena-compose deploy myorg/x86fleet ./project --fleet myorg/armfleet --builder arm=ssh://user@arm-host\n\nThe API key comes from --api-key, BALENA_API_KEY or the balena CLI's login (~/.balena/token) and is never printed."
)]
pub struct Args {
    /// The fleet: `org/name` slug (or numeric id).
    #[arg(value_name = "FLEET")]
    fleet: String,

    /// Another fleet to release the same project to; repeatable. The project is built once
    /// for each distinct architecture and device type among the fleets (images of several
    /// targets are named `<project>_<service>:<tag>-<arch>`, `latest` when no --tag), and
    /// each fleet gets a release of its own.
    #[arg(long = "fleet", value_name = "FLEET")]
    fleets: Vec<String>,

    #[command(flatten)]
    project: ProjectArgs,

    #[command(flatten)]
    target: TargetArgs,

    #[command(flatten)]
    build: BuildArgs,

    /// The balena CLI's --source: the project directory (canonically the PROJECT argument).
    #[arg(
        long = "source",
        value_name = "DIR",
        hide = true,
        conflicts_with = "project"
    )]
    source: Option<std::path::PathBuf>,

    /// Rebuild every service, even those whose image already exists.
    #[arg(long = "build")]
    rebuild: bool,

    /// Do not upload build logs to the image records.
    #[arg(long)]
    nologupload: bool,

    /// A release tag `KEY VALUE`; repeatable.
    #[arg(long = "release-tag", num_args = 2, value_names = ["KEY", "VALUE"])]
    release_tags: Vec<String>,

    /// Create a draft release (not final).
    #[arg(long)]
    draft: bool,

    /// A note for the release, set after a successful deploy.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,

    /// The balena API's base URL. Default: https://api.<BALENARC_BALENA_URL> (the balena
    /// CLI's setting), else https://api.balena-cloud.com.
    #[arg(long, env = "BALENA_API_URL", value_name = "URL")]
    api_url: Option<String>,

    /// The balena API key (sent as a bearer token, never printed). Default: the balena CLI's
    /// login, ~/.balena/token.
    #[arg(
        long,
        env = "BALENA_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,

    /// Seconds each balena API request may take before it is retried.
    #[arg(
        long,
        env = "BALENA_API_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 30
    )]
    api_timeout: u64,

    /// How often a balena API request that failed transiently (5xx, timeout, dropped
    /// connection) is retried, with exponential backoff from 1 s.
    #[arg(
        long,
        env = "BALENA_API_RETRIES",
        value_name = "N",
        default_value_t = release::RetryPolicy::API.max_attempts - 1
    )]
    api_retries: u32,
}

impl Args {
    /// The project flags, for the options given before the subcommand.
    pub fn project_mut(&mut self) -> &mut ProjectArgs {
        &mut self.project
    }
}

/// Runs the command.
pub async fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    if let Some(source) = args.source.take() {
        args.project.project = Some(source);
    }
    if !args.build.builders.is_empty() {
        super::builders::refuse_pool_flags(&args.build, &args.target)?;
    }
    let tags = release_tags(&args.release_tags)?;
    // Several --arch/--device-type are `build`'s: refused before the API is asked anything.
    args.build.single_arch()?;
    args.target.single_device_type()?;
    let mut renderer = Renderer::new(OutputMode::detect(args.build.json));
    // Kept until the deploy ends: it holds the composition of `deploy FLEET IMAGE`.
    let _image_project = image_project(&mut args, &renderer)?;
    let api = balena_api(&args, &renderer)?;
    // Checked before any build, so a wrong key costs nothing.
    let user = api.whoami().await.context("checking the API key")?;
    let fleets = fleets(&api, &args).await?;
    let contract = release_contract(&args.project)?;
    // `--service`: the others come from each fleet's current release, so it must have one.
    let mut currents = Vec::new();
    if !args.build.services.is_empty() {
        for fleet in &fleets {
            currents.push(current_release(&api, &fleet.fleet).await?);
        }
    }
    let targets = distinct_targets(&fleets);
    if targets.len() > 1 && args.project.location() == std::path::Path::new("-") {
        // Each target reads the project anew; standard input can be read once.
        bail!(
            "a project on standard input is read once: the fleets have {} architectures or device types to build for; give the tar as a file",
            targets.len()
        );
    }
    let daemons = Daemons::connect(&args.build).await?;
    let built = build_targets(&args, &daemons, &fleets, &targets, &mut renderer).await?;
    let outcomes: Vec<multibuild::ServiceOutcome> = built
        .iter()
        .flat_map(|finished| finished.outcomes.iter().cloned())
        .collect();
    for fleet in &fleets {
        let services = built[fleet.target].plan.composition.services.len();
        if services > 1 && !fleet.fleet.supports_multicontainer {
            bail!(
                "fleet {} does not support multiple containers",
                fleet.fleet.slug
            );
        }
    }
    let releases = release_each(
        &args,
        &api,
        user.id,
        &tags,
        contract,
        &daemons,
        &fleets,
        &currents,
        &built,
        &mut renderer,
    )
    .await;
    let release = if fleets.len() == 1 {
        releases.iter().find_map(|(release, _)| release.clone())
    } else {
        Some(Value::Array(
            releases
                .iter()
                .filter_map(|(release, _)| release.clone())
                .collect(),
        ))
    };
    renderer.summary(&outcomes, release);
    let mut failures: Vec<anyhow::Error> = releases
        .into_iter()
        .filter_map(|(_, failure)| failure)
        .collect();
    match failures.len() {
        0 => Ok(ExitCode::SUCCESS),
        1 if fleets.len() == 1 => Err(failures.remove(0)),
        n => {
            let each: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
            bail!(
                "{n} of {} releases failed: {}",
                fleets.len(),
                each.join("; ")
            )
        }
    }
}

/// Creates, pushes and labels each fleet's release in turn (one failing does not stop the
/// others; a signal does): for each fleet, its release as the summary shows it (if it was
/// created) and its failure (if any).
#[allow(clippy::too_many_arguments)]
async fn release_each(
    args: &Args,
    api: &release::Api,
    user: u64,
    tags: &[(String, String)],
    contract: Option<Value>,
    daemons: &Daemons,
    fleets: &[DeployFleet],
    currents: &[release::CurrentRelease],
    built: &[Finished],
    renderer: &mut Renderer,
) -> Vec<(Option<Value>, Option<anyhow::Error>)> {
    // A signal from here on is caught: once a release exists it must end `failed`, not stay
    // `running`; an interrupt while it is being created cancels the push right after.
    let interrupt = crate::signals::arm();
    let cancel = interrupt.token();
    let releasing = Releasing {
        api,
        args,
        user,
        tags,
        contract,
        daemons,
        cancel: &cancel,
    };
    let mut releases = Vec::new();
    for (i, fleet) in fleets.iter().enumerate() {
        if cancel.is_cancelled() {
            let e = anyhow::anyhow!(
                "fleet {}: interrupted before its release was created",
                fleet.fleet.slug
            );
            releases.push((None, Some(e)));
            continue;
        }
        let finished = &built[fleet.target];
        match releasing
            .release(&fleet.fleet, currents.get(i), finished, renderer)
            .await
        {
            Ok(release) => releases.push((Some(release), None)),
            Err((release, e)) => releases.push((release, Some(e))),
        }
    }
    releases
}

/// What every fleet's release of a deploy shares.
struct Releasing<'a> {
    api: &'a release::Api,
    args: &'a Args,
    user: u64,
    tags: &'a [(String, String)],
    contract: Option<Value>,
    daemons: &'a Daemons,
    cancel: &'a tokio_util::sync::CancellationToken,
}

/// A fleet's release as the summary shows it.
fn release_json(fleet: &str, release: &release::Release, status: &str) -> Value {
    json!({"fleet": fleet, "id": release.id, "commit": release.commit, "status": status})
}

impl Releasing<'_> {
    /// Creates `fleet`'s release of `finished`, pushes its images from the daemons that hold
    /// them and labels it; on failure the release (if it exists, as the summary shows it)
    /// and the error.
    async fn release(
        &self,
        fleet: &release::Fleet,
        current: Option<&release::CurrentRelease>,
        finished: &Finished,
        renderer: &mut Renderer,
    ) -> Result<Value, (Option<Value>, anyhow::Error)> {
        let args = self.args;
        let composition = finished.plan.composition.to_json();
        let mut new =
            release::NewRelease::new(self.user, fleet.id, composition, release::random_commit());
        new.is_final = !args.draft;
        if let Some(contract) = &self.contract {
            new.semver = contract
                .get("version")
                .and_then(Value::as_str)
                .map(str::to_owned);
            new.contract = Some(contract.clone());
        }
        if let Some(current) = current {
            new.reused = reused_images(&finished.plan, &args.build.services, current)
                .map_err(|e| (None, e))?;
        }
        let built = built_images(
            &finished.outcomes,
            &mut new,
            !args.nologupload,
            self.daemons,
        );
        renderer.info(&format!("Creating release for {}...", fleet.slug));
        let created = self
            .api
            .create_release(&new)
            .await
            .with_context(|| format!("creating the release of fleet {}", fleet.slug))
            .map_err(|e| (None, e))?;
        renderer.info(&format!(
            "Pushing images of release {} to the registry...",
            created.release.commit
        ));
        let Some(docker) = self.daemons.default_docker() else {
            return Err((None, anyhow::anyhow!("no Docker daemon to push from")));
        };
        let result = push_release(self.api, docker, &created, &built, self.cancel, renderer).await;
        match result {
            Ok(_) => {
                let rebuilt = current.is_some().then_some(args.build.services.as_slice());
                label_release(
                    self.api,
                    created.release.id,
                    self.tags,
                    rebuilt,
                    args.note.as_deref(),
                )
                .await
                .map_err(|e| (None, e))?;
                renderer.info(&format!(
                    "Deploy succeeded: release {} of fleet {}",
                    created.release.commit, fleet.slug
                ));
                Ok(release_json(&fleet.slug, &created.release, "success"))
            }
            Err(outcome) => {
                let status = if outcome.cleanup.is_some() {
                    "running"
                } else {
                    "failed"
                };
                Err((
                    Some(release_json(&fleet.slug, &created.release, status)),
                    push_failure(&outcome, &created.release, self.cancel.is_cancelled()),
                ))
            }
        }
    }
}

/// `deploy FLEET IMAGE` (the balena CLI's): a PROJECT argument that is no file or
/// directory and no service of the project here is an image, deployed as the default
/// single-service composition (`main`). It is written to a temporary project directory,
/// returned to live as long as the deploy, so that it builds (pulls, or reuses the daemon's
/// copy) and is released like any project.
fn image_project(
    args: &mut Args,
    renderer: &Renderer,
) -> anyhow::Result<Option<tempfile::TempDir>> {
    let Some(image) = args.project.project.as_deref().and_then(|p| {
        let is_project = p.exists() || p == std::path::Path::new("-");
        (!is_project && !super::project::names_a_service_here(p))
            .then(|| p.to_string_lossy().into_owned())
    }) else {
        return Ok(None);
    };
    if args.rebuild {
        bail!("deploy FLEET IMAGE takes the image as it is: --build cannot be used with it");
    }
    if !args.project.files.is_empty() || !args.build.services.is_empty() {
        bail!(
            "deploy FLEET IMAGE is a one-service release: -f and --service cannot be used with it"
        );
    }
    renderer.info(&format!(
        "Creating default composition with image: \"{image}\""
    ));
    let dir = tempfile::Builder::new()
        .prefix("balena-compose-image-")
        .tempdir()
        .context("creating a directory for the image's composition")?;
    let composition = parse::default_composition(Some(&image), None).to_json();
    // JSON is YAML: the composition is read back like any compose file.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        composition.to_string(),
    )
    .context("writing the image's composition")?;
    if args.project.project_name.is_none() {
        // The balena CLI's default project name: the current directory's.
        let cwd = std::env::current_dir().context("reading the current directory")?;
        args.project.project_name = cwd.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    args.project.project = Some(dir.path().to_path_buf());
    Ok(Some(dir))
}

/// The release tag of a `deploy --service` release naming the services it rebuilt
/// (comma-separated); the others' images are those of the release before.
const REBUILT_SERVICES_TAG: &str = "balena-compose.rebuilt-services";

/// Pushes the release's images and records them, showing each push's progress as it comes.
async fn push_release(
    api: &release::Api,
    docker: &bollard::Docker,
    created: &release::CreatedRelease,
    built: &IndexMap<String, release::BuiltImage>,
    cancel: &tokio_util::sync::CancellationToken,
    renderer: &mut Renderer,
) -> Result<IndexMap<String, release::Pushed>, Box<release::DeployOutcome>> {
    renderer.begin_push(
        created
            .images
            .iter()
            .map(|(service, image)| (service.clone(), image.location.clone())),
    );
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let options = release::PushOptions {
        cancel: cancel.clone(),
        events: Some(events_tx),
        ..release::PushOptions::default()
    };
    // `options` holds the event sender: it goes when the push is done, which ends `report`.
    let push = async {
        let result = release::push_and_record(api, docker, created, built, None, &options).await;
        drop(options);
        result
    };
    let report = async {
        while let Some(event) = events_rx.recv().await {
            renderer.push_event(&event);
        }
    };
    let (result, ()) = tokio::join!(push, report);
    result
}

/// The error of a push that failed (or was interrupted: `cancelled`), naming the release and
/// the state it is left in.
fn push_failure(
    outcome: &release::DeployOutcome,
    release: &release::Release,
    cancelled: bool,
) -> anyhow::Error {
    let what = match crate::signals::received_name() {
        Some(signal) if cancelled => format!("deploy interrupted ({signal})"),
        _ => "deploy failed".to_owned(),
    };
    anyhow::anyhow!(
        "{what}: {}; release {} (id {}): {}",
        outcome.cause,
        release.commit,
        release.id,
        release::left_as(outcome.cleanup.as_ref())
    )
}

/// The balena API client of `--api-key` (else the balena CLI's login) and `--api-url`, with
/// the timeout and retries asked for; retries are said through `renderer`.
fn balena_api(args: &Args, renderer: &Renderer) -> anyhow::Result<release::Api> {
    let key = match args.api_key.clone().filter(|k| !k.is_empty()) {
        Some(key) => key,
        None => match super::balena_login::stored_token()? {
            Some(token) => token,
            None => bail!(
                "no balena API key: pass --api-key, set BALENA_API_KEY or log in with the balena CLI"
            ),
        },
    };
    let api_url = args
        .api_url
        .clone()
        .unwrap_or_else(super::balena_login::api_url);
    Ok(release::Api::new(&api_url, key)?
        .with_timeout(std::time::Duration::from_secs(args.api_timeout.max(1)))
        .with_retry(release::RetryPolicy {
            max_attempts: args.api_retries.saturating_add(1),
            ..release::RetryPolicy::API
        })
        .with_retry_notice(std::sync::Arc::new(renderer.info_printer())))
}

/// The fleet's current release, which `--service` takes the other services' images from.
async fn current_release(
    api: &release::Api,
    fleet: &release::Fleet,
) -> anyhow::Result<release::CurrentRelease> {
    let current = api
        .current_release(fleet.id)
        .await
        .context("reading the fleet's current release")?;
    current.with_context(|| {
        format!(
            "--service: fleet {} has no successful release to take the other services' images from; deploy every service first",
            fleet.slug
        )
    })
}

/// The image of each built service, for the push from the daemon that holds it; each
/// service's contract goes on `new`.
fn built_images(
    outcomes: &[multibuild::ServiceOutcome],
    new: &mut release::NewRelease,
    upload_logs: bool,
    daemons: &Daemons,
) -> IndexMap<String, release::BuiltImage> {
    let mut built = IndexMap::new();
    for outcome in outcomes {
        if let Some(spec) = new.services.iter_mut().find(|s| s.name == outcome.service) {
            spec.contract = outcome.contract.clone();
        }
        built.insert(
            outcome.service.clone(),
            release::BuiltImage {
                local_image: outcome.image.clone().unwrap_or_default(),
                daemon: daemons.holding(outcome),
                dockerfile: outcome.dockerfile.clone(),
                build_log: upload_logs.then(|| outcome.log.clone()),
                project_type: Some(outcome.resolver.clone()).filter(|r| !r.is_empty()),
                start_timestamp: None,
                end_timestamp: Some(release::timestamp_now()),
            },
        );
    }
    built
}

/// After a successful push: the release's tags, the services `--service` rebuilt, its note.
async fn label_release(
    api: &release::Api,
    release: u64,
    tags: &[(String, String)],
    rebuilt: Option<&[String]>,
    note: Option<&str>,
) -> anyhow::Result<()> {
    for (key, value) in tags {
        api.set_release_tag(release, key, value)
            .await
            .with_context(|| format!("setting release tag {key}"))?;
    }
    if let Some(rebuilt) = rebuilt {
        api.set_release_tag(release, REBUILT_SERVICES_TAG, &rebuilt.join(","))
            .await
            .context("recording the rebuilt services")?;
    }
    if let Some(note) = note {
        api.set_note(release, note)
            .await
            .context("setting the note")?;
    }
    Ok(())
}

/// `--service`: every service of the project that was not built takes its image from
/// `current`; one that `current` lacks is an error, since nothing could run it.
fn reused_images(
    plan: &multibuild::Plan,
    rebuilt: &[String],
    current: &release::CurrentRelease,
) -> anyhow::Result<IndexMap<String, u64>> {
    plan.composition
        .services
        .keys()
        .filter(|name| !rebuilt.contains(name))
        .map(|name| match current.images.get(name) {
            Some(image) => Ok((name.clone(), image.id)),
            None => bail!(
                "service {name} is not in the fleet's current release (id {}): add --service {name} to build it",
                current.id
            ),
        })
        .collect()
}

/// `--release-tag K V` pairs, checked before any work: empty keys and keys with whitespace
/// are refused, as the balena CLI does.
fn release_tags(flat: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flat.chunks(2)
        .map(|pair| {
            let key = pair.first().cloned().unwrap_or_default();
            if key.is_empty() || key.chars().any(char::is_whitespace) {
                bail!(
                    "invalid release tag key \"{key}\": it must be non-empty and without whitespace"
                );
            }
            Ok((key, pair.get(1).cloned().unwrap_or_default()))
        })
        .collect()
}

/// The release contract: `balena.yml` at the project root (a directory project), which must
/// be a `sw.application` or `sw.block` with a valid semver `version` if it has one.
fn release_contract(project: &ProjectArgs) -> anyhow::Result<Option<Value>> {
    let dir = project.location();
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join("balena.yml");
    let bytes = match parse::read_project_file(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("Error parsing file \"{}\": not UTF-8", path.display()))?;
    let value = parse::yaml_value(&text)
        .map_err(|e| anyhow::anyhow!("Error parsing file \"{}\":\n {e}", path.display()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !matches!(kind, "sw.application" | "sw.block") {
        bail!(
            "{}: the release contract must have type sw.application or sw.block",
            path.display()
        );
    }
    if let Some(version) = value.get("version") {
        let valid = version
            .as_str()
            .is_some_and(|v| nodejs_semver::Version::parse(v).is_ok());
        if !valid {
            bail!(
                "{}: version {version} is not a valid semver version",
                path.display()
            );
        }
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_tags_pair_up_and_bad_keys_are_refused() {
        let flat = ["a", "1", "b", "2"].map(String::from);
        assert_eq!(
            release_tags(&flat).ok(),
            Some(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        assert!(release_tags(&["has space".into(), "x".into()]).is_err());
        assert!(release_tags(&[String::new(), "x".into()]).is_err());
    }
}
