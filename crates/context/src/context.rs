//! One service's build context: a filtered view of a [`Project`], written as a tar on
//! demand.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::copy::COPY_BUFFER_SIZE;
use crate::dockerignore::Dockerignore;
use crate::error::{Error, Result};
use crate::path as p;
use crate::project::{CopyError, Entry, EntryKind, Index, Project, check_symlink};

/// Which `.dockerignore` files apply to a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IgnoreMode {
    /// The root `.dockerignore` (matched against project-relative paths) and the
    /// context's own `.dockerignore` (matched against context-relative paths); a file
    /// either one excludes is left out. The default.
    #[default]
    RootAndContext,
    /// Only the root `.dockerignore`: the balena CLI without `--multi-dockerignore`.
    Root,
    /// Only the context's own `.dockerignore` (the root one for the `.` context): the
    /// balena CLI's `--multi-dockerignore`.
    ContextOnly,
}

/// How [`Project::context_with`] selects a context's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOptions {
    /// Which ignore files apply.
    pub ignore: IgnoreMode,
    /// Wrap each ignore file in the balena CLI's defaults (exclude `**/.git`; re-include
    /// `**/Dockerfile`, `**/Dockerfile.*`, `**/docker-compose.yml`, `**/.balena`,
    /// `**/.resin`). On by default.
    pub balena_defaults: bool,
    /// Context-relative paths kept whatever the ignore files say, in addition to
    /// `Dockerfile` and `.dockerignore`, which are always kept (as `docker build` does).
    /// Put a custom `build.dockerfile` here.
    pub keep: Vec<String>,
}

impl Default for ContextOptions {
    fn default() -> Self {
        Self {
            ignore: IgnoreMode::default(),
            balena_defaults: true,
            keep: Vec::new(),
        }
    }
}

/// A file to add, replace or remove when writing a context tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    path: String,
    change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Remove,
    Put { data: Data, mode: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

impl Override {
    /// Adds or replaces a file (mode `0644`) with these bytes (a resolved Dockerfile).
    pub fn file(path: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self::put(path, Data::Bytes(data.into()), 0o644)
    }

    /// Adds or replaces a file with these bytes and permission bits.
    pub fn file_with_mode(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self::put(path, Data::Bytes(data.into()), mode)
    }

    /// Adds or replaces a file with the contents of a host file, streamed when the tar
    /// is written (a qemu binary: use mode `0o755`).
    pub fn host_file(path: impl Into<String>, host: impl Into<PathBuf>, mode: u32) -> Self {
        Self::put(path, Data::Host(host.into()), mode)
    }

    /// Leaves a file out (such as `Dockerfile.template` once resolved).
    pub fn remove(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            change: Change::Remove,
        }
    }

    fn put(path: impl Into<String>, data: Data, mode: u32) -> Self {
        Self {
            path: path.into(),
            change: Change::Put { data, mode },
        }
    }

    /// The context-relative path this override is about.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A file of a context: its context-relative path and its project entry.
#[derive(Debug, Clone, Copy)]
pub struct ContextFile<'a> {
    /// The path relative to the context directory.
    pub path: &'a str,
    /// The indexed entry (its own `path()` is project-relative).
    pub entry: &'a Entry,
}

/// One service's build context.
///
/// Holds only indices into the project, so it is cheap, `Send + Sync + 'static`, and
/// can be written any number of times.
#[derive(Debug, Clone)]
pub struct Context {
    project: Project,
    dir: String,
    members: Vec<usize>,
}

impl Project {
    /// The build context for project-relative directory `dir` (`.` is the root), with
    /// default [`ContextOptions`].
    pub fn context(&self, dir: &str) -> Result<Context> {
        self.context_with(dir, &ContextOptions::default())
    }

