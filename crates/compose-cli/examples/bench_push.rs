//! Pushes local images concurrently with `release::push_images`, the push that `deploy` will
//! run, for `bench/run push` (until `balena-compose deploy` exists).
//!
//! ```sh
//! cargo run --release -p balena-compose --example bench_push -- \
//!     bench-push-svc0=127.0.0.1:5000/bench-push/svc0:latest …
//! ```
//! The daemon is `$DOCKER_HOST`; the registry needs no credentials. Exits 1 if any push fails.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use release::{PushJob, PushOptions, RegistryAuth, push_images};

#[tokio::main]
async fn main() -> ExitCode {
    let jobs: Vec<PushJob> = std::env::args()
        .skip(1)
        .filter_map(|arg| {
            let (local, location) = arg.split_once('=')?;
            Some(PushJob {
                local_image: local.to_owned(),
                location: location.to_owned(),
            })
        })
        .collect();
    if jobs.is_empty() {
        eprintln!("usage: bench_push LOCAL_IMAGE=REGISTRY/REPO:TAG...");
        return ExitCode::from(2);
    }
    let docker = match build::connect(None).await {
        Ok(docker) => docker,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = PushOptions {
        concurrency: jobs.len(),
        ..PushOptions::default()
    };
    let results = push_images(&docker, &jobs, &RegistryAuth::Anonymous, &options).await;
    let mut failed = false;
    for result in results {
        match result {
            Ok(pushed) => println!("{} {} {}", pushed.location, pushed.digest, pushed.size),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    println!("RESULT {{\"bench\":\"push\",\"images\":{}}}", jobs.len());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
