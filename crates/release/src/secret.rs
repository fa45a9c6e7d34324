//! A string that must never be shown: API keys, registry tokens and passwords.

use std::fmt;

/// A secret string. `Debug` and `Display` print `***`; only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Replaces every occurrence of the secret in `text` with `***`, for messages that echo
    /// server or daemon text.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s} {s:#?}"), "*** *** ***");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s.redact("key hunter2 rejected"), "key *** rejected");
        assert!(Secret::new("  ").is_blank());
        assert_eq!(Secret::default().redact("a"), "a");
    }
}