    /// The build context for `dir`, selected as `options` say.
    ///
    /// Errors: a `dir` that is absolute, escapes the project or is not a directory of it;
    /// a bad ignore file (with its line); a symlink or hard link in the context whose
    /// target lies outside it.
    pub fn context_with(&self, dir: &str, options: &ContextOptions) -> Result<Context> {
        let invalid = |reason| Error::InvalidContext {
            dir: dir.to_owned(),
            reason,
        };
        let norm = p::normalize(dir)
            .map_err(|_| invalid("must be a relative path inside the project"))?
            .unwrap_or_default();
        let inner = &self.inner;
        if !norm.is_empty() {
            let is_dir = inner.entries.iter().any(|e| {
                p::strip_dir(&norm, &e.path).is_some_and(|rest| !rest.is_empty())
                    || (e.path == norm && e.kind == EntryKind::Directory)
            });
            if !is_dir {
                return Err(invalid("no such directory in the project"));
            }
        }
        let load = |path: &str| -> Result<Option<Dockerignore>> {
            let Some(bytes) = self.read_file(path)? else {
                return Ok(None);
            };
            let ignore = Dockerignore::parse(path, &bytes)?;
            Ok(Some(ignore))
        };
        let wrap = |ignore: Option<Dockerignore>| {
            let ignore = ignore.unwrap_or_default();
            if options.balena_defaults {
                ignore.with_balena_defaults()
            } else {
                ignore
            }
        };
        let own_name = if norm.is_empty() {
            ".dockerignore".to_owned()
        } else {
            format!("{norm}/.dockerignore")
        };
        let (root, own) = match (options.ignore, norm.is_empty()) {
            (IgnoreMode::Root, _) | (_, true) => (Some(wrap(load(".dockerignore")?)), None),
            (IgnoreMode::RootAndContext, false) => (
                Some(wrap(load(".dockerignore")?)),
                Some(wrap(load(&own_name)?)),
            ),
            (IgnoreMode::ContextOnly, false) => (None, Some(wrap(load(&own_name)?))),
        };
        let extra_keep: Vec<String> = options
            .keep
            .iter()
            .filter_map(|k| p::normalize(k).ok().flatten())
            .collect();
        let keep = |rel: &str| {
            rel == "Dockerfile" || rel == ".dockerignore" || extra_keep.iter().any(|k| k == rel)
        };
        let mut members = Vec::new();
        for (i, entry) in inner.entries.iter().enumerate() {
            let Some(rel) = p::strip_dir(&norm, &entry.path) else {
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            let excluded = root.as_ref().is_some_and(|m| m.matches(&entry.path))
                || own.as_ref().is_some_and(|m| m.matches(rel));
            if !excluded || keep(rel) {
                members.push(i);
            }
        }
        let context = Context {
            project: self.clone(),
            dir: norm,
            members,
        };
        context.check_links()?;
        Ok(context)
    }
}

impl Context {
    /// The context directory, normalised (`""` for the project root).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The context's entries in output order (sorted by path).
    pub fn files(&self) -> impl Iterator<Item = ContextFile<'_>> {
        self.members.iter().filter_map(move |&i| {
            let entry = self.project.inner.entries.get(i)?;
            let path = p::strip_dir(&self.dir, &entry.path)?;
            Some(ContextFile { path, entry })
        })
    }

