//! An in-process fake of the balena API, for tests.
//!
//! It speaks the subset of the real protocol that balena-compose's release client uses:
//! pine/OData v7 resources under `/v7/…` (`application`, `user`, `release`, `service`,
//! `image`, `image__is_part_of__release`, `image_label`, `image_environment_variable`,
//! `release_tag`), `GET /user/v1/whoami`, `GET /auth/v1/token`, and for registered devices
//! ([`FakeDevice`]) `GET /device/v3/<uuid>/state`. Every request it receives
//! and every record it holds are kept in a [`State`] that tests can inspect; requests without
//! the configured bearer token are answered `401`; and [`Fault`]s make it answer errors, hang
//! or drop the connection, before or after applying a request.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use balena_api_fake::{FakeApi, FakeConfig};
//!
//! let fake = FakeApi::start(FakeConfig::default()).await?;
//! assert!(fake.url().starts_with("http://127.0.0.1:"));
//! // The seeded fleet is there, no release yet.
//! assert_eq!(fake.records("application").len(), 1);
//! assert!(fake.records("release").is_empty());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod device;
mod odata;

pub use device::{FakeDevice, fleet_uuid};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use odata::{ODataError, Query};

/// A fleet (an `application` record) the fake knows about from the start.
#[derive(Debug, Clone)]
pub struct FakeFleet {
    /// The application id.
    pub id: u64,
    /// The fleet slug, `org/name`.
    pub slug: String,
    /// The device type slug, e.g. `intel-nuc`.
    pub device_type: String,
    /// The CPU architecture slug of the device type, e.g. `amd64`.
    pub arch: String,
    /// Whether the fleet accepts more than one service.
    pub supports_multicontainer: bool,
}

/// How a fake API starts.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only bearer token the fake accepts.
    pub api_key: String,
    /// The id of the user the key belongs to.
    pub user_id: u64,
    /// The username `whoami` answers.
    pub username: String,
    /// The fleets that exist.
    pub fleets: Vec<FakeFleet>,
    /// The registry host that image locations point at (`<host>/v2/<hash>`).
    pub registry_host: String,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            api_key: "fake-balena-api-key-0123456789".to_owned(),
            user_id: 7,
            username: "gh_tester".to_owned(),
            fleets: vec![FakeFleet {
                id: 1001,
                slug: "gh_tester/testfleet".to_owned(),
                device_type: "intel-nuc".to_owned(),
                arch: "amd64".to_owned(),
                supports_multicontainer: true,
            }],
            registry_host: "127.0.0.1:5000".to_owned(),
        }
    }
}

/// When a fault strikes relative to the request's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPhase {
    /// The request is not applied.
    BeforeApply,
    /// The request is applied (records created or changed), then the fault answers.
    AfterApply,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer this status with a JSON error body.
    Status(u16),
    /// Wait this long, then answer normally (or apply the phase's effect).
    Hang(Duration),
    /// Start a response and drop the connection before its body completes.
    DropConnection,
}

/// A fault for the next `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The HTTP method, e.g. `PATCH`.
    pub method: String,
    /// A prefix of the (percent-decoded) path, e.g. `/v7/image(`.
    pub path_prefix: String,
    /// How many matching requests it still affects.
    pub times: usize,
    /// What it does.
    pub kind: FaultKind,
    /// Before or after the request is applied.
    pub phase: FaultPhase,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The percent-decoded path.
    pub path: String,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// Whether it carried the right bearer token.
    pub authorized: bool,
    /// The status the fake answered (0 when the connection was dropped).
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything the fake received and holds.
#[derive(Debug, Default)]
pub struct State {
    /// Every request, in arrival order.
    pub requests: Vec<RecordedRequest>,
    /// Records per resource name, in creation order; each has a numeric `id`.
    pub resources: BTreeMap<String, Vec<Value>>,
    /// The faults still pending.
    pub faults: Vec<Fault>,
    /// Registry tokens handed out, with the scopes they were asked for.
    pub tokens: Vec<(String, Vec<String>)>,
    next_id: u64,
}

