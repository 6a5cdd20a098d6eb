//! Tests of the run journal kept in the audit database and written by the
//! audit log's writer (`runs_sqlite.rs`, `SqliteRunStore::in_audit_log`):
//! deferred writes cost no fsync and are made durable by the next durable
//! commit, a deferred batch never signs a checkpoint, and a `runs.db` from
//! an earlier version is imported once. Real SQLite files throughout.
//!
//! What cannot be tested here: that an OS crash or power loss keeps
//! exactly the WAL prefix up to the last synced commit. That is SQLite's
//! WAL guarantee (checksummed frames, recovery stops at the first bad
//! one), which the design relies on (docs/workflows.md, "One fsync per
//! step").

use super::conformance::entry;
use super::runs::{RUNS_FILE, RunRecord, RunState, RunStore, StepRecord, StepState};
use super::{AuditLog, CheckpointPolicy, Payloads, SqliteRunStore};
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn every(n: u64) -> CheckpointPolicy {
    CheckpointPolicy {
        every_entries: n,
        every: Duration::from_secs(3600),
    }
}

fn run(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        workflow: "order".into(),
        plan_hash: "sha256:00".into(),
        state: RunState::Running,
        principal: "alice".into(),
        tenant: None,
        input: json!({"order": "o-1"}),
        input_hash: "sha256:11".into(),
        pins: Default::default(),
        created_ms: 1,
        updated_ms: 1,
    }
}

fn step(id: &str, position: u32, state: StepState) -> StepRecord {
    StepRecord {
        step: id.into(),
        position,
        state,
        attempts: u32::from(state != StepState::Pending),
        outcome: None,
        output: None,
        audit_seqs: Vec::new(),
        updated_ms: 1,
    }
}

fn synced(log: &AuditLog) -> u64 {
    log.stats().synced_commits
}

fn open(db: &Path, policy: CheckpointPolicy) -> (AuditLog, SqliteRunStore) {
    let log = AuditLog::open(db, key(), policy).expect("open log");
    let store = SqliteRunStore::in_audit_log(&log).expect("journal");
    (log, store)
}

#[test]
fn deferred_journal_writes_and_entries_cost_no_fsync_until_a_durable_write_covers_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    {
        let (log, store) = open(&db, every(0));
        assert!(store.shares_audit_commits());
        let before = synced(&log);
        store
            .start_with(&run("r1"), &[step("a", 0, StepState::Pending)], false)
            .wait()
            .expect("start");
        store
            .record_step_with("r1", &step("a", 0, StepState::Running), None, false)
            .wait()
            .expect("in flight");
        let appended = log
            .submit_deferred(entry(1, None), Payloads::default())
            .wait()
            .expect("deferred entry");
        assert_eq!(appended.seq, 1);
        assert_eq!(
            synced(&log),
            before,
            "three deferred commits, no fsync among them"
        );
        // Committed: readable at once (the executor reads its journal back).
        let j = store.journal("r1").expect("read").expect("visible");
        assert_eq!(j.steps[0].state, StepState::Running);
        let mut done = step("a", 0, StepState::Done);
        done.audit_seqs = vec![appended.seq];
        done.output = Some(json!("ok"));
        store
            .record_step_with("r1", &done, None, true)
            .wait()
            .expect("durable record");
        assert_eq!(synced(&log), before + 1, "one fsync covers all four");
        drop(store);
        drop(log);
    }
    let (log, store) = open(&db, every(0));
    let j = store.journal("r1").expect("read").expect("kept");
    assert_eq!(j.steps[0].state, StepState::Done);
    assert_eq!(j.steps[0].audit_seqs, [1]);
    assert_eq!(log.head().0, 1);
    assert!(log.verify().expect("verify").passed(true));
}

#[test]
fn a_deferred_batch_never_signs_a_checkpoint_and_the_next_durable_one_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let (log, _store) = open(&db, every(1));
    let before = log.checkpoints().expect("checkpoints").len();
    log.submit_deferred(entry(1, None), Payloads::default())
        .wait()
        .expect("deferred");
    assert_eq!(
        log.checkpoints().expect("checkpoints").len(),
        before,
        "a checkpoint's anchor file must never name an unsynced head"
    );
    log.submit(entry(2, None), Payloads::default())
        .wait()
        .expect("durable");
    let cps = log.checkpoints().expect("checkpoints");
    assert_eq!(cps.len(), before + 1);
    assert_eq!(cps.iter().map(|c| c.size).max(), Some(2));
}

