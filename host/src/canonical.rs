//! Canonical JSON and digests: the byte forms that hashes are taken over.
//!
//! Canonical JSON is defined once, by the audit format (docs/audit.md):
//! object keys sorted by their UTF-8 bytes, no whitespace, minimal escapes.
//! Two JSON documents that mean the same thing give the same bytes, so their
//! SHA-256 is a stable identity for inputs, outputs and policies.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` in canonical form (the audit format's definition,
/// docs/audit.md "Canonical JSON").
pub fn canonical_json(value: &Value) -> String {
    // Always UTF-8 (it is written from JSON strings); no copy on the way.
    String::from_utf8(crate::audit::entry::canonical_json(value))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_tagged(bytes: &[u8]) -> String {
    crate::audit::Hash256(Sha256::digest(bytes).into()).tagged()
}

/// `sha256:<hex>` of the canonical form of `value` (hashed as written, no
/// intermediate `String`).
pub fn json_digest(value: &Value) -> String {
    crate::audit::Hash256(crate::audit::entry::canonical_json_hash(value)).tagged()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_canonical_form() {
        let a: Value = serde_json::from_str(r#"{ "b": 1, "a": [true, {"y": null, "x": "s"}] }"#)
            .expect("json");
        let b = json!({"a": [true, {"x": "s", "y": null}], "b": 1});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":[true,{"x":"s","y":null}],"b":1}"#
        );
        assert_eq!(json_digest(&a), json_digest(&b));
    }

    #[test]
    fn digests_are_sha256_of_the_canonical_bytes_in_lowercase_hex() {
        let v = json!({"b": [1, "x"], "a": null});
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
        );
        assert_eq!(json_digest(&v), expected);
        assert_eq!(
            sha256_tagged(b""),
            format!("sha256:{}", hex::encode(Sha256::digest(b"")))
        );
    }

    #[test]
    fn different_values_have_different_digests() {
        assert_ne!(json_digest(&json!({"a": 1})), json_digest(&json!({"a": 2})));
    }
}
