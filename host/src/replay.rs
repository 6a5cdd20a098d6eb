//! `warden audit replay`: re-executes audit entries offline and compares
//! what happens with what was recorded.
//!
//! Each invocation entry is re-run in a fresh sandbox from the artifact
//! store (component by digest, effective policy by hash — both verified),
//! with the recorded input, request id, admission time and tenant, under
//! the same budgets, its host calls answered from the recorded results
//! ([`crate::interfaces::recording`]). It then compares outcome, output
//! hash, fuel (exact: fuel is deterministic), the host-call summaries and
//! the call sequence (the first divergence is reported as `diverged at call
//! N: expected …, got …`).
//!
//! Nothing here writes anywhere: the replay host has no data directory, no
//! audit log, and a replayed invocation never reaches the network, the KV
//! store or a model backend. An entry whose artifact or payload is missing
//! or fails its hash is reported as such, never skipped. This module never
//! re-evaluates a policy decision (routes, approvals): it re-executes only.

use crate::audit::{AuditEntry, EventKind};
use crate::digest::Hash256;
use crate::interfaces::recording::Recorded;
use crate::invocation::Call;
use crate::outcome::Outcome;
use crate::pipeline::gate;
use crate::policy::Policy;
use crate::store::{ArtifactStore, AuditReader};
use crate::{Capability, Host, HostConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// How replaying one entry went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Outcome, output hash, fuel and host calls are as recorded.
    Matched,
    /// Something differs (each line says what).
    Mismatch(Vec<String>),
    /// The entry says it cannot be replayed, and why.
    NotReplayable(String),
    /// An artifact or payload it needs is missing or fails its hash.
    Missing(String),
    /// Not an invocation that ran guest code (reload, approval, a refusal
    /// before any capability was chosen): nothing to re-execute.
    NothingToRun(String),
}

impl Verdict {
    /// Whether this verdict makes the replay fail (non-zero exit).
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Mismatch(_) | Verdict::Missing(_))
    }
}

/// One replayed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryReplay {
    /// The entry's sequence number.
    pub seq: u64,
    /// Its request id.
    pub request_id: String,
    /// Its capability.
    pub capability: String,
    /// What was recorded: `outcome fuel`.
    pub recorded: String,
    /// What happened.
    pub verdict: Verdict,
}

impl std::fmt::Display for EntryReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = format!(
            "#{} {} {} ({})",
            self.seq, self.request_id, self.capability, self.recorded
        );
        match &self.verdict {
            Verdict::Matched => write!(f, "{head}: matched"),
            Verdict::Mismatch(why) => write!(f, "{head}: MISMATCH: {}", why.join("; ")),
            Verdict::NotReplayable(why) => write!(f, "{head}: not replayable: {why}"),
            Verdict::Missing(why) => write!(f, "{head}: MISSING: {why}"),
            Verdict::NothingToRun(why) => write!(f, "{head}: nothing to re-execute: {why}"),
        }
    }
}

/// Totals over a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries looked at.
    pub entries: u64,
    /// Entries re-executed.
    pub replayed: u64,
    /// Re-executed and matched.
    pub matched: u64,
    /// Re-executed and differed.
    pub diverged: u64,
    /// Missing or tampered artifacts/payloads.
    pub missing: u64,
    /// Not replayable, by reason.
    pub not_replayable: BTreeMap<String, u64>,
    /// Nothing to re-execute.
    pub nothing_to_run: u64,
}

impl Summary {
    /// Counts one entry.
    pub fn add(&mut self, r: &EntryReplay) {
        self.entries += 1;
        match &r.verdict {
            Verdict::Matched => {
                self.replayed += 1;
                self.matched += 1;
            }
            Verdict::Mismatch(_) => {
                self.replayed += 1;
                self.diverged += 1;
            }
            Verdict::Missing(_) => self.missing += 1,
            Verdict::NotReplayable(why) => {
                *self.not_replayable.entry(why.clone()).or_default() += 1
            }
            Verdict::NothingToRun(_) => self.nothing_to_run += 1,
        }
    }

