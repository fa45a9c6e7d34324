//! Builders for fixture tars (including malformed ones) and a reader for written ones.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use context::{Context, Override, Project};

/// A tar under construction, written header by header so tests can break the rules.
#[derive(Default)]
pub struct Tar(pub Vec<u8>);

impl Tar {
    pub fn new() -> Self {
        Self::default()
    }

    /// A ustar header with `name` stored verbatim (no normalisation, up to 100 bytes).
    pub fn header(name: &[u8], ty: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(ty);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }

    /// Appends a header and `data`, padded to a block.
    pub fn raw(&mut self, header: &tar::Header, data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let h = Self::header(
            name.as_bytes(),
            tar::EntryType::Regular,
            data.len() as u64,
            b"",
        );
        self.raw(&h, data)
    }

    pub fn file_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut h = Self::header(
            name.as_bytes(),
            tar::EntryType::Regular,
            data.len() as u64,
            b"",
        );
        h.set_mode(mode);
        h.set_cksum();
        self.raw(&h, data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), tar::EntryType::Directory, 0, b"");
        h.set_mode(0o755);
        h.set_cksum();
        self.raw(&h, b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(
            name.as_bytes(),
            tar::EntryType::Symlink,
            0,
            target.as_bytes(),
        );
        self.raw(&h, b"")
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(name.as_bytes(), tar::EntryType::Link, 0, target.as_bytes());
        self.raw(&h, b"")
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n", where len counts itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        let h = Self::header(
            b"PaxHeader",
            tar::EntryType::XHeader,
            body.len() as u64,
            b"",
        );
        self.raw(&h, &body)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend_from_slice(&[0; 1024]);
        out
    }
}

pub fn project(bytes: &[u8]) -> context::Result<Project> {
    Project::from_reader(bytes)
}

/// One entry of a written tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

pub fn read_tar(bytes: &[u8]) -> Vec<Written> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            let h = e.header();
            Written {
                path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                data,
            }
        })
        .collect()
}

pub fn write(ctx: &Context, overrides: &[Override]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = ctx.write_tar(overrides, &mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

pub fn names(ctx: &Context) -> Vec<String> {
    read_tar(&write(ctx, &[]))
        .into_iter()
        .map(|w| w.path)
        .collect()
}
