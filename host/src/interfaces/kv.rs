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
use crate::audit::HostCall;
use crate::audit::entry::Hash256;
use crate::tenant::Tenant;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker};

/// Longest key, in bytes. Keys are stored and compared as given; the bound
/// stops a guest from turning keys into an unmetered second value store.
pub const MAX_KEY_BYTES: usize = 512;

/// `PRAGMA user_version` of the (capability, tenant) layout.
pub const LAYOUT_VERSION: i64 = 2;

const INTERFACE: &str = "warden:host/kv";

/// Why the KV store failed (host side, not a guest error).
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// SQLite failed.
    #[error("kv store {path}: {message}")]
    Sqlite {
        /// The database file (`:memory:` for in-memory stores).
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// Committing would leave the namespace over a quota.
    #[error("kv quota: {0}")]
    Quota(String),
    /// The file holds rows in the capability-only layout of earlier
    /// versions; they are not re-scoped without an explicit migration.
    #[error(
        "kv store {path} uses the capability-only layout of earlier warden versions ({rows} row(s), \
         shared by every tenant of a capability); refusing to re-scope them silently. Stop every \
         process using it, then run `warden kv migrate --data-dir {data_dir}` to move them into \
         each capability's tenant-less namespace, or `warden kv migrate --data-dir {data_dir} \
         --tenant <tenant>` to move them into one tenant's namespace (docs/operations.md)"
    )]
    OldLayout {
        /// The database file.
        path: String,
        /// Its data directory.
        data_dir: String,
        /// Rows in the old table.
        rows: u64,
    },
    /// The file was written by a newer warden.
    #[error("kv store {path} has layout version {found}; this warden knows up to {LAYOUT_VERSION}")]
    NewerLayout {
        /// The database file.
        path: String,
        /// Its `user_version`.
        found: i64,
    },
}

/// A KV namespace: a capability, and the tenant it runs for (`None`: the
/// capability's tenant-less namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Capability name.
    pub capability: String,
    /// Tenant, canonical.
    pub tenant: Option<Tenant>,
}

impl Namespace {
    /// The namespace of `capability` for `tenant`.
    pub fn new(capability: &str, tenant: Option<&Tenant>) -> Namespace {
        Namespace {
            capability: capability.to_string(),
            tenant: tenant.cloned(),
        }
    }

    /// The `tenant` column: `''` for tenant-less (no tenant name is empty).
    fn tenant_column(&self) -> &str {
        self.tenant.as_ref().map_or("", Tenant::as_str)
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tenant {
            Some(t) => write!(f, "{}@{t}", self.capability),
            None => write!(f, "{} (tenant-less)", self.capability),
        }
    }
}

/// What [`KvStore::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// The file already had the current layout.
    AlreadyCurrent,
    /// Rows moved from the capability-only layout.
    Moved {
        /// Rows moved.
        rows: u64,
        /// Distinct capabilities they belonged to.
        capabilities: u64,
    },
}

/// The store shared by every invocation on a host.
pub struct KvStore {
    path: String,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    PRIMARY KEY (namespace, tenant, key)
) WITHOUT ROWID;
PRAGMA user_version = 2;";

/// Where a file stands.
enum Layout {
    /// No `kv` table yet.
    Fresh,
    /// `(namespace, tenant, key, value)`.
    Current,
    /// `(namespace, key, value)` with this many rows.
    CapabilityOnly(u64),
    /// Written by a newer warden.
    Newer(i64),
}

fn layout(c: &Connection) -> rusqlite::Result<Layout> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > LAYOUT_VERSION {
        return Ok(Layout::Newer(version));
    }
    let mut stmt = c.prepare("SELECT name FROM pragma_table_info('kv')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(Layout::Fresh);
    }
    if columns.iter().any(|c| c == "tenant") {
        return Ok(Layout::Current);
    }
    let rows: i64 = c.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))?;
    Ok(Layout::CapabilityOnly(u64::try_from(rows).unwrap_or(0)))
}

fn data_dir_of(path: &Path) -> String {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .display()
        .to_string()
}

