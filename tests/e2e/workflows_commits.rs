//! Workflow runs whose journal lives in the audit database (what the daemon
//! uses): a step's audit entry and its journal record share one fsync, and
//! the state a kill leaves between the two (entry committed, record not)
//! resumes by running the step again with the same request id. Real host,
//! real echo component, real SQLite files.
//!
//! The kill here is the file state a SIGKILL leaves at that point (every
//! committed transaction is in the WAL; the record was never written),
//! reached by stopping the host right after the entry; the real SIGKILL of
//! a daemon with this journal is `workflows_daemon`'s
//! `a_run_in_flight_at_a_sigkill_resumes_at_restart_without_re_running_done_steps`.

use crate::support::{load, policy, scratch, small_pool};
use std::path::Path;
use warden_host::store::{
    AuditLog, EntryFilter, RunState, RunStore, SqliteRunStore, StepRecord, StepState,
};
use warden_host::workflow::executor::Executor;
use warden_host::workflow::{Plan, check};
use warden_host::{Call, Host, HostConfig, Outcome};

const CHAIN: &str = r#"
[input]
type = "object"
required = ["word"]
[input.properties]
word = { type = "string" }

[[step]]
id = "s1"
call = "echo.echo"
input = { message = "${input.word}" }
compensate = "none"

[[step]]
id = "s2"
needs = ["s1"]
call = "echo.echo"
input = { message = "${steps.s1.output} two" }
compensate = "none"

[[step]]
id = "s3"
needs = ["s2"]
call = "echo.echo"
input = { message = "${steps.s2.output} three" }
compensate = "none"
"#;

fn host_in(dir: &Path) -> Host {
    let mut host = Host::new(HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    })
    .expect("host with a data dir");
    load(&mut host, policy("echo", "", ""), "echo");
    host
}

fn log(host: &Host) -> &AuditLog {
    host.audit().expect("the host has an audit log")
}

/// Every entry's (request id, seq), in order.
fn entries(host: &Host) -> Vec<(String, u64)> {
    log(host)
        .entries(1, 10_000, &EntryFilter::default())
        .expect("entries")
        .into_iter()
        .map(|e| (e.entry.request_id.clone(), e.seq))
        .collect()
}

