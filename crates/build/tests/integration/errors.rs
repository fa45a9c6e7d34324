//! The error-source policy: a cause shown in a message is not also the error's `source()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use test_support::assert_each_cause_printed_once;

#[test]
fn a_context_producer_error_prints_its_cause_once() {
    let err = build::Error::Context(std::io::Error::other("the tar writer broke"));
    let chain = assert_each_cause_printed_once(&err);
    assert_eq!(
        chain.concat().matches("tar writer broke").count(),
        1,
        "{chain:?}"
    );
}
