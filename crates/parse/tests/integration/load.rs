//! Interpolation, `.env`, several `-f` files, `extends`, `include`, discovery and the error
//! paths of loading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::fs;
use std::path::PathBuf;

use common::options;
use parse::{Discovered, Error, LoadOptions, discover, load};
use test_support::write;

#[test]
fn interpolation_forms() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "docker-compose.yml",
        r#"services:
  s:
    image: "img:${TAG}"
    environment:
      A: $SET
      B: ${UNSET:-fallback}
      C: ${EMPTY:-dflt}
      D: ${EMPTY-kept}
      E: ${SET:+alt}
      F: ${UNSET+alt}
      G: $$LITERAL
      H: ${UNSET}
      I: ${SET?must}
"#,
    );
    let c = load(&options(
        &[file],
        &[("TAG", "1.2"), ("SET", "yes"), ("EMPTY", "")],
    ))
    .unwrap();
    let env = &c.services["s"].environment;
    assert_eq!(c.services["s"].image.as_deref(), Some("img:1.2"));
    assert_eq!(env["A"], "yes");
    assert_eq!(env["B"], "fallback");
    assert_eq!(env["C"], "dflt");
    assert_eq!(env["D"], "");
    assert_eq!(env["E"], "alt");
    assert_eq!(env["F"], "");
    assert_eq!(env["G"], "$LITERAL");
    assert_eq!(env["H"], "");
    assert_eq!(env["I"], "yes");
}

#[test]
fn missing_required_variable_names_variable_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  s:\n    image: ${IMAGE:?IMAGE must be set}\n",
    );
    let err = load(&options(std::slice::from_ref(&file), &[])).unwrap_err();
    let Error::Yaml { file: f, line, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(f, &file);
    assert_eq!(*line, 3);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3:", file.display())),
        "{text}"
    );
    assert!(text.contains("IMAGE"), "{text}");
}

#[test]
fn dotenv_and_env_file_option() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  s:\n    image: ${IMG}:${TAG}\n",
    );
    write(dir.path(), ".env", "IMG=from-dotenv\nTAG=1\n");
    write(dir.path(), "other.env", "IMG=from-other\n");
    // The process environment wins over `.env`.
    let c = load(&options(std::slice::from_ref(&file), &[("TAG", "2")])).unwrap();
    assert_eq!(c.services["s"].image.as_deref(), Some("from-dotenv:2"));
    let mut opts = options(&[file], &[]);
    opts.env_file = Some(dir.path().join("other.env"));
    let c = load(&opts).unwrap();
    assert_eq!(c.services["s"].image.as_deref(), Some("from-other:"));
}

#[test]
fn bare_environment_names_take_the_environment() {
    let c =
        common::parse("services:\n  s:\n    image: x\n    environment: [NOT_SET, ALSO]\n").unwrap();
    assert_eq!(c.services["s"].environment["NOT_SET"], "");
    let mut opts = options(&[PathBuf::from("/tmp/compose.yml")], &[("ALSO", "v")]);
    opts.project_dir = Some(PathBuf::from("/tmp"));
    let c = parse::parse_str("services:\n  s:\n    image: x\n    environment: [ALSO]\n    build:\n      context: .\n      args: [ALSO, NOPE]\n", &opts).unwrap();
    assert_eq!(c.services["s"].environment["ALSO"], "v");
    let build = c.services["s"].build.as_ref().unwrap();
    assert_eq!(build.args.get("ALSO").map(String::as_str), Some("v"));
    assert!(!build.args.contains_key("NOPE"));
    assert_eq!(build.tags, ["x"]);
}

#[test]
fn anchors_merge_keys_and_extensions() {
    let c = common::parse(
        "x-common: &common\n  restart: always\n  labels: {a.b: '1'}\nservices:\n  s:\n    <<: *common\n    image: x\n",
    )
    .unwrap();
    assert_eq!(c.services["s"].other["restart"], "always");
    assert_eq!(c.services["s"].labels["a.b"], "1");
    assert!(c.to_json().get("x-common").is_none());
}

