//! `deploy` beyond one machine: over a pool of builders (`--builder`), each image pushed from
//! the builder that built it, and to several fleets at once (`--fleet`), built once per
//! distinct target. The balena API is the suite's fake; daemons and registry are real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use balena_api_fake::{FakeApi, FakeConfig, FakeFleet, Fault, FaultKind, FaultPhase};
use serde_json::Value;
use support::{
    DOCKER, PrivateDaemon, balena_compose, docker_cli, docker_host, json_lines, no_docker_config,
    unique, write,
};

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// `deploy FLEET PROJECT -p NAME --json ARGS` against the fake API.
fn deploy(api: &FakeApi, fleet: &str, dir: &Path, name: &str, args: &[String]) -> Output {
    balena_compose()
        .env("BALENA_API_KEY", api.api_key())
        .args(["deploy", fleet, dir.to_str().unwrap(), "-p", name, "--json"])
        .args(["--api-url", api.url()])
        .args(args)
        .output()
        .unwrap()
}

fn assert_ok(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    json_lines(&out.stdout)
}

/// Removes these images from the shared daemon when dropped, so that a failing test leaves
/// nothing behind either.
struct RemoveImages(Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker_cli(&["rmi", "-f", image]);
        }
    }
}

/// The architecture of `image` on the daemon at `host` (empty when it has none).
fn architecture(host: &str, image: &str) -> String {
    let out = Command::new(DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["image", "inspect", "-f", "{{.Architecture}}", image])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether the daemon at `host` has `image`.
fn has_image(host: &str, image: &str) -> bool {
    Command::new(DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", no_docker_config())
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
}

/// The `Docker-Content-Digest` of `repository:latest` on the local registry (`None`: 404).
fn registry_digest(location: &str) -> Option<String> {
    use std::io::{Read, Write};
    let (host, repository) = location.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "HEAD /v2/{repository}/manifests/latest HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("docker-content-digest")
            .then(|| v.trim().to_owned())
    })
}

/// Every release is `success` and each of its images is `success` with the digest the
/// registry serves for its location; the images of each release, by release id.
fn assert_releases_complete(api: &FakeApi, releases: usize) -> BTreeMap<u64, Vec<Value>> {
    let records = api.records("release");
    assert_eq!(records.len(), releases, "{records:#?}");
    assert!(
        records.iter().all(|r| r["status"] == "success"),
        "{records:#?}"
    );
    let images = api.records("image");
    let links = api.records("image__is_part_of__release");
    let mut by_release = BTreeMap::new();
    for release in &records {
        let id = release["id"].as_u64().unwrap();
        let of_release: Vec<Value> = links
            .iter()
            .filter(|l| l["is_part_of__release"] == id)
            .map(|l| {
                images
                    .iter()
                    .find(|i| i["id"] == l["image"])
                    .cloned()
                    .unwrap()
            })
            .collect();
        for image in &of_release {
            assert_eq!(image["status"], "success", "{image}");
            // Sent as text, as the balena CLI sends it.
            let size: u64 = image["image_size"].as_str().unwrap().parse().unwrap();
            assert!(size > 0, "{image}");
            let location = image["is_stored_at__image_location"].as_str().unwrap();
            assert_eq!(
                registry_digest(location).as_deref(),
                image["content_hash"].as_str(),
                "{location}"
            );
        }
        by_release.insert(id, of_release);
    }
    by_release
}

/// Services `s1`… `sN`, each built from local/amd64-busybox with a `RUN` of its own.
fn pool_project(root: &Path, services: usize, nonce: &str) {
    let mut compose = "services:\n".to_owned();
    for i in 1..=services {
        compose.push_str(&format!("  s{i}:\n    build: ./s{i}\n"));
        write(
            root,
            &format!("s{i}/Dockerfile"),
            &format!("FROM local/amd64-busybox\nRUN echo {nonce}-{i} > /built\n"),
        );
    }
    write(root, "docker-compose.yml", &compose);
}

