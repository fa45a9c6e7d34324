//! The crate's one error type.

use std::io;

/// Everything that can go wrong while indexing a project or writing a context.
///
/// Every variant names the thing it is about: the tar entry, the file, the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `.dockerignore` line that moby would reject too.
    #[error("{} line {line}: {}", Printable(file), Printable(message))]
    Ignore {
        /// The ignore file, project-relative (or a caller-supplied label).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the pattern.
        message: String,
    },
    /// An entry path that is absolute or climbs out of the project root with `..`.
    #[error("tar entry {}: path escapes the project root", Quoted(path))]
    PathEscapes {
        /// The path as it appears in the archive.
        path: String,
    },
    /// An entry path that is not UTF-8 (build context paths are strings).
    #[error("tar entry {}: path is not valid UTF-8", Quoted(path))]
    NonUtf8Path {
        /// The path, lossily decoded.
        path: String,
    },
    /// A symlink or hard link whose target lies outside the project or the build context.
    #[error(
        "tar entry {}: {kind} target {} points outside {}",
        Quoted(path),
        Quoted(target),
        Printable(scope)
    )]
    LinkEscapes {
        /// The link's path.
        path: String,
        /// `symlink` or `hard link`.
        kind: &'static str,
        /// The link target as stored.
        target: String,
        /// `the project` or `the build context "<dir>"`.
        scope: String,
    },
    /// A hard link whose target is not a regular file that precedes it.
    #[error(
        "tar entry {}: hard link target {} is not a regular file in the project",
        Quoted(path),
        Quoted(target)
    )]
    BadHardLink {
        /// The link's path.
        path: String,
        /// The link target.
        target: String,
    },
    /// An entry below a symlink or a non-directory (`a -> /etc` then `a/passwd`).
    #[error(
        "tar entry {}: its parent {} is a {parent_kind}, not a directory",
        Quoted(path),
        Quoted(parent)
    )]
    BadParent {
        /// The entry's path.
        path: String,
        /// The offending ancestor.
        parent: String,
        /// What the ancestor is (`symlink`, `file`, `hard link`).
        parent_kind: &'static str,
    },
    /// An entry whose declared data runs past the end of the archive.
    #[error(
        "tar entry {}: declares {size} bytes of data but the archive ends at byte {archive_len}",
        Quoted(path)
    )]
    Truncated {
        /// The entry's path.
        path: String,
        /// The declared (effective, PAX-aware) size.
        size: u64,
        /// The archive's length.
        archive_len: u64,
    },
    /// A path or link name, or another pax record, over its limit
    /// ([`crate::MAX_NAME_LEN`], [`crate::MAX_PAX_RECORD_LEN`]).
    #[error(
        "tar entry {}: {what} is {len} bytes long, over the limit of {limit}",
        Quoted(entry)
    )]
    NameTooLong {
        /// The entry's path, cut to its first bytes (with `…`) if it is the long one.
        entry: String,
        /// `pax record "path"`, `GNU long name`, …
        what: String,
        /// The value's length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The archive itself is malformed (bad checksum, truncated header, bad number field…).
    #[error("malformed tar archive ({position}): {}", Printable(&cause.to_string()))]
    Tar {
        /// `at the first entry` or `after entry "<path>"`.
        position: String,
        /// The parser's error.
        // Shown in the message, so deliberately not a `#[source]`: the CLI prints an error's
        // chain of causes, and the cause would appear twice.
        cause: io::Error,
    },
    /// Reading a file or the archive failed.
    #[error("reading {}: {cause}", Printable(path))]
    Read {
        /// What was being read.
        path: String,
        /// The I/O error.
        // Shown in the message, so deliberately not a `#[source]`: the CLI prints an error's
        // chain of causes, and the cause would appear twice.
        cause: io::Error,
    },
    /// Writing a context tar failed.
    #[error("writing the tar of build context {context:?}: {cause}")]
    Write {
        /// The context directory.
        context: String,
        /// The I/O error.
        // Shown in the message, so deliberately not a `#[source]`: the CLI prints an error's
        // chain of causes, and the cause would appear twice.
        cause: io::Error,
    },
    /// Both `.balena/` and `.resin/` are present.
    #[error("the project has both a .balena/ and a .resin/ metadata directory; keep only one")]
    MultipleMetadataDirectories,
    /// More than one of `balena.yml`, `balena.yaml`, … is present.
    #[error("more than one build metadata file in {dir}/: {first} and {second}")]
    MultipleConfigFiles {
        /// `.balena` or `.resin`.
        dir: String,
        /// The first name found (in the reference's search order).
        first: String,
        /// The second name found.
        second: String,
    },
    /// A file too large for [`crate::Project::read_file`].
    #[error(
        "{}: {size} bytes is too large to read into memory (limit {limit})",
        Printable(path)
    )]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A build context directory that is absolute, escapes the project, or does not exist.
    #[error("build context {dir:?}: {reason}")]
    InvalidContext {
        /// The context as given.
        dir: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An [`crate::Override`] with an unusable path.
    #[error("override {path:?}: {reason}")]
    InvalidOverride {
        /// The override's path.
        path: String,
        /// Why it is rejected.
        reason: &'static str,
    },
}

/// Shows input-derived text (entry names, patterns, paths) with control characters escaped,
/// so that a hostile name cannot write terminal escape sequences to the user's terminal.
pub(crate) struct Printable<'a>(pub(crate) &'a str);

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// How many bytes of a name or value an error quotes.
const QUOTED_PREFIX: usize = 200;

/// The start of `text` for an error: its first [`QUOTED_PREFIX`] bytes (or a few more, up
/// to a character boundary), marked with `…` if cut, so that a 4 KiB name, or a
/// 1 MiB pax value, does not fill the terminal.
pub(crate) fn cut(text: &str) -> String {
    match text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| *i >= QUOTED_PREFIX)
    {
        Some(end) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// A name quoted in an error (`"…"`, escaped as `{:?}` escapes it), cut by [`cut`].
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", cut(self.0))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
