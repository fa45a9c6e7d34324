//! `balena-compose emulation setup|status|remove` on this machine's binfmt_misc, and foreign
//! builds through it and through the rewrite, on the private daemon of `scripts/docker-env`
//! (whose `up` runs `emulation setup`).
//!
//! binfmt_misc is global to the machine: the test that removes the registrations holds an
//! exclusive [`binfmt_lock`] and registers them again before it lets go; the builds that need
//! them hold it shared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::Read as _;
use std::process::Output;

use serde_json::Value;
use support::{balena_compose, binfmt_lock, docker_cli, docker_ok, write};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

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
    assert!(!stderr.contains("MB) in a layer"), "binfmt: {stderr}");
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

/// Which builder a rewrite build runs on: the daemon's BuildKit, or the classic builder
/// forced with docker's own switch, `DOCKER_BUILDKIT=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builder {
    BuildKit,
    Classic,
}

/// `build PROJECT -p <prefix><pid> --arch aarch64 --emulation rewrite` on `builder`; the output.
fn build_project_rewrite(dir: &std::path::Path, project: &str, builder: Builder) -> Output {
    let mut cmd = balena_compose();
    match builder {
        Builder::BuildKit => cmd.env_remove("DOCKER_BUILDKIT"),
        Builder::Classic => cmd.env("DOCKER_BUILDKIT", "0"),
    };
    cmd.args(["build", dir.to_str().unwrap(), "-p", project])
        .args(["--arch", "aarch64", "--emulation", "rewrite"])
        .output()
        .unwrap()
}

/// A rewrite build of a one-service project whose Dockerfile is `dockerfile`, named
/// `<prefix><pid>`, on `builder`; the output and the image's name.
fn build_rewrite(prefix: &str, dockerfile: &str, builder: Builder) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", dockerfile);
    let project = format!("{prefix}{}", std::process::id());
    let out = build_project_rewrite(dir.path(), &project, builder);
    (out, format!("{project}_main"))
}

/// What the classic builder's warning says of the qemu its images carry: its size, as the
/// warning shows it (megabytes with one decimal).
fn carries_qemu_warning() -> String {
    let size = std::fs::metadata("/usr/bin/qemu-aarch64-static")
        .unwrap()
        .len();
    #[allow(clippy::cast_precision_loss)]
    let megabytes = size as f64 / 1_000_000.0;
    format!("/usr/bin/qemu-aarch64-static ({megabytes:.1} MB) in a layer")
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
        Builder::BuildKit,
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
    assert!(!stderr.contains("MB) in a layer"), "BuildKit: {stderr}");
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

/// moby/moby#37965 on the classic builder: a `COPY` of a file the stage already has (the
/// rewrite's qemu, re-copied into a stage `FROM` an earlier one) followed by a `COPY
/// --from=<stage>` fails with "failed to get layer … layer does not exist" on a cold cache, and
/// passes on a second try. The rewrite copies qemu only into stages that do not inherit it.
///
/// The cache is made cold for this build alone (the daemon is shared, so nothing is pruned): a
/// marker unique to the run in the first stage's `RUN`, so no layer after it can come from the
/// cache. With the copy into inheriting stages planted back (transpose.rs), this test failed
/// on the classic builder at `COPY --chown=1:1 --from=base /arch /arch2` with "failed to get
/// layer sha256:…: layer does not exist" (2026-12-06, Docker 20.10.24, vfs): the bug
/// reproduces, and only when that `COPY` directly follows the re-copy (a `RUN` between them
/// hides it). BuildKit (qemu bind-mounted, never copied) builds it too.
#[test]
fn a_two_stage_rewrite_builds_on_a_cold_cache() {
    let _lock = binfmt_lock(false);
    for builder in [Builder::Classic, Builder::BuildKit] {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let (out, image) = build_rewrite(
            &format!("twostage{builder:?}").to_lowercase(),
            &format!(
                "FROM local/aarch64-busybox AS base\nRUN echo {nanos} > /marker && uname -m > /arch\nFROM base\nCOPY --chown=1:1 --from=base /arch /arch2\nRUN echo second > /second\n"
            ),
            builder,
        );
        let built = out.status.success().then(|| {
            let arch2 = docker_ok(&["run", "--rm", "--network", "none", &image, "cat", "/arch2"]);
            (arch2, layer_file_names(&image))
        });
        let _ = docker_cli(&["rmi", &image]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(built.is_some(), "{builder:?}: {stderr}");
        let (arch2, names) = built.unwrap();
        assert_eq!(arch2.trim(), "aarch64", "{builder:?}");
        let qemu_files = names
            .iter()
            .filter(|n| n.ends_with("qemu-aarch64-static"))
            .count();
        // The classic builder copies qemu once, into the first stage; BuildKit mounts it.
        let expected = usize::from(builder == Builder::Classic);
        assert_eq!(qemu_files, expected, "{builder:?}: {names:?}");
    }
}

/// On the classic builder the rewrite's images carry qemu: the build says so once, before it
/// starts, with qemu's size (not once per service or per step), and it is true. BuildKit and
/// binfmt_misc images carry none, and those builds say nothing of it (see the tests above).
#[test]
fn the_classic_builder_says_once_that_the_images_carry_qemu() {
    let _lock = binfmt_lock(false);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  one:\n    build: ./one\n  two:\n    build: ./two\n",
    );
    for service in ["one", "two"] {
        write(
            dir.path(),
            &format!("{service}/Dockerfile"),
            &format!("FROM local/aarch64-busybox\nRUN echo {service} > /name\n"),
        );
    }
    let project = format!("carriesqemu{}", std::process::id());
    let out = build_project_rewrite(dir.path(), &project, Builder::Classic);
    let images = ["one", "two"].map(|service| format!("{project}_{service}"));
    let names = out.status.success().then(|| {
        images
            .iter()
            .map(|i| layer_file_names(i))
            .collect::<Vec<_>>()
    });
    for image in &images {
        let _ = docker_cli(&["rmi", image]);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(names.is_some(), "{stderr}");
    let shown = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(shown.matches(&carries_qemu_warning()).count(), 1, "{shown}");
    assert!(shown.contains("DOCKER_BUILDKIT=0"), "{shown}");
    for (image, names) in images.iter().zip(names.unwrap()) {
        assert!(
            names.iter().any(|n| n == "usr/bin/qemu-aarch64-static"),
            "{image}: {names:?}"
        );
    }
}