    /// Whether every re-executed entry matched and nothing was missing.
    pub fn ok(&self) -> bool {
        self.diverged == 0 && self.missing == 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let not: u64 = self.not_replayable.values().sum();
        write!(
            f,
            "{} entries: {} replayed, {} matched, {} diverged, {} missing or tampered, {} not replayable, {} with nothing to re-execute",
            self.entries,
            self.replayed,
            self.matched,
            self.diverged,
            self.missing,
            not,
            self.nothing_to_run
        )?;
        for (why, n) in &self.not_replayable {
            write!(f, "\n  not replayable ({n}): {why}")?;
        }
        Ok(())
    }
}

/// Where a replay reads entries' payloads and artifacts from.
pub trait Evidence {
    /// A stored payload by hash (`None`: not stored, e.g. pruned).
    fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, String>;
    /// An artifact by hash, verified.
    fn artifact(&self, hash: &Hash256) -> Result<Vec<u8>, String>;
}

/// A data directory's audit database and artifact store.
pub struct DataDir {
    /// The audit database.
    pub reader: AuditReader,
    /// The artifact store.
    pub artifacts: ArtifactStore,
}

impl Evidence for DataDir {
    fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, String> {
        self.reader.payload(hash).map_err(|e| e.to_string())
    }
    fn artifact(&self, hash: &Hash256) -> Result<Vec<u8>, String> {
        self.artifacts.get(hash).map_err(|e| e.to_string())
    }
}

/// Compiled capabilities by (component digest, policy hash).
type Loaded = BTreeMap<(Hash256, Hash256), Arc<Capability>>;

/// Re-executes entries; keeps compiled capabilities by (digest, policy).
pub struct Replayer {
    host: Host,
    loaded: Loaded,
    /// The engine settings entries are replayed under.
    config: crate::sandbox::SandboxConfig,
    /// A host with the other `memory_init_cow` setting, built on the first
    /// fuel-only mismatch to say whether the setting explains it.
    other: Option<(Host, Loaded)>,
}

impl Replayer {
    /// A replayer on an engine configured like `config`'s sandbox (no data
    /// directory: it writes nothing).
    pub fn new(sandbox: crate::sandbox::SandboxConfig) -> Result<Replayer, crate::HostError> {
        Ok(Replayer {
            host: replay_host(sandbox.clone())?,
            loaded: BTreeMap::new(),
            config: sandbox,
            other: None,
        })
    }

    /// Replays one entry.
    pub async fn replay(&mut self, entry: &AuditEntry, evidence: &dyn Evidence) -> EntryReplay {
        let e = &entry.entry;
        let verdict = self.verdict(entry, evidence).await;
        EntryReplay {
            seq: entry.seq,
            request_id: e.request_id.clone(),
            capability: if e.capability.is_empty() {
                "-".into()
            } else {
                e.capability.clone()
            },
            recorded: format!("{} fuel={}", e.outcome, e.usage.fuel),
            verdict,
        }
    }

