//! Hostile and malformed project tars: each is refused with an error naming the entry,
//! or read the one safe way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Tar, names, project, read_tar, write};
use context::{EntryKind, Error, Warning};

fn open_err(bytes: &[u8]) -> Error {
    project(bytes).expect_err("the project should be refused")
}

#[test]
fn dotdot_and_absolute_paths_are_refused() {
    for name in ["../x", "a/../../x", "/abs", "/etc/passwd", "ok/../../../x"] {
        let err = open_err(&Tar::new().file("fine", b"1").file(name, b"x").finish());
        assert!(
            matches!(err, Error::PathEscapes { ref path } if path == name),
            "{name}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("tar entry \"{name}\": path escapes the project root")
        );
    }
}

fn context_err(bytes: &[u8], dir: &str) -> Error {
    project(bytes)
        .unwrap()
        .context(dir)
        .expect_err("the context should be refused")
}

#[test]
fn symlinks_leaving_the_project_are_refused() {
    for target in ["../../etc", "/etc/passwd", "x/../../.."] {
        let err = context_err(
            &Tar::new().dir("sub").symlink("sub/evil", target).finish(),
            ".",
        );
        let text = err.to_string();
        assert!(
            matches!(err, Error::LinkEscapes { kind: "symlink", ref path, .. } if path == "sub/evil"),
            "{target}: {text}"
        );
        assert_eq!(
            text,
            format!(
                "tar entry \"sub/evil\": symlink target \"{target}\" points outside the build context \".\""
            )
        );
    }
    // Ignored, it does not matter (a virtualenv's absolute links, say).
    let bytes = Tar::new()
        .file(".dockerignore", b"venv\n")
        .symlink("venv/python", "/usr/bin/python3")
        .file("Dockerfile", b"FROM x\n")
        .finish();
    assert_eq!(
        names(&project(&bytes).unwrap().context(".").unwrap()),
        [".dockerignore", "Dockerfile"]
    );
}

#[test]
fn symlink_through_another_symlink_is_resolved_not_lexical() {
    // `here -> .` then `up -> here/..`: lexically `up` stays at the root, really it is
    // the project's parent.
    let err = context_err(
        &Tar::new()
            .symlink("here", ".")
            .symlink("up", "here/..")
            .finish(),
        ".",
    );
    assert!(
        matches!(err, Error::LinkEscapes { ref path, .. } if path == "up"),
        "{err}"
    );
}

#[test]
fn symlink_leaving_a_context_fails_that_context_only() {
    let bytes = Tar::new()
        .file("shared/lib.sh", b"echo\n")
        .file("svc/Dockerfile", b"FROM x\n")
        .symlink("svc/lib.sh", "../shared/lib.sh")
        .symlink("svc/inner", "Dockerfile")
        .finish();
    let p = project(&bytes).unwrap();
    let err = p.context("svc").unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar entry \"svc/lib.sh\": symlink target \"../shared/lib.sh\" points outside the build context \"svc\""
    );
    // From the root the same link is fine and is written as a link, not followed.
    let root = read_tar(&write(&p.context(".").unwrap(), &[]));
    let link = root.iter().find(|w| w.path == "svc/lib.sh").unwrap();
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(link.link.as_deref(), Some("../shared/lib.sh"));
    // An ignored escaping link does not matter.
    let bytes = Tar::new()
        .file(".dockerignore", b"svc/lib.sh\n")
        .file("shared/lib.sh", b"echo\n")
        .file("svc/Dockerfile", b"FROM x\n")
        .symlink("svc/lib.sh", "../shared/lib.sh")
        .finish();
    let ctx = project(&bytes).unwrap().context("svc").unwrap();
    assert_eq!(names(&ctx), ["Dockerfile"]);
}

