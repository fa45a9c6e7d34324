//! `balena-compose config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../parse/tests/fixtures")
        .join(rel)
}

fn config() -> Command {
    let mut cmd = Command::cargo_bin("balena-compose").unwrap();
    cmd.arg("config").env_clear();
    cmd
}

#[test]
fn json_output_matches_the_reference_shapes() {
    let out = config()
        .args(["--format", "json", "-f"])
        .arg(fixture("reference/default.yml"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        json["services"]["s3"]["ports"],
        serde_json::json!(["1000", "1001:1002", "1003:1004/udp"])
    );
    assert_eq!(
        json["services"]["s1"]["depends_on"],
        serde_json::json!(["s3"])
    );
    assert_eq!(
        json["services"]["s2"]["volumes"],
        serde_json::json!(["v2:/v2:ro"])
    );
    assert_eq!(json["services"]["s1"]["build"]["context"], "s1");
    assert_eq!(
        json["services"]["s1"]["environment"]["SOME_VAR"],
        "some=value"
    );
    assert_eq!(json["networks"]["default"], serde_json::json!({"ipam": {}}));
}

#[test]
fn yaml_is_the_default_and_project_dir_discovery_works() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  web:\n    build: ./web\n    image: web:${TAG:-dev}\n",
    )
    .unwrap();
    config()
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("context: web"))
        .stdout(predicate::str::contains("web:dev"));
}

#[test]
fn services_lists_names() {
    config()
        .arg("--services")
        .arg("-f")
        .arg(fixture("reference/default.yml"))
        .assert()
        .success()
        .stdout("s1\ns2\ns3\ns4\n");
}

#[test]
fn rule_violation_exits_1_with_file_and_service() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, "services:\n  main:\n    image: x\n    privileged: true\n    volumes: ['/tmp/data:/data']\n").unwrap();
    config()
        .arg("-f")
        .arg(&file)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: {}: service \"main\": service.volumes cannot be of type \"bind\"\n",
            file.display()
        ));
}

#[test]
fn merges_several_files_and_reads_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("a.yml");
    let over = dir.path().join("b.yml");
    let env = dir.path().join("vars.env");
    std::fs::write(&base, "services:\n  s:\n    image: ${IMG}\n").unwrap();
    std::fs::write(&over, "services:\n  t:\n    image: other\n").unwrap();
    std::fs::write(&env, "IMG=from-env-file\n").unwrap();
    config()
        .args(["--services", "-f"])
        .arg(&base)
        .arg("-f")
        .arg(&over)
        .assert()
        .success()
        .stdout("s\nt\n");
    config()
        .args(["--format", "json", "--env-file"])
        .arg(&env)
        .arg("-f")
        .arg(&base)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"image\":\"from-env-file\""));
}

#[test]
fn ambiguous_project_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services: {s: {image: x}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("compose.yml"),
        "services: {s: {image: x}}\n",
    )
    .unwrap();
    config()
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("docker-compose.yml, compose.yml"));
}

/// What `config` prints is a compose file: fed back to `config -f`, it prints the same, in
/// both formats (build + image prints `build.tags`; `$$` prints escaped).
#[test]
fn output_loads_back_to_the_same_composition() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("web")).unwrap();
    std::fs::write(dir.path().join("web/Dockerfile"), "FROM x\n").unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  web:\n    build: ./web\n    image: web:1\n    command: sh -c 'echo $$HOME'\n    \
         environment: {A: \"$$B\", \"C$$\": x}\n    labels: [\"x=$${y}\"]\n    ports: [\"80:80\"]\n",
    )
    .unwrap();
    for format in ["yaml", "json"] {
        let first = config()
            .args(["--format", format])
            .arg(dir.path())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let printed = dir.path().join(format!("printed.{format}"));
        std::fs::write(&printed, &first).unwrap();
        let second = config()
            .args(["--format", format, "-f"])
            .arg(&printed)
            .arg(dir.path())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert_eq!(
            String::from_utf8_lossy(&second),
            String::from_utf8_lossy(&first),
            "{format}"
        );
        if format == "json" {
            let json: serde_json::Value = serde_json::from_slice(&first).unwrap();
            let web = &json["services"]["web"];
            assert_eq!(web["build"]["tags"], serde_json::json!(["web:1"]));
            assert_eq!(web["environment"]["A"], "$$B");
            // Keys are not interpolated, so they are printed as they are.
            assert_eq!(web["environment"]["C$$"], "x");
            assert_eq!(
                web["command"],
                serde_json::json!(["sh", "-c", "echo $$HOME"])
            );
        }
    }
}

#[test]
fn a_read_error_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let out = config()
        .arg("-f")
        .arg(&missing)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8_lossy(&out);
    assert!(
        stderr.contains("nope.yml: No such file or directory"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    assert!(!stderr.contains("caused by"), "{stderr}");
}

#[test]
fn profiles_select_services() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  app:\n    image: x\n  debug:\n    image: y\n    profiles: [debug, dev]\n",
    )
    .unwrap();
    let services = |args: &[&str], env: Option<&str>| {
        let mut cmd = config();
        cmd.arg(dir.path()).arg("--services").args(args);
        if let Some(profiles) = env {
            cmd.env("COMPOSE_PROFILES", profiles);
        }
        String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
    };
    assert_eq!(services(&[], None), "app\n");
    assert_eq!(services(&["--profile", "dev"], None), "app\ndebug\n");
    assert_eq!(services(&[], Some("dev")), "app\ndebug\n");
    // The flag wins over the variable, as in docker compose.
    assert_eq!(services(&["--profile", "other"], Some("dev")), "app\n");
}
