//! The storage traits' conformance suites: what callers rely on, written
//! once against the traits, run against every implementation (today the
//! SQLite ones, file-backed in a temp dir and in memory where one exists; a
//! PostgreSQL backend adds one line per suite).
//!
//! Each suite takes a fixture maker: a fresh, empty store plus a hook that
//! damages one stored row behind the store's back (the only
//! implementation-specific part), to check that a row that does not decode
//! is an error naming it, never skipped or defaulted.
//!
//! This module must never test an implementation's internals; only what the
//! traits promise.

use super::kv::KvQuota;
use super::{
    AuditLog, AuditStore, CheckpointPolicy, Decision, EntryFilter, Held, HeldState, KvBackend,
    KvError, KvStore, Namespace, Payloads, PendingSummary, RequestStore, SqliteRequestStore,
    StoreError, StoredResponse,
};
use crate::audit::{ApprovalDecision, EventKind, NewEntry};
use crate::digest::Hash256;
use crate::outcome::{Outcome, Usage};
use crate::policy::approval::Mode;
use crate::tenant::Tenant;
use crate::units::ByteSize;
use rusqlite::{Connection, params};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------- requests

/// A fresh request store and a hook that damages the stored held record and
/// the stored response of one request id.
pub(crate) struct RequestFixture {
    pub store: Box<dyn RequestStore>,
    pub corrupt: Box<dyn Fn(&str)>,
}

fn stored(principal: &str, status: u16, body: serde_json::Value) -> StoredResponse {
    StoredResponse {
        principal: principal.into(),
        status,
        response: body,
    }
}

fn held(id: &str, admitted: u64, expires: u64) -> Held {
    Held {
        request_id: id.into(),
        state: HeldState::Pending,
        requester: "alice".into(),
        kind: "payment".into(),
        tenant: Tenant::parse("acme").ok(),
        capability: "pay".into(),
        function: "run".into(),
        input: json!({"amount": 12}),
        route_rule: "r1".into(),
        route: None,
        binding: crate::Binding {
            component_digest: "sha256:00".into(),
            policy_hash: "sha256:11".into(),
            hash_only: false,
            replayable: true,
        },
        rule: 1,
        mode: Mode::Dual,
        approvers: vec!["group:finance".into()],
        reason: "large payment".into(),
        admitted_at_ms: admitted,
        expires_at_ms: expires,
        decisions: vec![],
        ended_at_ms: None,
        outcome: None,
        end_reason: None,
        via: None,
        client: None,
        run: None,
    }
}

fn ids(list: &[Held]) -> Vec<&str> {
    list.iter().map(|h| h.request_id.as_str()).collect()
}

/// Every behaviour of [`RequestStore`] the server relies on.
pub(crate) fn request_store_conformance(make: &dyn Fn() -> RequestFixture) {
    idempotency_keys_replay_and_expose_conflicts(&*make().store);
    a_finished_response_is_not_overwritten_but_a_held_one_is(&*make().store);
    a_held_request_lives_from_put_to_end(&*make().store);
    held_listings_are_ordered_and_bounded(&*make().store);
    let f = make();
    a_row_that_does_not_decode_is_an_error_naming_it(&*f.store, &*f.corrupt);
}

fn idempotency_keys_replay_and_expose_conflicts(s: &dyn RequestStore) {
    let first = stored("alice", 200, json!({"result": 1}));
    s.finish("r1", &first, Some(("key-1", "fp-a")))
        .wait()
        .expect("finish");
    let rec = s.idempotent("alice", "key-1").expect("read").expect("kept");
    assert_eq!(rec.request_id, "r1");
    // A retry with another body sees the first fingerprint: a conflict.
    assert_eq!(rec.fingerprint, "fp-a");
    assert_eq!(s.request(&rec.request_id).expect("read"), Some(first));
    // Keys are per principal.
    assert_eq!(s.idempotent("bob", "key-1").expect("read"), None);
    assert_eq!(s.idempotent("alice", "key-2").expect("read"), None);
    // A request without a key records none.
    s.finish("r2", &stored("alice", 200, json!(2)), None)
        .wait()
        .expect("finish");
    assert_eq!(s.idempotent("alice", "r2").expect("read"), None);
    assert_eq!(s.request("missing").expect("read"), None);
}

