//! A project indexed once: every entry's normalised path, type, metadata and where its
//! bytes live. File contents are never held in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Quoted, Result};
use crate::path::{self as p, Refusal};
use crate::sparse::SparseMap;

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

/// One pass over the archive, reading headers only (data is skipped).
fn index_tar(file: &File) -> Result<(Vec<Entry>, Vec<Warning>)> {
    let archive_len = file
        .metadata()
        .map_err(|source| Error::Read {
            path: "the project tar".to_owned(),
            cause: source,
        })?
        .len();
    let mut walker = crate::archive::Walker::new(file, archive_len);
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    while let Some(raw) = walker.next_entry()? {
        if let Some(entry) = index_tar_entry(raw, archive_len, &mut warnings)? {
            entries.push(entry);
        }
    }
    Ok((entries, warnings))
}

/// One entry of [`index_tar`]; `None` for what is skipped.
fn index_tar_entry(
    raw: crate::archive::RawEntry,
    archive_len: u64,
    warnings: &mut Vec<Warning>,
) -> Result<Option<Entry>> {
    let raw_path = String::from_utf8(raw.path).map_err(|e| Error::NonUtf8Path {
        path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })?;
    let header_error = |source| Error::Tar {
        position: format!("entry {}", Quoted(&raw_path)),
        cause: source,
    };
    let header = &raw.header;
    if raw
        .data_at
        .checked_add(raw.stored)
        .is_none_or(|end| end > archive_len)
    {
        return Err(Error::Truncated {
            path: raw_path,
            size: raw.stored,
            archive_len,
        });
    }
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            // Pre-POSIX tars mark directories with a trailing slash only.
            if raw_path.ends_with('/') && raw.size == 0 {
                EntryKind::Directory
            } else {
                EntryKind::File
            }
        }
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::HardLink,
        other => {
            let kind = match other {
                tar::EntryType::Char => "character device".to_owned(),
                tar::EntryType::Block => "block device".to_owned(),
                tar::EntryType::Fifo => "fifo".to_owned(),
                other => format!("type {:?}", other.as_byte() as char),
            };
            warnings.push(Warning::SkippedSpecial {
                path: raw_path,
                kind,
            });
            return Ok(None);
        }
    };
    let Some(path) = p::normalize(&raw_path).map_err(|Refusal::Escapes| refused(&raw_path))? else {
        // The root directory itself (`./`) carries nothing a context needs.
        return Ok(None);
    };
    let old = header.as_old();
    let mode = numeric(header.mode(), &old.mode).map_err(header_error)? & 0o7777;
    let uid = match raw.uid {
        Some(uid) => uid,
        None => numeric(header.uid(), &old.uid).map_err(header_error)?,
    };
    let gid = match raw.gid {
        Some(gid) => gid,
        None => numeric(header.gid(), &old.gid).map_err(header_error)?,
    };
    let mtime = match raw.mtime {
        Some(mtime) => mtime,
        None => numeric(header.mtime(), &old.mtime).map_err(header_error)?,
    };
    let link_target = match kind {
        EntryKind::Symlink | EntryKind::HardLink => {
            Some(String::from_utf8(raw.link).map_err(|_| Error::NonUtf8Path {
                path: raw_path.clone(),
            })?)
        }
        _ => None,
    };
    let is_file = matches!(kind, EntryKind::File);
    Ok(Some(Entry {
        path,
        kind,
        size: if is_file { raw.size } else { 0 },
        offset: raw.data_at,
        mode,
        uid,
        gid,
        mtime,
        link_target,
        sparse: raw.sparse.filter(|_| is_file),
    }))
}

/// A numeric header field; an empty one (all NUL or spaces) reads as 0, as Go's
/// `archive/tar` (and so Docker) reads it.
fn numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        other => other,
    }
}

fn index_dir(root: &Path) -> Result<(Vec<Entry>, Vec<Warning>)> {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let real_root = root.canonicalize().map_err(|e| read_error(root, e))?;
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map_or_else(|| root.display().to_string(), |p| p.display().to_string());
            Error::Read {
                path,
                cause: e.into(),
            }
        })?;
        let rel = item.path().strip_prefix(root).unwrap_or(item.path());
        let Some(rel) = rel.to_str() else {
            return Err(Error::NonUtf8Path {
                path: rel.to_string_lossy().into_owned(),
            });
        };
        let Some(path) = p::normalize(rel).map_err(|Refusal::Escapes| refused(rel))? else {
            continue;
        };
        let mut meta = item
            .metadata()
            .map_err(|e| read_error(item.path(), e.into()))?;
        if meta.file_type().is_symlink()
            && let Some(target) = file_inside(&real_root, item.path())
        {
            // As the balena CLI sends it: the target's content as a regular file, so that
            // services can share a file that lies outside their own context.
            meta = target;
        }
        let ft = meta.file_type();
        let (kind, link_target) = if ft.is_file() {
            (EntryKind::File, None)
        } else if ft.is_dir() {
            (EntryKind::Directory, None)
        } else if ft.is_symlink() {
            let target = std::fs::read_link(item.path()).map_err(|e| read_error(item.path(), e))?;
            let target = target
                .to_str()
                .ok_or_else(|| Error::NonUtf8Path { path: path.clone() })?;
            (EntryKind::Symlink, Some(target.to_owned()))
        } else {
            warnings.push(Warning::SkippedSpecial {
                path,
                kind: "special file".to_owned(),
            });
            continue;
        };
        entries.push(Entry {
            size: if kind == EntryKind::File {
                meta.len()
            } else {
                0
            },
            path,
            kind,
            offset: 0,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
            link_target,
            sparse: None,
        });
    }
    Ok((entries, warnings))
}

