//! Cutting a project into contexts: overlap, ignore files, metadata, overrides, and
//! directory input matching tar input byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Tar, names, project, read_tar, write};
use context::{ContextOptions, Error, IgnoreMode, Override, Project};

fn sample() -> Vec<u8> {
    Tar::new()
        .file(".dockerignore", b"**/*.log\nsvc1/test-ignore*\n")
        .file("Dockerfile", b"FROM root\n")
        .file("docker-compose.yml", b"services: {}\n")
        .dir("svc1")
        .file("svc1/Dockerfile.template", b"FROM %%BALENA_ARCH%%\n")
        .file("svc1/file1.sh", b"echo one\n")
        .file("svc1/test-ignore.txt", b"ignored\n")
        .file("svc1/debug.log", b"log\n")
        .dir("svc2")
        .file("svc2/.dockerignore", b"**/file1.sh\n*\n!keep.txt\n")
        .file("svc2/Dockerfile", b"FROM two\n")
        .file("svc2/keep.txt", b"kept\n")
        .file("svc2/src/file1.sh", b"echo\n")
        .file("svc2/other.txt", b"other\n")
        .finish()
}

#[test]
fn overlapping_contexts_each_get_the_file() {
    let p = project(&sample()).unwrap();
    let root = names(&p.context(".").unwrap());
    let svc1 = names(&p.context("svc1").unwrap());
    assert!(root.contains(&"svc1/file1.sh".to_owned()), "{root:?}");
    assert_eq!(svc1, ["Dockerfile.template", "file1.sh"]);
    // `./svc1/` names the same context.
    assert_eq!(names(&p.context("./svc1/").unwrap()), svc1);
}

#[test]
fn root_and_context_ignore_files() {
    let p = project(&sample()).unwrap();
    // Default: both apply; the context's own .dockerignore and Dockerfile are kept
    // although `*` excludes them; `!keep.txt` re-includes.
    assert_eq!(
        names(&p.context("svc2").unwrap()),
        [".dockerignore", "Dockerfile", "keep.txt"]
    );
    let with = |ignore| ContextOptions {
        ignore,
        ..ContextOptions::default()
    };
    // Root only (balena CLI without -m): the service file is not read.
    assert_eq!(
        names(&p.context_with("svc2", &with(IgnoreMode::Root)).unwrap()),
        [
            ".dockerignore",
            "Dockerfile",
            "keep.txt",
            "other.txt",
            "src/file1.sh"
        ]
    );
    // Context only (balena CLI -m): svc1 loses the root rules, so its log and
    // test-ignore file come back.
    assert_eq!(
        names(
            &p.context_with("svc1", &with(IgnoreMode::ContextOnly))
                .unwrap()
        ),
        [
            "Dockerfile.template",
            "debug.log",
            "file1.sh",
            "test-ignore.txt"
        ]
    );
    // The root context never reads a service's file.
    let root = names(&p.context(".").unwrap());
    assert!(root.contains(&"svc2/other.txt".to_owned()));
    assert!(!root.contains(&"svc1/debug.log".to_owned()));
}

#[test]
fn keep_list_and_balena_defaults() {
    let bytes = Tar::new()
        .file(".dockerignore", b"*\n")
        .file("docker/Custom.Dockerfile", b"FROM x\n")
        .file("Dockerfile.aarch64", b"FROM y\n")
        .file("x.txt", b"x\n")
        .file(".git/HEAD", b"ref\n")
        .finish();
    let p = project(&bytes).unwrap();
    // Defaults re-include Dockerfile.*; the root .dockerignore itself is kept.
    assert_eq!(
        names(&p.context(".").unwrap()),
        [".dockerignore", "Dockerfile.aarch64"]
    );
    let opts = ContextOptions {
        keep: vec!["./docker/Custom.Dockerfile".into()],
        ..ContextOptions::default()
    };
    assert_eq!(
        names(&p.context_with(".", &opts).unwrap()),
        [
            ".dockerignore",
            "Dockerfile.aarch64",
            "docker/Custom.Dockerfile"
        ]
    );
    // Without the balena defaults, only moby's rules (and the always-kept names) apply.
    let bytes = Tar::new()
        .file(".dockerignore", b"x.txt\n")
        .file("x.txt", b"x\n")
        .file(".git/HEAD", b"ref\n")
        .finish();
    let p = project(&bytes).unwrap();
    assert_eq!(names(&p.context(".").unwrap()), [".dockerignore"]);
    let plain = ContextOptions {
        balena_defaults: false,
        ..ContextOptions::default()
    };
    assert_eq!(
        names(&p.context_with(".", &plain).unwrap()),
        [".dockerignore", ".git/HEAD"]
    );
}

