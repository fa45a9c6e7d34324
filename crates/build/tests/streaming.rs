//! A context with a 64 MiB file is streamed, not buffered: the test process's peak RSS
//! barely moves. Its own test binary (not a module of `integration/`), so that no other test
//! shares the peak.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "integration/common.rs"]
mod common;

use std::io::Read;

use build::{BuildOptions, ContextBody};
use common::{append_file, build_collecting, docker, remove_image, unique};

const BIG: u64 = 64 * 1024 * 1024;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_64_mib_context_streams_without_buffering() {
    let docker = docker().await;
    let name = unique("big");
    let before = peak_rss_kib();
    let body = ContextBody::from_producer(|w| {
        let mut out = tar::Builder::new(w);
        let dockerfile = format!(
            "FROM local/amd64-busybox\nCOPY big /big\nRUN test \"$(wc -c < /big)\" -eq {BIG}\n"
        );
        append_file(
            &mut out,
            "Dockerfile",
            dockerfile.len() as u64,
            dockerfile.as_bytes(),
        )?;
        append_file(&mut out, "big", BIG, std::io::repeat(0x5a).take(BIG))?;
        out.finish()
    });
    let options = BuildOptions {
        tags: vec![name.clone()],
        ..BuildOptions::default()
    };
    let (built, _) = build_collecting(&docker, body, &options).await;
    let built = built.unwrap();
    let after = peak_rss_kib();
    eprintln!(
        "VmHWM before {before} KiB, after {after} KiB, growth {} KiB",
        after - before
    );
    assert!(built.image_id.starts_with("sha256:"));
    assert!(
        after - before < 24 * 1024,
        "peak RSS grew by {} KiB while streaming 64 MiB",
        after - before
    );
    remove_image(&docker, &name).await;
}
