//! Registry credentials: balena's registry secrets (spec §6.9), the user's Docker config, and
//! their lookup by image reference.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use indexmap::IndexMap;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::reference::{DOCKER_HUB_ALIASES, DOCKER_HUB_AUTH_KEY, ImageReference};

/// One registry's credentials. `Debug` never shows the password or token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryCredential {
    username: Option<String>,
    password: Option<String>,
    identity_token: Option<String>,
}

impl RegistryCredential {
    /// A username/password pair.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            password: Some(password.into()),
            identity_token: None,
        }
    }

    /// An identity (refresh) token, as `docker login` stores for some registries.
    pub fn with_identity_token(token: impl Into<String>) -> Self {
        Self {
            identity_token: Some(token.into()),
            ..Self::default()
        }
    }

    /// The username, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// A registry secrets entry: `username` and `password` are each optional.
    pub fn from_parts(username: Option<String>, password: Option<String>) -> Self {
        Self {
            username,
            password,
            identity_token: None,
        }
    }

    /// Whether a password or token is set (the secret itself is never handed out).
    pub fn has_secret(&self) -> bool {
        self.password.is_some() || self.identity_token.is_some()
    }

    fn to_docker(&self, server_address: &str) -> DockerCredentials {
        DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            identitytoken: self.identity_token.clone(),
            serveraddress: Some(server_address.to_owned()),
            ..DockerCredentials::default()
        }
    }
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("RegistryCredential")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("identity_token", &redacted(&self.identity_token))
            .finish()
    }
}

/// The content of a balena registry secrets file (spec §6.9): registry key → credentials, in
/// file order, keys exactly as written. Reading and validating the file is the caller's
/// (`multibuild::registry_secrets`); this is the plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySecrets {
    entries: IndexMap<String, RegistryCredential>,
}

/// The Docker Hub domains, in the order `addCanonicalDockerHubEntry` tries them: the
/// reference's list, which [`DOCKER_HUB_ALIASES`](crate::reference::DOCKER_HUB_ALIASES) opens
/// with (its last alias, the registry's own host, is not one the reference tries).
const CANONICAL_HUB_DOMAINS: &[&str] = {
    let (reference_list, _) = crate::reference::DOCKER_HUB_ALIASES.split_at(6);
    reference_list
};

impl RegistrySecrets {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces, keeping its place) the entry for a key exactly as written.
    pub fn insert(&mut self, key: impl Into<String>, credential: RegistryCredential) {
        self.entries.insert(key.into(), credential);
    }

    /// The reference's `addCanonicalDockerHubEntry`: unless `https://index.docker.io/v1/` is
    /// present, copy the first entry that names Docker Hub (by domain order, then key order;
    /// the empty key counts) to it.
    pub fn add_canonical_docker_hub_entry(&mut self) {
        if let Some(credential) = self.canonical_docker_hub_entry() {
            self.entries
                .insert(DOCKER_HUB_AUTH_KEY.to_owned(), credential.clone());
        }
    }

    fn canonical_docker_hub_entry(&self) -> Option<&RegistryCredential> {
        if self.entries.contains_key(DOCKER_HUB_AUTH_KEY) {
            return None;
        }
        CANONICAL_HUB_DOMAINS.iter().find_map(|domain| {
            self.entries
                .iter()
                .find(|(key, _)| key.is_empty() || names_hub_domain(key, domain))
                .map(|(_, credential)| credential)
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for a key exactly as written.
    pub fn get(&self, key: &str) -> Option<&RegistryCredential> {
        self.entries.get(key)
    }

    /// The entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RegistryCredential)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// `(^|https?://)<domain>($|/.*)`, matched literally (the reference's unescaped dots are
/// wildcards; no real key depends on that).
fn names_hub_domain(key: &str, domain: &str) -> bool {
    let after_scheme = [key, strip_scheme(key)];
    after_scheme.iter().any(|rest| {
        rest.strip_prefix(domain)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
    })
}

fn strip_scheme(key: &str) -> &str {
    key.strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key)
}

/// The lookup key of a registry: Docker Hub's aliases become `https://index.docker.io/v1/`;
/// other keys lose their scheme and path and are lower-cased (`https://My.Reg:5000/v2/` →
/// `my.reg:5000`). `None` for a key that names no host.
pub fn normalise_registry_key(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some(DOCKER_HUB_AUTH_KEY.to_owned());
    }
    let host = strip_scheme(key)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host.is_empty() {
        None
    } else if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        Some(DOCKER_HUB_AUTH_KEY.to_owned())
    } else {
        Some(host)
    }
}

