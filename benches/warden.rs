//! warden's cost against the raw-wasmtime floor, in one process and one run.
//!
//! ```text
//! cargo bench --bench warden                 # full run, prints figures (release build)
//! cargo test --bench warden                  # smoke mode: tiny sizes, checks it runs (CI)
//! WARDEN_BENCH_VERIFY_ENTRIES=1000000 cargo bench --bench warden   # the default
//! WARDEN_BENCH_ONLY=1,2 cargo bench --bench warden   # only these sections (profiling)
//! WARDEN_BENCH_WARDEN_BIN=<path> ...          # section 11 runs this `warden` (no build)
//! ```
//!
//! Every figure is printed with the machine's load average at the time.
//!
//! Sections (numbers as in BENCHMARKS.md):
//! 1. floor: raw wasmtime with warden's Engine configuration (pooling, fuel,
//!    epochs): new Store + instantiate from `InstancePre` + typed call `echo`;
//! 2. warden in process: a routed request (`RouteTable::decide`) then
//!    `Host::invoke` on the same `echo` (policy checks,
//!    typed JSON conversion, usage accounting), without and with the durable
//!    audit commit; latency p50/p99 at concurrency 1, throughput at 1/2/8/64;
//!    the cost of building the audit entry, and each call's own commit
//!    wait; 1 and 2 run under both `memory_init_cow` engine settings;
//! 3. audit: durable append rate at concurrency 1 and 64; verify rate;
//! 4. start-up: loading 10 signed capabilities cold (compile) vs warm (cache);
//! 6. fuel overhead: invoice-reconcile on 10k lines, metering on vs off;
//! 8. memory initialization: one call of echo and of the Python and
//!    JavaScript examples, copy-on-write images vs copied data segments;
//! 9. transparency log: durable append at c=64 with the Merkle tree (as in
//!    3, which also maintains it) and where the writer's time goes (the
//!    tree's share of it), `audit verify` (chain and tree alone, then both
//!    in the one pass the command makes), and inclusion-proof production
//!    and verification on a log of `verify_entries` (default 1,000,000)
//!    entries.
//! 10. evidence: the cost of the determinism settings on in-process echo
//!     (on vs off, interleaved), fx-rate's in-process latency with its
//!     response recorded against the loopback double, and the rate of
//!     `warden audit replay` over recorded echo entries.
//! 11. MCP over stdio: `tools/call` of echo through a `warden mcp` child
//!     process vs the in-process path it wraps (`Daemon::submit_via`,
//!     durable) plus one JSON round trip (a peer process that parses the
//!     request line and serializes an answer of the same size and shape;
//!     the bare pipe through `cat` is printed too), interleaved call by
//!     call (the HTTP side of section 11 is `benches/mcp.sh`).
//! 12. workflow: a 5-step echo workflow (a chain) vs five single durable
//!     requests of echo on the same host and audit log, at c=1 (p50 of a
//!     whole run vs p50 of five sequential requests) and c=64 (runs/s × 5
//!     vs requests/s), with the audit writer's commits per run
//!     (`sections/workflow.rs`).
//!
//! Timing lives here, never in the test suite. Smoke mode (no `--bench`
//! argument, as under `cargo test`) only checks that every section runs.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_host::audit::{EventKind, NewEntry};
use warden_host::policy::Policy;
use warden_host::router::{Decision, RouteRequest, RouteTable};
use warden_host::sandbox::{SandboxConfig, engine_config};
use warden_host::signing::{self, TrustStore};
use warden_host::store::{AuditLog, CheckpointPolicy, Payloads};
use warden_host::{Call, Host, HostConfig, Outcome, Usage, keys};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

#[path = "../tests/e2e/doubles.rs"]
mod doubles;
#[path = "sections/workflow.rs"]
mod workflow;

struct Sizes {
    latency_iters: usize,
    throughput_per_level: usize,
    append_entries: usize,
    verify_entries: usize,
    reconcile_lines: usize,
}

fn sizes(smoke: bool) -> Sizes {
    let verify = std::env::var("WARDEN_BENCH_VERIFY_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if smoke {
        Sizes {
            latency_iters: 50,
            throughput_per_level: 64,
            append_entries: 256,
            verify_entries: 500,
            reconcile_lines: 100,
        }
    } else {
        Sizes {
            latency_iters: 20_000,
            throughput_per_level: 20_000,
            append_entries: 100_000,
            verify_entries: verify,
            reconcile_lines: 10_000,
        }
    }
}

fn guests() -> PathBuf {
    PathBuf::from(env!("WARDEN_GUESTS_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The 1/5/15-minute load average, printed with every figure: the machine
/// may be shared, and figures taken under load are not comparable.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "load n/a".into(),
        |t| {
            format!(
                "load {}",
                t.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        },
    )
}

/// Whether section `n` runs: all of them unless `WARDEN_BENCH_ONLY` lists
/// section numbers (e.g. `WARDEN_BENCH_ONLY=1,2` to profile sections 1 and 2).
fn enabled(n: u32) -> bool {
    std::env::var("WARDEN_BENCH_ONLY")
        .map_or(true, |v| v.split(',').any(|x| x.trim() == n.to_string()))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

const ECHO_POLICY: &str = "[capability]\nname = \"echo\"\ncomponent = \"echo.wasm\"\n[budget]\nfuel = 10_000_000\nmemory = \"16MiB\"\nwall_time = \"1s\"\n";

/// Whether the engine (floor's and warden's alike) initializes memories
/// copy-on-write (the default) or by copying data segments.
static MEMORY_INIT_COW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

fn bench_config(max: u32) -> SandboxConfig {
    SandboxConfig {
        max_concurrent_instances: max,
        memory_init_cow: MEMORY_INIT_COW.load(std::sync::atomic::Ordering::Relaxed),
        ..SandboxConfig::default()
    }
}

/// The floor's engine and pre-linked echo (no imports: an empty linker).
fn floor_setup() -> (Engine, InstancePre<()>) {
    let engine = Engine::new(&engine_config(&bench_config(128))).expect("engine");
    let bytes = std::fs::read(guests().join("echo.wasm")).expect("echo.wasm");
    let component = Component::from_binary(&engine, &bytes).expect("compile");
    let linker: Linker<()> = Linker::new(&engine);
    let pre = linker.instantiate_pre(&component).expect("pre");
    let e = engine.clone();
    // Ticks for the rest of the process, like warden's epoch ticker.
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(5));
            e.increment_epoch();
        }
    });
    (engine, pre)
}

