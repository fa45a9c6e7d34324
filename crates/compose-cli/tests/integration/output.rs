//! What people see: `--progress` modes on a pseudo-terminal and off it, the summary table,
//! shell completions, the man page and `--version`; through the binary, against the private
//! daemon of `scripts/docker-env` where something is built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;

use balena_api_fake::{FakeApi, FakeConfig};
use support::{balena_compose, balena_compose_on_a_pty, json_lines, write};

/// A one-service project whose build has two steps and logs a line; the project's name
/// (hence its image's) is long enough to overflow an 80-column table unless shortened.
fn two_step_project(root: &Path) -> String {
    write(
        root,
        "docker-compose.yml",
        "services:\n  app:\n    build: ./app\n",
    );
    write(
        root,
        "app/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo hello from the build && sleep 2\n",
    );
    // One name per call: the tests of this module run at once in one process, and each
    // removes its image at the end.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "output-tests-with-a-rather-long-project-name-{}-{n}",
        std::process::id()
    )
}

fn build_args<'a>(root: &'a Path, project: &'a str) -> Vec<&'a str> {
    vec![
        "build",
        root.to_str().unwrap(),
        "-p",
        project,
        "--arch",
        "amd64",
    ]
}

fn remove_image(project: &str) {
    let _ = support::docker_cli(&["image", "rm", "-f", &format!("{project}_app")]);
}

/// `TERM=dumb` cannot redraw a line: `auto` shows plain `[service]` lines as the build goes
/// (before, indicatif drew nothing on it until the end), and `--progress plain` does so on any
/// terminal.
#[test]
fn a_dumb_terminal_gets_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let project = two_step_project(dir.path());
    let args = build_args(dir.path(), &project);
    let out = balena_compose_on_a_pty("dumb", &args);
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(seen.contains("[app] "), "{seen}");
    assert!(seen.contains("hello from the build"), "{seen}");

    let mut plain = args.clone();
    plain.extend(["--progress", "plain", "--nocache"]);
    let out = balena_compose_on_a_pty("xterm", &plain);
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(seen.contains("[app] "), "{seen}");
    remove_image(&project);
}

/// On a terminal a service's line shows its step as `2/3 RUN …` with a running timer, and
/// the final table fits 80 columns (the image name shortened from the left).
#[test]
fn a_terminal_line_keeps_the_step_and_a_timer_and_the_table_fits_80_columns() {
    let dir = tempfile::tempdir().unwrap();
    let project = two_step_project(dir.path());
    let mut args = build_args(dir.path(), &project);
    args.push("--nocache");
    let out = balena_compose_on_a_pty("xterm", &args);
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    // BuildKit counts the Dockerfile's two steps; the classic builder also the LABEL step
    // that records the build's inputs.
    assert!(
        seen.contains("2/2 RUN echo hello") || seen.contains("2/3 RUN echo hello"),
        "{seen}"
    );
    // The timer: indicatif's `{elapsed}` counts seconds while the step sleeps.
    assert!(seen.contains(" 1s "), "{seen}");
    let table: Vec<&str> = seen
        .lines()
        // What follows the last line-clearing sequence is what stays on the screen.
        .map(|l| {
            l.rsplit("\x1b[2K")
                .next()
                .unwrap_or(l)
                .trim_end_matches('\r')
        })
        .filter(|l| l.starts_with("SERVICE") || l.starts_with("app "))
        .collect();
    assert_eq!(table.len(), 2, "{seen}");
    for line in table {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
        assert!(!line.contains(&project), "{line}");
    }
    remove_image(&project);
}

