//! `warden:host/kv`: a key-value namespace per (capability, tenant), in SQLite.
//!
//! The namespace is chosen by the host: the capability's name and the
//! invocation's tenant ([`crate::Call::tenant`], canonical). A tenant-less
//! invocation uses the capability's tenant-less namespace, which is distinct
//! from every tenant's. The guest only ever names keys inside its namespace,
//! so it can never reach another capability's or another tenant's keys.
//!
//! Writes are buffered in the invocation and applied in one transaction when
//! the invocation ends `ok` ([`KvState::commit`]); any other outcome
//! (including `capability_error`) discards them. Reads see the invocation's
//! own buffered writes. Quotas (`max_bytes`, `max_value_bytes`, `max_keys`)
//! hold per namespace (so per tenant) and are checked on every write against
//! the committed contents plus the buffer, and again inside the commit
//! transaction (a concurrent invocation may have committed in between).
//! `max_calls` bounds the calls of one invocation: the call past it is
//! refused, and the invocation ends `budget_exhausted:kv` whatever the guest
//! does next.
//!
//! # Layout
//!
//! `kv.db` has one table `kv (namespace, tenant, key, value)`, `tenant` being
//! `''` for the tenant-less namespace (no tenant name is empty), and
//! `PRAGMA user_version` = [`LAYOUT_VERSION`]. The layout of earlier
//! versions (`kv (namespace, key, value)`, version 0: one namespace per
//! capability, shared by every tenant) is never re-scoped silently: opening
//! such a file with rows in it fails with [`KvError::OldLayout`], naming
//! `warden kv migrate`, which moves the rows into the tenant-less namespace
//! or a named tenant's ([`KvStore::migrate`]). An old-layout file without
//! rows has nothing to re-scope and is upgraded in place.

use super::bindings::warden::host::kv::Host;
use super::bindings::warden::host::types::Error;
use super::calls::{HostCallLog, body_hash};
use super::recording::{self, Replayed};
use crate::audit::HostCall;
use crate::digest::Hash256;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// Longest key, in bytes. Keys are stored and compared as given; the bound
/// stops a guest from turning keys into an unmetered second value store.
pub const MAX_KEY_BYTES: usize = 512;

const INTERFACE: &str = "warden:host/kv";

// The storage half lives in `store::kv`; re-exported so paths keep working.
use crate::store::kv::quota_problem;
pub use crate::store::kv::{KvError, KvStore, LAYOUT_VERSION, Migration, Namespace};

// ---- The interface: grant settings, per-invocation state, linking. ----

use super::catalogue::{Entry, GrantKind, Unit, empty_table, read_settings};
use super::{BudgetOverrun, FinishError, HostInterface};
use crate::outcome::{Budget, Outcome};
use crate::units::ByteSize;

/// Quotas on `warden:host/kv` for the capability's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvLimits {
    /// Most bytes (keys + values) the namespace may hold. By default 1MiB.
    #[serde(default = "KvLimits::default_bytes")]
    pub max_bytes: ByteSize,
    /// Largest single value. By default 64KiB.
    #[serde(default = "KvLimits::default_value_bytes")]
    pub max_value_bytes: ByteSize,
    /// Most keys the namespace may hold. By default 1000.
    #[serde(default = "KvLimits::default_keys")]
    pub max_keys: u32,
    /// Most kv calls (`get`, `set`, `delete`, `list-keys`) one invocation
    /// may make. By default 10000. The call past it is refused and the
    /// invocation ends `budget_exhausted:kv`.
    #[serde(default = "KvLimits::default_calls")]
    pub max_calls: u32,
}

impl KvLimits {
    /// The quotas the KV store holds the namespace to.
    pub fn quota(&self) -> crate::store::kv::KvQuota {
        crate::store::kv::KvQuota {
            max_bytes: self.max_bytes,
            max_value_bytes: self.max_value_bytes,
            max_keys: self.max_keys,
        }
    }
}

impl KvLimits {
    fn default_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    fn default_value_bytes() -> ByteSize {
        ByteSize(64 << 10)
    }
    fn default_keys() -> u32 {
        1000
    }
    fn default_calls() -> u32 {
        10_000
    }
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_bytes: Self::default_bytes(),
            max_value_bytes: Self::default_value_bytes(),
            max_keys: Self::default_keys(),
            max_calls: Self::default_calls(),
        }
    }
}