#[test]
fn deploy_over_two_builders_pushes_each_image_from_the_builder_that_built_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime
        .block_on(FakeApi::start(FakeConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploypool");
    pool_project(dir.path(), 4, &name);
    let private = PrivateDaemon::start();
    private.load_base_image(&no_docker_config());
    let builders = [
        "--builder".to_owned(),
        format!("private={},jobs=1", private.host()),
        "--builder".to_owned(),
        format!("main={},jobs=1", docker_host()),
    ];
    let out = deploy(&api, "gh_tester/testfleet", dir.path(), &name, &builders);
    let _cleanup = RemoveImages((1..=4).map(|i| format!("{name}_s{i}")).collect());
    let events = assert_ok(&out);

    let hosts = |builder: &str| match builder {
        "private" => (private.host(), docker_host()),
        "main" => (docker_host(), private.host()),
        other => panic!("unknown builder {other}"),
    };
    let mut used = BTreeSet::new();
    let done = events_of(&events, "done");
    assert_eq!(done.len(), 4, "{events:#?}");
    for d in &done {
        let (builder, image) = (d["builder"].as_str().unwrap(), d["image"].as_str().unwrap());
        used.insert(builder.to_owned());
        let (on, other) = hosts(builder);
        assert!(has_image(&on, image), "{image} is not on {builder}");
        // Nothing was copied to push it: the other builder never had it.
        assert!(
            !has_image(&other, image),
            "{image} is on the other builder too"
        );
    }
    assert_eq!(used, BTreeSet::from(["main".into(), "private".into()]));

    let by_release = assert_releases_complete(&api, 1);
    let recorded = by_release.values().next().unwrap();
    assert_eq!(recorded.len(), 4, "{recorded:#?}");
    let summary = events.last().unwrap();
    assert_eq!(summary["release"]["status"], "success", "{summary}");
    // Every push was from a builder, and its registry tag is gone from there again.
    for image in recorded {
        let location = image["is_stored_at__image_location"].as_str().unwrap();
        let tag = format!("{location}:latest");
        assert!(!has_image(&private.host(), &tag) && !has_image(&docker_host(), &tag));
    }

    // `--service` over the builders: s2 rebuilt and pushed from its builder, the others
    // linked from the release before.
    let mut again = builders.to_vec();
    again.extend(["--service", "s2", "--build"].map(String::from));
    let out = deploy(&api, "gh_tester/testfleet", dir.path(), &name, &again);
    let events = assert_ok(&out);
    assert_eq!(events_of(&events, "done").len(), 1, "{events:#?}");
    let by_release = assert_releases_complete(&api, 2);
    assert!(by_release.values().all(|images| images.len() == 4));
    assert_eq!(api.records("image").len(), 5, "only s2 got a new image");
}

/// Two services built for the target's arch (`%%BALENA_ARCH%%`) and one pulled from a
/// multi-platform image, whose reference names whichever platform was pulled last.
fn fleets_project(root: &Path, nonce: &str) {
    write(
        root,
        "docker-compose.yml",
        "services:\n  web:\n    build: ./web\n  worker:\n    build: ./worker\n  ext:\n    image: 127.0.0.1:5000/local/busybox-multi\n",
    );
    for service in ["web", "worker"] {
        write(
            root,
            &format!("{service}/Dockerfile.template"),
            &format!("FROM local/%%BALENA_ARCH%%-busybox\nRUN echo {service}-{nonce} > /built\n"),
        );
    }
}

/// The fake's fleets: testfleet (amd64), armfleet (aarch64) and twinfleet, whose target is
/// testfleet's.
fn three_fleets() -> FakeConfig {
    let fleet = |id, slug: &str, device_type: &str, arch: &str| FakeFleet {
        id,
        slug: slug.to_owned(),
        device_type: device_type.to_owned(),
        arch: arch.to_owned(),
        supports_multicontainer: true,
    };
    FakeConfig {
        fleets: vec![
            fleet(1001, "gh_tester/testfleet", "intel-nuc", "amd64"),
            fleet(1002, "gh_tester/armfleet", "raspberrypi4-64", "aarch64"),
            fleet(1003, "gh_tester/twinfleet", "intel-nuc", "amd64"),
        ],
        ..FakeConfig::default()
    }
}

/// The platform architecture of `location@digest`, pulled from the local registry.
fn pushed_architecture(location: &str, digest: &str) -> String {
    let pushed = format!("{location}@{digest}");
    let pulled = docker_cli(&["pull", &pushed]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let out = docker_cli(&["image", "inspect", "-f", "{{.Architecture}}", &pushed]);
    let _ = docker_cli(&["image", "rm", &pushed]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `deploy testfleet --fleet armfleet --fleet twinfleet` (over `builders`, if any): two
/// targets built once each, three releases, each complete with images of its fleet's arch.
fn deploy_to_three_fleets(prefix: &str, builders: &[String]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(FakeApi::start(three_fleets())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique(prefix);
    fleets_project(dir.path(), &name);
    let mut args: Vec<String> = [
        "--fleet",
        "gh_tester/armfleet",
        "--fleet",
        "gh_tester/twinfleet",
        "--emulated",
    ]
    .map(String::from)
    .to_vec();
    args.extend_from_slice(builders);
    let binfmt = support::binfmt_lock(false);
    let out = deploy(&api, "gh_tester/testfleet", dir.path(), &name, &args);
    drop(binfmt);
    let local: Vec<String> = ["web", "worker", "ext"]
        .iter()
        .flat_map(|s| ["amd64", "aarch64"].map(|arch| format!("{name}_{s}:latest-{arch}")))
        .collect();
    let _cleanup = RemoveImages(local.clone());
    let events = assert_ok(&out);
    let builds = events_of(&events, "start")
        .into_iter()
        .filter(|e| e["action"] == "build")
        .count();
    assert_eq!(
        builds, 4,
        "two services, built once per target: {events:#?}"
    );
    // Each target's images carry its arch in their tag, so none overwrote another's; the
    // pulled one too (its own reference names the platform pulled last).
    for image in &local {
        let arch = if image.ends_with("-amd64") {
            "amd64"
        } else {
            "arm64"
        };
        assert_eq!(architecture(&docker_host(), image), arch, "{image}");
    }

    let summary = events.last().unwrap();
    let releases = summary["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 3, "{summary}");
    assert!(
        releases.iter().all(|r| r["status"] == "success"),
        "{summary}"
    );

    let by_release = assert_releases_complete(&api, 3);
    let arch_of_fleet = BTreeMap::from([(1001, "amd64"), (1002, "arm64"), (1003, "amd64")]);
    for release in api.records("release") {
        let fleet = release["belongs_to__application"].as_u64().unwrap();
        let images = &by_release[&release["id"].as_u64().unwrap()];
        assert_eq!(images.len(), 3, "{images:#?}");
        for image in images {
            let location = image["is_stored_at__image_location"].as_str().unwrap();
            let digest = image["content_hash"].as_str().unwrap();
            assert_eq!(
                pushed_architecture(location, digest),
                arch_of_fleet[&fleet],
                "fleet {fleet}: {image}"
            );
        }
    }
}

#[test]
fn deploy_to_three_fleets_builds_once_per_target_and_releases_each() {
    deploy_to_three_fleets("deployfleets", &[]);
}

#[test]
fn deploy_to_three_fleets_over_a_builder_builds_once_per_target_and_releases_each() {
    deploy_to_three_fleets(
        "deployfleetspool",
        &["--builder".to_owned(), format!("main={}", docker_host())],
    );
}

/// One fleet's release cannot be created (the API refuses it): the other fleets still get
/// theirs, and the deploy fails naming the one that did not.
#[test]
fn a_fleet_whose_release_fails_does_not_stop_the_others() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(FakeApi::start(three_fleets())).unwrap();
    api.inject(Fault {
        method: "POST".to_owned(),
        path_prefix: "/v7/release".to_owned(),
        times: 1,
        kind: FaultKind::Status(400),
        phase: FaultPhase::BeforeApply,
    });
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deployfleetfail");
    pool_project(dir.path(), 1, &name);
    let _cleanup = RemoveImages(vec![format!("{name}_s1")]);
    let args = ["--fleet", "gh_tester/twinfleet"].map(String::from);
    let out = deploy(&api, "gh_tester/testfleet", dir.path(), &name, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("1 of 2 releases failed: creating the release of fleet gh_tester/testfleet"),
        "{stderr}"
    );
    let by_release = assert_releases_complete(&api, 1);
    assert_eq!(
        api.records("release")[0]["belongs_to__application"],
        1003,
        "{by_release:?}"
    );
    let summary = json_lines(&out.stdout).pop().unwrap();
    let releases = summary["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1, "{summary}");
    assert_eq!(releases[0]["fleet"], "gh_tester/twinfleet");
    assert_eq!(releases[0]["status"], "success");
}

/// Each target reads the project anew: a tar on standard input cannot serve two targets, and
/// says so before anything is built.
#[test]
fn a_project_on_stdin_is_refused_for_fleets_of_two_targets() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(FakeApi::start(three_fleets())).unwrap();
    let out = balena_compose()
        .env("BALENA_API_KEY", api.api_key())
        .args(["deploy", "gh_tester/testfleet", "-", "--json"])
        .args(["--fleet", "gh_tester/armfleet", "--api-url", api.url()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a project on standard input is read once"),
        "{stderr}"
    );
    assert!(events_of(&json_lines(&out.stdout), "start").is_empty());
    assert!(api.records("release").is_empty());
}

/// Each image is pushed from the builder its build names, so two builders of one name are
/// refused before anything is built.
#[test]
fn two_builders_of_one_name_are_refused() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime
        .block_on(FakeApi::start(FakeConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    pool_project(dir.path(), 1, "samename");
    let builders = [
        "--builder".to_owned(),
        format!("x={}", docker_host()),
        "--builder".to_owned(),
        "x=unix:///nonexistent.sock".to_owned(),
    ];
    let out = deploy(
        &api,
        "gh_tester/testfleet",
        dir.path(),
        "samename",
        &builders,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("two --builder are named x"), "{stderr}");
    assert!(events_of(&json_lines(&out.stdout), "start").is_empty());
    assert!(api.records("release").is_empty());
}
