//! Finding and reading compose files: discovery, environment, `extends`, `include`, merging.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::file::{FileReader, path_in_project};
use crate::merge::{merge_documents, merge_service};
use crate::model::{Build, Composition, Service, Volume};
use crate::normalize::{Context, normalize};
use crate::{dotenv, yaml};

/// The compose file names looked for in a project directory, in order of preference.
pub const COMPOSE_FILE_NAMES: &[&str] = &[
    "docker-compose.yml",
    "docker-compose.yaml",
    "compose.yaml",
    "compose.yml",
];

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The project directory: relative paths in the files are resolved against it, and it is
    /// searched when `files` is empty. Defaults to the first file's directory, else `.`.
    pub project_dir: Option<PathBuf>,
    /// Compose files, merged in order (later ones override). Empty: discover them.
    pub files: Vec<PathBuf>,
    /// Interpolation values replacing the project's `.env`.
    pub env_file: Option<PathBuf>,
    /// The environment for interpolation; `None` reads the process environment. It wins over
    /// the `.env` file.
    pub environment: Option<HashMap<String, String>>,
    /// Active profiles (`--profile`). Empty: `COMPOSE_PROFILES` (comma-separated) from the
    /// environment or `.env`, as docker compose reads it. A service with `profiles` is kept only
    /// when one of them is active (`*` activates all); a service without is always kept.
    pub profiles: Vec<String>,
    /// Where the files named by the project (compose files, `.env`, `extends`, `include`,
    /// `env_file`) are read from: the filesystem by default, the archive for a tar project.
    pub reader: FileReader,
}

/// What every file of one load is read and interpolated with.
struct Sources<'a> {
    env: &'a HashMap<String, String>,
    project_dir: &'a Path,
    reader: &'a FileReader,
}

/// What [`discover`] found in a project directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovered {
    /// Compose files to load, in order.
    Compose(Vec<PathBuf>),
    /// No compose file, but a root Dockerfile ([`is_default_dockerfile_name`]): use
    /// [`default_composition`].
    Dockerfile,
}

/// Finds the compose files of a project: `explicit_files` when given (each must exist),
/// else exactly one of [`COMPOSE_FILE_NAMES`] in `project_dir`, else the default composition
/// when the directory has a Dockerfile ([`is_default_dockerfile_name`]).
pub fn discover(project_dir: &Path, explicit_files: &[PathBuf]) -> Result<Discovered, Error> {
    if !explicit_files.is_empty() {
        for file in explicit_files {
            if !file.is_file() {
                return Err(Error::Io {
                    path: file.clone(),
                    cause: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
                });
            }
        }
        return Ok(Discovered::Compose(explicit_files.to_vec()));
    }
    let found: Vec<&str> = COMPOSE_FILE_NAMES
        .iter()
        .copied()
        .filter(|name| project_dir.join(name).is_file())
        .collect();
    match found.as_slice() {
        [one] => Ok(Discovered::Compose(vec![project_dir.join(one)])),
        [] if has_root_dockerfile(project_dir) => Ok(Discovered::Dockerfile),
        [] => Err(Error::NoProject {
            dir: project_dir.to_path_buf(),
        }),
        many => Err(Error::AmbiguousComposeFiles {
            dir: project_dir.to_path_buf(),
            found: many.iter().map(|s| (*s).to_string()).collect(),
        }),
    }
}

/// Whether a root file of this name makes a project without a compose file a single-service
/// one: `Dockerfile`, `Dockerfile.template`, or a `Dockerfile.<arch>` /
/// `Dockerfile.<device-type>` alone (the reference's `ArchPriority` and
/// `SpecifiedArchDockerfile` projects have nothing else).
pub fn is_default_dockerfile_name(name: &str) -> bool {
    match name.strip_prefix("Dockerfile") {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').is_some_and(|suffix| {
            !suffix.is_empty()
                && suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }),
        None => false,
    }
}

/// Whether `dir` holds a regular file [`is_default_dockerfile_name`] accepts.
fn has_root_dockerfile(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_str()
            .is_some_and(is_default_dockerfile_name)
            && entry.path().is_file()
    })
}

