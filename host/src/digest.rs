//! SHA-256 values, their `sha256:<hex>` text form, and canonical JSON: the
//! byte forms that every hash in warden is taken over (audit entries,
//! component digests, policy and route-table hashes, input/output hashes).
//!
//! Owns [`Hash256`] (the one hash type), lowercase hex ([`push_hex`]) and
//! canonical JSON ([`canonical_json`], [`Hash256::of_json`],
//! [`json_digest`]), defined by docs/audit.md "Canonical JSON": object keys
//! sorted by their UTF-8 bytes, no whitespace, minimal string escapes,
//! numbers as serde_json writes them. Two JSON documents that mean the same
//! thing give the same bytes, so their SHA-256 is a stable identity.
//!
//! A leaf: it must never import anything from the rest of the crate, do I/O,
//! or allocate more than its result on the paths every request takes
//! ([`Hash256`]'s `Display`, [`Hash256::tagged`], [`json_digest`] hash the
//! canonical bytes as they are written, never collecting them).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// The text form's prefix.
const PREFIX: &str = "sha256:";

/// Length of the text form: the prefix and 64 hex digits.
const TAGGED_LEN: usize = PREFIX.len() + 64;

/// A SHA-256 value. Text form: `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The `prev_hash` of the first audit entry (sequence 1): 32 zero bytes.
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash256 {
        Hash256(Sha256::digest(bytes).into())
    }

    /// SHA-256 of the canonical JSON of `value` (hashed as it is written,
    /// no intermediate buffer).
    pub fn of_json(value: &serde_json::Value) -> Hash256 {
        let mut hasher = Sha256::new();
        write_canonical(value, &mut hasher);
        Hash256(hasher.finalize().into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the `sha256:<64 lowercase hex>` form; `None` if malformed
    /// (`str::parse` says why).
    pub fn parse(text: &str) -> Option<Hash256> {
        text.parse().ok()
    }

    /// Lowercase hex without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(64);
        push_hex(&self.0, &mut out);
        out
    }

    /// The text form, `sha256:<64 lowercase hex>`, in one exact allocation
    /// (written on the stack first, then copied once).
    pub fn tagged(&self) -> String {
        // ASCII, so the lossy conversion borrows: one copy, no replacement.
        String::from_utf8_lossy(&self.tagged_bytes()).into_owned()
    }

    /// The text form in a stack buffer (always ASCII).
    fn tagged_bytes(&self) -> [u8; TAGGED_LEN] {
        let mut buf = [0u8; TAGGED_LEN];
        buf[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        for (pair, &b) in buf[PREFIX.len()..].chunks_exact_mut(2).zip(&self.0) {
            pair.copy_from_slice(&hex_pair(b));
        }
        buf
    }
}

/// The two lowercase hex digits of `byte`.
fn hex_pair(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0f)],
    ]
}

/// The value of one lowercase hex digit.
fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Appends the lowercase hex of `bytes` to `out`: the same text as
/// `hex::encode`, written straight into `out` (no iterator, no formatter).
pub fn push_hex(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len().saturating_mul(2));
    for &b in bytes {
        let [hi, lo] = hex_pair(b);
        out.push(char::from(hi));
        out.push(char::from(lo));
    }
}

