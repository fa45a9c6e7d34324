//! A project indexed once: every entry's normalised path, type, metadata and where its
//! bytes live. File contents are never held in memory.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::path as p;
use crate::sparse::SparseMap;

mod checks;
mod dir;
mod symlink;
mod tar;

use checks::{check_parents, dedupe, resolve_hard_links, split_metadata};
use dir::index_dir;
pub(crate) use symlink::{Index, check_symlink};
use tar::index_tar;

/// The largest file [`Project::read_file`] and friends will load into memory.
pub const MAX_READ_SIZE: u64 = 64 * 1024 * 1024;

/// The names a build metadata file (`balena.yml`) may have in the metadata directory, in the
/// order the reference looks for them: the one list, used by [`Project::balena_config`] and
/// `multibuild`'s metadata reader.
pub const CONFIG_FILE_NAMES: [&str; 6] = [
    "balena.yml",
    "balena.yaml",
    "balena.json",
    "resin.yml",
    "resin.yaml",
    "resin.json",
];

/// The first bytes of a gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The names the project's metadata directory may have (see [`Project::metadata`]).
pub const METADATA_DIRS: [&str; 2] = [".balena", ".resin"];

/// The one metadata file the reference leaves in the build context: balena's
/// `qemu-execve` binary, which emulated builds `COPY` from there.
const METADATA_PASSTHROUGH: &str = "qemu-execve";

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link ([`Entry::link_target`] is its target).
    Symlink,
    /// A hard link in the input. It is written out as a regular file holding its
    /// target's bytes, so that a context never depends on an entry it may not contain.
    HardLink,
}

/// One indexed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub(crate) path: String,
    pub(crate) kind: EntryKind,
    size: u64,
    offset: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link_target: Option<String>,
    /// A sparse file's chunks (its data then lies in pieces from `offset` on).
    sparse: Option<SparseMap>,
}

impl Entry {
    /// The normalised, project-relative path (no leading `./`, no trailing `/`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The entry type.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
    /// The data size (PAX-aware; a sparse file's expanded size); 0 for directories and
    /// symlinks.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Permission bits (`0o7777` mask).
    pub fn mode(&self) -> u32 {
        self.mode
    }
    /// Owner id.
    pub fn uid(&self) -> u64 {
        self.uid
    }
    /// Group id.
    pub fn gid(&self) -> u64 {
        self.gid
    }
    /// Modification time, seconds since the epoch.
    pub fn mtime(&self) -> u64 {
        self.mtime
    }
    /// A symlink's target as stored, or a hard link's normalised target path.
    pub fn link_target(&self) -> Option<&str> {
        self.link_target.as_deref()
    }
    /// Whether the entry carries file data.
    pub(crate) fn has_data(&self) -> bool {
        matches!(self.kind, EntryKind::File | EntryKind::HardLink)
    }
}

/// Something unusual that was skipped or resolved rather than refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A device, fifo, socket or unknown entry type, left out.
    SkippedSpecial {
        /// The entry's path.
        path: String,
        /// What it was.
        kind: String,
    },
    /// A path that occurs more than once; the last occurrence wins.
    Duplicate {
        /// The path.
        path: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::SkippedSpecial { path, kind } => {
                write!(f, "{path:?}: skipped {kind} entry")
            }
            Warning::Duplicate { path } => {
                write!(f, "{path:?}: occurs more than once; the last one is used")
            }
        }
    }
}

/// The project's `.balena/` (or `.resin/`) directory, kept out of every context.
#[derive(Debug, Clone)]
pub struct Metadata {
    dir: &'static str,
    entries: Vec<Entry>,
}

impl Metadata {
    /// `.balena` or `.resin`.
    pub fn dir(&self) -> &str {
        self.dir
    }
    /// The files and directories inside it, relative to it (e.g. `balena.yml`,
    /// `secrets/token`).
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter_map(|e| p::strip_dir(self.dir, &e.path))
            .filter(|rel| !rel.is_empty())
    }
    fn find(&self, rel: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| p::strip_dir(self.dir, &e.path) == Some(rel))
    }
}

/// The build metadata file found in the metadata directory, raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Its name, one of [`CONFIG_FILE_NAMES`].
    pub name: String,
    /// Its bytes (parsing is the caller's business).
    pub contents: Vec<u8>,
}

