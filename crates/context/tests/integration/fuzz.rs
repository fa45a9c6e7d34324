//! Arbitrary bytes as a project tar: never a panic, and whatever is accepted only ever
//! yields relative paths without `..`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Tar;
use proptest::prelude::*;

fn check(bytes: &[u8]) {
    let Ok(project) = context::Project::from_reader(bytes) else {
        return;
    };
    for entry in project.entries() {
        let path = entry.path();
        assert!(!path.starts_with('/') && !path.is_empty(), "{path:?}");
        assert!(
            path.split('/')
                .all(|c| c != ".." && c != "." && !c.is_empty()),
            "{path:?}"
        );
    }
    let Ok(ctx) = project.context(".") else {
        return;
    };
    let mut out = Vec::new();
    ctx.write_tar(&[], &mut out).unwrap();
    let mut archive = tar::Archive::new(&out[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        assert!(!path.starts_with('/'), "{path:?}");
        assert!(path.split('/').all(|c| c != ".."), "{path:?}");
    }
}

fn seed() -> Vec<u8> {
    Tar::new()
        .dir("svc")
        .file("svc/Dockerfile", b"FROM x\n")
        .symlink("svc/link", "Dockerfile")
        .hardlink("svc/hard", "svc/Dockerfile")
        .pax(&[("path", b"svc/long-name")])
        .file("x", b"data")
        .file(".dockerignore", b"*.log\n")
        .finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes);
    }

    #[test]
    fn mutated_valid_tar(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16)) {
        let mut bytes = seed();
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        check(&bytes);
    }
}