#[test]
fn yaml_1_2_scalars() {
    let c = common::parse("services:\n  s:\n    image: x\n    restart: no\n    environment: {A: 0755, B: on, C: true, D: 1.5}\n").unwrap();
    let s = &c.services["s"];
    assert_eq!(s.other["restart"], "no");
    assert_eq!(s.environment["A"], "0755");
    assert_eq!(s.environment["B"], "on");
    assert_eq!(s.environment["C"], "true");
    assert_eq!(s.environment["D"], "1.5");
}

#[test]
fn several_files_merge() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  s1:\n    build: ./s1\n    environment: [A=1, B=2]\n    ports: ['80:80']\n    command: [a, b]\n",
    );
    let dev = write(
        dir.path(),
        "docker-compose.dev.yml",
        "services:\n  s1:\n    environment:\n      B: '3'\n      DEBUG: '1'\n    ports: ['81:81']\n    command: c\n  s2:\n    image: busybox\n",
    );
    let c = load(&options(&[base, dev], &[])).unwrap();
    let s1 = &c.services["s1"];
    assert_eq!(
        s1.environment,
        common::map(&[("A", "1"), ("B", "3"), ("DEBUG", "1")])
    );
    assert_eq!(s1.ports, ["80:80", "81:81"]);
    // compose reads a string command as its words.
    assert_eq!(s1.other["command"], serde_json::json!(["c"]));
    assert_eq!(s1.build.as_ref().unwrap().context, "s1");
    assert_eq!(c.service_names().collect::<Vec<_>>(), ["s1", "s2"]);
}

#[test]
fn extends_and_include() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.yml",
        "services:\n  common:\n    image: base\n    restart: always\n    environment: [X=1]\n",
    );
    write(
        dir.path(),
        "sub/compose.yml",
        "services:\n  included:\n    build: ./app\n    env_file: ./inc.env\n",
    );
    write(dir.path(), "sub/inc.env", "FROM_INCLUDE=1\n");
    let file = write(
        dir.path(),
        "docker-compose.yml",
        "include: [sub/compose.yml]\nservices:\n  a:\n    extends: {file: base.yml, service: common}\n    environment: [Y=2]\n  b:\n    extends: a\n    image: other\n",
    );
    let c = load(&options(&[file], &[])).unwrap();
    let a = &c.services["a"];
    assert_eq!(a.image.as_deref(), Some("base"));
    assert_eq!(a.other["restart"], "always");
    assert_eq!(a.environment, common::map(&[("X", "1"), ("Y", "2")]));
    assert_eq!(c.services["b"].image.as_deref(), Some("other"));
    let included = &c.services["included"];
    assert_eq!(included.build.as_ref().unwrap().context, "sub/app");
    assert_eq!(included.environment["FROM_INCLUDE"], "1");
}

#[test]
fn extends_cycle_fails() {
    let err = common::refused("services:\n  a:\n    extends: b\n  b:\n    extends: a\n");
    assert!(err.message().contains("too deeply"), "{err}");
}