/// One floor invocation: new Store with fuel and an epoch deadline,
/// instantiate from `InstancePre`, typed call of `echo`.
async fn floor_once(pre: InstancePre<()>, engine: Engine) {
    let mut store = Store::new(&engine, ());
    store.set_fuel(10_000_000).expect("fuel");
    store.set_epoch_deadline(1000);
    store.epoch_deadline_trap();
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    let f = instance
        .get_typed_func::<(String,), (String,)>(&mut store, "echo")
        .expect("echo");
    let (out,) = f
        .call_async(&mut store, ("hello".to_string(),))
        .await
        .expect("call");
    assert_eq!(out, "hello");
}

/// Concurrency levels of the throughput runs (sections 1 and 2).
const LEVELS: [usize; 4] = [1, 2, 8, 64];

fn echo_host(data_dir: Option<PathBuf>) -> Host {
    let mut host = Host::new(HostConfig {
        sandbox: bench_config(128),
        allow_unsigned: true,
        data_dir,
        checkpoints: CheckpointPolicy::default(),
        ..HostConfig::default()
    })
    .expect("host");
    let policy = Policy::parse(Path::new("echo.toml"), ECHO_POLICY).expect("policy");
    let bytes = std::fs::read(guests().join("echo.wasm")).expect("echo.wasm");
    host.load(policy, &bytes, "echo.wasm").expect("load");
    host
}

fn routes() -> &'static RouteTable {
    static TABLE: std::sync::OnceLock<RouteTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let text = "[[route]]\nid = \"echo\"\nmatch = { kind = \"echo\" }\ncapability = \"echo\"\nfunction = \"echo\"\n";
        RouteTable::parse(Path::new("routes.toml"), text).expect("routes")
    })
}

/// One routed request: decide, then invoke with the decision recorded.
async fn invoke_echo(host: &Host) {
    let table = routes();
    let request = RouteRequest {
        kind: "echo".into(),
        ..RouteRequest::default()
    };
    let decision = table.decide(&request);
    let route = table.audit_route(&decision);
    // The decision's names move into the call, as the daemon's route stage
    // moves them (`pipeline::route::by_kind`).
    let Decision::Route {
        capability,
        function,
        ..
    } = decision
    else {
        panic!("echo is routed");
    };
    let mut call = Call::new_owned(capability, function, json!({"message": "hello"}));
    call.route = Some(route);
    let r = host.invoke(call).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
}

/// Mean time to build one echo call's audit entry and canonical payloads
/// (what `Host::invoke` does after the call, before the durable append).
async fn audit_entry_cost(host: &Host, iters: usize) -> Duration {
    let call = Call::new("echo", "echo", json!({"message": "hello"}));
    let record = host.invoke(call.clone()).await;
    let n = iters.max(1) * 10;
    let t = Instant::now();
    for _ in 0..n {
        let entry = record.audit_entry(std::hint::black_box(&call));
        let payloads = record.payloads(&call.input);
        std::hint::black_box((entry, payloads));
    }
    t.elapsed() / u32::try_from(n).unwrap_or(u32::MAX)
}

async fn invoke_arc(host: Arc<Host>) {
    invoke_echo(&host).await
}

/// Runs `total` invocations of `one` split over `concurrency` tasks; per second.
async fn throughput<F, Fut>(one: F, concurrency: usize, total: usize) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let t = Instant::now();
    let per = total.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                one().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (per * concurrency) as f64 / t.elapsed().as_secs_f64()
}

/// Sections 1 (the floor) and 2 (warden in process), measured interleaved
/// so that both see the same machine load (the machine may be shared):
/// latency alternates one floor call and one warden call; throughput runs
/// floor, warden without an audit store and warden with the durable audit
/// store back to back at each concurrency level.
async fn floor_and_in_process(s: &Sizes) {
    let (engine, pre) = floor_setup();
    let fast = Arc::new(echo_host(None));
    let durable = Arc::new(echo_host(Some(scratch("inproc"))));
    let (mut floor_lat, mut fast_lat, mut durable_lat) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.latency_iters {
        let t = Instant::now();
        floor_once(pre.clone(), engine.clone()).await;
        let t1 = Instant::now();
        invoke_echo(&fast).await;
        let t2 = Instant::now();
        floor_lat.push(t1 - t);
        fast_lat.push(t2 - t1);
    }
    let latency_load = load();
    let entry_cost = audit_entry_cost(&fast, s.latency_iters).await;
    // Durable calls, each followed by a no-audit call as a control: the core
    // idles during the fsync and the next call starts cold.
    let (mut waits, mut unwaited_lat, mut after_wait_lat) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.latency_iters.div_ceil(10) {
        let waited = || durable.audit().map(|a| a.stats().wait_nanos).unwrap_or(0);
        let before = waited();
        let t = Instant::now();
        invoke_echo(&durable).await;
        let total = t.elapsed();
        let wait = Duration::from_nanos(waited().saturating_sub(before));
        durable_lat.push(total);
        waits.push(wait);
        unwaited_lat.push(total.saturating_sub(wait));
        let t = Instant::now();
        invoke_echo(&fast).await;
        after_wait_lat.push(t.elapsed());
    }
    let durable_load = load();
    for v in [
        &mut floor_lat,
        &mut fast_lat,
        &mut durable_lat,
        &mut waits,
        &mut unwaited_lat,
        &mut after_wait_lat,
    ] {
        v.sort();
    }
    let floor_p50 = pct(&floor_lat, 0.5);
    let ratio = |d: Duration| d.as_secs_f64() / floor_p50.as_secs_f64();
    let mut rows = Vec::new();
    for c in LEVELS {
        let n = s.throughput_per_level;
        let (e, p) = (engine.clone(), pre.clone());
        let f = throughput(move || floor_once(p.clone(), e.clone()), c, n).await;
        let h = fast.clone();
        let w = throughput(move || invoke_arc(h.clone()), c, n).await;
        let h = durable.clone();
        let before = durable.audit().map(|a| a.stats()).unwrap_or_default();
        // The durable runs are fsync-bound at low concurrency: fewer calls.
        let d = throughput(move || invoke_arc(h.clone()), c, (n / 64 * c).max(c * 4)).await;
        let after = durable.audit().map(|a| a.stats()).unwrap_or_default();
        let commits = after.commits.saturating_sub(before.commits).max(1);
        let batch = after.entries.saturating_sub(before.entries) as f64 / commits as f64;
        rows.push((c, f, w, d, batch, load()));
    }
    println!("1. floor (raw wasmtime, typed call, same engine config)");
    println!(
        "   latency c=1: p50 {}  p99 {}   ({latency_load}; interleaved with 2's calls)",
        us(floor_p50),
        us(pct(&floor_lat, 0.99)),
    );
    println!(
        "2. warden in process (routed request: route decision -> Host::invoke on echo: policy, JSON typing, usage, fresh sandbox)"
    );
    let fast_p50 = pct(&fast_lat, 0.5);
    let durable_p50 = pct(&durable_lat, 0.5);
    println!(
        "   [no audit store] latency c=1: p50 {}  p99 {}  ratio to floor p50: {:.2}x   ({latency_load})",
        us(fast_p50),
        us(pct(&fast_lat, 0.99)),
        ratio(fast_p50)
    );
    println!(
        "   building the audit entry and its payloads (Host::invoke's work before handing the entry to the audit writer): {} per call",
        us(entry_cost)
    );
    println!(
        "   => in process, excluding the durable-commit wait: p50 {} + {} = {}  ratio to floor p50: {:.2}x (target <= 1.25x)",
        us(fast_p50),
        us(entry_cost),
        us(fast_p50 + entry_cost),
        ratio(fast_p50 + entry_cost)
    );
    println!(
        "   [durable audit]  latency c=1: p50 {}  p99 {}  ratio to floor p50: {:.2}x   ({durable_load})",
        us(durable_p50),
        us(pct(&durable_lat, 0.99)),
        ratio(durable_p50)
    );
    println!(
        "   durable-commit wait at c=1 (each call's own, from the audit log's wait counter): p50 {}  p99 {}",
        us(pct(&waits, 0.5)),
        us(pct(&waits, 0.99))
    );
    println!(
        "   [durable audit] minus its own commit wait: p50 {}; control: a no-audit call made right after a durable call: p50 {} (the core idled during the fsync: caches are cold)",
        us(pct(&unwaited_lat, 0.5)),
        us(pct(&after_wait_lat, 0.5))
    );
    println!(
        "   throughput (invocations/s)  floor | warden, no audit store | warden, durable audit"
    );
    let floor1 = rows[0].1;
    for (c, f, w, d, batch, l) in rows {
        println!(
            "   c={c:<3} {f:>8.0} | {w:>8.0} ({:>3.0}% of floor) | {d:>8.0} ({:>3.0}% of floor at c={c}, {:>3.0}% of floor at c=1; {batch:.1} entries per commit)   ({l})",
            100.0 * w / f,
            100.0 * d / f,
            100.0 * d / floor1
        );
    }
    for h in [fast, durable] {
        if let Ok(h) = Arc::try_unwrap(h) {
            let _ = h.shutdown().await;
        }
    }
}

