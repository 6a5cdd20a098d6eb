//! `warden audit replay --run <id>`: replays a whole workflow run. It reads
//! the run's journal from the audit database (`warden.db`; an embedder's
//! `<data-dir>/runs.db`), re-executes every audit
//! entry its steps caused (each attempt and compensation, found through the
//! journal's audit seqs) with the existing replay machinery, and checks the
//! recorded control flow: walking [`saga::next`] over the plan the run
//! pinned (by hash) and the journaled step outputs must give the journal's
//! step sequence (done, skipped, compensated) and end state, and each done
//! step's journaled output must be the output its last attempt's audit
//! entry commits to.
//!
//! Exit codes as `audit replay`: 0 everything matched, 3 a mismatch (a
//! re-executed entry, the control flow, an output, the plan hash) or a
//! missing artifact, 2 the run, the journal or the plan could not be read.
//! It writes nothing and never decides control flow itself (only
//! `saga::next` and `saga::should_run` do).

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_host::audit::{AuditEntry, EventKind};
use warden_host::digest::Hash256;
use warden_host::replay::{DataDir, Replayer, Summary};
use warden_host::sandbox::SandboxConfig;
use warden_host::store::{
    ArtifactStore, AuditReader, EntryFilter, Journal, RUNS_FILE, RunState, RunStore,
    SqliteRunStore, StepRecord, StepState,
};
use warden_host::workflow::Plan;
use warden_host::workflow::plan::Action;
use warden_host::workflow::saga::{self, Next, StepView};
use warden_host::workflow::template::Scope;

/// Where the pinned plan is looked for.
pub struct PlanSource {
    /// A plan file given with `--plan`.
    pub plan: Option<PathBuf>,
    /// Else the `*.toml` plans of this directory (`--workflows`).
    pub workflows: PathBuf,
}

/// Finds the plan of workflow `name` whose hash is `pinned`.
fn find_plan(source: &PlanSource, name: &str, pinned: &str) -> anyhow::Result<Plan> {
    let files: Vec<PathBuf> = match &source.plan {
        Some(p) => vec![p.clone()],
        None => {
            let dir = std::fs::read_dir(&source.workflows).with_context(|| {
                format!(
                    "reading {} (name the plan with --plan or its directory with --workflows)",
                    source.workflows.display()
                )
            })?;
            let mut files: Vec<PathBuf> = dir
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            files
        }
    };
    let mut seen = Vec::new();
    for file in &files {
        let plan = match Plan::load(file) {
            Ok(p) => p,
            Err(e) if source.plan.is_some() => bail!("{e}"),
            Err(_) => continue,
        };
        if plan.name.as_str() != name {
            continue;
        }
        let hash = plan.hash().tagged();
        if hash == pinned {
            return Ok(plan);
        }
        seen.push(format!("{} has {hash}", file.display()));
    }
    bail!(
        "no plan of workflow `{name}` with the pinned hash {pinned} ({}): give the plan the run started with (--plan)",
        if seen.is_empty() {
            "none found".to_string()
        } else {
            seen.join("; ")
        }
    )
}

/// Reads entry `seq`.
fn entry(reader: &AuditReader, seq: u64) -> anyhow::Result<Option<AuditEntry>> {
    let page = reader
        .entries(seq, 1, &EntryFilter::default())
        .with_context(|| format!("reading audit entry {seq}"))?;
    Ok(page.into_iter().find(|e| e.seq == seq))
}