#[tokio::test]
async fn a_steps_audit_entry_and_its_journal_record_share_one_fsync() {
    let dir = scratch("wf-one-fsync");
    let host = host_in(&dir);
    let store = SqliteRunStore::in_audit_log(log(&host)).expect("journal");
    let plan = Plan::parse(Path::new("chain.toml"), CHAIN).expect("plan");
    let checked = check(&plan, None).expect("checks");
    let before = log(&host).stats();
    let state = Executor::new(&host, &store)
        .start(
            &plan,
            &checked,
            "run-1",
            "alice",
            serde_json::json!({"word": "one"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Completed);
    let after = log(&host).stats();
    // start (run and entry, one deferred job) + two steps (entry and
    // record, one durable job each) + the last step (one deferred job) +
    // end (state and entry, one durable job): three fsyncs for three
    // steps, as three requests cost.
    assert_eq!(
        after.synced_commits - before.synced_commits,
        3,
        "one fsync per step, the last step's taken by the end"
    );
    assert_eq!(after.entries - before.entries, 5, "start, three steps, end");
    let j = store.journal("run-1").expect("read").expect("journaled");
    assert_eq!(
        j.steps.last().and_then(|s| s.output.clone()),
        Some(serde_json::json!("one two three"))
    );
    let ids: Vec<String> = entries(&host).into_iter().map(|(id, _)| id).collect();
    assert_eq!(&ids[1..4], ["run-1.s1", "run-1.s2", "run-1.s3"]);
    // The end, queued behind the last step's entry, follows it.
    assert_eq!(ids.len(), 5);
    assert_eq!(
        end_events(&host),
        vec!["completed".to_string()],
        "one end, the last entry"
    );
    assert_eq!(j.run.state, RunState::Completed);
    assert!(log(&host).verify().expect("verify").passed(true));
}

/// The `state` of every run `end` entry, in order; the last entry must be one.
fn end_events(host: &Host) -> Vec<String> {
    let all = log(host)
        .entries(1, 10_000, &EntryFilter::default())
        .expect("entries");
    let detail = |e: &warden_host::audit::AuditEntry| -> serde_json::Value {
        e.entry
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default()
    };
    let ends: Vec<String> = all
        .iter()
        .map(detail)
        .filter(|d| d["event"] == "end")
        .map(|d| d["state"].as_str().unwrap_or_default().to_string())
        .collect();
    if !ends.is_empty() {
        assert_eq!(
            all.last().map(detail).map(|d| d["event"].clone()),
            Some(serde_json::json!("end")),
            "the end is the last entry"
        );
    }
    ends
}

#[tokio::test]
async fn a_stop_asked_once_the_last_step_has_returned_leaves_the_run_unended_until_driven_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = scratch("wf-stop-last");
    let host = host_in(&dir);
    let store = SqliteRunStore::in_audit_log(log(&host)).expect("journal");
    let plan = Plan::parse(Path::new("chain.toml"), CHAIN).expect("plan");
    let checked = check(&plan, None).expect("checks");
    // Asked before each of the three steps, then once s3 has returned ok:
    // from that ask on, an operator's cancel has come.
    let asks = Arc::new(AtomicUsize::new(0));
    let stop: warden_host::workflow::executor::Stop = {
        let asks = asks.clone();
        Arc::new(move || asks.fetch_add(1, Ordering::SeqCst) >= 3)
    };
    let state = Executor::new(&host, &store)
        .stopping_when(stop)
        .start(
            &plan,
            &checked,
            "run-2",
            "alice",
            serde_json::json!({"word": "one"}),
        )
        .await
        .expect("runs");
    assert_eq!(state, RunState::Running, "stopped, not ended");
    let j = store.journal("run-2").expect("read").expect("journaled");
    assert_eq!(j.run.state, RunState::Running);
    assert!(j.steps.iter().all(|s| s.state == StepState::Done), "{j:?}");
    assert!(end_events(&host).is_empty(), "no end entry");
    // Driven again (nothing asks it to stop), the run ends.
    let state = Executor::new(&host, &store)
        .drive(&plan, "run-2")
        .await
        .expect("drives");
    assert_eq!(state, RunState::Completed);
    assert_eq!(end_events(&host), vec!["completed".to_string()]);
    let j = store.journal("run-2").expect("read").expect("journaled");
    assert_eq!(j.run.state, RunState::Completed);
    assert!(log(&host).verify().expect("verify").passed(true));
}

#[tokio::test]
async fn a_kill_between_a_steps_audit_entry_and_its_journal_record_runs_the_step_again_with_the_same_request_id()
 {
    let dir = scratch("wf-kill-between");
    let plan = Plan::parse(Path::new("chain.toml"), CHAIN).expect("plan");
    let checked = check(&plan, None).expect("checks");
    {
        let host = host_in(&dir);
        let store = SqliteRunStore::in_audit_log(log(&host)).expect("journal");
        let exec = Executor::new(&host, &store);
        exec.begin(
            &plan,
            &checked,
            "run-k",
            "alice",
            serde_json::json!({"word": "k"}),
        )
        .await
        .expect("journaled");
        // What the executor does for s1 up to the kill: the in-flight
        // marker (deferred), then the call with its entry (deferred) ...
        let mut s1 = store.journal("run-k").expect("read").expect("run").steps[0].clone();
        assert_eq!(s1.step, "s1");
        s1.state = StepState::Running;
        s1.attempts = 1;
        store
            .record_step_with("run-k", &s1, None, false)
            .await
            .expect("marker");
        let mut call = Call::new("echo", "echo", serde_json::json!({"message": "k"}));
        call.request_id = Some("run-k.s1".into());
        call.via = "workflow".into();
        call.audit_deferred = true;
        let r = host.invoke(call).await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert!(r.audit.is_some(), "the entry is committed");
        // ... and the kill: the step's result record is never written.
        drop(store);
        host.shutdown().await.expect("stop");
    }
    let host = host_in(&dir);
    let store = SqliteRunStore::in_audit_log(log(&host)).expect("journal");
    let j = store.journal("run-k").expect("read").expect("run");
    let s1: &StepRecord = &j.steps[0];
    assert_eq!(
        (s1.state, s1.attempts),
        (StepState::Running, 1),
        "the marker and the entry survived; the record was never written"
    );
    let state = Executor::new(&host, &store)
        .drive(&plan, "run-k")
        .await
        .expect("resumes");
    assert_eq!(state, RunState::Completed);
    let j = store.journal("run-k").expect("read").expect("run");
    assert_eq!(
        (j.steps[0].state, j.steps[0].attempts),
        (StepState::Done, 2)
    );
    let s1_entries: Vec<u64> = entries(&host)
        .into_iter()
        .filter(|(id, _)| id == "run-k.s1")
        .map(|(_, seq)| seq)
        .collect();
    assert_eq!(
        s1_entries.len(),
        2,
        "the step ran again with the same request id (at-least-once)"
    );
    assert_eq!(j.steps[0].audit_seqs, [s1_entries[1]]);
    for s in &j.steps[1..] {
        assert_eq!((s.state, s.attempts), (StepState::Done, 1), "{s:?}");
    }
    assert_eq!(
        j.steps[2].output,
        Some(serde_json::json!("k two three")),
        "later steps read the re-run's output"
    );
    assert!(log(&host).verify().expect("verify").passed(true));
}
