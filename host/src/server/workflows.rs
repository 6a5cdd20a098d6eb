//! The daemon's workflow stage (docs/workflows.md): loading and checking
//! `workflows_dir` with each deployment, starting a run for a request whose
//! route names a workflow (the branch of [`super::submit`] after route),
//! driving runs on tasks through the library executor, resuming unfinished
//! runs at start, and the runs API (`GET /v1/runs[/{id}]`,
//! `POST /v1/runs/{id}/cancel|resume`).
//!
//! It must never decide a run's control flow (that is
//! [`crate::workflow::saga`] through the executor), run guest code other
//! than through the executor (`Host::invoke_capability`), append audit
//! entries other than through the host's `Recorder`, or drive one run from
//! two tasks at once (`Daemon::driving` is the one guard).

use super::auth::Principal;
use super::config::{DaemonConfig, Role};
use super::errors::ApiError;
use super::{Daemon, Deployment};
use crate::pipeline::Refusal;
use crate::pipeline::answer::{Answer, RunRef};
use crate::store::{RunRecord, RunState, RunStore};
use crate::workflow::catalog::ShapeCatalog;
use crate::workflow::executor::Executor;
use crate::workflow::validate::validate;
use crate::workflow::{Catalog, Checked, Plan, check};
use crate::{Call, Capability, Outcome, Usage};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

type Shared = State<Arc<Daemon>>;

/// Roles of the runs API (docs/api.md "Roles").
pub mod roles {
    use super::Role;
    /// `GET /v1/runs[/{id}]`: submitters see their own runs, auditors every run.
    pub const READ_RUNS: &[Role] = &[Role::Submit, Role::Audit];
    /// `POST /v1/runs/{id}/cancel|resume`.
    pub const CONTROL_RUNS: &[Role] = &[Role::Approve];
}

/// A checked workflow plan of a deployment.
#[derive(Debug)]
pub struct Loaded {
    /// The plan.
    pub plan: Plan,
    /// Its journal order.
    pub checked: Checked,
}

/// Loads every `*.toml` of `config.workflows_dir` (a missing directory:
/// none) and checks each against `caps`; every problem goes to `errors`
/// as `file:line: message`.
pub(super) fn load(
    config: &DaemonConfig,
    caps: &BTreeMap<String, Arc<Capability>>,
    errors: &mut Vec<String>,
) -> BTreeMap<String, Arc<Loaded>> {
    let mut out = BTreeMap::new();
    let dir = &config.workflows_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            errors.push(format!(
                "{}: cannot read the workflows directory: {e}",
                dir.display()
            ));
            return out;
        }
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut catalog = ShapeCatalog::new();
    for (name, cap) in caps {
        catalog.insert(name, cap.shape.clone());
    }
    for file in files {
        let checked = Plan::load(&file)
            .and_then(|plan| check(&plan, Some(&catalog as &dyn Catalog)).map(|c| (plan, c)));
        match checked {
            Ok((plan, checked)) => {
                let name = plan.name.to_string();
                if out.contains_key(&name) {
                    errors.push(format!(
                        "{}: workflow `{name}` is also defined by another plan",
                        file.display()
                    ));
                    continue;
                }
                // Its approval steps can be decided by the configured
                // principals, as a policy's [[approval]] rules must be.
                for step in &plan.steps {
                    if let crate::workflow::plan::Action::Approval(gate) = &step.action {
                        let at = format!("{}: approval step `{}`", file.display(), step.id);
                        config.check_gate(&at, &gate.approvers, gate.mode, errors);
                    }
                }
                out.insert(name, Arc::new(Loaded { plan, checked }));
            }
            Err(e) => errors.extend(e.to_string().lines().map(str::to_string)),
        }
    }
    out
}