fn a_finished_response_is_not_overwritten_but_a_held_one_is(s: &dyn RequestStore) {
    let h = held("h1", 10, 20);
    let accepted = stored("alice", 202, json!({"state": "pending"}));
    s.put_held(&h, Some(&accepted)).wait().expect("put");
    // The submit path finishing the same id keeps the held response.
    s.finish("h1", &stored("alice", 500, json!("late")), None)
        .wait()
        .expect("finish");
    assert_eq!(s.request("h1").expect("read"), Some(accepted));
    // Its end replaces it.
    let mut ended = h.clone();
    ended.state = HeldState::Executed;
    let done = stored("alice", 200, json!({"result": "paid"}));
    s.end_held(&ended, &done).wait().expect("end");
    assert_eq!(s.request("h1").expect("read"), Some(done));
}

fn a_held_request_lives_from_put_to_end(s: &dyn RequestStore) {
    assert_eq!(
        s.pending_summary().expect("summary"),
        PendingSummary::default()
    );
    let mut h = held("h1", 100, 200);
    s.put_held(&h, None).wait().expect("put");
    let back = s.held("h1").expect("read").expect("kept");
    assert_eq!(
        serde_json::to_value(&back).expect("json"),
        serde_json::to_value(&h).expect("json")
    );
    assert_eq!(
        s.pending_summary().expect("summary"),
        PendingSummary {
            pending: 1,
            oldest_admitted_ms: Some(100)
        }
    );
    assert!(s.held_due(199).expect("due").is_empty());
    assert_eq!(ids(&s.held_due(200).expect("due")), ["h1"]);
    // A decision is saved by putting the record again.
    h.decisions.push(Decision {
        principal: "bob".into(),
        decision: ApprovalDecision::Approved,
        at_ms: 150,
        reason: "ok".into(),
    });
    s.put_held(&h, None).wait().expect("put again");
    assert_eq!(
        s.held("h1").expect("read").expect("kept").decisions.len(),
        1
    );
    h.state = HeldState::Denied;
    h.ended_at_ms = Some(160);
    s.end_held(&h, &stored("alice", 403, json!({"error": "denied"})))
        .wait()
        .expect("end");
    assert!(
        s.held_list(Some(HeldState::Pending), 10)
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        ids(&s.held_list(Some(HeldState::Denied), 10).expect("list")),
        ["h1"]
    );
    assert!(
        s.held_due(u64::MAX).expect("due").is_empty(),
        "ended, not due"
    );
    assert_eq!(
        s.pending_summary().expect("summary"),
        PendingSummary::default()
    );
    assert_eq!(
        s.held("h1").expect("read").expect("kept").state,
        HeldState::Denied
    );
    assert!(s.held("nope").expect("read").is_none());
}

fn held_listings_are_ordered_and_bounded(s: &dyn RequestStore) {
    for (id, admitted, expires) in [("c", 30, 300), ("a", 10, 500), ("b", 10, 100)] {
        s.put_held(&held(id, admitted, expires), None)
            .wait()
            .expect("put");
    }
    // Oldest admission first, ties by id.
    assert_eq!(ids(&s.held_list(None, 10).expect("list")), ["a", "b", "c"]);
    assert_eq!(ids(&s.held_list(None, 2).expect("list")), ["a", "b"]);
    assert!(s.held_list(None, 0).expect("list").is_empty());
    // Earliest deadline first.
    assert_eq!(ids(&s.held_due(1000).expect("due")), ["b", "c", "a"]);
    assert_eq!(
        s.pending_summary().expect("summary"),
        PendingSummary {
            pending: 3,
            oldest_admitted_ms: Some(10)
        }
    );
}

