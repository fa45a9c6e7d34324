//! The emulation rewrite against the real private daemon (no binfmt_misc registration needed):
//! an arm64 image built on this amd64 host, its `RUN`s under Debian's qemu.
//!
//! binfmt_misc is machine-global and `tests/binfmt.rs` registers qemu-aarch64 for its
//! duration. With a registration the kernel would run a foreign exec anyway, so the
//! foreign-exec test below checks for one and, if present, asserts the build succeeded instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use emulate::{BuildOutput, Error, TransposeOptions, host_qemu, transpose};
use resolve::Arch;

/// A context with `dockerfile` transposed for aarch64 and Debian's qemu in it.
fn emulated_context(dockerfile: &str) -> (Vec<u8>, TransposeOptions) {
    let opts = TransposeOptions::new(Arch::Aarch64);
    let transposed = transpose(dockerfile, &opts).unwrap();
    let qemu = std::fs::read(host_qemu(Arch::Aarch64).unwrap()).unwrap();
    let tar = common::context_tar(&[
        ("Dockerfile", transposed.as_bytes(), 0o644),
        (&opts.context_qemu_path, &qemu, 0o755),
    ]);
    (tar, opts)
}

#[tokio::test(flavor = "multi_thread")]
async fn emulated_arm64_build_records_aarch64() {
    let docker = common::docker().await;
    let tag = common::unique_tag("uname");
    // busybox sh runs `uname` (a NOEXEC applet) in-process, so it works under Debian's qemu;
    // the exec-form RUN is started by qemu directly, with its argv intact.
    let (context, opts) = emulated_context(
        "FROM local/aarch64-busybox\n\
         RUN uname -m > /arch\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo \\\"$0 $1\\\" > /argv\", \"a b\", \"é\"]\n
         RUN <<EOF\necho one > /heredoc\necho \"$((1 + 1))\" >> /heredoc\nEOF\n",
    );
    let built = common::build(&docker, context, &tag, None).await;
    let mut output = BuildOutput::new(Arch::Aarch64, opts);
    let shown: Vec<String> = built
        .lines
        .iter()
        .map(|l| output.line(l).into_owned())
        .collect();
    assert!(
        built.error.is_none(),
        "build failed: {:?}\n{}",
        built.error,
        shown.join("\n")
    );
    assert!(
        shown.iter().any(|l| l == "Step 3/5 : RUN uname -m > /arch"),
        "{}",
        shown.join("\n")
    );
    assert_eq!(common::read_file(&docker, &tag, "/arch").await, "aarch64\n");
    assert_eq!(common::read_file(&docker, &tag, "/argv").await, "a b é\n");
    // A heredoc RUN works even on the classic builder, which has no heredocs of its own.
    assert_eq!(
        common::read_file(&docker, &tag, "/heredoc").await,
        "one\n2\n"
    );
    common::remove_image(&docker, &tag).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_exec_failure_is_explained() {
    let docker = common::docker().await;
    let tag = common::unique_tag("foreign-exec");
    // `wc` in a pipeline is exec'd as a separate arm64 program: Debian's qemu cannot follow.
    let (context, opts) =
        emulated_context("FROM local/aarch64-busybox\nRUN echo hello | wc -c > /count\n");
    let built = common::build(&docker, context, &tag, None).await;
    let binfmt_now = emulate::binfmt_registered(Arch::Aarch64);
    let mut output = BuildOutput::new(Arch::Aarch64, opts);
    for line in &built.lines {
        output.line(line);
    }
    match built.error {
        Some(daemon_error) => {
            let err = output
                .explain_failure(&daemon_error)
                .unwrap_or_else(|| panic!("not recognised: {daemon_error}\n{:?}", built.lines));
            assert!(matches!(err, Error::ForeignExec { .. }));
            let text = err.to_string();
            assert!(
                text.contains("Step 3/3 : RUN echo hello | wc -c > /count failed"),
                "{text}"
            );
            assert!(text.contains("wc: Exec format error"), "{text}");
            assert!(
                text.contains("binfmt_misc") && text.contains("--qemu PATH"),
                "{text}"
            );
        }
        None => {
            // Only a concurrent binfmt registration (tests/binfmt.rs) can make this work.
            assert!(
                binfmt_now,
                "a foreign exec worked without binfmt_misc or -execve"
            );
            assert_eq!(common::read_file(&docker, &tag, "/count").await, "6\n");
            common::remove_image(&docker, &tag).await;
        }
    }
}
