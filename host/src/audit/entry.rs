//! Audit entries and their canonical byte encoding.
//!
//! The encoding is the contract with every other verifier, so it is specified
//! byte for byte in `docs/audit.md` ("Entry encoding, version 1") and the
//! worked example there is asserted by a test in this file. Never reorder,
//! add or remove a field without bumping [`ENCODING_VERSION`].

use crate::digest::Hash256;
use crate::outcome::{Outcome, Usage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First byte of every encoded entry without [`Evidence`] (version 1).
/// Bumped whenever the layout changes.
pub const ENCODING_VERSION: u8 = 1;

/// First byte of an entry that carries [`Evidence`]: version 1's fields,
/// then the evidence fields (docs/audit.md "Entry encoding, version 2").
/// Entries without evidence are still written as version 1, byte for byte
/// as before.
pub const ENCODING_VERSION_EVIDENCE: u8 = 2;

/// Whether `version` is an entry encoding this build reads.
pub fn is_known_version(version: u8) -> bool {
    version == ENCODING_VERSION || version == ENCODING_VERSION_EVIDENCE
}

/// What an entry commits to so it can be re-executed (`warden audit
/// replay`): the recorded results of its host calls and, when it cannot
/// be replayed, why. Empty on entries without it (then encoded as version 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// SHA-256 of each recorded host-call result (a payload), in call order.
    pub results: Vec<Hash256>,
    /// Why the entry is not replayable (`None`: replayable, or not an
    /// invocation).
    pub not_replayable: Option<String>,
}

impl Evidence {
    /// Whether there is nothing to encode (the entry stays version 1).
    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.not_replayable.is_none()
    }
}

/// What kind of event an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A request's outcome (every outcome class, including refusals before any code ran).
    Invocation,
    /// The host reloaded policies, routes or components.
    Reload,
    /// A human approval decision.
    Approval,
    /// A workflow run's own event: run start (plan hash, pinned versions,
    /// input hash), a skipped step (with the predicate), run end
    /// (docs/workflows.md). Each step's invocation is an `invocation` entry.
    Workflow,
}

impl EventKind {
    /// Stable name; part of the encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Invocation => "invocation",
            EventKind::Reload => "reload",
            EventKind::Approval => "approval",
            EventKind::Workflow => "workflow",
        }
    }

    /// Parses [`EventKind::as_str`]'s form.
    pub fn parse(s: &str) -> Option<EventKind> {
        match s {
            "invocation" => Some(EventKind::Invocation),
            "reload" => Some(EventKind::Reload),
            "approval" => Some(EventKind::Approval),
            "workflow" => Some(EventKind::Workflow),
            _ => None,
        }
    }
}

/// Which route sent the request where, when a route table exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDecision {
    /// The matching rule's id.
    pub rule_id: String,
    /// Hash of the route table the decision was made against.
    pub table_hash: Hash256,
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// The approver allowed the request.
    Approved,
    /// The approver refused the request.
    Denied,
}

impl ApprovalDecision {
    /// Stable name; part of the encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Approved => "approved",
            ApprovalDecision::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Option<ApprovalDecision> {
        match s {
            "approved" => Some(ApprovalDecision::Approved),
            "denied" => Some(ApprovalDecision::Denied),
            _ => None,
        }
    }
}

/// One human decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who decided.
    pub principal: String,
    /// What they decided.
    pub decision: ApprovalDecision,
    /// When, in unix milliseconds.
    pub at_ms: u64,
    /// SHA-256 of the free-text reason, when one was given (the text itself is not kept).
    pub reason_sha256: Option<Hash256>,
}

/// Summary of one call the guest made through a host interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCall {
    /// Interface, e.g. `wasi:http/outgoing-handler` or `warden:host/kv`.
    pub interface: String,
    /// What was addressed: URL origin, model name, KV key prefix.
    pub target: String,
    /// Bytes sent by the guest.
    pub bytes_in: u64,
    /// Bytes returned to the guest.
    pub bytes_out: u64,
    /// Result: `ok`, `denied`, an HTTP status, or an error class.
    pub status: String,
    /// SHA-256 of the request body, when there was one.
    pub request_sha256: Option<Hash256>,
    /// SHA-256 of the response body, when there was one.
    pub response_sha256: Option<Hash256>,
}

