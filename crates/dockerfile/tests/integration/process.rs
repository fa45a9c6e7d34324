//! The reference's test/dockerfile/all.spec.ts cases, plus the template rules of spec §2 and
//! §9.1 that the reference suite does not pin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use dockerfile::{Error, process};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// --- test/dockerfile/all.spec.ts ------------------------------------------------------------

#[test]
fn should_allow_empty_body() {
    assert_eq!(process("", &vars(&[])).unwrap(), "");
}

#[test]
fn should_throw_when_body_has_unknown_variables() {
    let err = process("%%UNKNOWN%%", &vars(&[])).unwrap_err();
    assert_eq!(
        err,
        Error::UndefinedVariable {
            name: "UNKNOWN".into(),
            line: 1
        }
    );
    // The reference's ReferenceError message is the start of ours.
    assert!(err.to_string().starts_with("UNKNOWN is not defined"));
}

#[test]
fn should_allow_variables_that_do_not_exist_in_the_body() {
    assert_eq!(
        process("test", &vars(&[("NOT_USED", "1")])).unwrap(),
        "test"
    );
}

#[test]
fn should_replace_single_variable_lines() {
    assert_eq!(
        process("%%TEST%%", &vars(&[("TEST", "value")])).unwrap(),
        "value"
    );
}

#[test]
fn should_replace_multiple_variables_per_line() {
    let v = vars(&[("BASE", "debian"), ("TAG", "latest")]);
    assert_eq!(
        process("FROM %%BASE%%:%%TAG%%", &v).unwrap(),
        "FROM debian:latest"
    );
}

#[test]
fn should_replace_variables_in_multiple_lines() {
    let v = vars(&[("BASE", "debian"), ("TAG", "latest"), ("VAR", "value")]);
    let template = "\n\t\tFROM %%BASE%%:%%TAG%%\n\t\tRUN echo %%VAR%%\n\t\t";
    let expected = "\n\t\tFROM debian:latest\n\t\tRUN echo value\n\t\t";
    assert_eq!(process(template, &v).unwrap(), expected);
}

#[test]
fn should_ignore_lines_with_comments() {
    let v = vars(&[("TAG", "latest"), ("VAR", "value")]);
    assert_eq!(process("# %%TAG%%", &v).unwrap(), "# %%TAG%%");
    let template = "FROM debian\n# %%VAR%% will be replaced on next line\nRUN echo %%VAR%%";
    let expected = "FROM debian\n# %%VAR%% will be replaced on next line\nRUN echo value";
    assert_eq!(process(template, &v).unwrap(), expected);
}

// --- spec §2 rules beyond the reference suite -----------------------------------------------

#[test]
fn a_comment_is_only_a_hash_in_column_zero() {
    // '  # %%X%%' is an ordinary line: the reference throws for an undefined X there.
    let err = process("FROM a\n  # %%XX%%", &vars(&[])).unwrap_err();
    assert_eq!(
        err,
        Error::UndefinedVariable {
            name: "XX".into(),
            line: 2
        }
    );
    assert_eq!(
        process("  # %%XX%%", &vars(&[("XX", "y")])).unwrap(),
        "  # y"
    );
    // A column-0 '#' exempts even an undefined variable.
    assert_eq!(process("#%%NOPE%%", &vars(&[])).unwrap(), "#%%NOPE%%");
}

#[test]
fn names_need_two_or_more_uppercase_or_underscore_characters() {
    let v = vars(&[
        ("A", "1"),
        ("VAR1", "2"),
        ("lower", "3"),
        ("_X", "4"),
        ("A_", "5"),
    ]);
    for verbatim in [
        "%%A%%",
        "%%VAR1%%",
        "%%lower%%",
        "%%_X%%",
        "%%AA %%",
        "%%Ab%%",
    ] {
        assert_eq!(process(verbatim, &v).unwrap(), verbatim, "{verbatim}");
    }
    assert_eq!(process("%%A_%%", &v).unwrap(), "5");
}

