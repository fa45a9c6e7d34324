//! The release client against the fake balena API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use balena_api_fake::{FakeApi, FakeConfig, Fault, FaultKind, FaultPhase};
use release::{
    Api, ApiError, CreatedRelease, ImageUpdate, NewRelease, ReleaseUpdate, RetryPolicy, Status,
};
use serde_json::{Value, json};

const FAST: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    initial_delay: Duration::from_millis(5),
    factor: 2.0,
    max_delay: Duration::from_millis(50),
};

async fn fake() -> (FakeApi, Api) {
    let fake = FakeApi::start(FakeConfig::default()).await.unwrap();
    let api = Api::new(fake.url(), fake.api_key())
        .unwrap()
        .with_retry(FAST);
    (fake, api)
}

fn composition() -> Value {
    json!({"services": {
        "frontend": {"labels": {"io.balena.features.dbus": "1", "com.example.tier": "web"},
                     "environment": {"PORT": 80, "MODE": "prod", "EMPTY": null}},
        "backend": {"environment": ["DB=sqlite", "DEBUG"]},
        "worker": {"labels": {"io.balena.update.strategy": "hand-over"}},
    }})
}

async fn create(api: &Api, commit: &str) -> CreatedRelease {
    let user = api.whoami().await.unwrap();
    let fleet = api.fleet("gh_tester/testfleet").await.unwrap();
    let mut new = NewRelease::new(user.id, fleet.id, composition(), commit);
    new.contract =
        Some(json!({"name": "testContract", "type": "sw.application", "version": "1.5.2"}));
    new.semver = Some("1.5.2".into());
    new.is_final = false;
    new.services[1].contract = Some(json!({"type": "sw.container", "requires": []}));
    api.create_release(&new).await.unwrap()
}

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[tokio::test]
async fn a_three_service_release_records_every_row() {
    let (fake, api) = fake().await;
    let commit = release::random_commit();
    let created = create(&api, &commit).await;
    assert_eq!(
        created.images.keys().collect::<Vec<_>>(),
        ["frontend", "backend", "worker"]
    );

    let releases = fake.records("release");
    assert_eq!(releases.len(), 1);
    let r = &releases[0];
    assert_eq!(field(r, "id").as_u64(), Some(created.release.id));
    assert_eq!(field(r, "commit"), &json!(commit));
    assert_eq!(field(r, "status"), "running");
    assert_eq!(field(r, "source"), "local");
    assert_eq!(field(r, "is_final"), false);
    assert_eq!(field(r, "semver"), "1.5.2");
    assert_eq!(field(r, "is_created_by__user"), 7);
    assert_eq!(field(r, "belongs_to__application"), 1001);
    assert_eq!(field(r, "composition"), &composition());
    assert_eq!(
        field(r, "contract"),
        &json!({"name": "testContract", "type": "sw.application", "version": "1.5.2"})
    );
    assert_eq!(field(r, "start_timestamp").as_str().unwrap().len(), 24);

    let services = fake.records("service");
    let mut names: Vec<&str> = services
        .iter()
        .map(|s| field(s, "service_name").as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["backend", "frontend", "worker"]);
    assert!(services.iter().all(|s| field(s, "application") == 1001));

    let images = fake.records("image");
    assert_eq!(images.len(), 3);
    for (name, image) in &created.images {
        let row = images
            .iter()
            .find(|i| field(i, "id").as_u64() == Some(image.id))
            .unwrap();
        assert_eq!(field(row, "status"), "running");
        let service = services
            .iter()
            .find(|s| field(s, "id") == field(row, "is_a_build_of__service"))
            .unwrap();
        assert_eq!(field(service, "service_name"), name.as_str());
        assert_eq!(
            field(row, "is_stored_at__image_location").as_str(),
            Some(image.location.as_str())
        );
        assert!(image.location.starts_with("127.0.0.1:5000/v2/"));
        assert_eq!(row.get("contract").is_some(), name == "backend", "{row}");
    }

    let links = fake.records("image__is_part_of__release");
    assert_eq!(links.len(), 3);
    assert!(
        links
            .iter()
            .all(|l| field(l, "is_part_of__release").as_u64() == Some(created.release.id))
    );
    let link_of = |service: &str| {
        let image = created.images[service].id;
        field(
            links
                .iter()
                .find(|l| field(l, "image").as_u64() == Some(image))
                .unwrap(),
            "id",
        )
        .clone()
    };
    let pairs = |resource: &str, name_field: &str, service: &str| {
        let link = link_of(service);
        let mut v: Vec<(String, String)> = fake
            .records(resource)
            .iter()
            .filter(|r| field(r, "release_image") == &link)
            .map(|r| {
                (
                    field(r, name_field).as_str().unwrap().to_owned(),
                    field(r, "value").as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        pairs("image_label", "label_name", "frontend"),
        [
            s("com.example.tier", "web"),
            s("io.balena.features.dbus", "1")
        ]
    );
    assert_eq!(pairs("image_label", "label_name", "backend"), []);
    assert_eq!(
        pairs("image_label", "label_name", "worker"),
        [s("io.balena.update.strategy", "hand-over")]
    );
    assert_eq!(
        pairs("image_environment_variable", "name", "frontend"),
        [s("EMPTY", ""), s("MODE", "prod"), s("PORT", "80")]
    );
    assert_eq!(
        pairs("image_environment_variable", "name", "backend"),
        [s("DB", "sqlite"), s("DEBUG", "")]
    );
    assert_eq!(fake.records("image_label").len(), 3);
    assert_eq!(fake.records("image_environment_variable").len(), 5);

    // The user and fleet are checked first, as the reference does.
    assert_eq!(fake.requests_matching("GET", "/v7/user(7)").len(), 1);
    assert_eq!(
        fake.requests_matching("GET", "/v7/application(1001)").len(),
        1
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.authorized && r.status < 400),
        "{:?}",
        fake.requests()
    );

    // Finishing: the allow-listed image fields, then the release.
    let image = created.images["frontend"].id;
    let update =
        ImageUpdate::pushed(format!("sha256:{}", "b".repeat(64)), 4096).with_build_log("Step 1/1");
    api.update_image(image, &update).await.unwrap();
    api.update_release(
        created.release.id,
        &ReleaseUpdate::finished(Status::Success),
    )
    .await
    .unwrap();
    let row = fake.state().record("image", image).cloned().unwrap();
    assert_eq!(field(&row, "status"), "success");
    assert_eq!(field(&row, "image_size"), "4096");
    assert_eq!(field(&row, "build_log"), "Step 1/1");
    let patch = &fake.requests_matching("PATCH", "/v7/image(")[0];
    let mut keys: Vec<&String> = patch
        .body
        .as_ref()
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "build_log",
            "content_hash",
            "end_timestamp",
            "image_size",
            "push_timestamp",
            "status"
        ]
    );
    assert_eq!(field(&fake.records("release")[0], "status"), "success");
    assert!(fake.records("release")[0].get("end_timestamp").is_some());
}