/// `warden:host/kv`'s place in the catalogue.
pub(crate) const ENTRY: Entry = Entry {
    unit: Unit::Kv,
    names: &[INTERFACE],
    grant: |id, settings| Ok(GrantKind::Kv(read_settings(id, settings)?)),
    default_settings: empty_table,
};

/// One invocation's view of its namespace: buffered writes and quota use.
pub struct KvState {
    store: Arc<KvStore>,
    namespace: Namespace,
    limits: KvLimits,
    /// Buffered writes; `None` is a delete.
    pending: BTreeMap<String, Option<Vec<u8>>>,
    /// (bytes, keys) of committed contents plus the buffer; loaded on first write.
    usage: Option<(u64, u64)>,
    /// Why a write was refused for a quota, if one was: a failing
    /// invocation is then classified `budget_exhausted:kv`.
    pub(crate) refused: Option<String>,
    /// Calls made so far (refused ones included).
    calls: u64,
    /// Set when a call crossed `max_calls`: the invocation then ends
    /// `budget_exhausted:kv` whatever the guest does next.
    pub(crate) overrun: Option<String>,
    /// Where reads of the store are recorded (or, replaying, answered from).
    recording: recording::Shared,
}

impl KvState {
    /// Fresh state for one invocation working in `namespace`.
    pub fn new(store: Arc<KvStore>, namespace: Namespace, limits: KvLimits) -> KvState {
        KvState {
            store,
            namespace,
            limits,
            pending: BTreeMap::new(),
            usage: None,
            refused: None,
            calls: 0,
            overrun: None,
            recording: recording::Shared::default(),
        }
    }

    /// Records the store's answers in `recording` (or answers from it when
    /// it replays).
    pub fn recorded_in(mut self, recording: recording::Shared) -> KvState {
        self.recording = recording;
        self
    }

    /// One read of the store (what comes from outside the sandbox):
    /// recorded as `call`, or answered from the recording when replaying.
    fn outside<T>(
        &self,
        call: String,
        live: impl FnOnce(&KvStore) -> Result<T, KvError>,
        to_json: impl Fn(&T) -> Value,
        from_json: impl Fn(&Value) -> Option<T>,
    ) -> Result<T, Error> {
        if let Some(r) = recording::lock(&self.recording).replay(&call) {
            return match r {
                Replayed::Answer(v) => match v.get("ok") {
                    Some(ok) => from_json(ok).ok_or_else(|| {
                        Error::Unavailable("kv: the recorded result is malformed".into())
                    }),
                    None => Err(Error::Unavailable("kv store unavailable".into())),
                },
                Replayed::Diverged => Err(Error::Unavailable(
                    "kv: the replay diverged from the recorded calls".into(),
                )),
            };
        }
        let result = live(&self.store);
        let recorded = match &result {
            Ok(v) => json!({ "ok": to_json(v) }),
            Err(_) => json!({ "err": "unavailable" }),
        };
        recording::lock(&self.recording).record(call, recorded);
        result.map_err(unavailable)
    }

    fn stored(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.outside(
            format!("kv get {}", Hash256::of(key.as_bytes())),
            |s| s.get(&self.namespace, key),
            |v| v.as_deref().map_or(Value::Null, recording::hex_bytes),
            |v| {
                if v.is_null() {
                    Some(None)
                } else {
                    recording::bytes_of(v).map(Some)
                }
            },
        )
    }

    /// Counts one call, refusing it past `max_calls`.
    fn admit_call(&mut self) -> Result<(), Error> {
        self.calls = self.calls.saturating_add(1);
        if self.calls <= u64::from(self.limits.max_calls) {
            return Ok(());
        }
        let why = format!(
            "kv: more than max_calls = {} calls in one invocation",
            self.limits.max_calls
        );
        if self.overrun.is_none() {
            tracing::info!(namespace = %self.namespace, "{why}");
            self.overrun = Some(why.clone());
        }
        Err(Error::BudgetExhausted(why))
    }

    /// Applies the buffered writes (call only when the invocation ended `ok`).
    /// A replay writes nothing.
    pub fn commit(&self) -> Result<(), KvError> {
        if self.pending.is_empty() || recording::lock(&self.recording).is_replay() {
            return Ok(());
        }
        self.store
            .commit(&self.namespace, &self.pending, &self.limits.quota())
    }

