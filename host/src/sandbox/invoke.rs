//! One invocation: fresh Store, budgets set, instantiate from the cached
//! `InstancePre`, call, classify how it ended.
//!
//! Interface budgets, commits and summaries are asked of every interface
//! alike ([`Interfaces`]); this module never names one.

use super::Sandbox;
use super::state::{InvocationIdentity, InvocationState};
use crate::audit::HostCall;
use crate::component::ExportFunc;
use crate::component::convert::{OutputOverBudget, val_to_json};
use crate::interfaces::log::LogLine;
use crate::interfaces::{FinishError, HostServices, Interfaces};
use crate::outcome::{Budget, Outcome, Usage};
use crate::policy::{Fuel, Policy};
use serde_json::Value;
use std::time::{Duration, Instant};
use wasmtime::component::{InstancePre, Val};
use wasmtime::{Store, Trap, UpdateDeadline};

/// How one call ended, with everything the invocation record needs.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The outcome class.
    pub outcome: Outcome,
    /// The output JSON: the result for `ok`, the `{"err": ..}` for `capability_error`.
    pub output: Option<Value>,
    /// Why it failed, for every outcome but `ok`.
    pub error: Option<String>,
    /// Fuel, peak memory, wall time.
    pub usage: Usage,
    /// Captured stdout (capped).
    pub stdout: Vec<u8>,
    /// Captured stderr (capped).
    pub stderr: Vec<u8>,
    /// Lines written through `warden:host/log`.
    pub logs: Vec<LogLine>,
    /// Log lines dropped over the log budget.
    pub logs_dropped: u64,
    /// Summaries of host calls with authority (kv, model, HTTP, filesystem).
    pub host_calls: Vec<HostCall>,
    /// Whether a call reached outside the host (HTTP, model).
    pub external_calls: bool,
    /// Results from outside the sandbox, in call order (payloads of the
    /// entry; empty when replaying or not replayable).
    pub recorded: Vec<Vec<u8>>,
    /// Why the invocation cannot be replayed, if it cannot.
    pub not_replayable: Option<String>,
    /// Replaying: how the guest's calls departed from the recording.
    pub divergence: Option<String>,
}

