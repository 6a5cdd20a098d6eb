//! Evidence bundles: one self-contained JSON file holding everything needed
//! to check one request's entries on another machine with only the host's
//! public key — the entries, the chain from them to the checkpoint that
//! covers them, that checkpoint, the artifacts they name and their payloads
//! (input, output, recorded host-call results) — and to replay them.
//!
//! Format `warden-evidence-bundle-v1` (docs/audit.md "Evidence bundles"):
//! a JSON object `{format, request_id, seqs, checkpoint, chain, artifacts,
//! payloads}`; `chain` holds entries in the export's entry form, from the
//! request's first entry to entry `checkpoint.size`; `artifacts` and
//! `payloads` map `sha256:<hex>` to the bytes in lowercase hex.
//!
//! [`Bundle::verify`] trusts nothing in the file but what the public key
//! and the hashes establish. This module never writes anywhere but the one
//! output file the caller gives, and never includes a payload or artifact
//! that does not hash to its name.

use crate::audit::{AuditEntry, Checkpoint};
use crate::digest::Hash256;
use crate::store::{ArtifactStore, AuditReader, EntryFilter};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format name in every bundle.
pub const FORMAT: &str = "warden-evidence-bundle-v1";

/// Most entries a bundle's chain may hold (from the request's first entry
/// to the covering checkpoint: at most the checkpoint interval, 10,000 by
/// default). Stops a bundle of a request far below a sparse checkpoint
/// from growing without bound when it is built, and a bundle from
/// elsewhere from making `verify`/`replay` walk an unbounded chain.
pub const MAX_CHAIN: u64 = 1_000_000;

/// An evidence bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    /// The request the bundle is about.
    pub request_id: String,
    /// The sequence numbers of the request's entries.
    pub seqs: Vec<u64>,
    /// The signed checkpoint covering them.
    pub checkpoint: Checkpoint,
    /// Entries from the request's first entry to entry `checkpoint.size`.
    pub chain: Vec<AuditEntry>,
    /// Artifacts by hash (`sha256:<hex>` -> hex bytes).
    pub artifacts: BTreeMap<String, String>,
    /// Payloads by hash (`sha256:<hex>` -> hex bytes).
    pub payloads: BTreeMap<String, String>,
}

impl Bundle {
    /// Builds the bundle of `request_id` from a data directory's audit
    /// database and artifact store, its chain at most [`MAX_CHAIN`] entries.
    pub fn build(
        reader: &AuditReader,
        artifacts: &ArtifactStore,
        request_id: &str,
    ) -> Result<Bundle, String> {
        Bundle::build_within(reader, artifacts, request_id, MAX_CHAIN)
    }

