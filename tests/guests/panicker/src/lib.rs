//! Hostile guest: `boom` panics with its message (a trap for the host).
wit_bindgen::generate!({ world: "panicker" });

struct G;

impl Guest for G {
    fn boom(message: String) -> String {
        panic!("{message}")
    }
}

export!(G);
