//! Hostile guest: `flood` println!s N lines of ~100 bytes (imports
//! wasi:cli/stdout).
wit_bindgen::generate!({ world: "stdout-flood" });

struct G;

impl Guest for G {
    fn flood(lines: u32) -> u32 {
        for i in 0..lines {
            println!("{i:>10} {}", "y".repeat(89));
        }
        lines
    }
}

export!(G);
