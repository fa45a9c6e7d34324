//! What `resolve`, `build` and `deploy` share: which project, for which target, and how to
//! turn those flags into a [`multibuild::Plan`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use emulate::Emulation;
use resolve::Arch;

/// The project and how to read it.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectArgs {
    /// The project: a directory, a `.tar` file, or `-` for a tar on standard input.
    /// Default: the first -f file's directory (docker compose's rule), else the current one.
    #[arg(value_name = "PROJECT")]
    pub project: Option<PathBuf>,

    /// A compose file to use instead of discovering one (docker-compose.yml,
    /// docker-compose.yaml, compose.yaml, compose.yml); repeat to merge several, later ones
    /// overriding.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Interpolation values for the compose file, instead of the project's `.env`.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// The project name: `<name>_<service>` names the built images. Default: the project
    /// directory's name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,

    /// A build argument for every service, `KEY=VALUE`; repeatable. It overrides the compose
    /// file's `build.args`; `.balena/balena.yml` build variables override it.
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub build_args: Vec<(String, String)>,

    /// Use each service's own `.dockerignore` only (the balena CLI's --multi-dockerignore),
    /// instead of the root one plus the service's own.
    #[arg(short = 'm', long)]
    pub multi_dockerignore: bool,
}

impl ProjectArgs {
    /// The project as given, else the first `-f` file's directory, else the current one, so
    /// that every command reads `-f dir/docker-compose.yml` as `config` does.
    pub fn location(&self) -> PathBuf {
        if let Some(project) = &self.project {
            return project.clone();
        }
        self.files
            .first()
            .and_then(|file| file.parent())
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// The target.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Run foreign-architecture `RUN` steps under qemu: through binfmt_misc when the host
    /// has it registered, else by rewriting the Dockerfile to start each `RUN` with the
    /// host's qemu-<arch>-static (Debian's qemu-user-static).
    #[arg(long)]
    pub emulated: bool,

    /// With --emulated: the qemu binary to copy into the images, instead of the host's
    /// qemu-<arch>-static. It is run with `-execve`, so it must be one that understands it
    /// (balena's qemu), which also lets a `RUN` start other foreign programs.
    #[arg(long, value_name = "PATH", requires = "emulated")]
    pub qemu: Option<PathBuf>,

    /// The device type: its `Dockerfile.<device-type>` is preferred and it is
    /// `%%BALENA_MACHINE_NAME%%`. Default: a generic type for the architecture.
    #[arg(short = 'd', long = "device-type", value_name = "TYPE", value_parser = parse_device_type)]
    pub device_type: Option<String>,
}

/// `KEY=VALUE`, the first `=` separating.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.chars().any(char::is_whitespace) => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got \"{s}\"")),
    }
}

/// A device type slug: it names `Dockerfile.<type>` and is substituted into Dockerfiles, so
/// only slug characters (`raspberrypi3`, `intel-nuc`, `generic-aarch64`) are accepted.
pub fn parse_device_type(s: &str) -> Result<String, String> {
    let valid = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid device type \"{}\": a device type slug is lower-case letters, digits, '-', '_' and '.' (e.g. raspberrypi4-64, intel-nuc)",
            s.escape_debug()
        ))
    }
}

/// An architecture, with the valid ones listed when it is not one.
pub fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse::<Arch>().map_err(|e| e.to_string())
}

/// How to build for `target` on a host of `host`'s architecture, from the flags.
///
/// `allow_binfmt: false` asks for the rewrite even where binfmt_misc would do, for contexts
/// that must build anywhere (`resolve` writes them out for plain `docker build`).
pub fn emulation(
    target: Arch,
    host: Arch,
    args: &TargetArgs,
    allow_binfmt: bool,
) -> anyhow::Result<Emulation> {
    if target.runs_natively_on(host) {
        return Ok(Emulation::Native);
    }
    if !args.emulated {
        bail!(
            "the target architecture {target} is not the Docker host's ({host}): add --emulated to run its build steps under qemu"
        );
    }
    let chosen = emulate::choose_emulation(target, host, args.qemu.as_deref())
        .context("choosing how to emulate")?;
    Ok(match chosen {
        Emulation::Binfmt if !allow_binfmt => Emulation::Rewrite {
            host_qemu: emulate::host_qemu(target)?,
            options: emulate::TransposeOptions::new(target),
        },
        other => other,
    })
}

/// Reads the project and plans every service.
pub fn plan(
    project: &ProjectArgs,
    target: &TargetArgs,
    arch: Arch,
    emulation: Emulation,
    tag: Option<String>,
    template_vars: BTreeMap<String, String>,
) -> anyhow::Result<multibuild::Plan> {
    let location = project.location();
    let source = if location == Path::new("-") {
        multibuild::ProjectSource::TarStream(Box::new(std::io::stdin()))
    } else if location.is_file() {
        multibuild::ProjectSource::TarFile(location)
    } else if location.is_dir() {
        multibuild::ProjectSource::Dir(location)
    } else {
        bail!(
            "cannot read the project \"{}\": not a directory, a tar file, or - for standard input",
            location.display()
        );
    };
    Ok(multibuild::plan(multibuild::PlanOptions {
        source,
        compose_files: project.files.clone(),
        env_file: project.env_file.clone(),
        project_name: project.project_name.clone(),
        arch,
        device_type: target.device_type.clone(),
        emulation,
        tag,
        build_args: project.build_args.iter().cloned().collect(),
        template_vars,
        multi_dockerignore: project.multi_dockerignore,
    })?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(
            parse_key_value("A=b=c").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert_eq!(parse_key_value("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }

    #[test]
    fn foreign_arch_needs_emulated() {
        let args = TargetArgs {
            emulated: false,
            qemu: None,
            device_type: None,
        };
        let err = emulation(Arch::Aarch64, Arch::Amd64, &args, true).unwrap_err();
        assert!(err.to_string().contains("add --emulated"), "{err}");
        assert_eq!(
            emulation(Arch::I386, Arch::Amd64, &args, true).unwrap(),
            Emulation::Native
        );
    }
}
