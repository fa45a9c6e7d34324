//! Symlinks stay inside their scope, however many links they go through.

use std::collections::HashMap;

use super::{Entry, EntryKind};
use crate::error::{Error, Result};
use crate::path as p;

/// Path → entry lookup over a sorted slice.
pub(crate) struct Index<'a> {
    map: HashMap<&'a str, &'a Entry>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        Self {
            map: entries.into_iter().map(|e| (e.path.as_str(), e)).collect(),
        }
    }
    pub(crate) fn get(&self, path: &str) -> Option<&'a Entry> {
        self.map.get(path).copied()
    }
}

/// Resolves a symlink inside context `scope` (`""` is the project root), following the symlinks
/// it passes through as the kernel would, and refuses it if it ever leaves the scope.
///
/// A purely lexical check is not enough: with `l -> .`, `m -> l/..` looks like it stays
/// at the root but really points to its parent.
pub(crate) fn check_symlink(index: &Index<'_>, scope: &str, link: &Entry) -> Result<()> {
    let target = link.link_target.as_deref().unwrap_or_default();
    let escape = || Error::LinkEscapes {
        path: link.path.clone(),
        kind: "symlink",
        target: target.to_owned(),
        scope: format!(
            "the build context {:?}",
            if scope.is_empty() { "." } else { scope }
        ),
    };
    let floor = if scope.is_empty() {
        0
    } else {
        scope.split('/').count()
    };
    let mut stack: Vec<String> = p::parent(&link.path)
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut pending: Vec<String> = Vec::new();
    push_components(&mut pending, target).map_err(|()| escape())?;
    // Linux gives up after 40 links (ELOOP), and so do we. This walk takes the steps the
    // kernel takes, so a link that has not left the context by then never does: following it
    // fails with ELOOP inside the container, and the daemon copies the link itself as it is.
    // A loop (`a -> b`, `b -> a`) is therefore harmless and accepted, as `docker build`
    // accepts it.
    let mut budget = MAX_SYMLINK_HOPS;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "" | "." => {}
            ".." => {
                if stack.len() <= floor {
                    return Err(escape());
                }
                stack.pop();
            }
            _ => {
                stack.push(comp);
                let here = stack.join("/");
                if let Some(next) = index.get(&here)
                    && next.kind == EntryKind::Symlink
                {
                    budget -= 1;
                    if budget == 0 {
                        return Ok(());
                    }
                    stack.pop();
                    let next_target = next.link_target.as_deref().unwrap_or_default();
                    push_components(&mut pending, next_target).map_err(|()| escape())?;
                }
            }
        }
    }
    if stack.len() < floor {
        return Err(escape());
    }
    Ok(())
}

/// How many symlinks one resolution may pass through (Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Queues a link target's components (reversed, for popping); absolute targets escape.
fn push_components(pending: &mut Vec<String>, target: &str) -> std::result::Result<(), ()> {
    if target.starts_with('/') {
        return Err(());
    }
    pending.extend(target.split('/').rev().map(str::to_owned));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::Symlink,
            size: 0,
            offset: 0,
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: 0,
            link_target: Some(target.to_owned()),
            sparse: None,
        }
    }

    #[test]
    fn symlink_through_symlink_escape_is_caught() {
        let entries = vec![link("l", "."), link("m", "l/..")];
        let index = Index::new(&entries);
        assert!(check_symlink(&index, "", &entries[0]).is_ok());
        assert!(check_symlink(&index, "", &entries[1]).is_err());
    }

    #[test]
    fn symlink_scopes() {
        let entries = vec![link("a/b/x", "../y"), link("a/z", "../../q")];
        let index = Index::new(&entries);
        assert!(check_symlink(&index, "a", &entries[0]).is_ok());
        assert!(check_symlink(&index, "a/b", &entries[0]).is_err());
        assert!(check_symlink(&index, "", &entries[1]).is_err());
    }

    #[test]
    fn a_symlink_loop_is_harmless_but_an_escape_through_links_is_not() {
        // ELOOP comes before the `..`s: the kernel never gets out, so neither does the link.
        let entries = vec![link("a", "b"), link("b", "a"), link("c", "a/../../x")];
        let index = Index::new(&entries);
        for entry in &entries {
            assert!(check_symlink(&index, "", entry).is_ok(), "{entry:?}");
        }
        // Two hops, then out: refused, naming the link the walk started from.
        let entries = vec![link("p", "q"), link("q", "../outside")];
        let index = Index::new(&entries);
        let err = check_symlink(&index, "", &entries[0]).unwrap_err();
        assert!(matches!(err, Error::LinkEscapes { .. }), "{err:?}");
        assert!(err.to_string().contains("\"p\""), "{err}");
    }

    #[test]
    fn a_chain_of_40_links_is_fine() {
        let mut entries: Vec<Entry> = (0..39)
            .map(|i| link(&format!("l{i:02}"), &format!("l{:02}", i + 1)))
            .collect();
        entries.push(link("l39", "file"));
        let index = Index::new(&entries);
        assert!(check_symlink(&index, "", &entries[0]).is_ok());
    }
}
