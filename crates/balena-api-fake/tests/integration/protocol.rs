//! The fake's protocol, seen through a plain HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use balena_api_fake::{FakeApi, FakeConfig, Fault, FaultKind, FaultPhase};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(fake: &FakeApi) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: fake.url().to_owned(),
            key: fake.api_key().to_owned(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

#[tokio::test]
async fn requests_without_the_bearer_token_are_refused_and_recorded() {
    let fake = FakeApi::start(FakeConfig::default()).await.unwrap();
    let url = format!("{}/user/v1/whoami", fake.url());
    let none = reqwest::get(&url).await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let wrong = reqwest::Client::new()
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (status, me) = Client::new(&fake)
        .send("GET", "/user/v1/whoami", None)
        .await
        .unwrap();
    assert_eq!((status, me["username"].as_str()), (200, Some("gh_tester")));
    let seen: Vec<(bool, u16)> = fake
        .requests()
        .iter()
        .map(|r| (r.authorized, r.status))
        .collect();
    assert_eq!(seen, [(false, 401), (false, 401), (true, 200)]);
}

#[tokio::test]
async fn records_obey_keys_unique_constraints_and_foreign_keys() {
    let fake = FakeApi::start(FakeConfig::default()).await.unwrap();
    let c = Client::new(&fake);
    let release = json!({"belongs_to__application": 1001, "is_created_by__user": 7, "commit": "abc", "status": "running"});
    let (status, created) = c
        .send("POST", "/v7/release", Some(release.clone()))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, clash) = c.send("POST", "/v7/release", Some(release)).await.unwrap();
    assert_eq!(status, 409);
    assert!(clash["error"].as_str().unwrap().contains("Unique"));
    let (status, _) = c
        .send(
            "POST",
            "/v7/release",
            Some(json!({"belongs_to__application": 5, "is_created_by__user": 7, "commit": "x"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);

    let (_, service) = c
        .send(
            "POST",
            "/v7/service",
            Some(json!({"application": 1001, "service_name": "my main"})),
        )
        .await
        .unwrap();
    let (status, rows) = c
        .send(
            "GET",
            "/v7/service(application=1001,service_name='my%20main')",
            None,
        )
        .await
        .unwrap();
    assert_eq!((status, &rows["d"][0]["id"]), (200, &service["id"]));
    let (_, rows) = c
        .send(
            "GET",
            "/v7/service(application=1001,service_name='x')",
            None,
        )
        .await
        .unwrap();
    assert_eq!(rows["d"], json!([]));

    let id = created["id"].as_u64().unwrap();
    let (status, _) = c
        .send(
            "PATCH",
            &format!("/v7/release({id})"),
            Some(json!({"status": "success"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, rows) = c
        .send(
            "GET",
            "/v7/release?$filter=commit%20eq%20'abc'%20and%20status%20eq%20'success'",
            None,
        )
        .await
        .unwrap();
    assert_eq!(rows["d"].as_array().unwrap().len(), 1);
    let (status, _) = c
        .send("GET", "/v7/release?$filter=id%20gt%201", None)
        .await
        .unwrap();
    assert_eq!(status, 400, "unsupported filters are refused, not ignored");
}

#[tokio::test]
async fn faults_fail_hang_and_drop_before_or_after_applying() {
    let fake = FakeApi::start(FakeConfig::default()).await.unwrap();
    let c = Client::new(&fake);
    let service = |name: &str| json!({"application": 1001, "service_name": name});

    fake.fail_next("POST", "/v7/service", 1, 503);
    let (status, _) = c
        .send("POST", "/v7/service", Some(service("a")))
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(fake.records("service").is_empty(), "not applied");

    fake.fail_next_after_apply("POST", "/v7/service", 1, 500);
    let (status, _) = c
        .send("POST", "/v7/service", Some(service("b")))
        .await
        .unwrap();
    assert_eq!(status, 500);
    assert_eq!(fake.records("service").len(), 1, "applied anyway");

    fake.inject(Fault {
        method: "POST".into(),
        path_prefix: "/v7/service".into(),
        times: 1,
        kind: FaultKind::DropConnection,
        phase: FaultPhase::AfterApply,
    });
    assert!(
        c.send("POST", "/v7/service", Some(service("c")))
            .await
            .is_err()
    );
    assert_eq!(fake.records("service").len(), 2);

    fake.inject(Fault {
        method: "GET".into(),
        path_prefix: "/user/".into(),
        times: 1,
        kind: FaultKind::Hang(Duration::from_millis(300)),
        phase: FaultPhase::BeforeApply,
    });
    let started = Instant::now();
    let (status, _) = c.send("GET", "/user/v1/whoami", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(fake.state().faults.is_empty());
}

#[tokio::test]
async fn device_state_needs_the_device_key_and_follows_pins() {
    let fake = FakeApi::start(FakeConfig::default()).await.unwrap();
    fake.register_device(&balena_api_fake::FakeDevice {
        uuid: "dev1".to_owned(),
        api_key: "dev-key".to_owned(),
        fleet_id: 1001,
        pinned_release: None,
    });
    let mut user = Client::new(&fake);
    let mut commits = Vec::new();
    for commit in ["c1", "c2"] {
        let body = json!({"belongs_to__application": 1001, "is_created_by__user": 7,
            "commit": commit, "status": "success", "is_final": true, "composition": {}});
        let (_, release) = user.send("POST", "/v7/release", Some(body)).await.unwrap();
        commits.push(release["id"].as_u64().unwrap());
    }
    // The user's key does not read a device's state; the device's key does.
    let (status, _) = user
        .send("GET", "/device/v3/dev1/state", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    user.key = "dev-key".to_owned();
    let releases = |state: &Value| {
        state["dev1"]["apps"][balena_api_fake::fleet_uuid(1001)]["releases"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    let (status, state) = user
        .send("GET", "/device/v3/dev1/state", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{state}");
    assert_eq!(releases(&state), ["c2"], "{state}");
    fake.pin_fleet(1001, Some(commits[0]));
    let (_, state) = user
        .send("GET", "/device/v3/dev1/state", None)
        .await
        .unwrap();
    assert_eq!(releases(&state), ["c1"], "{state}");
    let (status, _) = user
        .send("GET", "/device/v3/nodev/state", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
}
