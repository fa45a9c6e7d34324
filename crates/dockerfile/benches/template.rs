//! `process` on the reference benchmark's own input: `bench/out/data/template-10k.Dockerfile.template`
//! (from `bench/run`, or `gen-project.py template --lines 10000`) with the variables
//! bench-template.js passes, so the figure compares directly with the reference's
//! per-iteration time. Without that file, a template of the same mix is generated here.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const GENERATED: &str = "../../bench/out/data/template-10k.Dockerfile.template";

/// gen-project.py's mix: 15 % comments, 40 % RUN with two variables, 15 % ENV with one,
/// 10 % blank, 20 % plain lines.
fn same_mix(lines: usize) -> String {
    (0..lines)
        .map(|i| match i % 20 {
            0..=2 => format!("# step {i} for %%BALENA_ARCH%%\n"),
            3..=10 => format!(
                "RUN echo {i} %%BALENA_ARCH%% && install --machine=%%BALENA_MACHINE_NAME%% pkg{i}\n"
            ),
            11..=13 => format!("ENV SERVICE_{i}=%%BALENA_SERVICE_NAME%%\n"),
            14..=15 => "\n".to_owned(),
            _ => format!("COPY files/{i} /usr/src/app/{i}\n"),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let template = std::fs::read_to_string(GENERATED).unwrap_or_else(|_| same_mix(10_000));
    let vars: BTreeMap<&str, &str> = BTreeMap::from([
        ("BALENA_ARCH", "aarch64"),
        ("BALENA_MACHINE_NAME", "raspberrypi4-64"),
        ("BALENA_SERVICE_NAME", "main"),
        ("RESIN_ARCH", "aarch64"),
        ("RESIN_MACHINE_NAME", "raspberrypi4-64"),
    ]);
    let mut group = c.benchmark_group("template");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.bench_function("10k lines", |b| {
        b.iter(|| dockerfile::process(black_box(&template), black_box(&vars)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
