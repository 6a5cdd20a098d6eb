//! Hostile guest: `grow` allocates and touches N MiB (one write per 4 KiB page);
//! `bump` counts calls in a static (a data segment).
wit_bindgen::generate!({ world: "memory-hog" });

struct G;

const MIB: usize = 1 << 20;

/// In initialized data (non-zero start), so it lives in the memory image.
static COUNTER: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(41);

impl Guest for G {
    fn grow(mebibytes: u32) -> u32 {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for _ in 0..mebibytes {
            let mut v: Vec<u8> = Vec::with_capacity(MIB);
            // SAFETY-free touch: push bytes page by page
            v.resize(MIB, 0);
            let mut p = 0;
            while p < MIB {
                v[p] = 1;
                p += 4096;
            }
            chunks.push(core::hint::black_box(v));
        }
        core::hint::black_box(&chunks);
        chunks.len() as u32
    }

    fn bump() -> u32 {
        COUNTER.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1 - 41
    }
}

export!(G);
