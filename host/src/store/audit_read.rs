//! Reading the audit chain: listing, payloads, export, and verification of a
//! database or an export file (both feed the pure verifier).

use super::database::{Access, open as open_database};
use super::{AUDIT_SCHEMA, StoreError, sqlite_err, to_sql_int};
use crate::audit::entry::decode;
use crate::audit::export::{
    EXPORT_FORMAT, ExportHeader, ExportLine, line_kind, parse_line, to_line,
};
use crate::audit::{
    AuditEntry, ChainVerifier, Checkpoint, ExpectedCheckpoint, SignatureBytes, VerifyReport,
};
use crate::digest::Hash256;
use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension, Row};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Which entries `show` lists.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only this capability.
    pub capability: Option<String>,
    /// Only this outcome: a class (`budget_exhausted`) or a full form (`budget_exhausted:fuel`).
    pub outcome: Option<String>,
}

impl EntryFilter {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.matches_columns(
            Some(&e.entry.capability),
            Some(&e.entry.outcome.as_string()),
            Some(e.entry.outcome.class()),
        )
    }

    /// Whether the extracted columns of a row (`capability`, `outcome`,
    /// `outcome_class`) match. An outcome with a `:` is a full form
    /// (`budget_exhausted:fuel`); one without is a class, and a full form
    /// without `:` is always equal to its class.
    fn matches_columns(
        &self,
        capability: Option<&str>,
        outcome: Option<&str>,
        class: Option<&str>,
    ) -> bool {
        if let Some(c) = &self.capability
            && capability != Some(c.as_str())
        {
            return false;
        }
        match &self.outcome {
            None => true,
            Some(o) if o.contains(':') => outcome == Some(o.as_str()),
            Some(o) => class == Some(o.as_str()),
        }
    }

    /// The query a listing runs: it walks one index (capability, else
    /// outcome class, else the sequence itself) in sequence order, so the
    /// rows it examines are only rows that can match.
    fn listing_sql(&self, listing_columns: bool) -> (&'static str, Option<String>) {
        if !listing_columns {
            return (
                "SELECT seq, prev_hash, hash, entry, NULL, NULL, NULL \
                 FROM audit_entries WHERE ?1 IS NULL AND seq >= ?2 ORDER BY seq LIMIT ?3",
                None,
            );
        }
        match (&self.capability, &self.outcome) {
            (Some(c), _) => (
                "SELECT seq, prev_hash, hash, entry, capability, outcome, outcome_class \
                 FROM audit_entries WHERE capability = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                Some(c.clone()),
            ),
            (None, Some(o)) => (
                "SELECT seq, prev_hash, hash, entry, capability, outcome, outcome_class \
                 FROM audit_entries WHERE outcome_class = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                Some(o.split(':').next().unwrap_or_default().to_owned()),
            ),
            (None, None) => (
                "SELECT seq, prev_hash, hash, entry, capability, outcome, outcome_class \
                 FROM audit_entries WHERE ?1 IS NULL AND seq >= ?2 ORDER BY seq LIMIT ?3",
                None,
            ),
        }
    }
}

/// One page of a listing ([`AuditReader::page`]).
#[derive(Debug, Clone, Default)]
pub struct EntryPage {
    /// The matching entries, in sequence order.
    pub entries: Vec<AuditEntry>,
    /// The cursor: the last sequence number examined (every matching entry
    /// up to it is in this page or an earlier one). Continue with
    /// `from = next_after + 1`. Equal to `from - 1` when nothing was examined.
    pub next_after: u64,
    /// Rows the page examined (at most the scan bound it was given).
    pub examined: usize,
    /// True when the scan reached the end of the chain as committed now
    /// (no further entry can match until more are appended).
    pub complete: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Entry lines written.
    pub entries: u64,
    /// Checkpoint lines written.
    pub checkpoints: u64,
}

