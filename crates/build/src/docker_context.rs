//! Which daemon to reach: flags, `DOCKER_HOST`, Docker contexts and the TLS settings, with the
//! docker CLI's precedence.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::connect::DEFAULT_DOCKER_HOST;
use crate::dial::{Endpoint, TlsFiles};
use crate::error::{Error, Result};

/// What the command line says about the daemon (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonFlags {
    /// `--docker-host` / `-H`.
    pub docker_host: Option<String>,
    /// `--context`.
    pub context: Option<String>,
    /// The balena CLI's `--ca`.
    pub ca: Option<PathBuf>,
    /// The balena CLI's `--cert`.
    pub cert: Option<PathBuf>,
    /// The balena CLI's `--key`.
    pub key: Option<PathBuf>,
}

/// A daemon to reach: its address as the user named it (for messages) and how to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// The address, e.g. `ssh://root@host:2222` or `tcp://127.0.0.1:2376`.
    pub host: String,
    /// How to reach it.
    pub endpoint: Endpoint,
}

impl Daemon {
    /// Resolves the daemon from `flags` and the environment, in the docker CLI's order:
    ///
    /// 1. `--docker-host` (`-H`),
    /// 2. `--context NAME`,
    /// 3. `DOCKER_HOST`,
    /// 4. `DOCKER_CONTEXT`,
    /// 5. `currentContext` of `$DOCKER_CONFIG/config.json` (default `~/.docker`),
    /// 6. the default socket, `unix:///var/run/docker.sock`.
    ///
    /// The context named `default` is 3 then 6, as in docker. A context's TLS comes from
    /// `contexts/tls/<sha256 of the name>/docker/{ca,cert,key}.pem` and its `SkipTLSVerify`.
    /// For an address given by flag or `DOCKER_HOST`, a `tcp://` daemon is reached with TLS
    /// when `--ca/--cert/--key` are given (all three, checked against `--ca`: the balena
    /// CLI's rule), else when `DOCKER_TLS_VERIFY` is set (checked against `ca.pem`) or
    /// `DOCKER_TLS` is set (not checked), with the files of `DOCKER_CERT_PATH` (default
    /// `~/.docker`), as in docker.
    pub fn resolve(flags: &DaemonFlags) -> Result<Daemon> {
        Self::resolve_in(flags, &|name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// [`Daemon::resolve`] with `env` for the environment.
    pub fn resolve_in(flags: &DaemonFlags, env: &dyn Fn(&str) -> Option<String>) -> Result<Daemon> {
        let config_dir = docker_config_dir(env);
        if let Some(host) = &flags.docker_host {
            return from_address(host, flags, env, &config_dir);
        }
        if let Some(name) = &flags.context {
            return from_context(name, flags, env, &config_dir);
        }
        if let Some(host) = env("DOCKER_HOST") {
            return from_address(&host, flags, env, &config_dir);
        }
        let context = env("DOCKER_CONTEXT").or_else(|| current_context(&config_dir));
        match context {
            Some(name) => from_context(&name, flags, env, &config_dir),
            None => from_address(DEFAULT_DOCKER_HOST, flags, env, &config_dir),
        }
    }
}

fn docker_config_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("DOCKER_CONFIG").map(PathBuf::from).unwrap_or_else(|| {
        env("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker")
    })
}

/// `currentContext` of config.json; a missing or unreadable file means none, as in docker.
fn current_context(config_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config_dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config
        .get("currentContext")?
        .as_str()
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

fn from_address(
    host: &str,
    flags: &DaemonFlags,
    env: &dyn Fn(&str) -> Option<String>,
    config_dir: &Path,
) -> Result<Daemon> {
    let endpoint = match Endpoint::parse(host)? {
        Endpoint::Tcp(address) => match tls_of_address(flags, env, config_dir) {
            Some(tls) => Endpoint::Tls { address, tls },
            None => Endpoint::Tcp(address),
        },
        other => other,
    };
    Ok(Daemon {
        host: host.to_owned(),
        endpoint,
    })
}

fn tls_of_address(
    flags: &DaemonFlags,
    env: &dyn Fn(&str) -> Option<String>,
    config_dir: &Path,
) -> Option<TlsFiles> {
    if flags.ca.is_some() || flags.cert.is_some() || flags.key.is_some() {
        return Some(TlsFiles {
            ca: flags.ca.clone(),
            cert: flags.cert.clone(),
            key: flags.key.clone(),
            verify: true,
        });
    }
    let verify = env("DOCKER_TLS_VERIFY").is_some();
    if !verify && env("DOCKER_TLS").is_none() {
        return None;
    }
    let dir = env("DOCKER_CERT_PATH").map_or_else(|| config_dir.to_owned(), PathBuf::from);
    Some(TlsFiles::in_dir(&dir, verify))
}

/// docker stores a context under the hex SHA-256 of its name.
fn context_id(name: &str) -> String {
    sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn from_context(
    name: &str,
    flags: &DaemonFlags,
    env: &dyn Fn(&str) -> Option<String>,
    config_dir: &Path,
) -> Result<Daemon> {
    if name == "default" {
        let host = env("DOCKER_HOST").unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
        return from_address(&host, flags, env, config_dir);
    }
    let contexts = config_dir.join("contexts");
    let id = context_id(name);
    let meta_path = contexts.join("meta").join(&id).join("meta.json");
    let bad = |reason: String| Error::BadContext {
        name: name.to_owned(),
        path: meta_path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&meta_path).map_err(|e| bad(e.to_string()))?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let docker = &meta["Endpoints"]["docker"];
    let host = docker["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no Endpoints.docker.Host".to_owned()))?;
    let skip_verify = docker["SkipTLSVerify"].as_bool().unwrap_or(false);
    let tls_dir = contexts.join("tls").join(&id).join("docker");
    let endpoint = match Endpoint::parse(host)? {
        Endpoint::Tcp(address) if tls_dir.is_dir() || skip_verify => Endpoint::Tls {
            address,
            tls: TlsFiles::in_dir(&tls_dir, !skip_verify),
        },
        other => other,
    };
    Ok(Daemon {
        host: host.to_owned(),
        endpoint,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn write_context(config: &Path, name: &str, host: &str) {
        let dir = config.join("contexts/meta").join(context_id(name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("meta.json"),
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .unwrap();
    }

    #[test]
    fn context_ids_are_docker_s() {
        // `docker context create foo` stores it under this directory.
        assert_eq!(
            context_id("foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    #[test]
    fn precedence_is_the_docker_cli_s() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().to_str().unwrap();
        write_context(dir.path(), "flag", "tcp://flag:1");
        write_context(dir.path(), "envctx", "tcp://envctx:1");
        write_context(dir.path(), "current", "ssh://current");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"current"}"#,
        )
        .unwrap();
        let all = [
            ("DOCKER_CONFIG", config),
            ("DOCKER_HOST", "tcp://env:1"),
            ("DOCKER_CONTEXT", "envctx"),
        ];
        let resolve = |flags: &DaemonFlags, n: usize| {
            Daemon::resolve_in(flags, &env_of(&all[..n])).unwrap().host
        };
        let both = DaemonFlags {
            docker_host: Some("tcp://host:1".into()),
            context: Some("flag".into()),
            ..DaemonFlags::default()
        };
        let context_only = DaemonFlags {
            context: Some("flag".into()),
            ..DaemonFlags::default()
        };
        let none = DaemonFlags::default();
        assert_eq!(resolve(&both, 3), "tcp://host:1");
        assert_eq!(resolve(&context_only, 3), "tcp://flag:1");
        assert_eq!(resolve(&none, 3), "tcp://env:1");
        let without_host = [all[0], all[2]];
        let host = |flags: &DaemonFlags, env: &[(&str, &str)]| {
            Daemon::resolve_in(flags, &env_of(env)).unwrap().host
        };
        assert_eq!(host(&none, &without_host), "tcp://envctx:1");
        assert_eq!(host(&none, &all[..1]), "ssh://current");
        assert_eq!(host(&none, &[]), DEFAULT_DOCKER_HOST);
    }

    #[test]
    fn tls_follows_docker_tls_verify_and_the_balena_flags() {
        let env = env_of(&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/nowhere")]);
        let flags = DaemonFlags {
            docker_host: Some("tcp://h:2376".into()),
            ..DaemonFlags::default()
        };
        let daemon = Daemon::resolve_in(&flags, &env).unwrap();
        assert!(matches!(daemon.endpoint, Endpoint::Tls { ref tls, .. } if tls.verify));
        let plain = Daemon::resolve_in(&flags, &env_of(&[])).unwrap();
        assert_eq!(plain.endpoint, Endpoint::Tcp("h:2376".into()));
        let with_ca = DaemonFlags {
            ca: Some("/ca.pem".into()),
            ..flags.clone()
        };
        let daemon = Daemon::resolve_in(&with_ca, &env_of(&[])).unwrap();
        assert!(
            matches!(daemon.endpoint, Endpoint::Tls { ref tls, .. } if tls.ca.as_deref() == Some(Path::new("/ca.pem")))
        );
    }

    #[test]
    fn a_missing_context_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let flags = DaemonFlags {
            context: Some("nope".into()),
            ..DaemonFlags::default()
        };
        let env = env_of(&[("DOCKER_CONFIG", dir.path().to_str().unwrap())]);
        let err = Daemon::resolve_in(&flags, &env).unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
    }
}
