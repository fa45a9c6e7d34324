//! The `multibuild` stage of balena-compose: one project → every service's image.
//!
//! [`plan()`] reads a project (a directory, a tar file or a tar stream), its compose file(s)
//! and `.balena/` metadata, cuts one build context per service, and resolves (and, for a
//! foreign architecture without binfmt_misc, transposes) each Dockerfile — all without a
//! daemon, so `balena-compose resolve` can write the contexts out. [`run()`] then builds or
//! pulls every service on a daemon, concurrently, reporting typed [`Event`]s and one
//! [`ServiceOutcome`] per service.
//!
//! Every build goes through the daemon's BuildKit when it has one ([`uses_buildkit`]), and
//! through the classic builder otherwise or when [`RunOptions::classic_builder`] asks.
//! Build secrets (`build-secrets` in `balena.yml`) are read into each [`BuildTask`]'s
//! `secrets` at plan time, with a BuildKit-mounted copy of its Dockerfile; [`run()`] asks the
//! daemon once what it can do (BuildKit, secret mounts, or balenaEngine build volumes) and
//! fails the services with secrets before they start when it can do neither.
//!
//! ```
//! use multibuild::{PlanOptions, ProjectSource, TaskKind};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("docker-compose.yml"),
//!     "services:\n  web:\n    build: ./web\n  db:\n    image: redis\n").unwrap();
//! std::fs::create_dir(dir.path().join("web")).unwrap();
//! std::fs::write(dir.path().join("web/Dockerfile.template"),
//!     "FROM local/%%BALENA_ARCH%%-busybox\n").unwrap();
//!
//! let plan = multibuild::plan(PlanOptions {
//!     source: ProjectSource::Dir(dir.path().to_owned()),
//!     compose_files: vec![],
//!     env_file: None,
//!     project_name: Some("demo".into()),
//!     arch: "aarch64".parse().unwrap(),
//!     device_type: None,
//!     emulation: emulate::Emulation::Native,
//!     tag: None,
//!     build_args: Default::default(),
//!     template_vars: Default::default(),
//!     multi_dockerignore: false,
//! }).unwrap();
//! let Ok(TaskKind::Build(web)) = &plan.tasks[0].kind else { panic!() };
//! assert_eq!(web.dockerfile, "FROM local/aarch64-busybox\n");
//! assert_eq!(web.tags, ["demo_web"]);
//! let Ok(TaskKind::Pull { image }) = &plan.tasks[1].kind else { panic!() };
//! assert_eq!(image, "redis:latest");
//! ```
#![deny(missing_docs)]

mod context_files;
mod contract;
mod error;
mod inputs;
pub mod metadata;
pub mod naming;
mod plan;
pub mod pool;
pub mod registry_secrets;
mod run;
mod shown;

pub use context_files::BuildContextFiles;
pub use contract::{CONTRACT_TYPE, parse_contract_file};
/// Re-exported from the `dockerfile` crate, its home.
pub use dockerfile::base_images;
pub use error::Error;
pub use inputs::{ARCH_LABEL, DEVICE_TYPE_LABEL, INPUTS_LABEL, Reuse};
pub use plan::{BuildTask, Plan, PlanOptions, ProjectSource, Task, TaskKind, plan};
pub use run::{Action, Event, MAX_LOG_BYTES, RunOptions, ServiceOutcome, run, uses_buildkit};
