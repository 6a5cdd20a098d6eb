//! The KV namespaces' storage in SQLite: `kv.db` in the data directory (or
//! an in-memory database for hosts without one). [`KvStore`] is the SQLite
//! [`KvBackend`](super::KvBackend); the guest-facing half (buffered writes,
//! per-invocation quotas and call budgets) is `interfaces::kv`.
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
//! rows has nothing to re-scope and is upgraded in place (the schema's
//! migration to version 2, run by [`super::database`]).
//!
//! This module must never choose a namespace (the host does, from the
//! capability and the tenant), never apply part of a commit, and never skip
//! or default a row it cannot decode ([`KvError::BadRow`]).

use super::StoreError;
use super::database::{self, Access, BUSY_TIMEOUT, Migration as Step, Schema};
use crate::tenant::Tenant;
use crate::units::ByteSize;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// `PRAGMA user_version` of the (capability, tenant) layout.
pub const LAYOUT_VERSION: i64 = 2;

/// `kv.db`'s schema: version 2 is the (capability, tenant) layout (there
/// was never a version 1).
pub(crate) const KV_SCHEMA: Schema = Schema {
    name: "kv",
    migrations: &[Step {
        to: LAYOUT_VERSION,
        run: to_tenant_layout,
    }],
};

/// The quotas one KV namespace is held to: the storage-side view of the
/// policy's KV grant (`interfaces::kv::KvLimits::quota`). Checked on every
/// write and again inside each commit's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Most bytes (keys + values) the namespace may hold.
    pub max_bytes: ByteSize,
    /// Largest single value.
    pub max_value_bytes: ByteSize,
    /// Most keys the namespace may hold.
    pub max_keys: u32,
}

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
    /// A stored row does not decode (never skipped or defaulted).
    #[error("kv store {path}: namespace {namespace}, key {key:?}: {reason}")]
    BadRow {
        /// The database file.
        path: String,
        /// The namespace holding it.
        namespace: String,
        /// The row's key (as stored, if it is not text).
        key: String,
        /// What is wrong.
        reason: String,
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

/// The (capability, tenant) table, without the version (set by whoever
/// runs it, in the same transaction).
const TABLE: &str = "CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    PRIMARY KEY (namespace, tenant, key)
) WITHOUT ROWID;";

