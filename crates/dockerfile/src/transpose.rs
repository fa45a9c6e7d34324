//! The Dockerfile rewrite that runs every `RUN` under qemu (spec §4.1, corrected), and the
//! pinning of `$BUILDPLATFORM` for the classic builder.

use crate::SyntaxError as Error;
use crate::from::FromLine;
use crate::lexer::{self, Heredoc, Instruction};

/// How [`transpose`] rewrites a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransposeOptions {
    /// Where qemu is in the build context, relative to its root (the source of the inserted
    /// `COPY`). Default: `.balena/<qemu binary>`.
    pub context_qemu_path: String,
    /// Where qemu goes inside the image (the `COPY` destination, and the program every `RUN`
    /// starts). Default: `/usr/bin/<qemu binary>`.
    pub qemu_path: String,
    /// Pass `-execve` to qemu, so it also emulates the programs a `RUN` starts. Only balena's
    /// qemu (given with `--qemu PATH`) understands it; Debian's rejects it.
    pub execve: bool,
    /// Mount qemu into each `RUN` from the context (`RUN --mount=type=bind,…`, BuildKit only)
    /// instead of copying it into each stage: no layer of the result holds it.
    pub bind_mount: bool,
}

impl TransposeOptions {
    /// The defaults for the static qemu named `qemu_binary` (`qemu-aarch64-static`, Debian's):
    /// from `.balena/<qemu_binary>` in the context to `/usr/bin/<qemu_binary>`, without
    /// `-execve`. The caller puts the binary there in the context with mode 0755: the inserted
    /// `COPY` keeps the context's mode, and the classic builder has no `COPY --chmod`.
    pub fn new(qemu_binary: &str) -> Self {
        TransposeOptions {
            context_qemu_path: format!(".balena/{qemu_binary}"),
            qemu_path: format!("/usr/bin/{qemu_binary}"),
            execve: false,
            bind_mount: false,
        }
    }

    /// The `RUN` flag that mounts qemu from the context, for [`TransposeOptions::bind_mount`].
    pub fn qemu_mount_flag(&self) -> String {
        format!(
            "--mount=type=bind,source={},target={}",
            self.context_qemu_path, self.qemu_path
        )
    }
}

/// Docker's default shell for shell-form instructions.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Rewrite `dockerfile` so that every `RUN` (also under `ONBUILD`) starts the in-image qemu,
/// and every stage that does not inherit it from an earlier stage gets the qemu binary copied
/// in right after its `FROM`.
///
/// Only the `RUN` instructions change and one `COPY` line is inserted after each `FROM`; every
/// other byte (parser directives, comments, blank lines, other instructions with all their
/// flags) is kept. A rewritten `RUN` keeps its keyword and `--flag`s and becomes the exec form
/// `RUN [flags] ["<qemu>",("-execve",)…]` followed by:
/// * for an exec-form `RUN ["a","b"]`: exactly that argv (`a` must then be a path: qemu does
///   not search `PATH`);
/// * for a shell-form `RUN cmd`: the stage's `SHELL` (default `/bin/sh -c`) and `cmd`;
/// * for a heredoc `RUN <<EOF`: the stage's shell and the script BuildKit would have run, so
///   the result also works on the classic builder, which has no heredocs.
///
/// ```
/// use dockerfile::{TransposeOptions, transpose};
///
/// let opts = TransposeOptions::new("qemu-aarch64-static");
/// let out = transpose("FROM alpine\nRUN [\"/bin/echo\", \"é\"]\n", &opts)?;
/// assert_eq!(
///     out,
///     "FROM alpine\n\
///      COPY [\".balena/qemu-aarch64-static\",\"/usr/bin/qemu-aarch64-static\"]\n\
///      RUN [\"/usr/bin/qemu-aarch64-static\",\"/bin/echo\",\"é\"]\n"
/// );
/// # Ok::<(), dockerfile::SyntaxError>(())
/// ```
pub fn transpose(dockerfile: &str, opts: &TransposeOptions) -> Result<String, Error> {
    let lexed = lexer::lex(dockerfile)?;
    let mut out = String::with_capacity(dockerfile.len() + 256);
    let mut copied = 0;
    let mut stages = Stages::default();
    for ins in &lexed.instructions {
        let (keyword, args_at) = lexer::split_keyword(&ins.logical);
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => {
                stages.enter(FromLine::parse(&ins.logical[args_at..]));
                if stages.native || stages.inherits || opts.bind_mount {
                    continue;
                }
                out.push_str(&dockerfile[copied..ins.next]);
                let newline = if ins.newline.is_empty() {
                    out.push('\n');
                    ""
                } else {
                    ins.newline
                };
                out.push_str(&copy_qemu_line(opts));
                out.push_str(newline);
                copied = ins.next;
            }
            "SHELL" => {
                let shell = lexer::parse_json_array(&ins.logical[args_at..])
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::InvalidShell {
                        line: ins.line,
                        given: ins.logical[args_at..].to_owned(),
                    })?;
                stages.shell = shell;
            }
            "RUN" if stages.native => {}
            "RUN" => {
                out.push_str(&dockerfile[copied..ins.start]);
                out.push_str(&rewrite_run(ins, &ins.logical, &stages.shell, opts)?);
                copied = ins.end;
            }
            "ONBUILD" if stages.native => {}
            "ONBUILD" => {
                let inner = &ins.logical[args_at..];
                if lexer::split_keyword(inner).0.eq_ignore_ascii_case("RUN") {
                    out.push_str(&dockerfile[copied..ins.start]);
                    out.push_str(&ins.logical[..args_at]);
                    out.push_str(&rewrite_run(ins, inner, &stages.shell, opts)?);
                    copied = ins.end;
                }
            }
            _ => {}
        }
    }
    out.push_str(&dockerfile[copied..]);
    Ok(out)
}

