//! The workflow run journal's records and its storage trait ([`RunStore`]):
//! one row per run (workflow, pinned plan hash and versions, input, state)
//! and one per run step (state, attempts, outcome, output, audit seqs), in
//! plan order. What a run does with them is the workflow executor's
//! business; this module only says what is stored (docs/workflows.md).
//!
//! It must never decide a run's next step, and never hold a record the
//! journal could not give back exactly (every field round-trips).

use super::StoreError;
use super::writer::Ack;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The journal file inside the data directory, for a journal of its own
/// ([`super::SqliteRunStore::open`]); the daemon's journal is in the audit
/// database (`warden.db`) and imports a `runs.db` it finds.
pub const RUNS_FILE: &str = "runs.db";

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Steps are running or ready to run.
    Running,
    /// Waiting for a human (an approval step).
    Waiting,
    /// A failure before the pivot: compensations are running.
    Compensating,
    /// Every step finished or was skipped.
    Completed,
    /// Failed before the pivot; every completed step was compensated.
    Compensated,
    /// Stopped for an operator: a step after the pivot exhausted its
    /// retries, or a compensation failed. `resume` continues it.
    NeedsAttention,
    /// Cancelled by an operator; every done step with a compensation was
    /// compensated first.
    Cancelled,
}

impl RunState {
    /// Every state, for parsing and listings.
    pub const ALL: [RunState; 7] = [
        RunState::Running,
        RunState::Waiting,
        RunState::Compensating,
        RunState::Completed,
        RunState::Compensated,
        RunState::NeedsAttention,
        RunState::Cancelled,
    ];

    /// The name stored and shown (`needs_attention`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Compensating => "compensating",
            RunState::Completed => "completed",
            RunState::Compensated => "compensated",
            RunState::NeedsAttention => "needs_attention",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Parses [`RunState::as_str`].
    pub fn parse(text: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run is over (nothing more happens without an operator).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Compensated | RunState::Cancelled
        )
    }
}

/// Where one step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    Pending,
    /// An attempt is in flight (after a crash: re-run with the same key).
    Running,
    /// Waiting for approvals.
    Waiting,
    /// Finished `ok`; its output is journaled.
    Done,
    /// Its `when` was false.
    Skipped,
    /// Failed (retries exhausted).
    Failed,
    /// Undone by its compensation.
    Compensated,
    /// Its compensation failed: the run needs an operator.
    CompensationFailed,
}

impl StepState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Waiting => "waiting",
            StepState::Done => "done",
            StepState::Skipped => "skipped",
            StepState::Failed => "failed",
            StepState::Compensated => "compensated",
            StepState::CompensationFailed => "compensation_failed",
        }
    }

    /// Parses [`StepState::as_str`].
    pub fn parse(text: &str) -> Option<StepState> {
        [
            StepState::Pending,
            StepState::Running,
            StepState::Waiting,
            StepState::Done,
            StepState::Skipped,
            StepState::Failed,
            StepState::Compensated,
            StepState::CompensationFailed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What a run pins for one call step at its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The component digest (`sha256:…`) the step runs.
    pub component: String,
    /// The effective policy hash (`sha256:…`) it runs under.
    pub policy: String,
}

/// One run, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The plan hash pinned at start (`sha256:…`).
    pub plan_hash: String,
    /// Where it is.
    pub state: RunState,
    /// Who started it.
    pub principal: String,
    /// The tenant it runs for, if any.
    pub tenant: Option<String>,
    /// The workflow input.
    pub input: Value,
    /// Hash of the input's canonical JSON.
    pub input_hash: String,
    /// Pinned versions by step id (call steps and compensations).
    pub pins: BTreeMap<String, Pin>,
    /// When it started (ms since the epoch).
    pub created_ms: u64,
    /// The last change (ms since the epoch).
    pub updated_ms: u64,
}

/// One step of a run, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step id.
    pub step: String,
    /// Its place in plan order (journal and audit order).
    pub position: u32,
    /// Where it is.
    pub state: StepState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's outcome class, if any.
    pub outcome: Option<String>,
    /// The output (for `done`), the approvers (approval steps), or `null`.
    pub output: Option<Value>,
    /// Audit sequence numbers of every entry the step caused, in order.
    pub audit_seqs: Vec<u64>,
    /// The last change (ms since the epoch).
    pub updated_ms: u64,
}

impl StepRecord {
    /// Step `step`, not started, at `position` (its place in the order it
    /// is journaled and audited in).
    pub fn pending(step: &str, position: usize, updated_ms: u64) -> StepRecord {
        StepRecord {
            step: step.to_string(),
            position: u32::try_from(position).unwrap_or(u32::MAX),
            state: StepState::Pending,
            attempts: 0,
            outcome: None,
            output: None,
            audit_seqs: Vec::new(),
            updated_ms,
        }
    }
}

/// A run with its steps in plan order.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    /// The run.
    pub run: RunRecord,
    /// Its steps, by position.
    pub steps: Vec<StepRecord>,
}