impl fmt::Display for Hash256 {
    /// The text form, written from a stack buffer (no allocation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ASCII; the check cannot fail.
        f.write_str(std::str::from_utf8(&self.tagged_bytes()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A hash string that is not `sha256:<64 lowercase hex>` (its first 80
/// characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a sha256 hash (expected `sha256:<64 lowercase hex>`): {0:?}")]
pub struct BadHash(pub String);

impl FromStr for Hash256 {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadHash(s.chars().take(80).collect());
        let hex_part = s.strip_prefix(PREFIX).ok_or_else(bad)?;
        if hex_part.len() != 64 {
            return Err(bad());
        }
        // One pass over lowercase digits (uppercase is refused: every hash
        // warden writes is lowercase). Not `hex::decode_to_slice` after an
        // uppercase scan: the two passes measured ~0.1 µs more for four
        // parses (BENCHMARKS.md, issue 15 fourth pass, when the audit entry
        // parsed the record's hashes on every request; since the fifth pass
        // the record carries values and requests parse none).
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex_part.as_bytes().chunks_exact(2)) {
            let &[hi, lo] = pair else {
                return Err(bad());
            };
            *byte = (lower_hex_digit(hi).ok_or_else(bad)? << 4)
                | lower_hex_digit(lo).ok_or_else(bad)?;
        }
        Ok(Hash256(out))
    }
}

impl Serialize for Hash256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `sha256:<hex>` of the canonical JSON of `value`: the input, output and
/// policy hashes. One allocation (the result).
pub fn json_digest(value: &serde_json::Value) -> String {
    Hash256::of_json(value).tagged()
}

// ---------------------------------------------------------------------------
// Canonical JSON (docs/audit.md "Canonical JSON")

/// The canonical JSON text of `value`: object keys sorted by their UTF-8
/// bytes, no whitespace, strings escaped minimally (`\"`, `\\`,
/// `\b \f \n \r \t`, other controls as `\u00xx`, everything else verbatim
/// UTF-8), numbers in serde_json's formatting (integers in decimal; floats
/// shortest round-trip).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::with_capacity(128);
    write_canonical(value, &mut out);
    out
}

/// Where canonical JSON text goes: a buffer, or straight into a hash.
trait Sink {
    fn put(&mut self, text: &str);
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, text: &str) {
        self.update(text.as_bytes());
    }
}

fn write_canonical(v: &serde_json::Value, out: &mut impl Sink) {
    use serde_json::Value;
    match v {
        Value::Null => out.put("null"),
        Value::Bool(true) => out.put("true"),
        Value::Bool(false) => out.put("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.put("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(",");
                }
                write_canonical(item, out);
            }
            out.put("]");
        }
        Value::Object(map) => {
            let by_bytes = |a: &&String, b: &&String| a.as_bytes().cmp(b.as_bytes());
            let sorted = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| by_bytes(&a, &b).is_lt());
            out.put("{");
            if sorted {
                // Already in canonical order (small objects usually are):
                // no key list to build.
                write_members(map.iter(), out);
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| by_bytes(&a.0, &b.0));
                write_members(members.into_iter(), out);
            }
            out.put("}");
        }
    }
}

fn write_members<'a>(
    members: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
    out: &mut impl Sink,
) {
    for (i, (k, val)) in members.enumerate() {
        if i > 0 {
            out.put(",");
        }
        write_json_string(k, out);
        out.put(":");
        write_canonical(val, out);
    }
}

/// A number as serde_json displays it, written without a `String`.
fn write_number(n: &serde_json::Number, out: &mut impl Sink) {
    struct Adapter<'a, S: Sink>(&'a mut S);
    impl<S: Sink> fmt::Write for Adapter<'_, S> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.put(s);
            Ok(())
        }
    }
    // Writing into the adapter cannot fail.
    let _ = fmt::Write::write_fmt(&mut Adapter(out), format_args!("{n}"));
}

/// The escapes of the control characters U+0000..U+001F: the short forms
/// JSON has, `\u00xx` for the rest.
const CONTROL_ESCAPES: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b",
    "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012",
    "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
    "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

