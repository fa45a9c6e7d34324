#![deny(missing_docs)]
//! A compose project — a directory, a `.tar` file, or a tar stream — indexed once and cut
//! into per-service build contexts that are streamed as tars, never held in memory.
//!
//! * [`Project`] indexes every entry in one pass: normalised path, type, mode, owner,
//!   mtime, link target, and where its bytes are (an offset into the tar or its spool, or
//!   a file of the directory). Absolute or `..` paths, hard links leaving the project,
//!   entries below a symlink or a file, and truncated or corrupt archives (including a
//!   declared size past the end) are errors naming the entry; devices and fifos are
//!   skipped with a [`Warning`]; a repeated path keeps its last occurrence. Symlinks are
//!   never followed, not even in a directory; a symlink or hard link that leaves the
//!   *context* it is sent in is an error when that context is cut. The `.balena/` (or
//!   `.resin/`) directory is kept out of the index (except `qemu-execve`, which the
//!   reference leaves in the context) and offered through [`Project::metadata`] and
//!   [`Project::balena_config`].
//! * Limits on what one tar header may cost: a path or link name (pax `path`/`linkpath`,
//!   GNU long names, `GNU.sparse.name`) of at most [`MAX_NAME_LEN`] bytes, any other pax
//!   record of at most [`MAX_PAX_RECORD_LEN`]; beyond them the tar is refused with
//!   [`Error::NameTooLong`], naming the entry (a long name by its start only: errors quote
//!   at most 200 bytes of any name or value). Records are read one at a time, so memory
//!   stays flat whatever the header's size.
//! * Sparse files (GNU tar `--sparse`: the old GNU format and PAX 0.0, 0.1 and 1.0, of at
//!   most [`MAX_SPARSE_CHUNKS`] chunks) are expanded into contexts, holes written as zeros
//!   while streaming; a map that does not fit the stored data, or another format version,
//!   is refused naming the entry. A gzip-compressed tar (file or stream) is decompressed
//!   while it is spooled to a temporary file.
//! * [`Project::context`] selects one service's files, applying `.dockerignore` files
//!   with moby's semantics ([`dockerignore`]); [`Context::write_tar`] streams them, with
//!   [`Override`]s for the resolved Dockerfile or a qemu binary.
//!
//! ```
//! use context::{Override, Project};
//!
//! // A small project tar: two services, a root .dockerignore, balena metadata.
//! let mut builder = tar::Builder::new(Vec::new());
//! for (path, data) in [
//!     (".dockerignore", &b"**/*.log\n"[..]),
//!     (".balena/balena.yml", b"build-variables: {}\n"),
//!     ("api/Dockerfile.template", b"FROM %%BALENA_ARCH%%-node\n"),
//!     ("api/server.js", b"listen()\n"),
//!     ("api/debug.log", b"noise\n"),
//!     ("web/Dockerfile", b"FROM nginx\n"),
//! ] {
//!     let mut header = tar::Header::new_gnu();
//!     header.set_size(data.len() as u64);
//!     header.set_mode(0o644);
//!     header.set_cksum();
//!     builder.append_data(&mut header, path, data).unwrap();
//! }
//! let project = Project::from_reader(&builder.into_inner().unwrap()[..]).unwrap();
//! assert_eq!(project.balena_config().unwrap().unwrap().name, "balena.yml");
//!
//! let api = project.context("api").unwrap();
//! let names: Vec<&str> = api.files().map(|f| f.path).collect();
//! assert_eq!(names, ["Dockerfile.template", "server.js"]);
//!
//! let mut tar_bytes = Vec::new();
//! api.write_tar(&[Override::file("Dockerfile", "FROM amd64-node\n")], &mut tar_bytes).unwrap();
//! let mut written = tar::Archive::new(&tar_bytes[..]);
//! let paths: Vec<String> = written
//!     .entries()
//!     .unwrap()
//!     .map(|e| e.unwrap().path().unwrap().display().to_string())
//!     .collect();
//! assert_eq!(paths, ["Dockerfile", "Dockerfile.template", "server.js"]);
//! ```

mod archive;
mod context;
mod copy;
pub mod dockerignore;
mod error;
mod path;
mod pax;
mod project;
mod sparse;

pub use context::{Context, ContextFile, ContextOptions, IgnoreMode, Override};
pub use error::{Error, Result};
pub use pax::{MAX_NAME_LEN, MAX_PAX_RECORD_LEN};
pub use project::{
    CONFIG_FILE_NAMES, ConfigFile, Entry, EntryKind, MAX_READ_SIZE, METADATA_DIRS, Metadata,
    Project, Warning,
};
pub use sparse::MAX_SPARSE_CHUNKS;
