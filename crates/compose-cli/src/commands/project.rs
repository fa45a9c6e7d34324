//! What `resolve`, `build` and `deploy` share: which project, for which target, and how to
//! turn those flags into a [`multibuild::Plan`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use emulate::Emulation;
use platform::{Arch, Target};

/// The project and how to read it.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectArgs {
    /// The project: a directory, a `.tar` file, or `-` for a tar on standard input.
    /// Default: the first -f file's directory (docker compose's rule), else the current one.
    #[arg(value_name = "PROJECT")]
    pub project: Option<PathBuf>,

    /// A compose file to use instead of discovering one (docker-compose.yml,
    /// docker-compose.yaml, compose.yaml, compose.yml); repeat to merge several, later ones
    /// overriding.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Interpolation values for the compose file, instead of the project's `.env`.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// The project name: `<name>_<service>` names the built images. Default: the project
    /// directory's name.
    #[arg(
        short = 'p',
        long = "project-name",
        value_name = "NAME",
        short_alias = 'n',
        alias = "projectName"
    )]
    pub project_name: Option<String>,

    /// A build argument for every service, `KEY=VALUE`; repeatable. It overrides the compose
    /// file's `build.args`; `.balena/balena.yml` build variables override it.
    #[arg(
        long = "build-arg",
        value_name = "KEY=VALUE",
        value_parser = parse_key_value,
        short_alias = 'B',
        alias = "buildArg"
    )]
    pub build_args: Vec<(String, String)>,

    /// Use each service's own `.dockerignore` only (the balena CLI's --multi-dockerignore),
    /// instead of the root one plus the service's own.
    #[arg(short = 'm', long)]
    pub multi_dockerignore: bool,

    /// For a project without a compose file: the Dockerfile to build its one service `main`
    /// with, relative to the project directory (the balena CLI's --dockerfile). Ignored, with
    /// a warning, when the project has a compose file.
    #[arg(long, value_name = "PATH")]
    pub dockerfile: Option<String>,

    /// Do not warn when the project has no compose file but its parent directory has one.
    #[arg(long = "noparent-check")]
    pub noparent_check: bool,
}

impl ProjectArgs {
    /// The project as given, else the first `-f` file's directory, else the current one, so
    /// that every command reads `-f dir/docker-compose.yml` as `config` does.
    pub fn location(&self) -> PathBuf {
        if let Some(project) = &self.project {
            return project.clone();
        }
        self.files
            .first()
            .and_then(|file| file.parent())
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// The target.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Run foreign-architecture `RUN` steps under qemu: through binfmt_misc when the host
    /// has it registered, else by rewriting the Dockerfile to start each `RUN` with the
    /// host's qemu-<arch>-static (Debian's qemu-user-static).
    #[arg(long, short_alias = 'e')]
    pub emulated: bool,

    /// How --emulated runs foreign `RUN` steps (implies --emulated): `auto` (binfmt_misc when
    /// it is registered for the target on the daemon's machine, else the rewrite), `binfmt`
    /// (fail unless it is registered: `balena-compose emulation setup`), or `rewrite`.
    #[arg(long, value_name = "MODE", value_enum)]
    pub emulation: Option<EmulationMode>,

    /// With --emulated: the qemu binary to copy into the images, instead of the host's
    /// qemu-<arch>-static. It is run with `-execve`, so it must be one that understands it
    /// (balena's qemu), which also lets a `RUN` start other foreign programs.
    #[arg(long, value_name = "PATH", requires = "emulated")]
    pub qemu: Option<PathBuf>,

    /// The device type: its `Dockerfile.<device-type>` is preferred and it is
    /// `%%BALENA_MACHINE_NAME%%`. Default: a generic type for the architecture. `build` takes
    /// it several times to build for each device type in one run (see --arch).
    #[arg(
        short = 'd',
        long = "device-type",
        value_name = "TYPE",
        value_parser = parse_device_type,
        alias = "deviceType"
    )]
    pub device_type: Vec<String>,
}

