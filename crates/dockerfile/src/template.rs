//! `%%VARIABLE%%` Dockerfile templates: [`process`] and the [`Variables`] it reads.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The template uses `%%NAME%%` but no variable `NAME` was given. The message starts with
    /// the reference's own text (`"<NAME> is not defined"`).
    #[error("{name} is not defined (template line {line})")]
    UndefinedVariable {
        /// The variable name, without the `%%`.
        name: String,
        /// The 1-based line of the template it is used on.
        line: usize,
    },
}

/// Something that can answer "what is the value of template variable `name`?".
///
/// Implemented for the usual string maps; implement it yourself to layer several sources
/// (for instance caller-supplied variables over the `BALENA_*` ones) without building a map.
pub trait Variables {
    /// The value of `name`, or `None` if it is not defined.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Variables for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl<S: BuildHasher> Variables for HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).copied()
    }
}

impl Variables for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Variables for BTreeMap<&str, &str> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).copied()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Variables for [(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

impl<T: Variables + ?Sized> Variables for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

/// Render `template`, replacing every `%%NAME%%` outside column-0 `#` lines with its value
/// from `variables`. See the crate documentation for the exact rules.
pub fn process<V: Variables + ?Sized>(template: &str, variables: &V) -> Result<String, Error> {
    // One pass over the whole text rather than line by line: splitting on '\n' and joining
    // with '\n' is the identity, so the output is the input with each token's bytes replaced
    // by its value, and everything between tokens is copied as one range. `memchr2` finds
    // the next '%' or '\n' with SIMD; a line is only looked at again when it starts with '#'.
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len() + template.len() / 8);
    // `copied` is where the not-yet-copied input starts; `at` is where scanning resumes.
    let mut copied = 0;
    let mut at = 0;
    let mut line_number = 1;
    'lines: loop {
        if bytes.get(at) == Some(&b'#') {
            // A comment line is copied verbatim: skip it whole.
            match memchr::memchr(b'\n', &bytes[at..]) {
                Some(newline) => {
                    at += newline + 1;
                    line_number += 1;
                    continue 'lines;
                }
                None => break 'lines,
            }
        }
        loop {
            let Some(found) = memchr::memchr2(b'%', b'\n', &bytes[at..]) else {
                break 'lines;
            };
            let percent = at + found;
            if bytes[percent] == b'\n' {
                at = percent + 1;
                line_number += 1;
                continue 'lines;
            }
            if bytes.get(percent + 1) != Some(&b'%') {
                at = percent + 1;
                continue;
            }
            match token_name_end(bytes, percent + 2) {
                Some(name_end) => {
                    let name = &template[percent + 2..name_end];
                    let value = variables
                        .get(name)
                        .ok_or_else(|| Error::UndefinedVariable {
                            name: name.to_owned(),
                            line: line_number,
                        })?;
                    out.push_str(&template[copied..percent]);
                    out.push_str(value);
                    copied = name_end + 2;
                    at = copied;
                }
                // Like the reference's regex, a failed match at `percent` is retried one byte
                // later, so `%%%AA%%%` still finds `%%AA%%`.
                None => at = percent + 1,
            }
        }
    }
    out.push_str(&template[copied..]);
    Ok(out)
}

/// If `bytes[start..]` is `[A-Z][A-Z_]+%%`, the offset of that closing `%%`.
fn token_name_end(bytes: &[u8], start: usize) -> Option<usize> {
    let first = *bytes.get(start)?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    let rest = bytes.get(start + 1..)?;
    let run = rest
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || **b == b'_')
        .count();
    let end = start + 1 + run;
    (run >= 1 && bytes.get(end..end + 2) == Some(b"%%")).then_some(end)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn token_boundaries() {
        assert_eq!(token_name_end(b"%%AB%%", 2), Some(4));
        assert_eq!(token_name_end(b"%%A%%", 2), None);
        assert_eq!(token_name_end(b"%%A_%%", 2), Some(4));
        assert_eq!(token_name_end(b"%%AB%", 2), None);
        assert_eq!(token_name_end(b"%%_A%%", 2), None);
        assert_eq!(token_name_end(b"%%", 2), None);
    }

    #[test]
    fn slice_of_pairs_and_btreemap_are_variables() {
        let pairs = [("AA", "1")];
        assert_eq!(process("%%AA%%", &pairs[..]).unwrap(), "1");
        let map = BTreeMap::from([("AA", "2")]);
        assert_eq!(process("%%AA%%", &map).unwrap(), "2");
        assert_eq!(process("%%AA%%", &vars(&[("AA", "3")])).unwrap(), "3");
    }
}
