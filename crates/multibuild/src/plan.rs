//! From a project to a list of tasks: read the compose file(s), index the project once, cut
//! each service's context, resolve (and, for foreign architectures, transpose) its
//! Dockerfile. Everything here is synchronous and touches no daemon.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use context::{ContextOptions, IgnoreMode, Override, Project};
use emulate::Emulation;
use indexmap::IndexMap;
use platform::Arch;
use resolve::{Params, Resolved};

use crate::Error;
use crate::metadata::BuildMetadata;
use crate::naming;

/// Where a project comes from.
pub enum ProjectSource {
    /// A directory on disk.
    Dir(PathBuf),
    /// A tar file.
    TarFile(PathBuf),
    /// A tar stream (stdin), spooled to a temporary file first.
    TarStream(Box<dyn Read + Send>),
}

impl std::fmt::Debug for ProjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProjectSource::Dir(path) => f.debug_tuple("Dir").field(path).finish(),
            ProjectSource::TarFile(path) => f.debug_tuple("TarFile").field(path).finish(),
            ProjectSource::TarStream(_) => f.write_str("TarStream"),
        }
    }
}

/// What to plan for.
#[derive(Debug)]
pub struct PlanOptions {
    /// The project.
    pub source: ProjectSource,
    /// Compose files given with `-f` (host paths); empty: discover them in the project.
    pub compose_files: Vec<PathBuf>,
    /// An env file replacing the project's `.env` for interpolation.
    pub env_file: Option<PathBuf>,
    /// `<project>` in image names; defaults to the project directory's name.
    pub project_name: Option<String>,
    /// The target architecture.
    pub arch: Arch,
    /// The target device type; defaults to the arch's generic one.
    pub device_type: Option<String>,
    /// How foreign-architecture builds run (see [`emulate::choose_emulation`]).
    pub emulation: Emulation,
    /// `<tag>` in image names.
    pub tag: Option<String>,
    /// `--build-arg`s: over compose `build.args`, under `balena.yml` build variables (as the
    /// balena CLI orders them).
    pub build_args: BTreeMap<String, String>,
    /// Extra template variables (`BALENA_RELEASE_HASH`, …); `BALENA_APP_NAME` defaults to the
    /// project name.
    pub template_vars: BTreeMap<String, String>,
    /// Each service's context uses only its own `.dockerignore` (the balena CLI's
    /// `--multi-dockerignore`) instead of the root one plus its own.
    pub multi_dockerignore: bool,
}

/// A project turned into tasks, ready to build.
#[derive(Debug)]
pub struct Plan {
    /// `<project>` of the image names.
    pub project_name: String,
    /// The target architecture.
    pub arch: Arch,
    /// The target device type.
    pub device_type: String,
    /// How foreign-architecture builds run.
    pub emulation: Emulation,
    /// `.balena/balena.yml`.
    pub metadata: BuildMetadata,
    /// Registry credentials from `.balena/registry-secrets.*`, if the project has them.
    pub registry_auth: build::RegistryAuth,
    /// One task per service, in compose order.
    pub tasks: Vec<Task>,
    /// The composition the tasks came from.
    pub composition: parse::Composition,
    /// What indexing the project skipped or resolved (device and fifo entries, duplicate tar
    /// entries), one sentence each.
    pub project_warnings: Vec<String>,
}

impl Plan {
    /// Every warning for the caller to show: the project's, then the composition's.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.project_warnings
            .iter()
            .chain(&self.composition.warnings)
            .map(String::as_str)
    }
}

/// One service's work.
#[derive(Debug)]
pub struct Task {
    /// The service name.
    pub service: String,
    /// What to do, or why it cannot be done.
    pub kind: Result<TaskKind, Error>,
}

/// Pull or build.
#[derive(Debug)]
pub enum TaskKind {
    /// The service names an image only: pull it.
    Pull {
        /// The reference, `:latest` added when it had no tag.
        image: String,
    },
    /// The service is built.
    Build(Box<BuildTask>),
}

