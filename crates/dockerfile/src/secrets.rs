//! BuildKit secret mounts on every `RUN`, for build secrets.

use crate::SyntaxError as Error;
use crate::lexer;

/// The `RUN` flag that mounts build secret `id` at `/run/secrets/<id>`, as
/// [`add_secret_mounts`] writes it (and as a build's step texts then show it).
///
/// ```
/// assert_eq!(
///     dockerfile::secret_mount_flag("token"),
///     "--mount=type=secret,id=token,target=/run/secrets/token"
/// );
/// ```
pub fn secret_mount_flag(id: &str) -> String {
    format!("--mount=type=secret,id={id},target=/run/secrets/{id}")
}

/// Add a BuildKit secret mount ([`secret_mount_flag`]) for each of `ids` to every `RUN` (also under `ONBUILD`), so each `RUN` can read
/// `/run/secrets/<id>` as the balenaEngine build volume would have let it.
///
/// Only the `RUN`s change, and only by the inserted flags: they go right after the `RUN`
/// keyword, so a heredoc body, a continuation or the `# escape=` character are untouched;
/// the instruction's own flags are kept after them. A `RUN` that already mounts a secret at
/// `/run/secrets/<id>` (or one with that id) does not get it twice.
///
/// ```
/// let out = dockerfile::add_secret_mounts("FROM a\nRUN cat /run/secrets/token\n", &["token"])?;
/// assert_eq!(
///     out,
///     "FROM a\nRUN --mount=type=secret,id=token,target=/run/secrets/token cat /run/secrets/token\n"
/// );
/// # Ok::<(), dockerfile::SyntaxError>(())
/// ```
pub fn add_secret_mounts(dockerfile: &str, ids: &[&str]) -> Result<String, Error> {
    let lexed = lexer::lex(dockerfile)?;
    let mut out = String::with_capacity(dockerfile.len() + 128);
    let mut copied = 0;
    for ins in &lexed.instructions {
        let (keyword, args_at) = lexer::split_keyword(&ins.logical);
        match keyword.to_ascii_uppercase().as_str() {
            "RUN" => {
                let flags = mount_flags(&ins.logical, ids);
                if flags.is_empty() {
                    continue;
                }
                // The keyword starts the instruction's first line, as written.
                let keyword_end = ins.start + keyword.len();
                out.push_str(&dockerfile[copied..keyword_end]);
                out.push(' ');
                out.push_str(&flags);
                copied = keyword_end;
            }
            "ONBUILD" => {
                let inner = &ins.logical[args_at..];
                let (inner_keyword, _) = lexer::split_keyword(inner);
                if !inner_keyword.eq_ignore_ascii_case("RUN") {
                    continue;
                }
                let flags = mount_flags(inner, ids);
                if flags.is_empty() {
                    continue;
                }
                // ONBUILD takes no heredocs: the logical line is the whole instruction.
                out.push_str(&dockerfile[copied..ins.start]);
                out.push_str(&ins.logical[..args_at]);
                out.push_str(inner_keyword);
                out.push(' ');
                out.push_str(&flags);
                out.push_str(&inner[inner_keyword.len()..]);
                copied = ins.end;
            }
            _ => {}
        }
    }
    out.push_str(&dockerfile[copied..]);
    Ok(out)
}

/// The mounts `run` (`RUN [flags] args`) lacks, as one space-separated string.
fn mount_flags(run: &str, ids: &[&str]) -> String {
    let (_, flags_at) = lexer::split_keyword(run);
    let existing = &run[flags_at..lexer::args_offset(run)];
    ids.iter()
        .filter(|id| {
            let target = format!("/run/secrets/{id}");
            let same_id = existing.split_whitespace().any(|flag| {
                flag.contains("type=secret")
                    && flag
                        .trim_start_matches("--mount=")
                        .split(',')
                        .any(|field| field == format!("id={id}"))
            });
            !same_id && !existing.contains(&target)
        })
        .map(|id| secret_mount_flag(id))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const M: &str = "--mount=type=secret,id=s,target=/run/secrets/s";

    #[test]
    fn every_run_gets_the_mount_and_nothing_else_changes() {
        let text = "# escape=`\nFROM a AS b\n# RUN in a comment\nrun echo `\n  hi\r\nRUN [\"/bin/true\"]\nCOPY x y\nONBUILD   RUN make\nRUN --network=none <<EOF\nRUN not an instruction\nEOF\n";
        let out = add_secret_mounts(text, &["s"]).unwrap();
        assert_eq!(
            out,
            format!(
                "# escape=`\nFROM a AS b\n# RUN in a comment\nrun {M} echo `\n  hi\r\nRUN {M} [\"/bin/true\"]\nCOPY x y\nONBUILD   RUN {M} make\nRUN {M} --network=none <<EOF\nRUN not an instruction\nEOF\n"
            )
        );
    }

    #[test]
    fn existing_mounts_of_the_secret_are_kept_alone() {
        let text = "FROM a\nRUN --mount=type=secret,id=s cat /run/secrets/s\nRUN --mount=type=secret,id=t,target=/run/secrets/s x\n";
        assert_eq!(add_secret_mounts(text, &["s"]).unwrap(), text);
        let two = add_secret_mounts("FROM a\nRUN x", &["a", "b/c"]).unwrap();
        assert_eq!(
            two,
            "FROM a\nRUN --mount=type=secret,id=a,target=/run/secrets/a --mount=type=secret,id=b/c,target=/run/secrets/b/c x"
        );
    }

    #[test]
    fn transposed_runs_keep_the_mounts() {
        let opts = crate::TransposeOptions::new("qemu-aarch64-static");
        let mounted = add_secret_mounts("FROM a\nRUN cat /run/secrets/s\n", &["s"]).unwrap();
        let out = crate::transpose(&mounted, &opts).unwrap();
        assert!(
            out.contains(&format!("RUN {M} [\"/usr/bin/qemu-aarch64-static\",\"/bin/sh\",\"-c\",\"cat /run/secrets/s\"]")),
            "{out}"
        );
    }
}
