//! `DirFiles`: resolution over a directory on disk, and the optional serde support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use resolve::{Arch, ContextFiles, DirFiles, Params, ResolverKind, resolve};

fn write(root: &std::path::Path, path: &str, contents: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

#[test]
fn a_directory_resolves_like_the_same_files_in_a_list() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile.template",
        "FROM %%BALENA_ARCH%%/base\n",
    );
    write(dir.path(), "Dockerfile.aarch64", "FROM arm64v8/alpine\n");
    write(dir.path(), "src/app.sh", "echo hi\n");
    let files = DirFiles::open(dir.path()).unwrap();
    assert_eq!(
        files.paths().collect::<Vec<_>>(),
        ["Dockerfile.aarch64", "Dockerfile.template", "src/app.sh"]
    );

    let aarch64 = resolve(&files, &Params::new(Arch::Aarch64, "raspberrypi4-64")).unwrap();
    assert_eq!(aarch64.resolver, ResolverKind::Arch);
    assert_eq!(aarch64.contents, "FROM arm64v8/alpine\n");
    let amd64 = resolve(&files, &Params::new(Arch::Amd64, "genericx86-64-ext")).unwrap();
    assert_eq!(amd64.resolver, ResolverKind::Template);
    assert_eq!(amd64.contents, "FROM amd64/base\n");
}

#[test]
fn links_are_neither_listed_nor_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", "FROM outside\n");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app.sh", "echo hi\n");
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("Dockerfile"))
        .unwrap();
    let files = DirFiles::open(dir.path()).unwrap();
    assert_eq!(files.paths().collect::<Vec<_>>(), ["app.sh"]);
    let err = files.read("Dockerfile").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(resolve(&files, &Params::new(Arch::Amd64, "genericx86-64-ext")).is_err());
}

#[test]
fn a_file_swapped_for_a_link_after_listing_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", "FROM outside\n");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM inside\n");
    let files = DirFiles::open(dir.path()).unwrap();
    fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("Dockerfile"))
        .unwrap();
    let err = files.read("Dockerfile").unwrap_err();
    assert!(
        err.to_string().contains("no longer a regular file"),
        "{err}"
    );
}

#[test]
fn resolver_kinds_serialize_as_their_names() {
    let json = serde_json::to_string(&[ResolverKind::Template, ResolverKind::Dockerfile]).unwrap();
    assert_eq!(json, r#"["Dockerfile.template","Standard Dockerfile"]"#);
}