/// The `COPY` that puts qemu into a stage.
fn copy_qemu_line(opts: &TransposeOptions) -> String {
    format!(
        "COPY {}",
        json_array(&[opts.context_qemu_path.as_str(), opts.qemu_path.as_str()])
    )
}

/// Spells out `$BUILDPLATFORM` in `FROM --platform=$BUILDPLATFORM` (also `${BUILDPLATFORM}`)
/// as `platform`, the build host's. BuildKit defines the variable itself; the classic builder
/// does not, and fails such a `FROM` with "failed to parse platform". Every other byte is
/// kept; a Dockerfile the lexer refuses is returned as it is, for the daemon to report.
///
/// ```
/// let out = dockerfile::pin_build_platform(
///     "FROM --platform=$BUILDPLATFORM golang AS build\nFROM alpine\n",
///     "linux/amd64",
/// );
/// assert_eq!(out, "FROM --platform=linux/amd64 golang AS build\nFROM alpine\n");
/// ```
pub fn pin_build_platform(dockerfile: &str, platform: &str) -> String {
    let Ok(lexed) = lexer::lex(dockerfile) else {
        return dockerfile.to_owned();
    };
    let mut out = String::with_capacity(dockerfile.len());
    let mut copied = 0;
    for ins in &lexed.instructions {
        let (keyword, _) = lexer::split_keyword(&ins.logical);
        if !keyword.eq_ignore_ascii_case("FROM") {
            continue;
        }
        out.push_str(&dockerfile[copied..ins.start]);
        let mut text = dockerfile[ins.start..ins.end].to_owned();
        for variable in ["${BUILDPLATFORM}", "$BUILDPLATFORM"] {
            text = text.replace(
                &format!("--platform={variable}"),
                &format!("--platform={platform}"),
            );
        }
        out.push_str(&text);
        copied = ins.end;
    }
    out.push_str(&dockerfile[copied..]);
    out
}

