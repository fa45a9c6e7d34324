//! Image fetch: a regular pull with retries and backoff, or a v3 delta on balenaEngine.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptions, TagImageOptions};
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, engine};
use crate::events::{Emitter, Event};
use crate::options::Options;

/// The kind of engine the composer talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// balenaEngine: v3 deltas are applied by the engine.
    Balena,
    /// Docker/moby: regular pulls only.
    Docker,
}

/// Asks the engine what it is (`GET /version`).
pub async fn detect_engine(docker: &Docker) -> Result<EngineKind> {
    let v = docker
        .version()
        .await
        .map_err(engine("reading the engine version"))?;
    let balena = v
        .components
        .unwrap_or_default()
        .iter()
        .any(|c| c.name.to_lowercase().contains("balena"))
        || v.version
            .is_some_and(|s| s.to_lowercase().contains("balena"));
    Ok(if balena {
        EngineKind::Balena
    } else {
        EngineKind::Docker
    })
}

/// The registry host of a reference, when it names one.
pub(crate) fn registry_of(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// What one fetch needs.
#[derive(Debug)]
pub(crate) struct Fetch<'a> {
    pub service: &'a str,
    pub image: &'a str,
    /// A local image of the same service to compute a delta from.
    pub delta_source: Option<&'a str>,
}

/// Fetches an image with retries; returns its ID. Cancelling ends it with
/// [`Error::Cancelled`] and leaves everything else as it was.
pub(crate) async fn fetch(
    docker: &Docker,
    job: &Fetch<'_>,
    options: &Options,
    kind: EngineKind,
    events: &Emitter,
    cancel: &CancellationToken,
) -> Result<String> {
    let attempts = options.fetch_attempts.max(1);
    let mut delay = options.fetch_backoff;
    let mut attempt = 1;
    loop {
        let result = tokio::select! {
            () = cancel.cancelled() => return Err(Error::Cancelled),
            r = fetch_once(docker, job, options, kind, events) => r,
        };
        match result {
            Ok(id) => return Ok(id),
            Err(message) if attempt >= attempts => {
                return Err(Error::Fetch {
                    service: job.service.to_owned(),
                    image: job.image.to_owned(),
                    attempts: attempt,
                    message,
                });
            }
            Err(message) => {
                events.emit(Event::FetchRetry {
                    service: job.service.to_owned(),
                    image: job.image.to_owned(),
                    attempt,
                    error: message,
                });
                tokio::select! {
                    () = cancel.cancelled() => return Err(Error::Cancelled),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = delay.saturating_mul(2);
                attempt += 1;
            }
        }
    }
}

async fn fetch_once(
    docker: &Docker,
    job: &Fetch<'_>,
    options: &Options,
    kind: EngineKind,
    events: &Emitter,
) -> Result<String, String> {
    if kind == EngineKind::Balena
        && let (Some(delta), Some(source)) = (&options.delta, job.delta_source)
    {
        match fetch_delta(docker, job, source, delta, options, events).await {
            Ok(id) => return Ok(id),
            Err(DeltaError::Fallback(m)) => events.emit(Event::Warning {
                message: format!(
                    "service {}: no delta ({m}); pulling {} in full",
                    job.service, job.image
                ),
            }),
            Err(DeltaError::Retry(m)) => return Err(m),
        }
    }
    pull(
        docker,
        job.service,
        job.image,
        registry_credentials(job.image, options),
        events,
    )
    .await?;
    let inspect = docker
        .inspect_image(job.image)
        .await
        .map_err(|e| format!("inspecting the pulled image: {e}"))?;
    inspect
        .id
        .ok_or_else(|| "the pulled image has no ID".to_owned())
}

/// `d_<uuid>` / API key for a reference that names a registry, when the device has both.
fn registry_credentials(image: &str, options: &Options) -> Option<DockerCredentials> {
    let registry = registry_of(image)?;
    let key = options.api_key.clone()?;
    if options.device.uuid.is_empty() {
        return None;
    }
    Some(DockerCredentials {
        username: Some(format!("d_{}", options.device.uuid)),
        password: Some(key),
        serveraddress: Some(registry.to_owned()),
        ..DockerCredentials::default()
    })
}

async fn pull(
    docker: &Docker,
    service: &str,
    image: &str,
    credentials: Option<DockerCredentials>,
    events: &Emitter,
) -> Result<(), String> {
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..CreateImageOptions::default()
    };
    let mut stream = docker.create_image(Some(options), None, credentials);
    let mut layers: HashMap<String, (i64, i64)> = HashMap::new();
    let mut last = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let (Some(id), Some(detail)) = (info.id, info.progress_detail)
            && let (Some(current), Some(total)) = (detail.current, detail.total)
            && total > 0
        {
            layers.insert(id, (current, total));
            let (done, all) = layers
                .values()
                .fold((0i64, 0i64), |(d, a), (c, t)| (d + c, a + t));
            let percent =
                u8::try_from((done.saturating_mul(100) / all.max(1)).clamp(0, 100)).unwrap_or(100);
            if last != Some(percent) {
                last = Some(percent);
                events.emit(Event::FetchProgress {
                    service: service.to_owned(),
                    image: image.to_owned(),
                    percent,
                });
            }
        }
    }
    events.emit(Event::FetchProgress {
        service: service.to_owned(),
        image: image.to_owned(),
        percent: 100,
    });
    Ok(())
}

