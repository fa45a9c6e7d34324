//! Where a command's bytes go: standard output, a device or fifo, or a regular file that only
//! appears once it is whole.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context as _, bail};

/// Whether standard output may be a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdout {
    /// Text: a terminal is fine.
    Any,
    /// Binary (a tar): refuse a terminal.
    NotTerminal,
}

/// Writes a command's output to `path` and returns how many bytes were written.
///
/// `None` or `-` is standard output; a device or fifo (`/dev/null`) is written in place; a
/// regular file is written through a temporary file beside it and renamed over `path` only
/// when complete, so a failure never leaves a truncated file (nor clobbers an existing one).
pub(crate) fn write_output(
    path: Option<&Path>,
    stdout_kind: Stdout,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<u64> {
    let path = path.filter(|p| *p != Path::new("-"));
    let Some(path) = path else {
        let stdout = io::stdout();
        if stdout_kind == Stdout::NotTerminal && stdout.is_terminal() {
            bail!("refusing to write a tar to a terminal: redirect standard output or use -o FILE");
        }
        let (_, written) =
            write_counted(stdout.lock(), write).context("writing standard output")?;
        return Ok(written);
    };
    let writing = || format!("writing {}", path.display());
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if special {
        let file = File::options()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let (_, written) = write_counted(file, write).with_context(writing)?;
        return Ok(written);
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let (file, written) = write_counted(file, write).with_context(writing)?;
    // A temporary file is created 0600; the output is an ordinary file like any other.
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(writing)?;
    }
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}

/// Counts what `write` produces without keeping it: what `resolve --dry-run` reports.
/// No buffer in front of the sink: it would only copy every byte once more.
pub(crate) fn count_output(
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<u64> {
    let mut out = Counting {
        inner: io::sink(),
        written: 0,
    };
    write(&mut out)?;
    Ok(out.written)
}

/// Runs `write` into a 1 MiB buffer over `inner`, flushes, and gives `inner` back with the
/// number of bytes written.
fn write_counted<W: Write>(
    inner: W,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<(W, u64)> {
    let mut out = Counting {
        inner: BufWriter::with_capacity(1 << 20, inner),
        written: 0,
    };
    write(&mut out)?;
    let written = out.written;
    let inner = out.inner.into_inner().map_err(|e| e.into_error())?;
    Ok((inner, written))
}

struct Counting<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one line to standard output, or `stderr_line` to standard error. `println!` panics
/// when the reader went away (`balena-compose build --json | head`); a command must rather go
/// on (a deploy still has to finish or mark its release failed), so a line nobody reads is
/// dropped.
pub(crate) fn stdout_line(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// See [`stdout_line`].
pub(crate) fn stderr_line(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// `println!` that does not panic on a closed standard output; see [`stdout_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::output::stdout_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that does not panic on a closed standard error; see [`stdout_line`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::commands::output::stderr_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};

/// What to tell when `text` (an error and its causes) says file descriptors ran out (EMFILE):
/// the limit in force and how to raise it; `None` for any other error. A project of many
/// files or services can hit a low `ulimit -n`, and "os error 24" alone does not say so.
pub(crate) fn open_files_note(text: &str) -> Option<String> {
    if !text.contains("os error 24") {
        return None;
    }
    let limit = OPEN_FILES_LIMIT
        .get()
        .copied()
        .flatten()
        .or_else(soft_open_files_limit);
    Some(match limit {
        Some(limit) => {
            format!("too many open files (limit {limit}): raise it with `ulimit -n`")
        }
        None => "too many open files: raise the limit with `ulimit -n`".to_owned(),
    })
}

/// The limit read by [`remember_open_files_limit`].
static OPEN_FILES_LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();

/// Reads the open-files limit now, while a descriptor is free to read it with: once they ran
/// out, reading it may fail too.
pub(crate) fn remember_open_files_limit() {
    OPEN_FILES_LIMIT.get_or_init(soft_open_files_limit);
}

/// The soft `RLIMIT_NOFILE`, as `/proc/self/limits` tells it: `getrlimit` through `libc`
/// would need `unsafe`, which the workspace denies. `None` where /proc is not there (or the
/// descriptors are still all taken).
fn soft_open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
