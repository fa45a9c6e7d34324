//! Balena registry secrets files (toolkit.md §6.9) → [`build::RegistrySecrets`]: the
//! `--registry-secrets` file a caller names ([`read_file`]) and a project's
//! `.balena/registry-secrets.*`. `build` takes the credentials as plain data; reading and
//! validating the YAML or JSON lives here, beside the project's other metadata files.

use std::path::{Path, PathBuf};

use build::{RegistryCredential, RegistrySecrets};
use context::Project;
use serde_json::Value;

use crate::Error;

/// The names a project's registry secrets file may have in its metadata directory; the last
/// present one wins, as in the reference.
const PROJECT_FILE_NAMES: [&str; 3] = [
    "registry-secrets.json",
    "registry-secrets.yml",
    "registry-secrets.yaml",
];

/// A registry secrets file named by the caller that cannot be read, parsed or validated.
#[derive(Debug, thiserror::Error)]
#[error("Error validating registry secrets file \"{}\":\n{reason}", .path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, worded as the reference does (part of the message, not a separate
    /// cause).
    pub reason: Invalid,
}

/// Why registry secrets cannot be used; the schema's messages are ajv's, as the reference's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// A file name whose extension says neither JSON nor YAML.
    #[error("Filename must end with .json, .yml or .yaml")]
    Extension,
    /// The file cannot be read (or is not a regular file).
    #[error(transparent)]
    Read(std::io::Error),
    /// The file is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// Empty JSON text.
    #[error("Unexpected end of JSON input")]
    EmptyJson,
    /// Not JSON.
    #[error(transparent)]
    Json(serde_json::Error),
    /// Not YAML.
    #[error(transparent)]
    Yaml(parse::YamlValueError),
    /// The document or an entry is not a mapping (`at`: `data`, `data['host']`).
    #[error("{at} should be object")]
    NotAnObject {
        /// Where, as ajv names it.
        at: String,
    },
    /// A key with whitespace at the top, or an entry's field other than `username` and
    /// `password` (`at`: `data`, `data['host']`).
    #[error("{at} should NOT have additional properties")]
    AdditionalProperties {
        /// Where, as ajv names it.
        at: String,
    },
    /// `username` or `password` is not a string (`at`: `data['host'].username`).
    #[error("{at} should be string")]
    NotAString {
        /// Where, as ajv names it.
        at: String,
    },
}

/// Reads a `.json`, `.yml` or `.yaml` file (the extension decides, case-insensitively) and
/// validates it. Errors read `Error validating registry secrets file "<f>":\n<msg>`.
pub fn read_file(path: &Path) -> Result<RegistrySecrets, FileError> {
    let fail = |reason: Invalid| FileError {
        path: path.to_owned(),
        reason,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let yaml = match extension.as_deref() {
        Some("json") => false,
        Some("yml" | "yaml") => true,
        _ => return Err(fail(Invalid::Extension)),
    };
    let bytes = parse::read_project_file(path).map_err(|e| fail(Invalid::Read(e)))?;
    let text = String::from_utf8(bytes).map_err(|_| fail(Invalid::NotUtf8))?;
    let parsed = if yaml {
        parse_yaml(&text)
    } else {
        parse_json(&text)
    };
    parsed.map_err(fail)
}

/// Parses and validates JSON text.
pub fn parse_json(text: &str) -> Result<RegistrySecrets, Invalid> {
    if text.trim().is_empty() {
        // JSON.parse's wording, which the reference's tests assert.
        return Err(Invalid::EmptyJson);
    }
    let value: Value = serde_json::from_str(text).map_err(Invalid::Json)?;
    validate(&value)
}

/// Parses and validates YAML text.
pub fn parse_yaml(text: &str) -> Result<RegistrySecrets, Invalid> {
    let value = parse::yaml_value(text).map_err(Invalid::Yaml)?;
    validate(&value)
}

/// Validates a parsed document against the reference's schema, with ajv's wording: keys
/// without whitespace, values objects with optional string `username` and `password`.
pub fn validate(value: &Value) -> Result<RegistrySecrets, Invalid> {
    let Value::Object(map) = value else {
        return Err(Invalid::NotAnObject { at: "data".into() });
    };
    // ajv checks every key for `additionalProperties` before validating any value.
    if map.keys().any(|k| k.chars().any(char::is_whitespace)) {
        return Err(Invalid::AdditionalProperties { at: "data".into() });
    }
    let mut secrets = RegistrySecrets::new();
    for (key, entry) in map {
        let at = format!("data['{}']", key.replace('\\', "\\\\").replace('\'', "\\'"));
        let Value::Object(fields) = entry else {
            return Err(Invalid::NotAnObject { at });
        };
        if fields.keys().any(|f| f != "username" && f != "password") {
            return Err(Invalid::AdditionalProperties { at });
        }
        let field = |name: &str| match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Invalid::NotAString {
                at: format!("{at}.{name}"),
            }),
        };
        let credential = RegistryCredential::from_parts(field("username")?, field("password")?);
        secrets.insert(key.clone(), credential);
    }
    Ok(secrets)
}

