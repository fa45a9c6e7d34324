//! `balena-compose resolve`: contexts written exactly as `build` sends them; the emulated one
//! builds with plain `docker build` on a daemon without binfmt_misc.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use test_support::{tar_entries, tar_of_dir, write};

fn sample(root: &Path) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  app:\n    build: ./app\n  db:\n    image: redis:7\n",
    );
    write(
        root,
        "app/Dockerfile.template",
        "FROM local/%%BALENA_ARCH%%-busybox\nRUN uname -m > /arch\n",
    );
    write(root, "app/notes.md", "ignored\n");
    write(root, ".dockerignore", "**/*.md\n");
    write(
        root,
        ".balena/balena.yml",
        "build-variables: {global: [A=1]}\n",
    );
}

#[test]
fn writes_contexts_and_lists_external_images_as_json() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out_dir = dir.path().join("out");
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args([
            "resolve",
            dir.path().to_str().unwrap(),
            "--arch",
            "amd64",
            "--json",
            "-o",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = report["services"].as_array().unwrap();
    assert_eq!(services[0]["service"], "app");
    assert_eq!(services[0]["resolver"], "Dockerfile.template");
    assert_eq!(services[0]["dockerfile"], "Dockerfile");
    assert_eq!(services[1]["service"], "db");
    assert_eq!(services[1]["image"], "redis:7");
    assert!(!out_dir.join("db.tar").exists());

    let entries = tar_entries(&out_dir.join("app.tar"));
    assert_eq!(
        String::from_utf8_lossy(&entries["Dockerfile"]),
        "FROM local/amd64-busybox\nRUN uname -m > /arch\n"
    );
    assert!(
        !entries.contains_key("notes.md"),
        "the root .dockerignore applies"
    );
    assert!(
        !entries.keys().any(|k| k.starts_with(".balena")),
        "metadata stays out"
    );
    let written = std::fs::metadata(out_dir.join("app.tar")).unwrap();
    assert_eq!(
        services[0]["size"],
        written.len(),
        "the size reported is the tar's"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        written.permissions().mode() & 0o777,
        0o644,
        "an ordinary file, not the temporary file's 0600"
    );
}

#[test]
fn dry_run_streams_every_context_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let resolve = |extra: &[&str]| {
        let out = Command::cargo_bin("balena-compose")
            .unwrap()
            .current_dir(dir.path())
            .args(["resolve", ".", "--arch", "amd64", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let before: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .map(|e| e.unwrap().path().to_owned())
        .collect();
    let dry = resolve(&["--dry-run"]);
    let after: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .map(|e| e.unwrap().path().to_owned())
        .collect();
    assert_eq!(before, after, "--dry-run writes nothing");
    assert!(dry["services"][0].get("context").is_none());

    let written = resolve(&["-o", "out"]);
    let tar_len = std::fs::metadata(dir.path().join("out/app.tar"))
        .unwrap()
        .len();
    assert!(tar_len > 1024);
    assert_eq!(dry["services"][0]["size"], tar_len);
    assert_eq!(written["services"][0]["size"], tar_len);
    assert_eq!(dry["services"][0]["resolver"], "Dockerfile.template");

    // Neither an output directory nor --dry-run: a usage error, nothing done.
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .current_dir(dir.path())
        .args(["resolve", ".", "--arch", "amd64"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output-dir"));
}

#[test]
fn a_tar_on_stdin_gives_the_same_context_as_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let bytes = tar_of_dir(dir.path());

    let from_dir = dir.path().join("out-dir");
    let from_stdin = tempfile::tempdir().unwrap();
    let ok = Command::cargo_bin("balena-compose")
        .unwrap()
        .args([
            "resolve",
            dir.path().to_str().unwrap(),
            "--arch",
            "amd64",
            "-o",
        ])
        .arg(&from_dir)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("balena-compose"))
        .args(["resolve", "-", "--arch", "amd64", "-o"])
        .arg(from_stdin.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = tar_entries(&from_dir.join("app.tar"));
    let b = tar_entries(&from_stdin.path().join("app.tar"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert_eq!(a["Dockerfile"], b["Dockerfile"]);
}

/// Runs `resolve` on a project tar; returns the exit status and stderr.
fn resolve_tar(tar: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .arg("resolve")
        .arg(tar)
        .args(["--arch", "amd64"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_huge_pax_path_is_refused_naming_the_entry_cut_short() {
    // 50 MiB of name: once held several times over (1.37 GB of memory for 300 MiB); now
    // refused from a prefix of it, the message quoting only that prefix.
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(".", dir.path()).unwrap();
    let name = vec![b'n'; 50 << 20];
    tar.append_pax_extensions([("path", &name[..])]).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(1);
    header.set_cksum();
    tar.append_data(&mut header, "placeholder", &b"x"[..])
        .unwrap();
    let archive = dir.path().join("project.tar");
    std::fs::write(&archive, tar.into_inner().unwrap()).unwrap();
    let (ok, stderr) = resolve_tar(&archive, &["--dry-run"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("pax record \"path\" is 52428800 bytes long, over the limit of 4096"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"nnnnnnnn") && stderr.contains("n…\""),
        "{stderr}"
    );
    assert!(stderr.len() < 400, "{} bytes of error", stderr.len());
}

#[test]
fn sparse_files_resolve_to_their_real_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    sample(&project);
    // 2 MiB, holes but for three runs of data: GNU tar stores only those runs.
    let size = 2 << 20;
    let mut expected = vec![0; size];
    let file = std::fs::File::create(project.join("app/sparse")).unwrap();
    file.set_len(size as u64).unwrap();
    for (at, data) in [(0, &b"start"[..]), (1 << 20, b"middle"), (size - 3, b"end")] {
        expected[at..at + data.len()].copy_from_slice(data);
        std::os::unix::fs::FileExt::write_all_at(&file, data, at as u64).unwrap();
    }
    for format in [
        &["--format=gnu"][..],
        &["--format=posix", "--sparse-version=0.0"],
        &["--format=posix", "--sparse-version=0.1"],
        &["--format=posix", "--sparse-version=1.0"],
    ] {
        let archive = dir.path().join("project.tar");
        let made = std::process::Command::new("tar")
            .args(["--sparse", "-cf"])
            .arg(&archive)
            .args(format)
            .arg("-C")
            .arg(&project)
            .arg(".")
            .status()
            .unwrap();
        assert!(made.success());
        let out = dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let (ok, stderr) = resolve_tar(&archive, &["-o", out.to_str().unwrap()]);
        assert!(ok, "{format:?}: {stderr}");
        let entries = tar_entries(&out.join("app.tar"));
        assert!(
            entries.keys().all(|k| !k.contains("GNUSparseFile")),
            "{format:?}: {:?}",
            entries.keys()
        );
        assert!(entries["sparse"] == expected, "{format:?}: different bytes");
    }
}

#[test]
fn a_gzip_compressed_tar_is_read_as_a_file_and_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    sample(&project);
    let archive = dir.path().join("project.tar.gz");
    let made = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&project)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    let from_dir = dir.path().join("from-dir");
    let from_file = dir.path().join("from-file");
    let from_stdin = dir.path().join("from-stdin");
    let (ok, stderr) = resolve_tar(&project, &["-o", from_dir.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = resolve_tar(&archive, &["-o", from_file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args(["resolve", "-", "--arch", "amd64", "-o"])
        .arg(&from_stdin)
        .pipe_stdin(&archive)
        .unwrap()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = tar_entries(&from_dir.join("app.tar"));
    assert!(expected.contains_key("Dockerfile"));
    assert_eq!(tar_entries(&from_file.join("app.tar")), expected);
    assert_eq!(tar_entries(&from_stdin.join("app.tar")), expected);
}

#[test]
fn unknown_arch_is_an_error_listing_the_valid_ones() {
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args(["resolve", ".", "--arch", "mips", "-o", "/tmp/never-written"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"mips\""), "{stderr}");
    assert!(
        stderr.contains("amd64, aarch64, armv7hf, i386, rpi"),
        "{stderr}"
    );
    assert!(!Path::new("/tmp/never-written").exists());
}

/// The acceptance test: a template resolved for aarch64 with --emulated, built from
/// the written context with plain `docker build` (the daemon has no binfmt_misc), runs its
/// RUN under qemu and records aarch64.
#[test]
fn emulated_context_builds_with_plain_docker_build() {
    let host = std::env::var("DOCKER_HOST").expect(
        "DOCKER_HOST is not set: run the suite through scripts/test (it starts the private daemon)",
    );
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out_dir = dir.path().join("out");
    let out = Command::cargo_bin("balena-compose")
        .unwrap()
        .args([
            "resolve",
            dir.path().to_str().unwrap(),
            "--arch",
            "aarch64",
            "--emulated",
            "-o",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = tar_entries(&out_dir.join("app.tar"));
    assert!(
        entries.contains_key(".balena/qemu-aarch64-static"),
        "qemu is in the context"
    );
    let dockerfile = String::from_utf8_lossy(&entries["Dockerfile"]).into_owned();
    assert!(
        dockerfile.starts_with("FROM local/aarch64-busybox\n"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("qemu-aarch64-static"), "{dockerfile}");

    let tag = format!("resolve-emulated-{}", std::process::id());
    let build = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", &host)
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(std::fs::File::open(out_dir.join("app.tar")).unwrap())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = std::process::Command::new("/usr/bin/docker")
        .env("DOCKER_HOST", &host)
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/usr/bin/qemu-aarch64-static",
            &tag,
            "/bin/busybox",
            "cat",
            "/arch",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "aarch64");
}

fn resolve_cmd(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("balena-compose")
        .unwrap()
        .arg("resolve")
        .args(args)
        .output()
        .unwrap()
}

/// `resolve` never looks at the host: `-d raspberrypi4-64` alone means aarch64, and without
/// --emulated the context is the plain one a native ARM daemon builds (no qemu, no rewrite),
/// on this amd64 machine too.
#[test]
fn device_type_alone_writes_the_plain_context_of_its_arch() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    write(
        dir.path(),
        "app/Dockerfile.raspberrypi4-64",
        "FROM local/%%BALENA_ARCH%%-busybox\nLABEL machine=%%BALENA_MACHINE_NAME%%\nRUN uname -m > /arch\n",
    );
    let out_dir = dir.path().join("out");
    let project = dir.path().to_str().unwrap();
    let out = resolve_cmd(&[
        project,
        "-d",
        "raspberrypi4-64",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = tar_entries(&out_dir.join("app.tar"));
    assert_eq!(
        String::from_utf8_lossy(&entries["Dockerfile"]),
        "FROM local/aarch64-busybox\nLABEL machine=raspberrypi4-64\nRUN uname -m > /arch\n"
    );
    assert!(
        !entries.keys().any(|k| k.contains("qemu")),
        "no qemu in a plain context: {:?}",
        entries.keys()
    );
}

/// `--arch amd64 -d raspberrypi4-64` names both in its error; an unknown device type names
/// the closest slugs; neither writes anything.
#[test]
fn device_type_and_arch_must_agree_and_be_known() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out_dir = dir.path().join("out");
    let project = dir.path().to_str().unwrap();
    let out_arg = out_dir.to_str().unwrap();
    let out = resolve_cmd(&[
        project,
        "--arch",
        "amd64",
        "-d",
        "raspberrypi4-64",
        "-o",
        out_arg,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("amd64")
            && stderr.contains("raspberrypi4-64")
            && stderr.contains("aarch64"),
        "{stderr}"
    );
    let out = resolve_cmd(&[project, "-d", "raspbery-pi4-64", "-o", out_arg]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown device type \"raspbery-pi4-64\"")
            && stderr.contains("raspberrypi4-64"),
        "{stderr}"
    );
    // An alias is its slug.
    let out = resolve_cmd(&[project, "-d", "apalis-imx6", "--json", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out_dir.exists());
}

/// A tar project's compose file may name other files of the project — `extends.file`,
/// `include`, the `.env` that interpolates them — and they are read out of the archive, as
/// they are from a directory (they used to be looked up in an empty scratch directory, so
/// such a project resolved only as a directory).
#[test]
fn a_tar_project_reads_extends_include_and_env_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    write(
        &root,
        "docker-compose.yml",
        "include:\n  - inc/compose.yml\nservices:\n  web:\n    extends: {file: common.yml, service: base}\n",
    );
    write(&root, ".env", "WEBDIR=web\n");
    write(
        &root,
        "common.yml",
        "services:\n  base:\n    build: ./${WEBDIR}\n",
    );
    write(&root, "web/Dockerfile", "FROM busybox\nLABEL from=web\n");
    write(
        &root,
        "inc/compose.yml",
        "services:\n  worker:\n    build: ./worker\n",
    );
    write(
        &root,
        "inc/worker/Dockerfile",
        "FROM busybox\nLABEL from=worker\n",
    );
    let tar_path = dir.path().join("project.tar");
    std::fs::write(&tar_path, tar_of_dir(&root)).unwrap();

    for (project, out) in [(&root, "from-dir"), (&tar_path, "from-tar")] {
        let out_dir = dir.path().join(out);
        let output = Command::cargo_bin("balena-compose")
            .unwrap()
            .arg("resolve")
            .arg(project)
            .args(["--arch", "amd64", "-o"])
            .arg(&out_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{out}: {stderr}");
        let web = tar_entries(&out_dir.join("web.tar"));
        assert_eq!(
            web["Dockerfile"], b"FROM busybox\nLABEL from=web\n",
            "{out}"
        );
        let worker = tar_entries(&out_dir.join("worker.tar"));
        assert_eq!(
            worker["Dockerfile"], b"FROM busybox\nLABEL from=worker\n",
            "{out}"
        );
    }
}

/// A context without a Dockerfile: the error names the service, the files looked for (the
/// device type's, the architecture's, the template, the plain one) and the context, and
/// nothing is written.
#[test]
fn a_missing_dockerfile_lists_what_was_looked_for_and_where() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  app:\n    build: ./app\n",
    );
    write(dir.path(), "app/README", "no Dockerfile here\n");
    let out_dir = dir.path().join("out");
    let out = resolve_cmd(&[
        dir.path().to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "-d",
        "intel-nuc",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: service \"app\": Could not find a Dockerfile for this service (looked for \
         Dockerfile.intel-nuc, Dockerfile.amd64, Dockerfile.template, Dockerfile) in the build \
         context \"app\" of the project"
    );
    assert!(!out_dir.join("app.tar").exists());
}
