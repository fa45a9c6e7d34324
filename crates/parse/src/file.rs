//! The one way to read a file a project names: compose files, `extends` and `include` files,
//! `.env` and `env_file`s, `balena.yml`, registry secrets.
//!
//! Such a name is input: it can point at `/dev/zero`, a FIFO nobody writes to, a directory
//! or a file of gigabytes. Each of those must end in an error naming the file, fast and in
//! bounded memory, not in a hang or an out-of-memory kill.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::normalize::clean_join;

/// The largest file a project may name: the same limit the `context` crate puts on the files
/// it reads out of a project (`context::MAX_READ_SIZE`), so a file is accepted or refused
/// alike whether the project is a directory or a tar.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Where the files a project names are read from: the filesystem ([`read_project_file`]), or,
/// for a project that is no directory on disk (a tar), the caller's function, which gets the
/// path under [`LoadOptions::project_dir`](crate::LoadOptions::project_dir) and answers from
/// the archive. A missing file must be [`io::ErrorKind::NotFound`].
#[derive(Clone, Default)]
pub struct FileReader(Option<Arc<ReadFn>>);

type ReadFn = dyn Fn(&Path) -> io::Result<Vec<u8>> + Send + Sync;

impl FileReader {
    /// Reads through `read` instead of the filesystem.
    pub fn new(read: impl Fn(&Path) -> io::Result<Vec<u8>> + Send + Sync + 'static) -> Self {
        FileReader(Some(Arc::new(read)))
    }

    /// The file's bytes (see [`read_project_file`] for the rules on disk).
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match &self.0 {
            Some(read) => read(path),
            None => read_project_file(path),
        }
    }

    /// The file's bytes, or `None` when there is no such file.
    pub fn read_if_present(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = if self.0.is_some() {
            "caller"
        } else {
            "filesystem"
        };
        f.debug_tuple("FileReader").field(&from).finish()
    }
}

/// Reads a file a project names, whole: a regular file (a symbolic link to one is followed)
/// of at most [`MAX_FILE_SIZE`] bytes.
///
/// The type is checked on the opened file, not on the path beforehand, so the file cannot be
/// swapped between the check and the read; the file is opened non-blocking, so opening a FIFO
/// returns at once instead of waiting for a writer. The read stops one byte past the limit, so
/// a file that grows while it is read fails too.
///
/// Errors are [`io::Error`]s, as from [`std::fs::read`] (a missing file is still
/// [`io::ErrorKind::NotFound`]); a directory is [`io::ErrorKind::IsADirectory`], any other
/// file that is not regular [`io::ErrorKind::InvalidInput`], and a file over the limit
/// [`io::ErrorKind::FileTooLarge`]. Their messages do not name the file: the caller does.
pub fn read_project_file(path: &Path) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    if kind.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory, not a file",
        ));
    }
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a regular file"),
        ));
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Err(too_large());
    }
    read_capped(file, metadata.len())
}

/// Where `path`, written in a compose file of `base_dir`, points (`.` and `..` resolved
/// lexically, as compose does), refused when that is outside `project_dir`: a project names
/// only its own files (`env_file`, `extends.file`, `include`), never the host's, whether by
/// an absolute path or by climbing out with `..`. The refusal has the wording of the
/// reference's `normalizeAndValidateFilePath`.
///
/// Lexical, as the reference's check: a symbolic link inside a directory project is followed
/// when the file is read (a tar project's compose file resolves against an empty scratch
/// directory, which has none).
pub(crate) fn path_in_project(
    project_dir: &Path,
    base_dir: &Path,
    path: &str,
) -> Result<PathBuf, String> {
    // Compared as absolute paths: with a relative project directory (`.`), `a/../../x` would
    // otherwise clean to `../x`, which "starts with" the empty path `.` cleans to.
    let root = clean_join(&absolute(project_dir), ".");
    if clean_join(&absolute(base_dir), path).starts_with(root) {
        Ok(clean_join(base_dir, path))
    } else if Path::new(path).is_absolute() {
        Err(format!("Absolute filepath not allowed: {path}"))
    } else {
        Err(format!("Directory traversing not allowed : {path}"))
    }
}

fn absolute(dir: &Path) -> PathBuf {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The file's bytes, failing once more than [`MAX_FILE_SIZE`] of them arrive.
fn read_capped(file: File, expected: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "is larger than {} MiB, the limit for a file a project names",
            MAX_FILE_SIZE / (1024 * 1024)
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_file_exactly_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let file = File::create(&path).unwrap();
        // Sparse: nothing of it is written to disk.
        file.set_len(MAX_FILE_SIZE).unwrap();
        assert_eq!(
            read_project_file(&path).unwrap().len() as u64,
            MAX_FILE_SIZE
        );
        file.set_len(MAX_FILE_SIZE + 1).unwrap();
        let err = read_project_file(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            err.to_string(),
            "is larger than 64 MiB, the limit for a file a project names"
        );
    }

    #[test]
    fn a_growing_file_is_cut_at_the_limit() {
        // What the read does once the size checked on open no longer holds.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        File::create(&path)
            .unwrap()
            .set_len(MAX_FILE_SIZE + 10)
            .unwrap();
        let err = read_capped(File::open(&path).unwrap(), 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn paths_stay_inside_the_project_whatever_the_project_directory_is_written_as() {
        for project in [Path::new("/p"), Path::new("."), Path::new("")] {
            let sub = project.join("sub");
            assert!(path_in_project(project, &sub, "../base.yml").is_ok());
            assert!(path_in_project(project, project, "a/../b.yml").is_ok());
            assert_eq!(
                path_in_project(project, project, "a/../../x").unwrap_err(),
                "Directory traversing not allowed : a/../../x"
            );
            assert_eq!(
                path_in_project(project, &sub, "../../x").unwrap_err(),
                "Directory traversing not allowed : ../../x"
            );
            assert_eq!(
                path_in_project(project, project, "/etc/passwd").unwrap_err(),
                "Absolute filepath not allowed: /etc/passwd"
            );
        }
        assert!(path_in_project(Path::new("/p"), Path::new("/p"), "/p/sub/x").is_ok());
    }

    #[test]
    fn devices_and_directories_are_refused_by_what_was_opened() {
        let err = read_project_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(err.to_string(), "is a character device, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let err = read_project_file(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        let err = read_project_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
