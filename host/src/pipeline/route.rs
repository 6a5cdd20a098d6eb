//! Stage 2, route: which capability and which function a request runs,
//! named by its canonical identity from here on.
//!
//! A daemon request names a *kind*; the route table decides
//! ([`by_kind`]). The CLI and the embedding API name the capability and
//! function themselves ([`direct`]). Either way the result is a loaded
//! [`Capability`] and the call's `capability`/`function` rewritten to the
//! canonical names: the gate, the sandbox and the audit entry compare and
//! record only those.
//!
//! This module must never look at the input beyond what a route matches on
//! (kind, tenant, attributes), never run guest code and never append to the
//! audit log: a refusal goes back to the caller, who records it.

use super::Refusal;
use crate::invocation::Call;
use crate::outcome::Outcome;
use crate::router::{Decision, RouteRequest, RouteTable};
use crate::{Capability, Tenant};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A request with its target chosen.
pub struct Routed {
    /// The capability it runs (the caller holds this `Arc`: a reload that
    /// swaps capabilities does not change what an admitted request runs).
    pub cap: Arc<Capability>,
    /// The route rule that chose it (`None`: named directly).
    pub rule_id: Option<String>,
}

/// The capabilities a request may be routed to, by name.
pub type Capabilities = BTreeMap<String, Arc<Capability>>;

/// Routes a daemon request by its kind, tenant and attributes. The call
/// gets the route decision (recorded in its audit entry, also on refusal)
/// and, when routed, the capability and canonical function names.
pub fn by_kind(
    routes: &RouteTable,
    capabilities: &Capabilities,
    kind: &str,
    attributes: &BTreeMap<String, String>,
    call: &mut Call,
) -> Result<Routed, (Refusal, Option<String>)> {
    let decision = routes.decide(&RouteRequest {
        kind: kind.to_string(),
        tenant: call.tenant.as_ref().map(Tenant::to_string),
        attributes: attributes.clone(),
    });
    // A no_route refusal also names the table it was made against.
    call.route = Some(routes.audit_route(&decision));
    let (rule_id, capability, function) = match decision {
        Decision::NoRoute => {
            let why = format!(
                "no route matches kind `{kind}`{}",
                call.tenant
                    .as_ref()
                    .map(|t| format!(" for tenant `{t}`"))
                    .unwrap_or_default()
            );
            return Err((Refusal::new(Outcome::NoRoute, why), None));
        }
        Decision::Route {
            rule_id,
            capability,
            function,
        } => (rule_id, capability, function),
    };
    call.capability = capability;
    call.function = function;
    let Some(cap) = capabilities.get(&call.capability).cloned() else {
        let why = format!(
            "route `{rule_id}` names capability `{}`, which is not loaded",
            call.capability
        );
        return Err((Refusal::new(Outcome::Denied, why), Some(rule_id)));
    };
    match resolve(&cap, call) {
        Ok(()) => Ok(Routed {
            cap,
            rule_id: Some(rule_id),
        }),
        Err(refusal) => Err((refusal, Some(rule_id))),
    }
}

/// Targets the capability and function the call names itself (CLI `run`,
/// the embedding API).
pub fn direct(capabilities: &Capabilities, call: &mut Call) -> Result<Routed, Refusal> {
    let Some(cap) = capabilities.get(&call.capability).cloned() else {
        let why = format!("no capability named `{}` is loaded", call.capability);
        return Err(Refusal::new(Outcome::Denied, why));
    };
    resolve(&cap, call)?;
    Ok(Routed { cap, rule_id: None })
}

/// [`direct`] on a capability the caller already holds.
pub fn to_capability(cap: &Arc<Capability>, call: &mut Call) -> Result<Routed, Refusal> {
    resolve(cap, call)?;
    Ok(Routed {
        cap: cap.clone(),
        rule_id: None,
    })
}

/// The function's one resolution to its canonical identity (`iface#func`
/// and `ns:pkg/iface#func` name the same export).
fn resolve(cap: &Arc<Capability>, call: &mut Call) -> Result<(), Refusal> {
    // `Shape::export` is what `Shape::resolve` resolves with; borrowing
    // the export's id avoids an allocation on every request.
    match cap.shape.export(&call.function) {
        Some(export) => {
            if export.id != call.function {
                call.function.clone_from(&export.id);
            }
            Ok(())
        }
        None => {
            let why = match cap.typed_params(&call.function, &call.input) {
                Err(why) => why,
                Ok(_) => format!("`{}` does not resolve to one export", call.function),
            };
            Err(Refusal::of(cap, Outcome::InvalidInput, why))
        }
    }
}