/// Everything the request path knows about an outcome; the log adds the
/// sequence number and the hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    /// What kind of event this is.
    pub event: EventKind,
    /// Admission time of the request, unix milliseconds.
    pub admitted_at_ms: u64,
    /// The request's id (also seeds the guest's random source).
    pub request_id: String,
    /// Authenticated caller.
    pub principal: String,
    /// How the request arrived: `http`, `cli`, `embed`, ...
    pub request_kind: String,
    /// Routing decision, when a route table exists.
    pub route: Option<RouteDecision>,
    /// Capability name (empty when refused before one was chosen).
    pub capability: String,
    /// Digest of the component, once one was loaded.
    pub component_digest: Option<Hash256>,
    /// Hash of the canonical form of the effective policy.
    pub policy_hash: Option<Hash256>,
    /// Exported function called.
    pub function: String,
    /// [`Hash256::of_json`] of the input, when there was a parseable input.
    pub input_sha256: Option<Hash256>,
    /// [`Hash256::of_json`] of the output JSON or of the error JSON.
    pub output_sha256: Option<Hash256>,
    /// How the request ended.
    #[serde(with = "outcome_string")]
    pub outcome: Outcome,
    /// Resources used.
    pub usage: Usage,
    /// Virtual clock, seeded random and no external host calls.
    pub replayable: bool,
    /// The dev switch allowing unsigned components was on.
    pub unsigned_allowed: bool,
    /// Retry attempt, 1-based.
    pub attempt: u32,
    /// Approval decisions, in order.
    pub approvals: Vec<Approval>,
    /// Host-call summaries, in call order.
    pub host_calls: Vec<HostCall>,
    /// Free-form detail (for `reload`/`approval` events); hashed like every field.
    pub detail: Option<String>,
    /// Recorded host-call results and replayability (version 2 only;
    /// absent from exports of entries without it).
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
}

/// One link of the chain, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, starting at 1.
    pub seq: u64,
    /// Hash of entry `seq - 1` ([`Hash256::ZERO`] for seq 1).
    pub prev_hash: Hash256,
    /// `SHA-256(prev_hash || encode(seq, entry))`.
    pub hash: Hash256,
    /// The recorded fields.
    pub entry: NewEntry,
}

impl AuditEntry {
    /// Builds the next link: computes the hash over `prev_hash` and the encoding.
    pub fn link(seq: u64, prev_hash: Hash256, entry: NewEntry) -> AuditEntry {
        let mut buf = Vec::with_capacity(512);
        encode_into(seq, &entry, &mut buf);
        let hash = entry_hash(&prev_hash, &buf);
        AuditEntry {
            seq,
            prev_hash,
            hash,
            entry,
        }
    }

    /// The canonical encoding of this entry (docs/audit.md).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(512);
        encode_into(self.seq, &self.entry, &mut buf);
        buf
    }

    /// Recomputes the hash from `prev_hash` and the fields (ignores the stored `hash`).
    pub fn recompute_hash(&self, scratch: &mut Vec<u8>) -> Hash256 {
        scratch.clear();
        encode_into(self.seq, &self.entry, scratch);
        entry_hash(&self.prev_hash, scratch)
    }
}

/// `SHA-256(prev_hash || encoded)`.
pub fn entry_hash(prev_hash: &Hash256, encoded: &[u8]) -> Hash256 {
    let mut h = Sha256::new();
    h.update(prev_hash.0);
    h.update(encoded);
    Hash256(h.finalize().into())
}

mod outcome_string {
    use crate::outcome::Outcome;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&o.as_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Outcome::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown outcome {s:?}")))
    }
}

// ---------------------------------------------------------------------------
// Encoding (docs/audit.md "Entry encoding, version 1")

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

/// Strings longer than `u32::MAX` bytes cannot be encoded; the request path
/// caps every recorded string far below that, so this clamps (and the hash
/// then still covers the clamped bytes).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    put_u32(out, len);
    out.extend_from_slice(&bytes[..len as usize]);
}

