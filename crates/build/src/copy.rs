//! An image copied from one daemon to another (`build --builder … --load`): the source's
//! `docker save` tar streamed into the destination's `docker load` through this process,
//! chunk by chunk, never held whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use bollard::query_parameters::ImportImageOptionsBuilder;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::error::{Error, Result};

/// What [`copy_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The image's id on the destination (`sha256:…`), the same as on the source.
    pub id: String,
    /// The bytes of the tar that went through.
    pub bytes: u64,
}

/// Copies `image` (a name or id) from the daemon `from` to the daemon `to`: `from`'s export
/// is the body of `to`'s load as it comes. A failure on either side ends both.
pub async fn copy_image(from: &Docker, to: &Docker, image: &str) -> Result<Copied> {
    let moved = Arc::new(AtomicU64::new(0));
    let tar = counted(from.export_image(image), Arc::clone(&moved));
    let options = ImportImageOptionsBuilder::new().quiet(true).build();
    let mut load = to.import_image_stream(options, tar, None);
    while let Some(step) = load.next().await {
        step.map_err(|e| Error::docker(format!("copying image {image} between daemons"), e))?;
    }
    let inspected = to
        .inspect_image(image)
        .await
        .map_err(|e| Error::docker(format!("inspecting the copied image {image}"), e))?;
    Ok(Copied {
        id: inspected.id.unwrap_or_default(),
        bytes: moved.load(Ordering::Relaxed),
    })
}

/// `chunks` passed on one by one as they come, their bytes added to `moved`.
fn counted<E>(
    chunks: impl Stream<Item = std::result::Result<Bytes, E>>,
    moved: Arc<AtomicU64>,
) -> impl Stream<Item = std::result::Result<Bytes, E>> {
    chunks.inspect_ok(move |chunk| {
        moved.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An export that never ends still yields its first chunks: nothing waits for the whole.
    #[tokio::test]
    async fn chunks_pass_through_as_they_come() {
        let endless =
            futures::stream::repeat(Bytes::from_static(&[0u8; 1024])).map(Ok::<_, std::io::Error>);
        let moved = Arc::new(AtomicU64::new(0));
        let first: Vec<_> = counted(endless, Arc::clone(&moved)).take(3).collect().await;
        assert_eq!(first.len(), 3);
        assert_eq!(moved.load(Ordering::Relaxed), 3 * 1024);
    }
}