/// Everything needed to build one service.
#[derive(Debug)]
pub struct BuildTask {
    /// The context directory, project-relative.
    pub context_dir: String,
    /// The chosen Dockerfile, rendered (before any transposition).
    pub resolved: Resolved,
    /// The Dockerfile sent to the daemon: `resolved.contents`, transposed when emulating.
    pub dockerfile: String,
    /// Whether the Dockerfile was transposed to run under qemu.
    pub transposed: bool,
    /// The names the image gets: `<project>_<service>[:tag]` first, then the service's
    /// `image`, if any.
    pub tags: Vec<String>,
    /// Build arguments, after every precedence rule.
    pub build_args: IndexMap<String, String>,
    /// Image labels.
    pub labels: IndexMap<String, String>,
    /// `build.target`.
    pub target: Option<String>,
    /// `build.cache_from`.
    pub cache_from: Vec<String>,
    /// `build.extra_hosts`, `host:ip`.
    pub extra_hosts: Vec<String>,
    /// The service's container contract, from its labels or a `contract.yml`.
    pub contract: Option<serde_json::Value>,
    /// The service's build secrets (`build-secrets` in `balena.yml`), by `dest`: readable at
    /// `/run/secrets/<dest>` by every `RUN`. `Debug` shows only the names.
    pub secrets: build::BuildSecrets,
    /// What a BuildKit build sends instead of `dockerfile`: with the rewrite, the Dockerfile
    /// transposed to bind-mount qemu into each `RUN` (no layer holds it); with secrets, a
    /// BuildKit secret mount for each of them added to every `RUN` (see
    /// [`dockerfile::add_secret_mounts`]). `None`: neither.
    pub mounted_dockerfile: Option<String>,
    context: context::Context,
    overrides: Vec<Override>,
}

impl BuildTask {
    /// Writes the context tar exactly as the daemon receives it.
    pub fn write_context(&self, out: &mut dyn Write) -> io::Result<()> {
        self.context
            .write_tar(&self.overrides, out)
            .map(drop)
            .map_err(io::Error::other)
    }

    /// A producer for [`build::ContextBody::from_producer`].
    pub fn context_body(&self) -> build::ContextBody {
        self.context_body_with(None)
    }

    /// The context with `dockerfile` (when given) in place of [`BuildTask::dockerfile`].
    pub fn context_body_with(&self, dockerfile: Option<&str>) -> build::ContextBody {
        let (context, overrides) = self.context_with(dockerfile);
        build::ContextBody::from_producer(move |out| {
            context
                .write_tar(&overrides, out)
                .map(drop)
                .map_err(io::Error::other)
        })
    }
}

impl BuildTask {
    /// The context and the overrides that write it with `dockerfile` (when given) in place of
    /// [`BuildTask::dockerfile`]: what is sent, and what the inputs digest hashes.
    pub(crate) fn context_with(
        &self,
        dockerfile: Option<&str>,
    ) -> (context::Context, Vec<Override>) {
        let mut overrides = self.overrides.clone();
        if let Some(dockerfile) = dockerfile {
            // The last override of a path wins.
            overrides.push(Override::file(
                self.resolved.dockerfile_path.clone(),
                dockerfile.as_bytes().to_vec(),
            ));
        }
        (self.context.clone(), overrides)
    }
}

/// Reads the project and plans every service. Errors that concern the whole project (the
/// compose file, the project archive, `balena.yml`) fail the plan; a service that cannot be
/// resolved gets a failed [`Task`] and the others go on.
pub fn plan(options: PlanOptions) -> Result<Plan, Error> {
    let (project, project_dir, default_name) = open_project(options.source)?;
    let composition = load_composition(
        &project,
        project_dir.as_deref(),
        &options.compose_files,
        options.env_file.as_deref(),
    )?;
    // `%%BALENA_APP_NAME%%` is the name as given (the reference's `projectName`, case and
    // all); only the image names need it made into a valid repository component.
    let given_name = options.project_name.unwrap_or(default_name);
    let project_name = naming::project_name_from_dir(&given_name);
    let app_name = if given_name.is_empty() {
        project_name.clone()
    } else {
        given_name
    };
    let device_type = options
        .device_type
        .unwrap_or_else(|| options.arch.default_device_type().to_owned());

    let metadata = match project.balena_config().map_err(Error::Project)? {
        Some(file) => {
            let dir = project
                .metadata()
                .map(|m| m.dir().to_owned())
                .unwrap_or_default();
            BuildMetadata::parse(&format!("{dir}/{}", file.name), &file.contents)?
        }
        None => BuildMetadata::default(),
    };
    let registry_auth = crate::registry_secrets::project_registry_auth(&project)?;

    let mut vars = BTreeMap::from([("BALENA_APP_NAME".to_owned(), app_name)]);
    vars.extend(options.template_vars);
    let planner = Planner {
        project: &project,
        project_name: &project_name,
        arch: options.arch,
        device_type: &device_type,
        emulation: &options.emulation,
        tag: options.tag.as_deref(),
        build_args: &options.build_args,
        vars: &vars,
        metadata: &metadata,
        ignore: if options.multi_dockerignore {
            IgnoreMode::ContextOnly
        } else {
            IgnoreMode::RootAndContext
        },
    };
    let tasks = composition
        .services
        .iter()
        .map(|(name, service)| Task {
            service: name.clone(),
            kind: planner.task(name, service),
        })
        .collect();
    Ok(Plan {
        project_name,
        arch: options.arch,
        device_type,
        emulation: options.emulation,
        metadata,
        registry_auth,
        tasks,
        composition,
        project_warnings: project
            .warnings()
            .iter()
            .map(|w| format!("project: {w}"))
            .collect(),
    })
}

