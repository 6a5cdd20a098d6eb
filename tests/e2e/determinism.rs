//! Virtual clocks and seeded random make invocations replayable.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};
use warden_host::{Call, Outcome};

fn clock_random_imports(mode_clock: &str, mode_random: &str) -> String {
    format!(
        "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{ mode = \"{mode_clock}\" }}\n\"wasi:clocks/monotonic-clock\" = {{ mode = \"{mode_clock}\" }}\n\"wasi:random/random\" = {{ mode = \"{mode_random}\" }}"
    )
}

async fn sample(h: &warden_host::Host, request_id: &str) -> serde_json::Value {
    let at = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let r = h
        .invoke(
            Call::new("clock-random", "sample", json!({}))
                .with_request_id(request_id)
                .admitted_at(at),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(r.replayable || request_id.starts_with("sys"), "{r:?}");
    r.output.expect("output")
}

#[tokio::test]
async fn same_request_with_virtual_clock_and_seeded_random_gives_identical_output() {
    let mut h = host();
    load(
        &mut h,
        policy(
            "clock-random",
            &clock_random_imports("virtual", "seeded"),
            "",
        ),
        "clock-random",
    );
    let a = sample(&h, "req-1").await;
    let b = sample(&h, "req-1").await;
    assert_eq!(a, b);
    assert_eq!(
        a[0],
        json!(1_790_000_000u64),
        "the wall clock reads the admission time: {a}"
    );
    let c = sample(&h, "req-2").await;
    assert_ne!(a[2], c[2], "another request id seeds another random stream");
}

#[tokio::test]
async fn system_clock_and_random_differ_per_run_and_stay_replayable_as_recorded() {
    let mut h = host();
    load(
        &mut h,
        policy(
            "clock-random",
            &clock_random_imports("system", "system"),
            "",
        ),
        "clock-random",
    );
    let a = sample(&h, "sys-1").await;
    let b = sample(&h, "sys-1").await;
    assert_ne!(a[2], b[2], "system random differs between runs");
    let r = h
        .invoke(Call::new("clock-random", "sample", json!({})))
        .await;
    // Their readings are recorded (replay_recorded.rs replays them).
    assert!(r.replayable, "{r:?}");
    assert_eq!(r.not_replayable, None);
}