#[tokio::test]
async fn services_are_created_at_most_five_at_a_time_and_reused() {
    let (fake, api) = fake().await;
    let services: serde_json::Map<String, Value> =
        (0..12).map(|i| (format!("s{i:02}"), json!({}))).collect();
    let composition = json!({"services": services});
    // Slow every image POST down so that overlapping ones are visible.
    fake.inject(Fault {
        method: "POST".into(),
        path_prefix: "/v7/image".into(),
        times: 100,
        kind: FaultKind::Hang(Duration::from_millis(60)),
        phase: FaultPhase::BeforeApply,
    });
    let started = std::time::Instant::now();
    let new = NewRelease::new(7, 1001, composition.clone(), release::random_commit());
    let created = api.create_release(&new).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(created.images.len(), 12);
    // 12 services × 2 slow POSTs (image, link): one at a time ≥ 1.44 s; five at a time
    // needs three waves (≥ 0.36 s) and far less than the serial time.
    assert!(elapsed >= Duration::from_millis(360), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");

    // A second release reuses the services (getOrCreate) and makes new images.
    let new = NewRelease::new(7, 1001, composition, release::random_commit());
    api.create_release(&new).await.unwrap();
    assert_eq!(fake.records("service").len(), 12);
    assert_eq!(fake.records("image").len(), 24);
    assert_eq!(fake.requests_matching("POST", "/v7/service").len(), 12);
}

#[tokio::test]
async fn a_failing_patch_is_retried_and_recovers() {
    let (fake, api) = fake().await;
    let created = create(&api, &release::random_commit()).await;
    fake.fail_next("PATCH", "/v7/image(", 2, 500);
    fake.fail_next("PATCH", "/v7/release(", 1, 503);
    let image = created.images["worker"].id;
    api.update_image(image, &ImageUpdate::pushed("sha256:x", 1))
        .await
        .unwrap();
    api.update_release(
        created.release.id,
        &ReleaseUpdate::finished(Status::Success),
    )
    .await
    .unwrap();
    let patches = fake.requests_matching("PATCH", "/v7/image(");
    assert_eq!(
        patches.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(fake.requests_matching("PATCH", "/v7/release(").len(), 2);
    assert_eq!(fake.records("release").len(), 1);
    assert_eq!(fake.records("release")[0]["status"], "success");
}

#[tokio::test]
async fn a_patch_that_always_fails_gives_up_after_the_bounded_attempts() {
    let (fake, api) = fake().await;
    let created = create(&api, &release::random_commit()).await;
    fake.fail_next("PATCH", "/v7/image(", 100, 500);
    let err = api
        .update_image(
            created.images["frontend"].id,
            &ImageUpdate::pushed("sha256:x", 1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Server { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("PATCH /v7/image("), "{text}");
    assert!(text.contains("Injected fault 500"), "{text}");
    assert_eq!(
        fake.requests_matching("PATCH", "/v7/image(").len(),
        FAST.max_attempts as usize
    );
}

/// A POST that the server applied but answered 500 (or whose answer was lost) is not made
/// twice: the record is looked up and reused.
#[tokio::test]
async fn posts_applied_before_a_failure_are_not_duplicated() {
    for (prefix, kind) in [
        ("/v7/release", FaultKind::Status(500)),
        ("/v7/image", FaultKind::Status(502)),
        ("/v7/image__is_part_of__release", FaultKind::DropConnection),
        ("/v7/image_label", FaultKind::Status(500)),
        ("/v7/image_environment_variable", FaultKind::DropConnection),
        ("/v7/service", FaultKind::Status(500)),
    ] {
        let (fake, api) = fake().await;
        fake.inject(Fault {
            method: "POST".into(),
            path_prefix: prefix.into(),
            times: 1,
            kind,
            phase: FaultPhase::AfterApply,
        });
        let created = create(&api, &release::random_commit()).await;
        assert_eq!(fake.records("release").len(), 1, "{prefix}");
        assert_eq!(fake.records("service").len(), 3, "{prefix}");
        assert_eq!(fake.records("image").len(), 3, "{prefix}");
        assert_eq!(
            fake.records("image__is_part_of__release").len(),
            3,
            "{prefix}"
        );
        assert_eq!(fake.records("image_label").len(), 3, "{prefix}");
        assert_eq!(
            fake.records("image_environment_variable").len(),
            5,
            "{prefix}"
        );
        let failed = fake
            .requests()
            .into_iter()
            .filter(|r| r.status >= 500 || r.status == 0)
            .count();
        assert_eq!(failed, 1, "{prefix}: the fault struck once");
        assert_eq!(
            fake.records("release")[0]["id"].as_u64(),
            Some(created.release.id)
        );
    }
}

#[tokio::test]
async fn posts_refused_before_applying_are_retried() {
    let (fake, api) = fake().await;
    fake.fail_next("POST", "/v7/release", 2, 500);
    fake.fail_next("POST", "/v7/image", 1, 503);
    create(&api, &release::random_commit()).await;
    assert_eq!(fake.records("release").len(), 1);
    assert_eq!(fake.records("image").len(), 3);
    assert_eq!(fake.requests_matching("POST", "/v7/release").len(), 3);
}

#[tokio::test]
async fn a_hanging_request_times_out_and_is_retried() {
    let (fake, api) = fake().await;
    let api = api.with_timeout(Duration::from_millis(200));
    fake.inject(Fault {
        method: "GET".into(),
        path_prefix: "/user/v1/whoami".into(),
        times: 1,
        kind: FaultKind::Hang(Duration::from_secs(3)),
        phase: FaultPhase::BeforeApply,
    });
    assert_eq!(api.whoami().await.unwrap().username, "gh_tester");
    fake.inject(Fault {
        method: "GET".into(),
        path_prefix: "/user/v1/whoami".into(),
        times: 1,
        kind: FaultKind::Hang(Duration::from_secs(3)),
        phase: FaultPhase::BeforeApply,
    });
    let err = api
        .with_retry(RetryPolicy::NONE)
        .whoami()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("GET /user/v1/whoami: no response within 200ms"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_a_clear_error_that_never_shows_the_key() {
    let fake = FakeApi::start(FakeConfig::default()).await.unwrap();
    let wrong_key = "wrong-key-Zq8xP3-super-secret";
    let api = Api::new(fake.url(), wrong_key).unwrap().with_retry(FAST);
    let err = api.whoami().await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorised { .. }), "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert!(
        err.to_string()
            .contains("rejected the API key (401 Unauthorized)"),
        "{err}"
    );
    // Not retried: a 401 is final.
    assert_eq!(fake.requests().len(), 1);
    assert!(!fake.requests()[0].authorized);
    let fleet_err = api.fleet("gh_tester/testfleet").await.unwrap_err();
    let new = NewRelease::new(7, 1001, composition(), "c");
    let create_err = api.create_release(&new).await.unwrap_err();
    assert!(fake.records("release").is_empty());
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{fleet_err} {fleet_err:?}"),
        format!("{create_err} {create_err:?}"),
        format!("{api:?}"),
    ] {
        assert!(!text.contains(wrong_key), "{text}");
    }
    let right = Api::new(fake.url(), fake.api_key()).unwrap();
    assert!(!format!("{right:?}").contains(fake.api_key()));

    assert!(matches!(
        Api::new(fake.url(), ""),
        Err(ApiError::MissingApiKey)
    ));
    let missing = Api::new(fake.url(), "").unwrap_err().to_string();
    assert!(missing.contains("BALENA_API_KEY"), "{missing}");
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error_after_the_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let api = Api::new(&format!("http://127.0.0.1:{port}"), "k")
        .unwrap()
        .with_retry(FAST);
    let err = api.whoami().await.unwrap_err();
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("GET /user/v1/whoami: cannot reach the balena API"),
        "{err}"
    );
}

#[tokio::test]
async fn fleets_resolve_by_slug_or_id_with_device_type_and_arch() {
    let (fake, api) = fake().await;
    let by_slug = api.fleet("GH_Tester/TestFleet").await.unwrap();
    assert_eq!(
        (
            by_slug.id,
            by_slug.device_type.as_str(),
            by_slug.arch.as_str()
        ),
        (1001, "intel-nuc", "amd64")
    );
    assert!(by_slug.supports_multicontainer);
    assert_eq!(api.fleet("1001").await.unwrap(), by_slug);
    let err = api.fleet("gh_tester/nope").await.unwrap_err();
    assert!(matches!(err, ApiError::FleetNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("\"gh_tester/nope\""), "{err}");
    let get = &fake.requests_matching("GET", "/v7/application")[0];
    assert_eq!(
        get.query_param("$filter"),
        Some("slug eq 'gh_tester/testfleet'")
    );
    assert!(
        get.query_param("$expand")
            .unwrap()
            .contains("is_of__cpu_architecture")
    );
}

#[tokio::test]
async fn release_tags_and_notes_are_set_and_updated() {
    let (fake, api) = fake().await;
    let created = create(&api, &release::random_commit()).await;
    let id = created.release.id;
    api.set_release_tag(id, "version", "1").await.unwrap();
    api.set_release_tag(id, "version", "2").await.unwrap();
    api.set_release_tag(id, "owner", "").await.unwrap();
    let tags = fake.records("release_tag");
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[0]["tag_key"], "version");
    assert_eq!(tags[0]["value"], "2");
    assert_eq!(tags[1]["value"], "");
    for bad in ["", "has space"] {
        let err = api.set_release_tag(id, bad, "v").await.unwrap_err();
        assert!(matches!(err, ApiError::InvalidTagKey { .. }), "{err:?}");
    }
    api.set_note(id, "first deploy").await.unwrap();
    assert_eq!(fake.records("release")[0]["note"], "first deploy");
}

#[tokio::test]
async fn push_tokens_cover_new_and_previous_repositories() {
    let (fake, api) = fake().await;
    let first = create(&api, &release::random_commit()).await;
    api.update_release(first.release.id, &ReleaseUpdate::finished(Status::Success))
        .await
        .unwrap();
    let second = create(&api, &release::random_commit()).await;
    let (registry, token) = api.push_token(&second).await.unwrap().unwrap();
    assert_eq!(registry, "127.0.0.1:5000");
    let (issued, scopes) = fake.state().tokens.last().cloned().unwrap();
    assert_eq!(token.expose(), issued);
    assert_eq!(format!("{token:?}"), "***");
    assert_eq!(scopes.len(), 6, "{scopes:?}");
    for image in first.images.values().chain(second.images.values()) {
        let repo = image.location.split_once('/').unwrap().1;
        assert!(
            scopes.contains(&format!("repository:{repo}:pull,push")),
            "{scopes:?}"
        );
    }
    let get = &fake.requests_matching("GET", "/auth/v1/token")[0];
    assert_eq!(get.query_param("service"), Some("127.0.0.1:5000"));

    fake.fail_next("GET", "/auth/v1/token", 100, 401);
    let err = api.push_token(&second).await.unwrap_err();
    assert!(err.to_string().contains("GET /auth/v1/token"), "{err}");
}

#[tokio::test]
async fn fail_all_marks_the_release_and_unfinished_images_failed() {
    let (fake, api) = fake().await;
    let created = create(&api, &release::random_commit()).await;
    let done = created.images["frontend"].id;
    api.update_image(done, &ImageUpdate::pushed("sha256:x", 1))
        .await
        .unwrap();
    api.fail_all(&created, &[done], "push of backend failed")
        .await
        .unwrap();
    for (name, image) in &created.images {
        let row = fake.state().record("image", image.id).cloned().unwrap();
        let expected = if name == "frontend" {
            "success"
        } else {
            "failed"
        };
        assert_eq!(row["status"], expected, "{name}");
        if name != "frontend" {
            assert_eq!(row["error_message"], "push of backend failed");
        }
    }
    assert_eq!(fake.records("release")[0]["status"], "failed");
}

#[tokio::test]
async fn a_release_whose_creation_fails_midway_is_left_failed_not_running() {
    let (fake, api) = fake().await;
    fake.fail_next("POST", "/v7/image_environment_variable", 1, 400);
    let new = NewRelease::new(7, 1001, composition(), release::random_commit());
    let err = api.create_release(&new).await.unwrap_err();
    // The release exists: the error says so, with the failure as its source.
    assert!(
        matches!(&err, ApiError::IncompleteRelease { source, cleanup: None, .. }
            if matches!(**source, ApiError::BadRequest { .. })),
        "{err:?}"
    );
    assert_eq!(fake.records("release").len(), 1);
    assert_eq!(fake.records("release")[0]["status"], "failed");

    let missing = NewRelease::new(99, 1001, composition(), release::random_commit());
    let err = api.create_release(&missing).await.unwrap_err();
    assert_eq!(err.to_string(), "Could not find user with id: 99");
    assert_eq!(fake.records("release").len(), 1);
}

/// The API fails once the release record exists: the error names the release and its id, and
/// says whether it was marked failed or left `running` (and why).
#[tokio::test]
async fn a_release_created_without_its_images_is_named_with_what_became_of_it() {
    let always = |fake: &FakeApi, method: &str, prefix: &str| {
        fake.inject(Fault {
            method: method.into(),
            path_prefix: prefix.into(),
            times: 1000,
            kind: FaultKind::Status(500),
            phase: FaultPhase::BeforeApply,
        });
    };
    let (one, api) = fake().await;
    always(&one, "POST", "/v7/image");
    let err = api
        .create_release(&NewRelease::new(7, 1001, composition(), "c1"))
        .await
        .unwrap_err();
    let release = &one.records("release")[0];
    assert_eq!(release["status"], "failed");
    let id = release["id"].as_u64().unwrap();
    assert!(
        matches!(&err, ApiError::IncompleteRelease { id: i, cleanup: None, .. } if *i == id),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "release c1 (id {id}) was created, but not all of its images; it was marked failed"
        )
    );
    // The cause is the error's source, not repeated in its message.
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        source.contains("POST /v7/image") && source.contains("(500)"),
        "{source}"
    );

    let (two, api) = fake().await;
    always(&two, "POST", "/v7/image");
    always(&two, "PATCH", "/v7/release(");
    let err = api
        .create_release(&NewRelease::new(7, 1001, composition(), "c2"))
        .await
        .unwrap_err();
    let release = &two.records("release")[0];
    assert_eq!(release["status"], "running");
    let id = release["id"].as_u64().unwrap();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "release c2 (id {id}) was created, but not all of its images; it was left `running`: marking it failed failed too: PATCH /v7/release({id})"
        )),
        "{message}"
    );
}

