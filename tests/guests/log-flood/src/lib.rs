//! Hostile guest for `warden:host/log`: floods lines with many fields,
//! empty by default (tests that every field and its framing counts
//! against `max_bytes` and that the number of fields is capped).
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:log-flood/log-flood",
    generate_all,
});

use warden::host::log::{Level, log_fields};

struct G;

impl Guest for G {
    fn flood(lines: u32, fields: u32, field_bytes: u32) {
        let text = "f".repeat(field_bytes as usize);
        let pairs: Vec<(String, String)> = (0..fields)
            .map(|_| (text.clone(), text.clone()))
            .collect();
        for _ in 0..lines {
            log_fields(Level::Info, "", &pairs);
        }
    }
}

export!(G);