#[test]
fn hard_links() {
    // Outside the project.
    let err = open_err(&Tar::new().hardlink("h", "../outside").finish());
    assert!(
        matches!(
            err,
            Error::LinkEscapes {
                kind: "hard link",
                ..
            }
        ),
        "{err}"
    );
    // To nothing.
    let err = open_err(&Tar::new().hardlink("h", "missing").finish());
    assert!(
        matches!(err, Error::BadHardLink { ref path, .. } if path == "h"),
        "{err}"
    );
    // Outside the context.
    let bytes = Tar::new()
        .file("shared/big.bin", b"payload")
        .file("svc/Dockerfile", b"FROM x\n")
        .hardlink("svc/big.bin", "shared/big.bin")
        .hardlink("svc/copy", "./svc/Dockerfile")
        .finish();
    let p = project(&bytes).unwrap();
    let err = p.context("svc").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("tar entry \"svc/big.bin\": hard link target \"shared/big.bin\" points outside the build context \"svc\""),
        "{err}"
    );
    // Inside: written as a regular file with the target's bytes.
    let root = read_tar(&write(&p.context(".").unwrap(), &[]));
    let copy = root.iter().find(|w| w.path == "svc/copy").unwrap();
    assert_eq!(copy.kind, tar::EntryType::Regular);
    assert_eq!(copy.data, b"FROM x\n");
    assert_eq!(p.entry("svc/copy").unwrap().kind(), EntryKind::HardLink);
}