/// `.balena/registry-secrets.{json,yml,yaml}` as credentials; none is no credentials.
pub(crate) fn project_registry_auth(project: &Project) -> Result<build::RegistryAuth, Error> {
    let mut secrets = None;
    for name in PROJECT_FILE_NAMES {
        if let Some(bytes) = project.read_metadata_file(name).map_err(Error::Project)? {
            secrets = Some((name, bytes));
        }
    }
    let Some((name, bytes)) = secrets else {
        return Ok(build::RegistryAuth::new());
    };
    let dir = project
        .metadata()
        .map(|m| m.dir().to_owned())
        .unwrap_or_default();
    let file = format!("{dir}/{name}");
    let invalid = |reason: Invalid| Error::RegistrySecrets {
        file: file.clone(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid(Invalid::NotUtf8))?;
    let mut parsed = if name.ends_with(".json") {
        parse_json(&text)
    } else {
        parse_yaml(&text)
    }
    .map_err(invalid)?;
    parsed.add_canonical_docker_hub_entry();
    Ok(build::RegistryAuth::from_registry_secrets(&parsed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The key Docker Hub's credentials are kept under.
    const HUB: &str = "https://index.docker.io/v1/";

    #[test]
    fn validator_messages_match_ajv() {
        let cases = [
            (
                r#"{"a b": {}}"#,
                "data should NOT have additional properties",
            ),
            (
                r#"{"hostname": {"username": "u", "extra": 1}}"#,
                "data['hostname'] should NOT have additional properties",
            ),
            (
                r#"{"hostname": {"username": 1}}"#,
                "data['hostname'].username should be string",
            ),
            (r#"{"hostname": "x"}"#, "data['hostname'] should be object"),
            ("[]", "data should be object"),
            (" ", "Unexpected end of JSON input"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_json(input).unwrap_err().to_string(),
                expected,
                "{input}"
            );
        }
        // username and password are optional; the empty key is allowed.
        let ok = parse_json(r#"{"": {}, "r.io": {"password": "p"}}"#).unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn yaml_secrets_and_hub_copy() {
        let parsed = parse_yaml("docker.io:\n  username: u\n  password: p\n").unwrap();
        let mut with_copy = parsed.clone();
        with_copy.add_canonical_docker_hub_entry();
        assert_eq!(with_copy.len(), 2);
        assert_eq!(with_copy.get(HUB).and_then(|c| c.username()), Some("u"));
        let err = parse_yaml("a:\n  user: x\n").unwrap_err().to_string();
        assert_eq!(err, "data['a'] should NOT have additional properties");
    }

    #[test]
    fn read_file_checks_the_extension() {
        let err = read_file(Path::new("/x/secrets.txt"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Error validating registry secrets file \"/x/secrets.txt\":\nFilename must end with .json, .yml or .yaml"
        );
    }

    #[test]
    fn read_file_reads_only_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("secrets.yml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // In a thread: a plain read of a FIFO waits for a writer for ever.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read_file(&path).map(drop)));
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("still reading the FIFO after 10 s")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Error validating registry secrets file \"{}\":\nis a FIFO, not a regular file",
                fifo.display()
            )
        );
    }
}
