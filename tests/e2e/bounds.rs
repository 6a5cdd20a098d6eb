//! Issue 14: host work caused by guest-controlled data is bounded as it
//! happens — long outputs (item 2), log fields (item 3), policy durations
//! (item 8) and filesystem writes (item 9).

use crate::daemon::{Daemon, SUBMIT, cap, deploy};
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use warden_host::Outcome;
use warden_host::policy::Policy;

const BIG_BUDGET: &str = "memory = \"128MiB\"\nfuel = \"off\"\nwall_time = \"60s\"";

fn big_output_host() -> warden_host::Host {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("big-output", STD_IMPORTS, BIG_BUDGET),
        "big-output",
    );
    h
}

#[tokio::test]
async fn ten_million_small_list_elements_end_budget_exhausted_output_and_the_host_goes_on() {
    let h = big_output_host();
    for (function, n) in [
        ("many-results", 10_000_000),
        ("many-results", 3_000_000),
        ("many-records", 3_000_000),
        // Within the transfer budget (48 MiB for the default max_output of
        // 1MiB), past max_output: the JSON conversion stops at the budget.
        ("many-results", 200_000),
    ] {
        let r = call(&h, "big-output", function, json!({ "n": n })).await;
        assert_eq!(
            r.outcome,
            Outcome::BudgetExhausted(warden_host::Budget::Output),
            "{function}({n}): {:?}",
            r.error
        );
        assert!(r.output.is_none());
    }
    // A list that fits is returned whole.
    let r = call(&h, "big-output", "many-results", json!({ "n": 3 })).await;
    assert_eq!(
        r.output,
        Some(json!([{"ok": 1}, {"err": 2}, {"ok": 1}])),
        "{:?}",
        r.error
    );
    assert_host_still_works(&h).await;
}

/// Peak RSS (KiB) of `warden run` with these arguments, measured by a
/// Python parent so no other child of the test process counts.
fn peak_rss_kib_of_warden_run(args: &[String]) -> (i64, i32, String) {
    let script = "import resource, subprocess, sys\n\
                  p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  print(p.returncode)\n\
                  print(p.stderr[-2000:])\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(warden_bin())
        .args(args)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let rss = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(-1);
    let code = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(-1);
    (rss, code, lines.collect::<Vec<_>>().join("\n"))
}