/// A read-only view of an audit database (also usable while a writer runs:
/// WAL readers see the last committed state).
pub struct AuditReader {
    conn: Connection,
    path: PathBuf,
    /// Schema 2: rows carry the listing columns and their indexes. A
    /// version-1 file (not yet opened by a writer of this version) is
    /// listed by decoding rows, still within each page's scan bound.
    listing_columns: bool,
}

/// Whether `conn`'s database has schema 2's listing columns.
fn has_listing_columns(conn: &Connection) -> bool {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|v| v >= 2)
}

pub(super) fn hash_from_blob(
    path: &Path,
    what: &str,
    seq: u64,
    blob: &[u8],
) -> Result<Hash256, String> {
    let arr: [u8; 32] = blob.try_into().map_err(|_| {
        format!(
            "{}: {what} of row {seq} is {} bytes, not 32",
            path.display(),
            blob.len()
        )
    })?;
    Ok(Hash256(arr))
}

/// Turns one `audit_entries` row into an entry, or says why it is not one.
fn row_to_entry(path: &Path, row: &Row<'_>) -> rusqlite::Result<Result<AuditEntry, String>> {
    let row_seq: i64 = row.get(0)?;
    let row_seq = u64::try_from(row_seq).unwrap_or(0);
    let prev = row.get_ref(1)?.as_blob()?;
    let hash = row.get_ref(2)?.as_blob()?;
    let blob = row.get_ref(3)?.as_blob()?;
    Ok((|| {
        let prev_hash = hash_from_blob(path, "prev_hash", row_seq, prev)?;
        let hash = hash_from_blob(path, "hash", row_seq, hash)?;
        let (seq, entry) = decode(blob).map_err(|e| format!("row {row_seq}: {e}"))?;
        Ok(AuditEntry {
            seq,
            prev_hash,
            hash,
            entry,
        })
    })())
}

fn row_to_checkpoint(row: &Row<'_>) -> rusqlite::Result<Result<Checkpoint, String>> {
    let id: i64 = row.get(0)?;
    let size: i64 = row.get(1)?;
    let head = row.get_ref(2)?.as_blob()?;
    let at_ms: i64 = row.get(3)?;
    let key_id: String = row.get(4)?;
    let sig = row.get_ref(5)?.as_blob()?;
    Ok((|| {
        let head: [u8; 32] = head
            .try_into()
            .map_err(|_| format!("checkpoint {id}: head_hash is {} bytes", head.len()))?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| format!("checkpoint {id}: signature is {} bytes", sig.len()))?;
        Ok(Checkpoint {
            size: u64::try_from(size).map_err(|_| format!("checkpoint {id}: size {size}"))?,
            head_hash: Hash256(head),
            at_ms: u64::try_from(at_ms).map_err(|_| format!("checkpoint {id}: at_ms {at_ms}"))?,
            key_id,
            signature: SignatureBytes(sig),
        })
    })())
}