/// `--emulation`: which way of emulating to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulationMode {
    /// binfmt_misc when registered for the target, else the rewrite.
    Auto,
    /// binfmt_misc only.
    Binfmt,
    /// The Dockerfile rewrite only.
    Rewrite,
}

impl TargetArgs {
    /// Whether emulation was asked for (`--emulated` or `--emulation`).
    pub fn emulates(&self) -> bool {
        self.emulated || self.emulation.is_some()
    }

    /// The one `--device-type` of a command that builds for one target: several are an error.
    pub fn single_device_type(&self) -> anyhow::Result<Option<&str>> {
        match self.device_type.as_slice() {
            [] => Ok(None),
            [device_type] => Ok(Some(device_type)),
            several => bail!(
                "--device-type is given {} times: only `build` builds for several targets in one run",
                several.len()
            ),
        }
    }

    /// What the emulation flags ask for.
    fn emulation_request(&self) -> emulate::Request<'_> {
        let mode = self.emulation.map(|mode| match mode {
            EmulationMode::Auto => emulate::Mode::Auto,
            EmulationMode::Binfmt => emulate::Mode::Binfmt,
            EmulationMode::Rewrite => emulate::Mode::Rewrite,
        });
        emulate::Request {
            mode: mode.or(self.emulated.then_some(emulate::Mode::Auto)),
            qemu: self.qemu.as_deref(),
        }
    }
}

/// `KEY=VALUE`, the first `=` separating.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.chars().any(char::is_whitespace) => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got \"{s}\"")),
    }
}

/// A device type: a slug or alias of balena's device-type table (`platform::DeviceType`, the
/// one place device types are validated), given back as its slug. An unknown one is an
/// error naming the closest slugs.
pub fn parse_device_type(s: &str) -> Result<String, String> {
    platform::DeviceType::find(s)
        .map(|found| found.slug.to_owned())
        .map_err(|e| e.to_string())
}

/// The target `--arch` and `--device-type` name together (see `platform::Target::from_flags`):
/// `None` when neither is given.
pub fn target(arch: Option<Arch>, args: &TargetArgs) -> anyhow::Result<Option<Target>> {
    Ok(Target::from_flags(arch, args.single_device_type()?)?)
}

/// The targets of `build`'s repeatable `--arch` and `--device-type`, each once, in the order
/// given: every arch, or every device type, or (both given) pairs in order, each pair
/// agreeing as [`target`] checks; empty when neither is given.
pub fn targets(archs: &[Arch], args: &TargetArgs) -> anyhow::Result<Vec<Target>> {
    let device_types = &args.device_type;
    let pairs: Vec<(Option<Arch>, Option<&str>)> = match (archs.len(), device_types.len()) {
        (_, 0) => archs.iter().map(|a| (Some(*a), None)).collect(),
        (0, _) => device_types
            .iter()
            .map(|d| (None, Some(d.as_str())))
            .collect(),
        (a, d) if a == d => archs
            .iter()
            .zip(device_types)
            .map(|(a, d)| (Some(*a), Some(d.as_str())))
            .collect(),
        (a, d) => bail!(
            "--arch is given {a} times and --device-type {d} times: give several targets with one of them, or both the same number of times (they pair in order)"
        ),
    };
    let mut targets: Vec<Target> = Vec::new();
    for (arch, device_type) in pairs {
        if let Some(target) = Target::from_flags(arch, device_type)?
            && !targets.contains(&target)
        {
            targets.push(target);
        }
    }
    Ok(targets)
}

/// An architecture, with the valid ones listed when it is not one.
pub fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse::<Arch>().map_err(|e| e.to_string())
}

/// How `resolve` writes contexts for `target` ([`emulate::resolve_emulation`], on this
/// machine's architecture).
pub fn resolve_emulation(target: Arch, args: &TargetArgs) -> anyhow::Result<Emulation> {
    let host = emulate::host_arch().unwrap_or(Arch::Amd64);
    emulate::resolve_emulation(target, host, args.emulation_request()).map_err(emulation_error)
}

/// The Docker daemon a build runs on, as far as running foreign binaries is concerned.
pub use emulate::Daemon;