#[test]
fn warden_run_returning_millions_of_elements_stays_within_tens_of_mib_of_an_echo_call() {
    let dir = scratch("bounds-rss");
    let policy = dir.join("big-output.toml");
    std::fs::write(
        &policy,
        format!(
            "[capability]\nname = \"big-output\"\ncomponent = \"big_output.wasm\"\n\n[imports]\n{STD_IMPORTS}\n\n[budget]\n{BIG_BUDGET}\n"
        ),
    )
    .expect("policy");
    let run = |function: &str, input: &str| -> Vec<String> {
        [
            "run",
            &guest("big-output").display().to_string(),
            "--policy",
            &policy.display().to_string(),
            "--call",
            function,
            "--input",
            input,
            "--allow-unsigned",
            "--data-dir",
            &dir.join("data").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (small, code, err) = peak_rss_kib_of_warden_run(&run("make", r#"{"bytes": 10}"#));
    assert_eq!(code, 0, "{err}");
    let (big, code, err) = peak_rss_kib_of_warden_run(&run("many-results", r#"{"n": 3000000}"#));
    assert_eq!(code, 16, "budget_exhausted: {err}");
    assert!(err.contains("output"), "{err}");
    let above_mib = (big - small) / 1024;
    // The guest's own memory (two 6 MB copies of the list) plus at most
    // one transfer budget (8 MiB of host values) and allocator slack.
    assert!(
        above_mib < 64,
        "peak RSS {big} KiB vs {small} KiB for a small call: {above_mib} MiB above"
    );
}

#[test]
fn a_daemon_answers_healthz_while_guests_return_millions_of_elements() {
    let mut big = cap("big-output", "big-output");
    big.imports = STD_IMPORTS;
    big.extra = "[budget]\nmemory = \"128MiB\"\nfuel = \"off\"\nwall_time = \"60s\"\n";
    let dir = deploy(
        "bounds-healthz",
        &[big],
        &[("many", "many", "big-output", "many-results")],
        "",
    );
    let d = Daemon::start(&dir);
    let url = d.url();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let client = d.client(SUBMIT);
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    let r = client
                        .post_json(
                            "/v1/requests",
                            &json!({"kind": "many", "input": {"n": 3_000_000}}),
                        )
                        .expect("submit");
                    outcomes.push(r.json()["outcome"].as_str().unwrap_or("").to_string());
                }
                outcomes
            })
        })
        .collect();
    let health = warden_host::server::client::Client::new(&url, None).expect("client");
    let mut slowest = Duration::ZERO;
    while workers.iter().any(|w| !w.is_finished()) {
        let t = Instant::now();
        let r = health.get("/healthz").expect("healthz");
        assert_eq!(r.status, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in workers {
        for outcome in w.join().expect("worker") {
            assert_eq!(outcome, "budget_exhausted:output");
        }
    }
    assert!(
        slowest < Duration::from_millis(1000),
        "/healthz took {slowest:?} while guests returned long lists"
    );
}

fn log_flood_host(limits: &str) -> warden_host::Host {
    let mut h = host_with_echo();
    load(
        &mut h,
        policy(
            "log-flood",
            &format!("{STD_IMPORTS}\n\"warden:host/log\" = {{ {limits} }}"),
            "memory = \"256MiB\"",
        ),
        "log-flood",
    );
    h
}

#[tokio::test]
async fn empty_log_fields_count_against_max_bytes_and_fields_per_line_are_capped() {
    let h = log_flood_host("max_lines = 100000, max_bytes = \"16KiB\"");
    // 1000 lines of 32 empty fields: nothing but framing.
    let r = call(
        &h,
        "log-flood",
        "flood",
        json!({"lines": 1000, "fields": 32, "field-bytes": 0}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
    let kept: usize = r.logs.iter().map(|l| l.fields.len()).sum();
    assert!(r.logs.len() < 100, "{} lines kept", r.logs.len());
    assert!(kept <= 16 * 1024 / 10, "{kept} fields kept under 16KiB");
    assert_eq!(r.logs.len() as u64 + r.logs_dropped, 1000);
    // A line with thousands of fields is dropped whole.
    let r = call(
        &h,
        "log-flood",
        "flood",
        json!({"lines": 3, "fields": 5000, "field-bytes": 0}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
    assert!(r.logs.is_empty());
    assert_eq!(r.logs_dropped, 3);
}

#[tokio::test]
async fn a_guest_passing_millions_of_log_fields_is_stopped_at_the_transfer_budget() {
    let h = log_flood_host("");
    let r = call(
        &h,
        "log-flood",
        "flood",
        json!({"lines": 1, "fields": 2_000_000, "field-bytes": 0}),
    )
    .await;
    assert_eq!(
        r.outcome,
        Outcome::BudgetExhausted(warden_host::Budget::Output),
        "{:?}",
        r.error
    );
    assert!(
        r.error.as_deref().unwrap_or("").contains("transfer budget"),
        "{:?}",
        r.error
    );
    assert_host_still_works(&h).await;
}

#[test]
fn a_duration_too_long_for_any_clock_is_refused_by_policy_check() {
    let dir = scratch("bounds-duration");
    let p = dir.join("p.toml");
    std::fs::write(
        &p,
        "[capability]\nname = \"fx\"\ncomponent = \"fx.wasm\"\n\n[imports]\n\"wasi:http/outgoing-handler\" = { allow = [\"https://rates.example.com\"], timeout = \"10000000000000000d\" }\n",
    )
    .expect("policy");
    let (code, out, err) = warden(&["policy", "check", &p.display().to_string()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("too long"), "{err}");
}

mod accepted_policies {
    use super::*;
    use proptest::prelude::*;

    fn duration() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just(0u64),
                Just(1),
                1u64..1_000_000,
                Just(36_500),
                Just(u64::MAX / 86_400),
                Just(u64::MAX)
            ],
            prop_oneof![
                Just("us"),
                Just("ms"),
                Just("s"),
                Just("m"),
                Just("h"),
                Just("d")
            ],
        )
            .prop_map(|(n, u)| format!("{n}{u}"))
    }

    fn size() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just(0u64),
                1u64..100_000,
                Just(u64::MAX / 1024),
                Just(u64::MAX)
            ],
            prop_oneof![Just("B"), Just("KiB"), Just("MiB"), Just("GiB")],
        )
            .prop_map(|(n, u)| format!("{n}{u}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Every policy that parses (what `policy check` accepts) loads or
        /// is refused with an error, and runs an invocation without a
        /// panic: extreme durations and sizes are refused when read or are
        /// safe in every use.
        #[test]
        fn every_policy_that_parses_runs_an_invocation_without_a_panic(
            wall in duration(), timeout in duration(), memory in size(),
            output in size(), stdout in size(), log_bytes in size(), write in size(),
        ) {
            let text = format!(
                "[capability]\nname = \"http-fetch\"\ncomponent = \"http_fetch.wasm\"\n\n[imports]\n{STD_IMPORTS}\n\
                 \"wasi:clocks/monotonic-clock\" = {{}}\n\"wasi:http/types\" = {{}}\n\
                 \"wasi:http/outgoing-handler\" = {{ allow = [\"http://127.0.0.1:9\"], timeout = \"{timeout}\" }}\n\
                 \"warden:host/log\" = {{ max_bytes = \"{log_bytes}\" }}\n\
                 \"wasi:filesystem/preopens\" = {{ dirs = [{{ host = \"/tmp\", guest = \"/t\", mode = \"read-write\", max_write_bytes = \"{write}\" }}] }}\n\n\
                 [budget]\nwall_time = \"{wall}\"\nmemory = \"{memory}\"\nmax_output = \"{output}\"\nmax_stdout = \"{stdout}\"\n"
            );
            let Ok(policy) = Policy::parse(std::path::Path::new("policies/http-fetch.toml"), &text) else {
                return Ok(());
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
            let mut h = host();
            let bytes = std::fs::read(guest("http-fetch")).expect("http-fetch built");
            if h.load(policy, &bytes, "http-fetch").is_err() {
                return Ok(());
            }
            let r = rt.block_on(call(
                &h,
                "http-fetch",
                "fetch",
                json!({"method": "GET", "url": "http://127.0.0.1:9/"}),
            ));
            prop_assert!(!r.outcome.as_string().is_empty());
        }
    }
}

#[tokio::test]
async fn filesystem_writes_past_max_write_bytes_end_budget_exhausted_fs() {
    let root = scratch("bounds-fs");
    std::fs::create_dir_all(root.join("out")).expect("out");
    let dirs = format!(
        "{{ host = \"{}\", guest = \"/out\", mode = \"read-write\", max_write_bytes = \"64KiB\" }}",
        root.join("out").display()
    );
    let imports = format!(
        "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{}}\n\"wasi:filesystem/types\" = {{}}\n\"wasi:filesystem/preopens\" = {{ dirs = [{dirs}] }}"
    );
    let mut h = host_with_echo();
    load(&mut h, policy("fs-user", &imports, ""), "fs-user");
    let small = "x".repeat(60 * 1024);
    let r = call(
        &h,
        "fs-user",
        "write",
        json!({"path": "/out/a.txt", "contents": small}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
    // The budget is per invocation: the next one may write as much again,
    // but not more.
    let big = "x".repeat(65 * 1024);
    for function in ["write", "write-stream"] {
        let r = call(
            &h,
            "fs-user",
            function,
            json!({"path": "/out/b.txt", "contents": big}),
        )
        .await;
        assert_eq!(
            r.outcome,
            Outcome::BudgetExhausted(warden_host::Budget::Fs),
            "{function}: {:?} {:?}",
            r.error,
            r.output
        );
        assert!(
            r.error.as_deref().unwrap_or("").contains("max_write_bytes"),
            "{:?}",
            r.error
        );
        let written = std::fs::metadata(root.join("out/b.txt")).map_or(0, |m| m.len());
        assert!(
            written <= 64 * 1024,
            "{function}: {written} bytes reached the file"
        );
    }
    assert_host_still_works(&h).await;
}

#[tokio::test]
async fn http_header_blocks_and_live_guest_resources_are_bounded() {
    let mut h = host_with_echo();
    let imports = format!(
        "{STD_IMPORTS}\n\"wasi:clocks/monotonic-clock\" = {{}}\n\"wasi:http/types\" = {{}}\n\"wasi:http/outgoing-handler\" = {{ allow = [\"http://127.0.0.1:9\"] }}"
    );
    load(&mut h, policy("http-fetch", &imports, ""), "http-fetch");
    let hoard = |count: u32, bytes: u32| {
        call(
            &h,
            "http-fetch",
            "hoard-fields",
            json!({"count": count, "bytes": bytes}),
        )
    };
    // One header block holds at most MAX_HTTP_FIELDS_BYTES.
    let r = hoard(1, 8 * 1024).await;
    assert_eq!(r.output, Some(json!(1)), "{:?}", r.error);
    // wasi:http 0.2 has no error for it: a header past the limit traps.
    let r = hoard(1, 17 * 1024).await;
    assert_eq!(r.outcome, Outcome::Trap, "{:?} {:?}", r.error, r.output);
    // Live resources stop at MAX_LIVE_HANDLES: the guest traps, it cannot
    // make the host keep 100,000 header blocks.
    let r = hoard(100_000, 1024).await;
    assert_eq!(r.outcome, Outcome::Trap, "{:?} {:?}", r.error, r.output);
    assert_host_still_works(&h).await;
}