/// `current_release` names each service's image of the latest successful release; a release
/// that reuses some of them links those images as they are and creates (and pushes) only the
/// others.
#[tokio::test]
async fn a_release_can_reuse_the_current_release_images_of_some_services() {
    let (fake, api) = fake().await;
    let fleet = api.fleet("gh_tester/testfleet").await.unwrap();
    assert_eq!(api.current_release(fleet.id).await.unwrap(), None);
    let first = create(&api, &release::random_commit()).await;
    api.update_release(first.release.id, &ReleaseUpdate::finished(Status::Success))
        .await
        .unwrap();
    let current = api.current_release(fleet.id).await.unwrap().unwrap();
    assert_eq!(current.id, first.release.id);
    assert_eq!(
        current.images.keys().collect::<Vec<_>>(),
        ["frontend", "backend", "worker"]
    );
    for (service, image) in &first.images {
        assert_eq!(current.images[service].id, image.id, "{service}");
        assert_eq!(current.images[service].location, image.location);
    }

    let user = api.whoami().await.unwrap();
    let mut new = NewRelease::new(user.id, fleet.id, composition(), release::random_commit());
    for service in ["backend", "worker"] {
        new.reused
            .insert(service.to_owned(), current.images[service].id);
    }
    let second = api.create_release(&new).await.unwrap();
    assert_eq!(second.images.keys().collect::<Vec<_>>(), ["frontend"]);
    assert_eq!(
        fake.records("image").len(),
        4,
        "only frontend got a new image"
    );
    let linked: Vec<u64> = fake
        .records("image__is_part_of__release")
        .iter()
        .filter(|l| l["is_part_of__release"] == second.release.id)
        .map(|l| l["image"].as_u64().unwrap())
        .collect();
    assert_eq!(linked.len(), 3);
    for service in ["backend", "worker"] {
        assert!(linked.contains(&current.images[service].id), "{service}");
    }
    let labels = fake.records("image_label");
    assert!(
        labels
            .iter()
            .filter(|l| l["label_name"] == "io.balena.update.strategy")
            .count()
            == 2,
        "the reused worker image's labels are recorded for the new release too"
    );
}
