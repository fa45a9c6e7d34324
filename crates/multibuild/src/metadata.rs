//! Build metadata from a project's `.balena/` (or `.resin/`) directory: `balena.yml` build
//! variables and build secrets, as the reference's `BuildMetadata` reads them
//! (toolkit.md §6.6).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Error;

/// One build secret: `.balena/secrets/<source>` made readable at `/run/secrets/<dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The file name under `.balena/secrets/`.
    pub source: String,
    /// The file name under `/run/secrets/` during the build.
    pub dest: String,
}

/// What `balena.yml` says about builds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildMetadata {
    /// The file the metadata came from (`.balena/balena.yml`), if any.
    pub file: Option<String>,
    /// `build-variables.global`.
    pub global_variables: BTreeMap<String, String>,
    /// `build-variables.services.<name>`.
    pub service_variables: BTreeMap<String, BTreeMap<String, String>>,
    /// `build-secrets.global`.
    pub global_secrets: Vec<SecretSpec>,
    /// `build-secrets.services.<name>`.
    pub service_secrets: BTreeMap<String, Vec<SecretSpec>>,
    /// `builders`: the Docker daemons `build` spreads the project over (items as in
    /// [`crate::pool::read_builders_file`]); empty when the file has none.
    pub builders: Vec<crate::pool::BuilderSpec>,
}

impl BuildMetadata {
    /// Reads the metadata from the files of one metadata directory. `dir` is the directory's
    /// project-relative name (`.balena`) and `read` returns the bytes of a file in it by its
    /// name relative to that directory, if it exists.
    ///
    /// More than one of [`context::CONFIG_FILE_NAMES`] present is an error listing them, as is a file
    /// that does not parse or validate; no file at all is empty metadata.
    pub fn read(dir: &str, mut read: impl FnMut(&str) -> Option<Vec<u8>>) -> Result<Self, Error> {
        let mut found: Vec<(&str, Vec<u8>)> = Vec::new();
        for name in context::CONFIG_FILE_NAMES {
            if let Some(bytes) = read(name) {
                found.push((name, bytes));
            }
        }
        match found.len() {
            0 => Ok(Self::default()),
            1 => {
                let (name, bytes) = found.remove(0);
                let file = format!("{dir}/{name}");
                Self::parse(&file, &bytes)
            }
            _ => Err(Error::MultipleBalenaConfigFiles {
                files: found.iter().map(|(n, _)| format!("{dir}/{n}")).collect(),
            }),
        }
    }

    /// Parses and validates one metadata file (`file` names it in errors; a `.json` name is
    /// read as JSON, anything else as YAML).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Self, Error> {
        let invalid = |message: String| Error::BalenaYmlValidation {
            file: file.to_owned(),
            message,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
        let value = if file.ends_with(".json") {
            serde_json::from_str::<Value>(text).map_err(|e| invalid(e.to_string()))?
        } else {
            parse::yaml_value(text).map_err(|e| invalid(e.to_string()))?
        };
        let root = match &value {
            Value::Object(map) => map,
            other => {
                return Err(invalid(format!(
                    "expected a mapping at the top level but found {}",
                    kind(other)
                )));
            }
        };
        let mut metadata = BuildMetadata {
            file: Some(file.to_owned()),
            ..Default::default()
        };
        if let Some(vars) = root.get("build-variables") {
            let vars = object(vars, "build-variables").map_err(invalid)?;
            if let Some(global) = vars.get("global") {
                metadata.global_variables =
                    var_list(global, "build-variables.global").map_err(invalid)?;
            }
            if let Some(services) = vars.get("services") {
                for (service, list) in
                    object(services, "build-variables.services").map_err(invalid)?
                {
                    let at = format!("build-variables.services.{service}");
                    metadata
                        .service_variables
                        .insert(service.clone(), var_list(list, &at).map_err(invalid)?);
                }
            }
        }
        if let Some(secrets) = root.get("build-secrets") {
            let secrets = object(secrets, "build-secrets").map_err(invalid)?;
            if let Some(global) = secrets.get("global") {
                metadata.global_secrets =
                    secret_list(global, "build-secrets.global").map_err(invalid)?;
            }
            if let Some(services) = secrets.get("services") {
                for (service, list) in
                    object(services, "build-secrets.services").map_err(invalid)?
                {
                    let at = format!("build-secrets.services.{service}");
                    metadata
                        .service_secrets
                        .insert(service.clone(), secret_list(list, &at).map_err(invalid)?);
                }
            }
        }
        if let Some(builders) = root.get("builders") {
            let lines = parse::yaml_item_lines(text, Some("builders"));
            metadata.builders = crate::pool::builder_list(builders, &lines).map_err(invalid)?;
        }
        Ok(metadata)
    }

