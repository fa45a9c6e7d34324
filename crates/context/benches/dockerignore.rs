//! `.dockerignore` matching: a realistic ignore file (globs, `**`, exceptions, the balena
//! defaults) against 20,000 project paths, and compiling it.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use context::dockerignore::Dockerignore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const IGNORE: &[u8] = b"# build outputs\n**/*.log\n.cache\nnode_modules\n**/target/**\n\
*.tmp\ndocs/**/*.md\n!docs/README.md\nsvc?/src/d0[0-3]/**/*.bak\n/coverage\n**/.git\n";

fn paths(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 6 {
            0 => format!("svc{}/src/d{:02}/e{}/f{i:05}.bin", i % 5, i % 40, i % 7),
            1 => format!("svc{}/build.log", i % 5),
            2 => format!("svc{}/node_modules/pkg{i}/index.js", i % 5),
            3 => format!("docs/chapter{}/page{i}.md", i % 10),
            4 => format!("svc{}/target/release/deps/lib{i}.rlib", i % 5),
            _ => format!("svc{}/Dockerfile.template", i % 5),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ignore = Dockerignore::parse(".dockerignore", IGNORE)
        .unwrap()
        .with_balena_defaults();
    let paths = paths(20_000);
    let mut group = c.benchmark_group("dockerignore");
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.bench_function("match 20k paths", |b| {
        b.iter(|| {
            paths
                .iter()
                .filter(|p| ignore.matches(black_box(p.as_str())))
                .count()
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("compile", |b| {
        b.iter(|| Dockerignore::parse(".dockerignore", black_box(IGNORE)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
