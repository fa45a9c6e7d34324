//! The balena API client: pine/OData v7 plus the user and registry-token endpoints.

use std::fmt;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use reqwest::{Method, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::models::{
    CreatedRelease, Fleet, Image, ImageUpdate, NewRelease, Release, ReleaseUpdate, ServiceSpec,
    Status, User,
};
use crate::retry::RetryPolicy;
use crate::secret::Secret;
use crate::time;

mod current;

/// How many services (and, per service, labels or variables) are created at a time, as the
/// reference's `p-map` concurrency.
const CONCURRENCY: usize = 5;

/// The default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A balena API client. Cheap to clone; the key is sent as a bearer token and never shown.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: Secret,
    timeout: Duration,
    retry: RetryPolicy,
    on_retry: Option<RetryNotice>,
}

/// Told about every retry of a request, with a line for people (the balena CLI's wording).
pub type RetryNotice = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// An OData literal in a `$filter`.
#[derive(Debug, Clone)]
enum Lit<'a> {
    Id(u64),
    Text(&'a str),
}

impl fmt::Display for Lit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Id(n) => write!(f, "{n}"),
            Lit::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

fn odata_filter(clauses: &[(&str, Lit<'_>)]) -> String {
    clauses
        .iter()
        .map(|(field, lit)| format!("{field} eq {lit}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// How to find a record that a failed POST may have created anyway.
struct Lookup<'a> {
    filter: Vec<(&'a str, Lit<'a>)>,
    /// A check the server cannot do for us (timestamps compare badly as OData literals).
    accept: Option<&'a (dyn Fn(&Value) -> bool + Sync)>,
}

impl<'a> Lookup<'a> {
    fn by(filter: Vec<(&'a str, Lit<'a>)>) -> Lookup<'a> {
        Lookup {
            filter,
            accept: None,
        }
    }
}

impl Api {
    /// A client for the API at `base_url` (e.g. `https://api.balena-cloud.com`), to which
    /// `/v7/…`, `/user/v1/whoami` and `/auth/v1/token` are added.
    ///
    /// # Errors
    /// [`ApiError::MissingApiKey`] for a blank key, [`ApiError::InvalidUrl`] for a URL that is
    /// not `http(s)://host[/prefix]`.
    pub fn new(base_url: &str, api_key: impl Into<Secret>) -> Result<Api, ApiError> {
        let key = api_key.into();
        if key.is_blank() {
            return Err(ApiError::MissingApiKey);
        }
        let invalid = |reason: &str| ApiError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment"));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("balena-compose/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Api {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
            key,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::API,
            on_retry: None,
        })
    }

    /// Sets the timeout of each request (each attempt of it).
    pub fn with_timeout(mut self, timeout: Duration) -> Api {
        self.timeout = timeout;
        self
    }

    /// Sets how transient failures are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Api {
        self.retry = retry;
        self
    }

    /// Calls `notice` before every retry (the library itself prints nothing; the CLI shows
    /// it, as the balena CLI does).
    pub fn with_retry_notice(mut self, notice: RetryNotice) -> Api {
        self.on_retry = Some(notice);
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // ---------------------------------------------------------------------------------------
    // Transport

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let request = format!("{method} {path}");
        let mut builder = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header(header::ACCEPT, "application/json")
            .timeout(self.timeout);
        if !query.is_empty() {
            builder = builder.query(query);
        }
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let broken = |e: reqwest::Error| self.transport_error(&request, &e);
        let response = builder.send().await.map_err(broken)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(broken)?;
        if !status.is_success() {
            let message = self.key.redact(&server_message(&bytes));
            return Err(ApiError::from_status(request, status.as_u16(), message));
        }
        // PATCH answers a plain `OK`: a body that is not JSON means "no value".
        Ok(serde_json::from_slice(&bytes).ok())
    }

    fn transport_error(&self, request: &str, error: &reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::Timeout {
                request: request.to_owned(),
                timeout: self.timeout,
            };
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ApiError::Transport {
            request: request.to_owned(),
            message: self.key.redact(&message),
        }
    }

    async fn pause(&self, error: &ApiError, attempt: u32) {
        let delay = self.retry.delay(attempt);
        let line = format!(
            "API call failed ({error}). Attempting retry {} of {} in {:.1} seconds",
            attempt,
            self.retry.max_attempts.saturating_sub(1),
            delay.as_secs_f64()
        );
        tracing::debug!("{line}");
        if let Some(notice) = &self.on_retry {
            notice(&line);
        }
        tokio::time::sleep(delay).await;
    }

    /// A call that is safe to repeat (GET, PATCH), retried on transient failures.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let mut attempt = 1;
        loop {
            match self.send_once(&method, path, query, body).await {
                Err(e) if e.is_transient() && self.retry.allows_retry_after(attempt) => {
                    self.pause(&e, attempt).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// The rows (`d`) of a GET.
    async fn get_rows(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, ApiError> {
        let value = self.send(Method::GET, path, query, None).await?;
        match value {
            Some(Value::Object(mut map)) => match map.remove("d") {
                Some(Value::Array(rows)) => Ok(rows),
                _ => Err(invalid(&format!("GET {path}"), "no `d` array")),
            },
            _ => Err(invalid(&format!("GET {path}"), "not a JSON object")),
        }
    }

    async fn find(&self, resource: &str, lookup: &Lookup<'_>) -> Result<Option<Value>, ApiError> {
        let query = [
            ("$filter", odata_filter(&lookup.filter)),
            ("$orderby", "id desc".to_owned()),
        ];
        let rows = self.get_rows(&format!("/v7/{resource}"), &query).await?;
        Ok(rows
            .into_iter()
            .find(|row| lookup.accept.is_none_or(|accept| accept(row))))
    }

    /// POSTs a record so that a retry never makes a second one: after a failure that may have
    /// been applied (a 5xx, a timeout, a broken connection), the record is looked up and
    /// reused before the POST is tried again.
    async fn post_idempotent(
        &self,
        resource: &str,
        body: &Value,
        lookup: &Lookup<'_>,
    ) -> Result<Value, ApiError> {
        let path = format!("/v7/{resource}");
        let mut attempt = 1;
        loop {
            let error = match self.send_once(&Method::POST, &path, &[], Some(body)).await {
                Ok(Some(record)) if record.get("id").is_some_and(Value::is_u64) => {
                    return Ok(record);
                }
                Ok(_) => return Err(invalid(&format!("POST {path}"), "no record id")),
                Err(e) => e,
            };
            // A unique-key clash after an earlier attempt means that attempt did create it.
            let clash_after_retry =
                attempt > 1 && matches!(error, ApiError::UniqueConstraint { .. });
            if !error.is_transient() && !clash_after_retry {
                return Err(error);
            }
            if let Some(existing) = self.find(resource, lookup).await? {
                tracing::debug!("POST {path} failed ({error}) but the record exists: reusing it");
                return Ok(existing);
            }
            if clash_after_retry || !self.retry.allows_retry_after(attempt) {
                return Err(error);
            }
            self.pause(&error, attempt).await;
            attempt += 1;
        }
    }

    async fn patch(&self, path: &str, body: &Value) -> Result<(), ApiError> {
        self.send(Method::PATCH, path, &[], Some(body))
            .await
            .map(drop)
    }

    // ---------------------------------------------------------------------------------------
    // Calls

    /// The user the key belongs to (`GET /user/v1/whoami`); the cheapest way to check a key.
    ///
    /// # Errors
    /// [`ApiError::Unauthorised`] for a wrong key, and the usual transport errors.
    pub async fn whoami(&self) -> Result<User, ApiError> {
        let path = "/user/v1/whoami";
        let value = self.send(Method::GET, path, &[], None).await?;
        decode(&format!("GET {path}"), value)
    }

    /// A fleet by slug (`org/name`, case-insensitive) or numeric id, with its device type and
    /// architecture.
    ///
    /// # Errors
    /// [`ApiError::FleetNotFound`] when it does not exist or the key cannot see it.
    pub async fn fleet(&self, fleet: &str) -> Result<Fleet, ApiError> {
        let mut query = vec![
            ("$select", "id,slug".to_owned()),
            (
                "$expand",
                "is_for__device_type($select=slug;$expand=is_of__cpu_architecture($select=slug)),\
                 application_type($select=supports_multicontainer)"
                    .to_owned(),
            ),
        ];
        let path = match fleet.parse::<u64>() {
            Ok(id) => format!("/v7/application({id})"),
            Err(_) => {
                let slug = fleet.to_lowercase();
                query.push(("$filter", odata_filter(&[("slug", Lit::Text(&slug))])));
                "/v7/application".to_owned()
            }
        };
        let rows = self.get_rows(&path, &query).await?;
        let Some(row) = rows.first() else {
            return Err(ApiError::FleetNotFound {
                fleet: fleet.to_owned(),
            });
        };
        parse_fleet(row).ok_or_else(|| invalid(&format!("GET {path}"), "incomplete application"))
    }

    async fn require(&self, resource: &'static str, id: u64) -> Result<u64, ApiError> {
        let rows = self
            .get_rows(
                &format!("/v7/{resource}({id})"),
                &[("$select", "id".to_owned())],
            )
            .await?;
        if rows.is_empty() {
            return Err(ApiError::MissingRecord { resource, id });
        }
        Ok(id)
    }

    /// `release.create`: the release (`running`), then per service (at most five at a time)
    /// its service record (found or created), a `running` image, the image's link to the
    /// release, and its labels and environment variables.
    ///
    /// If anything fails after the release exists, the release and the images made so far
    /// are marked `failed` (best effort) before the error is returned, so no release is left
    /// `running`.
    ///
    /// # Errors
    /// [`ApiError::MissingRecord`] when the user or fleet does not exist,
    /// [`ApiError::IncompleteRelease`] when the release was created but not all of its
    /// images, and any API error.
    pub async fn create_release(&self, new: &NewRelease) -> Result<CreatedRelease, ApiError> {
        let (user, fleet) = tokio::try_join!(
            self.require("user", new.user),
            self.require("application", new.fleet)
        )?;
        let mut body = json!({
            "is_created_by__user": user,
            "belongs_to__application": fleet,
            "composition": new.composition,
            "commit": new.commit,
            "status": Status::Running,
            "source": new.source,
            "start_timestamp": time::now(),
            "is_final": new.is_final,
        });
        if let Some(contract) = &new.contract {
            body["contract"] = contract.clone();
        }
        if let Some(semver) = new.semver.as_ref().filter(|s| !s.is_empty()) {
            body["semver"] = json!(semver);
        }
        let lookup = Lookup::by(vec![
            ("belongs_to__application", Lit::Id(fleet)),
            ("commit", Lit::Text(&new.commit)),
        ]);
        let record = self.post_idempotent("release", &body, &lookup).await?;
        let release: Release = decode("POST /v7/release", Some(record))?;

        let results: Vec<Result<Option<(String, Image)>, ApiError>> = stream::iter(&new.services)
            .map(|service| async {
                match new.reused.get(&service.name) {
                    Some(&image) => self
                        .link_image(release.id, image, service)
                        .await
                        .map(|()| None),
                    None => self
                        .create_service_image(fleet, release.id, service)
                        .await
                        .map(Some),
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut images = indexmap::IndexMap::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Some((name, image))) => {
                    images.insert(name, image);
                }
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let created = CreatedRelease {
            fleet,
            release,
            images,
        };
        if let Some(error) = first_error {
            let message = format!("Creating the release failed: {error}");
            let cleanup = self.fail_all(&created, &[], &message).await.err();
            return Err(ApiError::IncompleteRelease {
                commit: created.release.commit,
                id: created.release.id,
                source: Box::new(error),
                cleanup: cleanup.map(Box::new),
            });
        }
        Ok(created)
    }

    /// `getOrCreate` of a service: `GET service(application=…,service_name='…')`, else POST.
    async fn service_id(&self, fleet: u64, name: &str) -> Result<u64, ApiError> {
        let key = format!(
            "/v7/service(application={fleet},service_name={})",
            Lit::Text(name)
        );
        let rows = self.get_rows(&key, &[("$select", "id".to_owned())]).await?;
        let existing = rows
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_u64);
        if let Some(id) = existing {
            return Ok(id);
        }
        let lookup = Lookup::by(vec![
            ("application", Lit::Id(fleet)),
            ("service_name", Lit::Text(name)),
        ]);
        let record = self
            .post_idempotent(
                "service",
                &json!({"application": fleet, "service_name": name}),
                &lookup,
            )
            .await?;
        record
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::ServiceNotCreated {
                service: name.to_owned(),
            })
    }

    async fn create_service_image(
        &self,
        fleet: u64,
        release: u64,
        service: &ServiceSpec,
    ) -> Result<(String, Image), ApiError> {
        let service_id = self.service_id(fleet, &service.name).await?;
        let started = time::now();
        let mut body = json!({
            "is_a_build_of__service": service_id,
            "status": Status::Running,
            "start_timestamp": started,
        });
        if let Some(contract) = &service.contract {
            body["contract"] = contract.clone();
        }
        // Images have no natural key: ours is the one of this service, still running, that
        // started at the very millisecond we sent.
        let same_start = |row: &Value| {
            row.get("start_timestamp")
                .and_then(Value::as_str)
                .is_some_and(|t| same_instant(t, &started))
        };
        let lookup = Lookup {
            filter: vec![
                ("is_a_build_of__service", Lit::Id(service_id)),
                ("status", Lit::Text("running")),
            ],
            accept: Some(&same_start),
        };
        let record = self.post_idempotent("image", &body, &lookup).await?;
        let image: Image = decode("POST /v7/image", Some(record))?;
        self.link_image(release, image.id, service).await?;
        Ok((service.name.clone(), image))
    }

    /// Makes `image` part of `release`, with the service's labels and environment.
    async fn link_image(
        &self,
        release: u64,
        image: u64,
        service: &ServiceSpec,
    ) -> Result<(), ApiError> {
        let link_lookup = Lookup::by(vec![
            ("image", Lit::Id(image)),
            ("is_part_of__release", Lit::Id(release)),
        ]);
        let link = self
            .post_idempotent(
                "image__is_part_of__release",
                &json!({"is_part_of__release": release, "image": image}),
                &link_lookup,
            )
            .await?;
        let release_image = link
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("POST /v7/image__is_part_of__release", "no record id"))?;

        self.post_pairs(release_image, "image_label", "label_name", &service.labels)
            .await?;
        self.post_pairs(
            release_image,
            "image_environment_variable",
            "name",
            &service.environment,
        )
        .await
    }

    /// Labels or environment variables of one release image, five at a time.
    async fn post_pairs(
        &self,
        release_image: u64,
        resource: &str,
        name_field: &str,
        pairs: &indexmap::IndexMap<String, String>,
    ) -> Result<(), ApiError> {
        stream::iter(pairs)
            .map(|(name, value)| async move {
                let body =
                    json!({"release_image": release_image, name_field: name, "value": value});
                let lookup = Lookup::by(vec![
                    ("release_image", Lit::Id(release_image)),
                    (name_field, Lit::Text(name)),
                ]);
                self.post_idempotent(resource, &body, &lookup)
                    .await
                    .map(drop)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// `PATCH image(<id>)`.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn update_image(&self, id: u64, update: &ImageUpdate) -> Result<(), ApiError> {
        self.patch(&format!("/v7/image({id})"), &to_value(update)?)
            .await
    }

    /// `PATCH release(<id>)`.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn update_release(&self, id: u64, update: &ReleaseUpdate) -> Result<(), ApiError> {
        self.patch(&format!("/v7/release({id})"), &to_value(update)?)
            .await
    }

    /// Sets the release's note.
    ///
    /// # Errors
    /// Any API error, after the retries.
    pub async fn set_note(&self, release: u64, note: &str) -> Result<(), ApiError> {
        let update = ReleaseUpdate {
            note: Some(note.to_owned()),
            ..ReleaseUpdate::default()
        };
        self.update_release(release, &update).await
    }

    /// Sets (creates or changes) a release tag.
    ///
    /// # Errors
    /// [`ApiError::InvalidTagKey`] for an empty key or one with whitespace; API errors.
    pub async fn set_release_tag(
        &self,
        release: u64,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(ApiError::InvalidTagKey {
                key: key.to_owned(),
            });
        }
        let lookup = Lookup::by(vec![
            ("release", Lit::Id(release)),
            ("tag_key", Lit::Text(key)),
        ]);
        let existing = self.find("release_tag", &lookup).await?;
        match existing.and_then(|row| row.get("id").and_then(Value::as_u64)) {
            Some(id) => {
                self.patch(&format!("/v7/release_tag({id})"), &json!({"value": value}))
                    .await
            }
            None => {
                let body = json!({"release": release, "tag_key": key, "value": value});
                self.post_idempotent("release_tag", &body, &lookup)
                    .await
                    .map(drop)
            }
        }
    }

    /// A registry token (`GET /auth/v1/token`) that may pull and push each repository of
    /// `registry`, e.g. `registry2.balena-cloud.com` and `v2/c089c4…`.
    ///
    /// # Errors
    /// Any API error (never swallowed, unlike the reference), or a response without `token`.
    pub async fn registry_token<'a>(
        &self,
        registry: &str,
        repositories: impl IntoIterator<Item = &'a str>,
    ) -> Result<Secret, ApiError> {
        let path = "/auth/v1/token";
        let mut query = vec![("service", registry.to_owned())];
        query.extend(
            repositories
                .into_iter()
                .map(|repo| ("scope", format!("repository:{repo}:pull,push"))),
        );
        let value = self.send(Method::GET, path, &query, None).await?;
        value
            .as_ref()
            .and_then(|v| v.get("token"))
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| invalid(&format!("GET {path}"), "no token"))
    }

    /// The registry and token to push a release's images: the registry of the first image,
    /// a token for every image's repository plus those of the fleet's previous successful
    /// release (failing to list those only loses blob mounting, so it is logged, not fatal).
    /// `None` when there is no image.
    ///
    /// # Errors
    /// An image location that cannot be parsed, or the token request failing.
    pub async fn push_token(
        &self,
        created: &CreatedRelease,
    ) -> Result<Option<(String, Secret)>, crate::Error> {
        let mut targets = Vec::new();
        for image in created.images.values() {
            targets.push(crate::push::ImageLocation::parse(&image.location)?);
        }
        let Some(first) = targets.first() else {
            return Ok(None);
        };
        let registry = first.registry.clone();
        let mut repos: Vec<String> = targets
            .iter()
            .filter(|t| t.registry == registry)
            .map(|t| t.repository.clone())
            .collect();
        {
            match self.previous_image_locations(created.fleet).await {
                Ok(previous) => {
                    for location in previous {
                        if let Ok(t) = crate::push::ImageLocation::parse(&location)
                            && t.registry == registry
                            && !repos.contains(&t.repository)
                        {
                            tracing::debug!(
                                "Requesting access to previously pushed image repo ({})",
                                t.repository
                            );
                            repos.push(t.repository);
                        }
                    }
                }
                Err(e) => tracing::debug!("could not list the previous release's images: {e}"),
            }
        }
        let token = self
            .registry_token(&registry, repos.iter().map(String::as_str))
            .await?;
        Ok(Some((registry, token)))
    }

    /// Marks every image of `created` that is not in `finished` as `failed` with `message`,
    /// then the release `failed`. Every update is tried even when one fails. Use it on any
    /// error or interruption after the release exists.
    ///
    /// # Errors
    /// The error of marking the release `failed`: it was left `running`. An image that could
    /// not be marked is no error once its release is `failed` (the release decides what
    /// devices run), so it is only logged.
    pub async fn fail_all(
        &self,
        created: &CreatedRelease,
        finished: &[u64],
        message: &str,
    ) -> Result<(), ApiError> {
        let failed = ImageUpdate::failed(message);
        let unfinished: Vec<u64> = created
            .images
            .values()
            .map(|i| i.id)
            .filter(|id| !finished.contains(id))
            .collect();
        let results: Vec<Result<(), ApiError>> = stream::iter(unfinished)
            .map(|id| {
                let failed = &failed;
                async move { self.update_image(id, failed).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for error in results.into_iter().filter_map(Result::err) {
            tracing::debug!("could not mark an image of a failed release failed: {error}");
        }
        self.update_release(created.release.id, &ReleaseUpdate::finished(Status::Failed))
            .await
    }
}

fn invalid(request: &str, message: &str) -> ApiError {
    ApiError::InvalidResponse {
        request: request.to_owned(),
        message: message.to_owned(),
    }
}

fn decode<T: DeserializeOwned>(request: &str, value: Option<Value>) -> Result<T, ApiError> {
    let value = value.ok_or_else(|| invalid(request, "not JSON"))?;
    serde_json::from_value(value).map_err(|e| invalid(request, &e.to_string()))
}

fn to_value(update: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(update).map_err(|e| invalid("encoding an update", &e.to_string()))
}

/// The text of an error body: a JSON `error`/`message` string, or the body itself, capped.
fn server_message(body: &[u8]) -> String {
    let json = serde_json::from_slice::<Value>(body).ok();
    let field = json.as_ref().and_then(|v| {
        ["error", "message"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
    });
    let text = match field {
        Some(f) => f.to_owned(),
        None => String::from_utf8_lossy(body).trim().to_owned(),
    };
    text.chars().take(2000).collect()
}

/// Expanded navigation properties come as an array of one in v7 (or, leniently, an object).
fn as_list(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

fn parse_fleet(row: &Value) -> Option<Fleet> {
    let device_type = *as_list(row.get("is_for__device_type")).first()?;
    let arch = *as_list(device_type.get("is_of__cpu_architecture")).first()?;
    let supports_multicontainer = as_list(row.get("application_type"))
        .first()
        .and_then(|t| t.get("supports_multicontainer"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Some(Fleet {
        id: row.get("id")?.as_u64()?,
        slug: row.get("slug")?.as_str()?.to_owned(),
        device_type: device_type.get("slug")?.as_str()?.to_owned(),
        arch: arch.get("slug")?.as_str()?.to_owned(),
        supports_multicontainer,
    })
}

/// Whether two API timestamps name the same millisecond (the server may add precision or
/// spell the zone differently).
fn same_instant(a: &str, b: &str) -> bool {
    const MILLIS: usize = "YYYY-MM-DDTHH:MM:SS.mmm".len();
    a.get(..MILLIS).is_some_and(|p| Some(p) == b.get(..MILLIS))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn filters_quote_text() {
        assert_eq!(
            odata_filter(&[("a", Lit::Id(3)), ("b", Lit::Text("it's"))]),
            "a eq 3 and b eq 'it''s'"
        );
    }

    #[test]
    fn new_rejects_blank_keys_and_bad_urls() {
        assert!(matches!(
            Api::new("http://x", " "),
            Err(ApiError::MissingApiKey)
        ));
        assert!(matches!(
            Api::new("ftp://x", "k"),
            Err(ApiError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Api::new("not a url", "k"),
            Err(ApiError::InvalidUrl { .. })
        ));
        let api = Api::new("https://api.example.com/", "sekrit").unwrap();
        assert_eq!(api.base_url(), "https://api.example.com");
        assert!(!format!("{api:?}").contains("sekrit"));
    }

    #[test]
    fn fleets_parse_from_expanded_rows() {
        let row = json!({"id": 5, "slug": "org/app",
            "is_for__device_type": [{"slug": "raspberrypi3", "is_of__cpu_architecture": [{"slug": "armv7hf"}]}],
            "application_type": [{"supports_multicontainer": false}]});
        let fleet = parse_fleet(&row).unwrap();
        assert_eq!(
            (fleet.device_type.as_str(), fleet.arch.as_str()),
            ("raspberrypi3", "armv7hf")
        );
        assert!(!fleet.supports_multicontainer);
        assert!(parse_fleet(&json!({"id": 5, "slug": "x"})).is_none());
    }

    #[test]
    fn server_messages_prefer_json_error_fields() {
        assert_eq!(
            server_message(br#"{"error":"Patch Image Error"}"#),
            "Patch Image Error"
        );
        assert_eq!(server_message(b" Unauthorized \n"), "Unauthorized");
        assert!(same_instant(
            "2024-01-01T00:00:00.123Z",
            "2024-01-01T00:00:00.123+00:00"
        ));
        assert!(!same_instant(
            "2024-01-01T00:00:00.123Z",
            "2024-01-01T00:00:00.124Z"
        ));
    }
}
