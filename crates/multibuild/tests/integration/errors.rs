//! The error-source policy: a cause shown in a message is not also the error's `source()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use multibuild::{PlanOptions, ProjectSource, plan};
use test_support::assert_each_cause_printed_once;

#[test]
fn a_missing_project_and_a_service_error_print_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = plan(PlanOptions {
        source: ProjectSource::Dir(missing),
        compose_files: vec![],
        env_file: None,
        project_name: Some("p".into()),
        arch: platform::Arch::Amd64,
        device_type: None,
        emulation: emulate::Emulation::Native,
        tag: None,
        build_args: Default::default(),
        template_vars: Default::default(),
        multi_dockerignore: false,
    })
    .unwrap_err();
    assert!(
        matches!(err, multibuild::Error::ProjectSource { .. }),
        "{err}"
    );
    let chain = assert_each_cause_printed_once(&err);
    let why = "No such file or directory";
    assert_eq!(chain.concat().matches(why).count(), 1, "{chain:?}");

    let service = multibuild::Error::Service {
        service: "web".to_owned(),
        cause: Box::new(err),
    };
    let chain = assert_each_cause_printed_once(&service);
    assert_eq!(chain.concat().matches(why).count(), 1, "{chain:?}");
}