impl CallOutcome {
    /// An invocation that could not start (host-side failure).
    fn not_started(outcome: Outcome, error: String) -> CallOutcome {
        CallOutcome {
            outcome,
            output: None,
            error: Some(error),
            usage: Usage::default(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            host_calls: Vec::new(),
            external_calls: false,
            recorded: Vec::new(),
            not_replayable: None,
            divergence: None,
        }
    }
}

/// Runs `export` with `params` in a fresh instance under `policy`'s budgets.
///
/// `links_imports` says whether anything is linked into the instance (the
/// component has imports, all granted). Without imports the guest cannot
/// wait in a host call, so the epoch deadline alone bounds its time and the
/// async timeout (a timer registration per call) is skipped.
///
/// `timeout` (a workflow step's) shortens the wall time when it is smaller
/// than the policy's `wall_time`; it is enforced the same way (epoch
/// deadline and async timeout) and ends the same way
/// (`budget_exhausted:time`), with a message naming the step timeout.
#[allow(clippy::too_many_arguments)]
pub async fn invoke(
    sandbox: &Sandbox,
    pre: &InstancePre<InvocationState>,
    policy: &Policy,
    export: &ExportFunc,
    params: Vec<Val>,
    id: &InvocationIdentity<'_>,
    services: &std::sync::Arc<HostServices>,
    links_imports: bool,
    timeout: Option<Duration>,
) -> CallOutcome {
    let state = match InvocationState::new(policy, id, services, links_imports) {
        Ok(s) => s,
        Err(e) => {
            return CallOutcome::not_started(
                Outcome::Transient,
                format!("could not prepare the sandbox: {e}"),
            );
        }
    };
    let mut store = Store::new(sandbox.engine(), state);
    store.limiter(|s| &mut s.limiter);
    let metering = sandbox.config().fuel_metering;
    let fuel_budget = match policy.budget.fuel {
        Fuel::Limit(n) => n,
        Fuel::Off => u64::MAX,
    };
    if metering {
        // Cannot fail: metering is enabled on this engine.
        let _ = store.set_fuel(fuel_budget);
    }
    store.set_hostcall_fuel(transfer_budget(policy));
    store.set_max_component_handles(super::state::MAX_LIVE_HANDLES);
    let policy_wall_time = policy.budget.wall_time.get();
    // A step timeout shorter than the policy's wall time replaces it (and
    // names itself when it runs out).
    let step_timeout = timeout.filter(|t| *t < policy_wall_time);
    let wall_time = step_timeout.unwrap_or(policy_wall_time);
    let started = Instant::now();
    // `None`: a wall time too large to be a point in time never ends.
    yield_every_tick_until(&mut store, started.checked_add(wall_time));
    // The epoch deadline stops guest code; this timeout also bounds time the
    // guest spends waiting in host calls. A small grace lets the epoch trap
    // (which reports precisely) win for CPU-bound guests.
    let grace = sandbox.config().epoch_tick * 4 + Duration::from_millis(20);
    let result_count = usize::from(export.result.is_some());
    // Pinned in place, not boxed: wasmtime's instantiation future alone is
    // ~1.2 KB, past the allocator's per-thread cache, and a boxed one cost
    // more per call (an uncached allocation and free) than carrying it in
    // this future does (BENCHMARKS.md, issue 15 third pass). The block ends
    // the future's borrow of the store before the usage is read.
    let ended = {
        let call = std::pin::pin!(async {
            let instance = match pre.instantiate_async(&mut store).await {
                Ok(instance) => instance,
                // The host's side of instantiation failed (an OS refusal while
                // setting up the instance's memory, not guest code): once more.
                Err(e) if host_side(&e, &store.data().limiter) => pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| Failure::of(e, store.data()))?,
                Err(e) => return Err(Failure::Guest(e)),
            };
            let func = instance.get_func(&mut store, export.index).ok_or_else(|| {
                Failure::Guest(wasmtime::format_err!(
                    "export `{}` vanished after instantiation",
                    export.id
                ))
            })?;
            // At most one result (a WIT function returns one value or
            // none): a slot on the stack, not a vector.
            let mut results = [Val::Bool(false)];
            let slots = results.get_mut(..result_count).unwrap_or_default();
            func.call_async(&mut store, &params, slots)
                .await
                .map_err(Failure::Guest)?;
            let [result] = results;
            Ok::<_, Failure>((result_count > 0).then_some(result))
        });
        if links_imports {
            tokio::time::timeout(wall_time.saturating_add(grace), call).await
        } else {
            Ok(call.await)
        }
    };
    let elapsed = started.elapsed();

    let fuel_used = if metering {
        fuel_budget.saturating_sub(store.get_fuel().unwrap_or(0))
    } else {
        0
    };
    let usage = Usage {
        fuel: if policy.budget.fuel == Fuel::Off {
            fuel_used.min(u64::MAX / 2)
        } else {
            fuel_used
        },
        peak_memory: store.data().limiter.peak_memory,
        wall_time_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    };
    let (outcome, output, error) = match ended {
        Err(_elapsed) => (
            Outcome::BudgetExhausted(Budget::Time),
            None,
            Some(out_of_time(step_timeout, policy)),
        ),
        Ok(Err(Failure::Guest(err))) => {
            let (outcome, why) = classify(&err, store.data(), policy, step_timeout);
            (outcome, None, Some(why))
        }
        Ok(Err(Failure::Host(err))) => (
            Outcome::Transient,
            None,
            Some(format!(
                "the host could not instantiate the component (tried twice; no guest code ran): {}",
                first_line(&err)
            )),
        ),
        Ok(Ok(result)) => finish(result, export, policy).await,
    };
    let (outcome, output, error) = host_budgets(outcome, output, error, &store.data().interfaces);
    let (outcome, output, error) =
        commit_writes(outcome, output, error, &mut store.data_mut().interfaces);
    let mut interfaces = store.into_data().interfaces;
    interfaces.summarise();
    let (recorded, not_replayable, divergence) = {
        let mut r = crate::interfaces::recording::lock(&interfaces.recording);
        let divergence = r.divergence().map(str::to_string).or_else(|| {
            r.unconsumed()
                .map(|c| format!("diverged: the recorded call {} was never made", c.call))
        });
        let (recorded, why) = r.finish();
        (recorded, why, divergence)
    };
    CallOutcome {
        recorded,
        not_replayable,
        divergence,
        outcome,
        output,
        error,
        usage,
        stdout: interfaces.wasi.stdout().to_vec(),
        stderr: interfaces.wasi.stderr().to_vec(),
        logs: interfaces.log.lines,
        logs_dropped: interfaces.log.dropped,
        external_calls: interfaces.calls.external,
        host_calls: interfaces.calls.into_summaries(),
    }
}