/// `run` (`RUN [flags] args`, the instruction's text or that of an `ONBUILD`'s) rewritten.
fn rewrite_run(
    ins: &Instruction,
    run: &str,
    shell: &[String],
    opts: &TransposeOptions,
) -> Result<String, Error> {
    let args_at = lexer::args_offset(run);
    let args = &run[args_at..];
    let prefix = if opts.bind_mount {
        let (keyword, flags_at) = lexer::split_keyword(run);
        format!(
            "{keyword} {} {}",
            opts.qemu_mount_flag(),
            &run[flags_at..args_at]
        )
    } else {
        run[..args_at].to_owned()
    };
    let mut argv: Vec<&str> = vec![opts.qemu_path.as_str()];
    if opts.execve {
        argv.push("-execve");
    }
    if let Some(exec) = lexer::parse_json_array(args) {
        if exec.is_empty() {
            return Err(Error::EmptyExec { line: ins.line });
        }
        argv.extend(exec.iter().map(String::as_str));
        return Ok(format!("{prefix}{}", json_array(&argv)));
    }
    let script = if ins.heredocs.is_empty() {
        args.to_owned()
    } else {
        heredoc_script(args, &ins.heredocs)
    };
    argv.extend(shell.iter().map(String::as_str));
    argv.push(&script);
    Ok(format!("{prefix}{}", json_array(&argv)))
}

/// The shell script BuildKit runs for a heredoc `RUN` (moby's `dispatchRun`):
/// * `RUN <<EOF` alone: the body itself (tabs stripped for `<<-`); a body starting with `#!`
///   is written to a temporary file and executed, so its interpreter runs it;
/// * anything else (`RUN cat <<EOF > f`, several heredocs): the command line followed by each
///   body and terminator, for the shell to read as its own heredocs.
fn heredoc_script(args: &str, heredocs: &[Heredoc]) -> String {
    if let [only] = heredocs
        && lexer::heredoc_markers(args).len() == 1
        && args.split_whitespace().count() == 1
    {
        let body = only.chomped_data();
        if !body.starts_with("#!") {
            return body;
        }
        // The delimiter cannot occur alone on a body line, so it safely re-quotes the body.
        return format!(
            "set -e\nf=$(mktemp)\ncat > \"$f\" <<'{name}'\n{body}{name}\nchmod +x \"$f\"\nset +e\n\"$f\"\ns=$?\nrm -f \"$f\"\nexit $s",
            name = only.name
        );
    }
    let mut full = args.to_owned();
    for h in heredocs {
        full.push('\n');
        full.push_str(&h.data);
        full.push_str(&h.name);
    }
    full
}

/// `["a","b"]`: an exec-form array, valid JSON, non-ASCII kept as UTF-8.
pub fn json_array(items: &[&str]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::from(*item).to_string());
    }
    out.push(']');
    out
}

/// Which `SHELL` each stage ends with, so a `FROM <stage>` inherits it as Docker does, and
/// which stages run on the build host.
#[derive(Debug)]
struct Stages {
    /// Finished named stages: (name, shell at the end, runs on the build host).
    done: Vec<(String, Vec<String>, bool)>,
    /// The current stage's `AS` name, lower-cased.
    current_name: Option<String>,
    shell: Vec<String>,
    /// The current stage is `FROM --platform=$BUILDPLATFORM` (or a stage that is): it runs
    /// natively on the build host, so it is left as written.
    native: bool,
    /// The current stage is `FROM` an earlier stage, which already has qemu: copying it in
    /// again is useless, and on the classic builder a re-copy followed by a `COPY --from` of
    /// that stage hits moby/moby#37965 ("failed to get layer … layer does not exist") on a
    /// cold cache.
    inherits: bool,
}

impl Default for Stages {
    fn default() -> Self {
        Stages {
            done: Vec::new(),
            current_name: None,
            shell: DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect(),
            native: false,
            inherits: false,
        }
    }
}

impl Stages {
    /// A `FROM` (`None`: one without an image) starts a stage.
    fn enter(&mut self, from: Option<FromLine>) {
        if let Some(name) = self.current_name.take() {
            self.done
                .push((name, std::mem::take(&mut self.shell), self.native));
        }
        let base = from.as_ref().map(|from| from.image.to_ascii_lowercase());
        let parent = base.and_then(|base| {
            self.done
                .iter()
                .rev()
                .find(|(name, _, _)| *name == base)
                .map(|(_, shell, native)| (shell.clone(), *native))
        });
        self.inherits = parent.is_some();
        self.native = from.as_ref().is_some_and(FromLine::on_build_platform)
            || parent.as_ref().is_some_and(|(_, native)| *native);
        self.shell = parent
            .map(|(shell, _)| shell)
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect());
        self.current_name = from.and_then(|from| from.stage);
    }
}