/// The metadata of the regular file `link` points to, when that file lies inside
/// `real_root` (canonical). Other links stay links: a target outside the project is then
/// refused by the context that includes the link, and a directory link is kept as it is.
fn file_inside(real_root: &Path, link: &Path) -> Option<std::fs::Metadata> {
    let target = link.canonicalize().ok()?;
    if !target.starts_with(real_root) {
        return None;
    }
    std::fs::metadata(&target)
        .ok()
        .filter(std::fs::Metadata::is_file)
}

/// Sorts by path and keeps the last occurrence of each path (tar semantics).
fn dedupe(raw: Vec<Entry>, warnings: &mut Vec<Warning>) -> Vec<Entry> {
    let mut numbered: Vec<(usize, Entry)> = raw.into_iter().enumerate().collect();
    numbered.sort_by(|(ia, a), (ib, b)| a.path.cmp(&b.path).then(ia.cmp(ib)));
    let mut out: Vec<Entry> = Vec::with_capacity(numbered.len());
    for (_, entry) in numbered {
        match out.last_mut() {
            Some(prev) if prev.path == entry.path => {
                if warnings.last().is_none_or(|w| {
                    *w != Warning::Duplicate {
                        path: entry.path.clone(),
                    }
                }) {
                    warnings.push(Warning::Duplicate {
                        path: entry.path.clone(),
                    });
                }
                *prev = entry;
            }
            _ => out.push(entry),
        }
    }
    out
}

/// Moves `.balena/` or `.resin/` entries out of the index (all but `qemu-execve`).
fn split_metadata(entries: &mut Vec<Entry>) -> Result<Option<Metadata>> {
    let dir_of = |path: &str| {
        METADATA_DIRS
            .into_iter()
            .find(|d| p::strip_dir(d, path).is_some())
    };
    let mut found: Option<&'static str> = None;
    let mut meta = Vec::new();
    let mut kept = Vec::with_capacity(entries.len());
    for entry in entries.drain(..) {
        match dir_of(&entry.path) {
            Some(dir) if p::strip_dir(dir, &entry.path) != Some(METADATA_PASSTHROUGH) => {
                if found.is_some_and(|f| f != dir) {
                    return Err(Error::MultipleMetadataDirectories);
                }
                found = Some(dir);
                meta.push(entry);
            }
            _ => kept.push(entry),
        }
    }
    *entries = kept;
    Ok(found.map(|dir| Metadata { dir, entries: meta }))
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Directory => "directory",
        EntryKind::Symlink => "symlink",
        EntryKind::HardLink => "hard link",
    }
}

/// Refuses an entry below a symlink or a non-directory: extracting it would write
/// through the link (`a -> /etc`, then `a/passwd`).
fn check_parents(entries: &[Entry]) -> Result<()> {
    let index = Index::new(entries);
    for entry in entries {
        for dir in p::ancestors(&entry.path) {
            if let Some(parent) = index.get(dir)
                && parent.kind != EntryKind::Directory
            {
                return Err(Error::BadParent {
                    path: entry.path.clone(),
                    parent: dir.to_owned(),
                    parent_kind: kind_name(parent.kind),
                });
            }
        }
    }
    Ok(())
}

/// Gives each hard link its target's data, so that it can be written as a regular file.
fn resolve_hard_links(entries: &mut [Entry]) -> Result<()> {
    let mut resolved = Vec::new();
    {
        let index = Index::new(entries.iter());
        for (i, entry) in entries.iter().enumerate() {
            if entry.kind != EntryKind::HardLink {
                continue;
            }
            let raw = entry.link_target.as_deref().unwrap_or_default();
            let escape = || Error::LinkEscapes {
                path: entry.path.clone(),
                kind: "hard link",
                target: raw.to_owned(),
                scope: "the project".to_owned(),
            };
            let target = p::normalize(raw)
                .map_err(|_| escape())?
                .ok_or_else(escape)?;
            let bad = || Error::BadHardLink {
                path: entry.path.clone(),
                target: target.clone(),
            };
            let data = index
                .get(&target)
                .filter(|t| t.kind == EntryKind::File)
                .ok_or_else(bad)?;
            resolved.push((
                i,
                target.clone(),
                data.offset,
                data.size,
                data.sparse.clone(),
            ));
        }
    }
    for (i, target, offset, size, sparse) in resolved {
        if let Some(entry) = entries.get_mut(i) {
            entry.link_target = Some(target);
            entry.offset = offset;
            entry.size = size;
            entry.sparse = sparse;
        }
    }
    Ok(())
}