/// The single-service composition of a project that has a Dockerfile and no compose file
/// (the reference's `defaultComposition`). An empty string counts as not given; `image`
/// wins over `dockerfile`.
pub fn default_composition(image: Option<&str>, dockerfile: Option<&str>) -> Composition {
    let image = image.filter(|s| !s.is_empty());
    let dockerfile = dockerfile.filter(|s| !s.is_empty());
    let mut service = Service {
        image: image.map(str::to_string),
        build: match image {
            Some(_) => None,
            None => Some(Build {
                context: ".".to_string(),
                dockerfile: dockerfile.unwrap_or("Dockerfile").to_string(),
                ..Build::default()
            }),
        },
        network_mode: Some("host".to_string()),
        volumes: vec!["resin-data:/data".to_string()],
        ..Service::default()
    };
    for feature in [
        "kernel-modules",
        "firmware",
        "dbus",
        "supervisor-api",
        "resin-api",
    ] {
        service
            .labels
            .insert(format!("io.resin.features.{feature}"), "1".to_string());
    }
    service.other.insert("privileged".into(), Value::Bool(true));
    service.other.insert("tty".into(), Value::Bool(true));
    service
        .other
        .insert("restart".into(), Value::String("always".into()));
    Composition {
        services: IndexMap::from([("main".to_string(), service)]),
        networks: IndexMap::new(),
        volumes: IndexMap::from([("resin-data".to_string(), Volume::default())]),
        warnings: Vec::new(),
    }
}

/// Loads, merges and normalises a project's compose files (discovering them when
/// `options.files` is empty).
///
/// Without `options.files`, `COMPOSE_FILE` (from the environment or the project's `.env`, as
/// docker compose reads it) names the files: separated by `COMPOSE_PATH_SEPARATOR`, else `:`,
/// relative to the project directory.
pub fn load(options: &LoadOptions) -> Result<Composition, Error> {
    let project_dir = project_dir(options);
    let env = environment(options, &project_dir)?;
    let files = if !options.files.is_empty() {
        options.files.clone()
    } else if let Some(files) = compose_file_variable(&env, &project_dir) {
        match discover(&project_dir, &files)? {
            Discovered::Compose(files) => files,
            Discovered::Dockerfile => return Ok(default_composition(None, None)),
        }
    } else {
        match discover(&project_dir, &[])? {
            Discovered::Compose(files) => files,
            Discovered::Dockerfile => return Ok(default_composition(None, None)),
        }
    };
    let profiles = active_profiles(options, &env);
    let sources = Sources {
        env: &env,
        project_dir: &project_dir,
        reader: &options.reader,
    };
    let mut merged = Value::Null;
    for file in &files {
        let text = read_text(&options.reader, file)?;
        let doc = document(&text, file, &sources, 0)?;
        merge_documents(&mut merged, doc);
    }
    let first = files.first().ok_or(Error::NoFiles)?;
    normalize(
        &merged,
        &Context {
            file: first,
            project_dir: &project_dir,
            env: &env,
            profiles: &profiles,
            reader: &options.reader,
        },
    )
}

/// The files `COMPOSE_FILE` names, when it is set and not empty.
fn compose_file_variable(
    env: &HashMap<String, String>,
    project_dir: &Path,
) -> Option<Vec<PathBuf>> {
    let value = env.get("COMPOSE_FILE").filter(|v| !v.trim().is_empty())?;
    let separator = env
        .get("COMPOSE_PATH_SEPARATOR")
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(":");
    Some(
        value
            .split(separator)
            .filter(|f| !f.is_empty())
            .map(|f| project_dir.join(f))
            .collect(),
    )
}

