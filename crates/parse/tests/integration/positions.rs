//! Every error about a service's field names the file, line and column of that field's key,
//! as an unknown key's does: the general rule, not one field at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::options;
use parse::Error;

/// The error of loading `text` from a compose file on disk (positions are read from it).
fn error_of(text: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, text).unwrap();
    match parse::load(&options(&[file], &[])) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

fn position(e: &Error) -> (u64, u64) {
    match e {
        Error::Service { line, column, .. } => (*line, *column),
        other => panic!("not a service error: {other:?}"),
    }
}

#[test]
fn a_bad_value_is_located_at_its_key() {
    let head = "services:\n  app:\n    image: busybox\n";
    for (extra, at, message) in [
        (
            "    ports:\n      - \"abc\"\n",
            (4, 5),
            "Invalid containerPort: abc",
        ),
        (
            "    ports:\n      - target: x\n",
            (4, 5),
            "Invalid containerPort",
        ),
        ("    mem_limit: lots\n", (4, 5), "is not a byte size"),
        ("    shm_size: [1]\n", (4, 5), "is not a byte size"),
        (
            "    environment: 3\n",
            (4, 5),
            "must be a mapping or a list",
        ),
        ("    labels: 7\n", (4, 5), "labels"),
        ("    privileged: true\n    devices: 3\n", (5, 5), "devices"),
        // A nested field: at the nested key.
        (
            "    build:\n      context: .\n      shm_size: huge\n",
            (6, 7),
            "is not a byte size",
        ),
    ] {
        let e = error_of(&format!("{head}{extra}"));
        assert_eq!(position(&e), at, "{extra}: {e}");
        assert!(e.to_string().contains(message), "{extra}: {e}");
        let prefix = format!("docker-compose.yml:{}:{}: service \"app\"", at.0, at.1);
        assert!(e.to_string().contains(&prefix), "{extra}: {e}");
    }
}

#[test]
fn an_error_about_the_service_itself_is_located_at_the_service() {
    let e = error_of("services:\n  app:\n    environment: {A: b}\n");
    assert_eq!(position(&e), (2, 3), "{e}");
    assert!(
        e.to_string().contains("neither an image nor a build"),
        "{e}"
    );
    match e {
        Error::Service { field, .. } => assert_eq!(field, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn good_byte_sizes_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    let text = "services:\n  app:\n    image: busybox\n    mem_limit: 512m\n    mem_reservation: 1.5GiB\n    shm_size: 67108864\n";
    std::fs::write(&file, text).unwrap();
    parse::load(&options(&[file], &[])).unwrap();
}