fn a_row_that_does_not_decode_is_an_error_naming_it(s: &dyn RequestStore, corrupt: &dyn Fn(&str)) {
    s.put_held(&held("good", 1, 2), Some(&stored("alice", 202, json!(1))))
        .wait()
        .expect("put");
    s.put_held(
        &held("bad-row", 3, 4),
        Some(&stored("alice", 202, json!(2))),
    )
    .wait()
    .expect("put");
    corrupt("bad-row");
    let names_it = |e: StoreError, table: &str| {
        let text = e.to_string();
        assert!(
            matches!(&e, StoreError::BadRow { table: t, .. } if *t == table),
            "{text}"
        );
        assert!(text.contains("bad-row"), "{text}");
    };
    names_it(s.held("bad-row").expect_err("held"), "held");
    names_it(s.held_list(None, 10).expect_err("not dropped"), "held");
    names_it(s.held_due(u64::MAX).expect_err("not dropped"), "held");
    names_it(s.request("bad-row").expect_err("response"), "requests");
    // The other rows still read.
    assert!(s.held("good").expect("read").is_some());
    assert!(s.request("good").expect("read").is_some());
}

fn sqlite_requests(dir: &Path) -> RequestFixture {
    let store = SqliteRequestStore::open(dir).expect("open state.db");
    let path = store.path().to_owned();
    RequestFixture {
        store: Box::new(store),
        corrupt: Box::new(move |id| {
            let c = Connection::open(&path).expect("open");
            c.execute(
                "UPDATE held SET record = '{\"request_id\": 7' WHERE id = ?1",
                params![id],
            )
            .expect("damage held");
            c.execute(
                "UPDATE requests SET response = 'not json' WHERE id = ?1",
                params![id],
            )
            .expect("damage response");
        }),
    }
}

#[test]
fn sqlite_request_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = std::cell::Cell::new(0);
    request_store_conformance(&|| {
        n.set(n.get() + 1);
        sqlite_requests(&dir.path().join(n.get().to_string()))
    });
}

#[test]
fn a_state_db_from_before_schema_versions_opens_with_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(super::STATE_FILE);
    {
        // state.db as every release so far wrote it: no user_version.
        let c = Connection::open(&path).expect("open");
        (super::requests_sqlite::STATE_SCHEMA.migrations[0].run)(&c, &path).expect("old tables");
        c.execute(
            "INSERT INTO requests (id, principal, status, response, at_ms) VALUES ('r1', 'alice', 200, '{\"a\":1}', 5)",
            [],
        )
        .expect("row");
        c.execute(
            "INSERT INTO idempotency (principal, key, fingerprint, request_id) VALUES ('alice', 'k', 'fp', 'r1')",
            [],
        )
        .expect("row");
    }
    let s = SqliteRequestStore::open(dir.path()).expect("opens");
    assert_eq!(
        s.request("r1").expect("read"),
        Some(stored("alice", 200, json!({"a": 1})))
    );
    assert_eq!(
        s.idempotent("alice", "k")
            .expect("read")
            .expect("kept")
            .request_id,
        "r1"
    );
    let c = Connection::open(&path).expect("open");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, 1);
}

// ---------------------------------------------------------------- audit

/// A fresh audit store and a hook that damages the stored entry `seq`.
pub(crate) struct AuditFixture {
    pub store: Box<dyn AuditStore>,
    pub corrupt: Box<dyn Fn(u64)>,
}

pub(crate) fn entry(i: u64, payload: Option<&[u8]>) -> NewEntry {
    NewEntry {
        event: EventKind::Invocation,
        admitted_at_ms: 1_700_000_000_000 + i,
        request_id: format!("req-{i}"),
        principal: "alice".into(),
        request_kind: "http".into(),
        route: None,
        capability: format!("cap-{}", i % 2),
        component_digest: Some(Hash256([4; 32])),
        policy_hash: Some(Hash256([5; 32])),
        function: "run".into(),
        input_sha256: payload.map(Hash256::of),
        output_sha256: None,
        outcome: Outcome::Ok,
        usage: Usage::default(),
        replayable: false,
        unsigned_allowed: false,
        attempt: 1,
        approvals: vec![],
        host_calls: vec![],
        detail: None,
        evidence: Default::default(),
    }
}

