//! Properties of selection over arbitrary context listings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use resolve::{Arch, Params, ResolverKind, select};

const COMPONENTS: &[&str] = &[
    "Dockerfile",
    "Dockerfile.template",
    "Dockerfile.aarch64",
    "Dockerfile.nuc",
    "Dockerfile.",
    "._Dockerfile.nuc",
    "x",
    "a.b",
    ".",
    "..",
    "",
];
const SPECIFIED: &[Option<&str>] = &[
    None,
    Some("Dockerfile"),
    Some("./a.b/Dockerfile"),
    Some("x/Dockerfile.template"),
    Some("Dockerfile.aarch64"),
    Some("../x"),
    Some(""),
];

fn listing() -> impl Strategy<Value = Vec<String>> {
    let path = (
        prop::sample::select(vec!["", "./", "/"]),
        prop::collection::vec(prop::sample::select(COMPONENTS), 1..4),
    )
        .prop_map(|(prefix, parts)| format!("{prefix}{}", parts.join("/")));
    prop::collection::vec(path, 0..12)
}

/// `path.posix.normalize` without the leading `/`: `a/../b` is `b`; a `..` above the root
/// stays.
fn normalized(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." && out.last().is_some_and(|l| *l != "..") {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.join("/")
}

proptest! {
    #[test]
    fn selection_is_consistent(
        paths in listing(),
        arch in prop::sample::select(Arch::ALL.to_vec()),
        device_type in prop::sample::select(vec!["nuc", "", "aarch64"]),
        specified in prop::sample::select(SPECIFIED),
    ) {
        let mut params = Params::new(arch, device_type);
        params.dockerfile = specified.map(str::to_owned);
        let target = specified.map_or("Dockerfile".to_owned(), normalized);
        let has_target = !target.is_empty() && paths.iter().any(|p| normalized(p) == target);
        match select(paths.iter().map(String::as_str), &params) {
            Ok(sel) => {
                prop_assert!(paths.contains(&sel.source_path));
                for r in &sel.remove {
                    prop_assert!(paths.contains(r));
                }
                prop_assert!(!sel.dockerfile_path.starts_with('/'));
                prop_assert!(!sel.dockerfile_path.starts_with("./"));
                let source = normalized(&sel.source_path);
                let arch_suffix = format!(".{arch}");
                let device_type_suffix = format!(".{device_type}");
                match sel.resolver {
                    ResolverKind::Template => prop_assert!(source.ends_with(".template")),
                    ResolverKind::Arch => prop_assert!(source.ends_with(&arch_suffix)),
                    ResolverKind::DeviceType => {
                        prop_assert!(source.ends_with(&device_type_suffix));
                    }
                    ResolverKind::Dockerfile => prop_assert_eq!(source, target),
                }
            }
            Err(e) => prop_assert!(!has_target, "{e} although {target} is listed"),
        }
    }
}
