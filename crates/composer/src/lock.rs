//! Update locks (spec §3): a lock is held while its file exists. Each service has a lock
//! directory `<root>/<appId>/<service>/` (bind-mounted at `/tmp/balena` and `/tmp/resin` in
//! the container) holding `updates.lock` and the legacy `resin-updates.lock`. Files owned by
//! the lock uid (65534) are ours; any other file is a user lock that blocks updates unless
//! forced.
//!
//! [`ApplyLock`] is a different lock: the composer's own, one apply per engine at a time.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::names;

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
    move |cause| Error::LockIo {
        path: path.to_owned(),
        cause,
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

    /// The lock directory of a service; see [`service_dir`].
    pub fn service_dir(&self, app_id: u64, service: &str) -> Result<PathBuf> {
        service_dir(&self.root, app_id, service)
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
        let dir = self.service_dir(app_id, service)?;
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
            let dir = self.service_dir(app_id, s).ok()?;
            LOCK_FILES.iter().map(|n| dir.join(n)).find_map(|p| {
                fs::symlink_metadata(&p)
                    .ok()
                    .filter(|m| m.uid() != self.uid)
                    .map(|_| (s.clone(), p))
            })
        })
    }
}

/// `<root>/<appId>/<service>`: the lock directory of a service. The service name must be one
/// normal path component (a compose name), so the directory is inside `root` by construction
/// whatever the name; any other name is an error.
pub fn service_dir(root: &Path, app_id: u64, service: &str) -> Result<PathBuf> {
    let app = app_id.to_string();
    let component = names::path_component(&app, "service", service)?;
    Ok(root.join(app).join(component))
}

/// The engine's apply lock: one update or removal at a time per engine, across processes.
/// An OS advisory lock (`flock`, through [`File::try_lock`]) on `<state_dir>/apply.lock`; the
/// kernel drops it when the holder's file closes, also when the holder dies, so a lock of a
/// killed process is free for the next one and there is no stale-lock cleanup. The file is
/// never deleted (deleting a flock file lets two processes lock two different files); it
/// holds the holder's pid, for the message of those who wait.
#[derive(Debug)]
pub struct ApplyLock {
    _file: File,
}

/// The outcome of [`ApplyLock::try_take`].
#[derive(Debug)]
pub enum ApplyLockAttempt {
    /// The lock is ours until the value is dropped.
    Taken(ApplyLock),
    /// Someone else holds it.
    Busy {
        /// The holder's pid, when it recorded one.
        holder: Option<u32>,
    },
}

impl ApplyLock {
    /// The lock file in `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("apply.lock")
    }

    /// Takes the lock if it is free; never waits.
    pub fn try_take(state_dir: &Path) -> Result<ApplyLockAttempt> {
        fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
        let path = Self::path(state_dir);
        // No truncation on open: the file may be the holder's, with its pid in it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Ok(ApplyLockAttempt::Busy { holder });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        file.set_len(0).map_err(io_err(&path))?;
        write!(file, "{}", std::process::id()).map_err(io_err(&path))?;
        Ok(ApplyLockAttempt::Taken(ApplyLock { _file: file }))
    }

    /// Takes the lock, waiting for it unless `no_wait` ([`Error::EngineBusy`] then);
    /// `on_wait` learns the holder once, when a wait begins.
    pub(crate) async fn take(
        state_dir: &Path,
        no_wait: bool,
        cancel: &CancellationToken,
        on_wait: impl FnOnce(Option<u32>),
    ) -> Result<ApplyLock> {
        let mut on_wait = Some(on_wait);
        loop {
            let holder = match Self::try_take(state_dir)? {
                ApplyLockAttempt::Taken(lock) => return Ok(lock),
                ApplyLockAttempt::Busy { holder } => holder,
            };
            if no_wait {
                return Err(Error::EngineBusy { holder });
            }
            if let Some(announce) = on_wait.take() {
                announce(holder);
            }
            // Polling rather than a blocking `lock()`: a blocked thread cannot be cancelled.
            tokio::select! {
                () = cancel.cancelled() => return Err(Error::Cancelled),
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
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
    fn the_apply_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let ApplyLockAttempt::Taken(held) = ApplyLock::try_take(dir.path()).unwrap() else {
            panic!("a fresh lock is busy");
        };
        match ApplyLock::try_take(dir.path()).unwrap() {
            ApplyLockAttempt::Busy { holder } => assert_eq!(holder, Some(std::process::id())),
            ApplyLockAttempt::Taken(_) => panic!("the lock was taken twice"),
        }
        drop(held);
        assert!(matches!(
            ApplyLock::try_take(dir.path()).unwrap(),
            ApplyLockAttempt::Taken(_)
        ));
    }

    #[test]
    fn lock_directories_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let l = locks(dir.path());
        assert_eq!(
            l.service_dir(5, "web").unwrap(),
            dir.path().join("5").join("web")
        );
        for bad in ["../../victim", "..", "a/b", "/etc", ""] {
            let err = l.take(5, &[bad.to_owned()], true).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad}: {err}");
        }
        assert!(!dir.path().join("victim").exists());
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
        let b = l.service_dir(1, "b").unwrap();
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
        assert!(!l.service_dir(1, "a").unwrap().join("updates.lock").exists());
        assert!(
            b.join("updates.lock").exists(),
            "the user's lock is untouched"
        );
    }

    #[test]
    fn force_replaces_user_locks() {
        let dir = tempfile::tempdir().unwrap();
        let l = locks(dir.path());
        let a = l.service_dir(1, "a").unwrap();
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