/// The run journal (`runs.db` in SQLite).
pub trait RunStore: Send + Sync + std::fmt::Debug {
    /// Journals a new run and its steps (all `pending`). A run id that
    /// exists already is refused ([`StoreError::BadRow`] naming it): one id
    /// never names two runs.
    fn start(&self, run: &RunRecord, steps: &[StepRecord]) -> Ack<()>;

    /// Replaces one step's record, and the run's state when given, in one
    /// commit: a step's result is durable before any step that needs it starts.
    fn record_step(&self, run_id: &str, step: &StepRecord, run_state: Option<RunState>) -> Ack<()>;

    /// Sets a run's state.
    fn set_state(&self, run_id: &str, state: RunState) -> Ack<()>;

    /// One run and its steps.
    fn journal(&self, run_id: &str) -> Result<Option<Journal>, StoreError>;

    /// Runs in `state` (every run when `None`), oldest first, at most `limit`.
    fn runs(&self, state: Option<RunState>, limit: usize) -> Result<Vec<RunRecord>, StoreError>;

    /// Every run that is not final (what a restart resumes), oldest first.
    fn unfinished(&self) -> Result<Vec<RunRecord>, StoreError>;

    /// Whether the journal lives in the audit log's database and is written
    /// by its writer, in the same WAL as the entries: then a write (or an
    /// entry) may be *deferred* — committed without an fsync of its own —
    /// and the next durable write makes it durable (docs/workflows.md, "One
    /// fsync per step"). `false` by default: every write is durable.
    fn shares_audit_commits(&self) -> bool {
        false
    }

    /// [`start`](Self::start), deferred when `durable` is false and the
    /// journal [shares the audit log's commits](Self::shares_audit_commits)
    /// (otherwise always durable).
    fn start_with(&self, run: &RunRecord, steps: &[StepRecord], durable: bool) -> Ack<()> {
        let _ = durable;
        self.start(run, steps)
    }

    /// [`record_step`](Self::record_step), deferred as in
    /// [`start_with`](Self::start_with).
    fn record_step_with(
        &self,
        run_id: &str,
        step: &StepRecord,
        run_state: Option<RunState>,
        durable: bool,
    ) -> Ack<()> {
        let _ = durable;
        self.record_step(run_id, step, run_state)
    }

    /// [`set_state`](Self::set_state), deferred as in
    /// [`start_with`](Self::start_with).
    fn set_state_with(&self, run_id: &str, state: RunState, durable: bool) -> Ack<()> {
        let _ = durable;
        self.set_state(run_id, state)
    }

    /// When the journal [shares the audit log's
    /// commits](Self::shares_audit_commits): a maker of writes of one of
    /// run `run_id`'s step records that run in the audit log's transaction
    /// right after the step's entry, given its seq (pushed onto the
    /// record's `audit_seqs`), so that a step's entry and its result
    /// record are one writer job and one fsync
    /// ([`AuditLog::submit_with`](super::AuditLog::submit_with)). `None`
    /// (the default): records are written on their own.
    fn step_after_entry(&self, run_id: &str) -> Option<StepAfterEntry> {
        let _ = run_id;
        None
    }

    /// Whether this journal is written by `log`'s own writer, into its
    /// database: only then may its writes ride in `log`'s transactions
    /// ([`step_after_entry`](Self::step_after_entry),
    /// [`start_write`](Self::start_write), [`state_write`](Self::state_write)).
    fn writes_through(&self, log: &super::AuditLog) -> bool {
        let _ = log;
        false
    }

    /// [`start`](Self::start) as a write to run in the audit log's
    /// transaction before the run's `start` entry
    /// ([`AuditLog::submit_after`](super::AuditLog::submit_after): a
    /// refused start keeps the entry out). `None` unless the journal
    /// [shares the audit log's commits](Self::shares_audit_commits).
    fn start_write(&self, run: &RunRecord, steps: &[StepRecord]) -> Option<super::RowWrite> {
        let _ = (run, steps);
        None
    }

    /// [`set_state`](Self::set_state) as a write to run before the run's
    /// `end` entry, as [`start_write`](Self::start_write).
    fn state_write(&self, run_id: &str, state: RunState) -> Option<super::RowWrite> {
        let _ = (run_id, state);
        None
    }

    /// [`state_write`](Self::state_write), refused (its error returned, its
    /// entry kept out) unless step `step`'s record is journaled `done` when
    /// it runs: the run's end queued right behind the last step's own entry,
    /// before the executor has seen that step's result journaled.
    fn end_write_after(
        &self,
        run_id: &str,
        state: RunState,
        step: &str,
    ) -> Option<super::RowWrite> {
        let _ = (run_id, state, step);
        None
    }
}

/// Makes the write of a step record that follows its audit entry
/// ([`RunStore::step_after_entry`]).
pub type StepAfterEntry = std::sync::Arc<dyn Fn(StepRecord) -> super::SeqWrite + Send + Sync>;
