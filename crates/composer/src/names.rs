//! The one check of the names a target state gives: apps, releases, services, networks and
//! volumes. Service names become lock directories on the host and parts of container names;
//! network and volume names become engine object names. A name that is not a compose name
//! (`../../victim`, `a/b`) would lead the composer outside its directories, so every name is
//! checked before anything touches the filesystem or the engine.
//!
//! The rule is the compose schema's (`^[a-zA-Z0-9._-]+$`, not `.` or `..`), the one
//! `crates/parse` applies to service names. It is a copy rather than a call: the check is
//! private to parse's normaliser and the composer does not otherwise depend on the parser
//! (devices apply target states, they never parse compose files).

use std::ffi::OsStr;
use std::path::{Component, Path};

use crate::error::{Error, Result};

/// The rule, as printed in errors.
pub const NAME_RULE: &str = r#"^[a-zA-Z0-9._-]+$ (and not "." or "..")"#;

/// Whether `name` is a compose name.
pub fn is_compose_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `Ok` when `name` (a `kind` of `app`) is a compose name.
pub(crate) fn check(app: &str, kind: &'static str, name: &str) -> Result<()> {
    if is_compose_name(name) {
        return Ok(());
    }
    Err(Error::InvalidName {
        app: app.to_owned(),
        kind,
        name: name.to_owned(),
    })
}

/// `name` as one normal path component, or an error: whatever `name` is, joining the result
/// onto a directory stays inside that directory.
pub(crate) fn path_component<'a>(
    app: &str,
    kind: &'static str,
    name: &'a str,
) -> Result<&'a OsStr> {
    check(app, kind, name)?;
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(c)), None) => Ok(c),
        _ => Err(Error::InvalidName {
            app: app.to_owned(),
            kind,
            name: name.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn compose_names_pass_and_paths_do_not() {
        for good in ["web", "my-service_2", "a.b", "UPPER", "0"] {
            assert!(is_compose_name(good), "{good}");
            assert!(path_component("1", "service", good).is_ok(), "{good}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "/abs", "a\\b", "a b", "a\0b", "é", "x/..",
        ] {
            assert!(!is_compose_name(bad), "{bad:?}");
            let err = path_component("7", "service", bad).unwrap_err().to_string();
            assert!(
                err.contains("app 7")
                    && err.contains("service")
                    && err.contains("^[a-zA-Z0-9._-]+$"),
                "{err}"
            );
        }
    }
}
