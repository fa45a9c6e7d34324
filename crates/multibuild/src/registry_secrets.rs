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
#[error("Error validating registry secrets file \"{}\":\n{message}", .path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The validation message, worded as the reference does.
    pub message: String,
}

/// Reads a `.json`, `.yml` or `.yaml` file (the extension decides, case-insensitively) and
/// validates it. Errors read `Error validating registry secrets file "<f>":\n<msg>`.
pub fn read_file(path: &Path) -> Result<RegistrySecrets, FileError> {
    let fail = |message: String| FileError {
        path: path.to_owned(),
        message,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let yaml = match extension.as_deref() {
        Some("json") => false,
        Some("yml" | "yaml") => true,
        _ => return Err(fail("Filename must end with .json, .yml or .yaml".into())),
    };
    let bytes = parse::read_project_file(path).map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8".into()))?;
    let parsed = if yaml {
        parse_yaml(&text)
    } else {
        parse_json(&text)
    };
    parsed.map_err(fail)
}

/// Parses and validates JSON text; the error is the bare message.
pub fn parse_json(text: &str) -> Result<RegistrySecrets, String> {
    if text.trim().is_empty() {
        // JSON.parse's wording, which the reference's tests assert.
        return Err("Unexpected end of JSON input".into());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    validate(&value)
}

/// Parses and validates YAML text; the error is the bare message.
pub fn parse_yaml(text: &str) -> Result<RegistrySecrets, String> {
    let value = parse::yaml_value(text).map_err(|e| e.to_string())?;
    validate(&value)
}

/// Validates a parsed document against the reference's schema, with ajv's wording: keys
/// without whitespace, values objects with optional string `username` and `password`.
pub fn validate(value: &Value) -> Result<RegistrySecrets, String> {
    let Value::Object(map) = value else {
        return Err("data should be object".into());
    };
    // ajv checks every key for `additionalProperties` before validating any value.
    if map.keys().any(|k| k.chars().any(char::is_whitespace)) {
        return Err("data should NOT have additional properties".into());
    }
    let mut secrets = RegistrySecrets::new();
    for (key, entry) in map {
        let path = format!("data['{}']", key.replace('\\', "\\\\").replace('\'', "\\'"));
        let Value::Object(fields) = entry else {
            return Err(format!("{path} should be object"));
        };
        if fields.keys().any(|f| f != "username" && f != "password") {
            return Err(format!("{path} should NOT have additional properties"));
        }
        let field = |name: &str| match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{path}.{name} should be string")),
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
    let invalid = |message: String| Error::RegistrySecrets {
        file: file.clone(),
        message,
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8".to_owned()))?;
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
            assert_eq!(parse_json(input).unwrap_err(), expected, "{input}");
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
        let err = parse_yaml("a:\n  user: x\n").unwrap_err();
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
