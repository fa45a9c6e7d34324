//! The view of a build context that resolution needs: its file names, and the bytes of one
//! file.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::io;

/// A service's build context, however it is stored.
///
/// Resolution lists every path once and reads at most one file: the one it picked.
pub trait ContextFiles {
    /// Every file path in the context, context-relative and `/`-separated, in context (tar)
    /// order: when several files match the same resolver, the last one wins.
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_>;

    /// The contents of the file at `path`, one of the strings [`ContextFiles::paths`] yielded.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{path}: no such file in the build context"),
    )
}

/// An ordered list of `(path, contents)`: the order is the context order, and a path listed
/// twice reads as its last copy, as a tar extracts.
impl<P: AsRef<str>, B: AsRef<[u8]>> ContextFiles for [(P, B)] {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.iter().map(|(p, _)| p.as_ref()))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.iter()
            .rev()
            .find(|(p, _)| p.as_ref() == path)
            .map(|(_, b)| b.as_ref().to_vec())
            .ok_or_else(|| not_found(path))
    }
}

impl<P: AsRef<str>, B: AsRef<[u8]>> ContextFiles for Vec<(P, B)> {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        self.as_slice().paths()
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.as_slice().read(path)
    }
}

/// A map from path to contents; the context order is the sorted path order.
impl<K: Borrow<str> + Ord, B: AsRef<[u8]>> ContextFiles for BTreeMap<K, B> {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.keys().map(|k| k.borrow()))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.get(path)
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| not_found(path))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn slice_reads_last_copy_and_reports_missing() {
        let ctx = vec![("a", "1"), ("b", "2"), ("a", "3")];
        assert_eq!(ctx.paths().collect::<Vec<_>>(), ["a", "b", "a"]);
        assert_eq!(ctx.read("a").unwrap(), b"3");
        let err = ctx.read("c").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("c: no such file"));
    }

    #[test]
    fn map_lists_sorted_paths() {
        let ctx: BTreeMap<String, Vec<u8>> = [("b".into(), b"2".to_vec()), ("a".into(), vec![])]
            .into_iter()
            .collect();
        assert_eq!(ctx.paths().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(ctx.read("b").unwrap(), b"2");
        assert!(ctx.read("z").is_err());
    }
}