type Ending = (Outcome, Option<Value>, Option<String>);

/// Guest code yields to the async executor at every epoch tick and traps
/// (`Trap::Interrupt`, reported as `budget_exhausted:time`) at the first
/// tick past `deadline` (never, without one). A CPU-bound guest therefore holds a runtime worker
/// for at most one tick at a time: invocations can run on the same workers
/// as the HTTP server (or an embedder's own tasks) without stalling them.
fn yield_every_tick_until(store: &mut Store<InvocationState>, deadline: Option<Instant>) {
    store.set_epoch_deadline(1);
    // The deadline lives in the Store data: a callback that captures
    // nothing is boxed without an allocation.
    store.data_mut().deadline = deadline;
    store.epoch_deadline_callback(|store| {
        let deadline = store.data().deadline;
        Ok(if deadline.is_some_and(|d| Instant::now() >= d) {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
}

/// Host-interface budgets. A budget an interface call crossed (tokens spent
/// past the budget, a kv call past `max_calls`, an HTTP or filesystem
/// limit) ends the invocation `budget_exhausted:<that>` whatever the guest
/// did next (output withheld). A failing invocation (trap or capability
/// error) that had a call refused for a budget (kv quota, no tokens left)
/// is `budget_exhausted:<that>`. Which interface is asked first is defined
/// by [`Interfaces::overrun`]'s unit order.
fn host_budgets(
    outcome: Outcome,
    output: Option<Value>,
    error: Option<String>,
    interfaces: &Interfaces,
) -> Ending {
    if let Some(o) = interfaces.overrun() {
        return (Outcome::BudgetExhausted(o.budget), None, Some(o.why));
    }
    if matches!(outcome, Outcome::Trap | Outcome::CapabilityError)
        && let Some(o) = interfaces.refused()
    {
        let then = error.unwrap_or_default();
        return (
            Outcome::BudgetExhausted(o.budget),
            output,
            Some(format!("{}; the invocation then failed: {then}", o.why)),
        );
    }
    (outcome, output, error)
}

/// Interfaces keep their effects (KV writes) only when the invocation ends
/// `ok`; keeping them may still cross a budget or fail.
fn commit_writes(
    outcome: Outcome,
    output: Option<Value>,
    error: Option<String>,
    interfaces: &mut Interfaces,
) -> Ending {
    match interfaces.finish(outcome) {
        Ok(()) => (outcome, output, error),
        Err(FinishError::Budget(o)) => (Outcome::BudgetExhausted(o.budget), None, Some(o.why)),
        Err(FinishError::Failed(why)) => (Outcome::Transient, None, Some(why)),
    }
}

/// Most bytes of host values (wasmtime's "hostcall fuel") the guest may make
/// the host allocate in one transfer: lifting its result, or the arguments of
/// one host call. It stops a guest from returning (or passing) a value that
/// is small in its own memory but huge on the host — a long list of tiny
/// elements, or many strings aliasing one buffer — before the host builds
/// it. By default wasmtime allows 128 MiB per transfer; warden gives
/// [`TRANSFER_PER_OUTPUT_BYTE`] bytes per `max_output` byte, at least
/// [`TRANSFER_FLOOR`] (host-call arguments such as KV values need room
/// whatever the output budget) and at most [`TRANSFER_CEILING`].
pub const TRANSFER_FLOOR: usize = 8 << 20;

/// See [`TRANSFER_FLOOR`]: 48 bytes covers a component value (40 bytes)
/// for every byte of the smallest JSON element (`0,`).
pub const TRANSFER_PER_OUTPUT_BYTE: usize = 48;

/// See [`TRANSFER_FLOOR`].
pub const TRANSFER_CEILING: usize = 256 << 20;

/// Outputs budgets up to this size are converted to JSON on the calling
/// task (at most a few milliseconds of work); larger ones on the blocking
/// pool, so a guest's long output never holds an async worker.
pub const INLINE_CONVERSION_MAX: u64 = 1 << 20;

/// The transfer budget of one invocation under `policy`.
pub fn transfer_budget(policy: &Policy) -> usize {
    let per_output = usize::try_from(policy.budget.max_output.bytes())
        .unwrap_or(usize::MAX)
        .saturating_mul(TRANSFER_PER_OUTPUT_BYTE);
    per_output.clamp(TRANSFER_FLOOR, TRANSFER_CEILING)
}

/// Turns returned values into output JSON, applying the output budget as
/// the JSON is built (never after): conversion stops at `max_output`.
async fn finish(
    result: Option<Val>,
    export: &ExportFunc,
    policy: &Policy,
) -> (Outcome, Option<Value>, Option<String>) {
    let cap = policy.budget.max_output.bytes();
    let is_err = export.returns_result() && matches!(result, Some(Val::Result(Err(_))));
    let convert = move || match result {
        Some(v) => val_to_json(v, cap),
        None => Ok(Value::Null),
    };
    let converted = if cap <= INLINE_CONVERSION_MAX {
        convert()
    } else {
        match tokio::task::spawn_blocking(convert).await {
            Ok(converted) => converted,
            Err(e) => {
                return (
                    Outcome::Transient,
                    None,
                    Some(format!("converting the output failed: {e}")),
                );
            }
        }
    };
    let output = match converted {
        Ok(output) => output,
        Err(OutputOverBudget { .. }) => {
            return (
                Outcome::BudgetExhausted(Budget::Output),
                None,
                Some(format!(
                    "output exceeds the max_output budget of {} (conversion stopped there)",
                    policy.budget.max_output
                )),
            );
        }
    };
    if is_err {
        return (
            Outcome::CapabilityError,
            Some(output),
            Some("the capability returned an error".into()),
        );
    }
    (Outcome::Ok, Some(output), None)
}

/// Why an invocation ran out of time: the step timeout when one shortened
/// the policy's wall time, else the policy's wall time. Written only when
/// it happens (formatting durations is not free on every call).
fn out_of_time(step_timeout: Option<Duration>, policy: &Policy) -> String {
    match step_timeout {
        Some(t) => format!(
            "step timeout of {} exceeded (the policy's wall_time is {})",
            crate::units::HumanDuration(t),
            policy.budget.wall_time
        ),
        None => format!("wall time budget of {} exceeded", policy.budget.wall_time),
    }
}

/// Why an invocation's instantiation or call failed.
enum Failure {
    /// Guest code, a budget, or the guest's own shape: [`classify`] says which.
    Guest(wasmtime::Error),
    /// The host could not set the instance up (twice): not the guest's doing.
    Host(wasmtime::Error),
}

impl Failure {
    fn of(err: wasmtime::Error, state: &InvocationState) -> Failure {
        if host_side(&err, &state.limiter) {
            Failure::Host(err)
        } else {
            Failure::Guest(err)
        }
    }
}

/// Whether an instantiation error is the host's (e.g. the kernel refusing
/// to seal the copy-on-write memory image under load): no trap (a start
/// function that trapped, fuel, the epoch) and no budget the limiter
/// refused.
fn host_side(err: &wasmtime::Error, limiter: &super::state::BudgetLimiter) -> bool {
    err.downcast_ref::<Trap>().is_none()
        && !limiter.memory_refused
        && !limiter.table_refused
        && !is_transfer_exhausted(err)
}

/// Decides which failure class an error from instantiation or the call is.
fn classify(
    err: &wasmtime::Error,
    state: &InvocationState,
    policy: &Policy,
    step_timeout: Option<Duration>,
) -> (Outcome, String) {
    let b = &policy.budget;
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            return (
                Outcome::BudgetExhausted(Budget::Fuel),
                format!("fuel budget of {} exhausted", b.fuel),
            );
        }
        Some(Trap::Interrupt) => {
            return (
                Outcome::BudgetExhausted(Budget::Time),
                out_of_time(step_timeout, policy),
            );
        }
        _ => {}
    }
    if is_transfer_exhausted(err) {
        return (
            Outcome::BudgetExhausted(Budget::Output),
            format!(
                "the guest passed the host more data in one transfer (its result or a host-call \
                 argument) than the transfer budget of {} bytes allows (max_output {})",
                transfer_budget(policy),
                b.max_output
            ),
        );
    }
    if state.limiter.memory_refused || state.limiter.table_refused {
        let what = if state.limiter.memory_refused {
            format!("memory budget of {}", b.memory)
        } else {
            format!("table budget of {} elements", b.table_elements)
        };
        return (
            Outcome::BudgetExhausted(Budget::Memory),
            format!(
                "{what} exceeded; the guest then failed: {}",
                first_line(err)
            ),
        );
    }
    if state.interfaces.wasi.capture_overflowed() {
        return (
            Outcome::BudgetExhausted(Budget::Stdout),
            format!(
                "captured stdout/stderr exceeded the max_stdout budget of {}",
                b.max_stdout
            ),
        );
    }
    let stderr = String::from_utf8_lossy(&state.interfaces.wasi.stderr())
        .trim()
        .to_string();
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        let tail: String = stderr
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        format!(" (guest stderr: {tail})")
    };
    (
        Outcome::Trap,
        format!("guest trapped: {}{detail}", first_line(err)),
    )
}

/// Whether wasmtime stopped lifting guest values at the transfer budget
/// (its hostcall fuel). wasmtime's error type for it is private; its
/// message is stable and a test pins it.
fn is_transfer_exhausted(err: &wasmtime::Error) -> bool {
    err.chain().any(|e| {
        e.to_string()
            .contains("fuel allocated for hostcalls has been exhausted")
    })
}

fn first_line(err: &wasmtime::Error) -> String {
    let text = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    text.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transfer_budget_grows_with_max_output_between_floor_and_ceiling() {
        let with = |max_output: &str| {
            let text = format!(
                "[capability]\nname = \"c\"\ncomponent = \"c.wasm\"\n[budget]\nmax_output = \"{max_output}\"\n"
            );
            let p = Policy::parse(std::path::Path::new("c.toml"), &text).expect("policy");
            transfer_budget(&p)
        };
        assert_eq!(with("1KiB"), TRANSFER_FLOOR);
        assert_eq!(with("1MiB"), 48 << 20);
        assert_eq!(with("64MiB"), TRANSFER_CEILING);
    }

    #[test]
    fn an_instantiation_error_is_the_hosts_only_without_a_trap_or_a_refused_budget() {
        let p = Policy::parse(
            std::path::Path::new("c.toml"),
            "[capability]\nname = \"c\"\ncomponent = \"c.wasm\"\n",
        )
        .expect("policy");
        let mut limiter = super::super::state::BudgetLimiter::new(&p.budget);
        let os = wasmtime::format_err!("cannot add seals to the memfd");
        assert!(host_side(&os, &limiter), "an OS refusal is the host's");
        let fuel = wasmtime::Error::from(Trap::OutOfFuel);
        assert!(!host_side(&fuel, &limiter), "a trap is the guest's");
        let start = wasmtime::Error::from(Trap::UnreachableCodeReached);
        assert!(!host_side(&start, &limiter), "a trapping start function");
        limiter.memory_refused = true;
        assert!(
            !host_side(&os, &limiter),
            "with the memory budget refused it is the budget's"
        );
    }
}
