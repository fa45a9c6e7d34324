//! Where a key is in a compose file: the JSON tree the rest of the crate works on has no
//! positions, so an error about a key (an unknown one) reads the file again for them.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A document reduced to its mappings' keys, each with where it is.
enum KeyTree {
    Map(Vec<(Spanned<String>, KeyTree)>),
    Other,
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTreeVisitor)
    }
}

struct KeyTreeVisitor;

impl<'de> Visitor<'de> for KeyTreeVisitor {
    type Value = KeyTree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Spanned<String>, KeyTree>()? {
            entries.push(entry);
        }
        Ok(KeyTree::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyTree::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_unit<E>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_none<E>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::Other)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<KeyTree, D::Error> {
        d.deserialize_any(KeyTreeVisitor)
    }
}

/// The 1-based line and column of the key at `path` (`["services", "app", "restrat"]`) in
/// `text`, when the text parses and has it.
pub(crate) fn key_position(text: &str, path: &[&str]) -> Option<(u64, u64)> {
    let mut tree: KeyTree =
        serde_saphyr::from_str_with_options(text, super::base_options()).ok()?;
    let mut found = None;
    for name in path {
        let KeyTree::Map(entries) = tree else {
            return None;
        };
        let (key, value) = entries.into_iter().find(|(key, _)| key.value == *name)?;
        found = Some((key.referenced.line(), key.referenced.column()));
        tree = value;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::key_position;

    #[test]
    fn finds_a_nested_key() {
        let text = "services:\n  app:\n    image: x\n    restrat: always\n";
        assert_eq!(
            key_position(text, &["services", "app", "restrat"]),
            Some((4, 5))
        );
        assert_eq!(key_position(text, &["services", "web"]), None);
    }
}
