//! The error-source policy: a cause shown in a message is not also the error's `source()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use release::{Error, PushError};
use test_support::assert_each_cause_printed_once;

#[test]
fn a_service_push_error_prints_its_cause_once() {
    let err = Error::ServicePush {
        service: "web".to_owned(),
        cause: PushError::InvalidLocation("no-slash".to_owned()),
    };
    let chain = assert_each_cause_printed_once(&err);
    assert_eq!(chain.concat().matches("no-slash").count(), 1, "{chain:?}");
}