/// Credentials for every registry we know, keyed by normalised registry (see
/// [`normalise_registry_key`]). `Debug` never shows secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    entries: IndexMap<String, RegistryCredential>,
    skipped_helpers: Vec<String>,
}

impl RegistryAuth {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the credentials of a registry given as a host, a URL or a Docker Hub
    /// alias. A key naming no host is ignored.
    pub fn insert(&mut self, registry: &str, credential: RegistryCredential) {
        if let Some(key) = normalise_registry_key(registry) {
            self.entries.insert(key, credential);
        }
    }

    /// From balena registry secrets: every key normalised, and Docker Hub's credentials chosen
    /// by the reference's canonical-entry rule.
    pub fn from_registry_secrets(secrets: &RegistrySecrets) -> Self {
        let mut auth = Self::new();
        let mut first_hub_alias = None;
        for (key, credential) in secrets.iter() {
            match normalise_registry_key(key) {
                Some(k) if k == DOCKER_HUB_AUTH_KEY => {
                    first_hub_alias.get_or_insert(credential);
                }
                Some(k) => {
                    auth.entries.insert(k, credential.clone());
                }
                None => {}
            }
        }
        let hub = secrets
            .get(DOCKER_HUB_AUTH_KEY)
            .or_else(|| secrets.canonical_docker_hub_entry())
            .or(first_hub_alias);
        if let Some(credential) = hub {
            auth.entries
                .insert(DOCKER_HUB_AUTH_KEY.to_owned(), credential.clone());
        }
        auth
    }

    /// Reads `config.json` in `$DOCKER_CONFIG`, else `~/.docker`. A missing file is no
    /// credentials, not an error.
    pub fn from_default_docker_config() -> Result<Self> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker"),
                None => return Ok(Self::new()),
            },
        };
        let path = dir.join("config.json");
        if !path.exists() {
            return Ok(Self::new());
        }
        Self::from_docker_config(&path)
    }

    /// Reads a Docker CLI `config.json`: `auths` entries with a base64 `auth`, or plain
    /// `username`/`password`, or an `identitytoken`. Registries served by a credential helper
    /// (`credsStore`, `credHelpers`) are not queried; see [`Self::skipped_credential_helpers`].
    pub fn from_docker_config(path: &Path) -> Result<Self> {
        let fail = |reason: DockerConfigError| Error::DockerConfig {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(DockerConfigError::Read(e)))?;
        Self::parse_docker_config(&text).map_err(fail)
    }

    /// [`Self::from_docker_config`] on text.
    pub fn parse_docker_config(text: &str) -> std::result::Result<Self, DockerConfigError> {
        let config: Value = serde_json::from_str(text).map_err(DockerConfigError::Json)?;
        let mut auth = Self::new();
        if let Some(auths) = config.get("auths").and_then(Value::as_object) {
            for (registry, entry) in auths {
                let text_field = |name: &str| {
                    entry
                        .get(name)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                let mut credential = RegistryCredential {
                    username: text_field("username"),
                    password: text_field("password"),
                    identity_token: text_field("identitytoken"),
                };
                if let Some(encoded) = text_field("auth") {
                    let (user, password) =
                        decode_basic_auth(&encoded).map_err(|reason| DockerConfigError::Auth {
                            registry: registry.clone(),
                            reason,
                        })?;
                    credential.username = Some(user);
                    credential.password = Some(password);
                }
                if credential.has_secret() {
                    auth.insert(registry, credential);
                } else if config.get("credsStore").is_some() {
                    auth.skipped_helpers.push(registry.clone());
                }
            }
        }
        if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
            auth.skipped_helpers.extend(helpers.keys().cloned());
        }
        Ok(auth)
    }

    /// Adds every entry of `other`, replacing ours for the same registry (so project secrets
    /// can override user-wide ones).
    pub fn merge(&mut self, other: &RegistryAuth) {
        for (key, credential) in &other.entries {
            self.entries.insert(key.clone(), credential.clone());
        }
        self.skipped_helpers
            .extend(other.skipped_helpers.iter().cloned());
    }

    /// Registries whose credentials live in a credential helper, which this crate does not run.
    pub fn skipped_credential_helpers(&self) -> &[String] {
        &self.skipped_helpers
    }

    /// The credentials for pulling `reference` (Docker's rule for its registry part), with
    /// `serveraddress` set, ready for `X-Registry-Auth`.
    pub fn for_image(&self, reference: &str) -> Option<DockerCredentials> {
        let reference = ImageReference::parse(reference).ok()?;
        let key = if reference.is_docker_hub() {
            DOCKER_HUB_AUTH_KEY.to_owned()
        } else {
            normalise_registry_key(reference.registry.as_deref()?)?
        };
        self.entries
            .get(&key)
            .map(|credential| credential.to_docker(&key))
    }

    /// The credentials for a registry host as BuildKit's session asks for it
    /// (`127.0.0.1:5001`, `registry-1.docker.io` for Docker Hub).
    pub(crate) fn for_registry(&self, host: &str) -> Option<DockerCredentials> {
        let key = normalise_registry_key(host)?;
        self.entries
            .get(&key)
            .map(|credential| credential.to_docker(&key))
    }

    /// Every registry's credentials, for a build's `X-Registry-Config`.
    pub fn as_build_config(&self) -> HashMap<String, DockerCredentials> {
        self.entries
            .iter()
            .map(|(key, credential)| (key.clone(), credential.to_docker(key)))
            .collect()
    }

    /// The normalised registry keys we hold credentials for.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of registries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no credentials at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a Docker CLI `config.json` cannot be used ([`RegistryAuth::parse_docker_config`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerConfigError {
    /// The file cannot be read.
    #[error(transparent)]
    Read(std::io::Error),
    /// The file is not JSON.
    #[error(transparent)]
    Json(serde_json::Error),
    /// An `auths` entry whose `auth` is not base64 of `username:password`.
    #[error("auths[\"{registry}\"].auth: {reason}")]
    Auth {
        /// The registry the entry is for.
        registry: String,
        /// What is wrong with its `auth`.
        reason: BasicAuthError,
    },
}

