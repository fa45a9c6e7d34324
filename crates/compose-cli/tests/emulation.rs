//! `balena-compose emulation setup|status|remove` on this machine's binfmt_misc, and foreign
//! builds through it and through the rewrite, on the private daemon of `scripts/docker-env`
//! (whose `up` runs `emulation setup`).
//!
//! binfmt_misc is global to the machine: the test that removes the registrations holds an
//! exclusive lock on `$BALENA_COMPOSE_DEV_ROOT/binfmt.lock` and registers them again before it
//! lets go; the builds that need them hold it shared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::{balena_compose, docker_cli, docker_ok, write};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

fn binfmt_lock(exclusive: bool) -> File {
    let root = std::env::var("BALENA_COMPOSE_DEV_ROOT")
        .unwrap_or_else(|_| "/var/tmp/balena-compose-dev".to_owned());
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(root).join("binfmt.lock"))
        .unwrap();
    if exclusive {
        file.lock().unwrap();
    } else {
        file.lock_shared().unwrap();
    }
    file
}

fn run(args: &[&str]) -> Output {
    balena_compose().args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn status() -> Value {
    serde_json::from_str(&ok(&["emulation", "status", "--json"])).unwrap()
}

fn entry<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
}

/// A registration of somebody else's (not `setup`'s), removed on drop; and `setup` run again
/// on drop, so that the machine is left as `docker-env up` made it even when the test fails.
struct Restore {
    other: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("{BINFMT}/{}", self.other), "-1");
        let out = run(&["emulation", "setup"]);
        assert!(out.status.success(), "setup again failed");
    }
}

#[test]
fn setup_status_and_remove_leave_other_registrations_alone() {
    let _lock = binfmt_lock(true);
    ok(&["emulation", "setup"]);
    // Without the F flag and with a magic no program has: it never runs anything.
    let other = format!("qemu-bctest{}", std::process::id());
    std::fs::write(
        format!("{BINFMT}/register"),
        format!(
            ":{other}:M::\\x7fBCTEST{}::/usr/bin/qemu-aarch64-static:",
            std::process::id()
        ),
    )
    .unwrap();
    let _restore = Restore {
        other: other.clone(),
    };

    // binfmt_misc needs root: a user's `remove` says so and removes nothing.
    let as_nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("balena-compose"))
        .args(["emulation", "remove"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&as_nobody.stderr);
    assert!(!as_nobody.status.success());
    assert!(
        said.contains("balena-compose-qemu-aarch64 needs root"),
        "{said}"
    );
    assert!(entry(&status(), "balena-compose-qemu-aarch64").is_some());

    let removed = ok(&["emulation", "remove"]);
    assert!(
        removed.contains("removed balena-compose-qemu-aarch64")
            && removed.contains("removed balena-compose-qemu-arm"),
        "{removed}"
    );
    let before = status();
    assert_eq!(before["mounted"], true);
    assert!(
        before["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ours"] == false),
        "{before}"
    );
    let theirs = entry(&before, &other).expect("remove left the other registration");
    assert_eq!(theirs["usable_in_containers"], false, "{theirs}");

    let setup = ok(&["emulation", "setup"]);
    assert!(
        setup.contains("aarch64: registered balena-compose-qemu-aarch64")
            && setup.contains("armv7hf: registered balena-compose-qemu-arm")
            && setup.contains("i386: runs natively on amd64"),
        "{setup}"
    );
    let after = status();
    for (name, interpreter) in [
        (
            "balena-compose-qemu-aarch64",
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        ),
        (
            "balena-compose-qemu-arm",
            "/usr/libexec/qemu-binfmt/arm-binfmt-P",
        ),
    ] {
        let ours = entry(&after, name).unwrap_or_else(|| panic!("{name} missing: {after}"));
        assert_eq!(ours["interpreter"], interpreter, "{ours}");
        assert_eq!(ours["enabled"], true);
        assert_eq!(ours["ours"], true);
        assert_eq!(ours["usable_in_containers"], true);
        let flags = ours["flags"].as_str().unwrap();
        assert!(flags.contains('P') && flags.contains('O') && flags.contains('F'));
    }
    assert!(entry(&after, &other).is_some());
    let again = ok(&["emulation", "setup"]);
    assert!(
        again.contains("balena-compose-qemu-aarch64 already registered"),
        "{again}"
    );
    let text = ok(&["emulation", "status"]);
    assert!(
        text.contains("balena-compose-qemu-aarch64: enabled, /usr/libexec/qemu-binfmt/aarch64-binfmt-P, flags POF, usable from containers"),
        "{text}"
    );
}