impl AuditReader {
    /// Opens an existing database (never creates one).
    pub fn open(path: &Path) -> Result<AuditReader, StoreError> {
        if !path.exists() {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such database"),
            });
        }
        let conn = open_database(path, &AUDIT_SCHEMA, Access::Read)?;
        Ok(AuditReader {
            listing_columns: has_listing_columns(&conn),
            conn,
            path: path.to_owned(),
        })
    }

    /// The reader's connection and file, for the tree's proofs
    /// ([`super::audit_proofs`]).
    pub(super) fn parts(&self) -> (&Connection, &Path) {
        (&self.conn, &self.path)
    }

    pub(crate) fn from_connection(conn: Connection, path: &Path) -> AuditReader {
        AuditReader {
            listing_columns: has_listing_columns(&conn),
            conn,
            path: path.to_owned(),
        }
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    /// Entries with `seq >= from` that match `filter`, at most `limit`, in
    /// order, however many rows that examines (the CLI's offline listing).
    pub fn entries(
        &self,
        from: u64,
        limit: usize,
        filter: &EntryFilter,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.page(from, limit, usize::MAX, filter)?.entries)
    }

    /// One page of a listing: entries with `seq >= from` that match
    /// `filter`, at most `limit`, examining at most `max_scan` rows. The
    /// rows come from the index of what `filter` names, so a page examines
    /// only rows that can match; with both a capability and an outcome it
    /// walks the capability's rows and stops after `max_scan` of them.
    /// Continue from [`EntryPage::next_after`].
    pub fn page(
        &self,
        from: u64,
        limit: usize,
        max_scan: usize,
        filter: &EntryFilter,
    ) -> Result<EntryPage, StoreError> {
        let (sql, key) = filter.listing_sql(self.listing_columns);
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(sqlite_err(&self.path))?;
        let scan = i64::try_from(max_scan).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(rusqlite::params![key, to_sql_int(from), scan])
            .map_err(sqlite_err(&self.path))?;
        let mut page = EntryPage {
            next_after: from.saturating_sub(1),
            ..EntryPage::default()
        };
        loop {
            if page.entries.len() >= limit {
                return Ok(page);
            }
            let Some(row) = rows.next().map_err(sqlite_err(&self.path))? else {
                page.complete = page.examined < max_scan;
                return Ok(page);
            };
            page.examined += 1;
            let seq: i64 = row.get(0).map_err(sqlite_err(&self.path))?;
            page.next_after = u64::try_from(seq).unwrap_or(0);
            let column = |i| -> Result<Option<String>, StoreError> {
                row.get(i).map_err(sqlite_err(&self.path))
            };
            if self.listing_columns {
                let (capability, outcome, class) = (column(4)?, column(5)?, column(6)?);
                if !filter.matches_columns(
                    capability.as_deref(),
                    outcome.as_deref(),
                    class.as_deref(),
                ) {
                    continue;
                }
            }
            let entry = row_to_entry(&self.path, row)
                .map_err(sqlite_err(&self.path))?
                .map_err(|d| self.corrupt(d))?;
            if !filter.matches(&entry) {
                if !self.listing_columns {
                    continue;
                }
                // The columns are not hashed: never list an entry its own
                // (hashed) content says does not match.
                return Err(self.corrupt(format!(
                    "row {}: its capability/outcome columns disagree with its entry",
                    entry.seq
                )));
            }
            page.entries.push(entry);
        }
    }

    /// Calls `f` with every entry with `seq >= from`, in order, one at a
    /// time (memory stays constant however long the chain). A row that does
    /// not decode is [`StoreError::Corrupt`].
    pub(crate) fn scan_from(
        &self,
        from: u64,
        mut f: impl FnMut(&AuditEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, prev_hash, hash, entry FROM audit_entries WHERE seq >= ?1 ORDER BY seq",
            )
            .map_err(sqlite_err(&self.path))?;
        let mut rows = stmt
            .query([to_sql_int(from)])
            .map_err(sqlite_err(&self.path))?;
        while let Some(row) = rows.next().map_err(sqlite_err(&self.path))? {
            let entry = row_to_entry(&self.path, row)
                .map_err(sqlite_err(&self.path))?
                .map_err(|d| self.corrupt(d))?;
            f(&entry)?;
        }
        Ok(())
    }

    /// Every checkpoint, in the order written.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, size, head_hash, at_ms, key_id, signature FROM audit_checkpoints ORDER BY id",
            )
            .map_err(sqlite_err(&self.path))?;
        let rows = stmt
            .query_map([], row_to_checkpoint)
            .map_err(sqlite_err(&self.path))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(
                r.map_err(sqlite_err(&self.path))?
                    .map_err(|d| self.corrupt(d))?,
            );
        }
        Ok(out)
    }

    /// A stored payload by its SHA-256, unless pruned or never stored.
    pub fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT data FROM audit_payloads WHERE hash = ?1",
                [&hash.0[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite_err(&self.path))
    }

    /// Deletes payloads stored before `older_than_ms`; the chain stays verifiable
    /// because entries keep only the payloads' hashes. Returns how many were deleted.
    pub fn prune_payloads(&self, older_than_ms: u64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM audit_payloads WHERE stored_at_ms < ?1",
                [to_sql_int(older_than_ms)],
            )
            .map_err(sqlite_err(&self.path))?;
        Ok(n as u64)
    }

    /// Verifies the whole chain in one consistent snapshot.
    pub fn verify(&self, pubkey: Option<&VerifyingKey>) -> Result<VerifyReport, StoreError> {
        self.verify_expecting(pubkey, None)
    }

    /// [`verify`](Self::verify), also requiring that the chain extends
    /// `expected` (a checkpoint held outside this database).
    pub fn verify_expecting(
        &self,
        pubkey: Option<&VerifyingKey>,
        expected: Option<&ExpectedCheckpoint>,
    ) -> Result<VerifyReport, StoreError> {
        Ok(self.verify_pass(pubkey, expected, None)?.chain)
    }

    /// Writes the portable JSONL export (header, checkpoints, entries) from
    /// one consistent snapshot.
    pub fn export_jsonl(
        &self,
        out: &Path,
        public_key: Option<&VerifyingKey>,
        now_ms: u64,
    ) -> Result<ExportSummary, StoreError> {
        let io = |source| StoreError::Io {
            path: out.to_owned(),
            source,
        };
        let file = std::fs::File::create(out).map_err(io)?;
        let mut w = BufWriter::new(file);
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sqlite_err(&self.path))?;
        let header = ExportLine::Header(ExportHeader {
            format: EXPORT_FORMAT.to_owned(),
            exported_at_ms: now_ms,
            public_key: public_key.map(crate::store::hostkey::format_public_key),
        });
        writeln!(w, "{}", to_line(&header)).map_err(io)?;
        let mut summary = ExportSummary {
            entries: 0,
            checkpoints: 0,
        };
        for cp in self.checkpoints()? {
            writeln!(w, "{}", to_line(&ExportLine::Checkpoint(cp))).map_err(io)?;
            summary.checkpoints += 1;
        }
        {
            let mut stmt = tx
                .prepare("SELECT seq, prev_hash, hash, entry FROM audit_entries ORDER BY seq")
                .map_err(sqlite_err(&self.path))?;
            let mut rows = stmt.query([]).map_err(sqlite_err(&self.path))?;
            while let Some(row) = rows.next().map_err(sqlite_err(&self.path))? {
                let e = row_to_entry(&self.path, row)
                    .map_err(sqlite_err(&self.path))?
                    .map_err(|d| self.corrupt(d))?;
                writeln!(w, "{}", to_line(&ExportLine::Entry(e))).map_err(io)?;
                summary.entries += 1;
            }
        }
        tx.finish().map_err(sqlite_err(&self.path))?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(summary)
    }
}

