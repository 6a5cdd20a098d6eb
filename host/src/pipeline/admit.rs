//! Stage 1, admission: a request gets its identity and its admission time,
//! once, before anything else looks at it.
//!
//! The request id seeds the sandbox's random generators and names every
//! audit entry of the request; the admission time is what the virtual wall
//! clock reads. Both are fixed here and never read again from the outside
//! world: a request held for approval runs later with the same id and the
//! same admission time, and a replay of its audit entry sees the same
//! clock. The time is kept at millisecond precision because that is what
//! the audit entry records (`admitted_at_ms`).
//!
//! This module reads the clock and the random generator; it must never
//! look at the request's target or input.

use crate::digest::push_hex;
use crate::invocation::Call;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Fills in the call's request id and admission time where the caller left
/// them out, and brings the admission time to millisecond precision.
pub fn admit(call: &mut Call) {
    let at = admission_time(call.admitted_at.unwrap_or_else(SystemTime::now));
    call.admitted_at = Some(at);
    if call.request_id.is_none() {
        call.request_id = Some(request_id_at(at));
    }
}

/// `at` truncated to whole milliseconds since the Unix epoch (times before
/// the epoch become the epoch).
pub fn admission_time(at: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_ms(at))
}

pub use crate::units::unix_ms;

/// A fresh request id: time-ordered and unique (`r-<ms hex>-<random hex>`,
/// as `format!("r-{:011x}-{:016x}", ms, random)` writes it, without the
/// formatting machinery: it is on every request).
pub fn new_request_id() -> String {
    request_id_at(SystemTime::now())
}

/// A request id for a request admitted at `at` (no second clock read).
fn request_id_at(at: SystemTime) -> String {
    let mut id = String::with_capacity(2 + 11 + 1 + 16);
    id.push_str("r-");
    push_hex_u64(unix_ms(at), 11, &mut id);
    id.push('-');
    push_hex_u64(rand::random::<u64>(), 16, &mut id);
    id
}

/// Appends `v` in lowercase hex, zero-padded to at least `width` digits
/// (the crate's one hex writer, [`push_hex`], then the surplus leading
/// zeros dropped).
fn push_hex_u64(v: u64, width: usize, out: &mut String) {
    let start = out.len();
    push_hex(&v.to_be_bytes(), out);
    let significant = 16 - (v.leading_zeros() / 4) as usize;
    let keep = significant.max(width.clamp(1, 16));
    out.drain(start..start + (16 - keep));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_the_format_macro() {
        for v in [0u64, 1, 0xf, 0x10, 0x19a_3b4c_5d6e, u64::MAX, 1 << 44] {
            for width in [0usize, 1, 11, 16] {
                let mut s = String::new();
                push_hex_u64(v, width, &mut s);
                assert_eq!(s, format!("{v:0width$x}"), "{v} {width}");
            }
        }
    }

    #[test]
    fn request_ids_have_the_documented_shape() {
        let id = new_request_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "r");
        assert_eq!(parts[1].len(), 11, "{id}");
        assert_eq!(parts[2].len(), 16, "{id}");
        assert!(parts[1..].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
    }

    #[test]
    fn admission_fixes_id_and_time_once_at_millisecond_precision() {
        let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut call = Call::new("c", "f", serde_json::json!({})).admitted_at(at);
        admit(&mut call);
        let fixed = call.admitted_at.expect("admitted");
        assert_eq!(unix_ms(fixed), 1_700_000_000_123);
        assert_eq!(fixed, UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        let id = call.request_id.clone().expect("id");
        // Admitting again (a held request re-entering) changes nothing.
        admit(&mut call);
        assert_eq!(call.admitted_at, Some(fixed));
        assert_eq!(call.request_id, Some(id));
    }
}
