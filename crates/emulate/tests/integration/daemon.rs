//! The two ways of emulating against the real private daemon: the rewrite (an arm64 image
//! built on this amd64 host, its `RUN`s under Debian's qemu, no binfmt_misc needed) and
//! binfmt_misc (the registrations `scripts/docker-env up` makes with `emulation setup`).
//!
//! binfmt_misc is machine-global, and with an aarch64 registration the kernel runs a foreign
//! exec that the rewrite alone cannot: the rewrite's foreign-exec test disables the aarch64
//! registrations for its build (under the exclusive `binfmt.lock`, re-enabled on drop); the
//! others hold the lock shared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use dockerfile::transpose;
use emulate::{BuildOutput, Emulation, Error, TransposeOptions, choose_emulation, host_qemu};
use platform::Arch;

/// A context with `dockerfile` transposed for aarch64 and Debian's qemu in it.
fn emulated_context(dockerfile: &str) -> (Vec<u8>, TransposeOptions) {
    let opts = emulate::transpose_options(Arch::Aarch64);
    let transposed = transpose(dockerfile, &opts).unwrap();
    let qemu = std::fs::read(host_qemu(Arch::Aarch64).unwrap()).unwrap();
    let tar = common::tar_with_modes(&[
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

/// A `RUN` that starts a foreign program: `wc` in a pipeline is exec'd as a separate arm64
/// program, which Debian's qemu (no `-execve`) cannot follow.
const FOREIGN_EXEC: &str = "FROM local/aarch64-busybox\nRUN echo hello | wc -c > /count\n";

/// The rewrite on a machine without binfmt_misc (the aarch64 registrations disabled for the
/// build): the foreign exec fails, and the failure is explained.
#[tokio::test(flavor = "multi_thread")]
async fn rewrite_foreign_exec_failure_is_explained() {
    let docker = common::docker().await;
    let tag = common::unique_tag("foreign-exec");
    let (context, opts) = emulated_context(FOREIGN_EXEC);
    let built = {
        let _lock = common::binfmt_lock(true);
        let _disabled = common::BinfmtDisabled::new(
            std::path::Path::new(emulate::binfmt::BINFMT_DIR),
            "aarch64",
        );
        assert!(!emulate::binfmt_registered(Arch::Aarch64));
        common::build(&docker, context, &tag, None).await
    };
    let mut output = BuildOutput::new(Arch::Aarch64, opts);
    for line in &built.lines {
        output.line(line);
    }
    let Some(daemon_error) = built.error else {
        common::remove_image(&docker, &tag).await;
        panic!("a foreign exec worked without binfmt_misc or -execve");
    };
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

/// binfmt_misc (registered by `scripts/docker-env up`): emulation chooses it, and the same
/// foreign exec runs with an unchanged Dockerfile and the target's platform, no qemu copied.
#[tokio::test(flavor = "multi_thread")]
async fn binfmt_runs_the_foreign_exec_with_no_rewrite() {
    let docker = common::docker().await;
    let tag = common::unique_tag("binfmt-exec");
    let built = {
        let _lock = common::binfmt_lock(false);
        assert!(
            emulate::binfmt_registered(Arch::Aarch64),
            "no aarch64 registration: run `eval \"$(scripts/docker-env up)\"` first"
        );
        assert_eq!(
            choose_emulation(Arch::Aarch64, Arch::Amd64, None).unwrap(),
            Emulation::Binfmt
        );
        let context = common::tar_with_modes(&[("Dockerfile", FOREIGN_EXEC.as_bytes(), 0o644)]);
        common::build(&docker, context, &tag, Some("linux/arm64")).await
    };
    assert!(
        built.error.is_none(),
        "{:?}\n{}",
        built.error,
        built.lines.join("\n")
    );
    assert_eq!(common::read_file(&docker, &tag, "/count").await, "6\n");
    common::remove_image(&docker, &tag).await;
}