/// The control-flow check: walks `saga::next` over `plan` with the
/// journal's outcomes and outputs; every difference from the journal is a
/// line of the result.
fn check_flow(
    plan: &Plan,
    journal: &Journal,
    last_attempt: &BTreeMap<String, u64>,
) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let record = |i: usize| -> Option<&StepRecord> {
        journal
            .steps
            .iter()
            .find(|r| r.step == plan.steps[i].id.as_str())
    };
    let mut views: Vec<StepView> = plan
        .steps
        .iter()
        .map(|_| StepView {
            state: StepState::Pending,
            done_order: None,
        })
        .collect();
    let values: Vec<Option<serde_json::Value>> = (0..plan.steps.len())
        .map(|i| record(i).and_then(|r| r.output.clone()))
        .collect();
    let input = journal.run.input.clone();
    let run_state = journal.run.state;
    // Each step is decided at most twice (run, compensate): a bound on the walk.
    for _ in 0..=plan.steps.len().saturating_mul(2) {
        match saga::next(plan, &views) {
            Next::Start(ready) => {
                for i in ready {
                    let id = plan.steps[i].id.as_str();
                    let outputs = saga::outputs(plan, &views, &values);
                    let scope = Scope {
                        input: &input,
                        steps: &outputs,
                    };
                    let journaled = record(i).map_or(StepState::Pending, |r| r.state);
                    let runs = saga::should_run(plan, i, &scope);
                    let state = match (runs, journaled) {
                        (_, StepState::Pending | StepState::Running) => {
                            notes.push(format!(
                                "step {id}: {} (the run has not finished it)",
                                journaled.as_str()
                            ));
                            return (notes, problems);
                        }
                        (Ok(false), StepState::Skipped) => StepState::Skipped,
                        (Ok(false), other) => {
                            problems.push(format!(
                                "step {id}: the plan skips it (its `when` is false) but the journal says {}",
                                other.as_str()
                            ));
                            return (notes, problems);
                        }
                        (Ok(true), StepState::Skipped) => {
                            problems.push(format!(
                                "step {id}: the journal says skipped but its `when` is true"
                            ));
                            return (notes, problems);
                        }
                        (Err(_), StepState::Failed) => StepState::Failed,
                        (Err(e), other) => {
                            problems.push(format!(
                                "step {id}: its `when` cannot be evaluated ({e}) but the journal says {}",
                                other.as_str()
                            ));
                            return (notes, problems);
                        }
                        // Compensated later: done at this point of the run.
                        (
                            Ok(true),
                            StepState::Done
                            | StepState::Compensated
                            | StepState::CompensationFailed,
                        ) => StepState::Done,
                        (Ok(true), s @ (StepState::Failed | StepState::Waiting)) => s,
                    };
                    views[i] = StepView {
                        state,
                        done_order: (state == StepState::Done)
                            .then(|| last_attempt.get(id).copied().unwrap_or(0)),
                    };
                }
            }
            Next::Compensate(i) => {
                let id = plan.steps[i].id.as_str();
                let journaled = record(i).map_or(StepState::Pending, |r| r.state);
                match journaled {
                    StepState::Compensated | StepState::CompensationFailed => {
                        notes.push(format!("step {id}: compensated as the plan says"));
                        views[i].state = journaled;
                    }
                    other if run_state == RunState::Compensating => {
                        notes.push(format!(
                            "step {id}: {} (its compensation has not run yet)",
                            other.as_str()
                        ));
                        return (notes, problems);
                    }
                    other => {
                        problems.push(format!(
                            "step {id}: the plan compensates it next but the journal says {}",
                            other.as_str()
                        ));
                        return (notes, problems);
                    }
                }
            }
            Next::Wait => {
                if !matches!(
                    run_state,
                    RunState::Waiting | RunState::Cancelled | RunState::Running
                ) {
                    problems.push(format!(
                        "the plan waits (for a human) here but the run is {}",
                        run_state.as_str()
                    ));
                }
                return (notes, problems);
            }
            Next::Finish(state) => {
                if state != run_state && run_state != RunState::Cancelled {
                    problems.push(format!(
                        "the plan ends the run {} but the journal says {}",
                        state.as_str(),
                        run_state.as_str()
                    ));
                }
                return (notes, problems);
            }
        }
    }
    problems.push("the walk over the plan did not end".into());
    (notes, problems)
}

