//! The invariants every fuzz target checks, shared by the libFuzzer targets (`fuzz_targets/`)
//! and the bounded property tests that run on stable
//! (`crates/compose-cli/tests/integration/properties.rs`, which includes this file by path).
//!
//! Each function takes arbitrary bytes, feeds them to one stage and panics only when an
//! invariant breaks; an error from the stage is a fine outcome, a panic inside it is not.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

/// Splits `data` at the first NUL: the part before and the part after (empty when absent).
fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Panics unless `path` is relative with no empty, `.` or `..` component.
pub fn assert_clean_relative(path: &str, what: &str) {
    assert!(!path.starts_with('/'), "{what}: absolute path {path:?}");
    for component in path.split('/') {
        assert!(
            !component.is_empty() && component != "." && component != "..",
            "{what}: unclean path {path:?}"
        );
    }
}

/// Compose parsing and normalisation: any text gives a `Composition` or an error. A
/// composition prints as YAML and JSON (as `balena-compose config` prints it), and either
/// parses back to the same composition (normalisation is idempotent).
pub fn compose_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = parse::LoadOptions {
        project_dir: Some("/project".into()),
        environment: Some(HashMap::from([("TAG".to_owned(), "1.0".to_owned())])),
        ..parse::LoadOptions::default()
    };
    let Ok(composition) = parse::parse_str(text, &options) else {
        return;
    };
    let json = composition.to_json();
    // What `balena-compose config` prints, in both formats, must load back the same.
    for (format, printed) in [
        ("yaml", composition.to_compose_yaml()),
        ("json", composition.to_compose_json().to_string()),
    ] {
        let again = parse::parse_str(&printed, &options).unwrap_or_else(|e| {
            panic!("normalised {format} output does not parse: {e}\n{printed}")
        });
        assert_eq!(
            again.to_json(),
            json,
            "normalising the {format} output changed the composition\n{printed}"
        );
    }
}

/// `%%VAR%%` templating: never panics; without markers the text is unchanged; the rendered
/// output, when it holds no markers any more, renders to itself; the line count is kept
/// (the values hold no newline).
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let vars = BTreeMap::from([
        ("BALENA_ARCH".to_owned(), "aarch64".to_owned()),
        (
            "BALENA_MACHINE_NAME".to_owned(),
            "raspberrypi4-64".to_owned(),
        ),
        ("AB".to_owned(), "%%".to_owned()),
        ("A_".to_owned(), String::new()),
    ]);
    let Ok(out) = dockerfile::process(&text, &vars) else {
        return;
    };
    if !text.contains("%%") {
        assert_eq!(out, text, "a template without markers changed");
    }
    assert_eq!(
        out.split('\n').count(),
        text.split('\n').count(),
        "line count changed"
    );
    if !out.contains("%%") {
        let twice = dockerfile::process(&out, &vars).expect("a marker-free output renders");
        assert_eq!(
            twice, out,
            "rendering is not idempotent on marker-free output"
        );
    }
}

/// The qemu rewrite: never panics; a Dockerfile without `FROM` or `RUN` comes back unchanged.
pub fn transpose(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let options = dockerfile::TransposeOptions::new("qemu-aarch64-static");
    let Ok(out) = dockerfile::transpose(&text, &options) else {
        return;
    };
    let lower = text.to_ascii_lowercase();
    if !lower.contains("from") && !lower.contains("run") && !lower.contains("shell") {
        assert_eq!(out, text, "a Dockerfile without FROM/RUN changed");
    }
}

