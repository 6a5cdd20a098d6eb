//! Section 12 of `benches/warden.rs`: what a workflow costs over the
//! requests it is made of. A run of a 5-step echo workflow (a chain: each
//! step reads the one before) against five single durable requests of the
//! same echo through the same pipeline with the same durable audit log, at
//! c=1 (p50 latency of a whole run vs p50 of five sequential requests) and
//! at c=64 (runs/s × 5 vs requests/s). Target (issue 20): ≤ 1.25×.
//!
//! It also prints the synced commits (fsyncs) of the audit database per run
//! and per five requests, which is where the time goes at c=1 on a disk
//! whose fsync costs ~200 µs. The journal is kept as the daemon keeps it
//! (`SqliteRunStore::for_host`: in the audit database).
//!
//! This module only measures; it must never assert timing.

use super::{Sizes, echo_host, invoke_echo, load, pct, scratch, throughput, us};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden_host::Host;
use warden_host::store::{RunState, RunStore};
use warden_host::workflow::executor::Executor;
use warden_host::workflow::{Checked, Plan, check};

/// Five echo steps, each reading the one before: a chain, so every step's
/// journaled result is needed before the next one starts.
const CHAIN: &str = r#"
[input]
type = "object"
required = ["message"]
[input.properties]
message = { type = "string" }

[[step]]
id = "s1"
call = "echo.echo"
input = { message = "${input.message}" }
compensate = "none"

[[step]]
id = "s2"
needs = ["s1"]
call = "echo.echo"
input = { message = "${steps.s1.output}" }
compensate = "none"

[[step]]
id = "s3"
needs = ["s2"]
call = "echo.echo"
input = { message = "${steps.s2.output}" }
compensate = "none"

[[step]]
id = "s4"
needs = ["s3"]
call = "echo.echo"
input = { message = "${steps.s3.output}" }
compensate = "none"

[[step]]
id = "s5"
needs = ["s4"]
call = "echo.echo"
input = { message = "${steps.s4.output}" }
compensate = "none"
"#;

/// The journal as the daemon keeps it: in the host's audit database,
/// written by the audit log's writer (one fsync per step).
type Journal = warden_host::store::SqliteRunStore;

fn journal(host: &Host, dir: &std::path::Path) -> Journal {
    Journal::for_host(host, dir).expect("journal")
}

struct Bench {
    host: Host,
    journal: Journal,
    plan: Plan,
    checked: Checked,
    next: AtomicU64,
}