/// Runs `warden audit replay --run <id>`.
pub fn run(
    run_id: &str,
    data_dir: &Path,
    db: &Path,
    source: &PlanSource,
    engine: SandboxConfig,
) -> anyhow::Result<ExitCode> {
    let store = SqliteRunStore::read_only(db, data_dir)
        .with_context(|| format!("opening the run journal in {}", db.display()))?;
    let Some(store) = store else {
        eprintln!(
            "error: no run journal in {} or {} (runs are journaled by the daemon in its audit database)",
            db.display(),
            data_dir.join(RUNS_FILE).display()
        );
        return Ok(ExitCode::from(2));
    };
    let Some(journal) = store.journal(run_id)? else {
        eprintln!("error: no run `{run_id}` in {}", store.path().display());
        return Ok(ExitCode::from(2));
    };
    let run = &journal.run;
    println!(
        "run {} of workflow {} (plan {}): {}",
        run.id,
        run.workflow,
        run.plan_hash,
        run.state.as_str()
    );
    let plan = match find_plan(source, &run.workflow, &run.plan_hash) {
        Ok(p) => p,
        Err(e) => {
            println!("plan: MISMATCH: {e:#}");
            return Ok(ExitCode::from(super::audit::EXIT_NOT_VERIFIED));
        }
    };
    let reader = AuditReader::open(db).with_context(|| format!("opening {}", db.display()))?;
    let evidence = DataDir {
        reader,
        artifacts: ArtifactStore::in_data_dir(data_dir),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut replayer = Replayer::new(engine).context("starting the engine")?;
    let mut summary = Summary::default();
    let mut problems: Vec<String> = Vec::new();
    let mut last_attempt: BTreeMap<String, u64> = BTreeMap::new();
    for step in &journal.steps {
        println!(
            "step {}: {}, {} attempt(s), audit {:?}",
            step.step,
            step.state.as_str(),
            step.attempts,
            step.audit_seqs
        );
        let attempt_id = format!("{run_id}.{}", step.step);
        let compensation_id = format!("{attempt_id}.compensate");
        let mut last: Option<AuditEntry> = None;
        for &seq in &step.audit_seqs {
            let Some(e) = entry(&evidence.reader, seq)? else {
                problems.push(format!("step {}: audit entry {seq} is missing", step.step));
                continue;
            };
            let rid = &e.entry.request_id;
            // The step's attempts and compensation, or its `skip` event.
            let of_step = *rid == attempt_id || *rid == compensation_id;
            if !(of_step || e.entry.event == EventKind::Workflow) {
                problems.push(format!(
                    "step {}: audit entry {seq} is request `{rid}`, not this step's",
                    step.step
                ));
                continue;
            }
            let r = runtime.block_on(replayer.replay(&e, &evidence));
            println!("  {r}");
            summary.add(&r);
            if *rid == attempt_id {
                last_attempt.insert(step.step.clone(), seq);
                last = Some(e);
            }
        }
        // A done step's journaled output is what its last attempt's entry commits to.
        let finished_ok = matches!(
            step.state,
            StepState::Done | StepState::Compensated | StepState::CompensationFailed
        );
        let is_call = plan
            .steps
            .iter()
            .find(|s| s.id.as_str() == step.step)
            .is_some_and(|s| matches!(s.action, Action::Call(_)));
        if finished_ok && is_call {
            match &last {
                None => problems.push(format!(
                    "step {}: {} but no attempt of it is in the audit trail",
                    step.step,
                    step.state.as_str()
                )),
                Some(e) => {
                    let out = step.output.clone().unwrap_or(serde_json::Value::Null);
                    let wrapped = serde_json::json!({ "ok": out.clone() });
                    let committed = e.entry.output_sha256;
                    if e.entry.outcome.as_string() != "ok" {
                        problems.push(format!(
                            "step {}: journaled {} but its last attempt (#{}) ended {}",
                            step.step,
                            step.state.as_str(),
                            e.seq,
                            e.entry.outcome
                        ));
                    } else if committed.is_some()
                        && committed != Some(Hash256::of_json(&out))
                        && committed != Some(Hash256::of_json(&wrapped))
                    {
                        problems.push(format!(
                            "step {}: the journaled output is not the output audit entry #{} commits to",
                            step.step, e.seq
                        ));
                    }
                }
            }
        }
    }
    let (notes, flow) = check_flow(&plan, &journal, &last_attempt);
    for n in notes {
        println!("  {n}");
    }
    problems.extend(flow);
    for p in &problems {
        println!("control flow: MISMATCH: {p}");
    }
    if problems.is_empty() {
        println!("control flow: matches plan {} (saga::next)", run.plan_hash);
    }
    println!("{summary}");
    Ok(if summary.ok() && problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::audit::EXIT_NOT_VERIFIED)
    })
}