#[test]
fn bad_ignore_file_names_file_and_line() {
    let bytes = Tar::new()
        .file("svc/.dockerignore", b"ok\n!\n")
        .file("svc/Dockerfile", b"FROM x\n")
        .finish();
    let err = project(&bytes).unwrap().context("svc").unwrap_err();
    assert_eq!(
        err.to_string(),
        "svc/.dockerignore line 2: illegal exclusion pattern: \"!\""
    );
}

#[test]
fn invalid_contexts() {
    let p = project(&sample()).unwrap();
    for dir in ["../x", "/abs", "missing", "svc1/file1.sh"] {
        let err = p.context(dir).unwrap_err();
        assert!(matches!(err, Error::InvalidContext { .. }), "{dir}: {err}");
        assert!(err.to_string().contains(dir), "{err}");
    }
}

#[test]
fn metadata_directory_is_kept_out_but_readable() {
    let bytes = Tar::new()
        .dir(".balena")
        .file(".balena/balena.yml", b"build-secrets: {}\n")
        .file(".balena/secrets/token", b"s3cret")
        .file_mode(".balena/qemu-execve", b"\x7fELF", 0o755)
        .file("Dockerfile", b"FROM x\n")
        .file("svc/.balena/balena.yml", b"not metadata\n")
        .finish();
    let p = project(&bytes).unwrap();
    let meta = p.metadata().unwrap();
    assert_eq!(meta.dir(), ".balena");
    assert_eq!(
        meta.files().collect::<Vec<_>>(),
        ["balena.yml", "secrets/token"]
    );
    let config = p.balena_config().unwrap().unwrap();
    assert_eq!(config.name, "balena.yml");
    assert_eq!(config.contents, b"build-secrets: {}\n");
    assert_eq!(
        p.read_metadata_file("secrets/token").unwrap().unwrap(),
        b"s3cret"
    );
    // The reference leaves qemu-execve in the context; only the root metadata
    // directory is metadata.
    let root = read_tar(&write(&p.context(".").unwrap(), &[]));
    let paths: Vec<&str> = root.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".balena/qemu-execve",
            "Dockerfile",
            "svc/.balena/balena.yml"
        ]
    );
    assert_eq!(root[0].mode, 0o755);
}

#[test]
fn metadata_conflicts() {
    let both = Tar::new()
        .file(".balena/balena.yml", b"")
        .dir(".resin")
        .finish();
    assert!(matches!(
        project(&both).unwrap_err(),
        Error::MultipleMetadataDirectories
    ));
    let two = Tar::new()
        .file(".resin/resin.json", b"{}")
        .file(".resin/balena.yaml", b"")
        .finish();
    let p = project(&two).unwrap();
    assert_eq!(
        p.balena_config().unwrap_err().to_string(),
        "more than one build metadata file in .resin/: balena.yaml and resin.json"
    );
    let none = project(&Tar::new().file("Dockerfile", b"").finish()).unwrap();
    assert!(none.metadata().is_none());
    assert!(none.balena_config().unwrap().is_none());
}

