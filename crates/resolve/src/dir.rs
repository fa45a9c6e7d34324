//! A build context that is a plain directory on disk.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::ContextFiles;

/// A build context that is a directory on disk, listed once when opened.
///
/// Paths are in the order of a sorted walk (each directory's entries by name, depth first),
/// as a tar of the directory would hold them. Only regular files are listed: symbolic links
/// are neither listed nor followed, so a context cannot make resolution read a file outside
/// its directory.
#[derive(Debug, Clone)]
pub struct DirFiles {
    root: PathBuf,
    paths: Vec<String>,
    listed: HashSet<String>,
}

impl DirFiles {
    /// Lists the regular files under `root`. Fails when `root` cannot be walked or a file
    /// name is not UTF-8 (a context path is a `&str`); the error names the path.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DirFiles> {
        let root = root.into();
        let mut paths = Vec::new();
        let walk = WalkDir::new(&root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walk {
            let entry = entry.map_err(io::Error::other)?;
            if entry.file_type().is_file() {
                paths.push(context_path(&root, entry.path())?);
            }
        }
        let listed = paths.iter().cloned().collect();
        Ok(DirFiles {
            root,
            paths,
            listed,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `path` (under `root`) as a context path: relative and `/`-separated.
fn context_path(root: &Path, path: &Path) -> io::Result<String> {
    let relative = path.strip_prefix(root).map_err(io::Error::other)?;
    let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
    parts.map(|parts| parts.join("/")).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: the file name is not UTF-8", path.display()),
        )
    })
}

impl ContextFiles for DirFiles {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.paths.iter().map(String::as_str))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        if !self.listed.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path}: no such file in the build context"),
            ));
        }
        let file = self.root.join(path);
        // Listed as a regular file; refuse it if it has since become a link.
        if !fs::symlink_metadata(&file)?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: no longer a regular file"),
            ));
        }
        fs::read(file)
    }
}
