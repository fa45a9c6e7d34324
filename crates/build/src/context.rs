//! The build context: a tar body streamed to the daemon, never held in memory whole.

use std::fmt;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, SyncIoBridge};

/// Bytes in flight between the producer and the HTTP body.
const PIPE_CAPACITY: usize = 256 * 1024;
/// Size of the chunks handed to the HTTP body.
const CHUNK_SIZE: usize = 64 * 1024;

pub(crate) type ChunkStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

type Producer = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static>;

/// A build context tar, streamed to the daemon.
pub struct ContextBody {
    source: Source,
}

enum Source {
    Reader(Pin<Box<dyn AsyncRead + Send + 'static>>),
    Producer(Producer),
}

impl fmt::Debug for ContextBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::Reader(_) => "reader",
            Source::Producer(_) => "producer",
        };
        f.debug_struct("ContextBody")
            .field("source", &kind)
            .finish()
    }
}

impl ContextBody {
    /// A context read from an async source, e.g. a spool file opened with `tokio::fs::File`.
    pub fn from_async_read(reader: impl AsyncRead + Send + 'static) -> Self {
        Self {
            source: Source::Reader(Box::pin(reader)),
        }
    }

    /// A context written synchronously (e.g. by `tar::Builder`) on a blocking thread while the
    /// daemon reads it. If `produce` fails (or panics), the upload is aborted and the build
    /// fails with [`crate::Error::Context`] carrying its error, so the daemon never builds a
    /// truncated context.
    pub fn from_producer<F>(produce: F) -> Self
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
    {
        Self {
            source: Source::Producer(Box::new(produce)),
        }
    }

    /// Starts the producer (if any) and returns the body as a stream of chunks that ends with
    /// an error if the producer failed, plus where its outcome lands. Must be called inside a
    /// tokio runtime.
    pub(crate) fn into_stream(self) -> (ChunkStream, ProducerOutcome) {
        let outcome = ProducerOutcome::default();
        let reader: Pin<Box<dyn AsyncRead + Send>> = match self.source {
            Source::Reader(reader) => {
                outcome.set(Ok(()));
                reader
            }
            Source::Producer(produce) => {
                let (writer, reader) = tokio::io::duplex(PIPE_CAPACITY);
                let mut bridge = SyncIoBridge::new(writer);
                let slot = outcome.clone();
                tokio::task::spawn_blocking(move || {
                    let result = produce(&mut bridge).and_then(|()| bridge.flush());
                    // Record the outcome before the bridge drops (no `shutdown` before this):
                    // the reader's end of file must never be seen before we know whether it
                    // is a real one.
                    slot.set(result);
                    drop(bridge);
                });
                Box::pin(reader)
            }
        };
        let checked_end = {
            let outcome = outcome.clone();
            stream::once(async move { outcome.end_of_file_error() }).filter_map(|e| async { e })
        };
        let chunks = ReaderStream::with_capacity(reader, CHUNK_SIZE).chain(checked_end);
        (Box::pin(chunks), outcome)
    }
}

/// What the producer of a context ended with; `None` while it runs (or if it panicked).
#[derive(Clone, Default)]
pub(crate) struct ProducerOutcome(Arc<Mutex<Option<io::Result<()>>>>);

impl ProducerOutcome {
    fn set(&self, result: io::Result<()>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(result);
        }
    }

    /// At the reader's end of file: an error to put in the body stream, unless the producer
    /// finished cleanly.
    fn end_of_file_error(&self) -> Option<io::Result<Bytes>> {
        match self.0.lock().ok()?.as_ref() {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(Err(io::Error::new(e.kind(), e.to_string()))),
            None => Some(Err(io::Error::other(
                "the build context producer stopped before finishing",
            ))),
        }
    }

    /// The producer's error, taken out, if it failed. Unlike [`Self::take_error`], a producer
    /// that has not finished is no failure: when the request to the daemon failed first (the
    /// daemon unreachable, descriptors run out), the producer may not even have started, and
    /// the request's own error is the one that explains it.
    pub(crate) fn take_failure(&self) -> Option<io::Error> {
        let mut slot = self.0.lock().ok()?;
        match slot.take() {
            Some(Err(e)) => Some(e),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// The producer's error, taken out, if it failed (or stopped without finishing).
    pub(crate) fn take_error(&self) -> Option<io::Error> {
        let mut slot = self.0.lock().ok()?;
        match slot.take() {
            Some(Ok(())) => {
                *slot = Some(Ok(()));
                None
            }
            Some(Err(e)) => Some(e),
            None => Some(io::Error::other(
                "the build context producer stopped before finishing",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    async fn collect(body: ContextBody) -> (Vec<u8>, Option<io::Error>, ProducerOutcome) {
        let (mut chunks, outcome) = body.into_stream();
        let mut data = Vec::new();
        while let Some(item) = chunks.next().await {
            match item {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(e) => return (data, Some(e), outcome),
            }
        }
        (data, None, outcome)
    }

    #[tokio::test]
    async fn producer_bytes_arrive_in_order() {
        let body = ContextBody::from_producer(|w| {
            for i in 0..100_000u32 {
                w.write_all(&i.to_le_bytes())?;
            }
            Ok(())
        });
        let (data, error, outcome) = collect(body).await;
        assert!(error.is_none());
        assert!(outcome.take_error().is_none());
        assert_eq!(data.len(), 400_000);
        assert_eq!(&data[399_996..], &99_999u32.to_le_bytes());
    }

    #[tokio::test]
    async fn producer_error_ends_the_stream_with_an_error() {
        let body = ContextBody::from_producer(|w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        });
        let (data, error, outcome) = collect(body).await;
        assert_eq!(data, b"partial");
        assert_eq!(error.unwrap().to_string(), "disk on fire");
        assert_eq!(outcome.take_error().unwrap().to_string(), "disk on fire");
    }

    #[tokio::test]
    async fn producer_panic_is_not_a_clean_end() {
        let body = ContextBody::from_producer(|w| {
            w.write_all(b"x")?;
            panic!("producer bug");
        });
        let (_, error, _) = collect(body).await;
        assert!(
            error
                .unwrap()
                .to_string()
                .contains("stopped before finishing")
        );
    }

    #[tokio::test]
    async fn async_reader_passes_through() {
        let body = ContextBody::from_async_read(&b"hello"[..]);
        let (data, error, outcome) = collect(body).await;
        assert_eq!(data, b"hello");
        assert!(error.is_none());
        assert!(outcome.take_error().is_none());
    }
}