    /// The build variables of one service: the global ones, overridden by the service's own.
    pub fn variables_for(&self, service: &str) -> BTreeMap<String, String> {
        let mut vars = self.global_variables.clone();
        if let Some(own) = self.service_variables.get(service) {
            vars.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        vars
    }

    /// The build secrets of one service: the global ones then the service's own; a later
    /// `dest` replaces an earlier one.
    pub fn secrets_for(&self, service: &str) -> Vec<SecretSpec> {
        let mut by_dest: BTreeMap<&str, &SecretSpec> = BTreeMap::new();
        let own = self.service_secrets.get(service).into_iter().flatten();
        for secret in self.global_secrets.iter().chain(own) {
            by_dest.insert(&secret.dest, secret);
        }
        by_dest.into_values().cloned().collect()
    }

    /// Whether any service has build secrets.
    pub fn has_secrets(&self) -> bool {
        !self.global_secrets.is_empty() || self.service_secrets.values().any(|s| !s.is_empty())
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("expected a mapping at {at} but found {}", kind(value)))
}

/// The reference's "permissive var list": a mapping of strings, or a list of `KEY=value`
/// strings (the first `=` separates; an empty value is refused, as the reference's `.+` does).
fn var_list(value: &Value, at: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let Value::String(s) = v else {
                    return Err(format!(
                        "expected a string at {at}.{key} but found {}",
                        kind(v)
                    ));
                };
                vars.insert(key.clone(), s.clone());
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let parsed = item.as_str().and_then(split_assignment);
                let Some((key, val)) = parsed else {
                    return Err(format!(
                        "invalid variable at {at}[{index}]: expected \"NAME=value\" but found {}",
                        match item {
                            Value::String(s) => format!("{s:?}"),
                            other => kind(other).to_owned(),
                        }
                    ));
                };
                vars.insert(key.to_owned(), val.to_owned());
            }
        }
        other => {
            return Err(format!(
                "expected a list of NAME=value or a mapping at {at} but found {}",
                kind(other)
            ));
        }
    }
    Ok(vars)
}

/// `NAME=value` as the reference's unanchored `/([^\s=]+?)=(.+)/` reads it: the name is the
/// run of non-space, non-`=` characters just before the first `=`, the value is non-empty.
fn split_assignment(s: &str) -> Option<(&str, &str)> {
    let eq = s.find('=')?;
    let before = &s[..eq];
    let name_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &before[name_start..];
    let value = &s[eq + 1..];
    let value = value.split(['\n', '\r']).next().unwrap_or("");
    (!name.is_empty() && !value.is_empty()).then_some((name, value))
}

fn secret_list(value: &Value, at: &str) -> Result<Vec<SecretSpec>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "expected a list of {{source, dest}} at {at} but found {}",
            kind(value)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = |name: &str| {
                item.get(name).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                    format!("expected a string \"{name}\" at {at}[{index}]")
                })
            };
            let spec = SecretSpec {
                source: field("source")?,
                dest: field("dest")?,
            };
            // Both end up as paths: one read from `.balena/secrets/`, one mounted under
            // `/run/secrets/`. Neither may climb out.
            for (name, path) in [("source", &spec.source), ("dest", &spec.dest)] {
                if path.is_empty()
                    || path.starts_with('/')
                    || path.split('/').any(|c| c == "..")
                {
                    return Err(format!(
                        "invalid {name} {path:?} at {at}[{index}]: must be a relative path without \"..\""
                    ));
                }
            }
            Ok(spec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn yml(text: &str) -> Result<BuildMetadata, Error> {
        BuildMetadata::parse(".balena/balena.yml", text.as_bytes())
    }

    #[test]
    fn variables_merge_global_then_service_as_the_reference() {
        let m = yml(
            "build-variables:\n  global: [A=1, B=x=y]\n  services:\n    main: {A: overridden, C: '3'}\n",
        )
        .unwrap();
        let main = m.variables_for("main");
        assert_eq!(main["A"], "overridden");
        assert_eq!(main["B"], "x=y");
        assert_eq!(main["C"], "3");
        let other = m.variables_for("other");
        assert_eq!(other.len(), 2);
        assert_eq!(other["A"], "1");
    }

    #[test]
    fn var_list_rules() {
        assert_eq!(split_assignment("A=1"), Some(("A", "1")));
        assert_eq!(split_assignment(" A=1"), Some(("A", "1")));
        assert_eq!(split_assignment("B=x=y"), Some(("B", "x=y")));
        assert_eq!(split_assignment("A="), None);
        assert_eq!(split_assignment("=1"), None);
        let err = yml("build-variables:\n  global: [A=]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(".balena/balena.yml"), "{err}");
        assert!(err.contains("build-variables.global[0]"), "{err}");
        let err = yml("build-variables:\n  global: {A: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("build-variables.global.A"), "{err}");
    }

    #[test]
    fn unknown_keys_are_kept_out_of_the_way_and_empty_files_are_errors() {
        assert!(yml("other: 1\nbuild-variables: {other: 1}\n").is_ok());
        assert!(yml("").is_err());
        assert!(yml("build-variables: [").is_err());
    }

    #[test]
    fn secrets_later_dest_wins_and_paths_are_checked() {
        let m = yml(
            "build-secrets:\n  global:\n    - {source: a, dest: x}\n  services:\n    main:\n      - {source: b, dest: x}\n      - {source: c, dest: y}\n",
        )
        .unwrap();
        assert!(m.has_secrets());
        let main = m.secrets_for("main");
        assert_eq!(main.len(), 2);
        assert_eq!(main[0].source, "b");
        assert_eq!(m.secrets_for("other").len(), 1);
        assert!(
            yml("build-secrets:\n  global:\n    - {source: ../etc/passwd, dest: x}\n").is_err()
        );
    }

    #[test]
    fn builders_are_read_with_the_line_of_a_bad_one() {
        let m = yml("builders:\n  - arm=ssh://u@arm,jobs=2\n").unwrap();
        assert_eq!(m.builders[0].name, "arm");
        let err = yml("build-variables: {}\nbuilders:\n  - {name: x}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".balena/balena.yml") && err.contains("line 3: builders[0].endpoint"),
            "{err}"
        );
    }

    #[test]
    fn several_metadata_files_are_an_error_naming_them() {
        let err = BuildMetadata::read(".balena", |name| {
            matches!(name, "balena.yml" | "resin.json").then(|| b"{}".to_vec())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(".balena/balena.yml") && err.contains(".balena/resin.json"),
            "{err}"
        );
        let none = BuildMetadata::read(".balena", |_| None).unwrap();
        assert_eq!(none, BuildMetadata::default());
    }
}