/// A verifier for `checkpoints` that also requires `expected`, if given.
pub(super) fn new_verifier<'k>(
    checkpoints: &[Checkpoint],
    pubkey: Option<&'k VerifyingKey>,
    expected: Option<&ExpectedCheckpoint>,
) -> ChainVerifier<'k> {
    let mut v = ChainVerifier::new(checkpoints, pubkey);
    if let Some(x) = expected {
        v.expect(x.clone());
    }
    v
}

/// Verifies the chain in a database file.
pub fn verify_db(path: &Path, pubkey: Option<&VerifyingKey>) -> Result<VerifyReport, StoreError> {
    AuditReader::open(path)?.verify(pubkey)
}

/// [`verify_db`], also requiring that the chain extends `expected`.
pub fn verify_db_expecting(
    path: &Path,
    pubkey: Option<&VerifyingKey>,
    expected: Option<&ExpectedCheckpoint>,
) -> Result<VerifyReport, StoreError> {
    AuditReader::open(path)?.verify_expecting(pubkey, expected)
}

/// Verifies an export file offline. Every line must be exactly the canonical
/// serialization of what it parses to, so no byte can change unnoticed.
pub fn verify_export(
    path: &Path,
    pubkey: Option<&VerifyingKey>,
) -> Result<VerifyReport, StoreError> {
    verify_export_expecting(path, pubkey, None)
}

