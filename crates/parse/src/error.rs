//! The one error type of the crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while finding, reading, interpolating or validating a
/// composition. Messages carry the reference implementation's wording plus where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause. Shown in the message, so deliberately not a `#[source]`: the CLI prints
        /// an error's chain of causes, and the cause would appear twice.
        cause: std::io::Error,
    },
    /// Bad YAML, a budget breach, or a failed `${VAR:?…}` interpolation.
    #[error("{}:{line}:{column}: {}", file.display(), Printable(message))]
    Yaml {
        /// The compose file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What the parser said.
        message: String,
    },
    /// A `.env` or `env_file` line that cannot be read.
    #[error("{}:{line}: {}", file.display(), Printable(message))]
    EnvFile {
        /// The env file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A rule broken by one service (the reference's `ServiceError`).
    #[error("{}{}: service \"{}\": {}", file.display(), Position(*line, *column), Printable(service), Printable(message))]
    Service {
        /// The (first) compose file.
        file: PathBuf,
        /// 1-based line of the key at fault (0 when unknown).
        line: u64,
        /// 1-based column of the key at fault (0 when unknown).
        column: u64,
        /// The service at fault.
        service: String,
        /// The field at fault, dotted (`build.network`), when there is one.
        field: Option<String>,
        /// The reference's message.
        message: String,
    },
    /// A rule broken outside any service (the reference's `ValidationError`): top-level keys,
    /// networks, volumes.
    #[error("{}: {}", file.display(), Printable(message))]
    Validation {
        /// The (first) compose file.
        file: PathBuf,
        /// The reference's message.
        message: String,
    },
    /// Several compose files in the project directory and none chosen with `-f`.
    #[error(
        "{}: several compose files found ({}); choose one with -f",
        dir.display(),
        found.join(", ")
    )]
    AmbiguousComposeFiles {
        /// The project directory.
        dir: PathBuf,
        /// The names found.
        found: Vec<String>,
    },
    /// Neither a compose file nor a Dockerfile in the project directory.
    #[error(
        "{}: no docker-compose.yml, docker-compose.yaml, compose.yaml, compose.yml, Dockerfile, Dockerfile.template or Dockerfile.<arch> found",
        dir.display()
    )]
    NoProject {
        /// The project directory.
        dir: PathBuf,
    },
    /// `load` was called without any file.
    #[error("At least one compose file path must be provided")]
    NoFiles,
}

impl Error {
    /// The same error naming paths under `dir` relative to it. A project read from an
    /// archive has its compose file parsed from a scratch directory: its errors must name the
    /// path inside the project, never that directory.
    #[must_use]
    pub fn relative_to(mut self, dir: &Path) -> Self {
        let strip = |path: &mut PathBuf| {
            if let Ok(rel) = path.strip_prefix(dir) {
                *path = if rel.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    rel.to_path_buf()
                };
            }
        };
        match &mut self {
            Error::Io { path, .. } => strip(path),
            Error::Yaml { file, .. }
            | Error::EnvFile { file, .. }
            | Error::Service { file, .. }
            | Error::Validation { file, .. } => strip(file),
            Error::AmbiguousComposeFiles { dir, .. } | Error::NoProject { dir } => strip(dir),
            Error::NoFiles => {}
        }
        self
    }

    /// The service named by a rule violation, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            Error::Service { service, .. } => Some(service),
            _ => None,
        }
    }

    /// The message without the location prefix (the reference's `err.message`).
    pub fn message(&self) -> String {
        match self {
            Error::Yaml { message, .. }
            | Error::EnvFile { message, .. }
            | Error::Service { message, .. }
            | Error::Validation { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Why a YAML document that is not a compose file ([`crate::yaml_value`]) could not be read.
/// The message names the line and column but quotes nothing of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum YamlValueError {
    /// Not valid YAML: the parser's message, its position included.
    #[error("{message}")]
    Syntax {
        /// What the parser said.
        message: String,
    },
    /// A limit that stops hostile documents (size, depth, alias expansion) was reached.
    #[error("{}{message}", LinePrefix(*line, *column))]
    Limit {
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column.
        column: u64,
        /// Which limit, in plain words.
        message: String,
    },
}

/// `line L column C: ` before a message, or nothing when the line is unknown (0).
struct LinePrefix(u64, u64);

impl std::fmt::Display for LinePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinePrefix(0, _) => Ok(()),
            LinePrefix(line, column) => write!(f, "line {line} column {column}: "),
        }
    }
}

/// Shows text taken from the input (service names, keys, values quoted in messages) with
/// control characters escaped, so that a hostile compose file cannot write terminal escape
/// sequences to the user's terminal.
struct Printable<'a>(&'a str);

/// `:line:column` after a file name, or nothing when the line is unknown (0).
struct Position(u64, u64);

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position(0, _) => Ok(()),
            Position(line, column) => write!(f, ":{line}:{column}"),
        }
    }
}

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}