impl State {
    /// The records of one resource.
    pub fn records(&self, resource: &str) -> &[Value] {
        self.resources.get(resource).map_or(&[], Vec::as_slice)
    }

    /// The record of a resource with this id.
    pub fn record(&self, resource: &str, id: u64) -> Option<&Value> {
        self.records(resource)
            .iter()
            .find(|r| record_id(r) == Some(id))
    }

    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|f| f.times > 0 && f.method == method && path.starts_with(&f.path_prefix))?;
        let fault = &mut self.faults[index];
        fault.times -= 1;
        let taken = fault.clone();
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(taken)
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A running fake API; it stops when dropped.
#[derive(Debug)]
pub struct FakeApi {
    url: String,
    api_key: String,
    state: Arc<Mutex<State>>,
    handle: JoinHandle<()>,
    shutdown: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Shared {
    config: FakeConfig,
    state: Arc<Mutex<State>>,
    /// Makes image locations unique across fakes, so parallel tests do not share registry repos.
    nonce: u64,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not hide what the fake recorded.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeApi {
    /// Binds `127.0.0.1:0`, seeds the user and fleets, and serves until dropped.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeApi> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let mut state = State::default();
        seed(&mut state, &config);
        let state = Arc::new(Mutex::new(state));
        let shared = Arc::new(Shared {
            config: config.clone(),
            state: Arc::clone(&state),
            nonce: unique_nonce(),
        });
        let app = Router::new().fallback(handle).with_state(shared);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            // The server only ends on shutdown or a listener failure; a test sees the latter
            // as refused connections.
            let _ = serve.await;
        });
        Ok(FakeApi {
            url: format!("http://{addr}"),
            api_key: config.api_key,
            state,
            handle,
            shutdown: Some(tx),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bearer token the fake accepts.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The state, locked; keep the guard short-lived.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A copy of every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The requests with this method whose path starts with `path_prefix`.
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// A copy of the records of one resource.
    pub fn records(&self, resource: &str) -> Vec<Value> {
        self.state().records(resource).to_vec()
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Answers `status` to the next `times` requests matching, without applying them.
    pub fn fail_next(&self, method: &str, path_prefix: &str, times: usize, status: u16) {
        self.inject(Fault {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            times,
            kind: FaultKind::Status(status),
            phase: FaultPhase::BeforeApply,
        });
    }

    /// Applies the next `times` requests matching, then answers `status` anyway.
    pub fn fail_next_after_apply(
        &self,
        method: &str,
        path_prefix: &str,
        times: usize,
        status: u16,
    ) {
        self.inject(Fault {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            times,
            kind: FaultKind::Status(status),
            phase: FaultPhase::AfterApply,
        });
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.abort();
    }
}

fn unique_nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn seed(state: &mut State, config: &FakeConfig) {
    state.resources.insert(
        "user".to_owned(),
        vec![json!({"id": config.user_id, "username": config.username})],
    );
    let fleets = config
        .fleets
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "uuid": fleet_uuid(f.id),
                "slug": f.slug.to_lowercase(),
                "app_name": f.slug.rsplit('/').next().unwrap_or(&f.slug),
                "is_for__device_type": [{
                    "id": f.id + 500,
                    "slug": f.device_type,
                    "is_of__cpu_architecture": [{"id": f.id + 900, "slug": f.arch}],
                }],
                "application_type": [{"supports_multicontainer": f.supports_multicontainer}],
            })
        })
        .collect();
    state.resources.insert("application".to_owned(), fleets);
    let max_seeded = config
        .fleets
        .iter()
        .map(|f| f.id)
        .chain([config.user_id])
        .max()
        .unwrap_or(0);
    state.next_id = max_seeded + 1000;
}

fn record_id(record: &Value) -> Option<u64> {
    record.get("id").and_then(Value::as_u64)
}

/// The unique keys of each writable resource, and which fields must name existing records.
struct ResourceRules {
    unique: &'static [&'static str],
    foreign: &'static [(&'static str, &'static str)],
}