#[test]
fn a_refused_journal_write_fails_only_its_caller_and_spares_its_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let (log, store) = open(&db, every(0));
    store.start(&run("r1"), &[]).wait().expect("first");
    let dup = store.start_with(&run("r1"), &[step("zzz", 0, StepState::Pending)], false);
    let neighbour = log.submit_deferred(entry(1, None), Payloads::default());
    let other = store.start(&run("r2"), &[]);
    let e = dup.wait().expect_err("duplicate run id");
    assert!(e.to_string().contains("exists already"), "{e}");
    neighbour.wait().expect("the entry commits");
    other.wait().expect("the other run commits");
    let j = store.journal("r1").expect("read").expect("exists");
    assert!(j.steps.is_empty(), "no partial rows from the refused start");
    assert!(store.set_state("ghost", RunState::Running).wait().is_err());
}

#[test]
fn a_step_record_written_after_its_entry_shares_the_entry_transaction_and_one_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    {
        let (log, store) = open(&db, every(0));
        store
            .start(&run("r1"), &[step("a", 0, StepState::Pending)])
            .wait()
            .expect("start");
        let before = synced(&log);
        let make = store
            .step_after_entry("r1")
            .expect("shares the audit writer");
        let mut done = step("a", 0, StepState::Done);
        done.output = Some(json!("ok"));
        let appended = log
            .submit_with(entry(1, None), Payloads::default(), make(done), true)
            .wait()
            .expect("entry and record");
        assert_eq!(synced(&log), before + 1, "one fsync for both");
        let j = store.journal("r1").expect("read").expect("run");
        assert_eq!(j.steps[0].state, StepState::Done);
        assert_eq!(
            j.steps[0].audit_seqs,
            [appended.seq],
            "the record names the seq the writer gave its entry"
        );
    }
    let (log, store) = open(&db, every(0));
    assert_eq!(
        store.journal("r1").expect("read").expect("kept").steps[0].audit_seqs,
        [1]
    );
    assert!(log.verify().expect("verify").passed(true));
}

#[test]
fn a_failing_write_after_an_entry_undoes_only_its_own_rows_and_the_entry_is_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let (log, store) = open(&db, every(0));
    let failing: super::SeqWrite = Box::new(|tx: &rusqlite::Transaction<'_>, _seq: u64| {
        tx.execute(
            "INSERT INTO runs (id, workflow, state, created_ms, updated_ms, record) \
             VALUES ('half', 'w', 'running', 1, 1, '{}')",
            [],
        )
        .map_err(super::sqlite_err(Path::new("test")))?;
        Err(super::StoreError::Closed)
    });
    let appended = log
        .submit_with(entry(1, None), Payloads::default(), failing, true)
        .wait()
        .expect("the entry is appended all the same");
    assert_eq!(appended.seq, 1);
    assert!(
        store.runs(None, 10).expect("list").is_empty(),
        "the failed write's row is undone"
    );
    assert_eq!(log.head().0, 1);
    // A journal of its own does not offer the fused write.
    let own = SqliteRunStore::open(dir.path()).expect("runs.db");
    assert!(own.step_after_entry("r1").is_none());
}