#[test]
fn entries_below_a_symlink_or_file_are_refused() {
    // The classic `a -> /etc` then `a/passwd`.
    let err = open_err(
        &Tar::new()
            .symlink("a", "/etc")
            .file("a/passwd", b"x")
            .finish(),
    );
    assert!(
        matches!(err, Error::BadParent { .. } | Error::LinkEscapes { .. }),
        "{err}"
    );
    // Even a harmless-looking link may not have children.
    let err = open_err(
        &Tar::new()
            .dir("sub")
            .symlink("a", "sub")
            .file("a/x", b"x")
            .finish(),
    );
    assert_eq!(
        err.to_string(),
        "tar entry \"a/x\": its parent \"a\" is a symlink, not a directory"
    );
    let err = open_err(&Tar::new().file("f", b"").file("f/x", b"x").finish());
    assert!(
        matches!(
            err,
            Error::BadParent {
                parent_kind: "file",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_archives_are_refused() {
    let good = Tar::new().file("a", b"hello").file("b", b"world").finish();
    // Cut inside the second header.
    let err = open_err(&good[..1024 + 100]);
    assert!(matches!(err, Error::Tar { .. }), "{err}");
    assert!(err.to_string().contains("after entry \"a\""), "{err}");
    // Cut inside the second entry's data.
    let err = open_err(&good[..1024 + 512 + 2]);
    assert!(
        matches!(err, Error::Truncated { ref path, .. } if path == "b"),
        "{err}"
    );
    // A flipped byte in a name breaks the checksum.
    let mut bad = good.clone();
    bad[512 * 2] ^= 0x20;
    let err = open_err(&bad);
    assert!(err.to_string().contains("checksum"), "{err}");
    // A size field that is not a number.
    let mut h = Tar::header(b"c", tar::EntryType::Regular, 0, b"");
    h.as_old_mut().size = *b"zzzzzzzzzzz\0";
    h.set_cksum();
    let err = open_err(&Tar::new().raw(&h, b"").finish());
    assert!(matches!(err, Error::Tar { .. }), "{err}");
}

#[test]
fn enormous_declared_size_is_refused() {
    let h = Tar::header(b"huge", tar::EntryType::Regular, 1 << 40, b"");
    let bytes = Tar::new().raw(&h, b"tiny").finish();
    let err = open_err(&bytes);
    assert!(
        matches!(err, Error::Truncated { ref path, size, .. } if path == "huge" && size == 1 << 40),
        "{err}"
    );
}

#[test]
fn pax_size_wins_over_header_size_tarmageddon() {
    // The ustar header says 0 bytes, PAX says 1024: the 1024 bytes are data, including a
    // header-shaped block that a vulnerable reader would take for an entry "smuggled".
    let smuggled = Tar::new().file("smuggled", b"evil").finish();
    let payload = &smuggled[..1024];
    let mut t = Tar::new();
    t.pax(&[("size", b"1024")]);
    let h = Tar::header(b"outer", tar::EntryType::Regular, 0, b"");
    t.raw(&h, payload);
    t.file("after", b"ok");
    let p = project(&t.finish()).unwrap();
    let paths: Vec<&str> = p.entries().iter().map(|e| e.path()).collect();
    assert_eq!(paths, ["after", "outer"]);
    assert_eq!(p.entry("outer").unwrap().size(), 1024);
    let out = read_tar(&write(&p.context(".").unwrap(), &[]));
    let outer = out.iter().find(|w| w.path == "outer").unwrap();
    assert_eq!(outer.data, payload);
    assert!(out.iter().all(|w| w.path != "smuggled"));
}

#[test]
fn long_gnu_and_pax_names_are_kept() {
    let gnu_name = format!("svc/{}/gnu.txt", "d".repeat(120));
    let pax_name = format!("svc/{}/pax.txt", "p".repeat(150));
    let long_target = format!("{}/target", "t".repeat(110));
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o600);
    h.set_cksum();
    builder.append_data(&mut h, &gnu_name, &b"gnu"[..]).unwrap();
    let mut bytes = builder.into_inner().unwrap();
    // Drop the end-of-archive blocks the builder wrote, to append more entries.
    bytes.truncate(bytes.len() - 1024);
    let mut t = Tar(bytes);
    t.pax(&[("path", pax_name.as_bytes()), ("mtime", b"1234567890.5")]);
    t.file("short-name-in-header", b"pax");
    t.pax(&[("linkpath", long_target.as_bytes())]);
    t.symlink("svc/link", "ignored");
    let p = project(&t.finish()).unwrap();
    assert_eq!(p.entry(&gnu_name).unwrap().mode(), 0o600);
    assert_eq!(p.entry(&pax_name).unwrap().mtime(), 1_234_567_890);
    assert_eq!(
        p.entry("svc/link").unwrap().link_target(),
        Some(long_target.as_str())
    );
    let out = read_tar(&write(&p.context("svc").unwrap(), &[]));
    let find = |path: &str| out.iter().find(|w| w.path == path).unwrap().clone();
    assert_eq!(find(&gnu_name[4..]).data, b"gnu");
    assert_eq!(find(&pax_name[4..]).data, b"pax");
    assert_eq!(find(&pax_name[4..]).mtime, 1_234_567_890);
    assert_eq!(find("link").link.as_deref(), Some(long_target.as_str()));
}

#[test]
fn devices_are_skipped_with_a_warning_and_duplicates_last_win() {
    let fifo = Tar::header(b"pipe", tar::EntryType::Fifo, 0, b"");
    let chr = Tar::header(b"dev/null", tar::EntryType::Char, 0, b"");
    let bytes = Tar::new()
        .raw(&fifo, b"")
        .raw(&chr, b"")
        .file("a", b"first")
        .file("./a", b"second")
        .finish();
    let p = project(&bytes).unwrap();
    assert_eq!(p.read_file("a").unwrap().unwrap(), b"second");
    assert_eq!(
        p.warnings(),
        [
            Warning::SkippedSpecial {
                path: "pipe".into(),
                kind: "fifo".into()
            },
            Warning::SkippedSpecial {
                path: "dev/null".into(),
                kind: "character device".into()
            },
            Warning::Duplicate { path: "a".into() },
        ]
    );
    assert_eq!(names(&p.context(".").unwrap()), ["a"]);
}

#[test]
fn non_utf8_names_are_refused() {
    let h = Tar::header(b"bad\xff", tar::EntryType::Regular, 0, b"");
    let err = open_err(&Tar::new().raw(&h, b"").finish());
    assert!(matches!(err, Error::NonUtf8Path { .. }), "{err}");
}

#[test]
fn empty_input_is_an_empty_project() {
    let p = project(b"").unwrap();
    assert!(p.entries().is_empty());
    let out = write(&p.context(".").unwrap(), &[]);
    assert_eq!(out, vec![0; 1024]);
}

#[test]
fn malformed_pax_records_are_refused_naming_the_entry() {
    for records in [
        &[("size", &b"99999999999999999999"[..])][..],
        &[("mtime", b"yesterday")],
        &[("uid", b"-1")],
    ] {
        let bytes = Tar::new()
            .file("ok", b"1")
            .pax(records)
            .file("next", b"x")
            .finish();
        let err = open_err(&bytes);
        let text = err.to_string();
        assert!(matches!(err, Error::Tar { .. }), "{records:?}: {text}");
        assert!(
            text.starts_with("malformed tar archive (entry \"next\"): pax extended header record"),
            "{text}"
        );
    }
    // A record that is not `<length> <key>=<value>\n` at all.
    let mut tar = Tar::new();
    tar.file("ok", b"1");
    let header = Tar::header(b"PaxHeader", tar::EntryType::XHeader, 10, b"");
    tar.raw(&header, b"garbage!!\n").file("next", b"x");
    let text = open_err(&tar.finish()).to_string();
    assert!(text.contains("bad pax extended header record"), "{text}");
    // A fractional mtime is fine.
    let bytes = Tar::new()
        .pax(&[("mtime", b"1700000000.25")])
        .file("a", b"x")
        .finish();
    assert_eq!(
        project(&bytes).unwrap().entry("a").unwrap().mtime(),
        1_700_000_000
    );
}

#[test]
fn control_characters_in_names_are_escaped_in_errors() {
    let name = "\u{1b}]2;pwned\u{7}/../../x";
    let err = open_err(&Tar::new().file(name, b"x").finish());
    let text = err.to_string();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert_eq!(
        text,
        "tar entry \"\\u{1b}]2;pwned\\u{7}/../../x\": path escapes the project root"
    );
    let err = context::dockerignore::Dockerignore::parse(".dockerignore", b"\x1b[31m[\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.starts_with(".dockerignore line 1: pattern \"\\u{1b}[31m[\""),
        "{err}"
    );
}

#[test]
fn names_over_the_limit_are_refused_and_quoted_cut() {
    let long = "n".repeat(5000);
    let fits = "f".repeat(4000);
    // At the limit (and a GNU long name with its NUL) is fine.
    let mut t = Tar::new();
    t.pax(&[("path", fits.as_bytes())]).file("x", b"1");
    t.raw(
        &Tar::header(b"././@LongLink", tar::EntryType::GNULongName, 4097, b""),
        format!("{}\0", "g".repeat(4096)).as_bytes(),
    )
    .file("y", b"2");
    let p = project(&t.finish()).unwrap();
    assert!(p.entry(&fits).is_some() && p.entry(&"g".repeat(4096)).is_some());
    let gnu_long = |ty, name: &str| {
        let mut t = Tar::new();
        let data = format!("{name}\0");
        t.raw(
            &Tar::header(b"././@LongLink", ty, data.len() as u64, b""),
            data.as_bytes(),
        );
        t
    };
    let cases = [
        (
            Tar::new()
                .pax(&[("path", long.as_bytes())])
                .file("x", b"1")
                .finish(),
            "pax record \"path\"",
        ),
        (
            gnu_long(tar::EntryType::GNULongName, &long)
                .file("x", b"1")
                .finish(),
            "GNU long name",
        ),
        (
            Tar::new()
                .pax(&[("linkpath", long.as_bytes())])
                .symlink("link", "x")
                .finish(),
            "pax record \"linkpath\"",
        ),
        (
            gnu_long(tar::EntryType::GNULongLink, &long)
                .symlink("link", "x")
                .finish(),
            "GNU long link name",
        ),
    ];
    for (bytes, what) in cases {
        let err = open_err(&bytes);
        let text = err.to_string();
        assert!(matches!(err, Error::NameTooLong { .. }), "{text}");
        assert!(
            text.contains(&format!(
                "{what} is 5000 bytes long, over the limit of 4096"
            )),
            "{text}"
        );
        // The entry is named; a long name only by its start.
        assert!(text.len() < 300, "{text}");
        assert!(
            text.contains("nnnn…") || text.contains("\"link\""),
            "{text}"
        );
    }
    // Any other record is capped too (at 1 MiB), naming the entry.
    let comment = vec![b'c'; (context::MAX_PAX_RECORD_LEN + 1) as usize];
    let err = open_err(
        &Tar::new()
            .pax(&[("comment", &comment)])
            .file("x", b"1")
            .finish(),
    );
    assert!(
        err.to_string()
            .starts_with("tar entry \"x\": pax record \"comment\""),
        "{err}"
    );
}

/// A file of `size` bytes, zeros but for `chunks` of data.
fn sparse_source(dir: &std::path::Path, size: u64, chunks: &[(u64, &[u8])]) -> Vec<u8> {
    let mut bytes = vec![0; usize::try_from(size).unwrap()];
    for (at, data) in chunks {
        let at = usize::try_from(*at).unwrap();
        bytes[at..at + data.len()].copy_from_slice(data);
    }
    let file = std::fs::File::create(dir.join("sparse")).unwrap();
    file.set_len(size).unwrap();
    for (at, data) in chunks {
        std::os::unix::fs::FileExt::write_all_at(&file, data, *at).unwrap();
    }
    bytes
}

/// GNU tar's own sparse archives, in each of its formats.
fn gnu_tar_sparse(dir: &std::path::Path, format: &[&str]) -> Vec<u8> {
    let archive = dir.join("out.tar");
    let status = std::process::Command::new("tar")
        .args(["--sparse", "-cf"])
        .arg(&archive)
        .args(format)
        .args(["-C"])
        .arg(dir)
        .args(["sparse", "twin"])
        .status()
        .expect("GNU tar runs");
    assert!(status.success());
    std::fs::read(archive).unwrap()
}

const SPARSE_FORMATS: [&[&str]; 4] = [
    &["--format=gnu"],
    &["--format=posix", "--sparse-version=0.0"],
    &["--format=posix", "--sparse-version=0.1"],
    &["--format=posix", "--sparse-version=1.0"],
];

#[test]
fn sparse_files_of_every_format_are_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let size = 3 << 20;
    let chunks: [(u64, &[u8]); 3] = [(0, b"head"), (1 << 20, b"middle"), (size - 5, b"tail!")];
    let expected = sparse_source(dir.path(), size, &chunks);
    // GNU tar stores the second name as a hard link to the sparse entry.
    std::fs::hard_link(dir.path().join("sparse"), dir.path().join("twin")).unwrap();
    for format in SPARSE_FORMATS {
        let bytes = gnu_tar_sparse(dir.path(), format);
        assert!(bytes.len() < 100_000, "{format:?}: not stored sparse");
        let p = project(&bytes).unwrap();
        let paths: Vec<&str> = p.entries().iter().map(|e| e.path()).collect();
        assert_eq!(paths, ["sparse", "twin"], "{format:?}");
        assert_eq!(p.entry("twin").unwrap().kind(), EntryKind::HardLink);
        assert_eq!(p.entry("sparse").unwrap().size(), size, "{format:?}");
        let out = read_tar(&write(&p.context(".").unwrap(), &[]));
        assert_eq!(out.len(), 2, "{format:?}");
        for written in out {
            assert!(
                written.data == expected,
                "{format:?} {}: different bytes",
                written.path
            );
        }
    }
}

#[test]
fn sparse_maps_that_do_not_add_up_are_refused() {
    // 1.0: the map in the data claims more data than is stored.
    let map = b"1\n0\n600\n";
    let mut data = map.to_vec();
    data.resize(512, 0);
    data.extend_from_slice(&[7; 512]);
    let h = Tar::header(b"GNUSparseFile.1/f", tar::EntryType::Regular, 1024, b"");
    let mut t = Tar::new();
    t.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"f"),
        ("GNU.sparse.realsize", b"4096"),
    ]);
    let err = open_err(&t.raw(&h, &data).finish());
    assert!(
        err.to_string().contains(
            "entry \"f\"): sparse map describes 600 bytes of data but the entry stores 512"
        ),
        "{err}"
    );
    // An unknown version is refused, not read as a plain file under the real name.
    let mut t = Tar::new();
    t.pax(&[
        ("GNU.sparse.major", b"2"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"f"),
    ]);
    let h = Tar::header(b"GNUSparseFile.1/f", tar::EntryType::Regular, 0, b"");
    let err = open_err(&t.raw(&h, b"").finish());
    assert!(
        err.to_string()
            .contains("GNU sparse format 2.0 is not supported"),
        "{err}"
    );
}