/// [`verify_export`], also requiring that the chain extends `expected`.
pub fn verify_export_expecting(
    path: &Path,
    pubkey: Option<&VerifyingKey>,
    expected: Option<&ExpectedCheckpoint>,
) -> Result<VerifyReport, StoreError> {
    let new_verifier = |cps: &[Checkpoint]| new_verifier(cps, pubkey, expected);
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    let mut checkpoints = Vec::new();
    let mut early_problem: Option<String> = None;
    let mut verifier: Option<ChainVerifier<'_>> = None;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            break;
        }
        line_no += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let (text, parsed) = match std::str::from_utf8(line) {
            Ok(text) => (text, parse_line(text, line_no).map_err(|e| e.to_string())),
            Err(_) => ("", Err(format!("export line {line_no}: not UTF-8"))),
        };
        let bad: Option<String> = match parsed {
            Err(detail) => Some(detail),
            Ok(ExportLine::Entry(e)) => {
                verifier
                    .get_or_insert_with(|| new_verifier(&checkpoints))
                    .push(&e);
                None
            }
            Ok(ExportLine::Header(h)) if line_no == 1 => {
                (h.format != EXPORT_FORMAT).then(|| format!("unknown export format {:?}", h.format))
            }
            Ok(ExportLine::Checkpoint(cp)) if verifier.is_none() && line_no > 1 => {
                checkpoints.push(cp);
                None
            }
            Ok(_) => Some(format!(
                "export line {line_no}: a {} line out of place",
                line_kind(text).unwrap_or("?")
            )),
        };
        if let Some(detail) = bad {
            let before_entries = verifier.is_none()
                && (line_no == 1 || matches!(line_kind(text), Some("checkpoint" | "header")));
            if before_entries {
                early_problem.get_or_insert(detail);
            } else {
                verifier
                    .get_or_insert_with(|| new_verifier(&checkpoints))
                    .push_malformed(detail);
            }
        }
    }
    let mut report = verifier
        .unwrap_or_else(|| new_verifier(&checkpoints))
        .finish();
    if let Some(detail) = early_problem {
        report.problem = Some(crate::audit::Problem {
            seq: 0,
            kind: crate::audit::ProblemKind::Malformed,
            detail,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite plans for a listing's query.
    fn plan(conn: &Connection, filter: &EntryFilter) -> String {
        let (sql, key) = filter.listing_sql(true);
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = stmt
            .query_map(rusqlite::params![key, 1i64, 100i64], |r| {
                r.get::<_, String>(3)
            })
            .expect("plan");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn every_listing_walks_an_index_in_sequence_order_without_a_scan_or_a_sort() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::store::database::open(
            &dir.path().join("w.db"),
            &crate::store::AUDIT_SCHEMA,
            crate::store::database::Access::Write,
        )
        .expect("db");
        let f = |capability: Option<&str>, outcome: Option<&str>| EntryFilter {
            capability: capability.map(str::to_owned),
            outcome: outcome.map(str::to_owned),
        };
        for (filter, index) in [
            (
                f(Some("fx"), None),
                "USING INDEX audit_entries_by_capability",
            ),
            (
                f(Some("fx"), Some("trap")),
                "USING INDEX audit_entries_by_capability",
            ),
            (
                f(None, Some("budget_exhausted")),
                "USING INDEX audit_entries_by_outcome_class",
            ),
            (
                f(None, Some("budget_exhausted:fuel")),
                "USING INDEX audit_entries_by_outcome_class",
            ),
            (f(None, None), "USING INTEGER PRIMARY KEY"),
        ] {
            let plan = plan(&conn, &filter);
            assert!(plan.contains(index), "{filter:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?} sorts: {plan}");
        }
    }
}