/// Path → entry lookup over a sorted slice.
pub(crate) struct Index<'a> {
    map: HashMap<&'a str, &'a Entry>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        Self {
            map: entries.into_iter().map(|e| (e.path.as_str(), e)).collect(),
        }
    }
    pub(crate) fn get(&self, path: &str) -> Option<&'a Entry> {
        self.map.get(path).copied()
    }
}

/// Resolves a symlink inside context `scope` (`""` is the project root), following the symlinks
/// it passes through as the kernel would, and refuses it if it ever leaves the scope.
///
/// A purely lexical check is not enough: with `l -> .`, `m -> l/..` looks like it stays
/// at the root but really points to its parent.
pub(crate) fn check_symlink(index: &Index<'_>, scope: &str, link: &Entry) -> Result<()> {
    let target = link.link_target.as_deref().unwrap_or_default();
    let escape = || Error::LinkEscapes {
        path: link.path.clone(),
        kind: "symlink",
        target: target.to_owned(),
        scope: format!(
            "the build context {:?}",
            if scope.is_empty() { "." } else { scope }
        ),
    };
    let floor = if scope.is_empty() {
        0
    } else {
        scope.split('/').count()
    };
    let mut stack: Vec<String> = p::parent(&link.path)
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut pending: Vec<String> = Vec::new();
    push_components(&mut pending, target).map_err(|()| escape())?;
    // Linux gives up after 40 links (ELOOP), and so do we. This walk takes the steps the
    // kernel takes, so a link that has not left the context by then never does: following it
    // fails with ELOOP inside the container, and the daemon copies the link itself as it is.
    // A loop (`a -> b`, `b -> a`) is therefore harmless and accepted, as `docker build`
    // accepts it.
    let mut budget = MAX_SYMLINK_HOPS;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "" | "." => {}
            ".." => {
                if stack.len() <= floor {
                    return Err(escape());
                }
                stack.pop();
            }
            _ => {
                stack.push(comp);
                let here = stack.join("/");
                if let Some(next) = index.get(&here)
                    && next.kind == EntryKind::Symlink
                {
                    budget -= 1;
                    if budget == 0 {
                        return Ok(());
                    }
                    stack.pop();
                    let next_target = next.link_target.as_deref().unwrap_or_default();
                    push_components(&mut pending, next_target).map_err(|()| escape())?;
                }
            }
        }
    }
    if stack.len() < floor {
        return Err(escape());
    }
    Ok(())
}

/// How many symlinks one resolution may pass through (Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Queues a link target's components (reversed, for popping); absolute targets escape.
fn push_components(pending: &mut Vec<String>, target: &str) -> std::result::Result<(), ()> {
    if target.starts_with('/') {
        return Err(());
    }
    pending.extend(target.split('/').rev().map(str::to_owned));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::Symlink,
            size: 0,
            offset: 0,
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: Some(target.to_owned()),
            sparse: None,
        }
    }

    #[test]
    fn symlink_through_symlink_escape_is_caught() {
        let entries = vec![link("l", "."), link("m", "l/..")];
        let index = Index::new(&entries);
        assert!(check_symlink(&index, "", &entries[0]).is_ok());
        assert!(check_symlink(&index, "", &entries[1]).is_err());
    }

    #[test]
    fn symlink_scopes() {
        let entries = vec![link("a/b/x", "../y"), link("a/z", "../../q")];
        let index = Index::new(&entries);
        assert!(check_symlink(&index, "a", &entries[0]).is_ok());
        assert!(check_symlink(&index, "a/b", &entries[0]).is_err());
        assert!(check_symlink(&index, "", &entries[1]).is_err());
    }

    #[test]
    fn a_symlink_loop_is_harmless_but_an_escape_through_links_is_not() {
        // ELOOP comes before the `..`s: the kernel never gets out, so neither does the link.
        let entries = vec![link("a", "b"), link("b", "a"), link("c", "a/../../x")];
        let index = Index::new(&entries);
        for entry in &entries {
            assert!(check_symlink(&index, "", entry).is_ok(), "{entry:?}");
        }
        // Two hops, then out: refused, naming the link the walk started from.
        let entries = vec![link("p", "q"), link("q", "../outside")];
        let index = Index::new(&entries);
        let err = check_symlink(&index, "", &entries[0]).unwrap_err();
        assert!(matches!(err, Error::LinkEscapes { .. }), "{err:?}");
        assert!(err.to_string().contains("\"p\""), "{err}");
    }

    #[test]
    fn a_chain_of_40_links_is_fine() {
        let mut entries: Vec<Entry> = (0..39)
            .map(|i| link(&format!("l{i:02}"), &format!("l{:02}", i + 1)))
            .collect();
        entries.push(link("l39", "file"));
        let index = Index::new(&entries);
        assert!(check_symlink(&index, "", &entries[0]).is_ok());
    }
}
