//! `process` on a 10,000-line template (the target: about a millisecond).
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

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

fn bench(c: &mut Criterion) {
    let template = big_template(10_000);
    let vars: HashMap<String, String> = [
        ("BALENA_ARCH", "aarch64"),
        ("BALENA_MACHINE_NAME", "raspberrypi4-64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    c.bench_function("process 10k lines", |b| {
        b.iter(|| dockerfile::process(black_box(&template), black_box(&vars)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