fn rules(resource: &str) -> Option<ResourceRules> {
    let r = |unique, foreign| Some(ResourceRules { unique, foreign });
    match resource {
        "release" => r(
            &["belongs_to__application", "commit"],
            &[
                ("belongs_to__application", "application"),
                ("is_created_by__user", "user"),
            ],
        ),
        "service" => r(
            &["application", "service_name"],
            &[("application", "application")],
        ),
        "image" => r(&[], &[("is_a_build_of__service", "service")]),
        "image__is_part_of__release" => r(
            &["image", "is_part_of__release"],
            &[("image", "image"), ("is_part_of__release", "release")],
        ),
        "image_label" => r(
            &["release_image", "label_name"],
            &[("release_image", "image__is_part_of__release")],
        ),
        "image_environment_variable" => r(
            &["release_image", "name"],
            &[("release_image", "image__is_part_of__release")],
        ),
        "release_tag" => r(&["release", "tag_key"], &[("release", "release")]),
        _ => None,
    }
}

/// A response before it is turned into HTTP, so faults can replace it after the effect.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
        }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer::json(status, json!({"error": message.into()}))
    }

    fn ok_text() -> Answer {
        Answer {
            status: StatusCode::OK,
            body: None,
        }
    }

    fn into_response(self) -> Response {
        match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => (self.status, "OK").into_response(),
        }
    }
}

impl From<ODataError> for Answer {
    fn from(e: ODataError) -> Self {
        Answer::error(StatusCode::BAD_REQUEST, e.0)
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = odata::percent_decode(uri.path());
    let query = odata::parse_query_pairs(uri.query().unwrap_or(""));
    let json_body = serde_json::from_slice::<Value>(&body).ok();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // A device's own state is read with the device's key, everything else with the user's.
    let device = device::state_path(&path).filter(|_| method == Method::GET);
    let authorized = match device {
        Some(uuid) => device::authorizes(&lock(&shared.state), uuid, token),
        None => token.is_some_and(|token| token == shared.config.api_key),
    };
    let index = {
        let mut state = lock(&shared.state);
        state.requests.push(RecordedRequest {
            method: method.as_str().to_owned(),
            path: path.clone(),
            query: query.clone(),
            body: json_body.clone(),
            authorized,
            status: 0,
        });
        state.requests.len() - 1
    };
    let set_status = |status: u16| {
        if let Some(r) = lock(&shared.state).requests.get_mut(index) {
            r.status = status;
        }
    };
    if !authorized {
        set_status(401);
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let fault = lock(&shared.state).take_fault(method.as_str(), &path);
    let before = fault
        .as_ref()
        .filter(|f| f.phase == FaultPhase::BeforeApply);
    if let Some(response) = strike(before, &set_status).await {
        return response;
    }
    let answer = match device {
        Some(uuid) => device::target_state(&lock(&shared.state), uuid),
        None => apply(&shared, &method, &path, &query, json_body.as_ref()),
    };
    let after = fault.as_ref().filter(|f| f.phase == FaultPhase::AfterApply);
    if let Some(response) = strike(after, &set_status).await {
        return response;
    }
    set_status(answer.status.as_u16());
    answer.into_response()
}

/// Carries out a fault; `None` means "go on normally" (after a hang).
async fn strike(fault: Option<&Fault>, set_status: &impl Fn(u16)) -> Option<Response> {
    match fault?.kind {
        FaultKind::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            set_status(status.as_u16());
            Some(Answer::error(status, format!("Injected fault {code}")).into_response())
        }
        FaultKind::Hang(duration) => {
            tokio::time::sleep(duration).await;
            None
        }
        FaultKind::DropConnection => {
            let broken = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("injected connection drop"))
            });
            Some(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from_stream(broken))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            )
        }
    }
}

