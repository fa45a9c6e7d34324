//! `balena-compose config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use support::write;
use test_support::tar_of_dir;

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

/// What a successful `config --format json` prints.
fn json_of(config: &mut Command) -> serde_json::Value {
    let out = config.args(["--format", "json"]).assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn json_output_matches_the_reference_shapes() {
    let json = json_of(config().args(["-f"]).arg(fixture("reference/default.yml")));
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
            "error: {}:5:5: service \"main\": service.volumes cannot be of type \"bind\"\n",
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

/// Runs the binary with `args` under a 1 GiB address-space limit (`ulimit -v`), so a read that
/// does not stop at the cap aborts instead of eating the machine, and kills it after 20 s (a
/// FIFO opened for a blocking read waits for ever); also how long it took.
fn bounded(args: &[&str], stdin: Option<&[u8]>) -> (Output, Duration) {
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 1048576 && exec \"$0\" \"$@\""])
        .arg(assert_cmd::cargo::cargo_bin("balena-compose"))
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut input = child.stdin.take().unwrap();
    // The binary may refuse before it reads all of standard input.
    let _ = input.write_all(stdin.unwrap_or_default());
    drop(input);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let output = Output {
        status,
        stdout,
        stderr,
    };
    (output, elapsed)
}

/// Asserts a clean refusal: exit 1, nothing on stdout, `fragment` on stderr, within seconds.
fn assert_refused((out, elapsed): (Output, Duration), fragment: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains(fragment), "{fragment:?} not in {stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn a_named_file_must_be_a_regular_file_under_the_cap() {
    let extends = "services:\n  a:\n    extends: {file: base.yml, service: s}\n";
    let include = "include: [base.yml]\nservices:\n  a:\n    image: x\n";
    let env_file = "services:\n  a:\n    image: x\n    env_file: base.yml\n";
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 4] = [
        (
            extends,
            |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "is a character device, not a regular file",
        ),
        (include, mkfifo, "is a FIFO, not a regular file"),
        (
            env_file,
            |p| std::fs::create_dir(p).unwrap(),
            "is a directory, not a file",
        ),
        (
            extends,
            // Sparse: one byte over the cap costs no disk.
            |p| {
                let file = std::fs::File::create(p).unwrap();
                file.set_len(parse::MAX_FILE_SIZE + 1).unwrap();
            },
            "is larger than 64 MiB, the limit for a file a project names",
        ),
    ];
    for (compose, make, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "docker-compose.yml", compose);
        let base = dir.path().join("base.yml");
        make(&base);
        let project = dir.path().to_str().unwrap();
        let expected = format!("{}: {reason}", base.display());
        assert_refused(bounded(&["config", project], None), &expected);
    }
    // The compose file and the interpolation file themselves.
    assert_refused(
        bounded(&["config", "-f", "/dev/zero"], None),
        "/dev/zero: is a character device, not a regular file",
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  a:\n    image: x\n",
    );
    let fifo = dir.path().join("vars.env");
    mkfifo(&fifo);
    let project = dir.path().to_str().unwrap();
    assert_refused(
        bounded(
            &["config", project, "--env-file", fifo.to_str().unwrap()],
            None,
        ),
        &format!("{}: is a FIFO, not a regular file", fifo.display()),
    );
}

#[test]
fn extends_and_include_may_not_name_a_file_outside_the_project() {
    // A host file whose service would leak `image: host-secret` into the composition.
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        "host.yml",
        "services:\n  s:\n    image: host-secret\n",
    );
    let absolute = root.path().join("host.yml").display().to_string();
    // From anywhere (a tar's scratch directory too), this climbs to `/` and down again.
    let climbing = format!("{}{}", "../".repeat(32), absolute.trim_start_matches('/'));
    let cases = [
        (
            format!("services:\n  a:\n    extends: {{file: {absolute}, service: s}}\n"),
            format!("service \"a\": extends.file: Absolute filepath not allowed: {absolute}"),
        ),
        (
            format!("services:\n  a:\n    extends: {{file: {climbing}, service: s}}\n"),
            format!("service \"a\": extends.file: Directory traversing not allowed : {climbing}"),
        ),
        (
            format!("include: [{absolute}]\nservices:\n  a:\n    build: ./app\n"),
            format!("docker-compose.yml: include: Absolute filepath not allowed: {absolute}"),
        ),
        (
            format!("include: [{climbing}]\nservices:\n  a:\n    build: ./app\n"),
            format!("docker-compose.yml: include: Directory traversing not allowed : {climbing}"),
        ),
    ];
    let resolve = ["resolve", "--arch", "amd64", "--dry-run"];
    for (i, (compose, expected)) in cases.iter().enumerate() {
        let project = root.path().join(format!("project{i}"));
        write(&project, "docker-compose.yml", compose);
        write(&project, "app/Dockerfile", "FROM scratch\n");
        let dir = project.to_str().unwrap();
        assert_refused(bounded(&["config", dir], None), expected);
        assert_refused(bounded(&[&resolve[..], &[dir]].concat(), None), expected);
        let tar = root.path().join(format!("project{i}.tar"));
        std::fs::write(&tar, tar_of_dir(&project)).unwrap();
        let tar = tar.to_str().unwrap();
        assert_refused(bounded(&[&resolve[..], &[tar]].concat(), None), expected);
        let stdin = tar_of_dir(&project);
        let from_stdin = bounded(&[&resolve[..], &["-"]].concat(), Some(&stdin));
        assert_refused(from_stdin, expected);
    }
    // `../` that stays inside is fine, as is an absolute path into the project.
    let project = root.path().join("inside");
    write(&project, "base.yml", "services:\n  s:\n    image: base\n");
    write(
        &project,
        "sub/compose.yml",
        "services:\n  b:\n    extends: {file: ../base.yml, service: s}\n    environment: [B=1]\n",
    );
    write(
        &project,
        "docker-compose.yml",
        &format!(
            "include: [{}]\nservices:\n  a:\n    extends: {{file: sub/../base.yml, service: s}}\n",
            project.join("sub/compose.yml").display()
        ),
    );
    let json = json_of(config().arg(&project));
    assert_eq!(json["services"]["a"]["image"], "base", "{json}");
    assert_eq!(json["services"]["b"]["image"], "base", "{json}");
    assert_eq!(json["services"]["b"]["environment"]["B"], "1", "{json}");
}

