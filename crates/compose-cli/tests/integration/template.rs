//! `balena-compose template`: renders a Dockerfile template with the variables `resolve`
//! gives a service, from a file or standard input, to stdout or a file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

const TEMPLATE: &str = "# %%KEPT%%\nFROM local/%%BALENA_ARCH%%-busybox\nLABEL m=%%BALENA_MACHINE_NAME%% r=%%RESIN_ARCH%% s=%%BALENA_SERVICE_NAME%% v=%%MY_VAR%%\n";

fn cli() -> Command {
    Command::cargo_bin("balena-compose").unwrap()
}

#[test]
fn renders_arch_device_service_and_extra_variables_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Dockerfile.template");
    std::fs::write(&file, TEMPLATE).unwrap();
    let out = cli()
        .arg("template")
        .arg(&file)
        .args(["--arch", "aarch64", "--device-type", "raspberrypi4-64"])
        .args(["--service", "api", "--var", "MY_VAR=a=b"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "# %%KEPT%%\nFROM local/aarch64-busybox\nLABEL m=raspberrypi4-64 r=aarch64 s=api v=a=b\n"
    );
}

#[test]
fn reads_stdin_writes_a_file_and_defaults_the_device_type() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("Dockerfile");
    cli()
        .args(["template", "-", "--arch", "armv7hf", "-o"])
        .arg(&output)
        .write_stdin("FROM %%BALENA_ARCH%%-%%BALENA_MACHINE_NAME%%")
        .assert()
        .success()
        .stdout("");
    let rendered = std::fs::read_to_string(&output).unwrap();
    assert_eq!(rendered, "FROM armv7hf-generic-armv7ahf");
}

#[test]
fn an_undefined_variable_names_the_file_variable_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Dockerfile.template");
    std::fs::write(&file, TEMPLATE).unwrap();
    let output = dir.path().join("out");
    let out = cli()
        .arg("template")
        .arg(&file)
        .args(["--arch", "amd64", "-o"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Dockerfile.template"), "{stderr}");
    assert!(
        stderr.contains("BALENA_SERVICE_NAME is not defined (template line 3)"),
        "{stderr}"
    );
    assert!(!output.exists(), "nothing is written on failure");
}

#[test]
fn rejects_an_unknown_arch_and_a_missing_file() {
    cli()
        .args(["template", "-", "--arch", "sparc"])
        .write_stdin("FROM x\n")
        .assert()
        .failure()
        .stderr(predicates::str::contains("sparc"));
    cli()
        .args(["template", "/nonexistent/Dockerfile.template"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "cannot read /nonexistent/Dockerfile.template",
        ));
}