#[derive(Debug)]
pub(crate) enum Source {
    /// The archive (the given file or the spool); entries' offsets point into it.
    Tar(File),
    /// A directory; entries' data is read from `root/path`.
    Dir(PathBuf),
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) source: Source,
    /// Sorted by path, unique.
    pub(crate) entries: Vec<Entry>,
    pub(crate) metadata: Option<Metadata>,
    pub(crate) warnings: Vec<Warning>,
}

/// A project opened from a directory, a tar file or a tar stream.
///
/// Cloning is cheap (the index is shared) and a `Project` is `Send + Sync`, so contexts can
/// be written from several threads at once.
#[derive(Debug, Clone)]
pub struct Project {
    pub(crate) inner: Arc<Inner>,
}

impl Project {
    /// Opens a directory or a tar file, whichever `path` is.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|source| read_error(path, source))?;
        if meta.is_dir() {
            Self::open_dir(path)
        } else {
            Self::open_tar(path)
        }
    }

    /// Opens a tar file in place (no copy) and indexes it.
    pub fn open_tar(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| read_error(path, source))?;
        Self::from_tar_file(file)
    }

    /// Spools a tar stream (stdin, a pipe) to an anonymous temporary file, then indexes it.
    /// A gzip-compressed stream (a `.tar.gz`) is decompressed while it is spooled.
    pub fn from_reader(mut reader: impl Read) -> Result<Self> {
        let mut head = [0; 2];
        let read = read_head(&mut reader, &mut head).map_err(|cause| Error::Read {
            path: "the project tar stream".to_owned(),
            cause,
        })?;
        let whole = head.get(..read).unwrap_or_default().chain(reader);
        if head == GZIP_MAGIC {
            // Only once: a tar inside the gzip that looks like gzip again is read as a tar.
            Self::spool(
                flate2::read::MultiGzDecoder::new(whole),
                "the gzip-compressed project tar",
            )
        } else {
            Self::spool(whole, "the project tar stream")
        }
    }

    fn spool(mut reader: impl Read, what: &str) -> Result<Self> {
        let spool_error = |source| Error::Read {
            path: what.to_owned(),
            cause: source,
        };
        let mut spool = tempfile::tempfile().map_err(spool_error)?;
        crate::copy::copy_all(&mut reader, &mut spool).map_err(spool_error)?;
        let (raw, warnings) = index_tar(&spool)?;
        Self::finish(Source::Tar(spool), raw, warnings)
    }

    /// Indexes an open tar: a regular file in place (from its start, whatever its
    /// position), anything else (a pipe, a socket) or a gzip-compressed tar by spooling it
    /// first like [`Self::from_reader`]. For stdin, pass
    /// `File::from(std::io::stdin().as_fd().try_clone_to_owned()?)`: `< project.tar`
    /// then costs no copy.
    pub fn from_tar_file(mut file: File) -> Result<Self> {
        let read_error = |source| Error::Read {
            path: "the project tar".to_owned(),
            cause: source,
        };
        let is_file = file.metadata().map_err(read_error)?.is_file();
        if !is_file {
            return Self::from_reader(file);
        }
        file.rewind().map_err(read_error)?;
        let mut head = [0; 2];
        read_head(&mut file, &mut head).map_err(read_error)?;
        file.rewind().map_err(read_error)?;
        if head == GZIP_MAGIC {
            return Self::from_reader(file);
        }
        let (raw, warnings) = index_tar(&file)?;
        Self::finish(Source::Tar(file), raw, warnings)
    }

    /// Walks a directory without following any symlink. A symlink to a regular file inside
    /// the directory becomes a regular file with the target's content (as the balena CLI
    /// sends it); any other symlink becomes a symlink entry.
    ///
    /// Every file is indexed: `.dockerignore` rules are applied per context, so a
    /// directory and a tar of it give identical contexts.
    pub fn open_dir(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let (raw, warnings) = index_dir(root)?;
        Self::finish(Source::Dir(root.to_path_buf()), raw, warnings)
    }

    fn finish(source: Source, raw: Vec<Entry>, mut warnings: Vec<Warning>) -> Result<Self> {
        let mut entries = dedupe(raw, &mut warnings);
        let metadata = split_metadata(&mut entries)?;
        check_parents(&entries)?;
        resolve_hard_links(&mut entries)?;
        // Symlink targets are checked per context, after the ignore files: a virtualenv's
        // `bin/python -> /usr/bin/python3` must not fail a project that ignores it.
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                entries,
                metadata,
                warnings,
            }),
        })
    }

    /// Every entry outside the metadata directory, sorted by path.
    pub fn entries(&self) -> &[Entry] {
        &self.inner.entries
    }

    /// Entries that were skipped or resolved while indexing.
    pub fn warnings(&self) -> &[Warning] {
        &self.inner.warnings
    }

    /// Finds an entry by project-relative path (`./x` and `x/` are accepted).
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        let path = p::normalize(path).ok()??;
        self.inner.find(&path)
    }

    /// Reads a (small) file, such as a Dockerfile. `Ok(None)` if there is no regular
    /// file (or hard link) at `path`.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.entry(path) {
            Some(entry) if entry.has_data() => self.inner.read_entry(entry).map(Some),
            _ => Ok(None),
        }
    }

    /// The `.balena/` or `.resin/` directory, if the project has one.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.inner.metadata.as_ref()
    }

    /// Reads a file of the metadata directory by its name relative to it
    /// (`balena.yml`, `secrets/token`).
    pub fn read_metadata_file(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let Some(meta) = &self.inner.metadata else {
            return Ok(None);
        };
        let Ok(Some(rel)) = p::normalize(rel) else {
            return Ok(None);
        };
        match meta.find(&rel) {
            Some(entry) if entry.has_data() => self.inner.read_entry(entry).map(Some),
            _ => Ok(None),
        }
    }

    /// The build metadata file (`balena.yml` and its five alternatives), raw. More than
    /// one of them is an error naming the first two, as in the reference.
    pub fn balena_config(&self) -> Result<Option<ConfigFile>> {
        let Some(meta) = &self.inner.metadata else {
            return Ok(None);
        };
        let mut found = CONFIG_FILE_NAMES
            .iter()
            .filter(|name| meta.find(name).is_some_and(Entry::has_data));
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if let Some(second) = found.next() {
            return Err(Error::MultipleConfigFiles {
                dir: meta.dir.to_owned(),
                first: (*first).to_owned(),
                second: (*second).to_owned(),
            });
        }
        let contents = self.read_metadata_file(first)?.unwrap_or_default();
        Ok(Some(ConfigFile {
            name: (*first).to_owned(),
            contents,
        }))
    }
}