    /// Number of buffered writes (discarded unless the invocation ends `ok`).
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    fn visible(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.stored(key),
        }
    }

    fn current_usage(&mut self) -> Result<(u64, u64), Error> {
        match self.usage {
            Some(u) => Ok(u),
            None => {
                let mut u = self.outside(
                    "kv usage".into(),
                    |s| s.usage(&self.namespace),
                    |(b, k)| json!([b, k]),
                    |v| Some((v.get(0)?.as_u64()?, v.get(1)?.as_u64()?)),
                )?;
                // Buffered writes made before the first quota check (deletes).
                for (key, value) in &self.pending {
                    let old = self.stored(key)?;
                    u = adjust(u, key, old.as_deref(), value.as_deref());
                }
                self.usage = Some(u);
                Ok(u)
            }
        }
    }

    fn set(&mut self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        if value.len() as u64 > self.limits.max_value_bytes.bytes() {
            return Err(self.refuse(format!(
                "kv: a value of {} bytes is over max_value_bytes = {}",
                value.len(),
                self.limits.max_value_bytes
            )));
        }
        let usage = self.current_usage()?;
        let old = self.visible(key)?;
        let next = adjust(usage, key, old.as_deref(), Some(&value));
        if let Some(why) = quota_problem(next.0, next.1, &self.limits.quota()) {
            return Err(self.refuse(format!("kv: {why}")));
        }
        self.usage = Some(next);
        self.pending.insert(key.to_string(), Some(value));
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), Error> {
        let old = self.visible(key)?;
        if old.is_none() && !self.pending.contains_key(key) {
            return Ok(()); // nothing committed, nothing buffered
        }
        if let Some(u) = self.usage {
            self.usage = Some(adjust(u, key, old.as_deref(), None));
        }
        self.pending.insert(key.to_string(), None);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut keys: std::collections::BTreeSet<String> = self
            .outside(
                format!("kv keys {}", Hash256::of(prefix.as_bytes())),
                |s| s.keys(&self.namespace, prefix),
                |keys| json!(keys),
                |v| serde_json::from_value::<Vec<String>>(v.clone()).ok(),
            )?
            .into_iter()
            .collect();
        for (key, value) in self.pending.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }

    fn refuse(&mut self, why: String) -> Error {
        tracing::info!(namespace = %self.namespace, "{why}");
        self.refused = Some(why.clone());
        Error::BudgetExhausted(why)
    }
}

/// Usage after replacing `old` with `new` under `key`.
fn adjust(usage: (u64, u64), key: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> (u64, u64) {
    let (mut bytes, mut keys) = usage;
    let k = key.len() as u64;
    if let Some(o) = old {
        bytes = bytes.saturating_sub(k + o.len() as u64);
        keys = keys.saturating_sub(1);
    }
    if let Some(n) = new {
        bytes = bytes.saturating_add(k + n.len() as u64);
        keys = keys.saturating_add(1);
    }
    (bytes, keys)
}

fn unavailable(e: KvError) -> Error {
    tracing::error!("{e}");
    Error::Unavailable("kv store unavailable".into())
}

fn check_key(key: &str, what: &str) -> Result<(), Error> {
    if what == "key" && key.is_empty() {
        return Err(Error::Invalid("kv: the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Invalid(format!(
            "kv: a {what} of {} bytes is over the {MAX_KEY_BYTES}-byte limit",
            key.len()
        )));
    }
    Ok(())
}

/// The borrowed state a kv call works on.
pub struct KvView<'a> {
    /// The invocation's kv state (`None` only if kv was not granted, in
    /// which case it is not linked either).
    pub kv: Option<&'a mut KvState>,
    /// Where the call is summarised.
    pub calls: &'a mut HostCallLog,
}

impl KvView<'_> {
    fn run<T>(
        &mut self,
        op: &str,
        key: &str,
        bytes_in: &[u8],
        f: impl FnOnce(&mut KvState) -> Result<T, Error>,
        out: impl Fn(&T) -> Vec<u8>,
    ) -> Result<T, Error> {
        let result = match self.kv.as_deref_mut() {
            Some(kv) => match kv.admit_call() {
                Ok(()) => check_key(key, if op == "list-keys" { "prefix" } else { "key" })
                    .and_then(|()| f(kv)),
                Err(e) => Err(e),
            },
            None => Err(Error::Denied("kv is not granted".into())),
        };
        let (status, response) = match &result {
            Ok(v) => ("ok", out(v)),
            Err(e) => (error_status(e), Vec::new()),
        };
        self.calls.record(HostCall {
            interface: INTERFACE.into(),
            target: format!("{op} {}", Hash256::of(key.as_bytes())),
            bytes_in: (key.len() + bytes_in.len()) as u64,
            bytes_out: response.len() as u64,
            status: status.into(),
            request_sha256: body_hash(bytes_in),
            response_sha256: body_hash(&response),
        });
        result
    }
}

