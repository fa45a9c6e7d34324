//! The build-output filter (spec §4.3 cases ported) and the foreign-exec explanation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dockerfile::transpose;
use emulate::{
    BuildOutput, Error, TransposeOptions, filter_error_message, filter_line, is_exec_format_error,
};
use platform::Arch;

fn arm_opts() -> TransposeOptions {
    TransposeOptions {
        context_qemu_path: ".balena/qemu-arm-static".into(),
        qemu_path: "/usr/bin/qemu-arm-static".into(),
        execve: true,
        bind_mount: false,
    }
}

// --- spec §4.3 (getBuildThroughStream) ---------------------------------------------------------

#[test]
fn strips_the_reference_prefix_on_run_steps() {
    let o = arm_opts();
    assert_eq!(
        filter_line(
            "Step 3/3 : RUN /usr/bin/qemu-arm-static -execve /bin/sh -c apt-get update",
            &o
        ),
        "Step 3/3 : RUN apt-get update"
    );
    assert_eq!(
        filter_line(
            "step 3 : run /USR/BIN/QEMU-ARM-STATIC -EXECVE /bin/sh -c x",
            &o
        ),
        "step 3 : run x"
    );
    assert_eq!(
        filter_line(
            "Step 3/3: RUN /usr/bin/qemu-arm-static -execve /bin/sh -c x",
            &o
        ),
        "Step 3/3: RUN x"
    );
    // Not anchored, like the reference.
    assert_eq!(
        filter_line(
            "Step 5/5 : RUN echo /usr/bin/qemu-arm-static -execve /bin/sh -c x",
            &o
        ),
        "Step 5/5 : RUN echo x"
    );
}

#[test]
fn other_lines_are_untouched() {
    let o = arm_opts();
    for line in [
        "Step 3/3 : CMD /usr/bin/qemu-arm-static -execve /bin/sh -c x",
        " ---> Running in 0123456789ab",
        "/usr/bin/qemu-arm-static -execve /bin/sh -c x",
        "Step 2/3 : RUNX /usr/bin/qemu-arm-static -execve /bin/sh -c x",
    ] {
        assert_eq!(filter_line(line, &o), line);
    }
}

// --- our exec-array form, as the classic builder prints it --------------------------------------

#[test]
fn our_exec_arrays_are_shown_as_written() {
    let o = emulate::transpose_options(Arch::Aarch64);
    let transposed = transpose(
        "FROM a\nRUN uname -m > \"/arch\"\nRUN [\"/bin/echo\", \"a b\"]\n",
        &o,
    )
    .unwrap();
    let runs: Vec<&str> = transposed
        .lines()
        .filter(|l| l.starts_with("RUN"))
        .collect();
    // The classic builder prints `Step N/M : <the instruction as written>`.
    assert_eq!(
        filter_line(&format!("Step 3/4 : {}", runs[0]), &o),
        "Step 3/4 : RUN uname -m > \"/arch\""
    );
    assert_eq!(
        filter_line(&format!("Step 4/4 : {}", runs[1]), &o),
        "Step 4/4 : RUN [\"/bin/echo\",\"a b\"]"
    );
    // Another program's array is not ours to change.
    let foreign = "Step 1/1 : RUN [\"/other/qemu\",\"/bin/sh\",\"-c\",\"x\"]";
    assert_eq!(filter_line(foreign, &o), foreign);
}

#[test]
fn daemon_error_message_loses_the_qemu_prefix() {
    let o = emulate::transpose_options(Arch::Aarch64);
    assert_eq!(
        filter_error_message(
            "The command '/usr/bin/qemu-aarch64-static /bin/sh -c exit 3' returned a non-zero code: 3",
            &o
        ),
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    );
    assert_eq!(
        filter_error_message(
            "The command '/usr/bin/qemu-arm-static -execve /bin/sh -c x' returned a non-zero code: 1",
            &arm_opts()
        ),
        "The command '/bin/sh -c x' returned a non-zero code: 1"
    );
    let other = "The command '/bin/sh -c x' returned a non-zero code: 1";
    assert_eq!(filter_error_message(other, &o), other);
}

// --- foreign exec failures ------------------------------------------------------------------------

#[test]
fn recognises_exec_format_errors() {
    assert!(is_exec_format_error(
        "\u{1b}[91m/bin/sh: wc: Exec format error\n"
    ));
    assert!(is_exec_format_error("exec /bin/x: exec format error"));
    assert!(!is_exec_format_error("/bin/sh: wc: not found"));
}

#[test]
fn explains_a_foreign_exec_with_both_ways_out() {
    let opts = emulate::transpose_options(Arch::Aarch64);
    let mut out = BuildOutput::new(Arch::Aarch64, opts);
    out.line("Step 1/3 : FROM local/aarch64-busybox");
    out.line(
        "Step 3/3 : RUN [\"/usr/bin/qemu-aarch64-static\",\"/bin/sh\",\"-c\",\"echo hi | wc -c\"]",
    );
    out.line(" ---> Running in 3bc4810dba21");
    out.line("\u{1b}[91m/bin/sh: wc: Exec format error");
    assert_eq!(out.current_step(), Some("Step 3/3 : RUN echo hi | wc -c"));
    let err = out
        .explain_failure(
            "The command '/usr/bin/qemu-aarch64-static /bin/sh -c echo hi | wc -c' returned a non-zero code: 126",
        )
        .unwrap();
    assert!(matches!(
        err,
        Error::ForeignExec {
            arch: Arch::Aarch64,
            ..
        }
    ));
    let text = err.to_string();
    for needle in [
        "Step 3/3 : RUN echo hi | wc -c failed",
        "wc: Exec format error",
        "The command '/bin/sh -c echo hi | wc -c' returned a non-zero code: 126",
        "binfmt_misc",
        "balena-compose emulation setup --arch aarch64",
        "linux/arm64",
        "--qemu PATH",
        "-execve",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

#[test]
fn other_failures_are_not_explained() {
    let mut out = BuildOutput::new(Arch::Aarch64, emulate::transpose_options(Arch::Aarch64));
    out.line("Step 2/2 : RUN exit 3");
    assert!(
        out.explain_failure("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
            .is_none()
    );
    // The daemon's own message can be the evidence (`exec format error` from runc).
    let err = out
        .explain_failure("failed to start: exec /bin/sh: exec format error")
        .unwrap();
    assert!(err.to_string().contains("Step 2/2 : RUN exit 3 failed"));
}

proptest::proptest! {
    #[test]
    fn filtering_never_panics(line in "(?s)(Step [0-9]{1,2}(/[0-9])? ?: ?)?(RUN|run)?[ \u{85}\u{a0}]?\\[?.{0,60}") {
        let opts = emulate::transpose_options(Arch::Aarch64);
        let shown = filter_line(&line, &opts);
        // Lines that are not RUN steps pass through unchanged.
        if !line.to_ascii_uppercase().contains("RUN") {
            proptest::prop_assert_eq!(shown.as_ref(), line.as_str());
        }
        let _ = filter_error_message(&line, &opts);
    }
}
