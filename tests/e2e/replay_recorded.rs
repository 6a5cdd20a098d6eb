//! Recorded filesystem results, system clock readings and system random
//! bytes: entries that use them replay and match without the host's
//! directories, clock or entropy; a guest that departs from the recording
//! is reported as diverged; an entry whose payloads were opted out says so.

use crate::replay::{assert_all_matched, entries, recording_host, replay_all};
use crate::support::*;
use serde_json::json;
use std::path::Path;
use warden_host::policy::Policy;
use warden_host::replay::{DataDir, Replayer, Verdict};
use warden_host::store::{ArtifactStore, AuditReader};
use warden_host::{Call, Outcome};

/// `/in` (read-only) and `/out` (read-write) under `root`, for fs-user.
fn fs_policy(root: &Path) -> Policy {
    let imports = format!(
        "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{}}\n\"wasi:filesystem/types\" = {{}}\n\"wasi:filesystem/preopens\" = {{ dirs = [{{ host = \"{}\", guest = \"/in\", mode = \"read-only\" }}, {{ host = \"{}\", guest = \"/out\", mode = \"read-write\" }}] }}",
        root.join("in").display(),
        root.join("out").display()
    );
    policy("fs-user", &imports, "")
}

fn fs_root(name: &str) -> std::path::PathBuf {
    let root = scratch(name);
    std::fs::create_dir_all(root.join("in/sub")).expect("in");
    std::fs::create_dir_all(root.join("out")).expect("out");
    std::fs::write(root.join("in/hello.txt"), "hello from the host").expect("hello");
    std::fs::write(root.join("in/sub/deep.txt"), "deep").expect("deep");
    root
}

#[tokio::test]
async fn filesystem_reads_writes_and_listings_replay_and_match_after_the_directories_are_gone() {
    let dir = scratch("replay-fs");
    let root = fs_root("replay-fs-root");
    let mut h = recording_host(&dir, |_| {});
    load(&mut h, fs_policy(&root), "fs-user");
    let calls = [
        ("read", json!({"path": "/in/hello.txt"})),
        ("read-stream", json!({"path": "/in/sub/deep.txt"})),
        ("list-dir", json!({"path": "/in"})),
        (
            "stat-many",
            json!({"path": "/in/hello.txt", "count": 3, "distinct": false}),
        ),
        ("read", json!({"path": "/in/missing.txt"})),
        (
            "write",
            json!({"path": "/out/a.txt", "contents": "written"}),
        ),
        (
            "write-stream",
            json!({"path": "/out/b.txt", "contents": "streamed"}),
        ),
        ("read", json!({"path": "/out/b.txt"})),
        (
            "write-existing",
            json!({"path": "/in/hello.txt", "contents": "no"}),
        ),
    ];
    for (function, input) in &calls {
        let r = h
            .invoke(Call::new("fs-user", function, input.clone()))
            .await;
        assert!(r.replayable, "{function}: {r:?}");
    }
    h.shutdown().await.expect("shutdown");
    let recorded = entries(&dir);
    assert_eq!(recorded.len(), calls.len());
    for e in &recorded {
        assert!(
            !e.entry.evidence.results.is_empty(),
            "#{} {} records the filesystem's results",
            e.seq,
            e.entry.function
        );
        assert_eq!(e.entry.evidence.not_replayable, None);
    }
    // The replay must not read the host's files: they are gone.
    std::fs::remove_dir_all(&root).expect("remove the preopened directories");
    let (results, summary) = replay_all(&dir).await;
    assert_all_matched(&results);
    assert_eq!(summary.matched, calls.len() as u64, "{summary}");
}

#[tokio::test]
async fn a_guest_reading_another_file_than_recorded_is_reported_as_diverged() {
    let dir = scratch("replay-fs-diverged");
    let root = fs_root("replay-fs-diverged-root");
    let mut h = recording_host(&dir, |_| {});
    load(&mut h, fs_policy(&root), "fs-user");
    for path in ["/in/hello.txt", "/in/sub/deep.txt"] {
        let r = call(&h, "fs-user", "read", json!({ "path": path })).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    h.shutdown().await.expect("shutdown");
    let mut recorded = entries(&dir);
    // Entry 1 (reads hello.txt) answered with entry 2's recording (deep.txt).
    let second = recorded[1].entry.evidence.results.clone();
    recorded[0].entry.evidence.results = second;
    let evidence = DataDir {
        reader: AuditReader::open(&dir.join("warden.db")).expect("db"),
        artifacts: ArtifactStore::in_data_dir(&dir),
    };
    let mut replayer = Replayer::new(small_pool()).expect("replayer");
    let r = replayer.replay(&recorded[0], &evidence).await;
    let Verdict::Mismatch(why) = &r.verdict else {
        panic!("expected a mismatch: {r}");
    };
    assert!(
        why[0].starts_with("diverged at call 1: expected wasi:filesystem open-at /in sha256:"),
        "{r}"
    );
    assert!(r.to_string().contains("MISMATCH"), "{r}");
}

#[tokio::test]
async fn a_guest_reading_the_granted_system_clock_and_random_replays_and_matches() {
    let dir = scratch("replay-system-clock");
    let mut h = recording_host(&dir, |_| {});
    let imports = format!(
        "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{ mode = \"system\" }}\n\"wasi:clocks/monotonic-clock\" = {{ mode = \"system\" }}\n\"wasi:random/random\" = {{ mode = \"system\" }}"
    );
    load(&mut h, policy("clock-random", &imports, ""), "clock-random");
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let r = h
            .invoke(Call::new("clock-random", "sample", json!({})))
            .await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert!(r.replayable, "{r:?}");
        outputs.push(r.output.clone());
    }
    assert_ne!(outputs[0], outputs[1], "system random differs per run");
    h.shutdown().await.expect("shutdown");
    for e in entries(&dir) {
        assert_eq!(e.entry.evidence.not_replayable, None);
        assert!(!e.entry.evidence.results.is_empty());
    }
    let (results, summary) = replay_all(&dir).await;
    assert_all_matched(&results);
    assert_eq!(summary.matched, 2, "{summary}");
}

