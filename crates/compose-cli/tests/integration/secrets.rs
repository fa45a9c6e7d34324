//! Secrets never leave where they belong: a build pulling its base from the password-protected
//! registry (127.0.0.1:5001) is searched for the password everywhere it could surface — the
//! terminal output, the `--json` event stream, the daemon's log, the image (every layer, via
//! `docker save`), its metadata and history, and the user's home directory. Build secrets
//! (`build-secrets` in balena.yml) are readable by every `RUN` and found in none of those
//! places either.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{docker_host, write};

const PASSWORD: &str = "balena-test-password";

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
    let out = docker_with_config(args, config);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `docker ARGS` against the private daemon with the Docker config directory `config`.
fn docker_with_config(args: &[&str], config: &Path) -> Output {
    Command::new(support::DOCKER)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
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

/// `balena-compose build` of `root` for amd64 (with `--pull`), or as `extra` says, with
/// nothing of the user's environment but `HOME`.
fn build(root: &Path, home: &Path, project: &str, extra: &[&str]) -> Output {
    let target: &[&str] = if extra.contains(&"--arch") {
        &[]
    } else {
        &["--arch", "amd64", "--pull"]
    };
    Command::new(assert_cmd::cargo::cargo_bin("balena-compose"))
        .args(["build", root.to_str().unwrap(), "-p", project])
        .args(target)
        .args(extra)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("DOCKER_HOST", docker_host())
        .output()
        .unwrap()
}

/// A test's own directories: the project, a `$HOME` and a docker client config, all in one
/// temporary directory that lives as long as `dir`.
struct Scratch {
    dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    config: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Scratch {
            root: dir.path().join("project"),
            config: dir.path().join("docker-config"),
            home,
            dir,
        }
    }
}