/// Every behaviour of [`AuditStore`] the host and the API rely on.
pub(crate) fn audit_store_conformance(make: &dyn Fn() -> AuditFixture) {
    let f = make();
    let s = &*f.store;
    assert_eq!(s.head(), (0, Hash256::ZERO));
    // Appends land in submission order, each linked to the one before.
    let acks: Vec<_> = (1..=20)
        .map(|i| s.append(entry(i, None), Payloads::default()))
        .collect();
    let mut prev = Hash256::ZERO;
    for (i, ack) in (1..=20).zip(acks) {
        let a = ack.wait().expect("append");
        assert_eq!(a.seq, i);
        assert_ne!(a.hash, prev);
        prev = a.hash;
    }
    assert_eq!(s.head(), (20, prev));
    let page = s.page(1, 100, 100, &EntryFilter::default()).expect("page");
    assert!(page.complete);
    assert_eq!(
        page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    assert!(page.entries.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    let odd = EntryFilter {
        capability: Some("cap-1".into()),
        outcome: None,
    };
    let page = s.page(1, 3, 100, &odd).expect("filtered");
    assert_eq!(
        page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 3, 5]
    );
    assert_eq!(page.next_after, 5);
    // A checkpoint covers the head.
    let cp = s.checkpoint().wait().expect("checkpoint");
    assert_eq!((cp.size, cp.head_hash), (20, prev));
    assert!(s.checkpoints().expect("checkpoints").contains(&cp));
    // Payloads: stored by hash, refused if they do not hash to the entry,
    // pruned by age without touching the chain.
    let data = br#"{"amount":1}"#;
    s.append(
        entry(21, Some(data)),
        Payloads {
            input: Some(data.to_vec()),
            output: None,
            results: Vec::new(),
        },
    )
    .wait()
    .expect("append with payload");
    assert_eq!(
        s.payload(&Hash256::of(data)).expect("payload"),
        Some(data.to_vec())
    );
    let e = s
        .append(
            entry(22, Some(b"other")),
            Payloads {
                input: Some(data.to_vec()),
                output: None,
                results: Vec::new(),
            },
        )
        .wait()
        .expect_err("mismatch");
    assert!(matches!(e, StoreError::PayloadHashMismatch { .. }), "{e}");
    assert_eq!(
        s.head().0,
        21,
        "a refused append takes no place in the chain"
    );
    assert_eq!(s.prune_payloads(0).expect("prune none"), 0);
    assert_eq!(s.prune_payloads(u64::MAX).expect("prune"), 1);
    assert_eq!(s.payload(&Hash256::of(data)).expect("payload"), None);
    assert_eq!(s.head().0, 21);
    assert!(s.stats().entries >= 21);
    // A damaged entry is an error naming its row.
    (f.corrupt)(7);
    let e = s
        .page(1, 100, 100, &EntryFilter::default())
        .expect_err("not skipped");
    assert!(e.to_string().contains("row 7"), "{e}");
}

#[test]
fn sqlite_audit_log_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    audit_store_conformance(&|| {
        let log = AuditLog::open(&path, key.clone(), CheckpointPolicy::default()).expect("open");
        let db = path.clone();
        AuditFixture {
            store: Box::new(log),
            corrupt: Box::new(move |seq| {
                Connection::open(&db)
                    .and_then(|c| {
                        c.execute(
                            "UPDATE audit_entries SET entry = X'00' WHERE seq = ?1",
                            params![seq],
                        )
                    })
                    .expect("damage");
            }),
        }
    });
}

// ---------------------------------------------------------------- kv

/// Damages the value of one key of a namespace behind the store's back.
type DamageKv = Box<dyn Fn(&Namespace, &str)>;

/// A fresh KV store and a hook that damages the value of one key of a
/// namespace.
pub(crate) struct KvFixture {
    pub store: Box<dyn KvBackend>,
    pub corrupt: DamageKv,
}