/// How `build` builds for `target` on `daemon` ([`emulate::build_emulation`]). `binfmt`
/// probes this machine's registrations (`emulate::binfmt_registered`).
pub fn build_emulation(
    target: Arch,
    daemon: Daemon,
    args: &TargetArgs,
    binfmt: impl Fn(Arch) -> bool,
) -> anyhow::Result<Emulation> {
    emulate::build_emulation(target, daemon, args.emulation_request(), binfmt)
        .map_err(emulation_error)
}

/// A choice's error; a qemu not found says it was looking for one to emulate with.
fn emulation_error(error: emulate::Error) -> anyhow::Error {
    match error {
        emulate::Error::QemuNotFound { .. } => {
            anyhow::Error::new(error).context("choosing how to emulate")
        }
        error => error.into(),
    }
}

/// The warnings a rewrite build gets once, before it starts: its qemu (Debian's, without
/// `-execve`) cannot start child programs, so a `RUN` that starts any would fail midway; and,
/// on the classic builder (`buildkit: false`: no BuildKit on the daemon, or `DOCKER_BUILDKIT=0`;
/// it cannot bind-mount qemu into `RUN`s), the images carry qemu in a layer, with its size.
pub fn rewrite_warnings(emulation: &Emulation, buildkit: bool) -> Vec<String> {
    let Emulation::Rewrite { host_qemu, options } = emulation else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    if !options.execve {
        warnings.push(format!(
            "emulating with the Dockerfile rewrite and {qemu}, which has no -execve: a RUN can only run its shell's builtins, and one that starts another program (apt-get, sleep, a pipe) fails with \"Exec format error\". Run `sudo balena-compose emulation setup` to build through binfmt_misc instead, or pass --qemu with a qemu built with -execve (balena's)",
            qemu = host_qemu.display()
        ));
    }
    if buildkit {
        return warnings;
    }
    let size = std::fs::metadata(host_qemu).map_or(0, |m| m.len());
    // Megabytes with one decimal, as the build summary shows sizes.
    #[allow(clippy::cast_precision_loss)]
    let megabytes = size as f64 / 1_000_000.0;
    warnings.push(format!(
        "the rewrite builds on the classic builder (the Docker daemon has no BuildKit, or DOCKER_BUILDKIT=0), which cannot mount qemu into RUNs: the images it builds carry {qemu} ({megabytes:.1} MB) in a layer, at {inside}; built through binfmt_misc (`sudo balena-compose emulation setup`) they carry nothing",
        qemu = host_qemu.display(),
        inside = options.qemu_path,
    ));
    warnings
}

/// Reads the project and plans every service.
pub fn plan(
    project: &ProjectArgs,
    target: &Target,
    emulation: Emulation,
    tag: Option<String>,
    template_vars: BTreeMap<String, String>,
) -> anyhow::Result<multibuild::Plan> {
    let location = project.location();
    if let Some(service) = project
        .project
        .as_deref()
        .and_then(service_named_as_project)
    {
        bail!(
            "\"{service}\" is a service of the project in the current directory, not a project: did you mean --service {service}?"
        );
    }
    let parent_warning = (!project.noparent_check && project.files.is_empty())
        .then(|| parent_compose_file(&location))
        .flatten();
    let mut warnings = Vec::new();
    let mut compose_files = project.files.clone();
    // Lives until the plan has read the composition it holds.
    let _dockerfile_composition = match &project.dockerfile {
        Some(dockerfile) if compose_files.is_empty() => {
            match composition_for_dockerfile(&location, dockerfile)? {
                DockerfileComposition::Written(dir) => {
                    compose_files.push(dir.path().join("docker-compose.yml"));
                    Some(dir)
                }
                DockerfileComposition::Ignored(warning) => {
                    warnings.push(warning);
                    None
                }
            }
        }
        _ => None,
    };
    let source = if location == Path::new("-") {
        multibuild::ProjectSource::TarStream(Box::new(std::io::stdin()))
    } else if location.is_file() {
        multibuild::ProjectSource::TarFile(location)
    } else if location.is_dir() {
        multibuild::ProjectSource::Dir(location)
    } else {
        bail!(
            "cannot read the project \"{}\": not a directory, a tar file, or - for standard input",
            location.display()
        );
    };
    let mut plan = multibuild::plan(multibuild::PlanOptions {
        source,
        compose_files,
        env_file: project.env_file.clone(),
        project_name: project.project_name.clone(),
        arch: target.arch,
        device_type: Some(target.device_type.clone()),
        emulation,
        tag,
        build_args: project.build_args.iter().cloned().collect(),
        template_vars,
        multi_dockerignore: project.multi_dockerignore,
    })?;
    plan.project_warnings.append(&mut warnings);
    if let Some(name) = parent_warning {
        // The balena CLI's wording (it refuses; we warn, as the issue asks).
        plan.project_warnings.push(format!(
            "\"{name}\" file found in parent directory: please check that the correct source folder was specified. (Suppress with '--noparent-check'.)"
        ));
    }
    Ok(plan)
}

