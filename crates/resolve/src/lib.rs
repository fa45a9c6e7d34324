//! The `resolve` stage of balena-compose: pick and render each service's Dockerfile for a
//! target architecture and device type.
//!
//! A service's build context may hold a plain `Dockerfile`, a `Dockerfile.template`, and
//! `Dockerfile.<arch>` / `Dockerfile.<device type>` variants (or the same around a
//! `build.dockerfile` path). [`select`] picks one from the file names alone;
//! [`Selection::render`] fills in the template variables (`%%BALENA_ARCH%%`, …) of the one
//! file it picked; [`resolve`] does both over any [`ContextFiles`]: a list or map of files,
//! a directory on disk ([`DirFiles`]), or the caller's own.
//!
//! The context itself is never rewritten here: the caller drops [`Resolved::remove`] and
//! writes [`Resolved::contents`] at [`Resolved::dockerfile_path`] (replacing any file already
//! there), as the reference appends the resolved Dockerfile as the context's last entry.
//!
//! ```
//! use resolve::{resolve, Arch, Params, ResolverKind};
//!
//! // Any ordered (path, contents) list, map, or own `ContextFiles` implementation works.
//! let context = vec![
//!     ("Dockerfile.template", "FROM local/%%BALENA_ARCH%%-busybox\nLABEL svc=%%BALENA_SERVICE_NAME%%\n"),
//!     ("Dockerfile.amd64.bak", "ignored: not an arch file"),
//!     ("src/main.sh", "echo hi"),
//! ];
//! let params = Params::new(Arch::Aarch64, "raspberrypi4-64").with_service("main");
//! let resolved = resolve(&context, &params)?;
//!
//! assert_eq!(resolved.resolver, ResolverKind::Template);
//! assert_eq!(resolved.resolver.to_string(), "Dockerfile.template");
//! assert_eq!(resolved.source_path, "Dockerfile.template");
//! assert_eq!(resolved.dockerfile_path, "Dockerfile");
//! assert_eq!(resolved.contents, "FROM local/aarch64-busybox\nLABEL svc=main\n");
//! assert!(resolved.remove.is_empty());
//! # Ok::<(), resolve::Error>(())
//! ```
#![deny(missing_docs)]

mod context;
mod dir;
mod path;
mod select;

use std::collections::BTreeMap;
use std::fmt;
use std::io;

pub use context::ContextFiles;
pub use dir::DirFiles;
/// The platform types `resolve` always exposed, now defined in the `platform` crate.
pub use platform::{Arch, DeviceType, Target, TargetError, UnknownArch, UnknownDeviceType};
pub use select::{Selection, select};

/// What to resolve for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The target architecture (`BALENA_ARCH`, and `Dockerfile.<arch>` files).
    pub arch: Arch,
    /// The target device type (`BALENA_MACHINE_NAME`, and `Dockerfile.<device type>` files).
    pub device_type: String,
    /// The compose `build.dockerfile`, relative to the context; `None` looks for the
    /// default `Dockerfile` names at the context root.
    pub dockerfile: Option<String>,
    /// The service being resolved: named in errors, and the default `BALENA_SERVICE_NAME`.
    pub service: Option<String>,
    /// Further template variables (`BALENA_APP_NAME`, `BALENA_RELEASE_HASH`, the caller's
    /// own, …). They override every built-in variable.
    pub vars: BTreeMap<String, String>,
}

impl Params {
    /// Parameters for `arch` and `device_type`, the default Dockerfile, and no extra
    /// variables.
    pub fn new(arch: Arch, device_type: impl Into<String>) -> Self {
        Params {
            arch,
            device_type: device_type.into(),
            dockerfile: None,
            service: None,
            vars: BTreeMap::new(),
        }
    }

    /// Parameters for `arch` and its generic device type ([`Arch::default_device_type`]).
    pub fn for_arch(arch: Arch) -> Self {
        Params::new(arch, arch.default_device_type())
    }

