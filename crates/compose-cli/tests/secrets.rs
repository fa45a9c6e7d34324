//! Secrets never leave where they belong: a build pulling its base from the password-protected
//! registry (127.0.0.1:5001) is searched for the password everywhere it could surface — the
//! terminal output, the `--json` event stream, the daemon's log, the image (every layer, via
//! `docker save`), its metadata and history, and the user's home directory; a project with
//! build secrets is refused without printing the secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSWORD: &str = "balena-test-password";
const DOCKER: &str = "/usr/bin/docker";

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").expect(
        "DOCKER_HOST is not set: run `eval \"$(scripts/docker-env up)\"` first (this test needs the private daemon and registries)",
    )
}

/// The forms a leaked password could take: plain, and inside base64 basic-auth or
/// `X-Registry-Auth` JSON (standard or URL-safe alphabet, any of the three alignments).
fn needles() -> Vec<Vec<u8>> {
    let mut out = vec![PASSWORD.as_bytes().to_vec()];
    for prefix in ["", "a", "ab"] {
        let encoded = base64_encode(format!("{prefix}{PASSWORD}").as_bytes());
        // Skip the characters that depend on the prefix; the rest is fixed for the password.
        let skip = (prefix.len() * 4).div_ceil(3) + 1;
        let core: String = encoded.chars().skip(skip).take(16).collect();
        out.push(core.as_bytes().to_vec());
        out.push(core.replace('+', "-").replace('/', "_").into_bytes());
    }
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Panics naming `what` if any form of the password is in `haystack`.
fn assert_no_password(what: &str, haystack: &[u8]) {
    for needle in needles() {
        let found = haystack
            .windows(needle.len())
            .position(|w| w == needle.as_slice());
        assert!(
            found.is_none(),
            "the registry password (as {:?}) is in {what} at byte {}",
            String::from_utf8_lossy(&needle),
            found.unwrap_or_default()
        );
    }
}

fn docker(args: &[&str], config: &Path) -> Output {
    let out = Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The shared daemon's log (scripts/docker-env keeps it beside the socket), if readable.
fn daemon_log() -> Option<PathBuf> {
    let socket = docker_host().strip_prefix("unix://")?.to_owned();
    let log = Path::new(&socket).parent()?.join("dockerd.log");
    log.is_file().then_some(log)
}

fn build(root: &Path, home: &Path, project: &str, extra: &[&str]) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("balena-compose"))
        .args([
            "build",
            root.to_str().unwrap(),
            "-p",
            project,
            "--arch",
            "amd64",
            "--pull",
        ])
        .args(extra)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("DOCKER_HOST", docker_host())
        .output()
        .unwrap()
}

#[test]
fn a_build_with_registry_secrets_leaks_the_password_nowhere() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("project");
    let home = scratch.path().join("home");
    let config = scratch.path().join("docker-config");
    std::fs::create_dir_all(root.join(".balena")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    // The whole context goes into the image, so a secrets file sent in the context would show.
    std::fs::write(
        root.join("Dockerfile"),
        "FROM 127.0.0.1:5001/private/amd64-busybox\nCOPY . /ctx/\nARG A=1\nRUN echo built > /built && env > /env\n",
    )
    .unwrap();
    let secrets = format!("'127.0.0.1:5001':\n  username: balena\n  password: {PASSWORD}\n");
    std::fs::write(root.join(".balena/registry-secrets.yml"), &secrets).unwrap();
    let flag_file = scratch.path().join("secrets.yml");
    std::fs::write(&flag_file, &secrets).unwrap();
    let log_before = daemon_log().map(|l| std::fs::metadata(l).unwrap().len());

    let project = format!("secrets{}", std::process::id());
    let plain = build(&root, &home, &project, &["-R", flag_file.to_str().unwrap()]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert_no_password("the build's stdout", &plain.stdout);
    assert_no_password("the build's stderr", &plain.stderr);

    let json = build(&root, &home, &project, &["--json", "--nocache"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    assert!(
        String::from_utf8_lossy(&json.stdout).contains("\"event\""),
        "no event stream"
    );
    assert_no_password("the --json event stream", &json.stdout);
    assert_no_password("the --json build's stderr", &json.stderr);

    let image = format!("{project}_main");
    let saved = docker(&["save", &image], &config).stdout;
    assert!(
        saved.len() > 100_000,
        "docker save gave only {} bytes",
        saved.len()
    );
    assert_no_password("the saved image (layers and config)", &saved);
    assert_no_password(
        "docker inspect",
        &docker(&["image", "inspect", &image], &config).stdout,
    );
    let history = docker(&["history", "--no-trunc", &image], &config).stdout;
    assert_no_password("docker history", &history);
    assert!(
        String::from_utf8_lossy(&history).contains("echo built"),
        "the history scan read the wrong image"
    );

    if let (Some(log), Some(before)) = (daemon_log(), log_before) {
        let text = std::fs::read(log).unwrap();
        let start = usize::try_from(before).unwrap().min(text.len());
        assert_no_password("the daemon's log", &text[start..]);
    }
    for file in files_under(&home) {
        assert_no_password(
            &format!("{} (HOME)", file.display()),
            &std::fs::read(&file).unwrap(),
        );
    }
    let _ = Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", &config)
        .args(["image", "rm", "-f", &image])
        .output();
}

#[test]
fn the_needles_find_an_encoded_password() {
    // The scan must be able to fail: each encoding of the password is found.
    let basic = base64_encode(format!("balena:{PASSWORD}").as_bytes());
    let registry_auth = base64_encode(format!("{{\"password\":\"{PASSWORD}\"}}").as_bytes())
        .replace('+', "-")
        .replace('/', "_");
    for haystack in [format!("x{PASSWORD}y"), basic, registry_auth] {
        let caught = std::panic::catch_unwind(|| assert_no_password("test", haystack.as_bytes()));
        assert!(caught.is_err(), "{haystack:?} was not caught");
    }
    assert_no_password("clean text", b"balena-test-passwor and more");
}

#[test]
fn a_refused_build_secret_is_not_printed() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("project");
    let home = scratch.path().join("home");
    std::fs::create_dir_all(root.join(".balena/secrets")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        root.join("Dockerfile"),
        "FROM local/amd64-busybox\nRUN cat /run/secrets/token\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".balena/balena.yml"),
        "build-secrets:\n  global:\n    - source: token.txt\n      dest: token\n",
    )
    .unwrap();
    let secret = "s3cr3t-refused-build-secret";
    std::fs::write(root.join(".balena/secrets/token.txt"), secret).unwrap();
    let project = format!("buildsecret{}", std::process::id());

    let out = Command::new(assert_cmd::cargo::cargo_bin("balena-compose"))
        .args([
            "build",
            root.to_str().unwrap(),
            "-p",
            &project,
            "--arch",
            "amd64",
        ])
        .env_clear()
        .env("HOME", &home)
        .env("DOCKER_HOST", docker_host())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("build secrets"), "{all}");
    assert!(
        !all.contains(secret),
        "the secret's content was printed: {all}"
    );
    assert!(!all.contains("Step 1/"), "a build started: {all}");
    let inspect = Command::new(DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", scratch.path().join("docker-config"))
        .args(["image", "inspect", &format!("{project}_main")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "an image was built");
}