#[test]
fn a_build_with_registry_secrets_leaks_the_password_nowhere() {
    let Scratch {
        dir: scratch,
        root,
        home,
        config,
    } = Scratch::new();
    // The whole context goes into the image, so a secrets file sent in the context would show.
    write(
        &root,
        "Dockerfile",
        "FROM 127.0.0.1:5001/private/amd64-busybox\nCOPY . /ctx/\nARG A=1\nRUN echo built > /built && env > /env\n",
    );
    let secrets = format!("'127.0.0.1:5001':\n  username: balena\n  password: {PASSWORD}\n");
    write(&root, ".balena/registry-secrets.yml", &secrets);
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
    let _ = docker_with_config(&["image", "rm", "-f", &image], &config);
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

/// A file of an image, from its layers (`docker save`), the topmost layer's copy.
fn file_in_image(image: &str, path: &str, config: &Path) -> Option<Vec<u8>> {
    let saved = docker(&["save", image], config).stdout;
    let mut found = None;
    let mut archive = tar::Archive::new(saved.as_slice());
    let mut layers = std::collections::HashMap::new();
    let mut manifest = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if name == "manifest.json" {
            manifest = data;
        } else if name.ends_with("layer.tar") {
            layers.insert(name, data);
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let data = &layers[layer.as_str().unwrap()];
        let mut inner = tar::Archive::new(data.as_slice());
        for entry in inner.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name.trim_start_matches("./") == path.trim_start_matches('/') {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                found = Some(data);
            }
        }
    }
    found
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The hash a `RUN sha256sum /run/secrets/… > FILE` left in the image.
fn recorded_hash(image: &str, file: &str, config: &Path) -> String {
    let data =
        file_in_image(image, file, config).unwrap_or_else(|| panic!("{image} has no {file}"));
    String::from_utf8_lossy(&data)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn assert_absent(what: &str, haystack: &[u8], secrets: &[&str]) {
    for secret in secrets {
        let found = haystack
            .windows(secret.len())
            .position(|w| w == secret.as_bytes());
        assert!(
            found.is_none(),
            "the build secret {secret:?} is in {what} at byte {}",
            found.unwrap_or_default()
        );
    }
}

/// Build secrets on plain Docker, through BuildKit secret mounts: every `RUN` of every service
/// reads them (the hash of each lands in the image), and they are in no layer, history,
/// output, event or daemon log; `.balena/secrets/` is not in a root context either (the
/// metadata directory is kept out of every context).
#[test]
fn build_secrets_reach_every_run_and_leak_nowhere() {
    let Scratch {
        dir: _scratch,
        root,
        home,
        config,
    } = Scratch::new();
    write(
        &root,
        "docker-compose.yml",
        "services:\n  main:\n    build: .\n  worker:\n    build: ./worker\n",
    );
    // `COPY . /ctx/` would put `.balena/secrets/` into a layer if the context carried it.
    write(
        &root,
        "Dockerfile",
        "FROM 127.0.0.1:5000/local/amd64-busybox\nCOPY . /ctx/\nRUN sha256sum /run/secrets/token > /hash\nRUN sha256sum /run/secrets/deep/key > /hash2 && echo read-both\n",
    );
    write(
        &root,
        "worker/Dockerfile",
        "FROM 127.0.0.1:5000/local/amd64-busybox\nRUN sha256sum /run/secrets/token > /hash && echo worker-read\n",
    );
    write(
        &root,
        ".balena/balena.yml",
        "build-secrets:\n  global:\n    - source: token.txt\n      dest: token\n  services:\n    main:\n      - source: key.txt\n        dest: deep/key\n",
    );
    let pid = std::process::id();
    let token = format!("tok3n-{pid}-global-build-secret");
    let key = format!("k3y-{pid}-service-build-secret\nsecond line of it\n");
    write(&root, ".balena/secrets/token.txt", &token);
    write(&root, ".balena/secrets/key.txt", &key);
    let needles = [
        token.as_str(),
        key.lines().next().unwrap(),
        "second line of it",
    ];
    let log_before = daemon_log().map(|l| std::fs::metadata(l).unwrap().len());

    let project = format!("buildsecret{pid}");
    let plain = build(&root, &home, &project, &[]);
    let plain_text = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(plain.status.success(), "{plain_text}");
    assert!(plain_text.contains("read-both"), "{plain_text}");
    assert!(plain_text.contains("worker-read"), "{plain_text}");
    assert_absent("the build's output", plain_text.as_bytes(), &needles);

    let json = build(&root, &home, &project, &["--json", "--nocache"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    assert_absent("the --json event stream", &json.stdout, &needles);
    assert_absent("the --json build's stderr", &json.stderr, &needles);
    let steps: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "step")
        .collect();
    let shown = serde_json::Value::Array(steps).to_string();
    assert!(
        shown.contains("RUN sha256sum /run/secrets/token > /hash"),
        "the RUN is shown as written: {shown}"
    );
    assert!(
        !shown.contains("--mount=type=secret"),
        "the added mounts are not shown: {shown}"
    );

    for (service, files) in [
        (
            "main",
            vec![("/hash", token.as_str()), ("/hash2", key.as_str())],
        ),
        ("worker", vec![("/hash", token.as_str())]),
    ] {
        let image = format!("{project}_{service}");
        for (file, secret) in files {
            assert_eq!(
                recorded_hash(&image, file, &config),
                sha256_hex(secret.as_bytes()),
                "{image}{file}: the RUN did not read the secret"
            );
        }
        let saved = docker(&["save", &image], &config).stdout;
        assert!(
            saved.len() > 100_000,
            "docker save gave {} bytes",
            saved.len()
        );
        assert_absent(&format!("the saved image {image}"), &saved, &needles);
        let history = docker(&["history", "--no-trunc", &image], &config).stdout;
        assert!(
            String::from_utf8_lossy(&history).contains("sha256sum"),
            "the history scan read the wrong image"
        );
        assert_absent("docker history", &history, &needles);
        assert_absent(
            "docker inspect",
            &docker(&["image", "inspect", &image], &config).stdout,
            &needles,
        );
    }
    let main = format!("{project}_main");
    assert!(
        file_in_image(&main, "/ctx/worker/Dockerfile", &config).is_some(),
        "the context's COPY happened"
    );
    assert!(
        file_in_image(&main, "/ctx/.balena/secrets/token.txt", &config).is_none(),
        "the secrets directory went into the context"
    );

    if let (Some(log), Some(before)) = (daemon_log(), log_before) {
        let text = std::fs::read(log).unwrap();
        let start = usize::try_from(before).unwrap().min(text.len());
        assert_absent("the daemon's log", &text[start..], &needles);
    }
    for service in ["main", "worker"] {
        let _ = docker_with_config(
            &["image", "rm", "-f", &format!("{project}_{service}")],
            &config,
        );
    }
}

/// An emulated aarch64 build (the qemu rewrite, a local arm64 base, BuildKit with the target
/// platform) reads its secret too.
#[test]
fn an_emulated_aarch64_build_reads_its_build_secret() {
    let Scratch {
        dir: _scratch,
        root,
        home,
        config,
    } = Scratch::new();
    write(
        &root,
        "Dockerfile",
        "FROM local/aarch64-busybox\nSHELL [\"/bin/ash\", \"-c\"]\nRUN sha256sum /run/secrets/token > /hash\n",
    );
    write(
        &root,
        ".balena/balena.yml",
        "build-secrets:\n  global:\n    - source: token.txt\n      dest: token\n",
    );
    let token = format!("arm-tok3n-{}-secret", std::process::id());
    write(&root, ".balena/secrets/token.txt", &token);
    let project = format!("armsecret{}", std::process::id());
    // Secrets are not in the build cache's key: an earlier run's layer saw an earlier value.
    let binfmt = support::binfmt_lock(false);
    let out = build(
        &root,
        &home,
        &project,
        &["--arch", "aarch64", "--emulated", "--nocache"],
    );
    drop(binfmt);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert_absent("the build's output", all.as_bytes(), &[&token]);
    let image = format!("{project}_main");
    let inspect = docker(&["image", "inspect", &image], &config).stdout;
    let inspect: serde_json::Value = serde_json::from_slice(&inspect).unwrap();
    assert_eq!(inspect[0]["Architecture"], "arm64");
    assert_eq!(
        recorded_hash(&image, "/hash", &config),
        sha256_hex(token.as_bytes())
    );
    assert_absent(
        "the saved image",
        &docker(&["save", &image], &config).stdout,
        &[&token],
    );
    let _ = docker_with_config(&["image", "rm", "-f", &image], &config);
}

/// A secret whose file is missing fails that service before its build starts, naming the
/// file.
#[test]
fn a_missing_build_secret_file_fails_before_the_build() {
    let Scratch {
        dir: _scratch,
        root,
        home,
        ..
    } = Scratch::new();
    write(
        &root,
        "Dockerfile",
        "FROM local/amd64-busybox\nRUN cat /run/secrets/token\n",
    );
    write(
        &root,
        ".balena/balena.yml",
        "build-secrets:\n  global:\n    - source: absent.txt\n      dest: token\n",
    );
    let project = format!("missingsecret{}", std::process::id());
    let out = build(&root, &home, &project, &["--json"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains(".balena/secrets/absent.txt"), "{all}");
    assert!(
        !all.contains("\"event\":\"step\""),
        "a build started: {all}"
    );
}