#[test]
fn overrides_replace_add_and_remove() {
    let p = project(&sample()).unwrap();
    let ctx = p.context("svc1").unwrap();
    assert_eq!(
        ctx.read_file("Dockerfile.template").unwrap().unwrap(),
        b"FROM %%BALENA_ARCH%%\n"
    );
    assert!(ctx.read_file("test-ignore.txt").unwrap().is_none());
    let qemu = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(qemu.path(), vec![7u8; 3000]).unwrap();
    let out = read_tar(&write(
        &ctx,
        &[
            Override::file("Dockerfile", "FROM amd64\n"),
            Override::remove("Dockerfile.template"),
            Override::host_file(".balena/qemu-execve", qemu.path(), 0o755),
            Override::file_with_mode("file1.sh", "echo replaced\n", 0o700),
        ],
    ));
    let summary: Vec<(&str, u32, u64, usize)> = out
        .iter()
        .map(|w| (w.path.as_str(), w.mode, w.mtime, w.data.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (".balena/qemu-execve", 0o755, 0, 3000),
            ("Dockerfile", 0o644, 0, 11),
            // Replaced in place: keeps owner and mtime, takes the new mode and bytes.
            ("file1.sh", 0o700, 1_700_000_000, 14),
        ]
    );
    assert_eq!(out[2].uid, 1000);
    let err = ctx
        .write_tar(&[Override::file("../x", "")], Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOverride { .. }), "{err}");
}

#[test]
fn modes_owners_mtimes_and_order_are_preserved() {
    let bytes = Tar::new()
        .file_mode("b/run.sh", b"#!/bin/sh\n", 0o4755)
        .dir("b")
        .file("a", b"1")
        .finish();
    let p = project(&bytes).unwrap();
    let out = read_tar(&write(&p.context(".").unwrap(), &[]));
    let summary: Vec<(&str, tar::EntryType, u32, u64, u64)> = out
        .iter()
        .map(|w| (w.path.as_str(), w.kind, w.mode, w.uid, w.mtime))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", tar::EntryType::Regular, 0o644, 1000, 1_700_000_000),
            ("b/", tar::EntryType::Directory, 0o755, 1000, 1_700_000_000),
            (
                "b/run.sh",
                tar::EntryType::Regular,
                0o4755,
                1000,
                1_700_000_000
            ),
        ]
    );
    // Writing twice gives the same bytes.
    let ctx = p.context(".").unwrap();
    assert_eq!(write(&ctx, &[]), write(&ctx, &[]));
}

#[test]
fn directory_and_tar_inputs_give_identical_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let put = |rel: &str, data: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    put(".dockerignore", b"**/*.tmp\n");
    put("svc/Dockerfile", b"FROM x\n");
    put("svc/src/main.c", b"int main(){}\n");
    put("svc/src/junk.tmp", b"junk");
    put(".balena/balena.yml", b"x: 1\n");
    put(&format!("svc/{}/deep.txt", "long".repeat(30)), b"deep");
    std::os::unix::fs::symlink("src/main.c", root.join("svc/main-link.c")).unwrap();
    std::fs::create_dir_all(root.join("svc/empty")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("svc/src/main.c"),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();

    let mut builder = tar::Builder::new(Vec::new());
    // A directory project sends a symlink to a file inside it as that file (as the balena
    // CLI does): the tar to compare with is one made with the links followed.
    builder.follow_symlinks(true);
    builder.mode(tar::HeaderMode::Complete);
    builder.append_dir_all(".", root).unwrap();
    let tar_bytes = builder.into_inner().unwrap();

    let from_dir = Project::open(root).unwrap();
    let from_tar = project(&tar_bytes).unwrap();
    let view = |p: &Project| -> Vec<_> {
        p.entries()
            .iter()
            .map(|e| {
                let link = e.link_target().map(str::to_owned);
                (
                    e.path().to_owned(),
                    e.kind(),
                    e.size(),
                    e.mode(),
                    e.uid(),
                    e.gid(),
                    e.mtime(),
                    link,
                )
            })
            .collect()
    };
    assert_eq!(view(&from_dir), view(&from_tar));
    for ctx in [".", "svc"] {
        let a = write(
            &from_dir.context(ctx).unwrap(),
            &[Override::file("extra", "x")],
        );
        let b = write(
            &from_tar.context(ctx).unwrap(),
            &[Override::file("extra", "x")],
        );
        assert!(a == b, "context {ctx} differs");
        assert!(!read_tar(&a).iter().any(|w| w.path.ends_with(".tmp")));
    }
    let svc = read_tar(&write(&from_dir.context("svc").unwrap(), &[]));
    let link = svc.iter().find(|w| w.path == "main-link.c").unwrap();
    assert_eq!(link.kind, tar::EntryType::Regular);
    assert_eq!(link.mode, 0o751);
    assert!(svc.iter().any(|w| w.path == "empty/"));
    assert_eq!(
        svc.iter().find(|w| w.path == "src/main.c").unwrap().mode,
        0o751
    );
    assert_eq!(
        from_dir.balena_config().unwrap().unwrap().contents,
        b"x: 1\n"
    );
}

