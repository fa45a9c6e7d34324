//! PAX extended headers, parsed record by record from the archive so that no record is
//! ever held whole unless it is one we keep and it is within its limit.
//!
//! The `tar` crate reads a whole extended header (and a whole GNU long name) into memory
//! before looking at it, so a 300 MiB `path` record costs gigabytes of memory; hence this
//! streaming reader with a limit per record.

use std::io::{self, BufRead, Read};

use crate::error::cut;

/// The longest path or link name accepted (pax `path`, `linkpath`, `GNU.sparse.name`, GNU
/// long names): Linux's `PATH_MAX`. The daemon could not create a longer name anyway.
pub const MAX_NAME_LEN: u64 = 4096;

/// The longest value of any other pax record (1 MiB, Go's `archive/tar` limit for a whole
/// extended header, which Docker uses).
pub const MAX_PAX_RECORD_LEN: u64 = 1024 * 1024;

/// How many bytes of an oversized value are kept for the error (a little over what it
/// quotes, so that it shows as cut).
pub(crate) const QUOTED_PREFIX: usize = 256;

/// The longest key accepted (`SCHILY.xattr.` plus an xattr name of at most 255 bytes).
const MAX_KEY_LEN: usize = 512;

/// A record whose value exceeds its limit: kept as a prefix for the error message.
#[derive(Debug, Clone)]
pub(crate) struct Oversized {
    /// The record's key (`path`, `linkpath`, …) or `GNU long name`.
    pub(crate) what: String,
    /// The value's length.
    pub(crate) len: u64,
    /// Its first bytes.
    pub(crate) prefix: Vec<u8>,
    /// The limit it exceeds.
    pub(crate) limit: u64,
    /// Whether the value is the entry's own path (so the error names the entry by it).
    pub(crate) is_path: bool,
}

impl Oversized {
    /// The value's start, lossily decoded and marked as cut.
    pub(crate) fn quoted(&self) -> String {
        cut(&String::from_utf8_lossy(&self.prefix))
    }
}

/// The records of one local extended header that indexing uses.
#[derive(Debug, Default)]
pub(crate) struct PaxRecords {
    pub(crate) path: Option<Vec<u8>>,
    pub(crate) linkpath: Option<Vec<u8>>,
    pub(crate) size: Option<String>,
    pub(crate) uid: Option<String>,
    pub(crate) gid: Option<String>,
    pub(crate) mtime: Option<String>,
    /// Every `GNU.sparse.*` record, by key without the prefix, in order (0.0 repeats
    /// `offset` and `numbytes`).
    pub(crate) sparse: Vec<(String, String)>,
    /// The first record over its limit.
    pub(crate) oversized: Option<Oversized>,
}

/// The limit for a record's value.
fn limit_for(key: &[u8]) -> u64 {
    match key {
        b"path" | b"linkpath" | b"GNU.sparse.name" => MAX_NAME_LEN,
        _ => MAX_PAX_RECORD_LEN,
    }
}

fn bad(detail: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad pax extended header record: {detail}"),
    )
}

/// Reads the `len` bytes of an extended header from `reader`, one `<length> <key>=<value>\n`
/// record at a time.
pub(crate) fn read_records(reader: &mut impl BufRead, len: u64) -> io::Result<PaxRecords> {
    let mut records = PaxRecords::default();
    let mut consumed = 0;
    while consumed < len {
        consumed += read_record(reader, len - consumed, &mut records)?;
    }
    Ok(records)
}

