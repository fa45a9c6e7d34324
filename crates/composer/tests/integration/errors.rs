//! The error-source policy: a cause shown in a message is not also the error's `source()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use composer::Error;
use test_support::assert_each_cause_printed_once;

#[test]
fn engine_and_lock_errors_print_their_cause_once() {
    let engine = Error::Engine {
        context: "creating container main".to_owned(),
        cause: bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "no space left on device".to_owned(),
        },
    };
    let chain = assert_each_cause_printed_once(&engine);
    assert_eq!(
        chain.concat().matches("no space left on device").count(),
        1,
        "{chain:?}"
    );
    let lock = Error::LockIo {
        path: PathBuf::from("/tmp/balena/updates.lock"),
        cause: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
    };
    let chain = assert_each_cause_printed_once(&lock);
    assert_eq!(chain.concat().matches("denied").count(), 1, "{chain:?}");
}
