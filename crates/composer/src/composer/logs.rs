//! A service's output, streamed from its newest container.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures::stream::{BoxStream, StreamExt};

use super::Composer;
use crate::engine;
use crate::error::{Error, Result, engine as engine_err};

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// True for stderr.
    pub stderr: bool,
    /// The text, without the trailing newline.
    pub message: String,
}

/// Which output [`Composer::logs_with`] streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Keep streaming new output.
    pub follow: bool,
    /// Only the last this many lines (default: all).
    pub tail: Option<u64>,
    /// Only output since this Unix time, in seconds.
    pub since: Option<i32>,
    /// Prefix each line with the engine's RFC 3339 timestamp.
    pub timestamps: bool,
}

impl LogQuery {
    /// The engine's options for this query (both streams).
    fn options(&self) -> LogsOptions {
        LogsOptions {
            follow: self.follow,
            stdout: true,
            stderr: true,
            tail: self
                .tail
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            since: self.since.unwrap_or(0),
            timestamps: self.timestamps,
            ..LogsOptions::default()
        }
    }
}

impl Composer {
    /// Streams the output of the newest container of `service`.
    pub async fn logs(
        &self,
        service: &str,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogLine>>> {
        let query = LogQuery {
            follow,
            ..LogQuery::default()
        };
        self.logs_with(service, &query).await
    }

    /// Streams the output of the newest container of `service`, as `query` asks.
    pub async fn logs_with(
        &self,
        service: &str,
        query: &LogQuery,
    ) -> Result<BoxStream<'static, Result<LogLine>>> {
        let container = self.newest_container(service).await?;
        let context = format!("reading the logs of {service}");
        let stream =
            self.docker
                .logs(&container, Some(query.options()))
                .map(move |item| match item {
                    Ok(out) => Ok(log_line(out)),
                    Err(e) => Err(engine_err(context.clone())(e)),
                });
        Ok(stream.boxed())
    }

    /// The id of the newest container of `service`.
    async fn newest_container(&self, service: &str) -> Result<String> {
        let current = engine::read_app(&self.docker, &self.app_ref()).await?;
        current
            .services
            .iter()
            .filter(|s| s.name == service)
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .and_then(|s| s.container_id.clone())
            .ok_or_else(|| Error::Container {
                container: service.to_owned(),
                message: "the service has no container".to_owned(),
            })
    }
}

/// One chunk of output as a line, without its line ending.
fn log_line(out: LogOutput) -> LogLine {
    let stderr = matches!(out, LogOutput::StdErr { .. });
    let bytes = out.into_bytes();
    let message = String::from_utf8_lossy(&bytes)
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    LogLine { stderr, message }
}