/// Version 0 -> 2: creates the table in a new file, replaces an empty
/// capability-only table; a capability-only table with rows is refused
/// (only `warden kv migrate` re-scopes rows, and [`KvStore::open`] names it).
fn to_tenant_layout(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = super::sqlite_err(path);
    match layout(conn).map_err(sql)? {
        Layout::Fresh | Layout::Current | Layout::Newer(_) => {
            conn.execute_batch(TABLE).map_err(super::sqlite_err(path))
        }
        Layout::CapabilityOnly(0) => {
            tracing::info!(path = %path.display(), "kv store: upgrading an empty capability-only kv table to the (capability, tenant) layout");
            conn.execute_batch(&format!("DROP TABLE kv; {TABLE}"))
                .map_err(super::sqlite_err(path))
        }
        Layout::CapabilityOnly(rows) => Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!(
                "{rows} row(s) in the capability-only kv layout; run `warden kv migrate`"
            ),
        }),
    }
}

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
        if path.exists() {
            // Refuse before anything writes to the file (not even WAL mode).
            let err = |e: rusqlite::Error| KvError::Sqlite {
                path: name.clone(),
                message: e.to_string(),
            };
            let conn =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
            match layout(&conn).map_err(err)? {
                Layout::CapabilityOnly(rows) if rows > 0 => {
                    return Err(KvError::OldLayout {
                        path: name,
                        data_dir: data_dir_of(path),
                        rows,
                    });
                }
                Layout::Newer(found) => return Err(KvError::NewerLayout { path: name, found }),
                _ => {}
            }
        }
        let conn =
            database::open(path, &KV_SCHEMA, Access::Write).map_err(|e| store_error(&name, e))?;
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
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let moved = match layout(&tx).map_err(err)? {
            Layout::Current => return Ok(Migration::AlreadyCurrent),
            Layout::Newer(found) => return Err(KvError::NewerLayout { path: name, found }),
            Layout::Fresh => {
                tx.execute_batch(TABLE).map_err(err)?;
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
                    "ALTER TABLE kv RENAME TO kv_capability_only; {TABLE}"
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
        tx.execute_batch(&format!("PRAGMA user_version = {LAYOUT_VERSION}"))
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(moved)
    }

    /// A store that lives in memory (hosts without a data directory). Same
    /// semantics as a file store; contents vanish with the host.
    pub fn in_memory() -> Result<KvStore, KvError> {
        let conn = database::open_in_memory(&KV_SCHEMA).map_err(|e| store_error(":memory:", e))?;
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

    fn bad_row(&self, ns: &Namespace, key: &str, e: &rusqlite::Error) -> KvError {
        KvError::BadRow {
            path: self.path.clone(),
            namespace: ns.to_string(),
            key: key.to_string(),
            reason: e.to_string(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R, KvError>) -> Result<R, KvError> {
        // A poisoned lock only means another thread panicked mid-call; the
        // connection itself is still consistent (SQLite transactions).
        blocking(|| {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
    }

    /// Runs `f` on the store's connection (tests that damage rows of an
    /// in-memory store, which has no second connection).
    #[cfg(test)]
    pub(crate) fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
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
            .map_err(|e| match e {
                e @ (rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::FromSqlConversionFailure(..)) => self.bad_row(ns, key, &e),
                e => self.err(e),
            })
        })
    }

    /// Committed keys of `ns` starting with `prefix`, ascending.
    pub fn keys(&self, ns: &Namespace, prefix: &str) -> Result<Vec<String>, KvError> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key FROM kv WHERE namespace = ?1 AND tenant = ?2 AND key >= ?3 ORDER BY key",
                )
                .map_err(|e| self.err(e))?;
            let mut rows = stmt
                .query(params![ns.capability, ns.tenant_column(), prefix])
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let key: String = row.get(0).map_err(|e| {
                    let raw = row
                        .get_ref(0)
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default();
                    self.bad_row(ns, &raw, &e)
                })?;
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
        self.with(|c| usage_in(c, ns).map_err(|e| self.err(e)))
    }

    /// Applies `writes` (`None` deletes) to `ns` in one transaction,
    /// refusing (and applying nothing) if the result is over `limits`.
    pub fn commit(
        &self,
        ns: &Namespace,
        writes: &BTreeMap<String, Option<Vec<u8>>>,
        limits: &KvQuota,
    ) -> Result<(), KvError> {
        let mut over = None;
        let tenant = ns.tenant_column();
        self.with(|c| {
            let mut run = |c: &mut Connection| -> rusqlite::Result<()> {
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
            };
            run(c).map_err(|e| self.err(e))
        })?;
        match over {
            Some(why) => Err(KvError::Quota(format!(
                "{why} after concurrent writes; this invocation's writes were not kept"
            ))),
            None => Ok(()),
        }
    }
}

/// A store error at open, as a KV error naming the file.
fn store_error(path: &str, e: StoreError) -> KvError {
    match e {
        StoreError::SchemaTooNew { found, .. } => KvError::NewerLayout {
            path: path.to_string(),
            found,
        },
        e => KvError::Sqlite {
            path: path.to_string(),
            message: e.to_string(),
        },
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
        |r| Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?)),
    )
}

pub(crate) fn quota_problem(bytes: u64, keys: u64, limits: &KvQuota) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(capability: &str) -> Namespace {
        Namespace::new(capability, None)
    }

    fn tenant(name: &str) -> Tenant {
        Tenant::parse(name).expect("tenant")
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
            .with_connection(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
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