#[test]
fn adjacent_and_overlapping_percent_signs() {
    let v = vars(&[("AA", "1"), ("BB", "2")]);
    assert_eq!(process("%%AA%%%%BB%%", &v).unwrap(), "12");
    assert_eq!(process("%%%AA%%%", &v).unwrap(), "%1%");
    assert_eq!(process("%%%%AA%%", &v).unwrap(), "%%1");
    assert_eq!(process("100%% %AA% %%", &v).unwrap(), "100%% %AA% %%");
}

#[test]
fn substitution_is_a_single_pass() {
    let v = vars(&[("AA", "%%BB%%"), ("BB", "no")]);
    assert_eq!(process("x %%AA%% y", &v).unwrap(), "x %%BB%% y");
}

#[test]
fn only_newline_splits_lines_and_carriage_returns_stay() {
    let v = vars(&[("AA", "1")]);
    assert_eq!(process("a %%AA%%\r\nb\r\n", &v).unwrap(), "a 1\r\nb\r\n");
    // A '\r' does not start a new line, so '#' after it is not in column 0.
    let err = process("x\r#%%ZZ%%", &v).unwrap_err();
    assert_eq!(err.to_string(), "ZZ is not defined (template line 1)");
}

#[test]
fn missing_variable_error_names_the_variable_and_its_line() {
    let template = "FROM %%BALENA_ARCH%%-busybox\n\n# %%IGNORED%%\nRUN echo %%BALENA_MACHINE_NAME%% %%NOT_GIVEN%%\n";
    let v = vars(&[("BALENA_ARCH", "aarch64"), ("BALENA_MACHINE_NAME", "rpi")]);
    let err = process(template, &v).unwrap_err();
    assert_eq!(
        err.to_string(),
        "NOT_GIVEN is not defined (template line 4)"
    );
}

#[test]
fn empty_values_and_unicode_are_kept() {
    let v = vars(&[("EMPTY", ""), ("UNI", "héllo ✓")]);
    assert_eq!(
        process("a%%EMPTY%%b é %%UNI%%", &v).unwrap(),
        "ab é héllo ✓"
    );
}

#[test]
fn lodash_delimiters_and_es_templates_are_not_interpreted() {
    // Spec §2: a Rust port ignores lodash's `<% %>` / `<%- %>` and `${}`.
    let t = "RUN echo <% print(1) %> <%- \"<b>\" %> ${HOME}";
    assert_eq!(process(t, &vars(&[])).unwrap(), t);
}

#[test]
fn ten_thousand_lines_render_quickly() {
    let template = big_template(10_000);
    let v = vars(&[
        ("BALENA_ARCH", "aarch64"),
        ("BALENA_MACHINE_NAME", "raspberrypi4-64"),
    ]);
    let start = std::time::Instant::now();
    let out = process(&template, &v).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out.lines().count(), 10_000);
    // Only the 2,500 comment lines keep their token.
    assert_eq!(out.matches("%%BALENA_ARCH%%").count(), 2_500);
    assert_eq!(out.matches("raspberrypi4-64").count(), 2_500);
    // A debug build is far slower than the ~1 ms of a release build (see benches/process.rs);
    // this only catches an accidental quadratic algorithm.
    assert!(elapsed.as_millis() < 500, "took {elapsed:?}");
}

fn big_template(lines: usize) -> String {
    (0..lines)
        .map(|i| match i % 4 {
            0 => "FROM balenalib/%%BALENA_MACHINE_NAME%%-debian:latest\n".to_owned(),
            1 => format!("RUN echo line {i} for %%BALENA_ARCH%% && do-something --flag=value\n"),
            2 => "# a comment with %%BALENA_ARCH%% kept verbatim\n".to_owned(),
            _ => "ENV PATH=/usr/local/bin:$PATH NO_VARIABLES_HERE=1 100%% done\n".to_owned(),
        })
        .collect()
}