/// Reads one record of at most `room` bytes; returns its length.
fn read_record(reader: &mut impl BufRead, room: u64, records: &mut PaxRecords) -> io::Result<u64> {
    let digits = read_until_limited(reader, b' ', 20)?;
    let record_len: u64 = std::str::from_utf8(&digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| bad("no record length"))?;
    if record_len > room {
        return Err(bad(format!(
            "a record of {record_len} bytes runs past the end of the header"
        )));
    }
    let rest = record_len
        .checked_sub(digits.len() as u64 + 1)
        .ok_or_else(|| bad("record length too short"))?;
    let key = read_until_limited(
        reader,
        b'=',
        MAX_KEY_LEN.min(usize::try_from(rest).unwrap_or(0)),
    )?;
    let value_len = rest
        .checked_sub(key.len() as u64 + 2)
        .ok_or_else(|| bad("record length too short"))?;
    let limit = limit_for(&key);
    if value_len > limit {
        let mut prefix = Vec::new();
        reader.take(QUOTED_PREFIX as u64).read_to_end(&mut prefix)?;
        skip(reader, value_len - prefix.len() as u64)?;
        if records.oversized.is_none() {
            records.oversized = Some(Oversized {
                what: format!("pax record {:?}", String::from_utf8_lossy(&key)),
                len: value_len,
                prefix,
                limit,
                is_path: key == b"path",
            });
        }
    } else {
        let kept = keep(&key);
        let mut value = Vec::new();
        if kept {
            // Within `limit`, so the allocation is bounded.
            value.reserve(usize::try_from(value_len).unwrap_or(0));
            reader.take(value_len).read_to_end(&mut value)?;
            if value.len() as u64 != value_len {
                return Err(unexpected_eof());
            }
        } else {
            skip(reader, value_len)?;
        }
        if kept {
            store(records, &key, value)?;
        }
    }
    let mut newline = [0];
    reader.read_exact(&mut newline)?;
    if newline != *b"\n" {
        return Err(bad("record does not end with a newline"));
    }
    Ok(record_len)
}

fn keep(key: &[u8]) -> bool {
    matches!(
        key,
        b"path" | b"linkpath" | b"size" | b"uid" | b"gid" | b"mtime"
    ) || key.starts_with(b"GNU.sparse.")
}

fn store(records: &mut PaxRecords, key: &[u8], value: Vec<u8>) -> io::Result<()> {
    let text = |value: Vec<u8>| {
        String::from_utf8(value).map_err(|e| {
            bad(format!(
                "{:?} is not UTF-8: {:?}",
                String::from_utf8_lossy(key),
                cut(&String::from_utf8_lossy(e.as_bytes()))
            ))
        })
    };
    match key {
        b"path" => records.path = Some(value),
        b"linkpath" => records.linkpath = Some(value),
        b"size" => records.size = Some(text(value)?),
        b"uid" => records.uid = Some(text(value)?),
        b"gid" => records.gid = Some(text(value)?),
        b"mtime" => records.mtime = Some(text(value)?),
        _ => {
            let name = String::from_utf8_lossy(key.strip_prefix(b"GNU.sparse.").unwrap_or(key));
            records.sparse.push((name.into_owned(), text(value)?));
        }
    }
    Ok(())
}

/// Reads up to `delimiter` (consumed, not returned), refusing more than `max` bytes before it.
fn read_until_limited(reader: &mut impl BufRead, delimiter: u8, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let found = reader
        .take(max as u64 + 1)
        .read_until(delimiter, &mut out)?;
    if found == 0 || out.last() != Some(&delimiter) {
        return Err(bad(format!(
            "expected {:?} within {max} bytes",
            char::from(delimiter)
        )));
    }
    out.pop();
    Ok(out)
}

/// Discards `len` bytes.
pub(crate) fn skip(reader: &mut impl Read, len: u64) -> io::Result<()> {
    let skipped = io::copy(&mut reader.take(len), &mut io::sink())?;
    if skipped != len {
        return Err(unexpected_eof());
    }
    Ok(())
}

fn unexpected_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive ends inside an extended header",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<PaxRecords> {
        read_records(&mut &bytes[..], bytes.len() as u64)
    }

    /// One well-formed record (the length counts its own digits).
    fn rec(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len = len.to_string().len() + body.len();
        }
        format!("{len}{body}")
    }

    #[test]
    fn records_are_kept_or_skipped() {
        let bytes = rec("path", "a/b") + &rec("comment", "ignored") + &rec("GNU.sparse.map", "1");
        let r = parse(bytes.as_bytes()).unwrap();
        assert_eq!(r.path.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(r.sparse, [("map".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn an_oversized_name_is_kept_as_a_prefix_only() {
        let name = "n".repeat(5000);
        let r = parse(rec("path", &name).as_bytes()).unwrap();
        assert!(r.path.is_none());
        let o = r.oversized.unwrap();
        assert_eq!(
            (o.len, o.limit, o.prefix.len()),
            (5000, MAX_NAME_LEN, QUOTED_PREFIX)
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        for bytes in [
            &b"garbage!!\n"[..],
            b"999 path=x\n",
            b"3 p\n",
            b"11 path=ab!",
        ] {
            assert!(
                parse(bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
