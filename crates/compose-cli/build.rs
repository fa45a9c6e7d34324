//! Sets `BALENA_COMPOSE_COMMIT` and `BALENA_COMPOSE_BUILD_DATE` for `--version`.
//!
//! The commit comes from `git rev-parse` (a clean clone in CI has git); a source tree without
//! git (a crate tarball) says `unknown`. The date is `SOURCE_DATE_EPOCH`'s when set, so
//! reproducible builds stay reproducible, else today's (UTC).

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
        });
    println!("cargo:rustc-env=BALENA_COMPOSE_COMMIT={commit}");
    println!(
        "cargo:rustc-env=BALENA_COMPOSE_BUILD_DATE={}",
        civil_date(epoch)
    );
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit changes HEAD (or the branch it names): rebuild to show it.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) =
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r]))
    {
        println!("cargo:rerun-if-changed={branch}");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let out = Command::new("git")
        .args(args)
        .current_dir(manifest_dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn civil_date(epoch: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_owned()
}