/// `-q` (`--progress quiet`) shows nothing but errors: a build that works prints nothing, one
/// that fails prints its error once; so does `--progress plain`.
#[test]
fn quiet_shows_only_errors() {
    let dir = tempfile::tempdir().unwrap();
    let project = two_step_project(dir.path());
    let mut args = build_args(dir.path(), &project);
    args.push("-q");
    let out = balena_compose().args(&args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    write(
        dir.path(),
        "app/Dockerfile",
        "FROM local/amd64-busybox\nRUN echo about to fail && exit 3\n",
    );
    let out = balena_compose()
        .args(build_args(dir.path(), &project))
        .args(["--progress", "quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        stderr.matches("service \"app\" failed").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("Building"), "{stderr}");

    // Plain lines: the failing step's log as it comes, the error once, in the summary.
    let out = balena_compose()
        .args(build_args(dir.path(), &project))
        .args(["--progress", "plain"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("[app] FAILED (see below)"), "{stderr}");
    // BuildKit's words ("exit code: 3"); the classic builder's are "non-zero code: 3".
    let exit_3 =
        stderr.matches("exit code: 3").count() + stderr.matches("non-zero code: 3").count();
    assert_eq!(exit_3, 1, "{stderr}");
    remove_image(&project);
}

/// `completions` prints a script each shell loads, `man` a roff page naming the
/// subcommands, `--version` the version, the commit built and the build's date.
#[test]
fn completions_man_page_and_version() {
    for (shell, marker) in [
        ("bash", "complete -F _balena__compose"),
        ("zsh", "#compdef balena-compose"),
        ("fish", "complete -c balena-compose"),
    ] {
        let out = balena_compose()
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}: {out:?}");
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("--progress"), "{shell}: {script}");
    }
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut bash| {
            use std::io::Write as _;
            let out = balena_compose().args(["completions", "bash"]).output()?;
            bash.stdin.take().unwrap().write_all(&out.stdout)?;
            bash.wait()
        })
        .unwrap();
    assert!(
        checked.success(),
        "the bash completion script does not parse"
    );

    let out = balena_compose().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(page.contains(".TH balena-compose 1"), "{page}");
    for subcommand in ["build", "deploy", "completions", "man"] {
        assert!(page.contains(subcommand), "{subcommand}: {page}");
    }

    let out = balena_compose().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout);
    let (commit, date) = version
        .trim()
        .strip_prefix(concat!("balena-compose ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or_else(|| panic!("{version}"));
    assert_eq!(commit, head.trim(), "{version}");
    let digits: Vec<&str> = date.split('-').collect();
    assert!(
        digits.len() == 3
            && digits.iter().all(|d| d.parse::<u32>().is_ok())
            && digits[0].len() == 4,
        "{version}"
    );
}

/// `deploy`'s push progress names services, not registry paths, in plain lines and in
/// `--json` `push` events; its last lines on stdout are the release's id, commit and status.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_names_services_while_pushing_and_ends_with_the_release() {
    let api = FakeApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = two_step_project(dir.path());
    let deploy = |progress: &'static str| {
        let mut cmd = balena_compose();
        cmd.env("BALENA_API_KEY", api.api_key()).args([
            "deploy",
            "gh_tester/testfleet",
            "--api-url",
            api.url(),
            dir.path().to_str().unwrap(),
            "-p",
            &project,
            "--progress",
            progress,
        ]);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };

    let out = deploy("plain").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[push] app: pushed sha256:"), "{stderr}");
    assert!(!stderr.contains("[push] 127.0.0.1"), "{stderr}");
    let releases = api.records("release");
    let release = releases.last().unwrap();
    let last: Vec<&str> = stdout.lines().rev().take(3).collect();
    assert_eq!(
        last,
        [
            "Status:     success".to_owned(),
            format!("Commit:     {}", release["commit"].as_str().unwrap()),
            format!("Release id: {}", release["id"]),
        ],
        "{stdout}"
    );

    let out = deploy("json").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushes: Vec<_> = json_lines(&out.stdout)
        .into_iter()
        .filter(|e| e["event"] == "push")
        .collect();
    assert!(!pushes.is_empty());
    for push in pushes {
        assert_eq!(push["service"], "app", "{push}");
    }
    remove_image(&project);
}

/// A signal ends any command that waits (here `state`, on a daemon that accepts the
/// connection and never answers) with 128 + its number, quietly; not only build, deploy
/// and up.
#[test]
fn a_signal_ends_a_waiting_command_with_128_plus_its_number() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("tcp://{}", silent.local_addr().unwrap());
    let state: &[&str] = &["state", "--app", "1", "--docker-host", &host];
    let commands = [(state, "TERM", 143), (state, "INT", 130)];
    for (args, signal, code) in commands {
        let child = balena_compose()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        let killed = std::process::Command::new("/bin/kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The closing line's time is the command's wall time, not the slowest service's: with
/// `--jobs 1` two one-second builds run one after the other, and the total is at least their
/// sum.
#[test]
fn the_elapsed_time_is_the_commands_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let nonce = std::process::id();
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  a:\n    build: ./a\n  b:\n    build: ./b\n",
    );
    for service in ["a", "b"] {
        write(
            dir.path(),
            &format!("{service}/Dockerfile"),
            &format!("FROM local/amd64-busybox\nRUN sleep 1 && echo {service}{nonce}\n"),
        );
    }
    let project = format!("output-walltime-{nonce}");
    let out = balena_compose()
        .args(build_args(dir.path(), &project))
        .args(["--jobs", "1", "--nocache", "--progress", "plain"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seconds = |text: &str| text.trim_end_matches('s').parse::<f64>().unwrap();
    // The TIME column, the one before STATUS.
    let services: f64 = stdout
        .lines()
        .skip(1)
        .map(|line| seconds(line.split_whitespace().rev().nth(1).unwrap()))
        .sum();
    let total = stderr
        .lines()
        .find_map(|line| line.strip_prefix("Built 2 services in "))
        .map(seconds)
        .unwrap_or_else(|| panic!("{stderr}"));
    // Each figure is rounded to a tenth.
    assert!(
        total + 0.15 >= services,
        "{total} < {services}: {stdout}{stderr}"
    );
    for service in ["a", "b"] {
        let _ = support::docker_cli(&["image", "rm", "-f", &format!("{project}_{service}")]);
    }
}
