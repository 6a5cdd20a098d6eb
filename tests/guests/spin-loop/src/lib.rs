//! Hostile guest: `spin` never returns.
wit_bindgen::generate!({ world: "spin-loop" });

struct G;

impl Guest for G {
    fn spin(n: u32) -> u32 {
        let mut x = n;
        loop {
            x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }
}

export!(G);
