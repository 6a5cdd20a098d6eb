//! Capabilities written in Python (componentize-py) and JavaScript
//! (componentize-js), built from `examples/python/invoice-total` and
//! `examples/javascript/word-stats` by their own `build.sh` (pinned tools
//! installed into a venv under `target/polyglot/` and a local
//! `node_modules`), signed, verified, and run through the host.
//!
//! A missing toolchain (python3, venv, pip, node, npm, or a registry that
//! cannot be reached) fails these tests with the build script's message: they
//! never skip. Builds are skipped by the scripts when their inputs are
//! unchanged (content-hash stamp in `target/polyglot/`).
//!
//! `cargo test --test e2e polyglot -- --nocapture` prints sizes, imports and
//! cold/warm load times.

use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;
use warden_host::cache::CacheOutcome;
use warden_host::policy::Policy;
use warden_host::sandbox::LinkError;
use warden_host::{LoadError, Outcome};

/// One example capability in another language.
struct Example {
    /// Capability name (policy `[capability] name`).
    name: &'static str,
    /// Human name of the toolchain, for messages.
    language: &'static str,
    /// Example directory, relative to the repository root.
    dir: &'static str,
    /// Component file name written by `build.sh`.
    file: &'static str,
}

const PYTHON: Example = Example {
    name: "invoice-total",
    language: "Python (componentize-py)",
    dir: "examples/python/invoice-total",
    file: "invoice_total.wasm",
};

const JAVASCRIPT: Example = Example {
    name: "word-stats",
    language: "JavaScript (componentize-js)",
    dir: "examples/javascript/word-stats",
    file: "word_stats.wasm",
};

impl Example {
    fn policy_path(&self) -> PathBuf {
        repo().join(self.dir).join("policy.toml")
    }

    fn policy_text(&self) -> String {
        std::fs::read_to_string(self.policy_path()).expect("example policy is readable")
    }

    /// The example's policy, with `edit` applied to its text.
    fn policy_with(&self, edit: impl FnOnce(String) -> String) -> Policy {
        let text = edit(self.policy_text());
        Policy::parse(&self.policy_path(), &text).unwrap_or_else(|e| {
            panic!(
                "edited policy of {} is invalid:\n{e}\n---\n{text}",
                self.name
            )
        })
    }

