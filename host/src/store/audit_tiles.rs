//! C2SP `tlog-tiles` resources read from `warden.db` (docs/audit.md
//! "Tiles"): the hashes of a tile and the records of an entry bundle, in
//! one read snapshot, from the same stored tree the proofs use.
//!
//! A tile is served only when every hash in it lies within the newest
//! signed checkpoint note, so what a monitor fetches is covered by a
//! checkpoint it can verify, and a tile once served never changes (stored
//! nodes are written once).
//!
//! This module must never write, and never serve a hash it did not read
//! from the committed tree.

use super::audit_proofs::latest;
use super::audit_read::AuditReader;
use super::audit_tree::has_tree;
use super::{StoreError, sqlite_err, to_sql_int};
use crate::audit::merkle::leaf_hash;
use crate::audit::tiles::{TileKind, TilePath};
use crate::digest::Hash256;

impl AuditReader {
    /// The bytes of `tile` (32 bytes per hash, or per entry a big-endian
    /// `u16` length and the 32-byte entry hash, the record whose RFC 6962
    /// leaf is the level-0 hash), or `None` when the tree covered by the
    /// newest checkpoint note does not reach that far yet.
    pub fn tile(&self, tile: &TilePath) -> Result<Option<Vec<u8>>, StoreError> {
        let (conn, path) = self.parts();
        if !has_tree(conn) {
            return Ok(None);
        }
        let tx = conn.unchecked_transaction().map_err(sqlite_err(path))?;
        let covered = latest(conn, path)?.map_or(0, |n| n.0);
        let Some(needed) = tile.leaves_needed() else {
            return Ok(None);
        };
        if needed > covered {
            return Ok(None);
        }
        let first = tile.index.saturating_mul(crate::audit::tiles::TILE_WIDTH);
        let last = first.saturating_add(tile.width).saturating_sub(1);
        let (sql, level) = match tile.kind {
            TileKind::Hashes { level } if level > 0 => (
                "SELECT hash FROM audit_tree_nodes WHERE level = ?3 AND idx BETWEEN ?1 AND ?2 \
                 ORDER BY idx",
                tile.tree_level(),
            ),
            // Leaves and records: the entries' hashes, seq = index + 1.
            _ => (
                "SELECT hash FROM audit_entries WHERE seq BETWEEN ?1 + 1 AND ?2 + 1 AND ?3 = 0 \
                 ORDER BY seq",
                0,
            ),
        };
        let mut out = Vec::with_capacity(usize::try_from(tile.width).unwrap_or(256) * 34);
        let mut n = 0u64;
        {
            let mut stmt = conn.prepare_cached(sql).map_err(sqlite_err(path))?;
            let mut rows = stmt
                .query(rusqlite::params![
                    to_sql_int(first),
                    to_sql_int(last),
                    level
                ])
                .map_err(sqlite_err(path))?;
            while let Some(row) = rows.next().map_err(sqlite_err(path))? {
                let blob = row
                    .get_ref(0)
                    .and_then(|v| Ok(v.as_blob()?))
                    .map_err(sqlite_err(path))?;
                let hash =
                    <[u8; 32]>::try_from(blob)
                        .map(Hash256)
                        .map_err(|_| StoreError::Corrupt {
                            path: path.to_owned(),
                            detail: format!(
                                "tile {}: a stored hash is {} bytes, not 32",
                                tile.to_path(),
                                blob.len()
                            ),
                        })?;
                match tile.kind {
                    TileKind::Entries => {
                        out.extend_from_slice(&32u16.to_be_bytes());
                        out.extend_from_slice(&hash.0);
                    }
                    TileKind::Hashes { level: 0 } => out.extend_from_slice(&leaf_hash(&hash).0),
                    TileKind::Hashes { .. } => out.extend_from_slice(&hash.0),
                }
                n += 1;
            }
        }
        tx.finish().map_err(sqlite_err(path))?;
        if n != tile.width {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                detail: format!(
                    "tile {}: {n} of its {} hashes are stored, though the checkpoint of size \
                     {covered} covers it (run `warden audit verify`)",
                    tile.to_path(),
                    tile.width
                ),
            });
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::entry;
    use super::super::{AuditLog, CheckpointPolicy, Payloads};
    use super::*;
    use crate::audit::merkle::Frontier;
    use ed25519_dalek::SigningKey;
    use std::time::Duration;

    fn hashes(bytes: &[u8]) -> Vec<Hash256> {
        bytes
            .chunks(32)
            .map(|c| Hash256(c.try_into().expect("32 bytes")))
            .collect()
    }

    fn tile(reader: &AuditReader, path: &str) -> Option<Vec<u8>> {
        reader
            .tile(&TilePath::parse(path).expect("path"))
            .expect("read")
    }

    #[test]
    fn tiles_rebuild_the_checkpointed_root_and_nothing_past_the_checkpoint_is_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("warden.db");
        let log = AuditLog::open(
            &db,
            SigningKey::from_bytes(&[7; 32]),
            CheckpointPolicy {
                every_entries: 0,
                every: Duration::from_secs(3600),
            },
        )
        .expect("open");
        let acks: Vec<_> = (1..=600)
            .map(|k| log.submit(entry(k, None), Payloads::default()))
            .collect();
        for a in acks {
            a.wait().expect("append");
        }
        log.submit_checkpoint().wait().expect("checkpoint at 600");
        log.submit(entry(601, None), Payloads::default())
            .wait()
            .expect("one more, not checkpointed");
        let reader = AuditReader::open(&db).expect("reader");
        let (size, root, _) = reader.latest_note().expect("read").expect("a note");
        assert_eq!(size, 600);
        // 600 = 2 full level-0 tiles + a partial one of 88; level 1 has 2.
        let mut leaves = Vec::new();
        for p in ["0/000", "0/001", "0/002.p/88"] {
            leaves.extend(hashes(&tile(&reader, p).expect(p)));
        }
        let mut f = Frontier::new();
        for l in &leaves {
            f.append(*l, |_| {});
        }
        assert_eq!(f.root(), root, "the tiles give the checkpoint's root");
        let level1 = hashes(&tile(&reader, "1/000.p/2").expect("level 1"));
        for (i, h) in level1.iter().enumerate() {
            let mut sub = Frontier::new();
            for l in &leaves[i * 256..(i + 1) * 256] {
                sub.append(*l, |_| {});
            }
            assert_eq!(
                *h,
                sub.root(),
                "level-1 hash {i} is the root of level-0 tile {i}"
            );
        }
        // The entry bundle holds the records whose leaves are level 0.
        let bundle = tile(&reader, "entries/002.p/88").expect("bundle");
        assert_eq!(bundle.len(), 88 * 34);
        for (i, rec) in bundle.chunks(34).enumerate() {
            assert_eq!(&rec[..2], &[0, 32]);
            let h = Hash256(rec[2..].try_into().expect("32"));
            assert_eq!(leaf_hash(&h), leaves[512 + i]);
        }
        // Past the checkpoint (entry 601), or tiles not complete yet: none.
        for p in [
            "0/002.p/89",
            "0/002",
            "1/000",
            "1/000.p/3",
            "entries/003.p/1",
            "2/000.p/1",
        ] {
            assert_eq!(tile(&reader, p), None, "{p}");
        }
    }
}