/// The status string of a guest-visible error in a host-call summary.
pub(crate) fn error_status(e: &Error) -> &'static str {
    match e {
        Error::Denied(_) => "denied",
        Error::BudgetExhausted(_) => "budget_exhausted",
        Error::Unavailable(_) => "unavailable",
        Error::Invalid(_) => "invalid",
    }
}

impl Host for KvView<'_> {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.run(
            "get",
            &key,
            &[],
            |kv| kv.visible(&key),
            |v| v.clone().unwrap_or_default(),
        )
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        let k = key.clone();
        self.run(
            "set",
            &k,
            &value.clone(),
            move |kv| kv.set(&key, value),
            |_| Vec::new(),
        )
    }

    fn delete(&mut self, key: String) -> Result<(), Error> {
        self.run("delete", &key, &[], |kv| kv.delete(&key), |_| Vec::new())
    }

    fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, Error> {
        self.run(
            "list-keys",
            &prefix,
            &[],
            |kv| kv.list(&prefix),
            |keys| keys.join("\n").into_bytes(),
        )
    }
}

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = KvView<'a>;
}

/// Links `warden:host/kv` into `linker`; `get` borrows the invocation's
/// [`KvView`] from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    super::bindings::warden::host::kv::add_to_linker::<T, HasKv>(linker, get)
}

/// `max_calls` crossed ends the invocation `budget_exhausted:kv`; a write
/// refused for a quota names the outcome of a failing invocation; writes
/// are committed only when the invocation ends `ok`.
impl HostInterface for KvState {
    fn overrun(&self) -> Option<BudgetOverrun> {
        self.overrun.as_ref().map(|why| BudgetOverrun {
            budget: Budget::Kv,
            why: why.clone(),
        })
    }

    fn refused(&self) -> Option<BudgetOverrun> {
        self.refused.as_ref().map(|why| BudgetOverrun {
            budget: Budget::Kv,
            why: why.clone(),
        })
    }

