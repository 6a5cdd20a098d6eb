//! Canonical JSON and digests: the byte forms that hashes are taken over.
//!
//! Canonical JSON here is: object keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings and numbers as `serde_json` writes them.
//! Two JSON documents that mean the same thing give the same bytes, so their
//! SHA-256 is a stable identity for inputs, outputs and policies.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` in canonical form.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_tagged(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` of the canonical form of `value`.
pub fn json_digest(value: &Value) -> String {
    sha256_tagged(canonical_json(value).as_bytes())
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
    fn different_values_have_different_digests() {
        assert_ne!(json_digest(&json!({"a": 1})), json_digest(&json!({"a": 2})));
    }
}
