//! Projects the balena CLI accepts, accepted here too (issue #14, "Accept what the balena CLI
//! accepts"): built end to end through the binary on the private daemon of
//! `scripts/docker-env`. Each test names the project shape it stands for; where the reference
//! itself gets it wrong, the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;
use std::process::Output;

use support::{balena_compose, docker_cli, docker_ok, json_lines, unique, write};
use test_support::tar_of;

/// `balena-compose ARGS` in `cwd`.
fn run_in_dir(cwd: &Path, args: &[&str]) -> Output {
    balena_compose()
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cat FILE` in a container of the amd64 `image`.
fn cat_in(image: &str, file: &str) -> String {
    docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        image,
        "cat",
        file,
    ])
}

/// Removes the images when the test ends, passed or not.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker_cli(&["rmi", "-f", image]);
        }
    }
}

/// The reference's `ArchPriority` project: only `Dockerfile.<arch>` and
/// `Dockerfile.<device-type>` files, no compose file and no plain `Dockerfile`. It is one
/// service, `main`, built from the file for the target (device type over arch), both as a
/// tar and as a directory.
#[test]
fn arch_and_device_type_dockerfiles_alone_make_a_single_service_project() {
    let dir = tempfile::tempdir().unwrap();
    let project = unique("bcarchonly");
    let _images = Images(vec![
        format!("{project}tar_main"),
        format!("{project}dir_main"),
    ]);
    let files = [
        (
            "Dockerfile.aarch64",
            "FROM local/aarch64-busybox\nRUN echo aarch64 > /which\n",
        ),
        (
            "Dockerfile.amd64",
            "FROM local/amd64-busybox\nRUN echo amd64 > /which\n",
        ),
        (
            "Dockerfile.intel-nuc",
            "FROM local/amd64-busybox\nRUN echo intel-nuc > /which\n",
        ),
    ];
    let tar = dir.path().join("project.tar");
    std::fs::write(&tar, tar_of(&files)).unwrap();
    let out = run_in_dir(
        dir.path(),
        &[
            "build",
            "project.tar",
            "--arch",
            "amd64",
            "-p",
            &format!("{project}tar"),
        ],
    );
    assert_ok(&out);
    assert_eq!(cat_in(&format!("{project}tar_main"), "/which"), "amd64");

    let root = dir.path().join("dir");
    for (path, contents) in files {
        write(&root, path, contents);
    }
    let out = run_in_dir(
        &root,
        &[
            "build",
            "--arch",
            "amd64",
            "-d",
            "intel-nuc",
            "-p",
            &format!("{project}dir"),
        ],
    );
    assert_ok(&out);
    assert_eq!(cat_in(&format!("{project}dir_main"), "/which"), "intel-nuc");
}

/// `%%BALENA_APP_NAME%%` is the project name as given, case and all (the reference's
/// `projectName`); only the image name is made a valid repository name.
#[test]
fn app_name_keeps_the_given_case() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile.template",
        "FROM local/%%BALENA_ARCH%%-busybox\nRUN echo '%%BALENA_APP_NAME%%' > /app-name\n",
    );
    let given = format!("My App+X{}", std::process::id());
    let image = format!("my_app_x{}_main", std::process::id());
    let _images = Images(vec![image.clone()]);
    let out = run_in_dir(dir.path(), &["build", "--arch", "amd64", "-p", &given]);
    assert_ok(&out);
    assert_eq!(cat_in(&image, "/app-name"), given);
}

/// `-f sub/docker-compose.yml` makes `sub` the project directory for `build` as it does for
/// `config` (docker compose's rule): the contexts resolve against it, not the working
/// directory.
#[test]
fn a_compose_file_elsewhere_is_the_project_directory_for_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "sub/docker-compose.yml",
        "services:\n  app:\n    build: ./app\n",
    );
    write(
        root,
        "sub/app/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo sub > /which\n",
    );
    // What the working directory would wrongly supply.
    write(
        root,
        "app/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo cwd > /which\n",
    );
    let project = unique("bcfdir");
    let image = format!("{project}_app");
    let _images = Images(vec![image.clone()]);
    let out = run_in_dir(
        root,
        &[
            "build",
            "-f",
            "sub/docker-compose.yml",
            "--arch",
            "amd64",
            "-p",
            &project,
        ],
    );
    assert_ok(&out);
    assert_eq!(cat_in(&image, "/which"), "sub");
}

/// A stage `FROM --platform=$BUILDPLATFORM` runs on the build host (awesome-compose's Go and
/// Rust projects cross-compile this way): under emulation it is not transposed, and the
/// classic builder, which does not define `BUILDPLATFORM`, gets the host's platform spelled
/// out. The reference transposes it (and breaks) too.
#[test]
fn build_platform_stages_run_on_the_build_host_under_emulation() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile",
        "FROM --platform=$BUILDPLATFORM local/amd64-busybox AS builder\n\
         RUN uname -m > /built-on\n\
         FROM local/aarch64-busybox\n\
         COPY --from=builder /built-on /built-on\n\
         RUN echo target > /target\n",
    );
    let project = unique("bcbuildplat");
    let image = format!("{project}_main");
    let _images = Images(vec![image.clone()]);
    let binfmt = support::binfmt_lock(false);
    let out = run_in_dir(
        dir.path(),
        &["build", "--arch", "aarch64", "--emulated", "-p", &project],
    );
    drop(binfmt);
    assert_ok(&out);
    let built_on = docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "/usr/bin/qemu-aarch64-static:/usr/bin/qemu-aarch64-static:ro",
        "--entrypoint",
        "/usr/bin/qemu-aarch64-static",
        &image,
        "/bin/busybox",
        "cat",
        "/built-on",
        "/target",
    ]);
    assert_eq!(built_on, "x86_64\ntarget");
}

/// Bind mounts of only some journal paths are dropped with a warning that journal-logs needs
/// all three, as the reference drops them (silently); they were an error.
#[test]
fn partial_journal_mounts_are_dropped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  logger:\n    build: .\n    volumes:\n      - /var/log/journal:/var/log/journal:ro\n      - /etc/machine-id:/etc/machine-id:ro\n",
    );
    write(dir.path(), "Dockerfile", "FROM local/amd64-busybox\n");
    let project = unique("bcjournal");
    let _images = Images(vec![format!("{project}_logger")]);
    let out = run_in_dir(dir.path(), &["build", "--arch", "amd64", "-p", &project]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("service \"logger\": the bind mounts of /var/log/journal, /etc/machine-id are ignored: the journal-logs feature needs all of /var/log/journal, /run/log/journal, /etc/machine-id"),
        "{stderr}"
    );
    let config = run_in_dir(dir.path(), &["config", "--format", "json"]);
    assert_ok(&config);
    let printed: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(printed["services"]["logger"].get("volumes"), None);
    assert_eq!(printed["services"]["logger"].get("labels"), None);
}

/// The warnings the reference prints are printed: `container_name` and `expose` dropped,
/// fields that need a newer supervisor, and the project's own (a fifo skipped, a duplicate
/// tar entry), on stderr as `warning: …` and as `{"event":"warning"}` with `--json`.
#[test]
fn the_reference_warnings_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dir");
    let compose = "services:\n  web:\n    build: .\n    container_name: web\n    expose: [\"80\"]\n    cpus: 0.5\n";
    let dockerfile = "FROM local/amd64-busybox\n";
    write(&root, "docker-compose.yml", compose);
    write(&root, "Dockerfile", dockerfile);
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("a-fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let project = unique("bcwarn");
    let _images = Images(vec![format!("{project}_web"), format!("{project}tar_web")]);

    let out = run_in_dir(&root, &["build", "--arch", "amd64", "-p", &project]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "service \"web\": container_name is not supported on balena and is ignored",
        "service \"web\": expose is not supported on balena and is ignored",
        "service \"web\": uses compose fields that may not be supported on legacy Supervisor versions",
        "warning: project: \"a-fifo\": skipped special file entry",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }

    let tar = dir.path().join("project.tar");
    std::fs::write(
        &tar,
        tar_of(&[
            ("docker-compose.yml", compose),
            ("Dockerfile", "FROM local/amd64-busybox\nRUN false\n"),
            ("Dockerfile", dockerfile),
        ]),
    )
    .unwrap();
    let out = run_in_dir(
        dir.path(),
        &[
            "build",
            "project.tar",
            "--arch",
            "amd64",
            "-p",
            &format!("{project}tar"),
            "--json",
        ],
    );
    assert_ok(&out);
    let warnings: Vec<String> = json_lines(&out.stdout)
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w == "project: \"Dockerfile\": occurs more than once; the last one is used"),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.ends_with(
            "service \"web\": container_name is not supported on balena and is ignored"
        )),
        "{warnings:?}"
    );
}

/// A service with only `image:` uses the daemon's copy when it has one (docker compose's
/// default pull policy), so an image that exists only locally builds offline; `--pull` pulls
/// it, and fails for such an image. The reference always pulls.
#[test]
fn a_local_image_only_service_is_not_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let local = format!("local/{}:v1", unique("bclocalonly"));
    docker_ok(&["tag", "local/amd64-busybox", &local]);
    let project = unique("bclocal");
    let _images = Images(vec![local.clone()]);
    write(
        dir.path(),
        "docker-compose.yml",
        &format!("services:\n  tool:\n    image: {local}\n"),
    );
    let out = run_in_dir(
        dir.path(),
        &["build", "--arch", "amd64", "-p", &project, "--json"],
    );
    assert_ok(&out);
    let summary = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(summary["services"][0]["image"], local.as_str(), "{summary}");
    assert_eq!(summary["services"][0]["ok"], true, "{summary}");

    let out = run_in_dir(
        dir.path(),
        &["build", "--arch", "amd64", "-p", &project, "--pull"],
    );
    assert!(
        !out.status.success(),
        "--pull must pull the image, which exists nowhere"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&local) && stderr.contains("pull"),
        "{stderr}"
    );
}

/// `include:` of a file defining a resource identical to one already defined is not a
/// conflict (compose-go skips it; the balena CLI's `compose-frag-ext-includes` project
/// builds); a different definition still is.
#[test]
fn identical_included_definitions_are_not_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let shared = "services:\n  app:\n    build: ./app\n    networks: [backend]\nnetworks:\n  backend: {}\nvolumes:\n  data: {}\n";
    write(root, "common.yml", shared);
    write(
        root,
        "docker-compose.yml",
        &format!("include:\n  - common.yml\n{shared}"),
    );
    write(
        root,
        "app/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo included > /which\n",
    );
    let project = unique("bcinclude");
    let image = format!("{project}_app");
    let _images = Images(vec![image.clone()]);
    let out = run_in_dir(root, &["build", "--arch", "amd64", "-p", &project]);
    assert_ok(&out);
    assert_eq!(cat_in(&image, "/which"), "included");

    write(
        root,
        "docker-compose.yml",
        &format!(
            "include:\n  - common.yml\n{}",
            shared.replace("backend: {}", "backend: {internal: true}")
        ),
    );
    let out = run_in_dir(root, &["build", "--arch", "amd64", "-p", &project]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("docker-compose.yml")
            && stderr.contains("networks.backend conflicts with imported resource"),
        "{stderr}"
    );
}

/// A symlink in a directory project to a file inside the project, even outside the service's
/// context, is sent as a regular file with the target's content (the balena CLI's
/// `dockerignore2` project; projects share files between services this way). A link to a file
/// outside the project is an error naming the link. A tar project keeps its symlinks.
#[test]
fn symlinks_to_project_files_are_sent_as_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    write(
        &root,
        "docker-compose.yml",
        "services:\n  a:\n    build: ./a\n",
    );
    write(&root, "shared/config.txt", "shared config\n");
    write(
        &root,
        "a/Dockerfile",
        "FROM local/amd64-busybox\nCOPY config.txt /config.txt\nRUN test -f /config.txt && ! test -L /config.txt\n",
    );
    std::os::unix::fs::symlink("../shared/config.txt", root.join("a/config.txt")).unwrap();
    let project = unique("bcsymlink");
    let image = format!("{project}_a");
    let _images = Images(vec![image.clone()]);
    let out = run_in_dir(&root, &["build", "--arch", "amd64", "-p", &project]);
    assert_ok(&out);
    assert_eq!(cat_in(&image, "/config.txt"), "shared config");

    write(dir.path(), "outside.txt", "not the project's\n");
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("a/outside.txt")).unwrap();
    let out = run_in_dir(&root, &["build", "--arch", "amd64", "-p", &project]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"a/outside.txt\""), "{stderr}");

    // A tar project: the link stays a link.
    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in [
        ("Dockerfile", "FROM local/amd64-busybox\nCOPY . /app\n"),
        ("real.txt", "real\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, contents.as_bytes())
            .unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    tar.append_link(&mut header, "link.txt", "real.txt")
        .unwrap();
    std::fs::write(dir.path().join("p.tar"), tar.into_inner().unwrap()).unwrap();
    let out_dir = dir.path().join("out");
    let out = run_in_dir(
        dir.path(),
        &[
            "resolve",
            "p.tar",
            "--arch",
            "amd64",
            "-o",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    let mut context = tar::Archive::new(std::fs::File::open(out_dir.join("main.tar")).unwrap());
    let link = context
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("link.txt"))
        .unwrap();
    assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
}

/// Errors for a tar or stdin project name the path inside the project (here the compose file
/// and an env file it names), never the temporary directory it was parsed from.
#[test]
fn tar_and_stdin_project_errors_name_the_path_inside_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "services:\n  a:\n    build: .\n    ports: [\"x\"]\n",
            "error: docker-compose.yml: service \"a\": Invalid containerPort: x",
        ),
        (
            "services:\n  a:\n    build: .\n    env_file: config/missing.env\n",
            "error: config/missing.env: ",
        ),
    ];
    for (compose, expected) in cases {
        let tar = tar_of(&[
            ("docker-compose.yml", compose),
            ("Dockerfile", "FROM local/amd64-busybox\n"),
        ]);
        std::fs::write(dir.path().join("p.tar"), &tar).unwrap();
        let from_file = run_in_dir(dir.path(), &["build", "p.tar", "--arch", "amd64"]);
        let from_stdin = balena_compose()
            .current_dir(dir.path())
            .args(["build", "-", "--arch", "amd64"])
            .stdin(std::fs::File::open(dir.path().join("p.tar")).unwrap())
            .output()
            .unwrap();
        for out in [from_file, from_stdin] {
            assert!(!out.status.success());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(expected) && !stderr.contains("/tmp"),
                "expected {expected:?}, got:\n{stderr}"
            );
        }
    }
}