fn write_json_string(s: &str, out: &mut impl Sink) {
    out.put("\"");
    // Runs of characters that need no escaping are written in one piece.
    // Every escaped byte is ASCII, so each run ends on a character boundary.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x00..=0x1f => CONTROL_ESCAPES[usize::from(b)],
            _ => continue,
        };
        out.put(&s[run..i]);
        out.put(escaped);
        run = i + 1;
    }
    out.put(&s[run..]);
    out.put("\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
    fn canonical_json_sorts_keys_by_bytes_and_escapes_minimally() {
        let v: Value = serde_json::from_str(
            r#"{"z": [1, -2.5, 1e300, {"b": null, "a": true}], "a": "tab\t \"q\" \\ \u0001 \u001f \b\f\r\n é", "m": {}, "Z": 0}"#,
        )
        .expect("json");
        assert_eq!(
            canonical_json(&v),
            r#"{"Z":0,"a":"tab\t \"q\" \\ \u0001 \u001f \b\f\r\n é","m":{},"z":[1,-2.5,1e+300,{"a":true,"b":null}]}"#
        );
    }

    #[test]
    fn every_control_character_escapes_as_serde_json_reads_it_back() {
        for c in 0u8..0x20 {
            let s = char::from(c).to_string();
            let text = canonical_json(&Value::String(s.clone()));
            let back: String = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(back, s, "U+{c:04X} as {text}");
        }
    }

    #[test]
    fn digests_are_sha256_of_the_canonical_bytes_in_lowercase_hex() {
        let v = json!({"b": [1, "x"], "a": null, "s": "é\u{7f}\"\n"});
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
        );
        assert_eq!(json_digest(&v), expected);
        assert_eq!(Hash256::of_json(&v).to_string(), expected);
        assert_eq!(
            Hash256::of(b"").tagged(),
            format!("sha256:{}", hex::encode(Sha256::digest(b"")))
        );
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_canonical_bytes() {
        let v: Value = serde_json::from_str(
            r#"{"z": [1, -2.5, 1e300, {"b": null, "a": true}], "a": "tab\t \"q\" \\ \u0001 é", "m": {}}"#,
        )
        .expect("json");
        let text = canonical_json(&v);
        assert_eq!(
            text,
            r#"{"a":"tab\t \"q\" \\ \u0001 é","m":{},"z":[1,-2.5,1e+300,{"a":true,"b":null}]}"#
        );
        assert_eq!(Hash256::of_json(&v), Hash256::of(text.as_bytes()));
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            "{ \"b\": [1, 2.5, {\"z\":null, \"a\":true}], \"a\": \"q\\n\\u0001é\" }",
        )
        .expect("test json");
        assert_eq!(
            canonical_json(&v),
            "{\"a\":\"q\\n\\u0001é\",\"b\":[1,2.5,{\"a\":true,\"z\":null}]}"
        );
    }

    #[test]
    fn different_values_have_different_digests() {
        assert_ne!(json_digest(&json!({"a": 1})), json_digest(&json!({"a": 2})));
    }

    #[test]
    fn display_tagged_and_hex_agree_with_the_hex_crate() {
        for h in [Hash256::ZERO, Hash256([0xff; 32]), Hash256::of(b"warden")] {
            let hex = hex::encode(h.0);
            assert_eq!(h.hex(), hex);
            assert_eq!(h.tagged(), format!("sha256:{hex}"));
            assert_eq!(h.to_string(), h.tagged());
            assert_eq!(format!("{h:?}"), h.tagged());
            let mut pushed = String::from("x");
            push_hex(&h.0[..3], &mut pushed);
            assert_eq!(pushed, format!("x{}", &hex[..6]));
        }
    }

    #[test]
    fn every_byte_value_round_trips_through_the_text_form_and_non_hex_digits_are_refused() {
        for start in (0..=255u8).step_by(32) {
            let h = Hash256(std::array::from_fn(|i| start.wrapping_add(i as u8)));
            assert_eq!(h.tagged(), format!("sha256:{}", hex::encode(h.0)));
            assert_eq!(h.tagged().parse::<Hash256>(), Ok(h));
        }
        let good = Hash256([0x5a; 32]).tagged();
        for bad in ['g', 'G', ' ', '/', ':', '`', '{', 'é'] {
            // Replace one digit (keeping the length in bytes where it can).
            let text = format!("{}{bad}{}", &good[..20], &good[21..]);
            assert!(text.parse::<Hash256>().is_err(), "{text}");
        }
    }

    #[test]
    fn hash_text_form_round_trips_and_rejects_uppercase_and_bad_lengths() {
        let h = Hash256([0xab; 32]);
        assert_eq!(h.to_string().parse::<Hash256>(), Ok(h));
        assert_eq!(Hash256::parse(&h.tagged()), Some(h));
        assert!(h.to_string().to_uppercase().parse::<Hash256>().is_err());
        assert!("sha256:abc".parse::<Hash256>().is_err());
        assert!(format!("{h}0").parse::<Hash256>().is_err());
        assert!(
            h.hex().parse::<Hash256>().is_err(),
            "the prefix is required"
        );
        let long = format!("md5:{}", "z".repeat(500));
        let err = long.parse::<Hash256>().expect_err("bad");
        assert_eq!(
            err.0.chars().count(),
            80,
            "the error quotes a bounded prefix"
        );
        assert_eq!(
            serde_json::from_value::<Hash256>(json!(h.tagged())).expect("serde"),
            h
        );
        assert_eq!(serde_json::to_value(h).expect("serde"), json!(h.tagged()));
    }
}
