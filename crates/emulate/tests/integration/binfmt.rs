//! The binfmt_misc path: with qemu-aarch64 registered in the kernel, an arm64 image builds with
//! `platform=linux/arm64` and an unchanged Dockerfile, and every `RUN` works (also a foreign
//! exec such as a pipe into `wc`).
//!
//! binfmt_misc is global to the machine, so this test registers qemu-aarch64 only for its
//! duration, under the shared `binfmt_lock` (a `flock`, which also excludes the tests of this
//! binary that take it exclusive): a guard unregisters it (and unmounts binfmt_misc if the
//! test mounted it) even when the test panics. It needs root, as the Docker tests do here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use emulate::{Emulation, binfmt_registered, choose_emulation};
use platform::Arch;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";
const CONF: &str = "/usr/lib/binfmt.d/qemu-aarch64.conf";

/// Undoes, on drop, what [`Registration::register`] did.
struct Registration {
    entry: Option<PathBuf>,
    mounted: bool,
}

impl Registration {
    /// Register qemu-aarch64 from Debian's binfmt.d file, mounting binfmt_misc if needed.
    /// Nothing is registered (or later removed) if someone else registered it already.
    fn register() -> Registration {
        let mut guard = Registration {
            entry: None,
            mounted: false,
        };
        if !Path::new(BINFMT).join("register").exists() {
            let status = Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
                .status()
                .unwrap();
            assert!(status.success(), "mounting binfmt_misc failed: {status}");
            guard.mounted = true;
        }
        let entry = Path::new(BINFMT).join("qemu-aarch64");
        if !entry.exists() {
            let rule = std::fs::read_to_string(CONF)
                .unwrap_or_else(|e| panic!("{CONF}: {e} (install qemu-user-static)"));
            std::fs::write(Path::new(BINFMT).join("register"), rule.trim_end()).unwrap();
            guard.entry = Some(entry);
        }
        guard
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(entry) = &self.entry {
            // Writing -1 to an entry removes it.
            let _ = std::fs::write(entry, "-1");
        }
        if self.mounted {
            let _ = Command::new("umount").arg(BINFMT).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binfmt_registration_builds_with_platform_and_no_rewrite() {
    let docker = common::docker().await;
    let tag = common::unique_tag("binfmt");
    let ours = {
        // Shared: the rewrite's foreign-exec test disables aarch64 entries under it exclusive.
        let _lock = common::binfmt_lock(false);
        let registration = Registration::register();
        let ours = registration.entry.is_some();
        assert!(binfmt_registered(Arch::Aarch64));
        assert_eq!(
            choose_emulation(Arch::Aarch64, Arch::Amd64, None).unwrap(),
            Emulation::Binfmt
        );
        let dockerfile = "FROM local/aarch64-busybox\n\
                          RUN uname -m > /arch && echo hello | wc -c > /count\n";
        let context = common::tar_with_modes(&[("Dockerfile", dockerfile.as_bytes(), 0o644)]);
        let built = common::build(&docker, context, &tag, Some("linux/arm64")).await;
        drop(registration);
        assert!(
            built.error.is_none(),
            "{:?}\n{}",
            built.error,
            built.lines.join("\n")
        );
        ours
    };
    if ours {
        assert!(
            !Path::new(BINFMT).join("qemu-aarch64").exists(),
            "the guard left qemu-aarch64 registered"
        );
    }
    assert_eq!(common::read_file(&docker, &tag, "/arch").await, "aarch64\n");
    assert_eq!(common::read_file(&docker, &tag, "/count").await, "6\n");
    common::remove_image(&docker, &tag).await;
}