    /// [`build`](Self::build) with a chain of at most `max_chain` entries
    /// (the CLI uses [`MAX_CHAIN`]; tests cross a small limit).
    pub fn build_within(
        reader: &AuditReader,
        artifacts: &ArtifactStore,
        request_id: &str,
        max_chain: u64,
    ) -> Result<Bundle, String> {
        let mut mine: Vec<AuditEntry> = Vec::new();
        let mut next = 1;
        loop {
            let page = reader
                .entries(next, 1000, &EntryFilter::default())
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            mine.extend(
                page.into_iter()
                    .filter(|e| e.entry.request_id == request_id),
            );
            next = last.saturating_add(1);
        }
        let (Some(first), Some(newest)) = (mine.first(), mine.last()) else {
            return Err(format!("no entry of request {request_id} in the audit log"));
        };
        let (first, newest) = (first.seq, newest.seq);
        let checkpoint = reader
            .checkpoints()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| c.size >= newest)
            .min_by_key(|c| c.size)
            .ok_or_else(|| {
                format!(
                    "no checkpoint covers entry {newest} yet (the daemon writes one every \
                     `every_entries`/`every`, and at shutdown); try again after the next one"
                )
            })?;
        let len = checkpoint
            .size
            .checked_sub(first)
            .and_then(|d| d.checked_add(1))
            .ok_or_else(|| format!("checkpoint {} is below entry {first}", checkpoint.size))?;
        if len > max_chain {
            return Err(format!(
                "the chain from entry {first} to the covering checkpoint ({}) is {len} entries, over {max_chain}",
                checkpoint.size
            ));
        }
        let chain = reader
            .entries(
                first,
                usize::try_from(len).unwrap_or(usize::MAX),
                &EntryFilter::default(),
            )
            .map_err(|e| e.to_string())?;
        let mut bundle = Bundle {
            format: FORMAT.into(),
            request_id: request_id.into(),
            seqs: mine.iter().map(|e| e.seq).collect(),
            checkpoint,
            chain,
            artifacts: BTreeMap::new(),
            payloads: BTreeMap::new(),
        };
        for e in &mine {
            let x = &e.entry;
            for h in [
                x.component_digest,
                x.policy_hash,
                x.route.as_ref().map(|r| r.table_hash),
            ]
            .into_iter()
            .flatten()
            {
                let bytes = artifacts
                    .get(&h)
                    .map_err(|err| format!("entry {}: {err}", e.seq))?;
                bundle.artifacts.insert(h.tagged(), hex::encode(bytes));
            }
            let wanted = [x.input_sha256, x.output_sha256]
                .into_iter()
                .flatten()
                .chain(x.evidence.results.iter().copied());
            for h in wanted {
                if let Some(bytes) = reader.payload(&h).map_err(|e| e.to_string())?
                    && Hash256::of(&bytes) == h
                {
                    bundle.payloads.insert(h.tagged(), hex::encode(bytes));
                }
            }
        }
        Ok(bundle)
    }

    /// Checks the bundle: the checkpoint's signature with `key` (skipped
    /// when `None`), every chain entry's hash and link from the request's
    /// entries to the checkpoint's head, that the request's entries are in
    /// it, and that every artifact and payload hashes to its name. Returns
    /// the first problem. A chain longer than [`MAX_CHAIN`] is refused.
    pub fn verify(&self, key: Option<&VerifyingKey>) -> Result<(), String> {
        self.verify_within(key, MAX_CHAIN)
    }

    /// [`verify`](Self::verify) refusing a chain longer than `max_chain`
    /// before anything in it is hashed.
    pub fn verify_within(&self, key: Option<&VerifyingKey>, max_chain: u64) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("not a {FORMAT} file (format {:?})", self.format));
        }
        let len = u64::try_from(self.chain.len()).unwrap_or(u64::MAX);
        if len > max_chain {
            return Err(format!(
                "the chain holds {len} entries, over {max_chain} (a bundle's chain runs from the request's first entry to its covering checkpoint)"
            ));
        }
        if let Some(key) = key {
            self.checkpoint
                .verify(key)
                .map_err(|e| format!("checkpoint (size {}): {e}", self.checkpoint.size))?;
        }
        let mut scratch = Vec::new();
        let mut prev: Option<&AuditEntry> = None;
        for e in &self.chain {
            if let Some(p) = prev {
                if e.seq != p.seq + 1 {
                    return Err(format!(
                        "entry {}: expected entry {} next",
                        e.seq,
                        p.seq + 1
                    ));
                }
                if e.prev_hash != p.hash {
                    return Err(format!("entry {}: broken link to entry {}", e.seq, p.seq));
                }
            }
            if e.recompute_hash(&mut scratch) != e.hash {
                return Err(format!(
                    "entry {}: hash_mismatch (its fields do not hash to {})",
                    e.seq, e.hash
                ));
            }
            prev = Some(e);
        }
        let Some(last) = prev else {
            return Err("the chain is empty".into());
        };
        if last.seq != self.checkpoint.size || last.hash != self.checkpoint.head_hash {
            return Err(format!(
                "the chain ends at entry {} ({}), the checkpoint covers {} entries with head {}",
                last.seq, last.hash, self.checkpoint.size, self.checkpoint.head_hash
            ));
        }
        for seq in &self.seqs {
            let e = self
                .entry(*seq)
                .ok_or_else(|| format!("entry {seq} is not in the chain"))?;
            if e.entry.request_id != self.request_id {
                return Err(format!("entry {seq} is of request {}", e.entry.request_id));
            }
        }
        for (what, map) in [("artifact", &self.artifacts), ("payload", &self.payloads)] {
            for (name, hex_bytes) in map {
                let bytes =
                    hex::decode(hex_bytes).map_err(|_| format!("{what} {name} is not hex"))?;
                if Hash256::of(&bytes).tagged() != *name {
                    return Err(format!("{what} {name} fails its hash"));
                }
            }
        }
        Ok(())
    }

    /// The request's entries, in order.
    pub fn entries(&self) -> Vec<&AuditEntry> {
        self.seqs.iter().filter_map(|s| self.entry(*s)).collect()
    }

    fn entry(&self, seq: u64) -> Option<&AuditEntry> {
        let first = self.chain.first()?.seq;
        let e = self
            .chain
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)?;
        (e.seq == seq).then_some(e)
    }

    fn bytes(map: &BTreeMap<String, String>, hash: &Hash256) -> Option<Vec<u8>> {
        hex::decode(map.get(&hash.tagged())?).ok()
    }
}

impl crate::replay::Evidence for Bundle {
    fn payload(&self, hash: &Hash256) -> Result<Option<Vec<u8>>, String> {
        Ok(Bundle::bytes(&self.payloads, hash))
    }

    fn artifact(&self, hash: &Hash256) -> Result<Vec<u8>, String> {
        let bytes = Bundle::bytes(&self.artifacts, hash)
            .ok_or_else(|| format!("artifact {hash} is not in the bundle"))?;
        let actual = Hash256::of(&bytes);
        if actual != *hash {
            return Err(format!(
                "artifact {hash} fails its hash: the bundle's bytes hash to {actual}"
            ));
        }
        Ok(bytes)
    }
}