enum DeltaError {
    /// The delta server cannot serve this delta: pull normally.
    Fallback(String),
    /// A transient failure: retry the fetch later, no fallback.
    Retry(String),
}

/// A v3 delta (spec §4): token from the API, delta image name from the delta server, pulled
/// through the engine, which rebuilds the target image from the local source.
async fn fetch_delta(
    docker: &Docker,
    job: &Fetch<'_>,
    source: &str,
    delta: &crate::options::DeltaOptions,
    options: &Options,
    events: &Emitter,
) -> Result<String, DeltaError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(59))
        .build()
        .map_err(retry)?;
    let request = DeltaRequest {
        client,
        delta,
        image: job.image,
        source,
    };
    let token = request.registry_token(options).await?;
    let name = request.delta_image(&token).await?;
    let credentials = DockerCredentials {
        registrytoken: Some(token),
        ..DockerCredentials::default()
    };
    let mut last = String::new();
    for _ in 0..3 {
        let pulled = pull(
            docker,
            job.service,
            &name,
            Some(credentials.clone()),
            events,
        )
        .await;
        match pulled {
            Ok(()) => return tag_delta(docker, &name, job.image).await,
            Err(e) => last = e,
        }
    }
    Err(DeltaError::Fallback(format!(
        "applying the delta failed 3 times: {last}"
    )))
}

/// A transient delta failure.
fn retry(e: impl ToString) -> DeltaError {
    DeltaError::Retry(e.to_string())
}

/// The repository of an image reference: without registry, tag or digest.
fn repository_of(image: &str) -> String {
    let without_registry = image.split_once('/').map_or(image, |(_, r)| r);
    let without_digest = without_registry
        .split('@')
        .next()
        .unwrap_or(without_registry);
    match without_digest.rsplit_once(':') {
        Some((r, _)) => r.to_owned(),
        None => without_digest.to_owned(),
    }
}

/// A delta from `source` to `image`, asked of the API and the delta server.
struct DeltaRequest<'a> {
    client: reqwest::Client,
    delta: &'a crate::options::DeltaOptions,
    image: &'a str,
    source: &'a str,
}

impl DeltaRequest<'_> {
    /// A registry token from the API to pull both `image` and `source` (the device's key
    /// authenticates the request when there is one).
    async fn registry_token(&self, options: &Options) -> Result<String, DeltaError> {
        let (client, delta, image, source) = (&self.client, self.delta, self.image, self.source);
        let registry = registry_of(image).unwrap_or_default();
        let token_url = format!("{}/auth/v1/token", delta.api_endpoint.trim_end_matches('/'));
        let mut request = client.get(&token_url).query(&[
            ("service", registry.to_owned()),
            ("scope", format!("repository:{}:pull", repository_of(image))),
            (
                "scope",
                format!("repository:{}:pull", repository_of(source)),
            ),
        ]);
        if let Some(key) = &options.api_key {
            request = request.basic_auth(format!("d_{}", options.device.uuid), Some(key));
        }
        let token: Value = request
            .send()
            .await
            .map_err(retry)?
            .json()
            .await
            .map_err(retry)?;
        token
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| retry("the API issued no registry token"))
    }

    /// The name of the delta image from `source` to `image`, asked of the delta server.
    async fn delta_image(&self, token: &str) -> Result<String, DeltaError> {
        let (client, delta, image, source) = (&self.client, self.delta, self.image, self.source);
        let url = format!("{}/api/v3/delta", delta.endpoint.trim_end_matches('/'));
        let response = client
            .get(&url)
            .query(&[("src", source), ("dest", image)])
            .bearer_auth(token)
            .send()
            .await
            .map_err(retry)?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            502 | 504 => return Err(retry("the delta is still being generated")),
            401 => return Err(retry("the delta server refused the token")),
            400..=499 => {
                return Err(DeltaError::Fallback(format!(
                    "delta server answered {status}"
                )));
            }
            _ => return Err(retry(format!("delta server answered {status}"))),
        }
        let body: Value = response.json().await.map_err(retry)?;
        body.get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| DeltaError::Fallback("the delta server named no image".to_owned()))
    }
}

/// Tags the image the engine rebuilt from delta `name` as `image`; returns its id.
async fn tag_delta(docker: &Docker, name: &str, image: &str) -> Result<String, DeltaError> {
    let id = docker
        .inspect_image(name)
        .await
        .map_err(retry)?
        .id
        .ok_or_else(|| retry("the delta image has no ID"))?;
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    };
    let options = TagImageOptions {
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
    };
    docker.tag_image(&id, Some(options)).await.map_err(retry)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_part() {
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), Some("127.0.0.1:5000"));
        assert_eq!(
            registry_of("registry2.balena-cloud.com/v2/x"),
            Some("registry2.balena-cloud.com")
        );
        assert_eq!(registry_of("local/amd64-busybox:latest"), None);
        assert_eq!(registry_of("busybox"), None);
    }
}