fn apply(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Answer {
    let config = &shared.config;
    if path == "/user/v1/whoami" && method == Method::GET {
        return Answer::json(
            StatusCode::OK,
            json!({"id": config.user_id, "username": config.username, "email": format!("{}@example.com", config.username)}),
        );
    }
    if path == "/auth/v1/token" && method == Method::GET {
        let scopes: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .collect();
        let service = query.iter().find(|(k, _)| k == "service");
        if service.is_none() {
            return Answer::error(StatusCode::BAD_REQUEST, "missing service");
        }
        let mut state = lock(&shared.state);
        let token = format!("fake-registry-token-{}", state.tokens.len() + 1);
        state.tokens.push((token.clone(), scopes));
        return Answer::json(StatusCode::OK, json!({"token": token}));
    }
    let Some(resource_path) = path.strip_prefix("/v7/") else {
        return Answer::error(StatusCode::NOT_FOUND, format!("No route for {path}"));
    };
    let result = (|| -> Result<Answer, Answer> {
        let target = odata::parse_target(resource_path)?;
        let query = Query::parse(query)?;
        let mut state = lock(&shared.state);
        match *method {
            Method::GET => Ok(get(&state, &target, &query)),
            Method::POST => {
                if target.key.is_some() {
                    return Err(Answer::error(StatusCode::BAD_REQUEST, "POST to an entity"));
                }
                post(&mut state, shared, &target.resource, body)
            }
            Method::PATCH => patch(&mut state, &target, &query, body),
            _ => Err(Answer::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not supported"),
            )),
        }
    })();
    result.unwrap_or_else(|e| e)
}

fn select_matching<'a>(state: &'a State, target: &odata::Target, query: &Query) -> Vec<&'a Value> {
    state
        .records(&target.resource)
        .iter()
        .filter(|r| target.key.as_ref().is_none_or(|k| k.matches(r)))
        .filter(|r| query.filter.as_ref().is_none_or(|f| f.matches(r)))
        .collect()
}

fn get(state: &State, target: &odata::Target, query: &Query) -> Answer {
    let mut rows: Vec<Value> = select_matching(state, target, query)
        .into_iter()
        .cloned()
        .collect();
    if query.order_id_desc {
        rows.reverse();
    }
    if let Some(top) = query.top {
        rows.truncate(top);
    }
    if target.resource == "release" && query.expand.contains("release_image") {
        for row in &mut rows {
            expand_release_images(state, row);
        }
    }
    Answer::json(StatusCode::OK, json!({ "d": rows }))
}

/// `release_image($select=id;$expand=image($select=id,is_stored_at__image_location;$expand=is_a_build_of__service($select=service_name)))`,
/// the one expansion the client asks for (the current release's images and their services).
fn expand_release_images(state: &State, release: &mut Value) {
    let Some(release_id) = record_id(release) else {
        return;
    };
    let links: Vec<Value> = state
        .records("image__is_part_of__release")
        .iter()
        .filter(|l| l.get("is_part_of__release").and_then(Value::as_u64) == Some(release_id))
        .map(|l| {
            let image = l
                .get("image")
                .and_then(Value::as_u64)
                .and_then(|id| state.record("image", id))
                .map(|i| {
                    let service = i
                        .get("is_a_build_of__service")
                        .and_then(Value::as_u64)
                        .and_then(|id| state.record("service", id))
                        .map(|s| json!({"id": s["id"], "service_name": s["service_name"]}));
                    json!({
                        "id": i["id"],
                        "is_stored_at__image_location": i["is_stored_at__image_location"],
                        "is_a_build_of__service": service.into_iter().collect::<Vec<_>>(),
                    })
                });
            json!({"id": l["id"], "image": image.into_iter().collect::<Vec<_>>()})
        })
        .collect();
    if let Value::Object(map) = release {
        map.insert("release_image".to_owned(), Value::Array(links));
    }
}

