//! Walks a tar's headers, one logical entry at a time: GNU long names and PAX extended
//! headers are applied to the entry they describe, sparse maps are read, data is never read.
//!
//! Hand-written over `tar::Header` (which parses the fields) rather than `tar::Archive`,
//! because the latter reads every long name and extended header whole into memory
//! whatever its size, and hides sparse maps: here names are capped at
//! [`MAX_NAME_LEN`](crate::MAX_NAME_LEN), pax records at
//! [`MAX_PAX_RECORD_LEN`](crate::MAX_PAX_RECORD_LEN), and sparse files are expanded.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;

use crate::error::{Error, Quoted, Result};
use crate::pax::{self, MAX_NAME_LEN, Oversized, PaxRecords};
use crate::sparse::{self, PaxSparse, SparseMap};

const BLOCK: u64 = 512;

/// One entry with its extension headers applied.
pub(crate) struct RawEntry {
    pub(crate) header: tar::Header,
    /// PAX path, else GNU long name, else the header's (ustar prefix included).
    pub(crate) path: Vec<u8>,
    /// PAX linkpath, else GNU long link, else the header's.
    pub(crate) link: Vec<u8>,
    /// The file's size (a sparse file's expanded size).
    pub(crate) size: u64,
    /// Where the stored data starts.
    pub(crate) data_at: u64,
    /// How many bytes of data the archive stores (PAX `size` wins over the header's).
    pub(crate) stored: u64,
    pub(crate) uid: Option<u64>,
    pub(crate) gid: Option<u64>,
    pub(crate) mtime: Option<u64>,
    pub(crate) sparse: Option<SparseMap>,
}

/// Extension headers read so far for the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<PaxRecords>,
    /// A GNU long name over the limit.
    oversized: Option<Oversized>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }
}

/// The header walker.
pub(crate) struct Walker<'a> {
    file: &'a File,
    archive_len: u64,
    next: u64,
    /// The last entry's path, for errors about what follows it.
    last: Option<String>,
}

/// Reads a whole block at `at`; `Ok(false)` at the end of the file, an error if only part
/// of it is there.
pub(crate) fn read_block(file: &File, at: u64, block: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        match file.read_at(&mut block[filled..], at + filled as u64) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to read entire block",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn invalid(detail: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.to_string())
}

fn round_up(at: u64, len: u64) -> io::Result<u64> {
    len.checked_add(BLOCK - 1)
        .map(|l| l & !(BLOCK - 1))
        .and_then(|l| at.checked_add(l))
        .ok_or_else(|| invalid("size overflow"))
}

impl<'a> Walker<'a> {
    pub(crate) fn new(file: &'a File, archive_len: u64) -> Self {
        Self {
            file,
            archive_len,
            next: 0,
            last: None,
        }
    }

    /// `at the first entry` or `after entry "<path>"`.
    fn position(&self) -> String {
        match &self.last {
            None => "at the first entry".to_owned(),
            Some(last) => format!("after entry {}", Quoted(last)),
        }
    }

    fn malformed(&self, cause: io::Error) -> Error {
        Error::Tar {
            position: self.position(),
            cause,
        }
    }

