//! The error-source policy: a cause shown in a message is not also the error's `source()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;

use resolve::{Arch, ContextFiles, Params, resolve};
use test_support::assert_each_cause_printed_once;

struct Unreadable;

impl ContextFiles for Unreadable {
    fn paths(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(["Dockerfile"].into_iter())
    }

    fn read(&self, _: &str) -> io::Result<Vec<u8>> {
        Err(io::Error::other("the disk went away"))
    }
}

#[test]
fn template_and_read_errors_print_their_cause_once() {
    let params = Params::new(Arch::Amd64, "genericx86-64-ext").with_service("web");
    let template = vec![("Dockerfile.template", "FROM %%NOT_DEFINED%%\n")];
    let err = resolve(&template, &params).unwrap_err();
    let chain = assert_each_cause_printed_once(&err);
    assert_eq!(
        chain.concat().matches("NOT_DEFINED").count(),
        1,
        "{chain:?}"
    );

    let err = resolve(&Unreadable, &params).unwrap_err();
    let chain = assert_each_cause_printed_once(&err);
    assert_eq!(
        chain.concat().matches("disk went away").count(),
        1,
        "{chain:?}"
    );
}
