//! Where the items of a list are in a YAML document (for errors about one item of a
//! `builders:` list): the JSON tree has no positions, so the text is read again for them.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// The 1-based line of each item of the list at the top-level key `key` (`None`: the
/// document itself is the list); empty when the text does not parse or has no such list.
pub(crate) fn item_lines(text: &str, key: Option<&str>) -> Vec<u64> {
    let options = super::base_options();
    let found: Result<Found, _> = match key {
        None => serde_saphyr::from_str_with_options::<Items>(text, options).map(|i| Found(i.0)),
        Some(key) => serde_saphyr::from_str_with_options::<Keyed>(text, options).map(|keyed| {
            Found(
                keyed
                    .0
                    .into_iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, lines)| lines)
                    .unwrap_or_default(),
            )
        }),
    };
    found.map(|f| f.0).unwrap_or_default()
}

struct Found(Vec<u64>);

/// A list's items' lines.
struct Items(Vec<u64>);

impl<'de> de::Deserialize<'de> for Items {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let mut lines = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<IgnoredAny>>()? {
            lines.push(item.referenced.line());
        }
        Ok(Items(lines))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Items(Vec::new()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_str<E>(self, _: &str) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_unit<E>(self) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_none<E>(self) -> Result<Items, E> {
        Ok(Items(Vec::new()))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Items, D::Error> {
        d.deserialize_any(ItemsVisitor)
    }
}

/// Each top-level key with the lines of its list's items (none for a value that is no list).
struct Keyed(Vec<(String, Vec<u64>)>);

impl<'de> de::Deserialize<'de> for Keyed {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(KeyedVisitor)
    }
}

struct KeyedVisitor;

impl<'de> Visitor<'de> for KeyedVisitor {
    type Value = Keyed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keyed, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let lines = map.next_value::<Items>()?.0;
            keys.push((key, lines));
        }
        Ok(Keyed(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::item_lines;

    #[test]
    fn finds_the_lines_of_a_lists_items() {
        let text =
            "other: [1]\nbuilders:\n  - a=unix:///s\n  # a comment\n  - name: b\n    endpoint: x\n";
        assert_eq!(item_lines(text, Some("builders")), [3, 5]);
        assert_eq!(item_lines(text, Some("missing")), Vec::<u64>::new());
        assert_eq!(item_lines("- a\n- b\n", None), [1, 2]);
        assert_eq!(
            item_lines("builders: 3\n", Some("builders")),
            Vec::<u64>::new()
        );
    }
}
