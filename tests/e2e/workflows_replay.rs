//! `warden audit replay --run <id>` (docs/workflows.md "Replaying a run"):
//! a daemon's completed and compensated runs replay and match their plan;
//! a tampered journal output, a tampered skip and a changed plan are each
//! reported with exit 3.

use crate::daemon::{Daemon, cap, deploy};
use crate::support::*;
use crate::workflows_daemon::{TWO_ECHOES, add_workflow, wait_state};
use crate::workflows_metrics::UNDO;
use serde_json::json;

fn start(d: &Daemon, kind: &str, who: &str) -> String {
    let r = d.submit(json!({"kind": kind, "input": {"who": who}}));
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["run"]["run_id"]
        .as_str()
        .expect("run id")
        .to_string()
}

#[test]
fn a_completed_and_a_compensated_run_replay_and_tampered_journals_or_plans_are_reported() {
    let mut panicker = cap("panicker", "panicker");
    panicker.imports = STD_IMPORTS;
    let dir = deploy(
        "wf-replay",
        &[cap("echo", "echo"), panicker],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    add_workflow(&dir, "greeting", TWO_ECHOES);
    add_workflow(&dir, "undo", UNDO);
    let d = Daemon::start(&dir);
    let done = start(&d, "greeting", "ann");
    let undone = start(&d, "undo", "bob");
    wait_state(&d, &done, &["completed"]);
    wait_state(&d, &undone, &["compensated"]);
    let _ = d.terminate();

    let data = dir.join("data");
    let data = data.to_str().expect("utf8");
    let workflows = dir.join("workflows");
    let workflows = workflows.to_str().expect("utf8");
    let replay = |id: &str| {
        warden(&[
            "audit",
            "replay",
            "--run",
            id,
            "--data-dir",
            data,
            "--workflows",
            workflows,
        ])
    };

    let (code, out, err) = replay(&done);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("of workflow greeting"), "{out}");
    assert!(out.contains("step hello: done, 1 attempt(s)"), "{out}");
    assert!(out.contains("step gate: skipped"), "{out}");
    assert!(out.contains("step bye: done"), "{out}");
    assert!(out.contains(&format!("{done}.bye echo")), "{out}");
    assert!(out.contains(": matched"), "{out}");
    assert!(!out.contains("MISMATCH"), "{out}");
    assert!(out.contains("control flow: matches plan sha256:"), "{out}");

    let (code, out, err) = replay(&undone);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("step hello: compensated"), "{out}");
    assert!(out.contains("step boom: failed"), "{out}");
    assert!(out.contains(&format!("{undone}.hello.compensate")), "{out}");
    assert!(
        out.contains("step hello: compensated as the plan says"),
        "{out}"
    );
    assert!(out.contains("control flow: matches"), "{out}");

    let db = rusqlite::Connection::open(dir.join("data").join("warden.db")).expect("warden.db");
    // A journaled output that is not what the audit entry commits to.
    db.execute(
        "UPDATE run_steps SET record = json_set(record, '$.output', 'hello mallory and bye') \
         WHERE run_id = ?1 AND step = 'bye'",
        [&done],
    )
    .expect("tamper output");
    let (code, out, _) = replay(&done);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("step bye: the journaled output is not the output audit entry"),
        "{out}"
    );
    // A step the plan runs, journaled as skipped.
    db.execute(
        "UPDATE run_steps SET state = 'skipped', record = json_set(record, '$.state', 'skipped') \
         WHERE run_id = ?1 AND step = 'hello'",
        [&undone],
    )
    .expect("tamper state");
    let (code, out, _) = replay(&undone);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "control flow: MISMATCH: step hello: the journal says skipped but its `when` is true"
        ),
        "{out}"
    );
    // A plan that is not the one the run pinned.
    let plan = dir.join("workflows").join("greeting.toml");
    let text = std::fs::read_to_string(&plan).expect("plan");
    std::fs::write(&plan, text.replace("and bye", "and goodbye")).expect("plan");
    let (code, out, _) = replay(&done);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("plan: MISMATCH: no plan of workflow `greeting` with the pinned hash"),
        "{out}"
    );
    // An unknown run is an error of its own.
    let (code, _, err) = replay("no-such-run");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no run `no-such-run`"), "{err}");
}
