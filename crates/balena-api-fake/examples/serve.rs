//! Runs the fake balena API on its own, for benchmarks and manual tries:
//!
//! ```text
//! cargo run -p balena-api-fake --example serve [REGISTRY_HOST]
//! ```
//!
//! Prints one line, `URL API_KEY`, then serves until stdin closes or Ctrl-C. Image locations
//! point at REGISTRY_HOST (default 127.0.0.1:5000, the local registry of scripts/docker-env).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};

use balena_api_fake::{FakeApi, FakeConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut config = FakeConfig::default();
    if let Some(host) = std::env::args().nth(1) {
        config.registry_host = host;
    }
    let api = FakeApi::start(config).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{} {}", api.url(), api.api_key())?;
    stdout.flush()?;
    // Whoever started it stops it by closing our stdin (or with Ctrl-C).
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    tokio::select! {
        _ = closed_rx => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!(
        "fake balena API: {} requests, {} releases",
        api.requests().len(),
        api.records("release").len()
    );
    Ok(())
}