    async fn verdict(&mut self, entry: &AuditEntry, evidence: &dyn Evidence) -> Verdict {
        let e = &entry.entry;
        if e.event != EventKind::Invocation {
            return Verdict::NothingToRun(format!("a {} event", e.event.as_str()));
        }
        let (Some(digest), Some(policy_hash)) = (e.component_digest, e.policy_hash) else {
            return Verdict::NothingToRun(format!(
                "refused ({}) before a capability was chosen",
                e.outcome
            ));
        };
        if matches!(e.outcome, Outcome::PendingApproval | Outcome::Denied) && e.usage.fuel == 0 {
            return Verdict::NothingToRun(format!(
                "{}: no guest code ran (approval and routing decisions are never re-evaluated)",
                e.outcome
            ));
        }
        if !e.replayable {
            return Verdict::NotReplayable(
                e.evidence
                    .not_replayable
                    .clone()
                    .unwrap_or_else(|| "the entry is marked not replayable".into()),
            );
        }
        let cap = match self.capability(digest, policy_hash, evidence) {
            Ok(c) => c,
            Err(why) => return Verdict::Missing(why),
        };
        let Some(input_hash) = e.input_sha256 else {
            return Verdict::NothingToRun("no input was recorded".into());
        };
        let input = match evidence.payload(&input_hash) {
            Ok(Some(bytes)) if Hash256::of(&bytes) == input_hash => {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => v,
                    Err(err) => {
                        return Verdict::Missing(format!(
                            "input payload {input_hash} is not JSON: {err}"
                        ));
                    }
                }
            }
            Ok(Some(_)) => {
                return Verdict::Missing(format!("input payload {input_hash} fails its hash"));
            }
            Ok(None) => {
                return Verdict::Missing(format!(
                    "input payload {input_hash} is not stored (pruned?)"
                ));
            }
            Err(err) => return Verdict::Missing(format!("input payload {input_hash}: {err}")),
        };
        let mut recorded = Vec::with_capacity(e.evidence.results.len());
        for (i, h) in e.evidence.results.iter().enumerate() {
            let n = i + 1;
            match evidence.payload(h) {
                Ok(Some(bytes)) if Hash256::of(&bytes) == *h => {
                    match Recorded::from_bytes(&bytes) {
                        Ok(r) => recorded.push(r),
                        Err(err) => {
                            return Verdict::Missing(format!("recorded result {n} ({h}): {err}"));
                        }
                    }
                }
                Ok(Some(bytes)) => {
                    return Verdict::Missing(format!(
                        "recorded result {n} fails its hash: the entry commits to {h}, the stored bytes hash to {}",
                        Hash256::of(&bytes)
                    ));
                }
                Ok(None) => {
                    return Verdict::Missing(format!(
                        "recorded result {n} ({h}) is not stored (pruned?)"
                    ));
                }
                Err(err) => return Verdict::Missing(format!("recorded result {n} ({h}): {err}")),
            }
        }
        let mut call = Call::new(&e.capability, &e.function, input)
            .with_request_id(e.request_id.clone())
            .admitted_at(UNIX_EPOCH + Duration::from_millis(e.admitted_at_ms));
        call.principal = e.principal.clone();
        call.via = e.request_kind.clone();
        call.route = e.route.clone();
        call.attempt = e.attempt;
        call.approvals = e.approvals.clone();
        if let Some(t) = tenant_of(e.detail.as_deref()) {
            call = call.for_tenant(t);
        }
        let feed = recorded.clone();
        let record = match gate::typed(&cap, &call) {
            Ok(typed) => {
                self.host
                    .execute_replayed(&cap, typed, &call, recorded)
                    .await
            }
            Err(refusal) => refusal.record(&call, true),
        };
        let mut diffs = Vec::new();
        if let Some(d) = &record.divergence {
            diffs.push(d.clone());
        }
        if record.outcome != e.outcome {
            diffs.push(format!(
                "outcome: expected {}, got {}{}",
                e.outcome,
                record.outcome,
                record
                    .error
                    .as_deref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ));
        }
        if Some(record.output_hash) != e.output_sha256 {
            diffs.push(format!(
                "output hash: expected {}, got {}",
                e.output_sha256.map_or("none".into(), |h| h.tagged()),
                record.output_hash
            ));
        }
        if record.usage.fuel != e.usage.fuel {
            let mut why = format!("fuel: expected {}, got {}", e.usage.fuel, record.usage.fuel);
            // Only fuel differs: say whether the engine setting explains it.
            if diffs.is_empty() {
                let cow = !self.config.memory_init_cow;
                match self
                    .fuel_with_other_cow(digest, policy_hash, evidence, &call, feed)
                    .await
                {
                    Some(fuel) if fuel == e.usage.fuel => why.push_str(&format!(
                        " (with --memory-init-cow {cow} it is {fuel}, as recorded: the entry was \
                         recorded under the other memory_init_cow setting; replay with that one)"
                    )),
                    Some(fuel) => why.push_str(&format!(
                        " (with --memory-init-cow {cow} it is {fuel}: not the engine setting)"
                    )),
                    None => {}
                }
            }
            diffs.push(why);
        }
        if diffs.is_empty() {
            let n = e.host_calls.len().max(record.host_calls.len());
            for i in 0..n {
                let (want, got) = (e.host_calls.get(i), record.host_calls.get(i));
                if want != got {
                    diffs.push(format!(
                        "diverged at call {}: expected {}, got {}",
                        i + 1,
                        want.map_or("no call".into(), describe),
                        got.map_or("no call".into(), describe)
                    ));
                    break;
                }
            }
        }
        if diffs.is_empty() {
            Verdict::Matched
        } else {
            Verdict::Mismatch(diffs)
        }
    }

    /// The fuel `call` takes on an engine with the other `memory_init_cow`
    /// setting (`None`: that engine or the capability could not be built).
    async fn fuel_with_other_cow(
        &mut self,
        digest: Hash256,
        policy_hash: Hash256,
        evidence: &dyn Evidence,
        call: &Call,
        feed: Vec<Recorded>,
    ) -> Option<u64> {
        if self.other.is_none() {
            let config = crate::sandbox::SandboxConfig {
                memory_init_cow: !self.config.memory_init_cow,
                ..self.config.clone()
            };
            self.other = Some((replay_host(config).ok()?, BTreeMap::new()));
        }
        let (host, loaded) = self.other.as_mut()?;
        let cap = capability_on(host, loaded, digest, policy_hash, evidence).ok()?;
        let typed = gate::typed(&cap, call).ok()?;
        let record = host.execute_replayed(&cap, typed, call, feed).await;
        Some(record.usage.fuel)
    }

    /// The capability an entry ran: component and policy from the artifact
    /// store, both verified, compiled once per (digest, policy).
    fn capability(
        &mut self,
        digest: Hash256,
        policy_hash: Hash256,
        evidence: &dyn Evidence,
    ) -> Result<Arc<Capability>, String> {
        capability_on(&self.host, &mut self.loaded, digest, policy_hash, evidence)
    }
}

