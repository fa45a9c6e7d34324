//! The workspace's error-source policy, as a check: a cause is printed once.

use std::error::Error;

/// Panics when an error in `err`'s chain both shows its cause in its message and returns it
/// from `source()`: a report that walks the chain (anyhow's `{:#}`) would print that cause
/// twice. Returns the chain's messages, outermost first.
pub fn assert_each_cause_printed_once(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut current = err;
    while let Some(cause) = current.source() {
        let (outer, inner) = (current.to_string(), cause.to_string());
        assert!(
            inner.is_empty() || !outer.contains(&inner),
            "{outer:?} shows its cause {inner:?} and also returns it from source()"
        );
        messages.push(inner);
        current = cause;
    }
    messages
}
