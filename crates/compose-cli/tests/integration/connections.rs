//! Docker connections through the binary, against real daemons of `scripts/docker-env`: the
//! private daemon over ssh (`ssh … docker system dial-stdio` through the sshd on 127.0.0.1),
//! the second daemon on tcp with TLS (DOCKER_TLS_VERIFY, the balena flags, a Docker context),
//! and the errors for a wrong CA and a refused port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::write;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(scripts/docker-env up)\"` (or scripts/test) first")
    })
}

/// The TLS daemon's certificates (ca.pem, cert.pem, key.pem).
fn certs() -> PathBuf {
    PathBuf::from(env("BALENA_COMPOSE_TEST_TLS_CERTS"))
}

/// `docker ARGS` on the TLS daemon, through its unix socket (beside its data).
fn tls_docker(args: &[&str]) -> Output {
    let socket = Path::new(&env("BALENA_COMPOSE_DEV_ROOT")).join("tlsd/docker.sock");
    Command::new(support::DOCKER)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", support::no_docker_config())
        .args(args)
        .output()
        .unwrap()
}

/// A project of two services: `plain` (the classic build, through bollard) and `secret`
/// with a build secret (BuildKit on a connection of our own, with a session).
fn project(root: &Path, nonce: &str) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  plain:\n    build: ./plain\n  secret:\n    build: ./secret\n",
    );
    write(
        root,
        "plain/Dockerfile",
        &format!("FROM local/amd64-busybox\nRUN echo {nonce} > /nonce\n"),
    );
    write(
        root,
        "secret/Dockerfile",
        &format!(
            "FROM local/amd64-busybox\nRUN test -s /run/secrets/token && echo has-token-{nonce}\n"
        ),
    );
    write(
        root,
        ".balena/balena.yml",
        "build-secrets:\n  services:\n    secret:\n      - source: token.txt\n        dest: token\n",
    );
    write(root, ".balena/secrets/token.txt", "connection-test-token");
}

