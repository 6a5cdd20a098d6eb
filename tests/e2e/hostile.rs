//! Hostile guests: every budget crossed, every crash contained; the host
//! keeps serving afterwards.

use crate::support::*;
use serde_json::json;
use warden_host::sandbox::SandboxConfig;
use warden_host::{Budget, Host, HostConfig, Outcome};

#[tokio::test]
async fn infinite_loop_is_stopped_by_fuel() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("spin-loop", "", "fuel = 5_000_000\nwall_time = \"10s\""),
        "spin-loop",
    );
    let r = call(&h, "spin-loop", "spin", json!({"n": 1})).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Fuel), "{r:?}");
    assert!(r.usage.fuel >= 5_000_000, "fuel used {:?}", r.usage);
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn infinite_loop_with_fuel_off_is_stopped_by_wall_time() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("spin-loop", "", "fuel = \"off\"\nwall_time = \"200ms\""),
        "spin-loop",
    );
    let r = call(&h, "spin-loop", "spin", json!({"n": 1})).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Time), "{r:?}");
    assert!(r.usage.wall_time_us >= 200_000, "{:?}", r.usage);
    assert_host_still_works(&h).await;
}

/// The largest wall time a policy can write is not a point in time the host
/// can compute: it means "no deadline", never a host panic.
#[tokio::test]
async fn an_enormous_wall_time_budget_is_no_deadline_not_a_host_panic() {
    // A policy file cannot write one (durations are at most 100 years)...
    let text = "[capability]\nname = \"echo\"\ncomponent = \"echo.wasm\"\n[budget]\nwall_time = \"18446744073709551615s\"\n";
    let err = warden_host::policy::Policy::parse(std::path::Path::new("echo.toml"), text)
        .expect_err("refused when read");
    assert!(err.to_string().contains("too long"), "{err}");
    // ...but an embedder building a policy in code can: it means "no
    // deadline", never a host panic.
    let enormous = |mut p: warden_host::policy::Policy| {
        p.budget.wall_time = warden_host::policy::HumanDuration(std::time::Duration::MAX);
        p
    };
    let mut h = host();
    load(
        &mut h,
        enormous(policy("echo", "", "wall_time = \"36500d\"")),
        "echo",
    );
    let r = call(&h, "echo", "echo", json!({"message": "hi"})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.output, Some(json!("hi")));
    // With imports the call is also under a timeout: same budget, same answer.
    load(
        &mut h,
        enormous(policy("memory-hog", STD_IMPORTS, "wall_time = \"36500d\"")),
        "memory-hog",
    );
    let r = call(&h, "memory-hog", "bump", json!({})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
}

/// Guest code yields to the executor at every epoch tick: on a
/// single-threaded runtime another task keeps running while a guest spins
/// (without yielding it could not run until the guest's deadline).
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_guest_yields_so_other_tasks_keep_running() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("spin-loop", "", "fuel = \"off\"\nwall_time = \"300ms\""),
        "spin-loop",
    );
    let beats = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = beats.clone();
    let other = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let r = call(&h, "spin-loop", "spin", json!({"n": 1})).await;
    let ran = beats.load(std::sync::atomic::Ordering::Relaxed);
    other.abort();
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Time), "{r:?}");
    assert!(
        ran >= 3,
        "the other task ran {ran} times during a 300ms spinning guest"
    );
}

