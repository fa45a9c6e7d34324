//! `transpose` on a service Dockerfile and on a large multi-stage one with continuations,
//! heredocs, `SHELL` changes and `ONBUILD`, the shapes its lexer has to walk.
#![allow(missing_docs, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dockerfile::{TransposeOptions, transpose};

const SERVICE: &str = "FROM balenalib/raspberrypi4-64-debian:bookworm\n\
WORKDIR /usr/src/app\n\
COPY . ./\n\
RUN apt-get update && \\\n    apt-get install -y curl\n\
SHELL [\"sh\", \"-c\"]\n\
RUN echo done\n\
CMD [\"sleep\", \"infinity\"]\n";

fn large(stages: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\n# escape=\\\n");
    for s in 0..stages {
        let _ = writeln!(out, "FROM local/aarch64-busybox AS stage{s}");
        for i in 0..40 {
            match i % 8 {
                0 => {
                    let _ = writeln!(
                        out,
                        "RUN echo {s}-{i} && \\\n    touch /f{i} && \\\n    ls /"
                    );
                }
                1 => {
                    let _ = writeln!(out, "RUN [\"/bin/echo\", \"{s}\", \"{i}\"]");
                }
                2 => out.push_str("RUN <<EOF\nset -e\necho heredoc\nEOF\n"),
                3 => out.push_str("SHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\n"),
                4 => {
                    let _ = writeln!(out, "COPY --from=stage0 /f{i} /g{i}");
                }
                5 => out.push_str("ONBUILD RUN make install\n"),
                6 => out.push_str("# a comment between instructions\n\n"),
                _ => {
                    let _ = writeln!(out, "ENV K{i}=v{i} \\\n    L{i}=w{i}");
                }
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let opts = TransposeOptions::new("qemu-aarch64-static");
    let big = large(50);
    let mut group = c.benchmark_group("transpose");
    group.throughput(Throughput::Bytes(SERVICE.len() as u64));
    group.bench_function("service Dockerfile", |b| {
        b.iter(|| transpose(black_box(SERVICE), black_box(&opts)).unwrap())
    });
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("50 stages x 40 instructions", |b| {
        b.iter(|| transpose(black_box(&big), black_box(&opts)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
