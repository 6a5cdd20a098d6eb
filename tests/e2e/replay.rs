//! `warden audit replay`: entries re-executed offline from the artifact
//! store and recorded host-call results match what was recorded (outcome,
//! output hash, fuel, host calls); tampering is reported with the entry's
//! seq; what cannot be replayed says why.

use crate::support::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use warden_host::audit::AuditEntry;
use warden_host::policy::Policy;
use warden_host::replay::{DataDir, EntryReplay, Replayer, Summary, Verdict};
use warden_host::store::{ArtifactStore, AuditReader, EntryFilter};
use warden_host::{Call, Host, HostConfig, Outcome};

/// A host with a data directory (audit log, artifacts) at `dir`.
pub(crate) fn recording_host(dir: &Path, config: impl FnOnce(&mut HostConfig)) -> Host {
    let mut c = HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    };
    config(&mut c);
    Host::new(c).expect("host with a data dir")
}

fn example(name: &str) -> Policy {
    Policy::load(&repo().join(format!("policies/{name}.toml"))).expect("example policy")
}

pub(crate) fn entries(dir: &Path) -> Vec<AuditEntry> {
    AuditReader::open(&dir.join("warden.db"))
        .expect("db")
        .entries(1, 100_000, &EntryFilter::default())
        .expect("entries")
}

/// Replays every entry of `dir` (as `warden audit replay --from 1` does).
pub(crate) async fn replay_all(dir: &Path) -> (Vec<EntryReplay>, Summary) {
    let evidence = DataDir {
        reader: AuditReader::open(&dir.join("warden.db")).expect("db"),
        artifacts: ArtifactStore::in_data_dir(dir),
    };
    let mut replayer = Replayer::new(small_pool()).expect("replayer");
    let mut out = Vec::new();
    let mut summary = Summary::default();
    for e in entries(dir) {
        let r = replayer.replay(&e, &evidence).await;
        summary.add(&r);
        out.push(r);
    }
    (out, summary)
}

pub(crate) fn assert_all_matched(results: &[EntryReplay]) {
    for r in results {
        assert_eq!(r.verdict, Verdict::Matched, "{r}");
    }
}

#[tokio::test]
async fn rust_examples_and_every_outcome_class_replay_and_match_including_fuel() {
    let dir = scratch("replay-rust");
    let mut h = recording_host(&dir, |_| {});
    for name in ["echo", "invoice-reconcile", "pii-redact", "order-notes"] {
        load(&mut h, example(name), name);
    }
    load(
        &mut h,
        policy("starved", STD_IMPORTS, "fuel = 5_000"),
        "spin-loop",
    );
    load(&mut h, policy("panicker", STD_IMPORTS, ""), "panicker");
    load(
        &mut h,
        policy("big-output", STD_IMPORTS, "max_output = \"1KiB\""),
        "big-output",
    );
    let calls = [
        ("echo", "echo", json!({"message": "héllo"}), Outcome::Ok),
        (
            "invoice-reconcile",
            "reconcile",
            json!({"invoices": [{"id": "I", "customer": "c", "amount-cents": 5}],
                   "ledger": [{"ref": "I", "customer": "c", "amount-cents": 4}]}),
            Outcome::Ok,
        ),
        (
            "pii-redact",
            "redact",
            json!({"text": "mail jane@example.org"}),
            Outcome::Ok,
        ),
        // KV: writes (committed), then a read answered by the recording.
        (
            "order-notes",
            "add-note",
            json!({"order-id": "A-1", "text": "one"}),
            Outcome::Ok,
        ),
        (
            "order-notes",
            "list-notes",
            json!({"order-id": "A-1"}),
            Outcome::Ok,
        ),
        (
            "order-notes",
            "add-note",
            json!({"order-id": "../x", "text": "t"}),
            Outcome::CapabilityError,
        ),
        ("echo", "echo", json!({"nope": 1}), Outcome::InvalidInput),
        (
            "starved",
            "spin",
            json!({"n": 1_000_000}),
            Outcome::BudgetExhausted(warden_host::Budget::Fuel),
        ),
        ("panicker", "boom", json!({"message": "x"}), Outcome::Trap),
        (
            "big-output",
            "make",
            json!({"bytes": 10_000}),
            Outcome::BudgetExhausted(warden_host::Budget::Output),
        ),
    ];
    for (cap, f, input, want) in calls {
        let r = h.invoke(Call::new(cap, f, input)).await;
        assert_eq!(r.outcome, want, "{cap}.{f}: {r:?}");
        assert!(r.replayable, "{cap}.{f}: {r:?}");
    }
    // The KV read was recorded with the entry.
    let list = &entries(&dir)[4];
    assert!(!list.entry.evidence.results.is_empty(), "{:?}", list.entry);
    h.shutdown().await.expect("shutdown");
    let (results, summary) = replay_all(&dir).await;
    assert_all_matched(&results);
    assert_eq!(summary.matched, 10, "{summary}");
    assert!(summary.ok(), "{summary}");
}