impl Bench {
    async fn run(&self) {
        let id = format!("bench-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let state = Executor::new(&self.host, &self.journal)
            .start(
                &self.plan,
                &self.checked,
                &id,
                "bench",
                serde_json::json!({"message": "hello"}),
            )
            .await
            .expect("run");
        assert_eq!(state, RunState::Completed, "run {id}");
    }

    async fn five_requests(&self) {
        for _ in 0..5 {
            invoke_echo(&self.host).await;
        }
    }

    /// Commits of the audit database synced to disk (fsyncs): entries and,
    /// since the journal moved into it, journal records.
    /// Nanoseconds the audit writer thread spent building and committing
    /// batches (entries and, since it writes them, journal rows).
    fn writer_busy(&self) -> u64 {
        self.host.audit().map_or(0, |a| {
            let s = a.stats();
            s.write_nanos + s.commit_nanos
        })
    }

    fn commits(&self) -> u64 {
        self.host.audit().map_or(0, |a| a.stats().synced_commits)
    }
}

/// Section 12: a 5-step echo workflow vs five single durable requests.
pub async fn workflow(s: &Sizes) {
    let dir = scratch("workflow");
    let host = echo_host(Some(dir.clone()));
    let journal = journal(&host, &dir);
    let plan = Plan::parse(std::path::Path::new("chain.toml"), CHAIN).expect("plan");
    let checked = check(&plan, None).expect("plan checks");
    let b = Arc::new(Bench {
        host,
        journal,
        plan,
        checked,
        next: AtomicU64::new(0),
    });
    // Warm-up: the sandbox pool, the journal's statements, the WAL.
    for _ in 0..5 {
        b.run().await;
        b.five_requests().await;
    }
    // c=1, interleaved so both see the same load: one run, then five requests.
    let iters = s.latency_iters.div_ceil(10).max(3);
    let (mut runs, mut fives) = (Vec::new(), Vec::new());
    let (mut run_commits, mut five_commits) = (0u64, 0u64);
    for _ in 0..iters {
        let c0 = b.commits();
        let t = Instant::now();
        b.run().await;
        let t1 = Instant::now();
        let c1 = b.commits();
        b.five_requests().await;
        let c2 = b.commits();
        runs.push(t1 - t);
        fives.push(t1.elapsed());
        run_commits += c1 - c0;
        five_commits += c2 - c1;
    }
    let c1_load = load();
    // One journal read: what taking up a run (`drive`, after a restart or
    // an approval) costs once; `start` reads none (the driving task keeps
    // the run's view in memory).
    let reads = iters.max(100);
    let t = Instant::now();
    for _ in 0..reads {
        std::hint::black_box(b.journal.journal("bench-0").expect("read"));
    }
    let read_cost = t.elapsed() / u32::try_from(reads).unwrap_or(u32::MAX);
    runs.sort();
    fives.sort();
    let (run_p50, five_p50) = (pct(&runs, 0.5), pct(&fives, 0.5));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
    // c=64: throughput, runs then requests back to back.
    let total = (s.throughput_per_level / 8).max(64);
    let h = b.clone();
    let c0 = b.commits();
    let w0 = b.writer_busy();
    let runs_per_s = throughput(
        move || {
            let h = h.clone();
            async move { h.run().await }
        },
        64,
        total,
    )
    .await;
    let run_commits64 = b.commits() - c0;
    let run_busy = b.writer_busy() - w0;
    let runs_done = total.div_ceil(64) * 64;
    let h = b.clone();
    let c0 = b.commits();
    let w0 = b.writer_busy();
    let requests_per_s = throughput(
        move || {
            let h = h.clone();
            async move { invoke_echo(&h.host).await }
        },
        64,
        total * 5,
    )
    .await;
    let request_commits64 = b.commits() - c0;
    let request_busy = b.writer_busy() - w0;
    let requests_done = (total * 5).div_ceil(64) * 64;
    let c64_load = load();
    println!(
        "12. workflow: a 5-step echo chain vs five single durable requests of echo (same host, same audit log)"
    );
    println!(
        "   c=1: run p50 {}  p99 {} | five requests p50 {}  p99 {} | ratio {:.2}x (target <= 1.25x)   ({c1_load})",
        us(run_p50),
        us(pct(&runs, 0.99)),
        us(five_p50),
        us(pct(&fives, 0.99)),
        ratio(run_p50, five_p50),
    );
    println!(
        "   c=1: fsyncs (synced commits of warden.db) per run {:.1}, per five requests {:.1}   ({iters} of each, interleaved)",
        run_commits as f64 / iters as f64,
        five_commits as f64 / iters as f64,
    );
    println!(
        "   c=64: {:.0} runs/s = {:.0} steps/s | {:.0} requests/s | ratio {:.2}x (target <= 1.25x)   ({c64_load})",
        runs_per_s,
        runs_per_s * 5.0,
        requests_per_s,
        requests_per_s / (runs_per_s * 5.0).max(1e-12),
    );
    println!(
        "   c=64: fsyncs per run {:.2}, per five requests {:.2}",
        run_commits64 as f64 / runs_done as f64,
        request_commits64 as f64 * 5.0 / requests_done as f64,
    );
    println!(
        "   c=64: audit writer thread busy per run {:.1} µs, per five requests {:.1} µs; one journal read (once per drive; none in `start`) {} at c=1",
        run_busy as f64 / 1e3 / runs_done as f64,
        request_busy as f64 * 5.0 / 1e3 / requests_done as f64,
        us(read_cost),
    );
    drop(b);
}