/// Longest `wait` of a request that starts a run.
const MAX_RUN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Daemon {
    /// The workflow branch of the request path: `call` (admitted, routed by
    /// rule `rule_id` to workflow `name`) starts a run. A refused input is
    /// `422`, audited, before anything is journaled. The run id is the
    /// request id. Answers once the run is journaled (or over, or `wait`
    /// has passed).
    pub(super) async fn start_run(
        self: &Arc<Self>,
        deployment: Arc<Deployment>,
        call: Call,
        rule_id: &str,
        name: &str,
        wait: Option<std::time::Duration>,
    ) -> Answer {
        let Some(loaded) = deployment.workflows.get(name).cloned() else {
            let refusal = Refusal::new(
                Outcome::NoRoute,
                format!("route `{rule_id}` names workflow `{name}`, which is not loaded"),
            );
            return self.refused(&refusal, &call, Some(rule_id), "policy").await;
        };
        let problems = validate(&loaded.plan.input, &call.input);
        if !problems.is_empty() {
            let refusal = Refusal::new(
                Outcome::InvalidInput,
                format!(
                    "the input does not match workflow `{name}`'s declared type: {}",
                    problems.join("; ")
                ),
            );
            return self
                .refused(&refusal, &call, Some(rule_id), "invalid_input")
                .await;
        }
        let run_id = call.request_id.clone().unwrap_or_default();
        let begun = {
            // The run's steps run for the tenant of the request that started it.
            let exec = Executor::with_capabilities(
                &self.host,
                self.runs.as_ref(),
                &deployment.capabilities,
            )
            .for_tenant(call.tenant.clone());
            exec.begin(
                &loaded.plan,
                &loaded.checked,
                &run_id,
                &call.principal,
                call.input.clone(),
            )
            .await
        };
        if let Err(e) = begun {
            let refusal = Refusal::new(Outcome::Transient, e.to_string());
            return self.refused(&refusal, &call, Some(rule_id), "policy").await;
        }
        let mut state = RunState::Running;
        let task = self.drive_run(deployment, loaded, run_id.clone());
        // Dropping the handle on timeout detaches the task; the run goes on.
        if let (Some(task), Some(wait)) = (task, wait)
            && let Ok(Ok(Some(s))) = tokio::time::timeout(wait.min(MAX_RUN_WAIT), task).await
        {
            state = s;
        }
        Answer {
            request_id: run_id.clone(),
            outcome: Outcome::Ok,
            output: None,
            error: None,
            usage: Usage::default(),
            capability: String::new(),
            function: String::new(),
            route: Some(rule_id.to_string()),
            component_digest: String::new(),
            policy_hash: String::new(),
            attempts: 0,
            tenant: call.tenant.clone(),
            audit: None,
            replayed: false,
            error_code: None,
            run: Some(RunRef {
                run_id,
                workflow: name.to_string(),
                state: state.as_str().to_string(),
            }),
            approval: None,
            retry_after: None,
        }
    }

    /// Drives run `run_id` on a task, unless a task drives it already
    /// (`None` then). The task ends with the state the run stopped in.
    /// Between drives it settles the run's approval steps with their held
    /// approvals ([`Daemon::settle_approvals`]), and once it has let go of
    /// the run it settles once more, so a decision that landed while it
    /// held the guard is never missed.
    pub(super) fn drive_run(
        self: &Arc<Self>,
        deployment: Arc<Deployment>,
        loaded: Arc<Loaded>,
        run_id: String,
    ) -> Option<tokio::task::JoinHandle<Option<RunState>>> {
        if !try_guard(self, &run_id) {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let state = this.drive_task(&deployment, &loaded, &run_id).await;
            if let Some(state) = state {
                this.run_stopped(&loaded.plan, &run_id, state).await;
            }
            state
        }))
    }

    /// The body of [`drive_run`](Self::drive_run)'s task, which holds the
    /// run's guard: drives, applies a cancel asked for meanwhile, settles
    /// approval steps, until the run stops; the guard is released.
    async fn drive_task(
        self: &Arc<Self>,
        deployment: &Deployment,
        loaded: &Loaded,
        run_id: &str,
    ) -> Option<RunState> {
        loop {
            let result = self.drive_settled(deployment, loaded, run_id).await;
            let last = match result {
                Ok(state) => Some(state),
                Err(e) => {
                    release_guard(self, run_id);
                    tracing::error!(run = run_id, "workflow run stopped: {e}");
                    return None;
                }
            };
            // An operator's cancel that came while a step executed is
            // applied here, at the step boundary, before letting go.
            if let Some(request) = release_or_take_cancel(self, run_id) {
                match self.apply_cancel(deployment, loaded, run_id, request).await {
                    Ok(Some(state)) => {
                        release_guard(self, run_id);
                        return Some(state);
                    }
                    // Refused (past the pivot): the run goes on.
                    Ok(None) => continue,
                    Err(e) => {
                        release_guard(self, run_id);
                        tracing::error!(run = run_id, "cancelling the run: {e}");
                        return None;
                    }
                }
            }
            if last != Some(RunState::Waiting) || !try_guard(self, run_id) {
                return last;
            }
            match self.settle_approvals(loaded, run_id).await {
                Ok(true) => continue,
                Ok(false) => {
                    if let Some(request) = release_or_take_cancel(self, run_id) {
                        let r = self.apply_cancel(deployment, loaded, run_id, request).await;
                        release_guard(self, run_id);
                        return r.ok().flatten().or(last);
                    }
                    return last;
                }
                Err(e) => {
                    release_guard(self, run_id);
                    tracing::error!(run = run_id, "settling approval steps: {e}");
                    return last;
                }
            }
        }
    }

    /// Applies an operator's cancel under the run's guard: refused (audited
    /// `cancel_refused`, `Ok(None)`) once the pivot is done; otherwise the
    /// `cancel` entry, the compensations and the end, and the run's
    /// pending approvals end with it.
    async fn apply_cancel(
        self: &Arc<Self>,
        deployment: &Deployment,
        loaded: &Loaded,
        run_id: &str,
        request: CancelRequest,
    ) -> Result<Option<RunState>, String> {
        let journal = {
            let store = self.runs.clone();
            let id = run_id.to_string();
            tokio::task::spawn_blocking(move || store.journal(&id))
                .await
                .map_err(|e| format!("run store task failed: {e}"))?
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no run `{run_id}` in the journal"))?
        };
        if journal.run.state.is_final() {
            return Ok(Some(journal.run.state));
        }
        // Compensations run the versions the run pinned.
        let caps = self
            .pinned_capabilities(deployment, &loaded.plan, run_id)
            .await?;
        let exec = Executor::with_capabilities(&self.host, self.runs.as_ref(), &caps)
            .observed_by(self.as_ref())
            .slotted_by(self.as_ref());
        if let Some(pivot) = pivot_done(loaded, &journal) {
            exec.audit_event(
                &request.by,
                Outcome::Denied,
                json!({"run": run_id, "workflow": loaded.plan.name.as_str(),
                       "event": "cancel_refused", "by": request.by, "reason": request.reason,
                       "why": format!("the run is past its pivot `{pivot}`")}),
            )
            .await
            .map_err(|e| e.to_string())?;
            return Ok(None);
        }
        exec.audit_event(
            &request.by,
            Outcome::Ok,
            json!({"run": run_id, "workflow": loaded.plan.name.as_str(), "event": "cancel",
                   "by": request.by, "reason": request.reason}),
        )
        .await
        .map_err(|e| e.to_string())?;
        let state = exec
            .cancel(&loaded.plan, run_id)
            .await
            .map_err(|e| e.to_string())?;
        // Its still-pending approval steps end with it.
        self.settle_approvals(loaded, run_id).await?;
        Ok(Some(state))
    }

    /// Drives the run until it stops, settling its approval steps each
    /// time it waits; the caller holds the run's guard.
    async fn drive_settled(
        self: &Arc<Self>,
        deployment: &Deployment,
        loaded: &Loaded,
        run_id: &str,
    ) -> Result<RunState, String> {
        // The versions the run pinned, whatever the deployment holds now.
        let caps = self
            .pinned_capabilities(deployment, &loaded.plan, run_id)
            .await?;
        let cancelled: crate::workflow::executor::Stop = {
            let this = self.clone();
            let run_id = run_id.to_string();
            Arc::new(move || {
                this.cancel_requests
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains_key(&run_id)
            })
        };
        loop {
            let state = {
                let exec = Executor::with_capabilities(&self.host, self.runs.as_ref(), &caps)
                    .observed_by(self.as_ref())
                    .slotted_by(self.as_ref())
                    .stopping_when(cancelled.clone());
                exec.drive(&loaded.plan, run_id)
                    .await
                    .map_err(|e| e.to_string())?
            };
            if cancelled() {
                return Ok(state);
            }
            let changed = self.settle_approvals(loaded, run_id).await?;
            if !changed || state.is_final() {
                return Ok(state);
            }
        }
    }

    /// Resumes every unfinished run, each on a task, under the current
    /// deployment: `running` and `compensating` runs are driven on; runs
    /// waiting for a human stay waiting (their approval steps are settled
    /// with `state.db`: a decision taken before a crash is applied). A run whose workflow is no longer loaded, or whose plan
    /// changed, is left as it is (logged).
    pub(super) async fn resume_runs(self: &Arc<Self>) {
        let runs = {
            let store = self.runs.clone();
            tokio::task::spawn_blocking(move || store.unfinished()).await
        };
        let runs = match runs {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!("reading unfinished runs: {e}");
                return;
            }
            Err(e) => {
                tracing::error!("reading unfinished runs: {e}");
                return;
            }
        };
        let deployment = self.deployment();
        for run in runs {
            match deployment.workflows.get(&run.workflow) {
                Some(loaded) => {
                    self.drive_run(deployment.clone(), loaded.clone(), run.id.clone());
                }
                None => tracing::error!(
                    run = run.id,
                    "cannot resume: workflow `{}` is not loaded",
                    run.workflow
                ),
            }
        }
    }

    /// A run `principal` may see: its own, or any with the `audit` role.
    async fn visible_run(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<crate::store::Journal, ApiError> {
        let journal = {
            let store = self.runs.clone();
            let id = id.to_string();
            tokio::task::spawn_blocking(move || store.journal(&id))
                .await
                .map_err(|e| ApiError::internal(format!("run store task failed: {e}")))?
                .map_err(|e| ApiError::internal(e.to_string()))?
        };
        match journal {
            Some(j)
                if principal.roles.contains(&Role::Audit)
                    || principal.roles.contains(&Role::Approve)
                    || j.run.principal == principal.name =>
            {
                Ok(j)
            }
            _ => Err(ApiError::not_found(format!("no run `{id}` visible to you"))),
        }
    }
}

