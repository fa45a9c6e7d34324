//! The base images a Dockerfile builds `FROM`, for the platform decision and the record of
//! a build's inputs.

use crate::lexer;

/// The `FROM` images of a (rendered) Dockerfile, in order and without repeats: stage names,
/// `scratch` and `--flags` left out. Unexpanded `${VAR}` references are kept; looking them up
/// fails and is ignored, as the reference does.
pub fn base_images(dockerfile: &str) -> Vec<String> {
    images_of(dockerfile, false, |image| Some(image.to_owned()))
}

/// The images a build for its target platform takes from the daemon: [`base_images`] without
/// the `FROM`s that pick their own `--platform`, with `$VAR`/`${VAR}` filled in from
/// `build_args` and the `ARG` defaults before the first `FROM`. A `FROM` with a variable
/// neither gives is left out (the build reports it if it matters).
pub fn target_base_images<'a>(
    dockerfile: &str,
    build_args: impl Fn(&str) -> Option<&'a str>,
) -> Vec<String> {
    let defaults = global_arg_defaults(dockerfile);
    let lookup = |name: &str| {
        build_args(name).map(str::to_owned).or_else(|| {
            defaults
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        })
    };
    images_of(dockerfile, true, |image| expand(image, &lookup))
}

/// The `FROM` images, each through `image` (`None` leaves it out), in order and without
/// repeats, stage names and `scratch` left out, and with `skip_platform` those `FROM`s with a
/// `--platform` of their own.
fn images_of(
    dockerfile: &str,
    skip_platform: bool,
    image: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    for line in from_lines(dockerfile) {
        if let Some(name) = line.stage {
            stages.push(name);
        }
        let Some(image) = image(&line.image) else {
            continue;
        };
        let skip = (skip_platform && line.platform.is_some())
            || image.eq_ignore_ascii_case("scratch")
            || stages.iter().any(|s| s.eq_ignore_ascii_case(&image))
            || images.contains(&image);
        if !skip {
            images.push(image);
        }
    }
    images
}

/// The logical lines of a Dockerfile as the one lexer reads them: continuations joined with
/// its escape character, comment lines and heredoc bodies left out. None when it cannot be
/// read: the build then says why.
fn instructions(dockerfile: &str) -> Vec<String> {
    lexer::lex(dockerfile)
        .map(|lexed| lexed.instructions.into_iter().map(|i| i.logical).collect())
        .unwrap_or_default()
}

/// Every `FROM` of a Dockerfile, in order.
fn from_lines(dockerfile: &str) -> Vec<FromLine> {
    instructions(dockerfile)
        .iter()
        .filter_map(|instruction| {
            let (keyword, args_at) = lexer::split_keyword(instruction);
            keyword
                .eq_ignore_ascii_case("FROM")
                .then(|| FromLine::parse(&instruction[args_at..]))
                .flatten()
        })
        .collect()
}

/// One `FROM` instruction: `FROM [--platform=…] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromLine {
    /// The image (or stage) it names, as written.
    pub image: String,
    /// The stage it defines (`AS name`), lower-cased.
    pub stage: Option<String>,
    /// The value of its `--platform` flag, as written.
    pub platform: Option<String>,
}

impl FromLine {
    /// A `FROM`'s arguments (the logical line past the keyword); `None` without an image.
    pub(crate) fn parse(args: &str) -> Option<FromLine> {
        let (flags, args): (Vec<&str>, Vec<&str>) =
            args.split_whitespace().partition(|w| w.starts_with("--"));
        let (image, rest) = args.split_first()?;
        let stage = match rest {
            [as_kw, name, ..] if as_kw.eq_ignore_ascii_case("AS") => {
                Some(name.to_ascii_lowercase())
            }
            _ => None,
        };
        let platform = flags.iter().find_map(|flag| {
            let (name, value) = flag.split_once('=')?;
            name.eq_ignore_ascii_case("--platform")
                .then(|| value.to_owned())
        });
        Some(FromLine {
            image: (*image).to_owned(),
            stage,
            platform,
        })
    }

