//! Progress of an update, as typed events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

/// Something that happened during an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// Another apply holds the engine's apply lock; this one waits for it.
    #[serde(rename_all = "camelCase")]
    WaitingForEngine {
        /// The holder's process id, when known.
        pid: Option<u32>,
    },
    /// A step began.
    #[serde(rename_all = "camelCase")]
    StepStarted {
        /// The action (`fetch`, `kill`, `start`, …).
        action: String,
        /// What it acts on (service, network, volume, image).
        subject: String,
    },
    /// A step completed.
    #[serde(rename_all = "camelCase")]
    StepFinished {
        /// The action.
        action: String,
        /// What it acted on.
        subject: String,
    },
    /// A step failed; the update ends with the error.
    #[serde(rename_all = "camelCase")]
    StepFailed {
        /// The action.
        action: String,
        /// What it acted on.
        subject: String,
        /// The error.
        error: String,
    },
    /// Download progress of an image, over all its layers.
    #[serde(rename_all = "camelCase")]
    FetchProgress {
        /// The service.
        service: String,
        /// The image reference.
        image: String,
        /// Percent done.
        percent: u8,
    },
    /// A fetch attempt failed and will be retried.
    #[serde(rename_all = "camelCase")]
    FetchRetry {
        /// The service.
        service: String,
        /// The image reference.
        image: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Why.
        error: String,
    },
    /// An optional service whose contract the device does not meet is left out.
    #[serde(rename_all = "camelCase")]
    ServiceSkipped {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// A warning (ignored compose keys, …).
    #[serde(rename_all = "camelCase")]
    Warning {
        /// The message.
        message: String,
    },
}

/// Download progress by service: image and percent.
pub(crate) type Progress = Arc<Mutex<BTreeMap<String, (String, u8)>>>;

/// Sends events when someone listens, and keeps the download progress for `state()`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Emitter {
    pub tx: Option<UnboundedSender<Event>>,
    pub progress: Progress,
}

impl Emitter {
    pub fn emit(&self, event: Event) {
        if let Event::FetchProgress {
            service,
            image,
            percent,
        } = &event
            && let Ok(mut p) = self.progress.lock()
        {
            p.insert(service.clone(), (image.clone(), *percent));
        }
        if let Some(tx) = &self.tx {
            // A receiver that went away just stops listening; the update goes on.
            let _ = tx.send(event);
        }
    }
}