#[tokio::test]
async fn the_same_replay_twice_gives_the_same_fuel_and_a_changed_fuel_is_a_mismatch() {
    // A replay compares fuel exactly: an entry whose recorded fuel is not
    // what the component takes is reported, not matched.
    let dir = scratch("replay-fuel");
    let mut h = recording_host(&dir, |_| {});
    load(&mut h, example("echo"), "echo");
    let r = h
        .invoke(Call::new("echo", "echo", json!({"message": "x"})))
        .await;
    assert_eq!(r.outcome, Outcome::Ok);
    h.shutdown().await.expect("shutdown");
    let mut entry = entries(&dir).remove(0);
    entry.entry.usage.fuel += 1;
    let evidence = DataDir {
        reader: AuditReader::open(&dir.join("warden.db")).expect("db"),
        artifacts: ArtifactStore::in_data_dir(&dir),
    };
    let mut replayer = Replayer::new(small_pool()).expect("replayer");
    let got = replayer.replay(&entry, &evidence).await;
    match &got.verdict {
        Verdict::Mismatch(why) => assert!(why[0].starts_with("fuel: expected"), "{got}"),
        other => panic!("expected a fuel mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn fx_rate_replays_without_its_http_double_running() {
    let _port = crate::support::FX_PORT.lock().await;
    let server = match crate::doubles::fx_rates(18080).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("port 18080 is busy ({e}); skipping the fx-rate replay test");
            return;
        }
    };
    let dir = scratch("replay-fx");
    let mut h = recording_host(&dir, |_| {});
    load(&mut h, example("fx-rate"), "fx-rate");
    let r = h
        .invoke(Call::new(
            "fx-rate",
            "rate",
            json!({"base": "eur", "quote": "USD"}),
        ))
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(r.replayable, "{r:?}");
    h.shutdown().await.expect("shutdown");
    assert_eq!(server.hits(), 1);
    drop(server);
    let entry = &entries(&dir)[0];
    assert_eq!(entry.entry.evidence.results.len(), 1, "{:?}", entry.entry);
    let (results, summary) = replay_all(&dir).await;
    assert_all_matched(&results);
    assert_eq!(summary.matched, 1);

    // A tampered recorded response is reported with the entry's seq.
    let h0 = entry.entry.evidence.results[0];
    let db = rusqlite::Connection::open(dir.join("warden.db")).expect("db");
    let changed = db
        .execute(
            "UPDATE audit_payloads SET data = CAST('{\"call\":\"x\",\"result\":null}' AS BLOB) WHERE hash = ?1",
            [&h0.0[..]],
        )
        .expect("tamper");
    assert_eq!(changed, 1);
    drop(db);
    let (results, summary) = replay_all(&dir).await;
    assert_eq!(results[0].seq, entry.seq);
    match &results[0].verdict {
        Verdict::Missing(why) => assert!(
            why.contains("recorded result 1 fails its hash"),
            "{}",
            results[0]
        ),
        other => panic!("expected the tampered response reported, got {other:?}"),
    }
    assert!(!summary.ok());
}

#[tokio::test]
async fn ticket_triage_replays_without_its_model_double_running() {
    let server = crate::doubles::ticket_classifier(0).await.expect("double");
    let dir = scratch("replay-triage");
    let mut h = recording_host(&dir, |c| {
        c.models.insert(
            "small".into(),
            warden_host::interfaces::model::ModelBackend::new(&server.origin(), "triage-model"),
        );
    });
    load(&mut h, example("ticket-triage"), "ticket-triage");
    for body in ["I was charged twice on my invoice", "The app crashes"] {
        let r = h
            .invoke(Call::new(
                "ticket-triage",
                "triage",
                json!({"subject": "help", "body": body}),
            ))
            .await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(
            r.output.as_ref().map(|o| o["from-model"].clone()),
            Some(json!(true))
        );
        assert!(r.replayable, "{r:?}");
    }
    h.shutdown().await.expect("shutdown");
    drop(server);
    // The replayer has no model backends at all.
    let (results, summary) = replay_all(&dir).await;
    assert_all_matched(&results);
    assert_eq!(summary.matched, 2, "{summary}");
}

#[tokio::test]
async fn a_model_the_host_does_not_configure_replays_as_unconfigured() {
    let dir = scratch("replay-unconfigured");
    let mut h = recording_host(&dir, |_| {});
    load(&mut h, example("ticket-triage"), "ticket-triage");
    let r = h
        .invoke(Call::new(
            "ticket-triage",
            "triage",
            json!({"subject": "x", "body": "y"}),
        ))
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    h.shutdown().await.expect("shutdown");
    let (results, _) = replay_all(&dir).await;
    assert_all_matched(&results);
}