/// A run as the API shows it (docs/api.md "Runs").
fn run_json(run: &RunRecord) -> Value {
    json!({
        "run_id": run.id,
        "workflow": run.workflow,
        "state": run.state.as_str(),
        "principal": run.principal,
        "tenant": run.tenant,
        "plan_hash": run.plan_hash,
        "input_sha256": run.input_hash,
        "pins": run.pins,
        "created_ms": run.created_ms,
        "updated_ms": run.updated_ms,
    })
}

fn journal_json(j: &crate::store::Journal) -> Value {
    let mut v = run_json(&j.run);
    v["input"] = j.run.input.clone();
    v["steps"] = j
        .steps
        .iter()
        .map(|s| {
            json!({
                "step": s.step,
                "state": s.state.as_str(),
                "attempts": s.attempts,
                "outcome": s.outcome,
                "output": s.output,
                "audit_seqs": s.audit_seqs,
                "updated_ms": s.updated_ms,
            })
        })
        .collect();
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/runs?state=…&limit=…`.
pub(super) async fn list(
    State(d): Shared,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, roles::READ_RUNS)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "state `{s}` is not one of {}",
                    RunState::ALL.map(RunState::as_str).join(", ")
                ),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100).min(1000);
    let store = d.runs.clone();
    let runs = tokio::task::spawn_blocking(move || store.runs(state, usize::MAX))
        .await
        .map_err(|e| ApiError::internal(format!("run store task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let all = principal.roles.contains(&Role::Audit);
    let runs: Vec<Value> = runs
        .iter()
        .filter(|r| all || r.principal == principal.name)
        .take(limit)
        .map(run_json)
        .collect();
    Ok(axum::Json(json!({ "runs": runs })).into_response())
}

/// `GET /v1/runs/{id}`.
pub(super) async fn show(
    State(d): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let principal = d.auth(&headers, roles::READ_RUNS)?;
    let journal = d.visible_run(&principal, &id).await?;
    Ok(axum::Json(journal_json(&journal)).into_response())
}

/// An operator's cancel of a run a task drives, applied at its next step
/// boundary.
#[derive(Debug, Clone)]
pub(super) struct CancelRequest {
    /// Who cancelled.
    by: String,
    /// Why, as given.
    reason: Option<String>,
}

/// The pivot of the run's plan, when the journal has it `done`.
fn pivot_done(loaded: &Loaded, journal: &crate::store::Journal) -> Option<String> {
    let pivot = loaded.plan.steps.iter().find(|s| s.pivot)?;
    journal
        .steps
        .iter()
        .any(|r| r.step == pivot.id.as_str() && r.state == crate::store::StepState::Done)
        .then(|| pivot.id.to_string())
}

/// Lets go of the run's guard, unless a cancel was asked for meanwhile:
/// then the guard is kept and the request returned (checked and released
/// under the `driving` lock, so no request is ever missed).
fn release_or_take_cancel(d: &Daemon, id: &str) -> Option<CancelRequest> {
    let mut driving = d
        .driving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let request = d
        .cancel_requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(id);
    if request.is_none() {
        driving.remove(id);
    }
    request
}

/// Takes the run's drive guard; `false` when it is taken.
fn try_guard(d: &Daemon, id: &str) -> bool {
    d.driving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id.to_string())
}

/// Takes the run's drive guard for an operator action: refused (`409`)
/// while a task drives the run.
fn take_guard(d: &Daemon, id: &str) -> Result<(), ApiError> {
    let mut driving = d
        .driving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !driving.insert(id.to_string()) {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "run_busy",
            format!("run `{id}` is executing a step; retry once it has stopped"),
        ));
    }
    Ok(())
}

fn release_guard(d: &Daemon, id: &str) {
    d.driving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(id);
}

/// `POST /v1/runs/{id}/cancel`: compensates every done step (reverse
/// completion order), then the run is `cancelled` (`needs_attention` when
/// a compensation fails). A final run is `409 run_final`, a run past its
/// pivot `409 past_pivot`. While a step executes the cancel is accepted
/// (`202`, `"cancel": "requested"`) and applied by the task driving the
/// run once the step ends: the step finishes (it is not interrupted), no
/// later step starts, then the compensations run.
/// (The handler in `api.rs` authenticates and reads the body.)
pub(super) async fn cancel(
    d: Arc<Daemon>,
    principal: Principal,
    id: String,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let journal = d.visible_run(&principal, &id).await?;
    if journal.run.state.is_final() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "run_final",
            format!("run `{id}` is already {}", journal.run.state.as_str()),
        ));
    }
    let deployment = d.deployment();
    let Some(loaded) = deployment.workflows.get(&journal.run.workflow).cloned() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "workflow_not_loaded",
            format!(
                "workflow `{}` of run `{id}` is not loaded",
                journal.run.workflow
            ),
        ));
    };
    if let Some(pivot) = pivot_done(&loaded, &journal) {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "past_pivot",
            format!(
                "run `{id}` is past its pivot `{pivot}`: it is not undone by a cancel (resolve it as an operator)"
            ),
        ));
    }
    let request = CancelRequest {
        by: principal.name.clone(),
        reason,
    };
    let took_guard = {
        let mut driving = d
            .driving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let took = driving.insert(id.clone());
        if !took {
            // A task drives the run (a step executes): it applies the
            // cancel at the step boundary. The first request is the one
            // applied (and audited).
            d.cancel_requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(id.clone())
                .or_insert_with(|| request.clone());
        }
        took
    };
    if took_guard {
        return cancel_now(d, deployment, loaded, id, journal.run.state, request).await;
    }
    // Answer with the outcome when that comes soon (a run between two
    // decisions), else `202`.
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    let mut state = journal.run.state;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let store = d.runs.clone();
        let rid = id.clone();
        if let Ok(Ok(Some(j))) = tokio::task::spawn_blocking(move || store.journal(&rid)).await {
            state = j.run.state;
            if state.is_final() {
                return Ok(
                    axum::Json(json!({"run_id": id, "state": state.as_str()})).into_response()
                );
            }
        }
    }
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({"run_id": id, "state": state.as_str(), "cancel": "requested"})),
    )
        .into_response())
}

/// How long a cancel of a run a task drives waits for it to apply before
/// answering `202`.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Cancels a run nobody drives; the caller has taken its guard, which is
/// released here.
async fn cancel_now(
    d: Arc<Daemon>,
    deployment: Arc<Deployment>,
    loaded: Arc<Loaded>,
    id: String,
    was: RunState,
    request: CancelRequest,
) -> Result<Response, ApiError> {
    let task = tokio::spawn({
        let d = d.clone();
        let id = id.clone();
        async move {
            let r = d.apply_cancel(&deployment, &loaded, &id, request).await;
            if let Ok(Some(state)) = &r {
                d.run_stopped(&loaded.plan, &id, *state).await;
            }
            // A cancel asked for meanwhile is this one.
            d.cancel_requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
            release_guard(&d, &id);
            r
        }
    });
    let state = task
        .await
        .map_err(|e| ApiError::internal(format!("cancel task failed: {e}")))?
        .map_err(ApiError::internal)?;
    let state = state.unwrap_or(was);
    Ok(axum::Json(json!({"run_id": id, "state": state.as_str()})).into_response())
}

/// `POST /v1/runs/{id}/resume` with a required `reason`: only from
/// `needs_attention`. Failed steps run again (same request id), failed
/// compensations are tried again; audited (`workflow` entry, `resume`).
/// (The handler in `api.rs` authenticates and reads the body.)
pub(super) async fn resume(
    d: Arc<Daemon>,
    principal: Principal,
    id: String,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let reason = reason.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("reason_required", "`reason` is required to resume a run")
    })?;
    let journal = d.visible_run(&principal, &id).await?;
    if journal.run.state != RunState::NeedsAttention {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "run_not_stopped",
            format!(
                "run `{id}` is {}: only a run in needs_attention resumes",
                journal.run.state.as_str()
            ),
        ));
    }
    let deployment = d.deployment();
    let Some(loaded) = deployment.workflows.get(&journal.run.workflow).cloned() else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "workflow_not_loaded",
            format!(
                "workflow `{}` of run `{id}` is not loaded",
                journal.run.workflow
            ),
        ));
    };
    take_guard(&d, &id)?;
    let reset = async {
        let exec = Executor::with_capabilities(&d.host, d.runs.as_ref(), &deployment.capabilities);
        exec.audit_event(
            &principal.name,
            Outcome::Ok,
            json!({"run": id, "workflow": loaded.plan.name.as_str(), "event": "resume",
                   "by": principal.name, "reason": reason}),
        )
        .await
        .map_err(|e| e.to_string())?;
        for mut step in journal.steps.clone() {
            step.state = match step.state {
                crate::store::StepState::Failed => crate::store::StepState::Pending,
                crate::store::StepState::CompensationFailed => crate::store::StepState::Done,
                _ => continue,
            };
            step.updated_ms = crate::units::now_ms();
            d.runs
                .record_step(&id, &step, None)
                .await
                .map_err(|e| e.to_string())?;
        }
        d.runs
            .set_state(&id, RunState::Running)
            .await
            .map_err(|e| e.to_string())
    };
    let reset = reset.await;
    release_guard(&d, &id);
    reset.map_err(ApiError::internal)?;
    d.drive_run(deployment, loaded, id.clone());
    Ok(axum::Json(json!({"run_id": id, "state": RunState::Running.as_str()})).into_response())
}