impl Inner {
    pub(crate) fn find(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    pub(crate) fn read_entry(&self, entry: &Entry) -> Result<Vec<u8>> {
        if entry.size > MAX_READ_SIZE {
            return Err(Error::FileTooLarge {
                path: entry.path.clone(),
                size: entry.size,
                limit: MAX_READ_SIZE,
            });
        }
        let mut out = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        let mut buf = vec![0; 64 * 1024];
        self.copy_entry(entry, &mut out, &mut buf)
            .map_err(|e| match e {
                CopyError::Read(source) => Error::Read {
                    path: entry.path.clone(),
                    cause: source,
                },
                CopyError::Write(source) => Error::Read {
                    path: entry.path.clone(),
                    cause: source,
                },
            })?;
        Ok(out)
    }

    /// Copies exactly `entry.size` bytes of the entry's data to `out`.
    pub(crate) fn copy_entry(
        &self,
        entry: &Entry,
        out: &mut dyn io::Write,
        buf: &mut [u8],
    ) -> std::result::Result<(), CopyError> {
        match &self.source {
            Source::Tar(file) => match &entry.sparse {
                Some(map) => crate::sparse::copy(file, map, entry.size, out, buf),
                None => crate::copy::copy_range(file, entry.offset, entry.size, out, buf),
            },
            Source::Dir(root) => {
                // A hard link's data lives at its target; in a directory there are none.
                let file = File::open(root.join(&entry.path)).map_err(CopyError::Read)?;
                crate::copy::copy_range(&file, 0, entry.size, out, buf)
            }
        }
    }
}

/// Which side of a copy failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Reads up to `head.len()` bytes (fewer only at the end of the stream); a pipe may hand
/// them over one at a time.
fn read_head(reader: &mut impl Read, head: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_error(path: &Path, source: io::Error) -> Error {
    Error::Read {
        path: path.display().to_string(),
        cause: source,
    }
}

fn refused(path: &str) -> Error {
    Error::PathEscapes {
        path: path.to_owned(),
    }
}