#[tokio::test]
async fn memory_growth_past_the_limit_is_stopped() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("memory-hog", STD_IMPORTS, "memory = \"8MiB\""),
        "memory-hog",
    );
    let small = call(&h, "memory-hog", "grow", json!({"mebibytes": 2})).await;
    assert_eq!(small.outcome, Outcome::Ok, "2 MiB fits in 8 MiB: {small:?}");
    let r = call(&h, "memory-hog", "grow", json!({"mebibytes": 64})).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Memory), "{r:?}");
    assert!(r.usage.peak_memory <= 8 << 20, "{:?}", r.usage);
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack_as_a_trap() {
    let mut h = host_with_echo();
    load(&mut h, policy("deep-recursion", "", ""), "deep-recursion");
    let shallow = call(&h, "deep-recursion", "recurse", json!({"depth": 100})).await;
    assert_eq!(shallow.outcome, Outcome::Ok, "{shallow:?}");
    let r = call(
        &h,
        "deep-recursion",
        "recurse",
        json!({"depth": 100_000_000}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Trap, "{r:?}");
    assert!(r.error.as_deref().unwrap_or("").contains("stack"), "{r:?}");
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn a_panicking_guest_is_a_trap_with_its_message() {
    let mut h = host_with_echo();
    load(&mut h, policy("panicker", STD_IMPORTS, ""), "panicker");
    let r = call(&h, "panicker", "boom", json!({"message": "kaboom-42"})).await;
    assert_eq!(r.outcome, Outcome::Trap, "{r:?}");
    assert!(
        r.stderr.contains("kaboom-42"),
        "panic message captured: {r:?}"
    );
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn oversized_output_is_refused() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("big-output", STD_IMPORTS, "max_output = \"1KiB\""),
        "big-output",
    );
    let ok = call(&h, "big-output", "make", json!({"bytes": 100})).await;
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    let r = call(&h, "big-output", "make", json!({"bytes": 4096})).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Output), "{r:?}");
    assert_eq!(r.output, None, "an oversized output is never returned");
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn stdout_flooding_is_capped() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("stdout-flood", STD_IMPORTS, "max_stdout = \"4KiB\""),
        "stdout-flood",
    );
    let ok = call(&h, "stdout-flood", "flood", json!({"lines": 3})).await;
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    assert_eq!(ok.stdout.lines().count(), 3, "{ok:?}");
    let r = call(&h, "stdout-flood", "flood", json!({"lines": 100_000})).await;
    assert_eq!(r.outcome, Outcome::BudgetExhausted(Budget::Stdout), "{r:?}");
    assert!(r.stdout.len() <= 4096, "captured {} bytes", r.stdout.len());
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn reading_a_file_without_a_preopen_fails_inside_the_guest() {
    let mut h = host_with_echo();
    let imports = format!(
        "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{}}\n\"wasi:filesystem/types\" = {{}}\n\"wasi:filesystem/preopens\" = {{}}"
    );
    load(&mut h, policy("file-reader", &imports, ""), "file-reader");
    for path in ["/etc/passwd", "Cargo.toml", "../../etc/hostname"] {
        let r = call(&h, "file-reader", "read", json!({"path": path})).await;
        assert_eq!(r.outcome, Outcome::CapabilityError, "{path}: {r:?}");
        let err = r
            .output
            .as_ref()
            .and_then(|o| o.get("err"))
            .and_then(|e| e.as_str())
            .unwrap_or("");
        assert!(!err.contains("root:"), "{path} must not be readable: {r:?}");
    }
    assert_host_still_works(&h).await;
}

/// Both ways of initializing linear memory (copy-on-write image, or the
/// data segments copied at instantiation: `memory_init_cow = false`) give
/// every invocation the component's initial memory, never the previous
/// invocation's writes.
#[tokio::test]
async fn no_invocation_sees_the_previous_ones_memory_writes_either_way() {
    for cow in [true, false] {
        let mut h = Host::new(HostConfig {
            sandbox: SandboxConfig {
                memory_init_cow: cow,
                ..small_pool()
            },
            allow_unsigned: true,
            ..HostConfig::default()
        })
        .expect("host");
        load(&mut h, policy("memory-hog", STD_IMPORTS, ""), "memory-hog");
        for _ in 0..3 {
            let r = call(&h, "memory-hog", "bump", json!({})).await;
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
            assert_eq!(r.output, Some(json!(1)), "memory_init_cow = {cow}");
        }
    }
}

#[tokio::test]
async fn each_invocation_starts_from_a_fresh_instance() {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("memory-hog", STD_IMPORTS, "memory = \"32MiB\""),
        "memory-hog",
    );
    let baseline = call(&h, "memory-hog", "grow", json!({"mebibytes": 0})).await;
    assert_eq!(baseline.outcome, Outcome::Ok, "{baseline:?}");
    let big = call(&h, "memory-hog", "grow", json!({"mebibytes": 16})).await;
    assert_eq!(big.outcome, Outcome::Ok, "{big:?}");
    assert!(big.usage.peak_memory >= baseline.usage.peak_memory + (16 << 20));
    // The next invocation does not inherit the grown memory.
    let after = call(&h, "memory-hog", "grow", json!({"mebibytes": 0})).await;
    assert_eq!(
        after.usage.peak_memory, baseline.usage.peak_memory,
        "{after:?}"
    );
}