fn post(
    state: &mut State,
    shared: &Shared,
    resource: &str,
    body: Option<&Value>,
) -> Result<Answer, Answer> {
    let rules = rules(resource).ok_or_else(|| {
        Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Cannot create {resource}"),
        )
    })?;
    let Some(Value::Object(fields)) = body else {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "Expected a JSON object body",
        ));
    };
    check_foreign_keys(state, &rules, fields)?;
    if !rules.unique.is_empty() {
        let clash = state.records(resource).iter().any(|r| {
            rules
                .unique
                .iter()
                .all(|k| fields.get(*k).is_some() && r.get(*k) == fields.get(*k))
        });
        if clash {
            return Err(Answer::error(
                StatusCode::CONFLICT,
                format!(
                    "Unique key constraint violated on {resource}({})",
                    rules.unique.join(", ")
                ),
            ));
        }
    }
    let id = state.new_id();
    let mut record = fields.clone();
    record.insert("id".to_owned(), json!(id));
    record.insert("created_at".to_owned(), json!(timestamp_now()));
    if resource == "image" {
        record.insert(
            "is_stored_at__image_location".to_owned(),
            json!(format!(
                "{}/v2/{:016x}{:016x}",
                shared.config.registry_host, shared.nonce, id
            )),
        );
    }
    let record = Value::Object(record);
    state
        .resources
        .entry(resource.to_owned())
        .or_default()
        .push(record.clone());
    Ok(Answer::json(StatusCode::CREATED, record))
}

fn check_foreign_keys(
    state: &State,
    rules: &ResourceRules,
    fields: &Map<String, Value>,
) -> Result<(), Answer> {
    for (field, target) in rules.foreign {
        let Some(value) = fields.get(*field) else {
            return Err(Answer::error(
                StatusCode::BAD_REQUEST,
                format!("Missing required field {field}"),
            ));
        };
        let exists = value
            .as_u64()
            .is_some_and(|id| state.record(target, id).is_some());
        if !exists {
            return Err(Answer::error(
                StatusCode::BAD_REQUEST,
                format!("Foreign key constraint violated: {field} = {value} is not a {target}"),
            ));
        }
    }
    Ok(())
}

fn patch(
    state: &mut State,
    target: &odata::Target,
    query: &Query,
    body: Option<&Value>,
) -> Result<Answer, Answer> {
    if rules(&target.resource).is_none() {
        return Err(Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Cannot change {}", target.resource),
        ));
    }
    let Some(Value::Object(fields)) = body else {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "Expected a JSON object body",
        ));
    };
    if fields.contains_key("id") {
        return Err(Answer::error(StatusCode::BAD_REQUEST, "Cannot change id"));
    }
    if target.key.is_none() && query.filter.is_none() {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "PATCH of a whole collection is not allowed",
        ));
    }
    let ids: Vec<u64> = select_matching(state, target, query)
        .into_iter()
        .filter_map(record_id)
        .collect();
    if ids.is_empty() && target.key.is_some() {
        // Like the real API: patching an entity that is not there changes nothing.
        return Ok(Answer::ok_text());
    }
    if let Some(records) = state.resources.get_mut(&target.resource) {
        for record in records.iter_mut() {
            if record_id(record).is_some_and(|id| ids.contains(&id))
                && let Value::Object(map) = record
            {
                for (k, v) in fields {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(Answer::ok_text())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for now.
fn timestamp_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn timestamps_look_like_iso_8601() {
        let t = timestamp_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }

    #[test]
    fn faults_count_down_and_match_by_prefix() {
        let mut state = State::default();
        state.faults.push(Fault {
            method: "PATCH".into(),
            path_prefix: "/v7/image(".into(),
            times: 2,
            kind: FaultKind::Status(500),
            phase: FaultPhase::BeforeApply,
        });
        assert!(state.take_fault("PATCH", "/v7/release(1)").is_none());
        assert!(state.take_fault("POST", "/v7/image(1)").is_none());
        assert!(state.take_fault("PATCH", "/v7/image(1)").is_some());
        assert!(state.take_fault("PATCH", "/v7/image(2)").is_some());
        assert!(state.take_fault("PATCH", "/v7/image(3)").is_none());
        assert!(state.faults.is_empty());
    }
}