#[tokio::test]
async fn an_entry_whose_payloads_are_hash_only_is_reported_not_replayable_with_the_reason() {
    let dir = scratch("replay-hash-only");
    let mut h = recording_host(&dir, |_| {});
    let text = format!(
        "[capability]\nname = \"clock-random\"\ncomponent = \"clock_random.wasm\"\npayloads = \"hash-only\"\n\n[imports]\n{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{ mode = \"system\" }}\n\"wasi:clocks/monotonic-clock\" = {{}}\n\"wasi:random/random\" = {{}}\n"
    );
    let p = Policy::parse(Path::new("policies/clock-random.toml"), &text).expect("policy");
    load(&mut h, p, "clock-random");
    let r = h
        .invoke(Call::new("clock-random", "sample", json!({})))
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(!r.replayable);
    h.shutdown().await.expect("shutdown");
    let e = &entries(&dir)[0];
    let why = e
        .entry
        .evidence
        .not_replayable
        .clone()
        .expect("the entry says why");
    assert!(why.contains("hash-only"), "{why}");
    let (results, summary) = replay_all(&dir).await;
    assert_eq!(results[0].verdict, Verdict::NotReplayable(why.clone()));
    assert!(
        results[0]
            .to_string()
            .contains("not replayable: payloads = \"hash-only\""),
        "{}",
        results[0]
    );
    assert!(summary.ok(), "not replayable is not a failure: {summary}");
    assert_eq!(summary.not_replayable.get(&why), Some(&1));
}

#[tokio::test]
async fn a_bundle_chain_past_the_limit_is_refused_when_built_and_when_verified() {
    let dir = scratch("replay-bundle-limit");
    let mut h = recording_host(&dir, |_| {});
    load(
        &mut h,
        Policy::load(&repo().join("policies/echo.toml")).expect("echo policy"),
        "echo",
    );
    let first = h
        .invoke(Call::new("echo", "echo", json!({"message": "first"})))
        .await;
    for i in 0..3 {
        let r = h
            .invoke(Call::new(
                "echo",
                "echo",
                json!({ "message": i.to_string() }),
            ))
            .await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
    h.shutdown().await.expect("shutdown (final checkpoint)");
    let reader = AuditReader::open(&dir.join("warden.db")).expect("db");
    let artifacts = ArtifactStore::in_data_dir(&dir);
    // The first request's chain runs to the final checkpoint: 4 entries.
    let err = warden_host::bundle::Bundle::build_within(&reader, &artifacts, &first.request_id, 3)
        .expect_err("a chain of 4 is over 3");
    assert!(err.contains("is 4 entries, over 3"), "{err}");
    let bundle =
        warden_host::bundle::Bundle::build_within(&reader, &artifacts, &first.request_id, 4)
            .expect("a chain of 4 is within 4");
    assert_eq!(bundle.chain.len(), 4);
    bundle.verify_within(None, 4).expect("within the limit");
    let err = bundle
        .verify_within(None, 3)
        .expect_err("a bundle from elsewhere with a longer chain");
    assert!(err.contains("the chain holds 4 entries, over 3"), "{err}");
    // The documented limit, as the CLI uses it.
    assert_eq!(warden_host::bundle::MAX_CHAIN, 1_000_000);
    bundle
        .verify(None)
        .expect("far within the documented limit");
}

#[tokio::test]
async fn a_fuel_mismatch_explained_by_the_other_memory_init_cow_setting_says_so() {
    let dir = scratch("replay-cow-hint");
    let mut h = recording_host(&dir, |_| {});
    let recorded_cow = small_pool().memory_init_cow;
    load(
        &mut h,
        Policy::load(&repo().join("policies/pii-redact.toml")).expect("policy"),
        "pii-redact",
    );
    let r = h
        .invoke(Call::new(
            "pii-redact",
            "redact",
            json!({"text": "mail a@b.example"}),
        ))
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    h.shutdown().await.expect("shutdown");
    let evidence = DataDir {
        reader: AuditReader::open(&dir.join("warden.db")).expect("db"),
        artifacts: ArtifactStore::in_data_dir(&dir),
    };
    let mut other = Replayer::new(warden_host::sandbox::SandboxConfig {
        memory_init_cow: !recorded_cow,
        ..small_pool()
    })
    .expect("replayer");
    let e = &entries(&dir)[0];
    let r = other.replay(e, &evidence).await;
    let Verdict::Mismatch(why) = &r.verdict else {
        panic!("fuel differs between the settings: {r}");
    };
    assert_eq!(why.len(), 1, "only fuel differs: {r}");
    assert!(
        why[0].contains(&format!(
            "with --memory-init-cow {recorded_cow} it is {}, as recorded",
            e.entry.usage.fuel
        )),
        "{r}"
    );
    assert!(
        why[0].contains("recorded under the other memory_init_cow setting"),
        "{r}"
    );
}
