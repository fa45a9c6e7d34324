//! Tar splitting: index a 5-service project tar (5 × 2,000 small files) and stream every
//! service's context, with a resolved Dockerfile override, to a sink.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::io::{Seek, Write};

use context::{Override, Project};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SERVICES: usize = 5;
const FILES: usize = 2_000;

fn project_tar() -> std::fs::File {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data).unwrap();
    };
    add(".dockerignore", b"**/*.log\n");
    for s in 0..SERVICES {
        add(
            &format!("svc{s}/Dockerfile.template"),
            b"FROM %%BALENA_ARCH%%-base\n",
        );
        for f in 0..FILES {
            let data = vec![b'x'; 64 + (f * 37) % 4096];
            add(&format!("svc{s}/src/d{:02}/f{f:05}.txt", f % 50), &data);
        }
        add(&format!("svc{s}/build.log"), b"ignored\n");
    }
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&builder.into_inner().unwrap()).unwrap();
    file.rewind().unwrap();
    file
}

fn bench(c: &mut Criterion) {
    let file = project_tar();
    let bytes = file.metadata().unwrap().len();
    let mut group = c.benchmark_group("split");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(20);
    group.bench_function("index + 5 contexts", |b| {
        b.iter(|| {
            let project = Project::from_tar_file(file.try_clone().unwrap()).unwrap();
            let mut written = 0;
            for s in 0..SERVICES {
                let context = project.context(&format!("svc{s}")).unwrap();
                let resolved = [
                    Override::file("Dockerfile", "FROM aarch64-base\n"),
                    Override::remove("Dockerfile.template"),
                ];
                written += context.write_tar(&resolved, std::io::sink()).unwrap();
            }
            black_box(written)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