/// Records `echo` then `pii-redact`; returns the data dir.
async fn two_entries(name: &str) -> PathBuf {
    let dir = scratch(name);
    let mut h = recording_host(&dir, |_| {});
    load(&mut h, example("echo"), "echo");
    load(&mut h, example("pii-redact"), "pii-redact");
    let r = h
        .invoke(Call::new("echo", "echo", json!({"message": "a"})))
        .await;
    assert_eq!(r.outcome, Outcome::Ok);
    let r = h
        .invoke(Call::new("pii-redact", "redact", json!({"text": "b"})))
        .await;
    assert_eq!(r.outcome, Outcome::Ok);
    h.shutdown().await.expect("shutdown");
    dir
}

#[tokio::test]
async fn a_tampered_policy_artifact_is_reported_with_the_seq_of_the_entry_needing_it() {
    let dir = two_entries("replay-tampered-policy").await;
    let e = &entries(&dir)[1];
    let store = ArtifactStore::in_data_dir(&dir);
    let hash = e.entry.policy_hash.expect("policy hash");
    let path = store.path_of(&hash);
    let mut bytes = std::fs::read(&path).expect("artifact");
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).expect("tamper");
    let (results, summary) = replay_all(&dir).await;
    assert_eq!(results[0].verdict, Verdict::Matched, "{}", results[0]);
    assert_eq!(results[1].seq, e.seq);
    match &results[1].verdict {
        Verdict::Missing(why) => {
            assert!(why.contains("fails its hash"), "{}", results[1]);
            assert!(why.contains(&hash.tagged()), "{}", results[1]);
        }
        other => panic!("expected the tampered policy reported, got {other:?}"),
    }
    assert_eq!(summary.missing, 1, "{summary}");
}

#[tokio::test]
async fn a_swapped_component_is_reported_with_the_seq_of_the_entry_needing_it() {
    let dir = two_entries("replay-swapped").await;
    let all = entries(&dir);
    let store = ArtifactStore::in_data_dir(&dir);
    let echo = all[0].entry.component_digest.expect("digest");
    let pii = all[1].entry.component_digest.expect("digest");
    // pii-redact's component file now holds echo's (valid) component.
    std::fs::copy(store.path_of(&echo), store.path_of(&pii)).expect("swap");
    let (results, _) = replay_all(&dir).await;
    assert_eq!(results[0].verdict, Verdict::Matched, "{}", results[0]);
    assert_eq!(results[1].seq, all[1].seq);
    match &results[1].verdict {
        Verdict::Missing(why) => assert!(
            why.contains(&format!("component {pii}")) && why.contains("fails its hash"),
            "{}",
            results[1]
        ),
        other => panic!("expected the swapped component reported, got {other:?}"),
    }
    // A deleted one is reported as missing, never skipped.
    std::fs::remove_file(store.path_of(&pii)).expect("delete");
    let (results, _) = replay_all(&dir).await;
    assert!(
        matches!(&results[1].verdict, Verdict::Missing(w) if w.contains("is not in the artifact store")),
        "{}",
        results[1]
    );
}