    /// The signed component bytes (built, signed and verified once per test run).
    fn bytes(&self) -> Vec<u8> {
        let path = built().join(self.file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// Builds both examples (once per test process), signs them with a fresh
/// key and checks `warden verify --trust`. Returns the directory holding the
/// signed components.
fn built() -> &'static Path {
    static SIGNED: OnceLock<PathBuf> = OnceLock::new();
    SIGNED.get_or_init(|| {
        for ex in [&PYTHON, &JAVASCRIPT] {
            let copy = repo().join(ex.dir).join("wit/deps/warden-host/warden.wit");
            assert_eq!(
                std::fs::read_to_string(&copy).expect("vendored warden.wit"),
                std::fs::read_to_string(repo().join("wit/warden.wit")).expect("wit/warden.wit"),
                "{} is out of date: copy wit/warden.wit over it",
                copy.display()
            );
        }
        let out = repo().join("target/polyglot");
        let started = Instant::now();
        // The two toolchains are independent: build them side by side.
        std::thread::scope(|s| {
            let py = s.spawn(|| run_build(&PYTHON, &out));
            let js = s.spawn(|| run_build(&JAVASCRIPT, &out));
            py.join().expect("python build thread");
            js.join().expect("javascript build thread");
        });
        eprintln!("polyglot: builds took {:.1?}", started.elapsed());

        let dir = scratch("polyglot-signed");
        let keys = dir.join("keys");
        let keys_s = keys.to_str().expect("utf-8 path");
        expect_ok(&["key", "generate", "--name", "polyglot", "--out", keys_s]);
        let public = std::fs::read_to_string(keys.join("polyglot.pub")).expect("public key");
        let trust = dir.join("trust.toml");
        std::fs::write(
            &trust,
            format!(
                // `<name>-starved` is the fuel-starved copy loaded by host_with.
                "[[key]]\nname = \"polyglot\"\npublic_key = \"{}\"\ncapabilities = [\"{}\", \"{}-starved\", \"{}\"]\n",
                public.trim(),
                PYTHON.name,
                PYTHON.name,
                JAVASCRIPT.name
            ),
        )
        .expect("trust file");
        for ex in [&PYTHON, &JAVASCRIPT] {
            let unsigned = out.join(ex.file);
            let signed = dir.join(ex.file);
            let key = keys.join("polyglot.key");
            expect_ok(&[
                "sign",
                "--key",
                key.to_str().expect("utf-8"),
                unsigned.to_str().expect("utf-8"),
                "-o",
                signed.to_str().expect("utf-8"),
            ]);
            let (_, verified, _) = expect_ok(&[
                "verify",
                signed.to_str().expect("utf-8"),
                "--trust",
                trust.to_str().expect("utf-8"),
                "--capability",
                ex.name,
            ]);
            eprintln!("polyglot: {} signed and verified:\n{verified}", ex.file);
        }
        dir
    })
}

/// Runs `<dir>/build.sh <out>`; panics with its output (naming what is
/// missing) if it fails.
fn run_build(ex: &Example, out: &Path) {
    let script = repo().join(ex.dir).join("build.sh");
    let started = Instant::now();
    let result = Command::new("bash").arg(&script).arg(out).output();
    let output = match result {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot build the {} capability: running `bash {}` failed: {e} (is bash installed?)",
            ex.language,
            script.display()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cannot build the {} capability: {} exited with {}. This test never skips: \
         install what the message below names.\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        ex.language,
        script.display(),
        output.status
    );
    eprintln!(
        "polyglot: {} in {:.1?}: {}",
        ex.language,
        started.elapsed(),
        stdout.trim()
    );
}

fn expect_ok(args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = warden(args);
    assert_eq!(code, 0, "warden {args:?} failed:\n{out}\n{err}");
    (code, out, err)
}

/// Loads `ex` under its example policy and, with `starved`, also as
/// `<name>-starved` under a copy of it with a tiny fuel budget.
///
/// Compiling these components costs ~10-20 s of CPU each, so the test hosts
/// share one persistent precompiled cache under `target/polyglot/cache`:
/// the same component compiles once per build, later loads are cache hits.
fn host_with(ex: &Example, starved: bool) -> warden_host::Host {
    let mut h = cached_host();
    let bytes = ex.bytes();
    let started = Instant::now();
    let cap = h
        .load(
            Policy::load(&ex.policy_path()).expect("example policy is valid"),
            &bytes,
            ex.file,
        )
        .unwrap_or_else(|e| panic!("loading {}: {e}", ex.name));
    eprintln!(
        "polyglot: {} {} bytes, loaded (compiled) in {:.1?}; imports: {}",
        ex.name,
        cap.size,
        started.elapsed(),
        cap.shape
            .imports
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !starved {
        return h;
    }
    let starved = ex.policy_with(|text| {
        text.replace(
            &format!("name = \"{}\"", ex.name),
            &format!("name = \"{}-starved\"", ex.name),
        )
        .lines()
        .map(|l| {
            if l.starts_with("fuel") {
                "fuel = 10_000"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
    });
    h.load(starved, &bytes, ex.file)
        .unwrap_or_else(|e| panic!("loading {}-starved: {e}", ex.name));
    h
}

fn logs(r: &warden_host::InvocationRecord) -> Value {
    serde_json::to_value(&r.logs).expect("log lines serialize")
}

#[tokio::test]
async fn python_capability_returns_typed_records_logs_and_errors() {
    let h = host_with(&PYTHON, true);
    let r = call(
        &h,
        "invoice-total",
        "total",
        json!({"invoice": {"id": "INV-7", "currency": "EUR", "lines": [
            {"sku": "A-1", "quantity": 3, "unit-cents": 1250},
            {"sku": "B-2", "quantity": 1, "unit-cents": 9900, "discount-percent": 10},
        ]}}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"ok": {
            "id": "INV-7",
            "currency": "EUR",
            "lines": [{"sku": "A-1", "cents": 3750}, {"sku": "B-2", "cents": 8910}],
            "total-cents": 12660,
            "largest": {"sku": "B-2", "cents": 8910},
        }}))
    );
    assert_eq!(
        logs(&r),
        json!([
            {"level": "info", "message": "totalling INV-7: 2 lines"},
            {"level": "debug", "message": "invoice totalled",
             "fields": [["invoice", "INV-7"], ["total-cents", "12660"]]},
        ])
    );
    assert!(
        r.replayable && r.stdout.is_empty() && r.stderr.is_empty(),
        "{r:?}"
    );
    eprintln!("polyglot: invoice-total usage {:?}", r.usage);

    // `none` outputs: an empty invoice has no largest line.
    let r = call(
        &h,
        "invoice-total",
        "total",
        json!({"invoice": {"id": "INV-0", "currency": "USD", "lines": []}}),
    )
    .await;
    assert_eq!(
        r.output,
        Some(
            json!({"ok": {"id": "INV-0", "currency": "USD", "lines": [], "total-cents": 0, "largest": null}})
        ),
        "{r:?}"
    );

    // `raise Err(...)` is the guest's own error: capability_error with the payload.
    let r = call(
        &h,
        "invoice-total",
        "total",
        json!({"invoice": {"id": "INV-8", "currency": "EUR", "lines": [
            {"sku": "A-1", "quantity": 1, "unit-cents": 100},
            {"sku": "B-2", "quantity": 1, "unit-cents": -5},
        ]}}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"err": {"line": 1, "reason": "negative unit price for B-2"}}))
    );

    // A typing mistake in the request never reaches Python.
    let r = call(
        &h,
        "invoice-total",
        "total",
        json!({"invoice": {"id": "INV-9", "currency": "EUR", "lines": [{"sku": "A", "quantity": -1, "unit-cents": 1}]}}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::InvalidInput, "{r:?}");

    // The same component under a policy with a tiny fuel budget.
    let r = call(
        &h,
        "invoice-total-starved",
        "total",
        json!({"invoice": {"id": "INV-7", "currency": "EUR", "lines": []}}),
    )
    .await;
    assert_eq!(r.outcome.as_string(), "budget_exhausted:fuel", "{r:?}");
}

#[tokio::test]
async fn javascript_capability_returns_typed_records_logs_and_errors() {
    let h = host_with(&JAVASCRIPT, false);
    let r = call(
        &h,
        "word-stats",
        "analyze",
        json!({"doc": {"title": "Motto", "text": "Warden runs the capability; the capability obeys warden."}}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"ok": {
            "title": "Motto",
            "words": 8,
            "top": [
                {"word": "capability", "count": 2},
                {"word": "the", "count": 2},
                {"word": "warden", "count": 2},
            ],
            "longest": "capability",
        }}))
    );
    assert_eq!(
        logs(&r),
        json!([
            {"level": "info", "message": "analyzing Motto"},
            {"level": "debug", "message": "document analyzed",
             "fields": [["title", "Motto"], ["words", "8"]]},
        ])
    );
    assert!(
        r.replayable && r.stdout.is_empty() && r.stderr.is_empty(),
        "{r:?}"
    );
    eprintln!("polyglot: word-stats usage {:?}", r.usage);

    // `option<list<string>>` and `option<u32>` inputs; `none` output.
    let r = call(
        &h,
        "word-stats",
        "analyze",
        json!({"doc": {"title": "Stop", "text": "and AND and", "stop-words": ["And"], "top": 1}}),
    )
    .await;
    assert_eq!(
        r.output,
        Some(json!({"ok": {"title": "Stop", "words": 0, "top": [], "longest": null}})),
        "{r:?}"
    );

    // `throw` in a `result` export is the guest's own error.
    let r = call(
        &h,
        "word-stats",
        "analyze",
        json!({"doc": {"title": " ", "text": "x"}}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert_eq!(r.output, Some(json!({"err": "the document has no title"})));
    assert_eq!(
        logs(&r),
        json!([{"level": "warn", "message": "rejected a document without a title"}])
    );
}

/// Loads `ex` under its policy minus the `[imports]` line starting with
/// `grant`; returns the refused import names.
fn refused_without(ex: &Example, grant: &str) -> Vec<String> {
    let policy = ex.policy_with(|text| {
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(grant)).collect();
        assert_eq!(
            kept.len() + 1,
            text.lines().count(),
            "{grant} is granted once"
        );
        kept.join("\n")
    });
    match cached_host().load(policy, &ex.bytes(), ex.file) {
        Ok(_) => panic!("{} must be refused without {grant}", ex.name),
        Err(LoadError::Link {
            capability,
            source: source @ LinkError::Ungranted { .. },
        }) => {
            assert_eq!(capability, ex.name);
            let message = source.to_string();
            assert!(message.contains("policy.toml"), "{message}");
            let LinkError::Ungranted { imports, .. } = source else {
                unreachable!()
            };
            eprintln!("polyglot: {} refused: {message}", ex.name);
            imports
        }
        Err(e) => panic!("{}: expected an ungranted import, got {e:?}", ex.name),
    }
}

#[test]
fn an_ungranted_import_of_the_language_runtime_is_refused_at_load() {
    // StarlingMonkey (componentize-js) writes console.log to wasi:cli/stdout.
    let refused = refused_without(&JAVASCRIPT, "\"wasi:cli/stdout\"");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("wasi:cli/stdout@0.2."),
        "{refused:?}"
    );
}

/// A host trusting the test's signing key, whose precompiled cache persists
/// across test runs.
fn cached_host() -> warden_host::Host {
    trusting_host(repo().join("target/polyglot/cache"))
}

fn trusting_host(cache_dir: PathBuf) -> warden_host::Host {
    let trust =
        warden_host::signing::TrustStore::load(&built().join("trust.toml")).expect("trust file");
    warden_host::Host::new(warden_host::HostConfig {
        sandbox: small_pool(),
        trust: Some(trust),
        cache_dir: Some(cache_dir),
        ..warden_host::HostConfig::default()
    })
    .expect("host")
}

#[test]
fn large_components_load_from_the_compiled_cache_without_recompiling() {
    let dir = scratch("polyglot-cache");
    for ex in [&PYTHON, &JAVASCRIPT] {
        let bytes = ex.bytes();
        let policy = || Policy::load(&ex.policy_path()).expect("example policy is valid");
        let host = || trusting_host(dir.clone());
        let mut cold = host();
        let started = Instant::now();
        let cap = cold.load(policy(), &bytes, ex.file).expect("cold load");
        let cold_time = started.elapsed();
        assert_eq!(cap.compiled, CacheOutcome::Miss);
        assert_eq!(cold.cache().map(|c| (c.compiles(), c.hits())), Some((1, 0)));

        // A new host over the same directory: what a restart sees.
        let mut warm = host();
        let started = Instant::now();
        let cap = warm.load(policy(), &bytes, ex.file).expect("warm load");
        let warm_time = started.elapsed();
        assert_eq!(cap.compiled, CacheOutcome::Hit);
        assert_eq!(warm.cache().map(|c| (c.compiles(), c.hits())), Some((0, 1)));
        assert!(
            !cap.shape.exports.is_empty(),
            "the cached component is usable"
        );
        eprintln!(
            "polyglot: {} ({} bytes): cold load (verify + compile + store) {cold_time:.2?}, warm load (cache hit) {warm_time:.2?}",
            ex.name,
            bytes.len()
        );
    }
}

/// `warden audit replay` on the Python and JavaScript capabilities: signed
/// components are stored (signature sections stripped) in the artifact
/// store at load, and their entries — ok, capability error, fuel
/// exhaustion — re-execute offline to the same outcome, output and fuel.
#[tokio::test]
async fn python_and_javascript_capabilities_replay_and_match_including_fuel() {
    use warden_host::replay::{DataDir, Replayer, Verdict};
    let dir = scratch("polyglot-replay");
    let trust =
        warden_host::signing::TrustStore::load(&built().join("trust.toml")).expect("trust file");
    let mut h = warden_host::Host::new(warden_host::HostConfig {
        sandbox: small_pool(),
        trust: Some(trust),
        cache_dir: Some(repo().join("target/polyglot/cache")),
        data_dir: Some(dir.clone()),
        ..warden_host::HostConfig::default()
    })
    .expect("host");
    for ex in [&PYTHON, &JAVASCRIPT] {
        h.load(
            Policy::load(&ex.policy_path()).expect("example policy"),
            &ex.bytes(),
            ex.file,
        )
        .unwrap_or_else(|e| panic!("loading {}: {e}", ex.name));
    }
    let starved = PYTHON.policy_with(|text| {
        text.replace(
            "name = \"invoice-total\"",
            "name = \"invoice-total-starved\"",
        )
        .lines()
        .map(|l| {
            if l.starts_with("fuel") {
                "fuel = 10_000"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
    });
    h.load(starved, &PYTHON.bytes(), PYTHON.file)
        .expect("starved copy");
    let invoice = json!({"invoice": {"id": "INV-7", "currency": "EUR", "lines": [
        {"sku": "A-1", "quantity": 3, "unit-cents": 1250},
    ]}});
    let calls = [
        ("invoice-total", "total", invoice.clone(), Outcome::Ok),
        (
            "invoice-total",
            "total",
            json!({"invoice": {"id": "INV-8", "currency": "EUR", "lines": [
                {"sku": "B-2", "quantity": 1, "unit-cents": -5},
            ]}}),
            Outcome::CapabilityError,
        ),
        (
            "invoice-total-starved",
            "total",
            invoice,
            Outcome::BudgetExhausted(warden_host::Budget::Fuel),
        ),
        (
            "word-stats",
            "analyze",
            json!({"doc": {"title": "T", "text": "the cat and the hat"}}),
            Outcome::Ok,
        ),
    ];
    for (cap, f, input, want) in calls {
        let r = call(&h, cap, f, input).await;
        assert_eq!(r.outcome, want, "{cap}: {r:?}");
    }
    h.shutdown().await.expect("shutdown");
    let evidence = DataDir {
        reader: warden_host::store::AuditReader::open(&dir.join("warden.db")).expect("db"),
        artifacts: warden_host::store::ArtifactStore::in_data_dir(&dir),
    };
    let all = evidence
        .reader
        .entries(1, 100, &warden_host::store::EntryFilter::default())
        .expect("entries");
    assert_eq!(all.len(), 4);
    let mut replayer = Replayer::new(small_pool()).expect("replayer");
    for e in &all {
        let r = replayer.replay(e, &evidence).await;
        assert_eq!(r.verdict, Verdict::Matched, "{r}");
    }
}
