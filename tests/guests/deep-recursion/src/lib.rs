//! Hostile guest: `recurse` recurses `depth` times (not a tail call, so a large
//! depth overflows the wasm stack / shadow stack).
wit_bindgen::generate!({ world: "deep-recursion" });

struct G;

#[inline(never)]
fn down(depth: u32) -> u32 {
    // a local array keeps each frame non-trivial and on the shadow stack
    let pad = core::hint::black_box([depth as u8; 64]);
    if core::hint::black_box(depth) == 0 {
        return u32::from(pad[0]);
    }
    let r = down(core::hint::black_box(depth - 1));
    core::hint::black_box(r.wrapping_add(1).wrapping_add(u32::from(pad[63])))
}

impl Guest for G {
    fn recurse(depth: u32) -> u32 {
        down(depth)
    }
}

export!(G);