    /// Use the compose `build.dockerfile` path `path`.
    pub fn with_dockerfile(mut self, path: impl Into<String>) -> Self {
        self.dockerfile = Some(path.into());
        self
    }

    /// Name the service being resolved.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Add (or override) one template variable.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Every variable a template or arch-specific Dockerfile can use, lowest precedence
    /// first: `BALENA_ARCH`, `BALENA_MACHINE_NAME` and their `RESIN_` twins; then
    /// `BALENA_SERVICE_NAME` from [`Params::service`]; then [`Params::vars`]. Each of
    /// `BALENA_SERVICE_NAME`, `BALENA_APP_NAME` and `BALENA_RELEASE_HASH` that ends up set
    /// also gets its `RESIN_` twin unless the caller set that explicitly (the reference only
    /// has twins for the arch and machine name).
    pub fn template_vars(&self) -> BTreeMap<String, String> {
        let arch = self.arch.slug();
        let mut vars: BTreeMap<String, String> = [
            ("RESIN_ARCH", arch),
            ("RESIN_MACHINE_NAME", &self.device_type),
            ("BALENA_ARCH", arch),
            ("BALENA_MACHINE_NAME", &self.device_type),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(service) = &self.service {
            vars.insert("BALENA_SERVICE_NAME".to_owned(), service.clone());
        }
        vars.extend(self.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        for suffix in ["SERVICE_NAME", "APP_NAME", "RELEASE_HASH"] {
            let twin = format!("RESIN_{suffix}");
            if self.vars.contains_key(&twin) {
                continue;
            }
            if let Some(value) = vars.get(&format!("BALENA_{suffix}")).cloned() {
                vars.insert(twin, value);
            }
        }
        vars
    }
}

/// The resolver that chose a service's Dockerfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolverKind {
    /// `Dockerfile.<device type>` (or the specified path with that suffix), templated.
    DeviceType,
    /// `Dockerfile.<arch>` (or the specified path with that suffix), templated.
    Arch,
    /// `Dockerfile.template` (or the specified path's `.template`), templated.
    Template,
    /// The plain `Dockerfile` (or the specified path), used as it is.
    Dockerfile,
}

impl ResolverKind {
    /// The reference's resolver name, as `balena build` reports it as the project type.
    /// Device-type and arch files share the name `Architecture-specific Dockerfile`.
    pub fn name(self) -> &'static str {
        match self {
            ResolverKind::DeviceType | ResolverKind::Arch => "Architecture-specific Dockerfile",
            ResolverKind::Template => "Dockerfile.template",
            ResolverKind::Dockerfile => "Standard Dockerfile",
        }
    }

    /// Whether the chosen file is rendered as a template (everything but a plain
    /// `Dockerfile`).
    pub fn is_templated(self) -> bool {
        self != ResolverKind::Dockerfile
    }
}

impl fmt::Display for ResolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// As its [`name`](ResolverKind::name), with the `serde` feature.
#[cfg(feature = "serde")]
impl serde::Serialize for ResolverKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A service's resolved Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The resolver that won.
    pub resolver: ResolverKind,
    /// The context path of the chosen file, exactly as the context listed it
    /// (`"Dockerfile.aarch64"`).
    pub source_path: String,
    /// Where the rendered Dockerfile goes in the context (normalised, context-relative):
    /// `"Dockerfile"`, or the `build.dockerfile` path without its `.template`/arch suffix.
    pub dockerfile_path: String,
    /// The rendered Dockerfile.
    pub contents: String,
    /// Context paths (as listed) to drop from the context: the plain `Dockerfile` or the
    /// specified file itself, as the reference does. Template and arch files stay.
    pub remove: Vec<String>,
}

/// A service name in an error message: `service "main": `, or nothing when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceName(pub Option<String>);

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => write!(f, "service \"{name}\": "),
            None => Ok(()),
        }
    }
}

