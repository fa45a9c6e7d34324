//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parse::{Composition, Error, LoadOptions};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Options with a fixed, empty environment (tests must not depend on the process env).
pub fn options(files: &[PathBuf], env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        files: files.to_vec(),
        environment: Some(
            env.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<HashMap<_, _>>(),
        ),
        ..LoadOptions::default()
    }
}

/// Loads one fixture file.
pub fn load_fixture(rel: &str) -> Composition {
    parse::load(&options(&[fixture(rel)], &[])).unwrap()
}

/// Parses YAML text as `/tmp/compose.yml` of project `/tmp` (what the reference's validation
/// tests do), with an empty environment.
pub fn parse(yaml: &str) -> Result<Composition, Error> {
    let mut opts = options(&[PathBuf::from("/tmp/compose.yml")], &[]);
    opts.project_dir = Some(PathBuf::from("/tmp"));
    parse::parse_str(yaml, &opts)
}

/// The error message of a composition that must be refused.
pub fn refused(yaml: &str) -> Error {
    match parse(yaml) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// A string map from pairs.
pub fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}