fn put_hash(out: &mut Vec<u8>, h: &Hash256) {
    out.extend_from_slice(&h.0);
}

fn put_opt_hash(out: &mut Vec<u8>, h: &Option<Hash256>) {
    match h {
        None => out.push(0),
        Some(h) => {
            out.push(1);
            put_hash(out, h);
        }
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}

/// Appends the canonical encoding of entry `seq` to `out`.
pub fn encode_into(seq: u64, e: &NewEntry, out: &mut Vec<u8>) {
    out.push(if e.evidence.is_empty() {
        ENCODING_VERSION
    } else {
        ENCODING_VERSION_EVIDENCE
    });
    put_u64(out, seq);
    put_str(out, e.event.as_str());
    put_u64(out, e.admitted_at_ms);
    put_str(out, &e.request_id);
    put_str(out, &e.principal);
    put_str(out, &e.request_kind);
    match &e.route {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            put_str(out, &r.rule_id);
            put_hash(out, &r.table_hash);
        }
    }
    put_str(out, &e.capability);
    put_opt_hash(out, &e.component_digest);
    put_opt_hash(out, &e.policy_hash);
    put_str(out, &e.function);
    put_opt_hash(out, &e.input_sha256);
    put_opt_hash(out, &e.output_sha256);
    put_str(out, &e.outcome.as_string());
    put_u64(out, e.usage.fuel);
    put_u64(out, e.usage.peak_memory);
    put_u64(out, e.usage.wall_time_us);
    put_bool(out, e.replayable);
    put_bool(out, e.unsigned_allowed);
    put_u32(out, e.attempt);
    let approvals = &e.approvals[..e.approvals.len().min(u32::MAX as usize)];
    put_len(out, approvals.len());
    for a in approvals {
        put_str(out, &a.principal);
        put_str(out, a.decision.as_str());
        put_u64(out, a.at_ms);
        put_opt_hash(out, &a.reason_sha256);
    }
    let calls = &e.host_calls[..e.host_calls.len().min(u32::MAX as usize)];
    put_len(out, calls.len());
    for c in calls {
        put_str(out, &c.interface);
        put_str(out, &c.target);
        put_u64(out, c.bytes_in);
        put_u64(out, c.bytes_out);
        put_str(out, &c.status);
        put_opt_hash(out, &c.request_sha256);
        put_opt_hash(out, &c.response_sha256);
    }
    match &e.detail {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            put_str(out, d);
        }
    }
    if !e.evidence.is_empty() {
        let results = &e.evidence.results[..e.evidence.results.len().min(u32::MAX as usize)];
        put_len(out, results.len());
        for h in results {
            put_hash(out, h);
        }
        match &e.evidence.not_replayable {
            None => out.push(0),
            Some(why) => {
                out.push(1);
                put_str(out, why);
            }
        }
    }
}

/// Why bytes are not a valid version-1 entry encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first byte is not a version this build understands.
    #[error("unknown entry encoding version {0}")]
    UnknownVersion(u8),
    /// The bytes end inside a field.
    #[error("entry ends inside field `{field}` at byte {at}")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// An option or boolean byte that is neither 0 nor 1.
    #[error("field `{field}` has tag byte {value} at byte {at} (expected 0 or 1)")]
    BadTag {
        /// Field being read.
        field: &'static str,
        /// The byte found.
        value: u8,
        /// Byte offset.
        at: usize,
    },
    /// A string field that is not UTF-8.
    #[error("field `{field}` is not UTF-8")]
    BadUtf8 {
        /// Field being read.
        field: &'static str,
    },
    /// A name field (event, outcome, decision) with an unknown value.
    #[error("field `{field}` has unknown value {value:?}")]
    UnknownName {
        /// Field being read.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// Bytes left after the last field.
    #[error("{0} trailing bytes after the entry")]
    TrailingBytes(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::Truncated {
                field,
                at: self.pos,
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, field)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_be_bytes(b))
    }

    fn tag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadTag { field, value, at }),
        }
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.u32(field)? as usize;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8 { field })
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.str(field).map(str::to_owned)
    }

    fn hash(&mut self, field: &'static str) -> Result<Hash256, DecodeError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32, field)?);
        Ok(Hash256(h))
    }

    fn opt_hash(&mut self, field: &'static str) -> Result<Option<Hash256>, DecodeError> {
        if self.tag(field)? {
            Ok(Some(self.hash(field)?))
        } else {
            Ok(None)
        }
    }

    /// A list count, bounded by the bytes left so a forged count cannot
    /// make us allocate more than the input's size.
    fn count(&mut self, field: &'static str, min_item: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min_item) > self.buf.len() - self.pos {
            return Err(DecodeError::Truncated { field, at });
        }
        Ok(n)
    }
}