/// A host that only replays, on an engine configured by `sandbox` (no data
/// directory: it writes nothing).
fn replay_host(sandbox: crate::sandbox::SandboxConfig) -> Result<Host, crate::HostError> {
    Ok(Host::new(HostConfig {
        sandbox,
        allow_unsigned: true,
        ..HostConfig::default()
    })?
    .only_replays())
}

/// [`Replayer::capability`] on `host`, cached in `loaded`.
fn capability_on(
    host: &Host,
    loaded: &mut Loaded,
    digest: Hash256,
    policy_hash: Hash256,
    evidence: &dyn Evidence,
) -> Result<Arc<Capability>, String> {
    if let Some(c) = loaded.get(&(digest, policy_hash)) {
        return Ok(c.clone());
    }
    let component = evidence
        .artifact(&digest)
        .map_err(|e| format!("component {digest}: {e}"))?;
    let policy_bytes = evidence
        .artifact(&policy_hash)
        .map_err(|e| format!("policy {policy_hash}: {e}"))?;
    let policy = policy_from_artifact(&policy_hash, &policy_bytes)?;
    let cap = host
        .prepare(policy, &component, &format!("artifact {digest}"))
        .map_err(|e| format!("component {digest} does not load: {e}"))?;
    if cap.digest != digest {
        return Err(format!(
            "component artifact {digest} has digest {} (swapped?)",
            cap.digest
        ));
    }
    let cap = Arc::new(cap);
    loaded.insert((digest, policy_hash), cap.clone());
    Ok(cap)
}

fn describe(c: &crate::audit::HostCall) -> String {
    format!("{} {} {}", c.interface, c.target, c.status)
}

fn tenant_of(detail: Option<&str>) -> Option<crate::Tenant> {
    let v: Value = serde_json::from_str(detail?).ok()?;
    crate::Tenant::parse(v["tenant"].as_str()?).ok()
}