#[test]
fn a_run_journaled_before_its_entry_in_one_transaction_keeps_the_entry_out_when_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let (log, store) = open(&db, every(0));
    assert!(store.writes_through(&log));
    let steps = [step("a", 0, StepState::Pending)];
    let before = synced(&log);
    let appended = log
        .submit_after(
            store.start_write(&run("r1"), &steps).expect("fused"),
            entry(1, None),
            Payloads::default(),
            true,
        )
        .wait()
        .expect("run and entry");
    assert_eq!(appended.seq, 1);
    assert_eq!(synced(&log), before + 1, "one fsync for both");
    assert_eq!(
        store.journal("r1").expect("read").expect("run").steps.len(),
        1
    );
    // The same run id again: the start is refused, and so is its entry.
    let e = log
        .submit_after(
            store.start_write(&run("r1"), &steps).expect("fused"),
            entry(2, None),
            Payloads::default(),
            true,
        )
        .wait()
        .expect_err("a run id names one run");
    assert!(e.to_string().contains("exists already"), "{e}");
    assert_eq!(log.head().0, 1, "no entry for the refused start");
    // The end: the state ahead of the `end` entry.
    log.submit_after(
        store.state_write("r1", RunState::Completed).expect("fused"),
        entry(2, None),
        Payloads::default(),
        true,
    )
    .wait()
    .expect("state and entry");
    let j = store.journal("r1").expect("read").expect("run");
    assert_eq!(j.run.state, RunState::Completed);
    assert_eq!(log.head().0, 2);
    assert!(log.verify().expect("verify").passed(true));
    // Another log's journal does not write through this one.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("dir");
    let (other_log, _other_store) = open(&other.join("warden.db"), every(0));
    assert!(!store.writes_through(&other_log));
}

/// Run `r1`'s end (`completed`, entry 1) queued behind step `step`.
fn end_after(log: &AuditLog, store: &SqliteRunStore, step: &str) -> super::Ack<super::Appended> {
    log.submit_after(
        store
            .end_write_after("r1", RunState::Completed, step)
            .expect("fused"),
        entry(1, None),
        Payloads::default(),
        true,
    )
}

#[test]
fn a_runs_end_queued_behind_its_last_step_is_refused_unless_that_step_is_journaled_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("warden.db");
    let (log, store) = open(&db, every(0));
    let steps = [step("last", 0, StepState::Running)];
    store.start(&run("r1"), &steps).wait().expect("start");
    // The step is still `running`: the end and its entry are kept out.
    let e = end_after(&log, &store, "last")
        .wait()
        .expect_err("the step is not done");
    assert!(e.to_string().contains("not done"), "{e}");
    assert!(e.to_string().contains("r1/last"), "names the step: {e}");
    assert_eq!(log.head().0, 0, "no entry for the refused end");
    let j = store.journal("r1").expect("read").expect("run");
    assert_eq!(j.run.state, RunState::Running, "the state is unchanged");
    // A step that does not exist is refused the same way.
    assert!(end_after(&log, &store, "ghost").wait().is_err());
    // Queued behind the step's done record (in the same batch or a later
    // one), the end is written and its entry appended.
    let done = store.record_step_with("r1", &step("last", 0, StepState::Done), None, false);
    let end = end_after(&log, &store, "last");
    done.wait().expect("record");
    assert_eq!(end.wait().expect("end").seq, 1);
    let j = store.journal("r1").expect("read").expect("run");
    assert_eq!(j.run.state, RunState::Completed);
    assert!(log.verify().expect("verify").passed(true));
}

#[test]
fn a_runs_db_from_an_earlier_version_is_imported_into_the_audit_database_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let legacy = SqliteRunStore::open(dir.path()).expect("runs.db");
        legacy
            .start(&run("old"), &[step("a", 0, StepState::Done)])
            .wait()
            .expect("start");
        legacy
            .set_state("old", RunState::Waiting)
            .wait()
            .expect("state");
    }
    let db = dir.path().join("warden.db");
    {
        let (_log, store) = open(&db, every(0));
        let j = store.journal("old").expect("read").expect("imported");
        assert_eq!(j.run.state, RunState::Waiting);
        assert_eq!(j.steps[0].state, StepState::Done);
        assert_eq!(
            store
                .unfinished()
                .expect("read")
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["old"]
        );
        assert!(!dir.path().join(RUNS_FILE).exists());
        assert!(dir.path().join("runs.db.imported").exists());
        store
            .set_state("old", RunState::Cancelled)
            .wait()
            .expect("state");
    }
    // Opening again imports nothing (the file was renamed) and keeps the rows.
    let (_log, store) = open(&db, every(0));
    let j = store.journal("old").expect("read").expect("kept");
    assert_eq!(j.run.state, RunState::Cancelled);
}