fn writes(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<Vec<u8>>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

/// Every behaviour of [`KvBackend`] the KV interface relies on.
pub(crate) fn kv_store_conformance(make: &dyn Fn() -> KvFixture) {
    let f = make();
    let s = &*f.store;
    let limits = quota();
    let notes = Namespace::new("notes", None);
    let acme = Namespace::new("notes", Tenant::parse("acme").ok().as_ref());
    let other = Namespace::new("other", None);
    s.commit(
        &notes,
        &writes(&[("a/1", Some("x")), ("a/2", Some("yy")), ("b", Some("z"))]),
        &limits,
    )
    .expect("commit");
    assert_eq!(s.get(&notes, "a/2").expect("get"), Some(b"yy".to_vec()));
    assert_eq!(s.keys(&notes, "a/").expect("keys"), ["a/1", "a/2"]);
    assert_eq!(s.keys(&notes, "").expect("keys"), ["a/1", "a/2", "b"]);
    // Usage: bytes of keys and values, number of keys.
    assert_eq!(s.usage(&notes).expect("usage"), (3 + 1 + 3 + 2 + 1 + 1, 3));
    // Namespaces (capabilities, tenants, tenant-less) never see each other.
    for ns in [&acme, &other] {
        assert_eq!(s.get(ns, "a/1").expect("get"), None);
        assert!(s.keys(ns, "").expect("keys").is_empty());
        assert_eq!(s.usage(ns).expect("usage"), (0, 0));
    }
    s.commit(&acme, &writes(&[("a/1", Some("acme"))]), &limits)
        .expect("commit");
    assert_eq!(s.get(&notes, "a/1").expect("get"), Some(b"x".to_vec()));
    // Deletes and overwrites.
    s.commit(
        &notes,
        &writes(&[("a/1", None), ("b", Some("zz"))]),
        &limits,
    )
    .expect("commit");
    assert_eq!(s.get(&notes, "a/1").expect("get"), None);
    assert_eq!(s.get(&notes, "b").expect("get"), Some(b"zz".to_vec()));
    // Quotas: a commit that would end over a limit applies nothing.
    let two_keys = KvQuota {
        max_keys: 2,
        ..quota()
    };
    s.commit(
        &notes,
        &writes(&[("c", Some("1")), ("a/2", None)]),
        &two_keys,
    )
    .expect("exactly at the limit");
    s.commit(&notes, &writes(&[("d", Some("1")), ("b", None)]), &two_keys)
        .expect("still two keys");
    let e = s
        .commit(
            &notes,
            &writes(&[("e", Some("1")), ("b", Some("changed"))]),
            &two_keys,
        )
        .expect_err("three keys");
    assert!(matches!(e, KvError::Quota(_)), "{e}");
    assert_eq!(s.get(&notes, "e").expect("get"), None, "nothing applied");
    assert_eq!(s.get(&notes, "b").expect("get"), None, "the delete stays");
    let small = KvQuota {
        max_bytes: ByteSize(4),
        ..quota()
    };
    let e = s
        .commit(&other, &writes(&[("k", Some("long value"))]), &small)
        .expect_err("over max_bytes");
    assert!(matches!(e, KvError::Quota(_)), "{e}");
    assert_eq!(s.usage(&other).expect("usage"), (0, 0));
    // A damaged row is an error naming it.
    s.commit(&other, &writes(&[("bad-key", Some("v"))]), &limits)
        .expect("commit");
    (f.corrupt)(&other, "bad-key");
    let e = s.get(&other, "bad-key").expect_err("not defaulted");
    assert!(matches!(e, KvError::BadRow { .. }), "{e}");
    assert!(e.to_string().contains("bad-key"), "{e}");
}

fn corrupt_kv(c: &Connection, ns: &Namespace, key: &str) {
    c.execute(
        "UPDATE kv SET value = 'text, not a blob' WHERE namespace = ?1 AND key = ?2",
        params![ns.capability, key],
    )
    .expect("damage");
}

#[test]
fn sqlite_kv_store_conforms_in_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.db");
    kv_store_conformance(&|| {
        let db = path.clone();
        KvFixture {
            store: Box::new(KvStore::open(&path).expect("open")),
            corrupt: Box::new(move |ns, key| {
                corrupt_kv(&Connection::open(&db).expect("open"), ns, key);
            }),
        }
    });
}

#[test]
fn sqlite_kv_store_conforms_in_memory() {
    kv_store_conformance(&|| {
        let store = std::sync::Arc::new(KvStore::in_memory().expect("open"));
        let damaged = store.clone();
        KvFixture {
            store: Box::new(store),
            corrupt: Box::new(move |ns, key| damaged.with_connection(|c| corrupt_kv(c, ns, key))),
        }
    });
}

/// The quotas of a KV grant with its documented defaults (docs/interfaces.md).
fn quota() -> KvQuota {
    KvQuota {
        max_bytes: ByteSize(1 << 20),
        max_value_bytes: ByteSize(64 << 10),
        max_keys: 1000,
    }
}
