//! Guest whose output depends on the wall clock and wasi:random.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:clock-random/clock-random",
    generate_all,
});

struct G;

impl Guest for G {
    fn sample() -> (u64, u64, Vec<u8>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let bytes = wasi::random::random::get_random_bytes(16);
        (now.as_secs(), u64::from(now.subsec_nanos()), bytes)
    }
}

export!(G);
