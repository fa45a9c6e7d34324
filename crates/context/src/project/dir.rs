//! Indexing a project directory.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Entry, EntryKind, Warning, read_error, refused};
use crate::error::{Error, Result};
use crate::path::{self as p, Refusal};

pub(super) fn index_dir(root: &Path) -> Result<(Vec<Entry>, Vec<Warning>)> {
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