fn sample_entry(i: u64) -> NewEntry {
    NewEntry {
        event: EventKind::Invocation,
        admitted_at_ms: 1_790_000_000_000 + i,
        request_id: format!("r-{i:016x}"),
        principal: "bench".into(),
        request_kind: "bench".into(),
        route: None,
        capability: "echo".into(),
        component_digest: Some(warden_host::digest::Hash256::of(b"component")),
        policy_hash: Some(warden_host::digest::Hash256::of(b"policy")),
        function: "echo".into(),
        input_sha256: Some(warden_host::digest::Hash256::of(&i.to_le_bytes())),
        output_sha256: Some(warden_host::digest::Hash256::of(&i.to_be_bytes())),
        outcome: Outcome::Ok,
        usage: Usage {
            fuel: 844,
            peak_memory: 1 << 20,
            wall_time_us: 120,
        },
        replayable: true,
        unsigned_allowed: false,
        attempt: 1,
        approvals: Vec::new(),
        host_calls: Vec::new(),
        detail: None,
        evidence: Default::default(),
    }
}

/// 3. Audit: durable append with group commit; verify.
async fn audit(s: &Sizes) {
    println!("3. audit store (SQLite WAL, synchronous=FULL, group commit)");
    for c in [1usize, 64] {
        let dir = scratch(&format!("append-{c}"));
        let key = keys::generate();
        let log =
            AuditLog::open(&dir.join("warden.db"), key, CheckpointPolicy::default()).expect("open");
        let total = if c == 1 {
            (s.append_entries / 20).max(10)
        } else {
            s.append_entries
        };
        let per = total / c;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..c {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    log.append(sample_entry((k * per + i) as u64), Payloads::default())
                        .await
                        .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let secs = t.elapsed().as_secs_f64();
        let stats = log.stats();
        println!(
            "   append c={c}: {:.0} entries/s ({} entries in {} commits, largest batch {})   ({})",
            (per * c) as f64 / secs,
            stats.entries,
            stats.commits,
            stats.max_batch,
            load()
        );
        if c > 1 {
            writer_breakdown(&stats, secs);
        }
        log.close().await.expect("close");
    }
    // Verify: fill with many concurrent appenders (fast), then time verify alone.
    let dir = scratch("verify");
    let key = keys::generate();
    let public = key.verifying_key();
    let log =
        AuditLog::open(&dir.join("warden.db"), key, CheckpointPolicy::default()).expect("open");
    let c = 1024usize;
    let per = s.verify_entries.div_ceil(c);
    let mut tasks = Vec::new();
    for k in 0..c {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                log.append(sample_entry((k * per + i) as u64), Payloads::default())
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    log.close().await.expect("close");
    let t = Instant::now();
    let report =
        warden_host::store::verify_db(&dir.join("warden.db"), Some(&public)).expect("verify");
    let secs = t.elapsed().as_secs_f64();
    assert!(report.passed(false), "{report:?}");
    println!(
        "   verify: {} entries + {} checkpoints in {:.2} s = {:.0} entries/s   ({})",
        report.entries_checked,
        report.checkpoints_checked,
        secs,
        report.entries_checked as f64 / secs,
        load()
    );
}

/// 4. Start-up: 10 signed capabilities, cold (compile) vs warm (precompiled cache).
fn startup() {
    println!("4. start-up: loading 10 signed capabilities");
    let names = [
        "echo",
        "invoice_reconcile",
        "pii_redact",
        "all_types",
        "big_output",
        "clock_random",
        "memory_hog",
        "panicker",
        "stdout_flood",
        "spin_loop",
    ];
    let key = keys::generate();
    let caps: Vec<String> = names.iter().map(|n| n.replace('_', "-")).collect();
    let trust_text = format!(
        "[[key]]\nname = \"bench\"\npublic_key = \"{}\"\ncapabilities = [{}]\n",
        keys::public_key_text(&key.verifying_key()),
        caps.iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let trust = TrustStore::parse(&trust_text, Path::new("trust.toml")).expect("trust");
    let signed: Vec<(Policy, Vec<u8>)> = names
        .iter()
        .zip(&caps)
        .map(|(file, cap)| {
            let bytes = std::fs::read(guests().join(format!("{file}.wasm"))).expect("guest");
            let text = format!(
                "[capability]\nname = \"{cap}\"\ncomponent = \"{file}.wasm\"\n[imports]\n{}",
                STD_GRANTS
            );
            let policy = Policy::parse(Path::new("p.toml"), &text).expect("policy");
            (policy, signing::sign(&bytes, &key).expect("sign"))
        })
        .collect();
    let data = scratch("startup");
    let mut times = Vec::new();
    for round in ["cold", "warm"] {
        let t = Instant::now();
        let mut host = Host::new(HostConfig {
            sandbox: bench_config(16),
            trust: Some(trust.clone()),
            data_dir: Some(data.clone()),
            ..HostConfig::default()
        })
        .expect("host");
        for (policy, bytes) in &signed {
            host.load(policy.clone(), bytes, "bench").expect("load");
        }
        let elapsed = t.elapsed();
        let cache = host
            .cache()
            .map(|c| (c.compiles(), c.hits()))
            .unwrap_or_default();
        println!(
            "   {round}: {:.1} ms ({} compiled, {} from cache)   ({})",
            elapsed.as_secs_f64() * 1e3,
            cache.0,
            cache.1,
            load()
        );
        times.push(elapsed);
    }
}

const STD_GRANTS: &str = r#""wasi:io/poll" = {}
"wasi:io/error" = {}
"wasi:io/streams" = {}
"wasi:cli/environment" = {}
"wasi:cli/exit" = {}
"wasi:cli/stdin" = {}
"wasi:cli/stdout" = {}
"wasi:cli/stderr" = {}
"wasi:cli/terminal-input" = {}
"wasi:cli/terminal-output" = {}
"wasi:cli/terminal-stdin" = {}
"wasi:cli/terminal-stdout" = {}
"wasi:cli/terminal-stderr" = {}
"wasi:clocks/wall-clock" = {}
"wasi:clocks/monotonic-clock" = {}
"wasi:random/random" = {}
"wasi:random/insecure-seed" = {}
"warden:host/log" = {}
"#;

/// 6. Fuel overhead on a CPU-heavy capability.
async fn fuel_overhead(s: &Sizes) {
    println!(
        "6. fuel metering overhead: invoice-reconcile on {} lines",
        s.reconcile_lines
    );
    let invoices: Vec<Value> = (0..s.reconcile_lines)
        .map(|i| json!({"id": format!("INV-{i}"), "customer": "c", "amount-cents": i as i64 * 7}))
        .collect();
    let ledger: Vec<Value> = (0..s.reconcile_lines)
        .rev()
        .map(|i| json!({"ref": format!("INV-{i}"), "customer": "c", "amount-cents": i as i64 * 7 + (i % 10 == 0) as i64}))
        .collect();
    let input = json!({"invoices": invoices, "ledger": ledger});
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/invoice-reconcile.toml"),
    )
    .expect("policy");
    let text = text
        .replace("fuel = 1_000_000_000", "fuel = 100_000_000_000")
        .replace("memory = \"64MiB\"", "memory = \"512MiB\"");
    for metering in [true, false] {
        let mut host = Host::new(HostConfig {
            sandbox: SandboxConfig {
                fuel_metering: metering,
                ..bench_config(8)
            },
            allow_unsigned: true,
            ..HostConfig::default()
        })
        .expect("host");
        let policy = Policy::parse(Path::new("invoice-reconcile.toml"), &text).expect("policy");
        let bytes = std::fs::read(guests().join("invoice_reconcile.wasm")).expect("guest");
        host.load(policy, &bytes, "invoice").expect("load");
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = host
                .invoke(Call::new("invoice-reconcile", "reconcile", input.clone()))
                .await;
            assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "   metering {}: median {:.2} ms   ({})",
            if metering { "on " } else { "off" },
            times[2].as_secs_f64() * 1e3,
            load()
        );
    }
}

/// Section 8, memory initialization: median time of one call of each example
/// component with copy-on-write memory images (the default) and with data
/// segments copied (`[engine] memory_init_cow = false`). The Python and
/// JavaScript components are the ones `cargo test --test e2e polyglot`
/// builds into target/polyglot (skipped when absent).
async fn memory_init(s: &Sizes) {
    let calls = if s.latency_iters < 1000 { 3 } else { 21 };
    println!(
        "8. memory initialization: one call of each component, median of {calls} (load, compile and the first call excluded)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let polyglot = root.join("target/polyglot");
    let cases: Vec<(&str, PathBuf, String, &str, Value)> = vec![
        (
            "echo (Rust test guest)",
            guests().join("echo.wasm"),
            ECHO_POLICY.to_string(),
            "echo",
            json!({"message": "hello"}),
        ),
        (
            "invoice-total (Python, componentize-py)",
            polyglot.join("invoice_total.wasm"),
            std::fs::read_to_string(root.join("examples/python/invoice-total/policy.toml"))
                .unwrap_or_default(),
            "total",
            json!({"invoice": {"id": "INV-7", "currency": "EUR", "lines": [
                {"sku": "A-1", "quantity": 3, "unit-cents": 1250}]}}),
        ),
        (
            "word-stats (JavaScript, componentize-js)",
            polyglot.join("word_stats.wasm"),
            std::fs::read_to_string(root.join("examples/javascript/word-stats/policy.toml"))
                .unwrap_or_default(),
            "analyze",
            json!({"doc": {"title": "Motto", "text": "Warden runs the capability; the capability obeys warden."}}),
        ),
    ];
    let smoke = s.latency_iters < 1000;
    for (name, file, policy_text, function, input) in cases {
        if smoke && function != "echo" {
            println!("   {name}: skipped in smoke mode");
            continue;
        }
        let Ok(bytes) = std::fs::read(&file) else {
            println!(
                "   {name}: skipped ({} not built: cargo test --test e2e polyglot)",
                file.display()
            );
            continue;
        };
        let mut row = Vec::new();
        for cow in [true, false] {
            let mut host = Host::new(HostConfig {
                sandbox: SandboxConfig {
                    memory_init_cow: cow,
                    ..bench_config(8)
                },
                allow_unsigned: true,
                cache_dir: Some(polyglot.join("cache")),
                ..HostConfig::default()
            })
            .expect("host");
            let policy = Policy::parse(&file.with_extension("toml"), &policy_text).expect("policy");
            let capability = policy.capability.name.clone();
            host.load(policy, &bytes, name).expect("load");
            let call = Call::new(&capability, function, input.clone());
            let first = host.invoke(call.clone()).await;
            assert_eq!(first.outcome, Outcome::Ok, "{name}: {:?}", first.error);
            let mut times = Vec::new();
            for _ in 0..calls {
                let t = Instant::now();
                host.invoke(call.clone()).await;
                times.push(t.elapsed());
            }
            times.sort();
            row.push(times[calls / 2]);
        }
        println!(
            "   {name:<42} copy-on-write {:>9}   copied {:>9}   ({})",
            us(row[0]),
            us(row[1]),
            load()
        );
    }
}

/// `WARDEN_BENCH_PROFILE=floor|warden|durable`: loop one path at c=1 for
/// `WARDEN_BENCH_PROFILE_SECS` (default 10) and exit, for a profiler:
/// `perf record -g target/release/deps/warden-<hash> --bench` with it set.
async fn profile_loop(which: &str) {
    let secs: u64 = std::env::var("WARDEN_BENCH_PROFILE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    match which {
        "floor" => {
            let (engine, pre) = floor_setup();
            while Instant::now() < end {
                floor_once(pre.clone(), engine.clone()).await;
                n += 1;
            }
        }
        "warden" | "durable" => {
            // WARDEN_BENCH_PROFILE_CONCURRENCY tasks (default 1).
            let c: usize = std::env::var("WARDEN_BENCH_PROFILE_CONCURRENCY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let dir = (which == "durable").then(|| scratch("profile"));
            let host = Arc::new(echo_host(dir));
            let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..c {
                let (host, count) = (host.clone(), count.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        invoke_echo(&host).await;
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            n = count.load(std::sync::atomic::Ordering::Relaxed);
            if let Ok(h) = Arc::try_unwrap(host) {
                let _ = h.shutdown().await;
            }
        }
        other => panic!("WARDEN_BENCH_PROFILE={other}: expected floor, warden or durable"),
    }
    println!(
        "profile {which}: {n} invocations in {secs} s = {:.1} µs each",
        secs as f64 * 1e6 / n as f64
    );
}

/// Section 10: determinism settings, recording, replay.
async fn evidence(s: &Sizes) {
    println!("10. evidence: determinism settings, recorded host calls, replay");
    // (a) Determinism settings (NaN canonicalisation, deterministic relaxed
    // SIMD) on vs off: in-process echo, interleaved so both see the same load.
    let host_with = |deterministic: bool| {
        let mut host = Host::new(HostConfig {
            sandbox: SandboxConfig {
                deterministic,
                ..bench_config(16)
            },
            allow_unsigned: true,
            ..HostConfig::default()
        })
        .expect("host");
        let policy = Policy::parse(Path::new("echo.toml"), ECHO_POLICY).expect("policy");
        let bytes = std::fs::read(guests().join("echo.wasm")).expect("echo.wasm");
        host.load(policy, &bytes, "echo.wasm").expect("load");
        host
    };
    let (on, off) = (host_with(true), host_with(false));
    let (mut on_lat, mut off_lat) = (Vec::new(), Vec::new());
    for _ in 0..s.latency_iters {
        let t = Instant::now();
        invoke_echo(&on).await;
        let t1 = Instant::now();
        invoke_echo(&off).await;
        on_lat.push(t1 - t);
        off_lat.push(t1.elapsed());
    }
    on_lat.sort();
    off_lat.sort();
    println!(
        "   determinism settings on : echo p50 {}  p99 {}",
        us(pct(&on_lat, 0.50)),
        us(pct(&on_lat, 0.99))
    );
    println!(
        "   determinism settings off: echo p50 {}  p99 {}   ({})",
        us(pct(&off_lat, 0.50)),
        us(pct(&off_lat, 0.99)),
        load()
    );

    // (b) fx-rate against its loopback double: without a data directory;
    // with the durable entry and the response recorded (payloads full);
    // and with the durable entry under `payloads = "hash-only"` (nothing
    // recorded). The last two share durability and data-dir layout, so
    // their ratio is the cost of recording the host-call results.
    match doubles::fx_rates(18080).await {
        Err(e) => println!("   fx-rate: port 18080 is busy ({e}); skipped"),
        Ok(_server) => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(root.join("policies/fx-rate.toml")).expect("policy");
            let hash_only_text = text.replacen(
                "[capability]\n",
                "[capability]\npayloads = \"hash-only\"\n",
                1,
            );
            assert_ne!(
                text, hash_only_text,
                "fx-rate.toml has a [capability] table"
            );
            let bytes = std::fs::read(guests().join("fx_rate.wasm")).expect("fx_rate.wasm");
            let fx_host = |dir: Option<PathBuf>, text: &str| {
                let mut host = Host::new(HostConfig {
                    sandbox: bench_config(16),
                    allow_unsigned: true,
                    data_dir: dir,
                    ..HostConfig::default()
                })
                .expect("host");
                let policy = Policy::parse(Path::new("fx-rate.toml"), text).expect("policy");
                host.load(policy, &bytes, "fx_rate.wasm").expect("load");
                host
            };
            let plain = fx_host(None, &text);
            let recorded = fx_host(Some(scratch("fx-record")), &text);
            let hash_only = fx_host(Some(scratch("fx-hash-only")), &hash_only_text);
            async fn one(h: &Host) {
                let call = Call::new("fx-rate", "rate", json!({"base": "EUR", "quote": "USD"}));
                let r = h.invoke(call).await;
                assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
            }
            let (mut p, mut a, mut o) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..s.latency_iters.div_ceil(10).max(5) {
                // Alternate which audited host goes first, so neither
                // always follows the other's fsync.
                let t = Instant::now();
                one(&plain).await;
                let t1 = Instant::now();
                let (first, second) = if i % 2 == 0 {
                    (&recorded, &hash_only)
                } else {
                    (&hash_only, &recorded)
                };
                one(first).await;
                let t2 = Instant::now();
                one(second).await;
                let t3 = Instant::now();
                p.push(t1 - t);
                let (d_first, d_second) = (t2 - t1, t3 - t2);
                if i % 2 == 0 {
                    a.push(d_first);
                    o.push(d_second);
                } else {
                    o.push(d_first);
                    a.push(d_second);
                }
            }
            p.sort();
            a.sort();
            o.sort();
            println!(
                "   fx-rate vs loopback double: no data dir p50 {}   durable audit, recorded p50 {}   durable audit, hash-only p50 {}   ({})",
                us(pct(&p, 0.50)),
                us(pct(&a, 0.50)),
                us(pct(&o, 0.50)),
                load()
            );
            let ratio =
                pct(&a, 0.50).as_secs_f64() / pct(&o, 0.50).as_secs_f64().max(f64::MIN_POSITIVE);
            println!(
                "   recording cost: recorded / hash-only p50 = {ratio:.3} ({:+.1}%; target <= +10%)",
                (ratio - 1.0) * 100.0
            );
            let _ = plain.shutdown().await;
            let _ = recorded.shutdown().await;
            let _ = hash_only.shutdown().await;
        }
    }

    // (c) Replay rate over recorded echo entries.
    let n = if s.latency_iters < 1000 { 200 } else { 100_000 };
    let dir = scratch("replay-rate");
    let host = Arc::new(echo_host(Some(dir.clone())));
    let h = host.clone();
    let _ = throughput(move || invoke_arc(h.clone()), 64, n).await;
    match Arc::try_unwrap(host) {
        Ok(host) => host.shutdown().await.expect("shutdown"),
        Err(_) => panic!("host still shared"),
    }
    let evidence = warden_host::replay::DataDir {
        reader: warden_host::store::AuditReader::open(&dir.join("warden.db")).expect("db"),
        artifacts: warden_host::store::ArtifactStore::in_data_dir(&dir),
    };
    let mut replayer = warden_host::replay::Replayer::new(bench_config(16)).expect("replayer");
    let mut summary = warden_host::replay::Summary::default();
    let t = Instant::now();
    let mut next = 1;
    loop {
        let page = evidence
            .reader
            .entries(next, 1000, &warden_host::store::EntryFilter::default())
            .expect("entries");
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for e in &page {
            summary.add(&replayer.replay(e, &evidence).await);
        }
        next = last + 1;
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(summary.ok() && summary.matched as usize >= n, "{summary}");
    println!(
        "   replay: {} recorded echo entries in {:.2} s = {:.0} entries/s, all matched   ({})",
        summary.entries,
        secs,
        summary.entries as f64 / secs,
        load()
    );
}

fn main() {
    if let Ok(answer) = std::env::var(JSON_PEER) {
        json_peer(&answer);
        return;
    }
    let smoke = !std::env::args().any(|a| a == "--bench");
    if let Ok(which) = std::env::var("WARDEN_BENCH_PROFILE") {
        // WARDEN_BENCH_MEMORY_INIT_COW=false profiles the copying engine.
        let cow = std::env::var("WARDEN_BENCH_MEMORY_INIT_COW").map_or(true, |v| v != "false");
        MEMORY_INIT_COW.store(cow, std::sync::atomic::Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(profile_loop(&which));
        return;
    }
    let s = sizes(smoke);
    println!(
        "warden benchmarks ({}; {} cores; {})",
        if smoke {
            "SMOKE MODE: sizes too small for figures"
        } else {
            "full"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if enabled(1) || enabled(2) {
            // Both engine settings for memory initialization (the floor
            // always uses warden's): the default, then the one for small
            // components ([engine] memory_init_cow = false).
            for cow in [true, false] {
                MEMORY_INIT_COW.store(cow, std::sync::atomic::Ordering::Relaxed);
                println!("-- engine: memory_init_cow = {cow}");
                floor_and_in_process(&s).await;
            }
            MEMORY_INIT_COW.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if enabled(3) {
            audit(&s).await;
        }
    });
    if enabled(4) {
        startup();
    }
    if enabled(6) {
        rt.block_on(fuel_overhead(&s));
    }
    if enabled(8) {
        rt.block_on(memory_init(&s));
    }
    if enabled(9) {
        rt.block_on(transparency(&s));
    }
    if enabled(10) {
        rt.block_on(evidence(&s));
    }
    if enabled(11) {
        rt.block_on(mcp_stdio(&s));
    }
    if enabled(12) {
        rt.block_on(workflow::workflow(&s));
    }
}

/// Where the audit writer thread's time went during a run of `secs`:
/// building batches (of which the Merkle tree) and committing them.
fn writer_breakdown(stats: &warden_host::store::AppendStats, secs: f64) {
    let per = |n: u64| n as f64 / 1e3 / stats.entries.max(1) as f64;
    let busy = (stats.write_nanos + stats.commit_nanos) as f64 / 1e9;
    println!(
        "   writer thread per entry: build {:.2} µs (of which the tree {:.2} µs), commit {:.2} µs; \
         busy {:.0}% of the run; without the tree's share the writer would need {:.2} s instead of {:.2} s",
        per(stats.write_nanos),
        per(stats.tree_nanos),
        per(stats.commit_nanos),
        100.0 * busy / secs,
        busy - stats.tree_nanos as f64 / 1e9,
        busy
    );
}

/// Section 9, the transparency log: the tree's cost on append, its
/// recomputation in `audit verify`, and proof latency on a large log.
async fn transparency(s: &Sizes) {
    use warden_host::audit::merkle::{leaf_hash, verify_inclusion};
    use warden_host::store::AuditReader;
    println!("9. transparency log (RFC 6962 tree maintained on append, C2SP checkpoint notes)");
    let dir = scratch("tlog");
    let db = dir.join("warden.db");
    let key = keys::generate();
    let public = key.verifying_key();
    let log = AuditLog::open(&db, key, CheckpointPolicy::default()).expect("open");
    let n = s.verify_entries;
    let c = 64usize;
    let per = n.div_ceil(c);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..c {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                log.append(sample_entry((k * per + i) as u64), Payloads::default())
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = t.elapsed().as_secs_f64();
    let stats = log.stats();
    println!(
        "   append c={c} with the tree: {:.0} entries/s ({} entries in {} commits)   ({})",
        (per * c) as f64 / secs,
        per * c,
        stats.commits,
        load()
    );
    writer_breakdown(&stats, secs);
    log.close().await.expect("close");
    let reader = AuditReader::open(&db).expect("reader");
    let t = Instant::now();
    let report = reader.verify_tree(Some(&public), &[]).expect("verify tree");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(report.problem, None);
    println!(
        "   audit verify, tree alone: {} leaves + {} notes in {:.2} s = {:.0} entries/s   ({})",
        report.leaves,
        report.notes_checked,
        secs,
        report.leaves as f64 / secs,
        load()
    );
    let t = Instant::now();
    let chain = warden_host::store::verify_db(&db, Some(&public)).expect("verify");
    let chain_secs = t.elapsed().as_secs_f64();
    println!(
        "   audit verify, chain alone: {} entries in {:.2} s = {:.0} entries/s   ({})",
        chain.entries_checked,
        chain_secs,
        chain.entries_checked as f64 / chain_secs,
        load()
    );
    // What `warden audit verify` runs: both in one pass over the rows.
    let t = Instant::now();
    let full = reader
        .verify_all(Some(&public), None, &[])
        .expect("verify all");
    let one_secs = t.elapsed().as_secs_f64();
    assert!(full.chain.passed(false), "{:?}", full.chain);
    assert_eq!(full.tree.as_ref().and_then(|t| t.problem.clone()), None);
    println!(
        "   audit verify (chain + tree, one pass): {} entries + {} notes in {:.2} s = {:.0} entries/s   ({})",
        full.chain.entries_checked,
        full.tree.as_ref().map_or(0, |t| t.notes_checked),
        one_secs,
        full.chain.entries_checked as f64 / one_secs,
        load()
    );
    let size = report.leaves;
    let samples = if size < 1000 { 50 } else { 2000 };
    let (mut prove, mut path_only, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        let index = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) % size;
        let t = Instant::now();
        let p = reader.inclusion_proof(index, None).expect("prove");
        prove.push(t.elapsed());
        let head = warden_host::audit::note::TreeHead::parse_body(
            &warden_host::audit::note::SignedNote::parse(p.checkpoint.as_bytes())
                .expect("note")
                .text,
        )
        .expect("head");
        let t = Instant::now();
        verify_inclusion(
            &leaf_hash(&p.entry_hash),
            p.index,
            head.size,
            &p.hashes,
            &head.root,
        )
        .expect("verifies");
        path_only.push(t.elapsed());
        let t = Instant::now();
        p.verify(&public, None).expect("verifies");
        full.push(t.elapsed());
    }
    for v in [&mut prove, &mut path_only, &mut full] {
        v.sort();
    }
    println!(
        "   inclusion proof at size {size}: produce p50 {} p99 {}; verify path p50 {} p99 {}; \
         verify note signature + path p50 {} p99 {}   ({})",
        us(pct(&prove, 0.5)),
        us(pct(&prove, 0.99)),
        us(pct(&path_only, 0.5)),
        us(pct(&path_only, 0.99)),
        us(pct(&full, 0.5)),
        us(pct(&full, 0.99)),
        load()
    );
}

/// The `warden` binary of this build's profile (built on first use, as the
/// end-to-end tests do): `warden mcp` runs as a child process in section 11.
fn warden_bin() -> PathBuf {
    // A given binary (to compare two builds with the same harness).
    if let Some(bin) = std::env::var_os("WARDEN_BENCH_WARDEN_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "-q", "-p", "warden-host", "--bin", "warden"];
    if !cfg!(debug_assertions) {
        args.push("--release");
    }
    let status = std::process::Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&args)
        .status()
        .expect("running cargo build for the warden binary");
    assert!(status.success(), "building the warden binary failed");
    // The bench runs from target/<profile>/deps; the binary is in target/<profile>.
    let exe = std::env::current_exe().expect("bench binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("warden")
}

/// One deployment for section 11: signed echo routed as `greet`, exposed
/// as the MCP tool `greet`, the principal `agent` acting over stdio. Two
/// config files share it, each with its own data directory.
fn mcp_deployment(dir: &Path) -> (PathBuf, PathBuf) {
    let key = keys::generate();
    for sub in ["components", "policies"] {
        std::fs::create_dir_all(dir.join(sub)).expect("deployment dir");
    }
    let bytes = std::fs::read(guests().join("echo.wasm")).expect("echo.wasm");
    std::fs::write(
        dir.join("components/echo.wasm"),
        signing::sign(&bytes, &key).expect("sign"),
    )
    .expect("component");
    std::fs::write(
        dir.join("trust.toml"),
        format!(
            "[[key]]\nname = \"bench\"\npublic_key = \"{}\"\ncapabilities = [\"echo\"]\n",
            keys::public_key_text(&key.verifying_key())
        ),
    )
    .expect("trust");
    std::fs::write(dir.join("policies/echo.toml"), ECHO_POLICY).expect("policy");
    std::fs::write(
        dir.join("routes.toml"),
        "[[route]]\nid = \"greet\"\nmatch = { kind = \"greet\" }\ncapability = \"echo\"\nfunction = \"echo\"\n",
    )
    .expect("routes");
    let config = |data: &str| {
        let path = dir.join(format!("{data}.toml"));
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\ntrust = \"trust.toml\"\ndata_dir = \"{data}\"\n\n\
                 [[principal]]\nname = \"agent\"\ntoken_sha256 = \"{}\"\nroles = [\"submit\"]\n\n\
                 [mcp]\nstdio_principal = \"agent\"\n\n\
                 [[mcp.tool]]\nname = \"greet\"\nkind = \"greet\"\ndescription = \"Echo a message back.\"\n",
                warden_host::server::auth::token_hash("bench-token")
            ),
        )
        .expect("warden.toml");
        path
    };
    (config("in-process"), config("stdio"))
}

/// The request line of one `tools/call` of `greet`.
fn tools_call_line(id: usize) -> String {
    let mut line = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "greet", "arguments": {"message": "hi"}},
    })
    .to_string();
    line.push('\n');
    line
}

/// Set (to an answer line) in the environment of this bench binary run as
/// section 11's JSON peer ([`json_peer`]).
const JSON_PEER: &str = "WARDEN_BENCH_JSON_PEER";

/// Section 11's JSON peer: one JSON round trip per line, with no warden in
/// it. Each request line on stdin is parsed (a `serde_json::Value`, as a
/// generic JSON-RPC peer reads it), and answered with `answer` — a real
/// `tools/call` answer of `warden mcp`, parsed once — its `id` set to the
/// request's and serialized again, as one line on stdout. Blocking reads
/// and writes, like `cat`.
fn json_peer(answer: &str) {
    use std::io::{BufRead, Write};
    let mut answer: Value = serde_json::from_str(answer).expect("the peer's answer is JSON");
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    let mut reply = Vec::with_capacity(2048);
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line).expect("peer read") == 0 {
            return;
        }
        let request: Value = serde_json::from_str(&line).expect("the request line is JSON");
        answer["id"] = request["id"].clone();
        reply.clear();
        serde_json::to_writer(&mut reply, &answer).expect("the answer serializes");
        reply.push(b'\n');
        out.write_all(&reply).expect("peer write");
        out.flush().expect("peer flush");
    }
}

/// Section 11, MCP over stdio: `tools/call` of echo through a `warden mcp` child
/// process, against what it wraps — the in-process path
/// (`Daemon::submit_via`, durable, as the stdio handler calls it) plus one
/// JSON round trip: the request line to a peer process that parses it and
/// answers with a line the size and shape of `warden mcp`'s answer
/// ([`json_peer`]). The pipe alone (the line through `cat`, no JSON work)
/// is measured too. Latency p50/p99 at c=1, the four interleaved call by
/// call (so they see the same load), `rounds` times; medians.
async fn mcp_stdio(s: &Sizes) {
    use std::io::{BufRead, BufReader, Write};
    use warden_host::server::{Daemon, DaemonConfig, SubmitBody, Transport};
    println!("11. MCP over stdio: tools/call of echo vs the in-process path + one JSON round trip");
    let dir = scratch("mcp-stdio");
    let (in_process, stdio) = mcp_deployment(&dir);
    let n = (s.latency_iters / 4).max(20);
    let rounds = 3;
    let warden = warden_bin();

    let config = DaemonConfig::load(&in_process).expect("in-process config");
    let principal =
        warden_host::server::mcp::stdio::stdio_principal(&config).expect("stdio principal");
    let daemon = Daemon::start(config).expect("in-process daemon");
    let stderr = std::fs::File::create(dir.join("mcp.log")).expect("log file");
    let mut child = std::process::Command::new(&warden)
        .args(["mcp", "--config"])
        .arg(&stdio)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("warden mcp");
    let mut to_mcp = child.stdin.take().expect("stdin");
    let mut from_mcp = BufReader::new(child.stdout.take().expect("stdout"));
    // One request line out, one answer line back.
    fn exchange(to: &mut dyn Write, from: &mut dyn BufRead, request: &str) -> String {
        to.write_all(request.as_bytes()).expect("write");
        to.flush().expect("flush");
        let mut line = String::new();
        from.read_line(&mut line).expect("read");
        line
    }
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}});
    let answer = exchange(&mut to_mcp, &mut from_mcp, &format!("{init}\n"));
    assert!(answer.contains("serverInfo"), "initialize: {answer}");
    to_mcp
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .expect("initialized");
    let mut cat = std::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cat");
    let mut to_cat = cat.stdin.take().expect("stdin");
    let mut from_cat = BufReader::new(cat.stdout.take().expect("stdout"));
    // One real answer of `warden mcp` for the JSON peer to send back.
    let answer = exchange(&mut to_mcp, &mut from_mcp, &tools_call_line(1));
    assert!(answer.contains("structuredContent"), "tools/call: {answer}");
    let mut peer = std::process::Command::new(std::env::current_exe().expect("bench binary"))
        .env(JSON_PEER, answer.trim_end())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the JSON peer");
    let mut to_peer = peer.stdin.take().expect("stdin");
    let mut from_peer = BufReader::new(peer.stdout.take().expect("stdout"));

    // The request line for call `id` through `cat` and back: its time.
    let mut pipe_round_trip = |id: usize| {
        let request = tools_call_line(id);
        let t = Instant::now();
        let echoed = exchange(&mut to_cat, &mut from_cat, &request);
        let took = t.elapsed();
        assert_eq!(echoed, request);
        took
    };
    // The request line for call `id` to the JSON peer and its answer back.
    let mut json_round_trip = |id: usize| {
        let request = tools_call_line(id);
        let t = Instant::now();
        let answer = exchange(&mut to_peer, &mut from_peer, &request);
        let took = t.elapsed();
        let answered: Value = serde_json::from_str(&answer).expect("the JSON peer's answer");
        assert_eq!(
            answered["id"],
            json!(id),
            "the JSON peer's answer: {answer}"
        );
        took
    };
    let (mut inproc, mut as_http, mut pipe, mut mcp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut idle_pipe, mut json) = (Vec::new(), Vec::new());
    let mut id = 1usize;
    for _ in 0..rounds {
        // Interleaved, so that all four see the same load (the disk's
        // commit time drifts by tens of µs over a run): one in-process
        // call, one pipe round trip through `cat`, one JSON round trip
        // through the JSON peer, one tools/call through `warden mcp`. The in-process call is labelled as MCP (with a client) and
        // as HTTP in turn: one in-process request per tools/call, so that
        // each side's call comes after one request of the other process
        // (with two, the second in-process request measured ~70 µs faster
        // than the first: it found the caches the first had warmed, while
        // every tools/call came after two). The in-process calls run on a
        // runtime worker, as the stdio handler's calls do.
        let (mut v, mut w, mut p, mut j, mut m) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for i in 0..n {
            let (transport, into) = if i % 2 == 0 {
                (
                    Transport {
                        via: "mcp",
                        client: Some("bench/1".into()),
                    },
                    &mut v,
                )
            } else {
                (Transport::http(), &mut w)
            };
            let d = daemon.clone();
            let who = principal.clone();
            let took = tokio::spawn(async move {
                let body: SubmitBody =
                    serde_json::from_value(json!({"kind": "greet", "input": {"message": "hi"}}))
                        .expect("body");
                let t = Instant::now();
                let answer = d.submit_via(who, body, transport).await.expect("submit");
                let took = t.elapsed();
                assert_eq!(answer.outcome, Outcome::Ok, "in-process answer");
                took
            })
            .await
            .expect("in-process task");
            into.push(took);
            id += 1;
            p.push(pipe_round_trip(id));
            id += 1;
            j.push(json_round_trip(id));
            id += 1;
            let request = tools_call_line(id);
            let t = Instant::now();
            let answer = exchange(&mut to_mcp, &mut from_mcp, &request);
            m.push(t.elapsed());
            assert!(
                answer.contains("structuredContent") && !answer.contains("\"isError\":true"),
                "tools/call: {answer}"
            );
        }
        for (mut v, into) in [
            (v, &mut inproc),
            (w, &mut as_http),
            (p, &mut pipe),
            (j, &mut json),
            (m, &mut mcp),
        ] {
            v.sort();
            into.push(v);
        }
        // The pipe round trip after the pipe's two ends have idled as long
        // as a tools/call keeps the client waiting (the in-process p50 just
        // measured): what the transport itself costs once the reader has
        // gone to sleep, as a stdio client's has when the answer comes.
        let idle = inproc.last().map_or(Duration::ZERO, |r| pct(r, 0.5));
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            id += 1;
            std::thread::sleep(idle);
            v.push(pipe_round_trip(id));
        }
        v.sort();
        idle_pipe.push(v);
    }
    drop(to_mcp);
    drop(to_cat);
    drop(to_peer);
    let _ = cat.wait();
    let peer_status = peer.wait().expect("JSON peer exit");
    assert!(
        peer_status.success(),
        "the JSON peer exited with {peer_status}"
    );
    let status = child.wait().expect("warden mcp exit");
    assert!(status.success(), "warden mcp exited with {status}");
    daemon.drain_and_close(Duration::from_secs(10)).await;
    let median = |runs: &[Vec<Duration>], p: f64| {
        let mut v: Vec<Duration> = runs.iter().map(|r| pct(r, p)).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (a, j, c) = (median(&inproc, 0.5), median(&json, 0.5), median(&mcp, 0.5));
    println!(
        "   c=1 p50: in-process {} + JSON round trip {} = {}; warden mcp tools/call {} (x{:.2}); \
         p99 {} / {} / {}   ({n} calls x {rounds} rounds; {})",
        us(a),
        us(j),
        us(a + j),
        us(c),
        c.as_secs_f64() / (a + j).as_secs_f64(),
        us(median(&inproc, 0.99)),
        us(median(&json, 0.99)),
        us(median(&mcp, 0.99)),
        load()
    );
    let b = median(&pipe, 0.5);
    println!(
        "   the pipe alone (the line through `cat`, no JSON work): p50 {} p99 {}; \
         in-process + that = {}; warden mcp tools/call (x{:.2})",
        us(b),
        us(median(&pipe, 0.99)),
        us(a + b),
        c.as_secs_f64() / (a + b).as_secs_f64(),
    );
    let d = median(&idle_pipe, 0.5);
    println!(
        "   the pipe alone after it idled as long as a call (in-process p50): p50 {}; \
         in-process + that = {}; warden mcp tools/call (x{:.2})",
        us(d),
        us(a + d),
        c.as_secs_f64() / (a + d).as_secs_f64(),
    );
    println!(
        "   in-process, the same calls labelled as HTTP (alternating): p50 {} p99 {}",
        us(median(&as_http, 0.5)),
        us(median(&as_http, 0.99)),
    );
}
