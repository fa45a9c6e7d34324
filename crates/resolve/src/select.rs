//! Choosing a service's Dockerfile from the names in its context alone.

use crate::path::{normalize, parse, strip_extension};
use crate::{Error, Params, ResolverKind, ServiceName};

/// The Dockerfile chosen for a service, before its contents are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The resolver that won.
    pub resolver: ResolverKind,
    /// The context path of the chosen file, exactly as the context listed it.
    pub source_path: String,
    /// Where the rendered Dockerfile goes in the context (normalised, context-relative).
    pub dockerfile_path: String,
    /// The context paths (as listed) that the reference drops from the context: the plain
    /// `Dockerfile`, or the specified `build.dockerfile` file itself.
    pub remove: Vec<String>,
}

/// One candidate file, remembered by its listed path.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    listed: &'a str,
    /// Whether the file is the specified path itself, rather than that path plus a suffix.
    exact: bool,
}

/// Choose the Dockerfile for a context whose files are `paths` (in context order),
/// looking at names only.
///
/// Priorities, as the reference's resolvers: a `Dockerfile.<device type>` beats a
/// `Dockerfile.<arch>`, which beats `Dockerfile.template`, which beats `Dockerfile`; within
/// one kind the last file listed wins. Without a specified path only files at the context
/// root are candidates. With `build.dockerfile` = `S`, the candidates are `S`, `S.template`
/// and `S.<arch>`/`S.<device type>` (and `S` itself when its own extension is `.template`
/// or an arch/device type).
pub fn select<'a, I>(paths: I, params: &Params) -> Result<Selection, Error>
where
    I: IntoIterator<Item = &'a str>,
{
    let specified = params.dockerfile.as_deref().map(normalize);
    let target = specified.as_deref().unwrap_or("Dockerfile");

    let mut plain: Option<Candidate<'a>> = None;
    let mut template: Option<Candidate<'a>> = None;
    let mut by_arch: Option<Candidate<'a>> = None;
    let mut by_device_type: Option<Candidate<'a>> = None;
    let mut remove = Vec::new();

    // Every candidate's file name starts with the target's, so most listings are skipped
    // before any normalisation.
    let target_file = last_component(target);

    for listed in paths {
        let file = last_component(listed.trim_end_matches('/'));
        if !(file.starts_with(target_file) || matches!(file, "" | "." | "..")) {
            continue;
        }
        let name = normalize(listed);
        if name.is_empty() {
            continue;
        }
        let parsed = parse(&name);
        let exact = parsed.full == target;
        if exact {
            plain = Some(Candidate { listed, exact });
            remove.push(listed.to_owned());
        }
        // Without a specified path, `exact` never holds for a suffixed file (`Dockerfile`
        // has no extension), so one test covers both of the reference's needsEntry forms.
        if !(exact || parsed.minus_ext == target) {
            continue;
        }
        match parsed.ext {
            ".template" => template = Some(Candidate { listed, exact }),
            ext => {
                let suffix = ext.strip_prefix('.').unwrap_or_default();
                if suffix == params.arch.slug() {
                    by_arch = Some(Candidate { listed, exact });
                } else if !suffix.is_empty() && suffix == params.device_type {
                    // An empty suffix (`Dockerfile.`) names nothing, even with an empty
                    // device type (the reference would match it then).
                    by_device_type = Some(Candidate { listed, exact });
                }
            }
        }
    }

    let chosen = [
        (ResolverKind::DeviceType, by_device_type),
        (ResolverKind::Arch, by_arch),
        (ResolverKind::Template, template),
        (ResolverKind::Dockerfile, plain),
    ]
    .into_iter()
    .find_map(|(kind, c)| c.map(|c| (kind, c)));

    let Some((resolver, candidate)) = chosen else {
        let service = ServiceName(params.service.clone());
        return Err(match &params.dockerfile {
            Some(path) => Error::SpecifiedNotFound {
                service,
                path: path.clone(),
            },
            None => Error::NotFound {
                service,
                looked_for: format!(
                    "{}Dockerfile.{}, Dockerfile.template, Dockerfile",
                    if params.device_type.is_empty() {
                        String::new()
                    } else {
                        format!("Dockerfile.{}, ", params.device_type)
                    },
                    params.arch.slug()
                ),
            },
        });
    };

    // The output keeps the specified name, minus the suffix that selected the file when the
    // file is the specified path itself (`MyDockerfile.template` → `MyDockerfile`).
    let dockerfile_path = match (resolver, candidate.exact) {
        (ResolverKind::Dockerfile, _) | (_, false) => target,
        (_, true) => strip_extension(target),
    };
    Ok(Selection {
        resolver,
        source_path: candidate.listed.to_owned(),
        dockerfile_path: dockerfile_path.to_owned(),
        remove,
    })
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
