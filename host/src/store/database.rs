//! Opening a SQLite database: the one place that sets PRAGMAs and runs
//! schema migrations, for every file in the data directory (`warden.db`,
//! `state.db`, `kv.db`).
//!
//! Each database declares a [`Schema`]: an ordered list of [`Migration`]s,
//! the last one's version being the version this build writes. The version
//! a file is at lives in `PRAGMA user_version` (0: a new file, or a file from
//! before versions were kept). Opening for writing runs every migration past
//! the file's version, each in its own `BEGIN IMMEDIATE` transaction that
//! re-reads the version first (two processes racing to upgrade a file do the
//! work once) and sets the new version in the same commit, so a crash leaves
//! the file at one version or the next, never between. A file at a version
//! newer than this build knows is refused ([`StoreError::SchemaTooNew`],
//! naming the file), for readers and writers alike.
//!
//! This module must never decide what a database holds (the migrations
//! belong to their store) and must never change a file opened for reading.

use super::{StoreError, sqlite_err};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// How long a connection waits for another connection's lock before
/// failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One step of a database's schema: what brings a file from the previous
/// version to [`Migration::to`].
pub(crate) struct Migration {
    /// The version after this step.
    pub to: i64,
    /// Applies the step inside the open transaction. Must be idempotent
    /// over partial earlier layouts (`IF NOT EXISTS`, column checks) and
    /// must not set `user_version` (the caller does, in the same commit).
    pub run: fn(&Connection, &Path) -> Result<(), StoreError>,
}

/// A database's schema: its migrations, in order.
pub(crate) struct Schema {
    /// What the file holds, for messages (`audit`, `request state`, `kv`).
    pub name: &'static str,
    /// Every step from an empty file, ascending by [`Migration::to`].
    pub migrations: &'static [Migration],
}

impl Schema {
    /// The version this build writes.
    pub fn version(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.to)
    }
}

/// How a database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Create the file (and its directory) if missing and migrate it.
    Write,
    /// Open an existing file as it is: never create, never migrate, refuse
    /// a file without a schema version (not one of ours).
    Read,
}

/// Prepared statements kept per connection (rusqlite's default is 16).
const STATEMENT_CACHE: usize = 64;

/// Opens `path` with WAL, `synchronous=FULL` (no table uses foreign keys) and the busy
/// timeout, checks its schema version against `schema` and (for
/// [`Access::Write`]) migrates it to the current version.
pub(crate) fn open(path: &Path, schema: &Schema, access: Access) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if access == Access::Write {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
    }
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_err(path))?;
    // Room for every statement one writer keeps prepared (the audit
    // writer: entries, payloads, tree nodes, savepoints and the journal's
    // a dozen or so), so none is evicted and compiled again per batch.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let version = user_version(&conn, path)?;
    check_not_newer(path, schema, version)?;
    if version == 0 && access == Access::Read {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("not a warden {} database (no schema version)", schema.name),
        });
    }
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(sqlite_err(path))?;
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .map_err(sqlite_err(path))?;
    if access == Access::Write {
        migrate(&conn, path, schema)?;
    }
    Ok(conn)
}

/// An in-memory database at the current version (hosts without a data
/// directory). Contents vanish with the connection.
pub(crate) fn open_in_memory(schema: &Schema) -> Result<Connection, StoreError> {
    let path = Path::new(":memory:");
    let conn = Connection::open_in_memory().map_err(sqlite_err(path))?;
    migrate(&conn, path, schema)?;
    Ok(conn)
}

/// The file's `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err(path))
}

fn check_not_newer(path: &Path, schema: &Schema, found: i64) -> Result<(), StoreError> {
    if found > schema.version() {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            what: schema.name,
            found,
            supported: schema.version(),
        });
    }
    Ok(())
}