/// Every file name of every layer of `image` (`docker save`).
fn layer_file_names(image: &str) -> Vec<String> {
    let out = docker_cli(&["save", image]);
    assert!(out.status.success());
    let mut names = Vec::new();
    let mut outer = tar::Archive::new(out.stdout.as_slice());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry
            .path()
            .unwrap()
            .to_string_lossy()
            .ends_with("layer.tar")
        {
            continue;
        }
        let mut layer = Vec::new();
        entry.read_to_end(&mut layer).unwrap();
        for file in tar::Archive::new(layer.as_slice()).entries().unwrap() {
            names.push(file.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
    }
    names
}

/// After `emulation setup`, aarch64 and armv7hf builds whose `RUN`s start child programs (a
/// pipe, `sleep`, a subshell) succeed through binfmt_misc, with no rewrite: the image runs as
/// its architecture and no layer holds qemu. On BuildKit (the default) and on the classic
/// builder (`DOCKER_BUILDKIT=0`).
#[test]
fn binfmt_builds_start_child_programs_and_ship_no_qemu() {
    let _lock = binfmt_lock(false);
    for classic in [false, true] {
        for (arch, base, machine) in [
            ("aarch64", "local/aarch64-busybox", "aarch64"),
            ("armv7hf", "local/armv7hf-busybox", "armv7l"),
        ] {
            binfmt_build_with_child_programs(classic, arch, base, machine);
        }
    }
}

fn binfmt_build_with_child_programs(classic: bool, arch: &str, base: &str, machine: &str) {
    let dir = tempfile::tempdir().unwrap();
    // (BuildKit gives a RUN on the host network no /etc/hostname: /etc/passwd is read.)
    write(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM {base}\nRUN sh -c 'ls / | wc -l; sleep 0; head -n 1 /etc/passwd' > /out && (uname -m > /arch) && test \"$(wc -l < /out)\" -eq 2\n"
        ),
    );
    let project = format!("binfmtchild{arch}{classic}{}", std::process::id());
    let mut command = balena_compose();
    if classic {
        command.env("DOCKER_BUILDKIT", "0");
    } else {
        command.env_remove("DOCKER_BUILDKIT");
    }
    let out = command
        .args([
            "build",
            dir.path().to_str().unwrap(),
            "-p",
            &project,
            "--arch",
            arch,
            "--emulated",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let image = format!("{project}_main");
    let built = out.status.success().then(|| {
        let inside = docker_ok(&["run", "--rm", "--network", "none", &image, "cat", "/arch"]);
        (inside, layer_file_names(&image))
    });
    let _ = docker_cli(&["rmi", &image]);
    assert!(built.is_some(), "{arch} (classic: {classic}): {stderr}");
    let (inside, names) = built.unwrap();
    assert_eq!(inside.trim(), machine);
    assert!(!stderr.contains("-execve"), "no rewrite warning: {stderr}");
    // Every step of a classic build (RUN, LABEL) gets the daemon's platform warning; shown
    // once. BuildKit gives none.
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        shown.matches("The requested image's platform").count(),
        usize::from(classic),
        "{shown}"
    );
    assert!(
        names.iter().all(|n| !n.contains("qemu")),
        "{arch}: a layer holds qemu: {names:?}"
    );
}

/// `build --arch aarch64 --emulation rewrite EXTRA…` of a one-service project whose
/// Dockerfile is `dockerfile`, named `<prefix><pid>`; the output and the image's name.
fn build_rewrite(prefix: &str, dockerfile: &str, extra: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", dockerfile);
    let project = format!("{prefix}{}", std::process::id());
    let mut args = vec![
        "build",
        dir.path().to_str().unwrap(),
        "-p",
        &project,
        "--arch",
        "aarch64",
        "--emulation",
        "rewrite",
    ];
    args.extend_from_slice(extra);
    (run(&args), format!("{project}_main"))
}

/// `--emulation rewrite` forces the rewrite even with binfmt_misc registered, and warns once,
/// before building, that its qemu cannot start child programs. On BuildKit (this daemon) qemu
/// is bind-mounted into each `RUN`: no layer of the result holds it.
#[test]
fn forced_rewrite_on_buildkit_warns_once_and_leaves_no_qemu() {
    let _lock = binfmt_lock(false);
    let (out, image) = build_rewrite(
        "forcedrewrite",
        "FROM local/aarch64-busybox\nRUN echo built > /out\nRUN echo again >> /out\n",
        &[],
    );
    let names = out.status.success().then(|| layer_file_names(&image));
    let _ = docker_cli(&["rmi", &image]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(names.is_some(), "{stderr}");
    let names = names.unwrap();
    assert!(names.iter().any(|n| n.contains("busybox")), "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("qemu")),
        "a layer holds qemu: {names:?}"
    );
    assert_eq!(
        stderr.matches("which has no -execve").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("emulation setup"), "{stderr}");
    assert!(!stderr.contains("in a layer"), "BuildKit: {stderr}");
    // The mount we added is not shown: the RUN reads as the user wrote it.
    assert!(!stdout.contains("--mount=type=bind"), "{stdout}");
}

/// `--emulation binfmt` on a daemon that does not share this machine's binfmt_misc (the TLS
/// daemon is remote) is refused before building, pointing at `emulation setup`.
#[test]
fn emulation_binfmt_is_refused_where_the_daemon_has_none() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM local/aarch64-busybox\n");
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let out = balena_compose()
        .env("DOCKER_HOST", env("BALENA_COMPOSE_TEST_TLS_HOST"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", env("BALENA_COMPOSE_TEST_TLS_CERTS"))
        .args(["build", dir.path().to_str().unwrap(), "--arch", "aarch64"])
        .args(["--emulation", "binfmt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--emulation binfmt") && stderr.contains("emulation setup --arch aarch64"),
        "{stderr}"
    );
}

/// The rewrite of a two-stage Dockerfile whose second stage is `FROM` the first and copies
/// from it builds on a cold cache (`--nocache`; the daemon is shared, so nothing is pruned),
/// with qemu in no layer (BuildKit mounts it; on the classic builder it is copied into the
/// first stage only, see the emulate crate's transpose tests, for moby/moby#37965).
#[test]
fn a_two_stage_rewrite_builds_on_a_cold_cache() {
    let _lock = binfmt_lock(false);
    let (out, image) = build_rewrite(
        "twostage",
        "FROM local/aarch64-busybox AS base\nRUN uname -m > /arch\nFROM base\nRUN echo second > /second\nCOPY --chown=1:1 --from=base /arch /arch2\n",
        &["--nocache"],
    );
    let built = out.status.success().then(|| {
        let arch2 = docker_ok(&["run", "--rm", "--network", "none", &image, "cat", "/arch2"]);
        let history = docker_ok(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            &image,
        ]);
        (arch2, history)
    });
    let _ = docker_cli(&["rmi", &image]);
    assert!(built.is_some(), "{}", String::from_utf8_lossy(&out.stderr));
    let (arch2, history) = built.unwrap();
    assert_eq!(arch2.trim(), "aarch64");
    let copies = history
        .lines()
        .filter(|step| step.contains("COPY") && step.contains("qemu-aarch64-static"))
        .count();
    assert_eq!(copies, 0, "qemu is in no layer: {history}");
}
