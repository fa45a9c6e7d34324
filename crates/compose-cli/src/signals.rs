//! SIGINT, SIGTERM and SIGHUP, handled alike by `build`, `deploy` and `up`: Ctrl-C, `timeout`,
//! CI cancellation and `docker stop` must all leave no release `running` and no temporary tag
//! behind.
//!
//! While a command runs work that cleans up after itself ([`arm`]), the first of these signals
//! cancels that work's token and is recorded; the command ends on its own, and `main` then exits
//! with 128 + the signal's number (130, 143, 129). Outside such work, or on a second signal
//! during clean-up, the process exits at once with that code: there is nothing to clean up, or
//! the user insists.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The first signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// How many [`Armed`] guards are alive.
static ARMED: AtomicUsize = AtomicUsize::new(0);
/// Cancelled by the first signal that arrives while armed.
static CANCEL: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);

/// The signals handled, with the names the user is told.
const HANDLED: [(SignalKind, &str); 3] = [
    (SignalKind::interrupt(), "SIGINT"),
    (SignalKind::terminate(), "SIGTERM"),
    (SignalKind::hangup(), "SIGHUP"),
];

/// Starts listening for the signals; from here on they no longer end the process by default.
/// Call once, from within the runtime.
pub fn install() -> std::io::Result<()> {
    let mut streams: Vec<(Signal, i32)> = Vec::new();
    for (kind, _) in HANDLED {
        streams.push((signal(kind)?, kind.as_raw_value()));
    }
    tokio::spawn(async move {
        loop {
            let arrivals = streams.iter_mut().map(|(stream, signo)| {
                let signo = *signo;
                Box::pin(async move { stream.recv().await.map(|()| signo) })
            });
            let (arrived, _, _) = futures::future::select_all(arrivals).await;
            let Some(signo) = arrived else {
                return;
            };
            let first = RECEIVED
                .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if first && ARMED.load(Ordering::SeqCst) > 0 {
                CANCEL.cancel();
            } else {
                std::process::exit(128 + signo);
            }
        }
    });
    Ok(())
}

/// Work in progress that stops cleanly when its token is cancelled; see [`arm`].
#[derive(Debug)]
pub struct Armed(());

impl Armed {
    /// Cancelled when a signal arrives (or has arrived) while armed.
    pub fn token(&self) -> CancellationToken {
        CANCEL.clone()
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Makes the next signal cancel [`Armed::token`] instead of ending the process, for as long as
/// the guard lives.
pub fn arm() -> Armed {
    ARMED.fetch_add(1, Ordering::SeqCst);
    Armed(())
}

/// The first signal received, as its number, if any.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|s| *s != 0)
}

/// The name of the signal received ("SIGTERM"), for messages.
pub fn received_name() -> Option<&'static str> {
    let signo = received()?;
    HANDLED
        .iter()
        .find(|(kind, _)| kind.as_raw_value() == signo)
        .map(|(_, name)| *name)
}
