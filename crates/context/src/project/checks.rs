//! What holds for the whole index: one entry per path, parents are directories, hard
//! links resolved, the metadata directory set apart.

use super::{Entry, EntryKind, Index, METADATA_DIRS, METADATA_PASSTHROUGH, Metadata, Warning};
use crate::error::{Error, Result};
use crate::path as p;

/// Sorts by path and keeps the last occurrence of each path (tar semantics).
pub(super) fn dedupe(raw: Vec<Entry>, warnings: &mut Vec<Warning>) -> Vec<Entry> {
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
pub(super) fn split_metadata(entries: &mut Vec<Entry>) -> Result<Option<Metadata>> {
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
pub(super) fn check_parents(entries: &[Entry]) -> Result<()> {
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
pub(super) fn resolve_hard_links(entries: &mut [Entry]) -> Result<()> {
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