#[tokio::test]
async fn artifacts_are_stored_at_load_and_retrieved_verified_by_the_cli() {
    let dir = two_entries("replay-cli").await;
    let e = &entries(&dir)[0];
    let digest = e.entry.component_digest.expect("digest").tagged();
    let out = dir.join("echo.wasm");
    let (code, _, err) = warden(&[
        "audit",
        "artifact",
        &digest,
        "-o",
        out.to_str().expect("utf-8"),
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&out).expect("written");
    assert_eq!(
        warden_host::digest::Hash256::of(&bytes).tagged(),
        digest,
        "the artifact is the digest's bytes"
    );
    let (code, out, err) = warden(&[
        "audit",
        "replay",
        "--from",
        "1",
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("#1 ") && out.contains(": matched"), "{out}");
    assert!(
        out.contains("2 entries: 2 replayed, 2 matched, 0 diverged"),
        "{out}"
    );
    // One altered artifact: exit 3, the line names the seq.
    let store = ArtifactStore::in_data_dir(&dir);
    let pii = entries(&dir)[1].entry.component_digest.expect("digest");
    std::fs::write(store.path_of(&pii), b"not a component").expect("tamper");
    let (code, out, _) = warden(&[
        "audit",
        "replay",
        "2",
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("#2 ") && out.contains("MISSING"), "{out}");
    let (code, _, err) = warden(&[
        "audit",
        "artifact",
        &pii.tagged(),
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("fails its hash"), "{err}");
}

#[tokio::test]
async fn replay_by_request_id_replays_only_that_requests_entries_and_an_unknown_id_is_an_error() {
    let dir = two_entries("replay-by-request").await;
    let second = &entries(&dir)[1];
    let d = dir.to_str().expect("utf-8");
    let (code, out, err) = warden(&[
        "audit",
        "replay",
        "--request",
        &second.entry.request_id,
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("#2 ") && out.contains(": matched"), "{out}");
    assert!(!out.contains("#1 "), "only the named request: {out}");
    assert!(out.contains("1 replayed, 1 matched"), "{out}");
    let (code, _, err) = warden(&["audit", "replay", "--request", "r-nobody", "--data-dir", d]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no entries matched"), "{err}");
}

#[tokio::test]
async fn pruning_payloads_never_deletes_an_artifact() {
    let dir = two_entries("replay-prune").await;
    let (code, _, err) = warden(&[
        "audit",
        "prune",
        "--older-than",
        "0s",
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let store = ArtifactStore::in_data_dir(&dir);
    for e in entries(&dir) {
        for h in [e.entry.component_digest, e.entry.policy_hash]
            .into_iter()
            .flatten()
        {
            store.get(&h).expect("artifact survives pruning");
        }
    }
    let (results, _) = replay_all(&dir).await;
    assert!(
        matches!(&results[0].verdict, Verdict::Missing(w) if w.contains("pruned")),
        "{}",
        results[0]
    );
}

/// What this shows about wasmtime 48 (measured here, pii-redact): the
/// output is the same under both `memory_init_cow` settings, and fuel is
/// exactly repeatable within one setting, but fuel DIFFERS between the two
/// settings (10,225 with copy-on-write images, 15,784 with copied data
/// segments). So a replay must run with the setting the entries were
/// recorded under (`warden audit replay --memory-init-cow`).
#[tokio::test]
async fn output_is_the_same_under_both_memory_init_cow_settings_and_fuel_repeats_exactly_within_each()
 {
    let mut seen = Vec::new();
    for cow in [true, false] {
        let mut h = Host::new(HostConfig {
            sandbox: warden_host::sandbox::SandboxConfig {
                memory_init_cow: cow,
                ..small_pool()
            },
            allow_unsigned: true,
            ..HostConfig::default()
        })
        .expect("host");
        load(&mut h, example("pii-redact"), "pii-redact");
        let mut runs = Vec::new();
        for _ in 0..2 {
            let r = h
                .invoke(
                    Call::new(
                        "pii-redact",
                        "redact",
                        json!({"text": "jane@example.org 4111-1111-1111-1111"}),
                    )
                    .with_request_id("r-fixed"),
                )
                .await;
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
            runs.push((r.output_hash, r.usage.fuel));
        }
        assert_eq!(
            runs[0], runs[1],
            "cow={cow}: fuel and output repeat exactly"
        );
        eprintln!("memory_init_cow={cow}: fuel {}", runs[0].1);
        seen.push(runs[0]);
    }
    assert_eq!(
        seen[0].0, seen[1].0,
        "the output does not depend on the setting"
    );
}

#[tokio::test]
async fn a_bundle_verifies_and_replays_in_a_fresh_directory_with_only_the_public_key() {
    let dir = two_entries("replay-bundle").await;
    let e = entries(&dir).remove(1);
    let file = dir.join("evidence.json");
    let (code, out, err) = warden(&[
        "audit",
        "bundle",
        "--request",
        &e.entry.request_id,
        "-o",
        file.to_str().expect("utf-8"),
        "--data-dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Another machine: only the bundle and the host's public key.
    let elsewhere = scratch("replay-bundle-elsewhere");
    let bundle = elsewhere.join("evidence.json");
    let pubkey = elsewhere.join("host.pub");
    std::fs::copy(&file, &bundle).expect("copy bundle");
    std::fs::copy(dir.join("host.pub"), &pubkey).expect("copy key");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--bundle",
        &s(&bundle),
        "--pubkey",
        &s(&pubkey),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("verifies"), "{out}");
    let (code, out, err) = warden(&["audit", "replay", "--bundle", &s(&bundle)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("#{} ", e.seq)) && out.contains(": matched"),
        "{out}"
    );
    // A bundle whose recorded input was altered does not verify.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle).expect("read")).expect("json");
    let input = e.entry.input_sha256.expect("input").tagged();
    doc["payloads"][&input] = json!(hex_of(b"{\"text\":\"c\"}"));
    std::fs::write(&bundle, serde_json::to_vec(&doc).expect("json")).expect("write");
    let (code, out, _) = warden(&[
        "audit",
        "verify",
        "--bundle",
        &s(&bundle),
        "--pubkey",
        &s(&pubkey),
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&format!("payload {input} fails its hash")),
        "{out}"
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