/// Rebuilds a policy from the canonical JSON of its effective form (the
/// artifact stored under its hash), through the same parser as a policy
/// file, `[[approval]]` rules included. The result must reproduce the
/// artifact exactly, or it is refused.
pub fn policy_from_artifact(hash: &Hash256, bytes: &[u8]) -> Result<Policy, String> {
    let bad = |why: String| format!("policy {hash}: {why}");
    let effective: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let mut doc = toml::Table::new();
    for section in ["capability", "budget", "retry"] {
        if let Some(v) = effective.get(section) {
            doc.insert(section.into(), to_toml(v).map_err(bad)?);
        }
    }
    let mut imports = toml::Table::new();
    for (name, kind) in effective["imports"].as_object().into_iter().flatten() {
        let mut settings = kind.clone();
        if let Some(o) = settings.as_object_mut() {
            o.remove("kind");
        }
        imports.insert(name.clone(), to_toml(&settings).map_err(bad)?);
    }
    doc.insert("imports".into(), toml::Value::Table(imports));
    // `[[approval]]` rules, in their order (a rule's null `when` is absent).
    if let Some(rules) = effective.get("approval").and_then(Value::as_array) {
        let rules = rules.iter().map(to_toml).collect::<Result<_, _>>();
        doc.insert("approval".into(), toml::Value::Array(rules.map_err(bad)?));
    }
    let text = toml::to_string(&doc).map_err(|e| bad(e.to_string()))?;
    let source = std::path::PathBuf::from(format!("artifact-{}.toml", hash.hex()));
    let policy = Policy::parse(&source, &text).map_err(|e| bad(e.to_string()))?;
    if policy.effective() != effective {
        return Err(bad(
            "the stored policy cannot be rebuilt exactly by this version of warden".into(),
        ));
    }
    Ok(policy)
}

/// JSON to TOML, dropping nulls (TOML has none; absent fields take the
/// same defaults).
fn to_toml(v: &Value) -> Result<toml::Value, String> {
    Ok(match v {
        Value::Null => return Err("null outside an object".into()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().ok_or("a number TOML cannot hold")?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            let mut t = toml::Table::new();
            for (k, v) in o {
                if !v.is_null() {
                    t.insert(k.clone(), to_toml(v)?);
                }
            }
            toml::Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_policy_is_rebuilt_exactly_from_its_artifact() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let (mut seen, mut with_rules) = (0, 0);
        let files = walk(&root.join("policies"))
            .into_iter()
            .chain(walk(&root.join("examples")));
        for entry in files {
            if entry.extension().is_some_and(|e| e == "toml")
                && (entry.parent().is_some_and(|p| p.ends_with("policies"))
                    || entry.ends_with("policy.toml"))
            {
                let Ok(policy) = Policy::load(&entry) else {
                    continue;
                };
                let canonical = crate::digest::canonical_json(&policy.effective());
                let hash = Hash256::of(canonical.as_bytes());
                assert_eq!(hash.tagged(), policy.hash());
                let rebuilt = policy_from_artifact(&hash, canonical.as_bytes())
                    .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
                assert_eq!(rebuilt.budget, policy.budget, "{}", entry.display());
                assert_eq!(rebuilt.imports, policy.imports, "{}", entry.display());
                assert_eq!(rebuilt.approvals, policy.approvals, "{}", entry.display());
                assert_eq!(rebuilt.hash(), policy.hash(), "{}", entry.display());
                seen += 1;
                with_rules += usize::from(!policy.approvals.is_empty());
            }
        }
        assert!(seen > 3, "found {seen} example policies");
        assert!(with_rules > 0, "no example policy has [[approval]] rules");
    }

    #[test]
    fn a_policy_artifact_that_is_not_a_policy_is_refused() {
        let err =
            policy_from_artifact(&Hash256([1; 32]), b"{\"capability\":{}}").expect_err("no name");
        assert!(err.starts_with("policy sha256:0101"), "{err}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return out;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("target") && !p.ends_with("node_modules") {
                    out.extend(walk(&p));
                }
            } else {
                out.push(p);
            }
        }
        out
    }
}