/// Tar splitting: any byte stream indexes into clean relative paths or fails; every
/// directory's context that can be cut streams a tar that reads back with clean relative
/// paths, one entry per context file, and indexes again.
pub fn tar_split(data: &[u8]) {
    let Ok(project) = context::Project::from_reader(data) else {
        return;
    };
    let mut dirs = vec![".".to_owned()];
    for entry in project.entries() {
        assert_clean_relative(entry.path(), "indexed entry");
        if entry.kind() == context::EntryKind::Directory {
            dirs.push(entry.path().to_owned());
        }
    }
    for dir in dirs {
        let Ok(ctx) = project.context(&dir) else {
            continue;
        };
        let files = ctx.files().count();
        let mut out = Vec::new();
        let Ok(written) = ctx.write_tar(&[], &mut out) else {
            continue;
        };
        assert_eq!(written, out.len() as u64, "write_tar miscounted its bytes");
        let mut archive = tar::Archive::new(&out[..]);
        let mut count = 0;
        for entry in archive.entries().expect("our tar reads back") {
            let mut entry = entry.expect("our tar's entries read back");
            let path = entry
                .path()
                .expect("our paths decode")
                .to_string_lossy()
                .into_owned();
            assert_clean_relative(path.trim_end_matches('/'), "written entry");
            let mut sink = Vec::new();
            entry
                .read_to_end(&mut sink)
                .expect("our entry data reads back");
            count += 1;
        }
        assert_eq!(
            count, files,
            "context {dir:?}: entries written != context files"
        );
        context::Project::from_reader(&out[..]).expect("our own tar indexes again");
    }
}

/// The tar that `tar_pax` reads: `body` as a PAX extended header, then the entry it
/// describes (1 KiB of data) and a file after it.
pub fn pax_tar(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut append = |name: &str, kind: tar::EntryType, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).expect("a short name");
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    };
    append("PaxHeader", tar::EntryType::XHeader, body);
    append("described", tar::EntryType::Regular, &[7; 1024]);
    append("after", tar::EntryType::Regular, b"after");
    out.resize(out.len() + 1024, 0);
    out
}

/// PAX records: any extended header either indexes, with names within
/// `context::MAX_NAME_LEN` and every small file reading back at its size, or is refused
/// with a message that quotes at most the start of any value.
pub fn tar_pax(body: &[u8]) {
    let data = pax_tar(body);
    let project = match context::Project::from_reader(&data[..]) {
        Ok(project) => project,
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.len() < 2048,
                "an error of {} bytes: {}…",
                message.len(),
                message.get(..200).unwrap_or_default()
            );
            return;
        }
    };
    let limit = usize::try_from(context::MAX_NAME_LEN).expect("a small limit");
    for entry in project.entries() {
        assert_clean_relative(entry.path(), "indexed entry");
        assert!(entry.path().len() <= limit, "a name over the limit");
        assert!(
            entry.link_target().is_none_or(|t| t.len() <= limit),
            "a link target over the limit"
        );
        // Sparse maps may describe huge files of zeros: read the small ones.
        if entry.size() <= 1 << 20
            && let Ok(Some(bytes)) = project.read_file(entry.path())
        {
            assert_eq!(bytes.len() as u64, entry.size(), "{:?}", entry.path());
        }
    }
}

/// `.dockerignore` matching: patterns (before the first NUL) compile or fail; then, for
/// each path (after it, one a line) matching never panics, and without `!` exceptions an
/// exact match implies a match and an excluded directory excludes what is below it.
pub fn dockerignore(data: &[u8]) {
    let (patterns, paths) = split_at_nul(data);
    let Ok(ignore) = context::dockerignore::Dockerignore::parse(".dockerignore", patterns) else {
        return;
    };
    let paths = String::from_utf8_lossy(paths);
    for path in paths.split('\n').filter(|p| !p.is_empty()) {
        let matched = ignore.matches(path);
        let exact = ignore.matches_exact(path);
        if !ignore.has_exceptions() {
            assert!(
                !exact || matched,
                "{path:?} matches exactly but not with parents"
            );
            if matched {
                let child = format!("{path}/child");
                assert!(
                    ignore.matches(&child),
                    "{path:?} is excluded but {child:?} is not"
                );
            }
        }
    }
}
