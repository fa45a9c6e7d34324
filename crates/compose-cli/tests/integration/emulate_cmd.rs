//! `balena-compose emulate`: a build context rewritten for qemu, from a directory, a tar file
//! or standard input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use assert_cmd::Command;

const DOCKERFILE: &str =
    "FROM local/aarch64-busybox\nSHELL [\"/bin/ash\", \"-c\"]\nRUN uname -m > /arch\n";
const QEMU: &[u8] = b"\x7fELF pretend qemu";

fn cli() -> Command {
    Command::cargo_bin("balena-compose").unwrap()
}

/// Path → (mode, bytes) of every entry of a tar.
fn entries(tar_bytes: &[u8]) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mode = e.header().mode().unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, (mode, data))
        })
        .collect()
}

fn context(root: &Path) {
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(root.join("src/main.sh"), "echo hi\n").unwrap();
    std::fs::write(root.join("build.log"), "noise\n").unwrap();
    std::fs::write(root.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(root.join("qemu"), QEMU).unwrap();
}

fn check(tar_bytes: &[u8]) {
    let got = entries(tar_bytes);
    let (mode, qemu) = &got[".balena/qemu-aarch64-static"];
    assert_eq!((*mode & 0o777, qemu.as_slice()), (0o755, QEMU));
    assert_eq!(
        String::from_utf8(got["Dockerfile"].1.clone()).unwrap(),
        "FROM local/aarch64-busybox\n\
         COPY [\".balena/qemu-aarch64-static\",\"/usr/bin/qemu-aarch64-static\"]\n\
         SHELL [\"/bin/ash\", \"-c\"]\n\
         RUN [\"/usr/bin/qemu-aarch64-static\",\"-execve\",\"/bin/ash\",\"-c\",\"uname -m > /arch\"]\n"
    );
    assert_eq!(got["src/main.sh"].1, b"echo hi\n");
    assert!(!got.contains_key("build.log"), "the .dockerignore applies");
}

#[test]
fn rewrites_a_directory_context_into_a_tar_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    context(&ctx);
    let out = dir.path().join("out.tar");
    cli()
        .arg("emulate")
        .arg(&ctx)
        .args(["--arch", "aarch64", "--qemu"])
        .arg(ctx.join("qemu"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success()
        .stdout("");
    check(&std::fs::read(&out).unwrap());
}

#[test]
fn streams_a_tar_from_stdin_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    context(&ctx);
    let input = test_support::tar_of_dir(&ctx);
    let out = cli()
        .args(["emulate", "-", "--arch", "aarch64", "--qemu"])
        .arg(ctx.join("qemu"))
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&out.stdout);
}

#[test]
fn a_missing_dockerfile_or_qemu_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    context(&ctx);
    let out = dir.path().join("out.tar");
    cli()
        .arg("emulate")
        .arg(&ctx)
        .args([
            "--arch",
            "aarch64",
            "--dockerfile",
            "Dockerfile.arm",
            "--qemu",
        ])
        .arg(ctx.join("qemu"))
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "has no Dockerfile \"Dockerfile.arm\"",
        ));
    cli()
        .arg("emulate")
        .arg(&ctx)
        .args(["--arch", "aarch64", "--qemu", "/nonexistent/qemu", "-o"])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("/nonexistent/qemu is not a file"));
    assert!(!out.exists());
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left beside the output");
}

#[test]
fn a_dockerfile_the_lexer_rejects_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    context(&ctx);
    std::fs::write(ctx.join("Dockerfile"), "FROM x\nSHELL sh -c\n").unwrap();
    cli()
        .arg("emulate")
        .arg(&ctx)
        .args(["--arch", "armv7hf", "--qemu"])
        .arg(ctx.join("qemu"))
        .args(["-o", "/dev/null"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("Dockerfile line 2"));
}
