//! The bad-input corpus (`tests/corpus/cases/*/case.json` at the repository root) run through
//! the built binary: each case must end with its expected exit code and message, in bounded
//! time, without a panic, and without writing anything outside its output directory.
//!
//! Cases marked `known_bug` are run and reported but do not fail the suite; see
//! `tests/corpus/generate.py` for the case format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longer than any case needs on a loaded 2-core machine in a debug build.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);
const WORKERS: usize = 3;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/cases")
}

#[derive(Debug)]
struct Case {
    name: String,
    dir: PathBuf,
    spec: Value,
}

impl Case {
    fn str(&self, key: &str) -> Option<&str> {
        self.spec.get(key).and_then(Value::as_str)
    }

    fn known_bug(&self) -> Option<&str> {
        self.str("known_bug")
    }
}

fn load_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/cases is missing: run tests/corpus/generate.py")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("case.json")).unwrap();
            let spec: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                dir,
                spec,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Copies a directory tree of regular files (the committed cases hold nothing else).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every path under `root` (symlinks not followed) with its size, for before/after checks.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            out.insert(path.strip_prefix(root).unwrap().to_owned(), meta.len());
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Applies `setup`: symlinks and big generated files, made at run time so nothing hostile or
/// huge is committed.
fn setup(case: &Case, project: &Path) {
    let Some(setup) = case.spec.get("setup") else {
        return;
    };
    for link in setup["symlinks"].as_array().into_iter().flatten() {
        let path = project.join(link[0].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(link[1].as_str().unwrap(), path).unwrap();
    }
    for file in setup["generated"].as_array().into_iter().flatten() {
        let path = project.join(file["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let times = usize::try_from(file["times"].as_u64().unwrap()).unwrap();
        let mut text = file["head"].as_str().unwrap().to_owned();
        if let Some(repeat) = file["repeat"].as_str() {
            text.push_str(&repeat.repeat(times));
        } else {
            let pattern = file["repeat_numbered"].as_str().unwrap();
            for n in 0..times {
                text.push_str(&pattern.replace("{n}", &n.to_string()));
            }
        }
        text.push_str(file["tail"].as_str().unwrap());
        std::fs::write(path, text).unwrap();
    }
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Runs the binary with a deadline, killing it when the deadline passes.
fn run_bounded(mut command: Command, stdin: Option<PathBuf>) -> Run {
    command
        .stdin(match stdin {
            Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().expect("cannot start balena-compose");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CASE_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        timed_out,
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Runs one case; returns what is wrong with its outcome (empty: as expected).
fn check(case: &Case, binary: &Path, docker_host: Option<&str>) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    let cwd = root.join("cwd");
    let home = root.join("home");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut project = root.join("project");
    // git keeps no empty directories: a case whose project is empty, or made entirely by
    // its setup at run time, has no `project/` in a fresh clone.
    if !case.dir.join("project.tar").is_file() {
        std::fs::create_dir_all(&project).unwrap();
        if case.dir.join("project").is_dir() {
            copy_tree(&case.dir.join("project"), &project);
        }
        setup(case, &project);
    }
    if case.dir.join("project.tar").is_file() {
        project = root.join("project.tar");
        std::fs::copy(case.dir.join("project.tar"), &project).unwrap();
    }
    let out = cwd.join("out");
    let substitute = |arg: &str| {
        arg.replace("{project}", &project.display().to_string())
            .replace("{out}", &out.display().to_string())
            .replace("{tmp}", &root.display().to_string())
    };

    let mut command = Command::new(binary);
    command
        .args(
            case.spec["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| substitute(a.as_str().unwrap())),
        )
        .current_dir(&cwd)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (key, value) in case
        .spec
        .get("env")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        command.env(key, value.as_str().unwrap());
    }
    if case.spec.get("needs_docker").and_then(Value::as_bool) == Some(true) {
        command.env("DOCKER_HOST", docker_host.unwrap());
    }
    let stdin = case.str("stdin").map(|f| case.dir.join(f));

    let before = snapshot(root);
    let run = run_bounded(command, stdin);
    let mut after = snapshot(root);

    let mut problems = Vec::new();
    let expected = case.spec["exit"].as_i64().unwrap();
    if run.timed_out {
        problems.push(format!("no answer within {CASE_TIMEOUT:?}: killed"));
    } else if run.code.map(i64::from) != Some(expected) {
        problems.push(format!("exit code {:?}, expected {expected}", run.code));
    }
    if run.stderr.contains("panicked at") || run.code == Some(101) {
        problems.push("panicked".to_owned());
    }
    if let Some(fragment) = case.str("stderr")
        && !run.stderr.contains(fragment)
    {
        problems.push(format!("stderr lacks {fragment:?}"));
    }
    if let Some(fragment) = case.str("stdout")
        && !run.stdout.contains(fragment)
    {
        problems.push(format!("stdout lacks {fragment:?}"));
    }
    if let Some(fragment) = case.str("stderr_not")
        && run.stderr.contains(fragment)
    {
        problems.push(format!("stderr contains {fragment:?}"));
    }
    // Only the output directory may change: nothing beside it, nothing in the project,
    // and in it only finished `<service>.tar` files (no temporary leftovers).
    let out_rel = out.strip_prefix(root).unwrap().to_owned();
    let written: Vec<PathBuf> = after
        .keys()
        .filter(|p| p.starts_with(&out_rel) && **p != out_rel)
        .cloned()
        .collect();
    for path in &written {
        let name = path.file_name().unwrap().to_string_lossy();
        if path.parent() != Some(&out_rel) || !name.ends_with(".tar") || name.starts_with('.') {
            problems.push(format!(
                "unexpected file in the output directory: {}",
                path.display()
            ));
        }
        after.remove(path);
    }
    after.remove(&out_rel);
    if after != before {
        let changed: Vec<String> = after
            .iter()
            .filter(|(p, size)| before.get(*p) != Some(size))
            .map(|(p, _)| p.display().to_string())
            .chain(
                before
                    .keys()
                    .filter(|p| !after.contains_key(*p))
                    .map(|p| format!("-{}", p.display())),
            )
            .collect();
        problems.push(format!(
            "files changed outside the output directory: {changed:?}"
        ));
    }
    if !problems.is_empty() {
        problems.push(format!(
            "after {:.2?}; stderr: {:?}; stdout: {:?}",
            run.elapsed,
            truncate(&run.stderr),
            truncate(&run.stdout)
        ));
    }
    problems
}

fn truncate(text: &str) -> String {
    text.chars().take(400).collect()
}

#[test]
fn every_corpus_case_ends_as_its_case_file_says() {
    let cases = load_cases();
    assert!(cases.len() >= 200, "only {} corpus cases", cases.len());
    let binary = assert_cmd::cargo::cargo_bin("balena-compose");
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let docker_cases: Vec<&str> = cases
        .iter()
        .filter(|c| c.spec.get("needs_docker").and_then(Value::as_bool) == Some(true))
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        docker_host.is_some() || docker_cases.is_empty(),
        "DOCKER_HOST is not set, and the corpus cases {docker_cases:?} need the daemon: run `eval \"$(scripts/docker-env up)\"` first"
    );

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Vec<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let problems = check(case, &binary, docker_host.as_deref());
                    results.lock().unwrap().push((index, problems));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(index, _)| *index);

    let mut failures = Vec::new();
    for (index, problems) in results {
        let case = &cases[index];
        match (case.known_bug(), problems.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!("{}: {}", case.name, problems.join("; "))),
            (Some(bug), false) => {
                eprintln!(
                    "known bug, still present: {}: {bug}\n    {}",
                    case.name,
                    problems.join("; ")
                );
            }
            (Some(_), true) => {
                eprintln!(
                    "known bug fixed? {} now behaves as expected: remove its known_bug",
                    case.name
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_runner_catches_a_wrong_expectation() {
    // The checks must be able to fail: a case expecting success of an invalid compose file.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("wrong");
    std::fs::create_dir_all(dir.join("project")).unwrap();
    std::fs::write(dir.join("project/docker-compose.yml"), "services: [\n").unwrap();
    let case = Case {
        name: "wrong".into(),
        dir,
        spec: serde_json::json!({"args": ["config", "{project}"], "exit": 0, "stdout": "services"}),
    };
    let problems = check(&case, &assert_cmd::cargo::cargo_bin("balena-compose"), None);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("exit code Some(1), expected 0")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("stdout lacks")),
        "{problems:?}"
    );
}
