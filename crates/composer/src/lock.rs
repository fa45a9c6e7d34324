//! Update locks (spec §3): a lock is held while its file exists. Each service has a lock
//! directory `<root>/<appId>/<service>/` (bind-mounted at `/tmp/balena` and `/tmp/resin` in
//! the container) holding `updates.lock` and the legacy `resin-updates.lock`. Files owned by
//! the lock uid (65534) are ours; any other file is a user lock that blocks updates unless
//! forced.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lockfile names in each service's lock directory.
pub const LOCK_FILES: [&str; 2] = ["updates.lock", "resin-updates.lock"];

/// Where the locks of an app live and who owns ours.
#[derive(Debug, Clone)]
pub struct Locks {
    root: PathBuf,
    uid: u32,
}

/// Lockfiles held by an update; [`Locks::release`] removes them.
#[derive(Debug, Default)]
pub struct HeldLock {
    files: Vec<PathBuf>,
}

impl HeldLock {
    /// The files held.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::LockIo {
        path: path.to_owned(),
        source,
    }
}

impl Locks {
    /// Locks under `root`, ours owned by `uid`.
    pub fn new(root: impl Into<PathBuf>, uid: u32) -> Self {
        Self {
            root: root.into(),
            uid,
        }
    }

    /// The lock directory of a service.
    pub fn service_dir(&self, app_id: u64, service: &str) -> PathBuf {
        self.root.join(app_id.to_string()).join(service)
    }

    /// Takes the locks of every service named, all or nothing. With `force`, user lockfiles
    /// are deleted and replaced. A lockfile of ours that is already there (left over) counts as
    /// held.
    pub fn take(&self, app_id: u64, services: &[String], force: bool) -> Result<HeldLock> {
        let mut held = HeldLock::default();
        for service in services {
            if let Err(e) = self.take_service(app_id, service, force, &mut held) {
                self.release(app_id, std::mem::take(&mut held));
                return Err(e);
            }
        }
        Ok(held)
    }

    fn take_service(
        &self,
        app_id: u64,
        service: &str,
        force: bool,
        held: &mut HeldLock,
    ) -> Result<()> {
        let dir = self.service_dir(app_id, service);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for name in LOCK_FILES {
            let path = dir.join(name);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.uid() == self.uid => {
                    held.files.push(path);
                    continue;
                }
                Ok(_) if force => remove_any(&path)?,
                Ok(_) => {
                    return Err(Error::UpdatesLocked {
                        app_id,
                        service: service.to_owned(),
                        path,
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    // Ownership is what tells our locks from the user's; without the right to
                    // chown (not root), the file stays ours only through `held`.
                    let _ = std::os::unix::fs::fchown(&file, Some(self.uid), Some(self.uid));
                    held.files.push(path);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(Error::UpdatesLocked {
                        app_id,
                        service: service.to_owned(),
                        path,
                    });
                }
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(())
    }

    /// Removes the held files and any other lockfile of ours left in the app's directories.
    /// Errors are ignored: a file already gone is released.
    pub fn release(&self, app_id: u64, held: HeldLock) {
        for f in held.files {
            let _ = fs::remove_file(f);
        }
        for f in self.leftovers(app_id) {
            let _ = fs::remove_file(f);
        }
    }

    /// Lockfiles of ours (owned by the lock uid) under the app's directory.
    pub fn leftovers(&self, app_id: u64) -> Vec<PathBuf> {
        let app_dir = self.root.join(app_id.to_string());
        let Ok(services) = fs::read_dir(&app_dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for service in services.flatten() {
            let Ok(files) = fs::read_dir(service.path()) else {
                continue;
            };
            for f in files.flatten() {
                let ours = f.file_name().to_string_lossy().ends_with("updates.lock")
                    && fs::symlink_metadata(f.path()).is_ok_and(|m| m.uid() == self.uid);
                if ours {
                    out.push(f.path());
                }
            }
        }
        out
    }

    /// Whether any lockfile (ours or a user's) exists for the app's services.
    pub fn user_locked(&self, app_id: u64, services: &[String]) -> Option<(String, PathBuf)> {
        services.iter().find_map(|s| {
            let dir = self.service_dir(app_id, s);
            LOCK_FILES.iter().map(|n| dir.join(n)).find_map(|p| {
                fs::symlink_metadata(&p)
                    .ok()
                    .filter(|m| m.uid() != self.uid)
                    .map(|_| (s.clone(), p))
            })
        })
    }
}

fn remove_any(path: &Path) -> Result<()> {
    let result = if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn current_uid() -> u32 {
        fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
    }

    /// Our lock uid for tests: one that is not the test user's, so files the test writes
    /// directly are "user" locks. When not root, chown fails and `held` tracks ours.
    fn locks(dir: &Path) -> Locks {
        Locks::new(dir, 65534)
    }

    #[test]
    fn takes_and_releases_all_services() {
        let dir = tempfile::tempdir().unwrap();
        let l = locks(dir.path());
        let held = l.take(1, &["a".into(), "b".into()], false).unwrap();
        assert_eq!(held.files().len(), 4);
        for f in held.files() {
            assert!(f.exists(), "{}", f.display());
        }
        let files = held.files().to_vec();
        l.release(1, held);
        assert!(files.iter().all(|f| !f.exists()));
    }

    #[test]
    fn user_lock_blocks_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let l = locks(dir.path());
        let b = l.service_dir(1, "b");
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("updates.lock"), "").unwrap();
        if current_uid() == 65534 {
            return; // cannot tell user locks apart when running as nobody
        }
        let err = l.take(1, &["a".into(), "b".into()], false).unwrap_err();
        assert!(
            matches!(err, Error::UpdatesLocked { ref service, .. } if service == "b"),
            "{err}"
        );
        assert!(
            err.to_string().contains("Lockfile exists")
                || err.to_string().contains("lockfile exists")
        );
        assert!(!l.service_dir(1, "a").join("updates.lock").exists());
        assert!(
            b.join("updates.lock").exists(),
            "the user's lock is untouched"
        );
    }

    #[test]
    fn force_replaces_user_locks() {
        let dir = tempfile::tempdir().unwrap();
        let l = locks(dir.path());
        let a = l.service_dir(1, "a");
        fs::create_dir_all(&a).unwrap();
        fs::write(a.join("updates.lock"), "user").unwrap();
        let held = l.take(1, &["a".into()], true).unwrap();
        assert_eq!(fs::read_to_string(a.join("updates.lock")).unwrap(), "");
        l.release(1, held);
        assert!(!a.join("updates.lock").exists());
    }

    #[test]
    fn locks_of_other_apps_are_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let l = locks(dir.path());
        let other = l.take(2, &["a".into()], false).unwrap();
        let mine = l.take(1, &["a".into()], false).unwrap();
        l.release(1, mine);
        assert!(other.files().iter().all(|f| f.exists()));
    }
}
