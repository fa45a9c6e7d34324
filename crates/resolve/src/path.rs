//! Context-relative path handling, with node's `path.posix` semantics where the reference
//! relies on them.

use std::borrow::Cow;

/// Normalise a context path the way the reference's `normalizeTarEntry` does, for every
/// path that stays inside the context: drop empty and `.` components and a leading `/`,
/// and fold `a/..`. A `..` that would climb above the root is kept, so such a path never
/// equals a context file. The root itself gives `""`.
pub(crate) fn normalize(path: &str) -> Cow<'_, str> {
    // Context listings are nearly always normalised already; only allocate when not.
    if path.split('/').all(|part| !matches!(part, "" | "." | "..")) {
        return Cow::Borrowed(path);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Cow::Owned(parts.join("/"))
}

/// The pieces of a normalised path that resolution looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// The whole path.
    pub(crate) full: &'a str,
    /// The path without its extension (the reference's `minusExt`: directory kept).
    pub(crate) minus_ext: &'a str,
    /// The extension of the last component, with its dot (`".template"`), or `""`.
    pub(crate) ext: &'a str,
}

/// Split a normalised path like node's `path.posix.parse`: the extension starts at the last
/// `.` of the last component, unless that dot is the component's first character.
pub(crate) fn parse(full: &str) -> Parsed<'_> {
    let base_start = full.rfind('/').map_or(0, |i| i + 1);
    let base = &full[base_start..];
    let dot = base
        .rfind('.')
        .filter(|&i| i > 0 && base != "..")
        .map(|i| base_start + i);
    match dot {
        Some(i) => Parsed {
            full,
            minus_ext: &full[..i],
            ext: &full[i..],
        },
        None => Parsed {
            full,
            minus_ext: full,
            ext: "",
        },
    }
}

/// `path` without the extension of its last component.
///
/// The reference's `removeExtension` cuts at the last dot anywhere in the string, which turns
/// `sub.dir/Dockerfile` into `sub`; this only ever cuts within the file name.
pub(crate) fn strip_extension(path: &str) -> &str {
    parse(path).minus_ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_normalize_tar_entry_examples() {
        assert_eq!(normalize("./Dockerfile"), "Dockerfile");
        assert_eq!(normalize("/Dockerfile"), "Dockerfile");
        assert_eq!(normalize("../Dockerfile"), "../Dockerfile");
        assert_eq!(normalize("./a/b/Dockerfile"), "a/b/Dockerfile");
        assert_eq!(normalize("a//b/./c/"), "a/b/c");
        assert_eq!(normalize("a/../Dockerfile"), "Dockerfile");
        assert_eq!(normalize("./"), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn parse_follows_posix_parse() {
        let p = parse("test/Dockerfile.template");
        assert_eq!((p.minus_ext, p.ext), ("test/Dockerfile", ".template"));
        let p = parse("Dockerfile");
        assert_eq!((p.minus_ext, p.ext), ("Dockerfile", ""));
        // AppleDouble companions keep their `._` prefix in minusExt.
        let p = parse("._Dockerfile.raspberry-pi2");
        assert_eq!((p.minus_ext, p.ext), ("._Dockerfile", ".raspberry-pi2"));
        // A leading dot is not an extension.
        let p = parse("dir/.template");
        assert_eq!((p.minus_ext, p.ext), ("dir/.template", ""));
        let p = parse("Dockerfile.");
        assert_eq!((p.minus_ext, p.ext), ("Dockerfile", "."));
        let p = parse("Dockerfile.amd64.bak");
        assert_eq!((p.minus_ext, p.ext), ("Dockerfile.amd64", ".bak"));
        let p = parse("sub.dir/Dockerfile");
        assert_eq!((p.minus_ext, p.ext), ("sub.dir/Dockerfile", ""));
    }

    #[test]
    fn strip_extension_examples() {
        // The reference's removeExtension test cases.
        assert_eq!(strip_extension("Dockerfile.template"), "Dockerfile");
        assert_eq!(
            strip_extension("test/Dockerfile.template"),
            "test/Dockerfile"
        );
        assert_eq!(strip_extension("Dockerfile"), "Dockerfile");
        assert_eq!(strip_extension("test/Dockerfile"), "test/Dockerfile");
        // Reference bug (spec §3.1, §9.4): removeExtension('sub.dir/Dockerfile') is 'sub'.
        assert_eq!(strip_extension("sub.dir/Dockerfile"), "sub.dir/Dockerfile");
    }
}