    /// Whether it asks for the build host's platform (`--platform=$BUILDPLATFORM`): the stage
    /// runs natively on the build host.
    pub(crate) fn on_build_platform(&self) -> bool {
        self.platform
            .as_deref()
            .map(|value| value.trim_matches(|c| c == '"' || c == '\''))
            .is_some_and(|value| value == "$BUILDPLATFORM" || value == "${BUILDPLATFORM}")
    }
}

/// The `ARG NAME[=default]`s before the first `FROM` (the only ones a `FROM` can use).
fn global_arg_defaults(dockerfile: &str) -> Vec<(String, Option<String>)> {
    let mut args = Vec::new();
    for instruction in instructions(dockerfile) {
        let mut words = instruction.split_whitespace();
        match words.next() {
            Some(w) if w.eq_ignore_ascii_case("FROM") => break,
            Some(w) if w.eq_ignore_ascii_case("ARG") => {
                for word in words {
                    let (name, value) = match word.split_once('=') {
                        Some((name, value)) => (name, Some(value.trim_matches('"').to_owned())),
                        None => (word, None),
                    };
                    args.push((name.to_owned(), value));
                }
            }
            _ => {}
        }
    }
    args
}

/// `text` with each `$NAME` / `${NAME}` replaced by `lookup(NAME)`; `None` when one has no
/// value or uses a `${NAME:-…}` form.
fn expand(text: &str, lookup: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}')?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return None;
        }
        out.push_str(&lookup(name)?);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_scratch_flags_and_repeats_are_left_out() {
        let dockerfile = "# syntax=docker/dockerfile:1\nFROM alpine AS base\nFROM base\nFROM --platform=linux/arm64 \\\n  debian:11 as x\nFROM x\nFROM scratch\nFROM alpine\n";
        assert_eq!(base_images(dockerfile), ["alpine", "debian:11"]);
    }

    #[test]
    fn target_bases_fill_in_args_and_leave_out_own_platforms() {
        let dockerfile = "ARG BASE=local/busybox\nARG TAG\nFROM $BASE:${TAG} AS one\nFROM --platform=$BUILDPLATFORM golang AS tools\nFROM one\nFROM ${MISSING}\nFROM scratch\n";
        let args = |name: &str| (name == "TAG").then_some("1");
        assert_eq!(target_base_images(dockerfile, args), ["local/busybox:1"]);
        assert_eq!(
            target_base_images(dockerfile, |_| None),
            Vec::<String>::new()
        );
        assert_eq!(
            base_images(dockerfile),
            ["$BASE:${TAG}", "golang", "${MISSING}"]
        );
    }

    #[test]
    fn heredoc_bodies_and_the_escape_directive_are_read_as_docker_does() {
        // A line-joiner that knows only `\\` took the heredoc's body line for a FROM.
        let heredoc = "FROM local/busybox AS base\nRUN <<EOF\nFROM evil\nEOF\nFROM base\n";
        assert_eq!(base_images(heredoc), ["local/busybox"]);
        // With `# escape=\``, a backquote continues the line (and a backslash does not).
        let escaped =
            "# escape=`\nFROM --platform=linux/arm64 `\n  debian:11 AS x\nFROM c:\\\nFROM x\n";
        assert_eq!(base_images(escaped), ["debian:11", "c:\\"]);
        assert_eq!(target_base_images(escaped, |_| None), ["c:\\"]);
    }

    #[test]
    fn an_unreadable_dockerfile_has_no_base_images() {
        assert!(base_images("# escape=x\nFROM alpine\n").is_empty());
    }

    #[test]
    fn a_stage_named_like_a_later_image_is_only_a_stage_after_it_is_defined() {
        assert_eq!(
            base_images("FROM busybox AS build\nFROM build\n"),
            ["busybox"]
        );
        assert_eq!(
            base_images("from build\nfrom busybox as build\n"),
            ["build", "busybox"]
        );
    }
}
