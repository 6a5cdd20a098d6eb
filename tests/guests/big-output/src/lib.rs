//! Hostile guest: `make` returns a string of N 'x' (tests the output cap);
//! `many-results` and `many-records` return long lists of tiny elements that
//! are small in guest memory but would be large as host values and JSON
//! (tests that the host bounds that work as it happens).
wit_bindgen::generate!({ world: "big-output" });

struct G;

impl Guest for G {
    fn make(bytes: u32) -> String {
        "x".repeat(bytes as usize)
    }

    fn many_results(n: u32) -> Vec<Result<u8, u8>> {
        (0..n).map(|i| if i % 2 == 0 { Ok(1) } else { Err(2) }).collect()
    }

    fn many_records(n: u32) -> Vec<Point> {
        (0..n).map(|i| Point { x: i as u8, y: 1 }).collect()
    }
}

export!(G);
