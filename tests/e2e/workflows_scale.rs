//! 1,000 concurrent runs (issue 20): started against one daemon by a
//! bounded pool of clients, every run completes with the right steps in
//! the journal, and the audit chain verifies. `WARDEN_E2E_RUNS` overrides
//! the number (default 1,000).

use crate::daemon::{AUDIT, Daemon, SUBMIT, cap, deploy};
use crate::support::*;
use crate::workflows_daemon::add_workflow;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ECHO_TWICE: &str = r#"
[input]
type = "object"
required = ["n"]
[input.properties]
n = { type = "integer" }

[[step]]
id = "first"
call = "echo.echo"
input = { message = "run ${input.n}" }
compensate = "none"

[[step]]
id = "second"
needs = ["first"]
call = "echo.echo"
input = { message = "${steps.first.output} again" }
compensate = "none"
"#;

/// Client threads submitting at once.
const CLIENTS: usize = 16;

#[test]
fn a_thousand_concurrent_runs_all_complete_with_their_journal_and_chain_intact() {
    let runs: usize = std::env::var("WARDEN_E2E_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = deploy(
        "wf-scale",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(&dir, "twice", ECHO_TWICE);
    let d = Daemon::start(&dir);
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                let client = d.client(SUBMIT);
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= runs {
                        return;
                    }
                    let r = client
                        .post_json("/v1/requests", &json!({"kind": "twice", "input": {"n": n}}))
                        .expect("submit");
                    assert_eq!(r.status, 202, "run {n}: {}", r.text());
                }
            });
        }
    });
    let submitted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    let completed = loop {
        let list = d
            .client(AUDIT)
            .get("/v1/runs?state=completed&limit=1000")
            .expect("list")
            .json();
        let done = list["runs"].as_array().map_or(0, Vec::len);
        let unfinished: usize = ["running", "compensating", "compensated", "needs_attention"]
            .iter()
            .map(|s| {
                d.client(AUDIT)
                    .get(&format!("/v1/runs?state={s}&limit=1000"))
                    .expect("list")
                    .json()["runs"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .sum();
        if done >= runs.min(1000) && unfinished == 0 {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {runs} runs completed, {unfinished} not"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "{runs} runs: submitted in {submitted:?}, all completed after {:?} ({completed} listed)",
        started.elapsed()
    );
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    // The journal: every run completed, each with both steps done, in plan order.
    let db = rusqlite::Connection::open(dir.join("data").join("warden.db")).expect("warden.db");
    let count = |sql: &str| -> usize {
        db.query_row(sql, [], |r| r.get::<_, i64>(0))
            .expect(sql)
            .try_into()
            .expect("count")
    };
    assert_eq!(count("SELECT COUNT(*) FROM runs"), runs);
    assert_eq!(
        count("SELECT COUNT(*) FROM runs WHERE state = 'completed'"),
        runs
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM run_steps WHERE state = 'done'"),
        2 * runs
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM run_steps WHERE (step = 'first' AND position = 0) \
             OR (step = 'second' AND position = 1)"
        ),
        2 * runs
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM run_steps WHERE step = 'second' \
             AND json_extract(record, '$.output') LIKE 'run % again'"
        ),
        runs
    );
    let data = dir.join("data");
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
}
