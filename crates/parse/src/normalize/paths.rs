//! Lexical path arithmetic: no file system access, so `a/b/../x` needs no `a/b`.

use std::path::{Component, Path, PathBuf};

/// `path` (relative to `base`, or absolute) made relative to `base`, lexically, `/`-separated;
/// `"."` for `base` itself.
pub(super) fn relative_to(base: &Path, path: &str) -> String {
    let (joined, base) = if Path::new(path).is_absolute() {
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        (PathBuf::from(path), base)
    } else {
        (base.join(path), base.to_path_buf())
    };
    let target = lexical(&joined);
    let base = lexical(&base);
    let common = target
        .iter()
        .zip(base.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(target[common..].iter().cloned());
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// `base/path` with `.` and `..` resolved lexically (`path` may be absolute).
pub(crate) fn clean_join(base: &Path, path: &str) -> PathBuf {
    let joined = base.join(path);
    let mut out = PathBuf::new();
    if joined.is_absolute() {
        out.push(Component::RootDir);
    }
    for part in lexical(&joined) {
        out.push(part);
    }
    out
}

/// Path components with `.` and `..` resolved without touching the file system.
fn lexical(path: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.last().is_some_and(|l| l != "..") {
                    out.pop();
                } else if !path.is_absolute() {
                    out.push("..".to_string());
                }
            }
            Component::Normal(p) => out.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn relative_contexts() {
        let base = Path::new("/p/proj");
        assert_eq!(relative_to(base, "./s1"), "s1");
        assert_eq!(relative_to(base, "./"), ".");
        assert_eq!(relative_to(base, "."), ".");
        assert_eq!(relative_to(base, "a/../b/./c"), "b/c");
        assert_eq!(relative_to(base, "../other"), "../other");
        assert_eq!(relative_to(base, "/p/proj/x"), "x");
        assert_eq!(relative_to(base, "/q"), "../../q");
    }
}