impl KvStore {
    /// Opens (or creates) the store at `path` (`<data_dir>/kv.db`). A file
    /// with rows in the capability-only layout of earlier versions is
    /// refused ([`KvError::OldLayout`]); see [`KvStore::migrate`].
    pub fn open(path: &Path) -> Result<KvStore, KvError> {
        let name = path.display().to_string();
        let err = |e: rusqlite::Error| KvError::Sqlite {
            path: name.clone(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(err)?;
        match layout(&conn).map_err(err)? {
            Layout::Fresh => conn.execute_batch(SCHEMA).map_err(err)?,
            Layout::Current => {}
            Layout::CapabilityOnly(0) => {
                // Nothing to re-scope: replace the empty old table.
                tracing::info!(path = %name, "kv store: upgrading an empty capability-only kv table to the (capability, tenant) layout");
                conn.execute_batch(&format!("BEGIN; DROP TABLE kv; {SCHEMA} COMMIT;"))
                    .map_err(err)?;
            }
            Layout::CapabilityOnly(rows) => {
                return Err(KvError::OldLayout {
                    path: name,
                    data_dir: data_dir_of(path),
                    rows,
                });
            }
            Layout::Newer(found) => return Err(KvError::NewerLayout { path: name, found }),
        }
        Ok(KvStore {
            path: name,
            conn: Mutex::new(conn),
        })
    }

    /// Moves the rows of a capability-only `kv.db` (earlier versions) into
    /// the (capability, tenant) layout, in one transaction: into each
    /// capability's tenant-less namespace, or into `tenant`'s. A file that
    /// already has the current layout is left as it is. Run it while no
    /// process uses the file.
    pub fn migrate(path: &Path, tenant: Option<&Tenant>) -> Result<Migration, KvError> {
        let name = path.display().to_string();
        let err = |e: rusqlite::Error| KvError::Sqlite {
            path: name.clone(),
            message: e.to_string(),
        };
        if !path.exists() {
            return Err(KvError::Sqlite {
                path: name,
                message: "no such file".into(),
            });
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let moved = match layout(&tx).map_err(err)? {
            Layout::Current => return Ok(Migration::AlreadyCurrent),
            Layout::Newer(found) => return Err(KvError::NewerLayout { path: name, found }),
            Layout::Fresh => {
                tx.execute_batch(SCHEMA).map_err(err)?;
                Migration::Moved {
                    rows: 0,
                    capabilities: 0,
                }
            }
            Layout::CapabilityOnly(_) => {
                let capabilities: i64 = tx
                    .query_row("SELECT COUNT(DISTINCT namespace) FROM kv", [], |r| r.get(0))
                    .map_err(err)?;
                tx.execute_batch(&format!(
                    "ALTER TABLE kv RENAME TO kv_capability_only; {SCHEMA}"
                ))
                .map_err(err)?;
                let rows = tx
                    .execute(
                        "INSERT INTO kv (namespace, tenant, key, value)
                         SELECT namespace, ?1, key, value FROM kv_capability_only",
                        params![tenant.map_or("", Tenant::as_str)],
                    )
                    .map_err(err)?;
                tx.execute_batch("DROP TABLE kv_capability_only")
                    .map_err(err)?;
                Migration::Moved {
                    rows: rows as u64,
                    capabilities: u64::try_from(capabilities).unwrap_or(0),
                }
            }
        };
        tx.commit().map_err(err)?;
        Ok(moved)
    }

    /// A store that lives in memory (hosts without a data directory). Same
    /// semantics as a file store; contents vanish with the host.
    pub fn in_memory() -> Result<KvStore, KvError> {
        let err = |e: rusqlite::Error| KvError::Sqlite {
            path: ":memory:".into(),
            message: e.to_string(),
        };
        let conn = Connection::open_in_memory().map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(KvStore {
            path: ":memory:".into(),
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, e: rusqlite::Error) -> KvError {
        KvError::Sqlite {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, KvError> {
        // A poisoned lock only means another thread panicked mid-call; the
        // connection itself is still consistent (SQLite transactions).
        blocking(|| {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map_err(|e| self.err(e))
        })
    }

    /// The committed value of `key` in `ns`.
    pub fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM kv WHERE namespace = ?1 AND tenant = ?2 AND key = ?3",
                params![ns.capability, ns.tenant_column(), key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Committed keys of `ns` starting with `prefix`, ascending.
    pub fn keys(&self, ns: &Namespace, prefix: &str) -> Result<Vec<String>, KvError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key FROM kv WHERE namespace = ?1 AND tenant = ?2 AND key >= ?3 ORDER BY key",
            )?;
            let mut rows = stmt.query(params![ns.capability, ns.tenant_column(), prefix])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                if !key.starts_with(prefix) {
                    break;
                }
                out.push(key);
            }
            Ok(out)
        })
    }

    /// (bytes of keys + values, number of keys) committed in `ns`.
    pub fn usage(&self, ns: &Namespace) -> Result<(u64, u64), KvError> {
        self.with(|c| usage_in(c, ns))
    }

    /// Applies `writes` (`None` deletes) to `ns` in one transaction,
    /// refusing (and applying nothing) if the result is over `limits`.
    pub fn commit(
        &self,
        ns: &Namespace,
        writes: &BTreeMap<String, Option<Vec<u8>>>,
        limits: &KvLimits,
    ) -> Result<(), KvError> {
        let mut over = None;
        let tenant = ns.tenant_column();
        self.with(|c| {
            let tx = c.transaction()?;
            for (key, value) in writes {
                match value {
                    Some(v) => tx.execute(
                        "INSERT INTO kv (namespace, tenant, key, value) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (namespace, tenant, key) DO UPDATE SET value = excluded.value",
                        params![ns.capability, tenant, key, v],
                    )?,
                    None => tx.execute(
                        "DELETE FROM kv WHERE namespace = ?1 AND tenant = ?2 AND key = ?3",
                        params![ns.capability, tenant, key],
                    )?,
                };
            }
            let (bytes, keys) = usage_in(&tx, ns)?;
            over = quota_problem(bytes, keys, limits);
            if over.is_none() {
                tx.commit()?;
            }
            Ok(())
        })?;
        match over {
            Some(why) => Err(KvError::Quota(format!(
                "{why} after concurrent writes; this invocation's writes were not kept"
            ))),
            None => Ok(()),
        }
    }
}

/// Runs `f`, which may block (SQLite I/O, waiting for the connection),
/// telling a multi-threaded tokio runtime first so that it moves the
/// worker's other tasks to another thread meanwhile. Invocations run on
/// the runtime's workers; elsewhere (a current-thread runtime, no runtime)
/// `f` simply runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

fn usage_in(c: &Connection, ns: &Namespace) -> rusqlite::Result<(u64, u64)> {
    c.query_row(
        "SELECT COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0), COUNT(*)
         FROM kv WHERE namespace = ?1 AND tenant = ?2",
        params![ns.capability, ns.tenant_column()],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

fn quota_problem(bytes: u64, keys: u64, limits: &KvLimits) -> Option<String> {
    if bytes > limits.max_bytes.bytes() {
        Some(format!(
            "the namespace would hold {bytes} bytes, over max_bytes = {}",
            limits.max_bytes
        ))
    } else if keys > u64::from(limits.max_keys) {
        Some(format!(
            "the namespace would hold {keys} keys, over max_keys = {}",
            limits.max_keys
        ))
    } else {
        None
    }
}

// ---- The interface: grant settings, per-invocation state, linking. ----

use super::catalogue::{Entry, GrantKind, Unit, empty_table, read_settings};
use super::{BudgetOverrun, FinishError, HostInterface};
use crate::outcome::{Budget, Outcome};
use crate::policy::ByteSize;

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
        }
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
    pub fn commit(&self) -> Result<(), KvError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.store
            .commit(&self.namespace, &self.pending, &self.limits)
    }

    /// Number of buffered writes (discarded unless the invocation ends `ok`).
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    fn visible(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.get(&self.namespace, key).map_err(unavailable),
        }
    }

    fn current_usage(&mut self) -> Result<(u64, u64), Error> {
        match self.usage {
            Some(u) => Ok(u),
            None => {
                let mut u = self.store.usage(&self.namespace).map_err(unavailable)?;
                // Buffered writes made before the first quota check (deletes).
                for (key, value) in &self.pending {
                    let old = self.store.get(&self.namespace, key).map_err(unavailable)?;
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
        if let Some(why) = quota_problem(next.0, next.1, &self.limits) {
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
            .store
            .keys(&self.namespace, prefix)
            .map_err(unavailable)?
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
    use crate::policy::ByteSize;

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

    /// A `kv.db` as warden wrote it before tenants: `(namespace, key, value)`.
    fn old_layout_file(name: &str, rows: &[(&str, &str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "warden-kv-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("kv.db");
        let c = Connection::open(&path).expect("open");
        c.execute_batch(
            "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, \
             PRIMARY KEY (namespace, key)) WITHOUT ROWID;",
        )
        .expect("old schema");
        for (ns, k, v) in rows {
            c.execute(
                "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)",
                params![ns, k, v.as_bytes()],
            )
            .expect("row");
        }
        path
    }

    #[test]
    fn an_old_layout_file_with_rows_is_refused_naming_the_migration() {
        let path = old_layout_file("refused", &[("notes", "n", "v")]);
        let e = KvStore::open(&path).err().expect("refused");
        let text = e.to_string();
        assert!(matches!(e, KvError::OldLayout { rows: 1, .. }), "{text}");
        assert!(text.contains("warden kv migrate --data-dir"), "{text}");
        // Refusing changed nothing: still the old table, still its row.
        let c = Connection::open(&path).expect("open");
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM kv WHERE namespace = 'notes'",
                [],
                |r| r.get(0),
            )
            .expect("old rows");
        assert_eq!(n, 1);
    }

    #[test]
    fn an_empty_old_layout_file_is_upgraded_in_place() {
        let path = old_layout_file("empty", &[]);
        let store = KvStore::open(&path).expect("nothing to re-scope");
        assert_eq!(store.usage(&ns("notes")).expect("usage"), (0, 0));
        drop(store);
        assert_eq!(
            KvStore::migrate(&path, None).expect("migrate"),
            Migration::AlreadyCurrent
        );
    }

    #[test]
    fn migrating_moves_old_rows_into_the_tenant_less_namespace_or_one_tenant() {
        let rows = [
            ("notes", "a", "1"),
            ("notes", "b", "2"),
            ("other", "a", "3"),
        ];
        let path = old_layout_file("to-none", &rows);
        assert_eq!(
            KvStore::migrate(&path, None).expect("migrate"),
            Migration::Moved {
                rows: 3,
                capabilities: 2
            }
        );
        let store = KvStore::open(&path).expect("current layout");
        assert_eq!(
            store.get(&ns("notes"), "b").expect("get"),
            Some(b"2".to_vec())
        );
        assert_eq!(
            store.get(&ns("other"), "a").expect("get"),
            Some(b"3".to_vec())
        );
        let acme = Namespace::new("notes", Some(&tenant("acme")));
        assert_eq!(store.get(&acme, "b").expect("get"), None);
        drop(store);
        assert_eq!(
            KvStore::migrate(&path, None).expect("again"),
            Migration::AlreadyCurrent
        );

        let path = old_layout_file("to-acme", &rows);
        KvStore::migrate(&path, Some(&tenant("acme"))).expect("migrate");
        let store = KvStore::open(&path).expect("current layout");
        assert_eq!(store.get(&acme, "a").expect("get"), Some(b"1".to_vec()));
        assert_eq!(store.get(&ns("notes"), "a").expect("get"), None);
        let version: i64 = store
            .with(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .expect("version");
        assert_eq!(version, LAYOUT_VERSION);
    }

    #[test]
    fn a_file_from_a_newer_layout_is_refused() {
        let path = old_layout_file("newer", &[]);
        Connection::open(&path)
            .and_then(|c| c.execute_batch("PRAGMA user_version = 99"))
            .expect("bump");
        assert!(matches!(
            KvStore::open(&path),
            Err(KvError::NewerLayout { found: 99, .. })
        ));
    }
}