/// What is wrong with a `config.json` `auth` value (never its content: it is a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BasicAuthError {
    /// Not base64.
    #[error("not base64: {reason}")]
    NotBase64 {
        /// What the decoder says.
        reason: base64::DecodeError,
    },
    /// Base64 of something that is not UTF-8.
    #[error("not UTF-8 once decoded")]
    NotUtf8,
    /// Base64 of text without a `:`.
    #[error("expected base64 of \"username:password\"")]
    NoColon,
}

fn decode_basic_auth(encoded: &str) -> std::result::Result<(String, String), BasicAuthError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|reason| BasicAuthError::NotBase64 { reason })?;
    let text = String::from_utf8(bytes).map_err(|_| BasicAuthError::NotUtf8)?;
    let (user, password) = text.split_once(':').ok_or(BasicAuthError::NoColon)?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn secrets(keys: &[&str]) -> RegistrySecrets {
        let mut entries = IndexMap::new();
        for (i, key) in keys.iter().enumerate() {
            entries.insert(
                (*key).to_owned(),
                RegistryCredential::new(format!("u{i}"), "p"),
            );
        }
        RegistrySecrets { entries }
    }

    #[test]
    fn canonical_entry_table_from_the_spec() {
        // (keys, expected count, index of the entry copied to the canonical key)
        let e = [
            "index.docker.io",
            "https://idx.docker.io/v1/",
            "https://docker.io/v9/",
            "cloud.docker.com/v1",
            "docker.com",
            "/docker.com",
            "eu.gcr.io",
            "",
        ];
        let table: &[(&[usize], usize, Option<usize>)] = &[
            (&[], 0, None),
            (&[0], 2, Some(0)),
            (&[1], 2, Some(1)),
            (&[2], 2, Some(2)),
            (&[3], 2, Some(3)),
            (&[4], 2, Some(4)),
            (&[5], 1, None),
            (&[6], 1, None),
            (&[7], 2, Some(7)),
            (&[0, 1], 3, Some(0)),
            (&[1, 2], 3, Some(1)),
            (&[4, 5], 3, Some(4)),
            (&[5, 6], 2, None),
            (&[6, 7], 3, Some(7)),
            (&[0, 1, 2, 3, 4, 5, 6, 7], 9, Some(0)),
        ];
        for (indices, count, canonical) in table {
            let keys: Vec<&str> = indices.iter().map(|i| e[*i]).collect();
            let mut s = RegistrySecrets::default();
            for i in *indices {
                s.entries.insert(
                    e[*i].to_owned(),
                    RegistryCredential::new(format!("u{i}"), "p"),
                );
            }
            s.add_canonical_docker_hub_entry();
            assert_eq!(s.len(), *count, "{keys:?}");
            let expected = canonical.map(|i| format!("u{i}"));
            assert_eq!(
                s.get(DOCKER_HUB_AUTH_KEY).and_then(|c| c.username()),
                expected.as_deref(),
                "{keys:?}"
            );
        }
        // An explicit canonical entry is kept as it is.
        let mut s = secrets(&[DOCKER_HUB_AUTH_KEY, "docker.io"]);
        s.add_canonical_docker_hub_entry();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(DOCKER_HUB_AUTH_KEY).unwrap().username(), Some("u0"));
    }

    #[test]
    fn lookup_by_image_reference() {
        let auth = RegistryAuth::from_registry_secrets(&secrets(&[
            "https://My.Reg:5000/v2/",
            "docker.io",
            "localhost",
        ]));
        let user = |image: &str| auth.for_image(image).and_then(|c| c.username);
        assert_eq!(user("alpine").as_deref(), Some("u1"));
        assert_eq!(user("docker.io/library/alpine").as_deref(), Some("u1"));
        assert_eq!(user("my.reg:5000/x").as_deref(), Some("u0"));
        assert_eq!(user("localhost/x").as_deref(), Some("u2"));
        assert_eq!(user("other.reg/x"), None);
        let hub = auth.for_image("alpine").unwrap();
        assert_eq!(hub.serveraddress.as_deref(), Some(DOCKER_HUB_AUTH_KEY));
        let config = auth.as_build_config();
        assert_eq!(config.len(), 3);
        assert!(config.contains_key("my.reg:5000"));
        assert!(config.contains_key(DOCKER_HUB_AUTH_KEY));
    }

    #[test]
    fn docker_config_entries() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("balena:s3cret");
        let text = format!(
            r#"{{"auths": {{"127.0.0.1:5001": {{"auth": "{encoded}"}},
                 "https://index.docker.io/v1/": {{"username": "hub", "password": "x"}},
                 "quay.io": {{}}}},
                "credsStore": "desktop", "credHelpers": {{"gcr.io": "gcloud"}}}}"#
        );
        let auth = RegistryAuth::parse_docker_config(&text).unwrap();
        let c = auth.for_image("127.0.0.1:5001/private/x").unwrap();
        assert_eq!(c.username.as_deref(), Some("balena"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(
            auth.for_image("busybox").unwrap().username.as_deref(),
            Some("hub")
        );
        assert_eq!(auth.skipped_credential_helpers(), ["quay.io", "gcr.io"]);
        let err = RegistryAuth::parse_docker_config(r#"{"auths":{"r":{"auth":"!!"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("auths[\"r\"].auth"), "{err}");
    }

    #[test]
    fn merge_overrides_per_registry() {
        let mut user = RegistryAuth::new();
        user.insert("a.io", RegistryCredential::new("old", "p"));
        user.insert("b.io", RegistryCredential::new("kept", "p"));
        let mut project = RegistryAuth::new();
        project.insert("https://a.io/", RegistryCredential::new("new", "p"));
        user.merge(&project);
        assert_eq!(user.len(), 2);
        assert_eq!(
            user.for_image("a.io/x").unwrap().username.as_deref(),
            Some("new")
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut auth = RegistryAuth::new();
        auth.insert("r.io", RegistryCredential::new("user", "hunter2-password"));
        auth.insert(
            "t.io",
            RegistryCredential::with_identity_token("tok-en-value"),
        );
        let text = format!("{auth:?}");
        assert!(text.contains("user"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("tok-en"), "{text}");
    }
}