/// What `--dockerfile` makes of a project.
enum DockerfileComposition {
    /// The project has no compose file: the default composition with that Dockerfile,
    /// written to `docker-compose.yml` in this directory (its relative paths are read
    /// against the project directory, as `-f` files are).
    Written(tempfile::TempDir),
    /// The project has a compose file, which wins: the warning saying so.
    Ignored(String),
}

/// `--dockerfile` checked as the balena CLI checks it (relative, inside the project, an
/// existing file), and the composition it stands for.
fn composition_for_dockerfile(
    project_dir: &Path,
    dockerfile: &str,
) -> anyhow::Result<DockerfileComposition> {
    if !project_dir.is_dir() {
        bail!("--dockerfile needs a project directory, not a tar");
    }
    if let Some(name) = parse::COMPOSE_FILE_NAMES
        .iter()
        .find(|name| project_dir.join(name).is_file())
    {
        return Ok(DockerfileComposition::Ignored(format!(
            "Ignoring alternative dockerfile \"{dockerfile}\" because composition file \"{name}\" exists"
        )));
    }
    let path = Path::new(dockerfile);
    let escapes = path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if escapes {
        bail!(
            "--dockerfile {dockerfile}: the Dockerfile must be a path relative to, and inside, the project directory"
        );
    }
    if !project_dir.join(path).is_file() {
        bail!(
            "--dockerfile {dockerfile}: no such file in the project directory {}",
            project_dir.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("balena-compose-dockerfile-")
        .tempdir()
        .context("creating a directory for the --dockerfile composition")?;
    let composition = parse::default_composition(None, Some(dockerfile)).to_json();
    // JSON is YAML: the composition is read back like any compose file.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        composition.to_string(),
    )
    .context("writing the --dockerfile composition")?;
    Ok(DockerfileComposition::Written(dir))
}

/// The compose file in `dir`'s parent directory when `dir` (a project directory) has none of
/// its own: the balena CLI's sign that the wrong source folder was given.
fn parent_compose_file(dir: &Path) -> Option<&'static str> {
    let has = |d: &Path| {
        parse::COMPOSE_FILE_NAMES
            .iter()
            .copied()
            .find(|name| d.join(name).is_file())
    };
    if !dir.is_dir() || has(dir).is_some() {
        return None;
    }
    let parent = std::fs::canonicalize(dir).ok()?.parent()?.to_path_buf();
    has(&parent)
}

/// Whether `given` is a plain name that names a service of the compose project in the
/// current directory (see [`plan`]'s "did you mean --service").
pub fn names_a_service_here(given: &Path) -> bool {
    service_named_as_project(given).is_some()
}

