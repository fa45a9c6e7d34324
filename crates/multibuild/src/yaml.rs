//! YAML for `.balena/balena.yml` and registry-secrets files.
// TODO(lead): fold into parse's YAML module once it exposes a public reader.

use serde_json::Value;

/// Reads a YAML document into a JSON tree (YAML 1.2 scalars: `no` stays a string).
pub(crate) fn to_json(text: &str) -> Result<Value, String> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
    };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| e.to_string())
}