/// `balena-compose build` of a fresh project with nothing of the environment but `vars`;
/// the output, and the project name.
fn build(name: &str, args: &[&str], vars: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let project_name = format!("conn{name}{}", std::process::id());
    project(dir.path(), &project_name);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("balena-compose"));
    cmd.args(["build", dir.path().to_str().unwrap(), "-p", &project_name])
        .args(["--arch", "amd64", "--json", "--nocache"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("DOCKER_CONFIG", support::no_docker_config());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    (cmd.output().unwrap(), project_name)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Both services built, the secret one read its secret; the images are on the daemon
/// `docker` reaches (and removed, whatever the outcome).
fn assert_built(out: &Output, project: &str, docker: impl Fn(&[&str]) -> Output) {
    let missing: Vec<String> = ["plain", "secret"]
        .iter()
        .map(|service| format!("{project}_{service}"))
        .filter(|image| {
            let present = docker(&["image", "inspect", "-f", "{{.Id}}", image])
                .status
                .success();
            let _ = docker(&["image", "rm", "-f", image]);
            !present
        })
        .collect();
    let all = text(out);
    assert!(out.status.success(), "{all}");
    assert!(missing.is_empty(), "not on the daemon: {missing:?}");
    let events = support::json_lines(&out.stdout);
    let marker = format!("has-token-{project}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == marker.as_str()),
        "the secret build did not run: {all}"
    );
}

#[test]
fn a_project_builds_over_ssh_with_build_secrets() {
    let path = format!("{}:/usr/bin:/bin", env("BALENA_COMPOSE_TEST_SSH_PATH"));
    let host = env("BALENA_COMPOSE_TEST_SSH_HOST");
    let (out, project) = build("ssh", &[], &[("PATH", &path), ("DOCKER_HOST", &host)]);
    assert_built(&out, &project, support::docker_cli);
}

#[test]
fn a_project_builds_over_tls_with_docker_tls_verify() {
    let certs = certs();
    let (out, project) = build(
        "tlsenv",
        &[],
        &[
            ("DOCKER_HOST", &env("BALENA_COMPOSE_TEST_TLS_HOST")),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ],
    );
    assert_built(&out, &project, tls_docker);
}

fn tls_port() -> String {
    let host = env("BALENA_COMPOSE_TEST_TLS_HOST");
    host.rsplit_once(':').unwrap().1.to_owned()
}

#[test]
fn a_project_builds_over_tls_with_the_balena_flags() {
    let certs = certs();
    let file = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    let port = tls_port();
    let args = [
        "--dockerHost",
        "127.0.0.1",
        "--dockerPort",
        &port,
        "--ca",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    let (out, project) = build("tlsflags", &args, &[]);
    assert_built(&out, &project, tls_docker);
}

/// The sha256 of the context's name, where docker keeps it.
const CONTEXT: &str = "balena-compose-test-tls";
const CONTEXT_ID: &str = "dd00a13c8d3dc989204d09c36d349f28b0d8335fe989c0bd8fd8de64089c3a28";

/// A Docker config directory whose context [`CONTEXT`] is the TLS daemon; with
/// `current`, it is the current context too.
fn docker_config_with_context(current: bool) -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    let root = config.path();
    let current = if current { CONTEXT } else { "" };
    write(
        root,
        "config.json",
        &format!(r#"{{"currentContext":"{current}"}}"#),
    );
    write(
        root,
        &format!("contexts/meta/{CONTEXT_ID}/meta.json"),
        &format!(
            r#"{{"Name":"{CONTEXT}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{}","SkipTLSVerify":false}}}}}}"#,
            env("BALENA_COMPOSE_TEST_TLS_HOST")
        ),
    );
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        let pem = std::fs::read_to_string(certs().join(file)).unwrap();
        write(
            root,
            &format!("contexts/tls/{CONTEXT_ID}/docker/{file}"),
            &pem,
        );
    }
    config
}

#[test]
fn a_project_builds_through_the_current_docker_context() {
    let config = docker_config_with_context(true);
    let vars = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    let (out, project) = build("context", &[], &vars);
    assert_built(&out, &project, tls_docker);
}

#[test]
fn the_context_flag_wins_over_docker_host() {
    let config = docker_config_with_context(false);
    let vars = [
        ("DOCKER_CONFIG", config.path().to_str().unwrap()),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    ];
    let (out, project) = build("contextflag", &["--context", CONTEXT], &vars);
    assert_built(&out, &project, tls_docker);
}

#[test]
fn a_wrong_ca_is_a_tls_error_naming_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not-the-daemon-s-ca", "-keyout"])
        .arg(dir.path().join("other-ca-key.pem"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let certs = certs();
    let host = env("BALENA_COMPOSE_TEST_TLS_HOST");
    let (out, _) = build(
        "wrongca",
        &[
            "--docker-host",
            &host,
            "--ca",
            other_ca.to_str().unwrap(),
            "--cert",
            certs.join("cert.pem").to_str().unwrap(),
            "--key",
            certs.join("key.pem").to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the Docker daemon at {host}")),
        "{stderr}"
    );
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");

    // DOCKER_TLS_VERIFY with a DOCKER_CERT_PATH that has no ca.pem names the file.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (out, _) = build(
        "noca",
        &[],
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", empty.to_str().unwrap()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let ca = empty.join("ca.pem");
    assert!(stderr.contains(ca.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains(&host), "{stderr}");
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_refused_port_names_the_host_and_the_cause_on_every_transport() {
    let certs = certs();
    let port = free_port();
    let ssh_path = format!("{}:/usr/bin:/bin", env("BALENA_COMPOSE_TEST_SSH_PATH"));
    let tcp = format!("tcp://127.0.0.1:{port}");
    let ssh = format!("ssh://root@127.0.0.1:{port}");
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        (&tcp, vec![]),
        (
            &tcp,
            vec![
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
            ],
        ),
        (&ssh, vec![("PATH", &ssh_path)]),
    ];
    for (host, mut vars) in cases {
        vars.push(("DOCKER_HOST", host));
        let (out, _) = build("refused", &[], &vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{host} {vars:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach the Docker daemon at {host}")),
            "{host} {vars:?}: {stderr}"
        );
        assert!(
            stderr.to_lowercase().contains("connection refused"),
            "{host} {vars:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "partial output: {}", text(&out));
    }
}