/// `given` when it is a plain name (`web`, not a path) that names a service of the compose
/// project in the current directory while not being a project itself (no compose file of
/// its own): `build web` meant `build --service web`.
fn service_named_as_project(given: &Path) -> Option<String> {
    let name = given.to_str()?;
    let plain = given.components().count() == 1 && !matches!(name, "." | "-") && !given.is_file();
    if !plain || parse::discover(given, &[]).is_ok_and(|d| d != parse::Discovered::Dockerfile) {
        return None;
    }
    let options = parse::LoadOptions {
        project_dir: Some(PathBuf::from(".")),
        profiles: vec!["*".to_owned()],
        ..parse::LoadOptions::default()
    };
    let composition = parse::load(&options).ok()?;
    composition
        .services
        .contains_key(name)
        .then(|| name.to_owned())
}

/// Keeps only the tasks of `services` (all when empty); a name that is not a service of the
/// plan is an error listing those that are.
pub fn only_services(plan: &mut multibuild::Plan, services: &[String]) -> anyhow::Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    if let Some(unknown) = services
        .iter()
        .find(|name| !plan.tasks.iter().any(|t| &t.service == *name))
    {
        let known: Vec<&str> = plan.tasks.iter().map(|t| t.service.as_str()).collect();
        bail!(
            "--service {unknown}: the project has no such service (its services are {})",
            known.join(", ")
        );
    }
    plan.tasks.retain(|task| services.contains(&task.service));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn target_args(device_types: &[&str]) -> TargetArgs {
        TargetArgs {
            emulated: false,
            emulation: None,
            qemu: None,
            device_type: device_types.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn several_targets_come_from_archs_or_device_types_or_pairs_of_both() {
        let arm: Arch = "aarch64".parse().unwrap();
        let x86: Arch = "amd64".parse().unwrap();
        let archs = |ts: Vec<Target>| ts.iter().map(|t| t.arch).collect::<Vec<_>>();
        let both = targets(&[arm, x86, arm], &target_args(&[])).unwrap();
        assert_eq!(archs(both), [arm, x86], "each target once, in order");
        let pis = targets(&[], &target_args(&["raspberrypi4-64", "genericx86-64-ext"])).unwrap();
        assert_eq!(pis[0].device_type, "raspberrypi4-64");
        assert_eq!(archs(pis), [arm, x86]);
        let paired = targets(&[arm], &target_args(&["raspberrypi4-64"])).unwrap();
        assert_eq!(paired.len(), 1);
        assert!(targets(&[x86], &target_args(&["raspberrypi4-64"])).is_err());
        let uneven = targets(&[arm, x86], &target_args(&["raspberrypi4-64"])).unwrap_err();
        assert!(
            uneven.to_string().contains("the same number of times"),
            "{uneven}"
        );
        assert!(targets(&[], &target_args(&[])).unwrap().is_empty());
        let several = target(
            None,
            &target_args(&["raspberrypi4-64", "genericx86-64-ext"]),
        );
        assert!(several.unwrap_err().to_string().contains("only `build`"));
    }

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(
            parse_key_value("A=b=c").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert_eq!(parse_key_value("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }

    fn flags(emulated: bool) -> TargetArgs {
        TargetArgs {
            emulated,
            emulation: None,
            qemu: None,
            device_type: vec![],
        }
    }

    #[test]
    fn only_the_classic_builder_warns_that_images_carry_qemu() {
        let qemu = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(qemu.path(), vec![0u8; 2_500_000]).unwrap();
        let rewrite = Emulation::Rewrite {
            host_qemu: qemu.path().to_owned(),
            options: emulate::transpose_options(Arch::Aarch64),
        };
        let classic = rewrite_warnings(&rewrite, false);
        assert_eq!(classic.len(), 2, "{classic:?}");
        assert!(classic[0].contains("no -execve"), "{classic:?}");
        assert!(
            classic[1].contains("(2.5 MB) in a layer, at /usr/bin/qemu-aarch64-static"),
            "{classic:?}"
        );
        let buildkit = rewrite_warnings(&rewrite, true);
        assert_eq!(buildkit.len(), 1, "{buildkit:?}");
        assert!(rewrite_warnings(&Emulation::Binfmt, false).is_empty());
    }

    #[test]
    fn resolve_never_asks_the_host_without_emulated() {
        assert_eq!(
            resolve_emulation(Arch::Aarch64, &flags(false)).unwrap(),
            Emulation::Native
        );
    }
}