#[test]
fn a_service_name_longer_than_an_image_name_can_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let longest = "s".repeat(255);
    write(
        dir.path(),
        "docker-compose.yml",
        &format!("services:\n  {longest}:\n    image: x\n"),
    );
    config()
        .arg(dir.path())
        .arg("--services")
        .assert()
        .success()
        .stdout(format!("{longest}\n"));
    // Checked first, so that no other error writes the whole name out.
    for (name, length) in [
        ("s".repeat(256), 256),
        ("s".repeat(200_000), 200_000),
        ("é".repeat(300), 300),
    ] {
        write(
            dir.path(),
            "docker-compose.yml",
            &format!("services:\n  {name}: not a mapping\n"),
        );
        let (out, elapsed) = bounded(&["config", dir.path().to_str().unwrap()], None);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_refused(
            (out, elapsed),
            &format!("invalid service name: it is {length} characters long, the limit is 255"),
        );
        // Named by its start, not written out whole.
        let start: String = name.chars().take(32).collect();
        assert!(
            stderr.contains(&format!("service \"{start}…\"")),
            "{stderr}"
        );
        assert!(stderr.len() < 1000, "{} bytes of stderr", stderr.len());
    }
}

/// docker compose's `-f` and `--project-directory` before the subcommand reach `config`; the
/// subcommand's own `-f` wins; commands without a project refuse them.
#[test]
fn compose_options_before_the_subcommand_apply_to_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yml",
        "services:\n  from-a:\n    image: busybox\n",
    );
    write(
        dir.path(),
        "b.yml",
        "services:\n  from-b:\n    image: busybox\n",
    );
    write(
        dir.path(),
        "proj/docker-compose.yml",
        "services:\n  from-dir:\n    image: busybox\n",
    );
    let bin = || {
        let mut cmd = Command::cargo_bin("balena-compose").unwrap();
        cmd.env_clear();
        cmd
    };
    bin()
        .arg("-f")
        .arg(dir.path().join("a.yml"))
        .args(["config", "--services"])
        .assert()
        .success()
        .stdout("from-a\n");
    bin()
        .arg("-f")
        .arg(dir.path().join("a.yml"))
        .args(["config", "--services", "-f"])
        .arg(dir.path().join("b.yml"))
        .assert()
        .success()
        .stdout("from-b\n");
    bin()
        .arg("--project-directory")
        .arg(dir.path().join("proj"))
        .args(["config", "--services"])
        .assert()
        .success()
        .stdout("from-dir\n");
    bin()
        .args(["-p", "x", "state", "--app", "x"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "apply to config, resolve, build and deploy only",
        ));
}

/// An unknown key is named with its file, line and column and the closest known key; the
/// values compose validates (`restart`, durations, byte sizes, ports, field types) are
/// refused here too, located the same way; nothing is printed on stdout.
#[test]
fn unknown_keys_and_bad_values_are_located_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    let cases = [
        (
            "    restrat: always\n",
            "4:5",
            "unknown key \"restrat\"; did you mean \"restart\"?",
        ),
        ("    zzzqqq: 1\n", "4:5", "unknown key \"zzzqqq\"\n"),
        (
            "    restart: sometimes\n",
            "4:5",
            "service.restart \"sometimes\" is not a restart policy",
        ),
        (
            "    restart: on-failure:x\n",
            "4:5",
            "is not a restart policy",
        ),
        (
            "    stop_grace_period: 5 parsecs\n",
            "4:5",
            "service.stop_grace_period \"5 parsecs\" is not a duration",
        ),
        (
            "    healthcheck:\n      test: [CMD, 'true']\n      interval: 1 fortnight\n",
            "6:7",
            "service.healthcheck.interval \"1 fortnight\" is not a duration",
        ),
        // Any field's bad value is located at its key.
        (
            "    ports:\n      - \"abc\"\n",
            "4:5",
            "Invalid containerPort: abc",
        ),
        (
            "    mem_limit: lots\n",
            "4:5",
            "service.mem_limit \"lots\" is not a byte size",
        ),
        (
            "    environment: 3\n",
            "4:5",
            "service.environment must be a mapping or a list",
        ),
    ];
    for (extra, position, message) in cases {
        std::fs::write(&file, format!("services:\n  app:\n    image: x\n{extra}")).unwrap();
        let out = config().arg("-f").arg(&file).assert().code(1).stdout("");
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        let located = format!("error: {}:{position}: service \"app\": ", file.display());
        assert!(stderr.starts_with(&located), "{extra}: {stderr}");
        assert!(stderr.contains(message), "{extra}: {stderr}");
    }
    for good in [
        "    restart: on-failure:3\n    stop_grace_period: 1m30s\n",
        "    restart: 'no'\n    healthcheck:\n      interval: 500ms\n      timeout: 10s\n",
        "    mem_limit: 512m\n    mem_reservation: 1.5GiB\n    shm_size: 67108864\n",
    ] {
        std::fs::write(&file, format!("services:\n  app:\n    image: x\n{good}")).unwrap();
        config().arg("-f").arg(&file).assert().success();
    }
}