/// Runs every migration past the file's version, one transaction each.
pub(crate) fn migrate(conn: &Connection, path: &Path, schema: &Schema) -> Result<(), StoreError> {
    for step in schema.migrations {
        if user_version(conn, path)? >= step.to {
            continue;
        }
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(sqlite_err(path))?;
        let result = (|| {
            // Re-read under the write lock: another process may have
            // migrated the file since.
            let now = user_version(conn, path)?;
            check_not_newer(path, schema, now)?;
            if now >= step.to {
                return Ok(());
            }
            (step.run)(conn, path)?;
            conn.execute_batch(&format!("PRAGMA user_version = {}", step.to))
                .map_err(sqlite_err(path))
        })();
        match result {
            Ok(()) => conn.execute_batch("COMMIT").map_err(sqlite_err(path))?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Runs `write` in a savepoint of `tx`: its rows are kept when it returns
/// `Ok`, rolled back (and the error handed back) when it fails, so one
/// refused write in a writer's batch never takes the batch down. The outer
/// `Err` is the savepoint itself failing. The statements are prepared once
/// per connection (cached), not parsed per write.
pub(crate) fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<Result<T, StoreError>, StoreError> {
    let step = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(sqlite_err(path))
    };
    step("SAVEPOINT row_write")?;
    let r = write(tx);
    if r.is_err() {
        step("ROLLBACK TO row_write")?;
    }
    step("RELEASE row_write")?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_t(conn: &Connection, path: &Path) -> Result<(), StoreError> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
            .map_err(sqlite_err(path))
    }

    fn add_b(conn: &Connection, path: &Path) -> Result<(), StoreError> {
        conn.execute_batch("ALTER TABLE t ADD COLUMN b TEXT")
            .map_err(sqlite_err(path))
    }

    fn fail(_: &Connection, path: &Path) -> Result<(), StoreError> {
        Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: "refused on purpose".into(),
        })
    }

    const ONE: Schema = Schema {
        name: "test",
        migrations: &[Migration {
            to: 1,
            run: create_t,
        }],
    };
    const TWO: Schema = Schema {
        name: "test",
        migrations: &[
            Migration {
                to: 1,
                run: create_t,
            },
            Migration { to: 2, run: add_b },
        ],
    };
    const BROKEN_TWO: Schema = Schema {
        name: "test",
        migrations: &[
            Migration {
                to: 1,
                run: create_t,
            },
            Migration { to: 2, run: fail },
        ],
    };

    #[test]
    fn a_new_file_is_migrated_to_the_current_version_with_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("t.db");
        let conn = open(&path, &TWO, Access::Write).expect("open");
        assert_eq!(user_version(&conn, &path).expect("version"), 2);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!(sync, 2, "FULL");
        conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')", [])
            .expect("both columns exist");
    }

    #[test]
    fn an_older_file_is_upgraded_step_by_step_keeping_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = open(&path, &ONE, Access::Write).expect("v1");
        conn.execute("INSERT INTO t (a) VALUES (7)", [])
            .expect("row");
        drop(conn);
        let conn = open(&path, &TWO, Access::Write).expect("v2");
        assert_eq!(user_version(&conn, &path).expect("version"), 2);
        let a: i64 = conn
            .query_row("SELECT a FROM t", [], |r| r.get(0))
            .expect("row kept");
        assert_eq!(a, 7);
    }

    #[test]
    fn a_failed_migration_leaves_the_file_at_its_previous_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        drop(open(&path, &ONE, Access::Write).expect("v1"));
        let e = open(&path, &BROKEN_TWO, Access::Write).expect_err("refused");
        assert!(e.to_string().contains("refused on purpose"), "{e}");
        let conn = open(&path, &ONE, Access::Read).expect("still v1");
        assert_eq!(user_version(&conn, &path).expect("version"), 1);
    }

    #[test]
    fn a_file_newer_than_the_build_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        drop(open(&path, &TWO, Access::Write).expect("v2"));
        for access in [Access::Write, Access::Read] {
            let e = open(&path, &ONE, access).expect_err("newer");
            assert!(
                matches!(
                    e,
                    StoreError::SchemaTooNew {
                        found: 2,
                        supported: 1,
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("t.db"), "{e}");
        }
    }

    #[test]
    fn reading_never_creates_or_migrates_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.db");
        assert!(open(&missing, &ONE, Access::Read).is_err());
        assert!(!missing.exists());
        let path = dir.path().join("t.db");
        drop(open(&path, &ONE, Access::Write).expect("v1"));
        let conn = open(&path, &TWO, Access::Read).expect("older file reads");
        assert_eq!(user_version(&conn, &path).expect("version"), 1);
        let foreign = dir.path().join("foreign.db");
        drop(Connection::open(&foreign).expect("plain sqlite"));
        let e = open(&foreign, &ONE, Access::Read).expect_err("no version");
        assert!(e.to_string().contains("not a warden test database"), "{e}");
    }
}