fn open_project(source: ProjectSource) -> Result<(Project, Option<PathBuf>, String), Error> {
    match source {
        ProjectSource::Dir(dir) => {
            let real = dir.canonicalize().map_err(|e| Error::ProjectSource {
                path: dir.clone(),
                cause: e,
            })?;
            let name = real
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let project = Project::open_dir(&real).map_err(Error::Project)?;
            Ok((project, Some(real), name))
        }
        ProjectSource::TarFile(path) => {
            let name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let project = Project::open_tar(&path).map_err(Error::Project)?;
            Ok((project, None, name))
        }
        ProjectSource::TarStream(reader) => {
            let project = Project::from_reader(reader).map_err(Error::Project)?;
            Ok((project, None, String::new()))
        }
    }
}

/// The composition: from the files on disk for a directory (discovery and `-f` as `parse`
/// does them), else from the compose file inside the archive.
fn load_composition(
    project: &Project,
    project_dir: Option<&Path>,
    compose_files: &[PathBuf],
    env_file: Option<&Path>,
) -> Result<parse::Composition, Error> {
    let mut options = parse::LoadOptions {
        project_dir: project_dir.map(Path::to_path_buf),
        files: compose_files.to_vec(),
        env_file: env_file.map(Path::to_path_buf),
        environment: None,
        profiles: Vec::new(),
        reader: parse::FileReader::default(),
    };
    if project_dir.is_some() || !compose_files.is_empty() {
        return parse::load(&options).map_err(Error::Compose);
    }
    let mut found = Vec::new();
    for name in parse::COMPOSE_FILE_NAMES {
        if let Some(bytes) = project.read_file(name).map_err(Error::Project)? {
            found.push((*name, bytes));
        }
    }
    match found.len() {
        0 if project.entries().iter().any(|entry| {
            !entry.path().contains('/') && parse::is_default_dockerfile_name(entry.path())
        }) =>
        {
            Ok(parse::default_composition(None, None))
        }
        0 => Err(Error::NoComposeFile),
        1 => {
            let (name, bytes) = found.remove(0);
            let text = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
                file: name.to_owned(),
            })?;
            // The archive has no directory on disk: relative paths in the file resolve
            // against an empty temporary one, so nothing of the working directory leaks in.
            let scratch = tempfile::tempdir().map_err(|e| Error::ProjectSource {
                path: std::env::temp_dir(),
                cause: e,
            })?;
            options.project_dir = Some(scratch.path().to_path_buf());
            options.files = vec![scratch.path().join(name)];
            options.reader = archive_reader(project, scratch.path());
            let mut composition = parse::parse_str(&text, &options)
                .map_err(|e| Error::Compose(e.relative_to(scratch.path())))?;
            // Warnings start with the file they are about: the one inside the project.
            let scratch_prefix = format!("{}/", scratch.path().display());
            for warning in &mut composition.warnings {
                if let Some(rest) = warning.strip_prefix(&scratch_prefix) {
                    *warning = rest.to_owned();
                }
            }
            Ok(composition)
        }
        _ => Err(Error::AmbiguousComposeFiles {
            files: found.iter().map(|(n, _)| (*n).to_owned()).collect(),
        }),
    }
}

