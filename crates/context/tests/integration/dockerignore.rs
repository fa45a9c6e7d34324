//! moby's pattern-matcher and ignore-file test tables, ported as data.
//!
//! Source: github.com/moby/patternmatcher, `patternmatcher_test.go` (TestMatches,
//! TestMatch, the single-case tests) and `ignorefile/ignorefile_test.go` (TestReadAll),
//! Apache-2.0, Copyright Docker, Inc. Only the cases are ported; the matcher is our own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use context::dockerignore::{Dockerignore, read_patterns};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    Fail,
    Exact,
    Inexact,
}
use Want::*;

/// TestMatches: (pattern, text, expectation). `Exact` passes MatchesExact and
/// MatchesOrParentMatches; `Inexact` only the latter.
const MATCHES: &[(&str, &str, Want)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact),
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Inexact),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Inexact),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", Fail),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", Fail),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", Fail),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", Fail),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", Fail),
    ("abc.def", "abcdef", Fail),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", Fail),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", Fail),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", Fail),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", Fail),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", Fail),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    // The non-Windows additions.
    ("a\\\\", "a\\", Exact),
    ("a\\*b", "a*b", Exact),
];

/// TestMatches' multi-pattern cases (MatchesOrParentMatches).
const MULTI: &[(&[&str], &str, bool)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
];

fn matcher(patterns: &[&str]) -> Dockerignore {
    Dockerignore::from_lines("test", patterns).unwrap()
}

#[test]
fn matches_exact_table() {
    for &(pattern, text, want) in MATCHES {
        let got = matcher(&[pattern]).matches_exact(text);
        assert_eq!(
            got,
            want == Exact,
            "MatchesExact(pattern={pattern:?}, text={text:?})"
        );
    }
}

#[test]
fn matches_or_parent_matches_table() {
    for &(pattern, text, want) in MATCHES {
        let got = matcher(&[pattern]).matches(text);
        assert_eq!(
            got,
            want != Fail,
            "MatchesOrParentMatches(pattern={pattern:?}, text={text:?})"
        );
    }
    for &(patterns, text, want) in MULTI {
        assert_eq!(
            matcher(patterns).matches(text),
            want,
            "{patterns:?} {text:?}"
        );
    }
}

