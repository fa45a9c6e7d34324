//! Sparse files: GNU's old format (typeflag `S`, map in the header and extension blocks)
//! and GNU's PAX formats 0.0 (`GNU.sparse.offset`/`numbytes` records), 0.1
//! (`GNU.sparse.map`) and 1.0 (the map at the start of the data). The archive stores only
//! the data chunks; a context gets the whole file, holes written as zeros while streaming.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;

use crate::project::CopyError;

/// The most data chunks one sparse file may have (each costs 24 bytes of index memory).
pub const MAX_SPARSE_CHUNKS: usize = 1 << 20;

/// One run of data: `len` bytes at `offset` in the file, stored at `at` in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    offset: u64,
    len: u64,
    at: u64,
}

/// Where a sparse file's data lies; everything between chunks is zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SparseMap {
    chunks: Arc<[Chunk]>,
}

/// How a PAX sparse file stores its map.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PaxSparse {
    /// 0.0 or 0.1: the map is in the records.
    InRecords(Vec<(u64, u64)>),
    /// 1.0: the map is at the start of the data.
    InData,
}

/// A PAX sparse file's description.
#[derive(Debug)]
pub(crate) struct PaxSparseFile {
    pub(crate) format: PaxSparse,
    /// The expanded size.
    pub(crate) real_size: u64,
}

fn invalid(detail: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.to_string())
}

fn number(key: &str, value: &str) -> io::Result<u64> {
    value.parse().map_err(|_| {
        invalid(format!(
            "sparse record {key:?} has an invalid value {:?}",
            crate::error::cut(value)
        ))
    })
}

/// Reads the `GNU.sparse.*` records (prefix stripped) of a PAX header; `None` if there are
/// none. A version other than 0.0, 0.1 and 1.0 is refused rather than read as a plain file.
pub(crate) fn pax_sparse(records: &[(String, String)]) -> io::Result<Option<PaxSparseFile>> {
    if records.is_empty() {
        return Ok(None);
    }
    let get = |key: &str| record(records, key);
    let version = (get("major"), get("minor"));
    let format = match version {
        (Some("1"), Some("0")) => PaxSparse::InData,
        (Some("0"), Some("0" | "1")) | (None, None) => PaxSparse::InRecords(records_map(records)?),
        (major, minor) => {
            return Err(invalid(format!(
                "GNU sparse format {}.{} is not supported (only 0.0, 0.1, 1.0 and GNU)",
                crate::error::cut(major.unwrap_or("?")),
                crate::error::cut(minor.unwrap_or("?"))
            )));
        }
    };
    let size_key = if format == PaxSparse::InData {
        "realsize"
    } else {
        "size"
    };
    let real_size = get(size_key)
        .or_else(|| get("realsize"))
        .or_else(|| get("size"))
        .ok_or_else(|| invalid("GNU sparse records without the file's real size"))
        .and_then(|v| number(size_key, v))?;
    Ok(Some(PaxSparseFile { format, real_size }))
}

/// The real name of a PAX sparse file (`GNU.sparse.name`).
pub(crate) fn real_name(records: &[(String, String)]) -> Option<&str> {
    record(records, "name")
}

/// A record's value (the last one if repeated).
fn record<'a>(records: &'a [(String, String)], key: &str) -> Option<&'a str> {
    records
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The 0.1 `map` record or the 0.0 `offset`/`numbytes` pairs.
fn records_map(records: &[(String, String)]) -> io::Result<Vec<(u64, u64)>> {
    if let Some(map) = record(records, "map") {
        let numbers = map
            .split(',')
            .filter(|n| !map.is_empty() || !n.is_empty())
            .map(|n| number("map", n))
            .collect::<io::Result<Vec<u64>>>()?;
        if numbers.len() % 2 != 0 {
            return Err(invalid("sparse map \"map\" has an odd number of entries"));
        }
        return pairs(numbers.chunks_exact(2).map(|c| (c[0], c[1])));
    }
    let mut out = Vec::new();
    let mut offset = None;
    for (key, value) in records {
        match (key.as_str(), offset) {
            ("offset", None) => offset = Some(number(key, value)?),
            ("numbytes", Some(at)) => {
                out.push((at, number(key, value)?));
                offset = None;
            }
            ("offset" | "numbytes", _) => {
                return Err(invalid(
                    "sparse records \"offset\" and \"numbytes\" do not alternate",
                ));
            }
            _ => {}
        }
        if out.len() > MAX_SPARSE_CHUNKS {
            return Err(too_many());
        }
    }
    if out.is_empty() {
        return Err(invalid("GNU sparse records without a sparse map"));
    }
    Ok(out)
}

fn too_many() -> io::Error {
    invalid(format!(
        "sparse map of more than {MAX_SPARSE_CHUNKS} chunks"
    ))
}

fn pairs(iter: impl Iterator<Item = (u64, u64)>) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for pair in iter {
        if out.len() == MAX_SPARSE_CHUNKS {
            return Err(too_many());
        }
        out.push(pair);
    }
    Ok(out)
}

