//! Slash-separated path helpers shared by the index, the contexts and the ignore matcher.

/// Go's `path.Clean`: lexical normalisation (drop `.`, resolve `..`, squeeze `/`).
///
/// `.dockerignore` patterns go through it exactly as moby does, so `./a/` is `a` and
/// `a/../b` is `b`.
pub(crate) fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Why an archive path was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Absolute, or a `..` component.
    Escapes,
}

/// Normalises an archive or context path: drops empty and `.` components and refuses
/// absolute paths and any `..` component. `Ok(None)` is the root itself (`./`, `.`).
///
/// A `..` is refused even when it would stay inside (`a/../b`): such names only appear in
/// crafted archives, and refusing them keeps the check trivially right.
pub(crate) fn normalize(raw: &str) -> Result<Option<String>, Refusal> {
    if raw.starts_with('/') {
        return Err(Refusal::Escapes);
    }
    let mut out = String::with_capacity(raw.len());
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(Refusal::Escapes),
            other => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(other);
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// The part of `path` below directory `dir` (`""` is the root), or `None` if it is not
/// below it. `path == dir` gives `Some("")`.
pub(crate) fn strip_dir<'a>(dir: &str, path: &'a str) -> Option<&'a str> {
    if dir.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(dir)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

/// Every proper ancestor of `path`, shortest first: `a/b/c` gives `a`, `a/b`.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// The directory holding `path` (`""` at the root).
pub(crate) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./a/", "a"),
            ("a/../b", "b"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a//b/./c/..", "a/b"),
            ("/", "/"),
            ("!./a", "!./a"),
            ("a/..", "."),
        ] {
            assert_eq!(go_clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn normalize_refuses_escapes() {
        assert_eq!(normalize("./a//b/"), Ok(Some("a/b".to_owned())));
        assert_eq!(normalize("./"), Ok(None));
        assert_eq!(normalize("/abs"), Err(Refusal::Escapes));
        assert_eq!(normalize("a/../../x"), Err(Refusal::Escapes));
        assert_eq!(normalize("x../y"), Ok(Some("x../y".to_owned())));
    }

    #[test]
    fn strip_dir_and_ancestors() {
        assert_eq!(strip_dir("", "a/b"), Some("a/b"));
        assert_eq!(strip_dir("a", "a/b"), Some("b"));
        assert_eq!(strip_dir("a", "a"), Some(""));
        assert_eq!(strip_dir("a", "ab/c"), None);
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
    }
}