/// TestMatch: Go's `filepath.Match` cases as moby runs them (`None` = syntax error).
const GO_MATCH: &[(&str, &str, Option<bool>)] = &[
    ("abc", "abc", Some(true)),
    ("*", "abc", Some(true)),
    ("*c", "abc", Some(true)),
    ("a*", "a", Some(true)),
    ("a*", "abc", Some(true)),
    ("a*", "ab/c", Some(true)),
    ("a*/b", "abc/b", Some(true)),
    ("a*/b", "a/c/b", Some(false)),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
    ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
    ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
    ("ab[c]", "abc", Some(true)),
    ("ab[b-d]", "abc", Some(true)),
    ("ab[e-g]", "abc", Some(false)),
    ("ab[^c]", "abc", Some(false)),
    ("ab[^b-d]", "abc", Some(false)),
    ("ab[^e-g]", "abc", Some(true)),
    ("a\\*b", "a*b", Some(true)),
    ("a\\*b", "ab", Some(false)),
    ("a?b", "a☺b", Some(true)),
    ("a[^a]b", "a☺b", Some(true)),
    ("a???b", "a☺b", Some(false)),
    ("a[^a][^a][^a]b", "a☺b", Some(false)),
    ("[a-ζ]*", "α", Some(true)),
    ("*[a-ζ]", "A", Some(false)),
    ("a?b", "a/b", Some(false)),
    ("a*b", "a/b", Some(false)),
    ("[\\]a]", "]", Some(true)),
    ("[\\-]", "-", Some(true)),
    ("[x\\-]", "x", Some(true)),
    ("[x\\-]", "-", Some(true)),
    ("[x\\-]", "z", Some(false)),
    ("[\\-x]", "x", Some(true)),
    ("[\\-x]", "-", Some(true)),
    ("[\\-x]", "a", Some(false)),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[x-]", "-", None),
    ("[x-]", "z", None),
    ("[-x]", "x", None),
    ("[-x]", "-", None),
    ("[-x]", "a", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("*x", "xxx", Some(true)),
];

#[test]
fn go_filepath_match_table() {
    for &(pattern, text, want) in GO_MATCH {
        let got = Dockerignore::from_lines("test", &[pattern]).map(|m| m.matches(text));
        match want {
            Some(want) => assert_eq!(got.ok(), Some(want), "Match({pattern:?}, {text:?})"),
            None => assert!(got.is_err(), "Match({pattern:?}) should be a syntax error"),
        }
    }
}

#[test]
fn single_cases() {
    // TestWildcardMatches, TestPatternMatches.
    assert!(matcher(&["*"]).matches("fileutils.go"));
    assert!(matcher(&["*.go"]).matches("fileutils.go"));
    // An exclusion before the inclusion does nothing; after it, it wins.
    assert!(matcher(&["!fileutils.go", "*.go"]).matches("fileutils.go"));
    assert!(!matcher(&["*.go", "!fileutils.go"]).matches("fileutils.go"));
    // Folder patterns with an exception inside.
    for folder in ["docs", "docs/", "docs/*"] {
        assert!(
            !matcher(&[folder, "!docs/README.md"]).matches("docs/README.md"),
            "{folder}"
        );
        assert!(
            matcher(&[folder, "!docs/README.md"]).matches("docs/other.md"),
            "{folder}"
        );
    }
    // No patterns match nothing.
    assert!(!matcher(&[]).matches("any/path/there"));
    // TestCleanPatterns*: empty patterns dropped, spaces around `!` trimmed.
    assert!(matcher(&["docs", "config", ""]).matches("config"));
    assert!(matcher(&["docs", "  !docs/README.md"]).has_exceptions());
    assert!(matcher(&["docs", "!docs/README.md  "]).has_exceptions());
    assert!(!matcher(&["docs", "  !docs/README.md"]).matches("docs/README.md"));
}

#[test]
fn syntax_errors_name_file_and_line() {
    // A bare `!` (TestSingleExclamationError) and an unterminated class
    // (TestMatchesWithMalformedPatterns).
    let err = Dockerignore::parse("svc/.dockerignore", b"a\n# c\n!\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "svc/.dockerignore line 3: illegal exclusion pattern: \"!\""
    );
    let err = Dockerignore::parse(".dockerignore", b"ok\n\nbad[\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with(".dockerignore line 3: pattern \"bad[\""),
        "{err}"
    );
    // moby accepts `[Local-Only]/` when reading and fails at the first match (its
    // regression test for moby#52203); we refuse it up front, with the line.
    let err = Dockerignore::parse(".dockerignore", b"[Local-Only]/\n").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn read_all_table() {
    // TestReadAll.
    assert!(read_patterns(b"").is_empty());
    let content =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
    let got: Vec<String> = read_patterns(content.as_bytes())
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        got,
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "!inverted/abs/path",
            "!",
            "!"
        ]
    );
}

#[test]
fn reading_rules() {
    // BOM on line 1 only; a comment must start the line; CRLF; clean; line numbers kept.
    let lines = read_patterns(b"\xEF\xBB\xBF#c\r\n  #not-a-comment\r\n./a/../b/\r\n/\n");
    assert_eq!(
        lines,
        [
            (2, "#not-a-comment".to_owned()),
            (3, "b".to_owned()),
            (4, "/".to_owned())
        ]
    );
    let m = Dockerignore::parse("x", b"  #not-a-comment\n").unwrap();
    assert!(m.matches("#not-a-comment"));
}

#[test]
fn balena_defaults_wrap_user_rules() {
    let m = Dockerignore::parse(".dockerignore", b"*\n")
        .unwrap()
        .with_balena_defaults();
    assert!(m.matches("a.txt"));
    assert!(!m.matches("Dockerfile"));
    assert!(!m.matches("sub/Dockerfile.aarch64"));
    assert!(!m.matches("docker-compose.yml"));
    let git = Dockerignore::default().with_balena_defaults();
    assert!(git.matches(".git/HEAD"));
    assert!(git.matches("vendor/.git/config"));
    assert!(!git.matches("src/main.rs"));
    // The user's own `!` still re-includes inside `.git` (balena CLI's dockerignore1 fixture).
    let m = Dockerignore::parse(".dockerignore", b"!.git/foo.txt\n")
        .unwrap()
        .with_balena_defaults();
    assert!(!m.matches(".git/foo.txt"));
    assert!(m.matches(".git/bar.txt"));
}