/// Reads the files the compose file of an archive names (`extends`, `include`, `env_file`,
/// `.env`) out of the archive: `parse` sees them under `scratch`, the empty directory that
/// stands in for the project root (and keeps every path it accepts inside it).
fn archive_reader(project: &Project, scratch: &Path) -> parse::FileReader {
    let project = project.clone();
    let scratch = scratch.to_path_buf();
    parse::FileReader::new(move |path| {
        let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let rel = path.strip_prefix(&scratch).map_err(|_| not_found())?;
        let rel = rel.to_str().ok_or_else(not_found)?;
        match project.read_file(rel) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(not_found()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    })
}

struct Planner<'a> {
    project: &'a Project,
    project_name: &'a str,
    arch: Arch,
    device_type: &'a str,
    emulation: &'a Emulation,
    tag: Option<&'a str>,
    build_args: &'a BTreeMap<String, String>,
    vars: &'a BTreeMap<String, String>,
    metadata: &'a BuildMetadata,
    ignore: IgnoreMode,
}

impl Planner<'_> {
    fn task(&self, name: &str, service: &parse::Service) -> Result<TaskKind, Error> {
        let Some(build) = &service.build else {
            return pull_task(name, service);
        };
        let in_service = in_service(name);
        let custom_dockerfile =
            (build.dockerfile != "Dockerfile").then(|| build.dockerfile.clone());
        let context = self
            .project
            .context_with(
                &build.context,
                &ContextOptions {
                    ignore: self.ignore,
                    keep: custom_dockerfile.iter().cloned().collect(),
                    ..ContextOptions::default()
                },
            )
            .map_err(|e| in_service(Error::Project(e)))?;
        let resolved = self.resolve(name, build, &context, custom_dockerfile)?;

        let mut overrides: Vec<Override> = resolved.remove.iter().map(Override::remove).collect();
        let emulated = self.emulated(&resolved, &mut overrides, &in_service)?;
        let dockerfile = emulated.dockerfile;
        overrides.push(Override::file(
            resolved.dockerfile_path.clone(),
            dockerfile.clone().into_bytes(),
        ));
        let secrets = self.secrets(name).map_err(&in_service)?;
        let mounted_dockerfile = if secrets.is_empty() {
            emulated.bound
        } else {
            let ids: Vec<&str> = secrets.ids().collect();
            Some(
                dockerfile::add_secret_mounts(
                    emulated.bound.as_deref().unwrap_or(&dockerfile),
                    &ids,
                )
                .map_err(|e| in_service(Error::Dockerfile(e)))?,
            )
        };
        let contract = service_contract(name, service, &context)?;

        Ok(TaskKind::Build(Box::new(BuildTask {
            context_dir: build.context.clone(),
            resolved,
            dockerfile,
            transposed: emulated.transposed,
            tags: self.tags(name, build),
            build_args: self.build_args(name, build),
            labels: build
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            target: build.target.clone(),
            cache_from: build.cache_from.clone(),
            extra_hosts: build.extra_hosts.clone(),
            contract,
            secrets,
            mounted_dockerfile,
            context,
            overrides,
        })))
    }

    /// The service's Dockerfile, chosen and rendered by `resolve`.
    fn resolve(
        &self,
        name: &str,
        build: &parse::Build,
        context: &context::Context,
        custom_dockerfile: Option<String>,
    ) -> Result<Resolved, Error> {
        let mut params = Params::new(self.arch, self.device_type).with_service(name);
        params.dockerfile = custom_dockerfile;
        params.vars = self.vars.clone();
        // resolve's errors name the service themselves.
        resolve::resolve(&crate::BuildContextFiles(context), &params).map_err(|e| match e {
            resolve::Error::NotFound { .. } => Error::NoDockerfileIn {
                context: build.context.to_string(),
                cause: e,
            },
            e => Error::Resolve(e),
        })
    }

    /// The Dockerfile as the emulation wants it; with the rewrite, also the variant that
    /// BuildKit gets (bind-mounting qemu into each RUN), and qemu added to the context.
    fn emulated(
        &self,
        resolved: &Resolved,
        overrides: &mut Vec<Override>,
        in_service: &impl Fn(Error) -> Error,
    ) -> Result<Emulated, Error> {
        match self.emulation {
            Emulation::Rewrite { host_qemu, options } => {
                let transposed = dockerfile::transpose(&resolved.contents, options)
                    .map_err(|e| in_service(Error::Dockerfile(e)))?;
                let bound = dockerfile::transpose(
                    &resolved.contents,
                    &dockerfile::TransposeOptions {
                        bind_mount: true,
                        ..options.clone()
                    },
                )
                .map_err(|e| in_service(Error::Dockerfile(e)))?;
                overrides.push(Override::host_file(
                    options.context_qemu_path.clone(),
                    host_qemu.clone(),
                    0o755,
                ));
                Ok(Emulated {
                    dockerfile: transposed,
                    bound: Some(bound),
                    transposed: true,
                })
            }
            Emulation::Native | Emulation::Binfmt => Ok(Emulated {
                dockerfile: resolved.contents.clone(),
                bound: None,
                transposed: false,
            }),
        }
    }

    /// Build arguments by precedence, lowest first, as the balena CLI: compose args,
    /// --build-arg, balena.yml.
    fn build_args(&self, name: &str, build: &parse::Build) -> IndexMap<String, String> {
        let mut build_args: IndexMap<String, String> = build
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        build_args.extend(self.build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
        build_args.extend(self.metadata.variables_for(name));
        build_args
    }

    /// The project's name for the image, then the compose file's `build.tags`.
    fn tags(&self, name: &str, build: &parse::Build) -> Vec<String> {
        let mut tags = vec![naming::image_name(self.project_name, name, self.tag)];
        tags.extend(
            build
                .tags
                .iter()
                .filter(|t| !tags.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
        tags
    }

    fn secrets(&self, service: &str) -> Result<build::BuildSecrets, Error> {
        let mut secrets = build::BuildSecrets::new();
        let dir = self
            .project
            .metadata()
            .map_or_else(|| ".balena".to_owned(), |m| m.dir().to_owned());
        for spec in self.metadata.secrets_for(service) {
            let missing = || Error::BuildSecretMissing {
                source_name: spec.source.clone(),
                dir: dir.clone(),
            };
            let contents = self
                .project
                .read_metadata_file(&format!("secrets/{}", spec.source))
                .map_err(Error::Project)?
                .ok_or_else(missing)?;
            // The name goes into `RUN --mount=type=secret,id=<dest>,target=…`, a CSV field
            // inside a shell-like word: keep to characters that need no quoting there.
            let plain = |c: char| c.is_ascii_alphanumeric() || "._-+@/".contains(c);
            if !spec.dest.chars().all(plain) {
                return Err(Error::SecretsUnsupported(format!(
                    "build secret dest \"{}\" ({dir}/secrets/{}): only letters, digits and . _ - + @ / are supported in a dest",
                    spec.dest, spec.source
                )));
            }
            if contents.len() > build::MAX_SECRET_SIZE {
                return Err(Error::SecretsUnsupported(format!(
                    "build secret \"{}\" ({dir}/secrets/{}) is {} bytes; BuildKit takes at most {} bytes",
                    spec.dest,
                    spec.source,
                    contents.len(),
                    build::MAX_SECRET_SIZE
                )));
            }
            secrets.insert(spec.dest.clone(), contents);
        }
        Ok(secrets)
    }
}

/// A context as resolution sees it.
/// A service without `build`: its image is pulled.
fn pull_task(name: &str, service: &parse::Service) -> Result<TaskKind, Error> {
    let image = service
        .image
        .as_deref()
        .ok_or_else(|| Error::NoImageOrBuild {
            service: name.to_owned(),
        })?;
    Ok(TaskKind::Pull {
        image: naming::with_default_tag(image),
    })
}

/// Wraps an error in the service it happened in.
fn in_service(name: &str) -> impl Fn(Error) -> Error + '_ {
    move |cause| Error::Service {
        service: name.to_owned(),
        cause: Box::new(cause),
    }
}

/// The service's contract: from its labels or its context's `contract.yml` (not both).
fn service_contract(
    name: &str,
    service: &parse::Service,
    context: &context::Context,
) -> Result<Option<serde_json::Value>, Error> {
    let in_service = in_service(name);
    let label_contract = parse::contract_for(name, service)
        .map(|c| serde_json::to_value(c).unwrap_or(serde_json::Value::Null));
    let file_contract = context
        .read_file("contract.yml")
        .transpose()
        .or_else(|| context.read_file("contract.yaml").transpose())
        .transpose()
        .map_err(|e| in_service(Error::Project(e)))?
        .map(|bytes| crate::contract::parse_contract_file(&bytes))
        .transpose()
        .map_err(&in_service)?;
    match (label_contract, file_contract) {
        (Some(_), Some(_)) => Err(Error::MultipleContracts {
            service: name.to_owned(),
        }),
        (a, b) => Ok(a.or(b)),
    }
}

/// A service's Dockerfile under the emulation.
struct Emulated {
    /// What the classic builder gets (transposed when emulating).
    dockerfile: String,
    /// What BuildKit gets when emulating: qemu bind-mounted into each RUN.
    bound: Option<String>,
    /// Whether `dockerfile` was transposed.
    transposed: bool,
}

#[cfg(test)]
mod secret_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn plan_dir(files: &[(&str, &str)]) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        plan_of(ProjectSource::Dir(dir.path().to_owned()))
    }

    /// The amd64 plan of a project named `p`.
    fn plan_of(source: ProjectSource) -> Plan {
        plan(PlanOptions {
            source,
            compose_files: vec![],
            env_file: None,
            project_name: Some("p".into()),
            arch: Arch::Amd64,
            device_type: None,
            emulation: Emulation::Native,
            tag: None,
            build_args: BTreeMap::new(),
            template_vars: BTreeMap::new(),
            multi_dockerignore: false,
        })
        .unwrap()
    }

    /// A tar project's `env_file` is read out of the archive, not looked up on disk.
    #[test]
    fn a_tar_project_reads_its_env_file_from_the_archive() {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, contents) in [
            (
                "docker-compose.yml",
                "services:\n  main:\n    image: busybox\n    env_file: app.env\n",
            ),
            ("app.env", "GREETING=from-the-archive\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, contents.as_bytes())
                .unwrap();
        }
        let plan = plan_of(ProjectSource::TarStream(Box::new(io::Cursor::new(
            tar.into_inner().unwrap(),
        ))));
        let env = &plan.composition.services["main"].environment;
        assert_eq!(
            env.get("GREETING").map(String::as_str),
            Some("from-the-archive"),
            "{env:?}"
        );
    }

    const YML: &str = "build-secrets:\n  global:\n    - {source: t.txt, dest: token}\n  services:\n    main:\n      - {source: k.txt, dest: deep/key}\n";

    #[test]
    fn secrets_are_read_per_service_and_mounted_on_every_run() {
        let plan = plan_dir(&[
            ("Dockerfile", "FROM a\nRUN x\nCOPY y z\nRUN w\n"),
            (".balena/balena.yml", YML),
            (".balena/secrets/t.txt", "tok-value"),
            (".balena/secrets/k.txt", "key-value"),
        ]);
        let Ok(TaskKind::Build(task)) = &plan.tasks[0].kind else {
            panic!("{:?}", plan.tasks[0].kind)
        };
        let ids: Vec<&str> = task.secrets.ids().collect();
        assert_eq!(ids, ["deep/key", "token"]);
        let mounts = "--mount=type=secret,id=deep/key,target=/run/secrets/deep/key --mount=type=secret,id=token,target=/run/secrets/token";
        assert_eq!(
            task.mounted_dockerfile.as_deref(),
            Some(format!("FROM a\nRUN {mounts} x\nCOPY y z\nRUN {mounts} w\n").as_str())
        );
        assert_eq!(task.dockerfile, "FROM a\nRUN x\nCOPY y z\nRUN w\n");
        let shown = format!("{plan:?}");
        assert!(!shown.contains("tok-value") && !shown.contains("key-value"));
    }

    #[test]
    fn a_missing_secret_file_fails_the_service_naming_it() {
        let plan = plan_dir(&[
            ("Dockerfile", "FROM a\n"),
            (".balena/balena.yml", YML),
            (".balena/secrets/t.txt", "tok-value"),
        ]);
        let error = plan.tasks[0].kind.as_ref().unwrap_err().to_string();
        assert!(error.contains(".balena/secrets/k.txt"), "{error}");
    }

    #[test]
    fn a_dest_that_cannot_be_a_mount_id_is_refused() {
        let plan = plan_dir(&[
            ("Dockerfile", "FROM a\n"),
            (
                ".balena/balena.yml",
                "build-secrets:\n  global:\n    - {source: t.txt, dest: 'a,b'}\n",
            ),
            (".balena/secrets/t.txt", "tok-value"),
        ]);
        let error = plan.tasks[0].kind.as_ref().unwrap_err().to_string();
        assert!(error.contains("\"a,b\""), "{error}");
    }

    #[test]
    fn services_without_secrets_have_none() {
        let plan = plan_dir(&[("Dockerfile", "FROM a\nRUN x\n")]);
        let Ok(TaskKind::Build(task)) = &plan.tasks[0].kind else {
            panic!()
        };
        assert!(task.secrets.is_empty());
        assert_eq!(task.mounted_dockerfile, None);
    }
}