/// Decodes one canonical encoding. Strict: `encode(decode(b)) == b` for every
/// `b` this accepts, so a verifier may hash either.
pub fn decode(buf: &[u8]) -> Result<(u64, NewEntry), DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.u8("version")?;
    if !is_known_version(version) {
        return Err(DecodeError::UnknownVersion(version));
    }
    let seq = r.u64("seq")?;
    let event_s = r.str("event")?;
    let event = EventKind::parse(event_s).ok_or_else(|| DecodeError::UnknownName {
        field: "event",
        value: event_s.to_owned(),
    })?;
    let admitted_at_ms = r.u64("admitted_at_ms")?;
    let request_id = r.string("request_id")?;
    let principal = r.string("principal")?;
    let request_kind = r.string("request_kind")?;
    let route = if r.tag("route")? {
        Some(RouteDecision {
            rule_id: r.string("route.rule_id")?,
            table_hash: r.hash("route.table_hash")?,
        })
    } else {
        None
    };
    let capability = r.string("capability")?;
    let component_digest = r.opt_hash("component_digest")?;
    let policy_hash = r.opt_hash("policy_hash")?;
    let function = r.string("function")?;
    let input_sha256 = r.opt_hash("input_sha256")?;
    let output_sha256 = r.opt_hash("output_sha256")?;
    let outcome_s = r.str("outcome")?;
    let outcome = Outcome::parse(outcome_s).ok_or_else(|| DecodeError::UnknownName {
        field: "outcome",
        value: outcome_s.to_owned(),
    })?;
    let usage = Usage {
        fuel: r.u64("usage.fuel")?,
        peak_memory: r.u64("usage.peak_memory")?,
        wall_time_us: r.u64("usage.wall_time_us")?,
    };
    let replayable = r.tag("replayable")?;
    let unsigned_allowed = r.tag("unsigned_allowed")?;
    let attempt = r.u32("attempt")?;
    let n = r.count("approvals", 4 + 4 + 8 + 1)?;
    let mut approvals = Vec::with_capacity(n);
    for _ in 0..n {
        let principal = r.string("approval.principal")?;
        let d = r.str("approval.decision")?;
        let decision = ApprovalDecision::parse(d).ok_or_else(|| DecodeError::UnknownName {
            field: "approval.decision",
            value: d.to_owned(),
        })?;
        approvals.push(Approval {
            principal,
            decision,
            at_ms: r.u64("approval.at_ms")?,
            reason_sha256: r.opt_hash("approval.reason_sha256")?,
        });
    }
    let n = r.count("host_calls", 4 + 4 + 8 + 8 + 4 + 1 + 1)?;
    let mut host_calls = Vec::with_capacity(n);
    for _ in 0..n {
        host_calls.push(HostCall {
            interface: r.string("host_call.interface")?,
            target: r.string("host_call.target")?,
            bytes_in: r.u64("host_call.bytes_in")?,
            bytes_out: r.u64("host_call.bytes_out")?,
            status: r.string("host_call.status")?,
            request_sha256: r.opt_hash("host_call.request_sha256")?,
            response_sha256: r.opt_hash("host_call.response_sha256")?,
        });
    }
    let detail = if r.tag("detail")? {
        Some(r.string("detail")?)
    } else {
        None
    };
    let mut evidence = Evidence::default();
    if version == ENCODING_VERSION_EVIDENCE {
        let n = r.count("evidence.results", 32)?;
        evidence.results.reserve(n);
        for _ in 0..n {
            evidence.results.push(r.hash("evidence.result")?);
        }
        if r.tag("evidence.not_replayable")? {
            evidence.not_replayable = Some(r.string("evidence.not_replayable")?);
        }
        // Strict: version 2 is only written when there is evidence, so
        // `encode(decode(b)) == b` holds.
        if evidence.is_empty() {
            return Err(DecodeError::UnknownName {
                field: "evidence",
                value: "empty evidence in a version-2 entry".into(),
            });
        }
    }
    if r.pos != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - r.pos));
    }
    Ok((
        seq,
        NewEntry {
            event,
            admitted_at_ms,
            request_id,
            principal,
            request_kind,
            route,
            capability,
            component_digest,
            policy_hash,
            function,
            input_sha256,
            output_sha256,
            outcome,
            usage,
            replayable,
            unsigned_allowed,
            attempt,
            approvals,
            host_calls,
            detail,
            evidence,
        },
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::outcome::Budget;

    /// The entry whose encoding and hash are printed in docs/audit.md.
    pub(crate) fn worked_example() -> NewEntry {
        NewEntry {
            event: EventKind::Invocation,
            admitted_at_ms: 1_700_000_000_000,
            request_id: "req-1".into(),
            principal: "alice".into(),
            request_kind: "cli".into(),
            route: Some(RouteDecision {
                rule_id: "r1".into(),
                table_hash: Hash256([0x11; 32]),
            }),
            capability: "echo".into(),
            component_digest: Some(Hash256([0x22; 32])),
            policy_hash: Some(Hash256([0x33; 32])),
            function: "run".into(),
            input_sha256: Some(Hash256::of_json(&serde_json::json!({"b": 1, "a": "x"}))),
            output_sha256: None,
            outcome: Outcome::BudgetExhausted(Budget::Fuel),
            usage: Usage {
                fuel: 1000,
                peak_memory: 65536,
                wall_time_us: 250,
            },
            replayable: true,
            unsigned_allowed: false,
            attempt: 1,
            approvals: vec![],
            host_calls: vec![],
            detail: None,
            evidence: Evidence::default(),
        }
    }

    /// docs/audit.md, whose worked example must match the encoder.
    const AUDIT_DOC: &str = include_str!("../../../docs/audit.md");

    /// The hex lines and the hash between the doc's example markers.
    fn documented_example() -> (String, String) {
        let begin = "<!-- worked-example:begin -->";
        let end = "<!-- worked-example:end -->";
        let start = AUDIT_DOC
            .find(begin)
            .expect("begin marker in docs/audit.md")
            + begin.len();
        let stop = AUDIT_DOC.find(end).expect("end marker in docs/audit.md");
        let mut hex_text = String::new();
        let mut hash = String::new();
        for line in AUDIT_DOC[start..stop].lines() {
            let line = line.trim();
            if let Some(h) = line.strip_prefix("hash ") {
                hash = h.trim().to_owned();
            } else if !line.starts_with("```") && !line.is_empty() {
                let hex_part = line.split('#').next().unwrap_or("");
                hex_text.extend(hex_part.split_whitespace());
            }
        }
        (hex_text, hash)
    }

    #[test]
    fn canonical_json_of_the_example_input_is_documented() {
        let v = serde_json::json!({"b": 1, "a": "x"});
        assert_eq!(crate::digest::canonical_json(&v), "{\"a\":\"x\",\"b\":1}");
    }

    #[test]
    fn worked_example_in_docs_matches_the_encoder() {
        let e = AuditEntry::link(1, Hash256::ZERO, worked_example());
        let (enc_hex, hash) = documented_example();
        assert_eq!(
            hex::encode(e.encode()),
            enc_hex,
            "encoding drifted from docs/audit.md"
        );
        assert_eq!(e.hash.to_string(), hash, "hash drifted from docs/audit.md");
    }

    /// Prints the worked-example block for docs/audit.md (after an intentional
    /// format change): `cargo test -p warden-host print_worked_example -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_worked_example() {
        let e = AuditEntry::link(1, Hash256::ZERO, worked_example());
        let bytes = e.encode();
        // Field boundaries of the worked example, with labels.
        let fields: [(&str, usize); 21] = [
            ("version", 1),
            ("seq", 8),
            ("event \"invocation\"", 4 + 10),
            ("admitted_at_ms", 8),
            ("request_id \"req-1\"", 4 + 5),
            ("principal \"alice\"", 4 + 5),
            ("request_kind \"cli\"", 4 + 3),
            ("route: present, \"r1\", table_hash", 1 + 4 + 2 + 32),
            ("capability \"echo\"", 4 + 4),
            ("component_digest: present", 1 + 32),
            ("policy_hash: present", 1 + 32),
            ("function \"run\"", 4 + 3),
            ("input_sha256: present", 1 + 32),
            ("output_sha256: absent", 1),
            ("outcome \"budget_exhausted:fuel\"", 4 + 21),
            ("usage fuel, peak_memory, wall_time_us", 24),
            ("replayable, unsigned_allowed", 2),
            ("attempt", 4),
            ("approvals: 0 items", 4),
            ("host_calls: 0 items", 4),
            ("detail: absent", 1),
        ];
        let mut at = 0;
        println!("```");
        for (label, len) in fields {
            println!("{}  # {label}", hex::encode(&bytes[at..at + len]));
            at += len;
        }
        assert_eq!(at, bytes.len());
        println!("hash {}", e.hash);
        println!("```");
    }

    #[test]
    fn decode_inverts_encode_for_a_full_entry() {
        let mut e = worked_example();
        e.approvals.push(Approval {
            principal: "bob".into(),
            decision: ApprovalDecision::Denied,
            at_ms: 5,
            reason_sha256: Some(Hash256([9; 32])),
        });
        e.host_calls.push(HostCall {
            interface: "warden:host/kv".into(),
            target: "k/".into(),
            bytes_in: 1,
            bytes_out: 2,
            status: "ok".into(),
            request_sha256: None,
            response_sha256: Some(Hash256([7; 32])),
        });
        e.detail = Some("{\"x\":1}".into());
        let a = AuditEntry::link(42, Hash256([1; 32]), e);
        let bytes = a.encode();
        let (seq, back) = decode(&bytes).expect("decodes");
        assert_eq!(seq, 42);
        assert_eq!(back, a.entry);
    }

    #[test]
    fn an_entry_with_evidence_is_version_2_and_one_without_stays_byte_for_byte_version_1() {
        let plain = AuditEntry::link(1, Hash256::ZERO, worked_example());
        let v1 = plain.encode();
        assert_eq!(v1[0], ENCODING_VERSION);
        let mut e = worked_example();
        e.evidence = Evidence {
            results: vec![Hash256([4; 32]), Hash256([5; 32])],
            not_replayable: None,
        };
        let with = AuditEntry::link(1, Hash256::ZERO, e.clone());
        let v2 = with.encode();
        assert_eq!(v2[0], ENCODING_VERSION_EVIDENCE);
        // Version 1's fields, then the evidence: count, hashes, absent reason.
        assert_eq!(&v2[1..v1.len()], &v1[1..]);
        assert_eq!(v2.len(), v1.len() + 4 + 64 + 1);
        let (_, back) = decode(&v2).expect("decodes");
        assert_eq!(back, e);
        assert_ne!(with.hash, plain.hash, "the evidence is hashed");
        e.evidence = Evidence {
            results: vec![],
            not_replayable: Some("why".into()),
        };
        let (_, back) =
            decode(&AuditEntry::link(1, Hash256::ZERO, e.clone()).encode()).expect("decodes");
        assert_eq!(back, e);
    }

    #[test]
    fn a_version_2_entry_with_empty_evidence_is_refused() {
        let mut bytes = AuditEntry::link(1, Hash256::ZERO, worked_example()).encode();
        bytes[0] = ENCODING_VERSION_EVIDENCE;
        bytes.extend_from_slice(&[0, 0, 0, 0, 0]);
        assert!(decode(&bytes).is_err());
        let mut bytes = AuditEntry::link(1, Hash256::ZERO, worked_example()).encode();
        bytes[0] = 3;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownVersion(3)));
    }

    #[test]
    fn decode_rejects_every_truncation_and_trailing_bytes() {
        let bytes = AuditEntry::link(1, Hash256::ZERO, worked_example()).encode();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::TrailingBytes(1)));
    }
}
