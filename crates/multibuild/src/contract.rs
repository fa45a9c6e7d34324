//! `contract.yml` at a service's context root (toolkit.md §6.14).

use serde_json::Value;

use crate::Error;

/// The only contract type a container may declare.
pub const CONTRACT_TYPE: &str = "sw.container";

/// Parses and validates a `contract.yml`, with the reference's checks in its order; the
/// contract is returned unchanged (other keys kept).
pub fn parse_contract_file(bytes: &[u8]) -> Result<Value, Error> {
    let invalid = |message: &str| Error::ContractValidation(message.to_owned());
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("contract.yml is not UTF-8"))?;
    let value = parse::yaml_value(text)
        .map_err(|e| Error::ContractValidation(format!("contract.yml: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(invalid("Container contract must be an object"));
    };
    if !map.contains_key("name") {
        return Err(invalid("Container contract must have a name field"));
    }
    match map.get("type") {
        None => return Err(invalid("Container contract must have a type field")),
        Some(t) if t.as_str() != Some(CONTRACT_TYPE) => {
            return Err(invalid(
                "Container contract must have a type of sw.container",
            ));
        }
        Some(_) => {}
    }
    if !map.contains_key("slug") {
        return Err(invalid("Container contract must have a slug field"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        match parse_contract_file(text.as_bytes()) {
            Ok(v) => format!("ok {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn checks_in_the_reference_order() {
        assert_eq!(message(""), "Container contract must be an object");
        assert_eq!(
            message("just a string"),
            "Container contract must be an object"
        );
        assert_eq!(
            message("type: sw.container\nslug: x\n"),
            "Container contract must have a name field"
        );
        assert_eq!(
            message("name: n\nslug: x\n"),
            "Container contract must have a type field"
        );
        assert_eq!(
            message("name: n\ntype: sw.os\nslug: x\n"),
            "Container contract must have a type of sw.container"
        );
        assert_eq!(
            message("name: n\ntype: sw.container\n"),
            "Container contract must have a slug field"
        );
        assert!(message("name: n\ntype: sw.container\nslug: s\nrequires: []\n").starts_with("ok "));
    }
}