    /// Finds a file by context-relative path.
    pub fn get(&self, path: &str) -> Option<ContextFile<'_>> {
        let path = p::normalize(path).ok()??;
        let entries = &self.project.inner.entries;
        // Members are sorted by project path; below one directory that is also the
        // order of the context-relative paths.
        let rel = |i: usize| {
            entries
                .get(i)
                .and_then(|e| p::strip_dir(&self.dir, &e.path))
        };
        let at = self
            .members
            .binary_search_by(|&i| rel(i).unwrap_or_default().cmp(path.as_str()))
            .ok()?;
        let i = *self.members.get(at)?;
        Some(ContextFile {
            path: rel(i)?,
            entry: entries.get(i)?,
        })
    }

    /// Reads a (small) file of the context by context-relative path; `Ok(None)` if the
    /// context has no regular file there.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.get(path) {
            Some(file) if file.entry.has_data() => {
                self.project.inner.read_entry(file.entry).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn scope(&self) -> String {
        format!("the build context {:?}", self.display_dir())
    }

    fn display_dir(&self) -> &str {
        if self.dir.is_empty() { "." } else { &self.dir }
    }

    fn check_links(&self) -> Result<()> {
        let index = Index::new(self.files().map(|f| f.entry));
        for file in self.files() {
            match file.entry.kind() {
                EntryKind::Symlink => check_symlink(&index, &self.dir, file.entry)?,
                EntryKind::HardLink => {
                    let target = file.entry.link_target().unwrap_or_default();
                    if p::strip_dir(&self.dir, target).is_none_or(str::is_empty) {
                        return Err(Error::LinkEscapes {
                            path: file.entry.path().to_owned(),
                            kind: "hard link",
                            target: target.to_owned(),
                            scope: self.scope(),
                        });
                    }
                }
                EntryKind::File | EntryKind::Directory => {}
            }
        }
        Ok(())
    }

    /// Streams the context as a tar to `out` and returns the number of bytes written.
    ///
    /// Entries come in path order (bytewise), which puts every directory before its
    /// contents; each keeps its mode, uid/gid and mtime. File data is copied from the
    /// project's spool or files in 1 MiB chunks, never held whole. Hard links become
    /// regular files. Names over 100 bytes use GNU long-name records. Overrides replace
    /// an entry in place (keeping its owner and mtime), are inserted in path order when
    /// new (owner 0:0, mtime 0), or drop an entry. The tar ends with the two zero blocks;
    /// `out` is flushed but not closed.
    pub fn write_tar(&self, overrides: &[Override], out: impl Write) -> Result<u64> {
        let write_error = |source| Error::Write {
            context: self.display_dir().to_owned(),
            cause: source,
        };
        let mut changes: Vec<(String, &Change)> = Vec::with_capacity(overrides.len());
        for o in overrides {
            let invalid = |reason| Error::InvalidOverride {
                path: o.path.clone(),
                reason,
            };
            let path = p::normalize(&o.path)
                .map_err(|_| invalid("must be a relative path inside the context"))?
                .ok_or_else(|| invalid("must name a file"))?;
            // The last override of a path wins.
            changes.retain(|(existing, _)| *existing != path);
            changes.push((path, &o.change));
        }
        changes.sort_by(|a, b| a.0.cmp(&b.0));

        let mut writer = TarWriter {
            out: CountingWriter {
                inner: out,
                count: 0,
            },
            buf: vec![0; COPY_BUFFER_SIZE],
        };
        let mut pending = changes.iter().peekable();
        for file in self.files() {
            while let Some((path, change)) = pending.next_if(|(path, _)| path.as_str() < file.path)
            {
                writer.put_new(path, change, self)?;
            }
            if let Some((_, change)) = pending.next_if(|(path, _)| path == file.path) {
                if let Change::Put { data, mode } = change {
                    let meta = Meta {
                        mode: *mode,
                        uid: file.entry.uid(),
                        gid: file.entry.gid(),
                        mtime: file.entry.mtime(),
                    };
                    writer.put_data(file.path, data, meta, self)?;
                }
                continue;
            }
            writer.put_entry(file, self)?;
        }
        for (path, change) in pending {
            writer.put_new(path, change, self)?;
        }
        writer.finish().map_err(write_error)
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct TarWriter<W> {
    out: CountingWriter<W>,
    buf: Vec<u8>,
}

const BLOCK: u64 = 512;
const ZEROS: [u8; 1024] = [0; 1024];

impl<W: Write> TarWriter<W> {
    fn put_new(&mut self, path: &str, change: &Change, ctx: &Context) -> Result<()> {
        if let Change::Put { data, mode } = change {
            let meta = Meta {
                mode: *mode,
                uid: 0,
                gid: 0,
                mtime: 0,
            };
            self.put_data(path, data, meta, ctx)?;
        }
        Ok(())
    }

    fn put_data(&mut self, path: &str, data: &Data, meta: Meta, ctx: &Context) -> Result<()> {
        let write_error = |source| Error::Write {
            context: ctx.display_dir().to_owned(),
            cause: source,
        };
        match data {
            Data::Bytes(bytes) => {
                self.header(
                    path,
                    tar::EntryType::Regular,
                    bytes.len() as u64,
                    meta,
                    None,
                )
                .map_err(write_error)?;
                self.out.write_all(bytes).map_err(write_error)?;
                self.pad(bytes.len() as u64).map_err(write_error)
            }
            Data::Host(host) => {
                let read_error = |source| Error::Read {
                    path: host.display().to_string(),
                    cause: source,
                };
                let file = File::open(host).map_err(read_error)?;
                let size = file.metadata().map_err(read_error)?.len();
                self.header(path, tar::EntryType::Regular, size, meta, None)
                    .map_err(write_error)?;
                crate::copy::copy_range(&file, 0, size, &mut self.out, &mut self.buf).map_err(
                    |e| match e {
                        CopyError::Read(source) => read_error(source),
                        CopyError::Write(source) => write_error(source),
                    },
                )?;
                self.pad(size).map_err(write_error)
            }
        }
    }

    fn put_entry(&mut self, file: ContextFile<'_>, ctx: &Context) -> Result<()> {
        let write_error = |source| Error::Write {
            context: ctx.display_dir().to_owned(),
            cause: source,
        };
        let entry = file.entry;
        let meta = Meta {
            mode: entry.mode(),
            uid: entry.uid(),
            gid: entry.gid(),
            mtime: entry.mtime(),
        };
        match entry.kind() {
            EntryKind::Directory => self
                .header(file.path, tar::EntryType::Directory, 0, meta, None)
                .map_err(write_error),
            EntryKind::Symlink => self
                .header(
                    file.path,
                    tar::EntryType::Symlink,
                    0,
                    meta,
                    entry.link_target(),
                )
                .map_err(write_error),
            EntryKind::File | EntryKind::HardLink => {
                self.header(file.path, tar::EntryType::Regular, entry.size(), meta, None)
                    .map_err(write_error)?;
                ctx.project
                    .inner
                    .copy_entry(entry, &mut self.out, &mut self.buf)
                    .map_err(|e| match e {
                        CopyError::Read(source) => Error::Read {
                            path: entry.path().to_owned(),
                            cause: source,
                        },
                        CopyError::Write(source) => write_error(source),
                    })?;
                self.pad(entry.size()).map_err(write_error)
            }
        }
    }

    /// Writes a GNU header, preceded by long-name/long-link records when needed.
    fn header(
        &mut self,
        path: &str,
        ty: tar::EntryType,
        size: u64,
        meta: Meta,
        link: Option<&str>,
    ) -> io::Result<()> {
        let mut name = path.to_owned();
        if ty == tar::EntryType::Directory {
            name.push('/');
        }
        let mut header = tar::Header::new_gnu();
        if name.len() > 100 {
            self.long_record(tar::EntryType::GNULongName, name.as_bytes())?;
        }
        copy_truncated(&mut header.as_old_mut().name, name.as_bytes());
        if let Some(link) = link {
            if link.len() > 100 {
                self.long_record(tar::EntryType::GNULongLink, link.as_bytes())?;
            }
            copy_truncated(&mut header.as_old_mut().linkname, link.as_bytes());
        }
        header.set_entry_type(ty);
        header.set_size(size);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_cksum();
        self.out.write_all(header.as_bytes())
    }

    /// A GNU `././@LongLink` record carrying a name that does not fit a header.
    fn long_record(&mut self, ty: tar::EntryType, name: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        copy_truncated(&mut header.as_old_mut().name, b"././@LongLink");
        header.set_entry_type(ty);
        let len = name.len() as u64 + 1;
        header.set_size(len);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name)?;
        self.out.write_all(&[0])?;
        self.pad(len)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = len % BLOCK;
        if rem == 0 {
            return Ok(());
        }
        let fill = usize::try_from(BLOCK - rem).unwrap_or(0);
        self.out.write_all(&ZEROS[..fill])
    }

    fn finish(mut self) -> io::Result<u64> {
        self.out.write_all(&ZEROS)?;
        self.out.flush()?;
        Ok(self.out.count)
    }
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}
