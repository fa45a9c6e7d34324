//! Indexing a project tar: one pass over its headers, data skipped.

use std::fs::File;
use std::io;

use super::{Entry, EntryKind, Warning, refused};
use crate::error::{Error, Quoted, Result};
use crate::path::{self as p, Refusal};

/// One pass over the archive, reading headers only (data is skipped).
pub(super) fn index_tar(file: &File) -> Result<(Vec<Entry>, Vec<Warning>)> {
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
