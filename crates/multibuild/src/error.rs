//! Everything that can go wrong turning a project into images.

use std::path::PathBuf;

/// A multibuild failure. Each names the file, service or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The project directory or archive cannot be read.
    #[error("cannot read the project at {}: {cause}", path.display())]
    ProjectSource {
        /// What was given.
        path: PathBuf,
        /// Why. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: std::io::Error,
    },
    /// The project (or a context of it) is not acceptable: unsafe tar entries, I/O.
    #[error(transparent)]
    Project(context::Error),
    /// The compose file(s) are not acceptable.
    #[error(transparent)]
    Compose(parse::Error),
    /// The project archive has neither a compose file nor a root Dockerfile.
    #[error(
        "the project has no docker-compose.yml (or compose.yaml), and no Dockerfile, Dockerfile.template or Dockerfile.<arch> at its root"
    )]
    NoComposeFile,
    /// The project archive has several compose files.
    #[error("the project has several compose files ({}): keep one, or pick one with -f", files.join(", "))]
    AmbiguousComposeFiles {
        /// Their names.
        files: Vec<String>,
    },
    /// A compose file is not UTF-8.
    #[error("{file}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        file: String,
    },
    /// More than one `balena.yml`-like file in the metadata directory.
    #[error("more than one build metadata file: {}; keep one", files.join(", "))]
    MultipleBalenaConfigFiles {
        /// The files found, project-relative.
        files: Vec<String>,
    },
    /// `balena.yml` does not parse or validate.
    #[error("{file}: {message}")]
    BalenaYmlValidation {
        /// The metadata file.
        file: String,
        /// What is wrong, and where in the file.
        message: String,
    },
    /// A registry-secrets file does not parse or validate.
    #[error("error validating registry secrets file \"{file}\": {reason}")]
    RegistrySecrets {
        /// The file.
        file: String,
        /// What is wrong (part of the message, not a separate cause).
        reason: crate::registry_secrets::Invalid,
    },
    /// A `contract.yml` is not a valid container contract.
    #[error("{0}")]
    ContractValidation(String),
    /// A service has a contract in its labels and a `contract.yml`.
    #[error("Multiple contracts found for service {service}")]
    MultipleContracts {
        /// The service.
        service: String,
    },
    /// A service with neither `build` nor `image`.
    #[error("service \"{service}\" has neither a build nor an image")]
    NoImageOrBuild {
        /// The service.
        service: String,
    },
    /// The project uses build secrets, which this daemon cannot provide.
    #[error("{0}")]
    SecretsUnsupported(String),
    /// A build secret's source file is missing from `.balena/secrets/`.
    #[error(
        "build secret \"{source_name}\" not found: expected the file {dir}/secrets/{source_name}"
    )]
    BuildSecretMissing {
        /// The secret's `source`.
        source_name: String,
        /// The metadata directory.
        dir: String,
    },
    /// No Dockerfile could be chosen or rendered.
    #[error(transparent)]
    Resolve(resolve::Error),
    /// No Dockerfile in a service's build context: says which directory was looked in.
    /// The cause is in the message, so it is not also a `source()`.
    #[error("{cause} in the build context \"{context}\" of the project")]
    NoDockerfileIn {
        /// The build context's directory.
        context: String,
        /// The resolver's error, naming the service and the files looked for.
        cause: resolve::Error,
    },
    /// The Dockerfile could not be rewritten (transposed for emulation, or given secret
    /// mounts).
    #[error(transparent)]
    Dockerfile(dockerfile::SyntaxError),
    /// The daemon failed the build or pull, or could not be reached.
    #[error(transparent)]
    Build(build::Error),
    /// The build was cancelled (another service failed with `--fail-fast`, or Ctrl-C).
    #[error("cancelled")]
    Cancelled,
    /// Something went wrong with one service.
    #[error("service \"{service}\": {cause}")]
    Service {
        /// The service.
        service: String,
        /// What. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: Box<Error>,
    },
}
