//! Stage 3, gate: the input is typed against the function's parameters and
//! the policy's `[[approval]]` rules are evaluated — once. The decision is
//! carried forward: the executor never looks at approval rules again, and a
//! held request that is approved later re-enters at "execute" with the
//! decisions it was approved with.
//!
//! Typing comes first, so that approvers are only ever asked about requests
//! that could run.
//!
//! This module is pure: no clock, no I/O, no audit.

use super::Refusal;
use crate::Capability;
use crate::component::ExportFunc;
use crate::invocation::Call;
use crate::outcome::Outcome;
use crate::policy::approval::Requirement;
use wasmtime::component::Val;

/// The input, typed for the export it calls.
pub struct Typed<'a> {
    /// The export (named by its canonical id).
    pub export: &'a ExportFunc,
    /// The input as component values, in parameter order.
    pub params: Vec<Val>,
}

/// What the gate decided.
pub enum Gate<'a> {
    /// Runs now: no rule applies, or the approvals the call carries satisfy it.
    Open(Typed<'a>),
    /// A rule needs more approvals than the call carries.
    Hold(Typed<'a>, Requirement),
}

/// Types the input and evaluates the approval rules for a routed call.
pub fn gate<'a>(cap: &'a Capability, call: &Call) -> Result<Gate<'a>, Refusal> {
    let typed = typed(cap, call)?;
    if cap.policy.approvals.is_empty() {
        return Ok(Gate::Open(typed));
    }
    match cap
        .policy
        .approval_for(&typed.export.function_id(), &call.input)
    {
        Some(need) if call.approvers().len() < need.mode.required() => Ok(Gate::Hold(typed, need)),
        _ => Ok(Gate::Open(typed)),
    }
}

/// Types the input only: for a request whose gate decision was already
/// made (a held request, approved).
pub fn typed<'a>(cap: &'a Capability, call: &Call) -> Result<Typed<'a>, Refusal> {
    match cap.typed_params(&call.function, &call.input) {
        Ok((export, params)) => Ok(Typed { export, params }),
        Err(why) => Err(Refusal::of(cap, Outcome::InvalidInput, why)),
    }
}

/// Why a library call (which cannot be held) is refused `pending_approval`.
pub fn needs_approval(
    cap: &Capability,
    export: &ExportFunc,
    call: &Call,
    need: &Requirement,
) -> Refusal {
    let why = format!(
        "`{}` needs {} approval(s) (mode {}, rule {} of {}: {}) and has {}; \
         gated requests are held by the daemon (docs/approvals.md)",
        export.id,
        need.mode.required(),
        need.mode.as_str(),
        need.rule,
        cap.policy.source.display(),
        need.reason,
        call.approvers().len(),
    );
    Refusal::of(cap, Outcome::PendingApproval, why)
}