/// `options.profiles`, else `COMPOSE_PROFILES`.
fn active_profiles(options: &LoadOptions, env: &HashMap<String, String>) -> Vec<String> {
    if !options.profiles.is_empty() {
        return options.profiles.clone();
    }
    env.get("COMPOSE_PROFILES")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses one compose document given as text. `options.files[0]` (if any) names it in errors;
/// the project directory and environment are taken from `options` as for [`load`].
pub fn parse_str(text: &str, options: &LoadOptions) -> Result<Composition, Error> {
    let project_dir = project_dir(options);
    let file = options
        .files
        .first()
        .cloned()
        .unwrap_or_else(|| project_dir.join("docker-compose.yml"));
    let env = environment(options, &project_dir)?;
    let profiles = active_profiles(options, &env);
    let sources = Sources {
        env: &env,
        project_dir: &project_dir,
        reader: &options.reader,
    };
    let doc = document(text, &file, &sources, 0)?;
    normalize(
        &doc,
        &Context {
            file: &file,
            project_dir: &project_dir,
            env: &env,
            profiles: &profiles,
            reader: &options.reader,
        },
    )
}

fn project_dir(options: &LoadOptions) -> PathBuf {
    options.project_dir.clone().unwrap_or_else(|| {
        options
            .files
            .first()
            .and_then(|f| f.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    })
}

fn read_text(reader: &FileReader, path: &Path) -> Result<String, Error> {
    let bytes = reader.read(path).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    String::from_utf8(bytes).map_err(|_| Error::Yaml {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: "the file is not valid UTF-8".to_string(),
    })
}

/// The process environment (or the given one) over the `.env` file.
fn environment(
    options: &LoadOptions,
    project_dir: &Path,
) -> Result<HashMap<String, String>, Error> {
    let process: HashMap<String, String> = match &options.environment {
        Some(env) => env.clone(),
        None => std::env::vars().collect(),
    };
    let dotenv = match &options.env_file {
        Some(path) => Some((read_text(&options.reader, path)?, path.clone())),
        None => {
            let path = project_dir.join(".env");
            match options.reader.read_if_present(&path) {
                Ok(Some(_)) => Some((read_text(&options.reader, &path)?, path)),
                // A directory (or anything unreadable) named `.env` is not the env file.
                Ok(None) | Err(_) => None,
            }
        }
    };
    let mut env = HashMap::new();
    if let Some((text, path)) = dotenv {
        let parsed = dotenv::parse(&text, &process).map_err(|e| Error::EnvFile {
            file: path.clone(),
            line: e.line,
            message: e.message,
        })?;
        for (k, v) in parsed {
            if let Some(v) = v {
                env.insert(k, v);
            }
        }
    }
    env.extend(process);
    Ok(env)
}

/// Nesting limit for `extends` and `include` chains (cycles end here too).
const MAX_NESTING: usize = 16;

/// One file's interpolated tree with its `include`s merged in and `extends` resolved. The
/// files `include` and `extends` name must be inside `project_dir`.
fn document(text: &str, file: &Path, src: &Sources, depth: usize) -> Result<Value, Error> {
    let mut doc = yaml::parse_document(text, src.env).map_err(|e| Error::Yaml {
        file: file.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let validation = |message: String| Error::Validation {
        file: file.to_path_buf(),
        message,
    };
    if depth > MAX_NESTING {
        return Err(validation(
            "extends or include nested too deeply".to_string(),
        ));
    }
    let file_dir = file.parent().unwrap_or(Path::new(""));
    if let Value::Object(map) = &mut doc {
        let services = map.get("services").and_then(Value::as_object);
        let any_extends = services.is_some_and(|s| s.values().any(|v| v.get("extends").is_some()));
        if let Some(services) = services.filter(|_| any_extends).cloned() {
            let mut resolved = Map::new();
            for (name, service) in &services {
                let service = resolve_extends(name, service, &services, file, src, depth)?;
                resolved.insert(name.clone(), service);
            }
            map.insert("services".into(), Value::Object(resolved));
        }
        if let Some(include) = map.remove("include") {
            let entries = match include {
                Value::Array(items) => items,
                other => vec![other],
            };
            for entry in entries {
                let paths = match &entry {
                    Value::Object(m) => m.get("path").cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                let paths = crate::values::string_list(&paths)
                    .map_err(|e| validation(format!("include {e}")))?;
                let mut included = Value::Null;
                for path in paths {
                    let path = path_in_project(src.project_dir, file_dir, &path)
                        .map_err(|m| validation(format!("include: {m}")))?;
                    let text = read_text(src.reader, &path)?;
                    let mut sub = document(&text, &path, src, depth + 1)?;
                    rebase_services(&mut sub, path.parent().unwrap_or(Path::new("")));
                    merge_documents(&mut included, sub);
                }
                add_included(map, included, file_dir).map_err(validation)?;
            }
        }
    }
    Ok(doc)
}

/// Adds an included project's resources. A name defined on both sides is an error unless
/// both definitions are the same (compose-go skips those: projects include a shared
/// fragment that repeats what they define). `file_dir` is the including file's directory,
/// against which its own services' paths are compared with the (rebased) included ones.
fn add_included(
    map: &mut Map<String, Value>,
    included: Value,
    file_dir: &Path,
) -> Result<(), String> {
    let Value::Object(included) = included else {
        return Ok(());
    };
    for section in ["services", "networks", "volumes"] {
        let Some(Value::Object(items)) = included.get(section) else {
            continue;
        };
        let target = map
            .entry(section.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if target.is_null() {
            *target = Value::Object(Map::new());
        }
        let Value::Object(target) = target else {
            return Err(format!("{section} must be a mapping"));
        };
        for (name, value) in items {
            if let Some(existing) = target.get(name) {
                let mut existing = existing.clone();
                if section == "services" {
                    rebase_service(&mut existing, file_dir);
                }
                if existing == *value {
                    continue;
                }
                return Err(format!("{section}.{name} conflicts with imported resource"));
            }
            target.insert(name.clone(), value.clone());
        }
    }
    Ok(())
}

/// Resolves `extends` (same file or `file:`) on one service, recursively.
fn resolve_extends(
    name: &str,
    service: &Value,
    siblings: &Map<String, Value>,
    file: &Path,
    src: &Sources,
    depth: usize,
) -> Result<Value, Error> {
    let service_error = |message: String| Error::Service {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        service: name.to_string(),
        field: Some("extends".to_string()),
        message,
    };
    let Some(extends) = service.get("extends") else {
        return Ok(service.clone());
    };
    if depth > MAX_NESTING {
        return Err(service_error("extends nested too deeply".to_string()));
    }
    let (base_name, base_file) = match extends {
        Value::Object(m) => (
            m.get("service").and_then(Value::as_str).map(str::to_string),
            m.get("file").and_then(Value::as_str).map(str::to_string),
        ),
        Value::String(s) => (Some(s.clone()), None),
        _ => (None, None),
    };
    let base_name =
        base_name.ok_or_else(|| service_error("extends requires a service name".to_string()))?;
    let mut base = match base_file {
        None => {
            let base = siblings.get(&base_name).ok_or_else(|| {
                service_error(format!("cannot extend service \"{base_name}\": not found"))
            })?;
            resolve_extends(&base_name, base, siblings, file, src, depth + 1)?
        }
        Some(other) => {
            let file_dir = file.parent().unwrap_or(Path::new(""));
            let path = path_in_project(src.project_dir, file_dir, &other)
                .map_err(|m| service_error(format!("extends.file: {m}")))?;
            let text = read_text(src.reader, &path)?;
            let doc = yaml::parse_document(&text, src.env).map_err(|e| Error::Yaml {
                file: path.clone(),
                line: e.line,
                column: e.column,
                message: e.message,
            })?;
            let services = doc
                .get("services")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let base = services.get(&base_name).ok_or_else(|| {
                service_error(format!(
                    "cannot extend service \"{base_name}\": not found in {}",
                    path.display()
                ))
            })?;
            let mut base = resolve_extends(&base_name, base, &services, &path, src, depth + 1)?;
            rebase_service(&mut base, path.parent().unwrap_or(Path::new("")));
            base
        }
    };
    let mut own = service.clone();
    if let Value::Object(m) = &mut own {
        m.remove("extends");
    }
    if let Value::Object(m) = &mut base {
        // compose does not inherit these from the extended service.
        for key in ["depends_on", "volumes_from", "links"] {
            m.remove(key);
        }
    }
    merge_service(&mut base, own);
    Ok(base)
}

fn rebase_services(doc: &mut Value, dir: &Path) {
    if let Some(Value::Object(services)) = doc.get_mut("services") {
        for service in services.values_mut() {
            rebase_service(service, dir);
        }
    }
}

/// Makes a service's relative paths (build context, env and label files) relative to `dir`
/// instead of the project directory, for services read from another file.
fn rebase_service(service: &mut Value, dir: &Path) {
    // Absolute, so the result does not depend on where the project directory is.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.as_path();
    let rebase = |v: &mut Value| {
        if let Value::String(s) = v
            && !Path::new(s.as_str()).is_absolute()
            && !s.contains("://")
            && !s.starts_with("git@")
        {
            *s = dir.join(s.as_str()).to_string_lossy().into_owned();
        }
    };
    let Value::Object(map) = service else { return };
    match map.get_mut("build") {
        Some(Value::Object(build)) => {
            if let Some(context) = build.get_mut("context") {
                rebase(context);
            } else {
                build.insert(
                    "context".into(),
                    Value::String(dir.to_string_lossy().into_owned()),
                );
            }
        }
        Some(context) => rebase(context),
        None => {}
    }
    for key in ["env_file", "label_file"] {
        match map.get_mut(key) {
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::Object(m) => {
                            if let Some(p) = m.get_mut("path") {
                                rebase(p);
                            }
                        }
                        other => rebase(other),
                    }
                }
            }
            Some(Value::Object(m)) => {
                if let Some(p) = m.get_mut("path") {
                    rebase(p);
                }
            }
            Some(other) => rebase(other),
            None => {}
        }
    }
}