    fn finish(&mut self, ended: Outcome) -> Result<(), FinishError> {
        if ended != Outcome::Ok {
            if self.pending_writes() > 0 {
                tracing::debug!(
                    writes = self.pending_writes(),
                    "kv writes discarded: invocation ended {ended}"
                );
            }
            return Ok(());
        }
        match self.commit() {
            Ok(()) => Ok(()),
            Err(KvError::Quota(why)) => Err(FinishError::Budget(BudgetOverrun {
                budget: Budget::Kv,
                why,
            })),
            Err(e) => Err(FinishError::Failed(format!(
                "the invocation's kv writes could not be committed ({e}); the result is withheld"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Tenant;
    use crate::units::ByteSize;

    fn ns(capability: &str) -> Namespace {
        Namespace::new(capability, None)
    }

    fn state(store: &Arc<KvStore>, capability: &str, limits: KvLimits) -> KvState {
        KvState::new(store.clone(), ns(capability), limits)
    }

    #[test]
    fn reads_see_buffered_writes_and_commit_applies_them() {
        let store = Arc::new(KvStore::in_memory().expect("store"));
        let mut s = state(&store, "a", KvLimits::default());
        s.set("k1", b"v1".to_vec()).expect("set");
        assert_eq!(s.visible("k1").expect("get"), Some(b"v1".to_vec()));
        assert_eq!(store.get(&ns("a"), "k1").expect("get"), None);
        s.commit().expect("commit");
        assert_eq!(
            store.get(&ns("a"), "k1").expect("get"),
            Some(b"v1".to_vec())
        );
        assert_eq!(store.get(&ns("b"), "k1").expect("get"), None);
    }

    #[test]
    fn listing_merges_the_buffer_with_committed_keys() {
        let store = Arc::new(KvStore::in_memory().expect("store"));
        let mut s = state(&store, "a", KvLimits::default());
        for k in ["p/1", "p/2", "q/1"] {
            s.set(k, b"x".to_vec()).expect("set");
        }
        s.commit().expect("commit");
        let mut s = state(&store, "a", KvLimits::default());
        s.delete("p/1").expect("delete");
        s.set("p/3", b"y".to_vec()).expect("set");
        assert_eq!(s.list("p/").expect("list"), vec!["p/2", "p/3"]);
        assert_eq!(s.list("").expect("list").len(), 3);
    }

    #[test]
    fn quotas_count_keys_and_bytes_including_the_buffer() {
        let store = Arc::new(KvStore::in_memory().expect("store"));
        let limits = KvLimits {
            max_bytes: ByteSize(20),
            max_value_bytes: ByteSize(8),
            max_keys: 2,
            ..KvLimits::default()
        };
        let mut s = state(&store, "a", limits);
        assert!(matches!(
            s.set("k", vec![0; 9]),
            Err(Error::BudgetExhausted(_))
        ));
        s.set("k1", vec![0; 8]).expect("10 bytes");
        s.set("k2", vec![0; 8]).expect("20 bytes");
        assert!(matches!(
            s.set("k3", vec![]),
            Err(Error::BudgetExhausted(_))
        ));
        s.set("k2", vec![0; 2]).expect("replacing shrinks");
        s.delete("k1").expect("delete");
        s.set("k3", vec![0; 8]).expect("room again");
        assert!(s.refused.is_some());
        s.commit().expect("within quota");
        assert_eq!(store.usage(&ns("a")).expect("usage"), (14, 2));
    }

    #[test]
    fn calls_past_max_calls_are_refused_and_mark_the_overrun() {
        let store = Arc::new(KvStore::in_memory().expect("store"));
        let limits = KvLimits {
            max_calls: 2,
            ..KvLimits::default()
        };
        let mut s = state(&store, "a", limits);
        let mut calls = HostCallLog::default();
        let mut view = KvView {
            kv: Some(&mut s),
            calls: &mut calls,
        };
        view.set("k".into(), b"v".to_vec()).expect("first call");
        assert_eq!(
            view.get("k".into()).expect("second call"),
            Some(b"v".to_vec())
        );
        let refused = view.get("k".into());
        assert!(
            matches!(&refused, Err(Error::BudgetExhausted(m)) if m.contains("max_calls = 2")),
            "{refused:?}"
        );
        let statuses: Vec<String> = calls
            .into_summaries()
            .into_iter()
            .map(|c| c.status)
            .collect();
        assert_eq!(statuses, ["ok", "ok", "budget_exhausted"]);
        assert!(s.overrun.is_some());
        assert!(s.refused.is_none(), "not a quota refusal");
    }

    fn tenant(name: &str) -> Tenant {
        Tenant::parse(name).expect("tenant")
    }

    #[test]
    fn each_tenant_and_the_tenant_less_namespace_are_separate() {
        let store = Arc::new(KvStore::in_memory().expect("store"));
        let acme = Namespace::new("notes", Some(&tenant("acme")));
        let globex = Namespace::new("notes", Some(&tenant("globex")));
        let none = Namespace::new("notes", None);
        let mut s = KvState::new(store.clone(), acme.clone(), KvLimits::default());
        s.set("n", b"acme secret".to_vec()).expect("set");
        s.commit().expect("commit");
        assert_eq!(
            store.get(&acme, "n").expect("get"),
            Some(b"acme secret".to_vec())
        );
        assert_eq!(store.get(&globex, "n").expect("get"), None);
        assert_eq!(store.get(&none, "n").expect("get"), None);
        assert!(store.keys(&globex, "").expect("keys").is_empty());
        assert!(store.keys(&none, "").expect("keys").is_empty());
        assert_eq!(store.usage(&none).expect("usage"), (0, 0));
        // Quotas are per namespace: globex's writes do not count acme's keys.
        let one_key = KvLimits {
            max_keys: 1,
            ..KvLimits::default()
        };
        let mut g = KvState::new(store.clone(), globex.clone(), one_key);
        g.set("n", b"globex".to_vec()).expect("globex has room");
        g.commit().expect("commit");
        assert_eq!(
            store.get(&acme, "n").expect("get"),
            Some(b"acme secret".to_vec())
        );
    }
}