/// Why a service's Dockerfile could not be resolved. Messages keep the reference's texts,
/// prefixed with the service when it is known.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `build.dockerfile` was given and the context has no Dockerfile of any kind.
    #[error("{service}Could not find a Dockerfile for this service (looked for {looked_for})")]
    NotFound {
        /// The service.
        service: ServiceName,
        /// The names looked for at the context's root, best first.
        looked_for: String,
    },
    /// Neither the `build.dockerfile` path nor any of its variants is in the context.
    #[error("{service}Specified file not found or is invalid: {path}")]
    SpecifiedNotFound {
        /// The service.
        service: ServiceName,
        /// The `build.dockerfile` path, as given.
        path: String,
    },
    /// An arch- or device-type-specific selection was rendered for parameters its file
    /// does not match (a [`Selection`] built by hand, or rendered with other [`Params`]
    /// than it was selected with).
    #[error("{service}Resolve called without a satisfied architecture specific dockerfile")]
    ArchUnsatisfied {
        /// The service.
        service: ServiceName,
    },
    /// A template or arch-specific Dockerfile uses a variable nobody defined
    /// (the reference's `DockerfileTemplateVariableError`).
    #[error("{service}{path}: {cause}")]
    Template {
        /// The service.
        service: ServiceName,
        /// The context path of the template.
        path: String,
        /// The undefined variable and its line. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: dockerfile::Error,
    },
    /// The chosen file could not be read from the context.
    #[error("{service}{path}: cannot read the Dockerfile: {cause}")]
    Read {
        /// The service.
        service: ServiceName,
        /// The context path of the file.
        path: String,
        /// What reading it gave. Shown in the message, so deliberately not a `#[source]` (one cause, printed once).
        cause: io::Error,
    },
    /// The chosen file is not UTF-8 text.
    #[error("{service}{path}: the Dockerfile is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The service.
        service: ServiceName,
        /// The context path of the file.
        path: String,
        /// The offset of the first invalid byte.
        offset: usize,
    },
}

impl Selection {
    /// Render the chosen file, whose bytes are `source` (the contents of
    /// [`Selection::source_path`]): templates and arch-specific files get
    /// [`Params::template_vars`]; a plain Dockerfile is used as it is.
    pub fn render(self, source: &[u8], params: &Params) -> Result<Resolved, Error> {
        let service = || ServiceName(params.service.clone());
        let wanted = match self.resolver {
            ResolverKind::Arch => Some(params.arch.slug()),
            ResolverKind::DeviceType => Some(params.device_type.as_str()),
            ResolverKind::Template | ResolverKind::Dockerfile => None,
        };
        let source_name = path::normalize(&self.source_path);
        let suffix = path::parse(&source_name).ext;
        if wanted.is_some_and(|w| w.is_empty() || suffix.strip_prefix('.') != Some(w)) {
            return Err(Error::ArchUnsatisfied { service: service() });
        }
        let text = std::str::from_utf8(source).map_err(|e| Error::NotUtf8 {
            service: service(),
            path: self.source_path.clone(),
            offset: e.valid_up_to(),
        })?;
        let contents = if self.resolver.is_templated() {
            dockerfile::process(text, &params.template_vars()).map_err(|cause| Error::Template {
                service: service(),
                path: self.source_path.clone(),
                cause,
            })?
        } else {
            text.to_owned()
        };
        Ok(Resolved {
            resolver: self.resolver,
            source_path: self.source_path,
            dockerfile_path: self.dockerfile_path,
            contents,
            remove: self.remove,
        })
    }
}

/// Choose and render the Dockerfile of the context `files` for `params`: [`select`] over
/// its paths, then read the one chosen file and [`Selection::render`] it.
pub fn resolve<C: ContextFiles + ?Sized>(files: &C, params: &Params) -> Result<Resolved, Error> {
    let selection = select(files.paths(), params)?;
    let source = files
        .read(&selection.source_path)
        .map_err(|cause| Error::Read {
            service: ServiceName(params.service.clone()),
            path: selection.source_path.clone(),
            cause,
        })?;
    selection.render(&source, params)
}
