//! Pinned versions for workflow runs (docs/workflows.md "Pinned
//! versions"): the capabilities a run uses are the ones it pinned at its
//! start (component digest and policy hash per step), not whatever the
//! deployment holds when the run is driven again — after a reload, an
//! operator's resume or a restart.
//!
//! [`Daemon::pinned_capabilities`] resolves a run's pins: a capability of
//! the current deployment with the same digest and policy hash is used as
//! it is; any other pinned version is rebuilt from the artifact store (the
//! component's bytes verified against their digest, the effective policy
//! rebuilt exactly from its canonical JSON) and kept loaded in a cache
//! keyed by (digest, policy hash), shared by every run that pins it.
//!
//! It must never give a run a version other than the one it pinned (a
//! version that cannot be rebuilt is an error and the run is left as it
//! is), never re-verify signatures it cannot see (the artifact holds the
//! component stripped of them; it was verified when first loaded), and
//! never compile on an async worker.

use super::{Daemon, Deployment};
use crate::Capability;
use crate::digest::Hash256;
use crate::store::{Pin, RunStore};
use crate::workflow::Plan;
use crate::workflow::plan::{Action, Compensation};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Pinned versions no longer in the deployment, kept loaded.
#[derive(Default)]
pub(super) struct PinnedCache(Mutex<HashMap<(String, String), Arc<Capability>>>);

impl PinnedCache {
    fn get(&self, key: &(String, String)) -> Option<Arc<Capability>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn insert(&self, key: (String, String), cap: Arc<Capability>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, cap);
    }

    /// How many versions are kept loaded.
    fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

impl std::fmt::Debug for PinnedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinnedCache({} versions kept loaded)", self.len())
    }
}

/// The capability each pin key (`<step>`, `<step>.compensate`) calls.
fn pinned_calls(plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for step in &plan.steps {
        if let Action::Call(c) = &step.action {
            out.push((step.id.to_string(), c.capability.clone()));
        }
        if let Compensation::Call(c) = &step.compensate {
            out.push((format!("{}.compensate", step.id), c.capability.clone()));
        }
    }
    out
}

/// Rebuilds pinned version `pin` of capability `name` from the artifact store.
fn rebuild(host: &crate::Host, name: &str, pin: &Pin) -> Result<Capability, String> {
    let store = host
        .artifacts()
        .ok_or("the daemon has no artifact store (no data directory)")?;
    let parse = |h: &str| {
        Hash256::parse(h).ok_or_else(|| format!("pinned hash `{h}` of `{name}` is malformed"))
    };
    let digest = parse(&pin.component)?;
    let policy_hash = parse(&pin.policy)?;
    let component = store
        .get(&digest)
        .map_err(|e| format!("component of `{name}`: {e}"))?;
    let policy_bytes = store
        .get(&policy_hash)
        .map_err(|e| format!("policy of `{name}`: {e}"))?;
    let policy = crate::replay::policy_from_artifact(&policy_hash, &policy_bytes)?;
    let cap = host
        .prepare_pinned(policy, &component, &digest)
        .map_err(|e| format!("pinned version of `{name}` does not load: {e}"))?;
    if cap.policy_hash.tagged() != pin.policy {
        return Err(format!(
            "pinned policy of `{name}` rebuilds to {}, not {}",
            cap.policy_hash, pin.policy
        ));
    }
    Ok(cap)
}

impl Daemon {
    /// The capabilities run `run_id` of `plan` must use, by name: the
    /// versions it pinned, from `deployment` when it holds them, else kept
    /// loaded from the artifact store.
    pub(super) async fn pinned_capabilities(
        self: &Arc<Self>,
        deployment: &Deployment,
        plan: &Plan,
        run_id: &str,
    ) -> Result<BTreeMap<String, Arc<Capability>>, String> {
        let journal = {
            let store = self.runs.clone();
            let id = run_id.to_string();
            tokio::task::spawn_blocking(move || store.journal(&id))
                .await
                .map_err(|e| format!("run store task failed: {e}"))?
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no run `{run_id}` in the journal"))?
        };
        let mut caps: BTreeMap<String, Arc<Capability>> = BTreeMap::new();
        for (key, name) in pinned_calls(plan) {
            let pin = journal
                .run
                .pins
                .get(&key)
                .ok_or_else(|| format!("run `{run_id}` pinned no version for `{key}`"))?;
            let wanted = (pin.component.clone(), pin.policy.clone());
            let cap = match deployment.capabilities.get(&name) {
                Some(c)
                    if c.digest.tagged() == pin.component
                        && c.policy_hash.tagged() == pin.policy =>
                {
                    c.clone()
                }
                _ => match self.pinned.get(&wanted) {
                    Some(c) => c,
                    None => {
                        let this = self.clone();
                        let (n, p) = (name.clone(), pin.clone());
                        let cap = tokio::task::spawn_blocking(move || rebuild(&this.host, &n, &p))
                            .await
                            .map_err(|e| format!("loading a pinned version failed: {e}"))??;
                        let cap = Arc::new(cap);
                        self.pinned.insert(wanted, cap.clone());
                        tracing::info!(
                            run = run_id,
                            capability = name,
                            digest = pin.component,
                            "kept a pinned version loaded from the artifact store"
                        );
                        cap
                    }
                },
            };
            if let Some(other) = caps.get(&name)
                && (other.digest != cap.digest || other.policy_hash != cap.policy_hash)
            {
                return Err(format!("run `{run_id}` pinned two versions of `{name}`"));
            }
            caps.insert(name, cap);
        }
        Ok(caps)
    }
}
