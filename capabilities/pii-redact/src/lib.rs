//! `pii-redact`: replaces e-mail addresses, phone numbers and Luhn-valid card
//! numbers in text. Imports `warden:host/log` (one summary line per call).
//!
//! The scanner is hand-written (no regex crate, keeps the component small)
//! and lives in [`logic`], unit-tested natively.

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:pii-redact/pii-redact",
    with: {
        "warden:host/log@0.1.0": warden_sdk::log,
    },
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

pub mod logic;

use warden_sdk::log::{Level, log};

struct Redactor;

impl Guest for Redactor {
    fn redact(text: String) -> Redacted {
        let (text, spans) = logic::redact(&text);
        log(Level::Info, &format!("redacted {} items", spans.len()));
        Redacted {
            text,
            redactions: spans
                .into_iter()
                .map(|s| Redaction { kind: s.kind.as_str().to_string(), start: s.start as u32, end: s.end as u32 })
                .collect(),
        }
    }
}

export!(Redactor);