/// Reads a 1.0 map (`count\n` then `offset\nlen\n` per chunk) from the start of the data;
/// returns it and the bytes it occupies (rounded up to a 512-byte block).
pub(crate) fn read_map_1_0(reader: &mut impl BufRead) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let mut used = 0;
    let mut next = |reader: &mut dyn BufRead| -> io::Result<u64> {
        let mut line = Vec::new();
        reader.take(21).read_until(b'\n', &mut line)?;
        used += line.len() as u64;
        if line.pop() != Some(b'\n') {
            return Err(invalid(
                "sparse map 1.0: a number is not ended by a newline",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        number("1.0 map", &text)
    };
    let count = next(reader)?;
    if count > MAX_SPARSE_CHUNKS as u64 {
        return Err(too_many());
    }
    let mut map = Vec::new();
    for _ in 0..count {
        let offset = next(reader)?;
        let len = next(reader)?;
        map.push((offset, len));
    }
    Ok((map, used.div_ceil(512) * 512))
}

/// Reads an old GNU sparse header's map: four slots in the header, then 21 per extension
/// block while the `isextended` flag is set. `at` advances past the extension blocks.
pub(crate) fn gnu_map(
    header: &tar::Header,
    file: &File,
    at: &mut u64,
) -> io::Result<Vec<(u64, u64)>> {
    let gnu = header
        .as_gnu()
        .ok_or_else(|| invalid("a GNU sparse entry without a GNU header"))?;
    let mut out = Vec::new();
    let push = |slot: &tar::GnuSparseHeader, out: &mut Vec<(u64, u64)>| -> io::Result<()> {
        if !slot.is_empty() {
            if out.len() == MAX_SPARSE_CHUNKS {
                return Err(too_many());
            }
            out.push((slot.offset()?, slot.length()?));
        }
        Ok(())
    };
    for slot in &gnu.sparse {
        push(slot, &mut out)?;
    }
    let mut extended = gnu.is_extended();
    while extended {
        let mut ext = tar::GnuExtSparseHeader::new();
        crate::archive::read_block(file, *at, ext.as_mut_bytes())?
            .then_some(())
            .ok_or_else(|| invalid("the archive ends inside a GNU sparse map"))?;
        *at += 512;
        for slot in &ext.sparse {
            push(slot, &mut out)?;
        }
        extended = ext.is_extended();
    }
    Ok(out)
}

/// Checks a map against the file's real size and the stored data (`stored` bytes from `at`):
/// chunks in order, not overlapping, inside the file, using exactly the stored data.
pub(crate) fn layout(
    map: &[(u64, u64)],
    real_size: u64,
    mut at: u64,
    stored: u64,
) -> io::Result<SparseMap> {
    let mut chunks = Vec::with_capacity(map.len());
    let mut end = 0;
    let mut used: u64 = 0;
    for &(offset, len) in map {
        if offset < end {
            return Err(invalid("sparse map chunks overlap or are out of order"));
        }
        end = offset
            .checked_add(len)
            .filter(|e| *e <= real_size)
            .ok_or_else(|| {
                invalid(format!(
                    "sparse map chunk at {offset} runs past the file's size {real_size}"
                ))
            })?;
        used = used
            .checked_add(len)
            .ok_or_else(|| invalid("sparse map too large"))?;
        if len > 0 {
            chunks.push(Chunk { offset, len, at });
            at += len;
        }
    }
    if used != stored {
        return Err(invalid(format!(
            "sparse map describes {used} bytes of data but the entry stores {stored}"
        )));
    }
    Ok(SparseMap {
        chunks: chunks.into(),
    })
}

/// Writes the whole file: zeros for the holes, the chunks from `file`.
pub(crate) fn copy(
    file: &File,
    map: &SparseMap,
    size: u64,
    out: &mut dyn Write,
    buf: &mut [u8],
) -> Result<(), CopyError> {
    let mut written = 0;
    for chunk in map.chunks.iter() {
        zeros(out, chunk.offset - written, buf)?;
        crate::copy::copy_range(file, chunk.at, chunk.len, out, buf)?;
        written = chunk.offset + chunk.len;
    }
    zeros(out, size - written, buf)
}

fn zeros(out: &mut dyn Write, mut len: u64, buf: &mut [u8]) -> Result<(), CopyError> {
    // Only as much of the buffer as the hole needs: a map of many small holes must not
    // clear the whole buffer for each.
    let n = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
    let zeros = &mut buf[..n];
    zeros.fill(0);
    while len > 0 {
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(zeros.len());
        out.write_all(&zeros[..n]).map_err(CopyError::Write)?;
        len -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn records(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_three_pax_formats() {
        let v00 = pax_sparse(&records(&[
            ("size", "100"),
            ("numblocks", "2"),
            ("offset", "10"),
            ("numbytes", "5"),
            ("offset", "100"),
            ("numbytes", "0"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(v00.format, PaxSparse::InRecords(vec![(10, 5), (100, 0)]));
        assert_eq!(v00.real_size, 100);
        let v01 = pax_sparse(&records(&[
            ("size", "100"),
            ("name", "a/b"),
            ("map", "10,5,100,0"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(v01.format, PaxSparse::InRecords(vec![(10, 5), (100, 0)]));
        assert_eq!(real_name(&records(&[("name", "a/b")])), Some("a/b"));
        let v10 = pax_sparse(&records(&[
            ("major", "1"),
            ("minor", "0"),
            ("realsize", "7"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((v10.format, v10.real_size), (PaxSparse::InData, 7));
        let err = pax_sparse(&records(&[
            ("major", "2"),
            ("minor", "0"),
            ("realsize", "7"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("2.0 is not supported"), "{err}");
    }

    #[test]
    fn maps_are_checked() {
        assert!(layout(&[(0, 5), (3, 5)], 100, 0, 10).is_err());
        assert!(layout(&[(0, 5), (98, 5)], 100, 0, 10).is_err());
        assert!(layout(&[(0, 5)], 100, 0, 10).is_err());
        assert!(layout(&[(0, 5), (50, 5), (100, 0)], 100, 0, 10).is_ok());
        let (map, used) = read_map_1_0(&mut &b"2\n0\n5\n50\n5\n"[..]).unwrap();
        assert_eq!((map, used), (vec![(0, 5), (50, 5)], 512));
    }
}