    /// The next entry, or `None` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> Result<Option<RawEntry>> {
        let mut pending = Pending::default();
        loop {
            let Some(header) = self.read_header()? else {
                if !pending.is_empty() {
                    return Err(self.malformed(invalid(
                        "members found describing a future member but no future member found",
                    )));
                }
                return Ok(None);
            };
            let data_at = self.next + BLOCK;
            let ty = header.entry_type();
            let size = header.entry_size().map_err(|e| self.malformed(e))?;
            let recognised = header.as_gnu().is_some() || header.as_ustar().is_some();
            if ty.is_pax_global_extensions() {
                // Global records (git archive's commit id) carry nothing a context needs.
                self.next = round_up(data_at, size).map_err(|e| self.malformed(e))?;
                continue;
            }
            if !(recognised
                && (ty.is_gnu_longname() || ty.is_gnu_longlink() || ty.is_pax_local_extensions()))
            {
                return self.finish(header, data_at, size, pending).map(Some);
            }
            if data_at
                .checked_add(size)
                .is_none_or(|end| end > self.archive_len)
            {
                return Err(self.malformed(invalid(format!(
                    "an extended header of {size} bytes runs past the end of the archive"
                ))));
            }
            self.read_extension(ty, data_at, size, &mut pending)
                .map_err(|e| self.malformed(e))?;
            self.next = round_up(data_at, size).map_err(|e| self.malformed(e))?;
        }
    }

    fn read_header(&mut self) -> Result<Option<tar::Header>> {
        let mut header = tar::Header::new_old();
        let full = read_block(self.file, self.next, header.as_mut_bytes())
            .map_err(|e| self.malformed(e))?;
        if !full || header.as_bytes().iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let bytes = header.as_bytes();
        let sum = bytes[..148]
            .iter()
            .chain(&bytes[156..])
            .fold(0, |a, b| a + u32::from(*b))
            + 8 * 32;
        let stored = header.cksum().map_err(|e| self.malformed(e))?;
        if sum != stored {
            return Err(self.malformed(invalid("archive header checksum mismatch")));
        }
        Ok(Some(header))
    }

    fn read_extension(
        &self,
        ty: tar::EntryType,
        data_at: u64,
        size: u64,
        pending: &mut Pending,
    ) -> io::Result<()> {
        let mut reader = self.file;
        reader.seek(io::SeekFrom::Start(data_at))?;
        if ty.is_pax_local_extensions() {
            if pending.pax.is_some() {
                return Err(invalid(
                    "two pax extensions entries describing the same member",
                ));
            }
            let mut buffered = BufReader::with_capacity(64 * 1024, reader.take(size));
            pending.pax = Some(pax::read_records(&mut buffered, size)?);
            return Ok(());
        }
        let (slot, what) = if ty.is_gnu_longname() {
            (&mut pending.long_name, "GNU long name")
        } else {
            (&mut pending.long_link, "GNU long link name")
        };
        let is_path = ty.is_gnu_longname();
        if slot.is_some() {
            return Err(invalid("two long name entries describing the same member"));
        }
        // The name and a terminating NUL.
        let limit = MAX_NAME_LEN + 1;
        let mut name = Vec::new();
        reader.take(size.min(limit)).read_to_end(&mut name)?;
        if size > limit {
            name.truncate(pax::QUOTED_PREFIX);
            // The length of the name itself, without the NUL that usually ends it.
            let mut last = [0];
            self.file.read_exact_at(&mut last, data_at + size - 1)?;
            pending.oversized.get_or_insert(Oversized {
                what: what.to_owned(),
                len: if last[0] == 0 { size - 1 } else { size },
                prefix: name.clone(),
                limit: MAX_NAME_LEN,
                is_path,
            });
        }
        // A C string: the name ends at the first NUL.
        if let Some(nul) = name.iter().position(|b| *b == 0) {
            name.truncate(nul);
        }
        *slot = Some(name);
        Ok(())
    }

    /// Applies the pending extension headers to an entry's header.
    fn finish(
        &mut self,
        header: tar::Header,
        data_at: u64,
        header_size: u64,
        pending: Pending,
    ) -> Result<RawEntry> {
        let mut pax = pending.pax.unwrap_or_default();
        let path = pax
            .path
            .take()
            .or(pending.long_name)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link = pax
            .linkpath
            .take()
            .or(pending.long_link)
            .unwrap_or_else(|| header.link_name_bytes().unwrap_or_default().into_owned());
        let shown = String::from_utf8_lossy(&path).into_owned();
        if let Some(o) = pax.oversized.take().or(pending.oversized) {
            return Err(Error::NameTooLong {
                entry: if o.is_path { o.quoted() } else { shown },
                what: o.what,
                len: o.len,
                limit: o.limit,
            });
        }
        let entry_error = |cause: io::Error| Error::Tar {
            position: format!("entry {}", Quoted(&shown)),
            cause,
        };
        let values = PaxValues::parse(&pax).map_err(entry_error)?;
        let stored = values.size.unwrap_or(header_size);
        let mut entry = RawEntry {
            path,
            link,
            size: stored,
            data_at,
            stored,
            uid: values.uid,
            gid: values.gid,
            mtime: values.mtime,
            sparse: None,
            header,
        };
        if let Err(cause) = self.read_sparse(&mut entry, &pax) {
            // Named by the real name when the sparse records gave it.
            return Err(Error::Tar {
                position: format!("entry {}", Quoted(&String::from_utf8_lossy(&entry.path))),
                cause,
            });
        }
        self.last = Some(String::from_utf8_lossy(&entry.path).into_owned());
        self.next = round_up(entry.data_at, entry.stored).map_err(entry_error)?;
        Ok(entry)
    }

    /// Reads the sparse map of a GNU (`S`) or PAX sparse file, and sets its real name and
    /// size and where its data starts.
    fn read_sparse(&self, entry: &mut RawEntry, pax: &PaxRecords) -> io::Result<()> {
        let (map, real_size) = if entry.header.entry_type().is_gnu_sparse() {
            let map = sparse::gnu_map(&entry.header, self.file, &mut entry.data_at)?;
            let real_size = entry
                .header
                .as_gnu()
                .map(|g| g.real_size())
                .transpose()?
                .unwrap_or_default();
            (map, real_size)
        } else if let Some(found) = {
            // The real name replaces `GNUSparseFile.NNN/name` (capped like `path`), also
            // for the errors about the map.
            if let Some(name) = sparse::real_name(&pax.sparse) {
                entry.path = name.as_bytes().to_vec();
            }
            sparse::pax_sparse(&pax.sparse)?
        } {
            let map = match found.format {
                PaxSparse::InRecords(map) => map,
                PaxSparse::InData => {
                    let mut reader = self.file;
                    reader.seek(io::SeekFrom::Start(entry.data_at))?;
                    let mut buffered = BufReader::new(reader.take(entry.stored));
                    let (map, used) = sparse::read_map_1_0(&mut buffered)?;
                    if used > entry.stored {
                        return Err(invalid("the sparse map is larger than the entry"));
                    }
                    entry.data_at += used;
                    entry.stored -= used;
                    map
                }
            };
            (map, found.real_size)
        } else {
            return Ok(());
        };
        if entry
            .data_at
            .checked_add(entry.stored)
            .is_none_or(|end| end > self.archive_len)
        {
            return Err(invalid(format!(
                "the sparse file's {} stored bytes run past the end of the archive at byte {}",
                entry.stored, self.archive_len
            )));
        }
        entry.sparse = Some(sparse::layout(
            &map,
            real_size,
            entry.data_at,
            entry.stored,
        )?);
        entry.size = real_size;
        Ok(())
    }
}

/// The numeric PAX records, checked: GNU tar refuses an archive whose records it cannot
/// read, and so do we rather than take the entry at face value.
struct PaxValues {
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
}

impl PaxValues {
    fn parse(pax: &PaxRecords) -> io::Result<Self> {
        let check = |key: &str, value: &Option<String>, parse: fn(&str) -> Option<u64>| {
            value
                .as_deref()
                .map(|v| {
                    parse(v).ok_or_else(|| {
                        invalid(format!(
                            "pax extended header record {key:?} has an invalid value {:?}",
                            crate::error::cut(v)
                        ))
                    })
                })
                .transpose()
        };
        let integer = |v: &str| v.parse::<u64>().ok();
        Ok(Self {
            size: check("size", &pax.size, integer)?,
            uid: check("uid", &pax.uid, integer)?,
            gid: check("gid", &pax.gid, integer)?,
            mtime: check("mtime", &pax.mtime, pax_seconds)?,
        })
    }
}

/// The whole seconds of a pax time (`1700000000.123456789`; negative times read as 0).
fn pax_seconds(value: &str) -> Option<u64> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match secs.strip_prefix('-') {
        Some(negative) => negative.parse::<u64>().ok().map(|_| 0),
        None => secs.parse().ok(),
    }
}
