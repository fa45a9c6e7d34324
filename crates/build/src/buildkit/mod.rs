//! Builds on a connection of our own, which bollard 0.21.1 can neither send nor parse:
//! BuildKit (`version=2`) with a session serving secrets and registry credentials, and the
//! classic builder with balenaEngine volumes.
//!
//! * `build` sends the `/build` request (its query, credentials and streamed context);
//!   `stream` reads its response to events and the built image (or the error).
//! * `session` opens `POST /session`, upgraded to h2c, and answers the daemon's gRPC calls
//!   (secrets, registry credentials, health): we are the server.
//! * `trace` decodes `moby.buildkit.trace` progress into the classic builder's events.
//! * `raw` is the HTTP/1.1 of all of these, on the dialer of `dial.rs`.

mod build;
pub(crate) mod raw;
mod session;
mod stream;
pub(crate) mod trace;

pub use build::INLINE_CACHE_ARG;
pub(crate) use build::run_raw_build;
pub use session::{BuildSecrets, MAX_SECRET_SIZE};
