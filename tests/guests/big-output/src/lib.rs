//! Hostile guest: `make` returns a string of N 'x' (tests the output cap).
wit_bindgen::generate!({ world: "big-output" });

struct G;

impl Guest for G {
    fn make(bytes: u32) -> String {
        "x".repeat(bytes as usize)
    }
}

export!(G);
