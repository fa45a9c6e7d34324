//! The device side of balena-compose: bring an engine to an app's target state.
//!
//! A [`Composer`] manages one app on one engine. [`Composer::state`] reads the app back from
//! the engine's labels (no local database); [`Composer::update`] plans steps with the pure
//! [`planner::plan`] and applies them until the engine holds the target: images first, then
//! networks and volumes, then services in `depends_on` order, honouring update strategies,
//! update locks and container contracts.
//!
//! ```
//! use composer::model::{AppState, Strategy};
//! use composer::planner::{plan, PlanContext, Step};
//! use composer::target::TargetState;
//!
//! let doc = r#"{"apps": {"a1b2": {"id": 1, "name": "demo", "releases": {"c0ffee": {"id": 2,
//!     "services": {"web": {"id": 3, "image_id": 4, "image": "example/web",
//!     "labels": {"io.balena.update.strategy": "kill-then-download"}}}}}}}}"#;
//! let target = TargetState::from_json(doc)?;
//! let (_, app) = target.find_app("demo").expect("the app is in the document");
//! let (commit, release) = app.release().expect("one release");
//! assert_eq!(commit, "c0ffee");
//! assert_eq!(release.services["web"].image, "example/web");
//! assert_eq!(Strategy::from_label(Some("kill-then-download")), Strategy::KillThenDownload);
//!
//! // Nothing current, nothing targeted: nothing to do.
//! assert_eq!(plan(&AppState::default(), &AppState::default(), &PlanContext::default()), Vec::<Step>::new());
//! # Ok::<(), composer::Error>(())
//! ```
#![deny(missing_docs)]

mod apps;
mod composer;
mod config;
pub mod contract;
mod dry_run;
mod engine;
mod error;
mod events;
mod fetch;
mod interrupt;
pub mod lock;
pub mod model;
mod names;
mod options;
pub mod planner;
pub mod release_state;
mod resources;
pub mod target;

pub use apps::{AppSummary, list_apps};
pub use composer::{
    AppId, Composer, CurrentState, LogLine, LogQuery, RemoveOptions, ServiceReport, UpdateOptions,
};
pub use config::normalise_image_name;
pub use engine::AppRef;
pub use error::{Error, Result};
pub use events::Event;
pub use fetch::{EngineKind, detect_engine};
pub use interrupt::Interruption;
pub use names::{NAME_RULE, is_compose_name};
pub use options::{COMPATIBLE_SUPERVISOR_VERSION, DeltaOptions, DeviceFacts, Options};
