//! Tars of small files, of a directory, and read back.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

/// Writes one regular file (mode 0644) into a tar being built, `data` streamed.
pub fn append_file<W: Write>(
    out: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut header, path, data)
}

/// A tar of `(path, contents)` regular files (mode 0644), in order.
pub fn tar_of<D: AsRef<[u8]>>(files: &[(&str, D)]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let data = data.as_ref();
        append_file(&mut out, path, data.len() as u64, data).unwrap();
    }
    out.into_inner().unwrap()
}

/// A tar of `(path, contents, mode)` regular files, in order, with mtime 0.
pub fn tar_with_modes(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        out.append_data(&mut header, path, *data).unwrap();
    }
    out.into_inner().unwrap()
}

/// A tar of everything under `dir`, as `./…`.
pub fn tar_of_dir(dir: &Path) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    out.append_dir_all(".", dir).unwrap();
    out.into_inner().unwrap()
}

/// The entries of a tar file: path to contents.
pub fn tar_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}