#[test]
fn directory_symlinks_are_not_followed_out_of_the_tree() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
    let p = Project::open(dir.path()).unwrap();
    let paths: Vec<&str> = p.entries().iter().map(|e| e.path()).collect();
    assert_eq!(paths, ["out"]);
    let err = p.context(".").unwrap_err();
    assert!(
        matches!(err, Error::LinkEscapes { ref path, .. } if path == "out"),
        "{err}"
    );
}

#[test]
fn contexts_can_be_written_from_threads() {
    let p = project(&sample()).unwrap();
    let ctx = p.context("svc1").unwrap();
    let expected = write(&ctx, &[]);
    let handle = std::thread::spawn(move || {
        let mut out = Vec::new();
        ctx.write_tar(&[], &mut out).unwrap();
        out
    });
    assert_eq!(handle.join().unwrap(), expected);
}

#[test]
fn a_tar_file_is_indexed_in_place_and_a_pipe_is_spooled() {
    use std::io::{Seek, SeekFrom, Write};
    let bytes = sample();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bytes).unwrap();
    // Any position: the archive is read from its start.
    file.seek(SeekFrom::Start(7)).unwrap();
    let in_place = Project::from_tar_file(file).unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feeder = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    let piped =
        Project::from_tar_file(std::fs::File::from(std::os::fd::OwnedFd::from(reader))).unwrap();
    feeder.join().unwrap();
    assert_eq!(
        write(&in_place.context("svc1").unwrap(), &[]),
        write(&piped.context("svc1").unwrap(), &[])
    );
}

#[test]
fn a_gzip_compressed_tar_is_read_from_a_file_and_a_stream() {
    use std::io::Write;
    let plain = sample();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let compressed = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("project.tar.gz");
    std::fs::write(&path, &compressed).unwrap();
    let from_plain = write(&project(&plain).unwrap().context("svc1").unwrap(), &[]);
    for p in [
        Project::open(&path).unwrap(),
        Project::from_reader(&compressed[..]).unwrap(),
    ] {
        assert_eq!(write(&p.context("svc1").unwrap(), &[]), from_plain);
    }
    // A damaged gzip stream says it is gzip.
    let mut damaged = compressed.clone();
    damaged.truncate(compressed.len() / 2);
    let err = Project::from_reader(&damaged[..]).unwrap_err().to_string();
    assert!(
        err.starts_with("reading the gzip-compressed project tar: "),
        "{err}"
    );
    // A one-byte file is a malformed tar, not a failed read.
    std::fs::write(&path, [0x1f]).unwrap();
    let err = Project::open(&path).unwrap_err();
    assert!(matches!(err, Error::Tar { .. }), "{err}");
}