#[test]
fn discovery() {
    let dir = tempfile::tempdir().unwrap();
    let err = discover(dir.path(), &[]).unwrap_err();
    assert!(matches!(err, Error::NoProject { .. }), "{err:?}");

    write(dir.path(), "Dockerfile.template", "FROM busybox\n");
    assert_eq!(discover(dir.path(), &[]).unwrap(), Discovered::Dockerfile);
    let c = load(&LoadOptions {
        project_dir: Some(dir.path().to_path_buf()),
        environment: Some(Default::default()),
        ..LoadOptions::default()
    })
    .unwrap();
    assert_eq!(c, parse::default_composition(None, None));

    let yml = write(dir.path(), "compose.yaml", "services: {s: {image: x}}\n");
    assert_eq!(
        discover(dir.path(), &[]).unwrap(),
        Discovered::Compose(vec![yml.clone()])
    );

    write(
        dir.path(),
        "docker-compose.yml",
        "services: {s: {image: x}}\n",
    );
    let err = discover(dir.path(), &[]).unwrap_err();
    let Error::AmbiguousComposeFiles { found, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(found, &["docker-compose.yml", "compose.yaml"]);
    assert!(
        err.to_string().contains("docker-compose.yml, compose.yaml"),
        "{err}"
    );
    // -f picks.
    assert_eq!(
        discover(dir.path(), std::slice::from_ref(&yml)).unwrap(),
        Discovered::Compose(vec![yml])
    );
    let missing = dir.path().join("nope.yml");
    assert!(matches!(
        discover(dir.path(), &[missing]),
        Err(Error::Io { .. })
    ));
}

#[test]
fn error_paths() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = write(
        dir.path(),
        "a.yml",
        "services:\n  s:\n    image: [unclosed\n",
    );
    let err = load(&options(&[bad_yaml], &[])).unwrap_err();
    assert!(
        matches!(err, Error::Yaml { line, .. } if line > 0),
        "{err:?}"
    );

    let missing_env = write(
        dir.path(),
        "b.yml",
        "services:\n  s:\n    image: x\n    env_file: ./nope.env\n",
    );
    assert!(matches!(
        load(&options(&[missing_env], &[])),
        Err(Error::Io { .. })
    ));

    let optional_env = write(
        dir.path(),
        "c.yml",
        "services:\n  s:\n    image: x\n    env_file: [{path: ./nope.env, required: false}]\n",
    );
    assert!(load(&options(&[optional_env], &[])).is_ok());

    write(dir.path(), "broken.env", "OK=1\nNOT VALID=2\n");
    let broken = write(
        dir.path(),
        "d.yml",
        "services:\n  s:\n    image: x\n    env_file: broken.env\n",
    );
    let err = load(&options(&[broken], &[])).unwrap_err();
    assert!(matches!(err, Error::EnvFile { line: 2, .. }), "{err:?}");

    let not_utf8 = dir.path().join("e.yml");
    fs::write(&not_utf8, b"services: \xff\xfe").unwrap();
    assert!(matches!(
        load(&options(&[not_utf8], &[])),
        Err(Error::Yaml { .. })
    ));

    let empty = write(dir.path(), "f.yml", "");
    assert!(matches!(
        load(&options(&[empty], &[])),
        Err(Error::Validation { .. })
    ));

    let list = write(dir.path(), "g.yml", "- a\n- b\n");
    assert!(matches!(
        load(&options(&[list], &[])),
        Err(Error::Validation { .. })
    ));
}

#[test]
fn new_compose_fields_add_a_contract() {
    let c = common::parse(
        "services:\n  s:\n    image: x\n    cpus: 1.5\n    labels: {io.balena.features.requires.sw.supervisor: '>=16.1.0 <17'}\n  t:\n    image: y\n",
    )
    .unwrap();
    let d = c.image_descriptors();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json[0]["contract"],
        serde_json::json!({"type": "sw.container", "slug": "contract-for-s", "requires": [
            {"type": "sw.supervisor", "version": ">=16.1.0 <17"},
            {"type": "sw.spec", "slug": "compose", "version": ">=2"}
        ]})
    );
    assert!(json[1].get("contract").is_none());
}

#[test]
fn yaml_output_round_trips() {
    let c = common::load_fixture("reference/default.yml");
    let yaml = c.to_yaml();
    let mut opts = options(&[common::fixture("reference/default.yml")], &[]);
    opts.project_dir = Some(common::fixture("reference"));
    let again = parse::parse_str(&yaml, &opts).unwrap();
    assert_eq!(again.services["s3"].ports, c.services["s3"].ports);
    assert_eq!(again.services["s2"].volumes, c.services["s2"].volumes);
    assert_eq!(
        again.services["s1"].environment,
        c.services["s1"].environment
    );
}
