//! The transparency log end to end (issue 18): proofs from the CLI and the
//! daemon checked offline with only the public key, a second `warden` as
//! witness catching a truncated and a rewritten log, and the daemon
//! pushing its checkpoints to that witness.

use crate::audit::{
    chain_of_runs, rebuild_tree, rewrite_after_checkpoint, tamper, warden_run_echo,
};
use crate::daemon::{AUDIT, Daemon, echo_deploy, greet};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `warden audit checkpoint` of a data dir, written to `out`.
fn save_checkpoint(data: &Path, out: &Path) -> String {
    let (code, note, err) = warden(&["audit", "checkpoint", "--data-dir", &s(data)]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(out, &note).expect("write note");
    note
}

/// A witness key pair in `dir`: (private key file, `ed25519:<hex>`).
fn witness_key(dir: &Path) -> (PathBuf, String) {
    let (code, _, err) = warden(&["key", "generate", "--name", "w1", "--out", &s(dir)]);
    assert_eq!(code, 0, "{err}");
    let public = std::fs::read_to_string(dir.join("w1.pub")).expect("w1.pub");
    (dir.join("w1.key"), public.trim().to_owned())
}

/// `warden audit witness` once, from files: (exit code, stdout, stderr).
fn witness_once(
    state: &Path,
    wkey: &Path,
    data: &Path,
    note: &Path,
    proof: Option<&Path>,
) -> (i32, String, String) {
    let mut args = vec![
        "audit".to_owned(),
        "witness".into(),
        "--state".into(),
        s(state),
        "--key".into(),
        s(wkey),
        "--name".into(),
        "witness.test/w1".into(),
        "--log-key".into(),
        s(&data.join("host.pub")),
        "--checkpoint".into(),
        s(note),
    ];
    if let Some(p) = proof {
        args.extend(["--proof".into(), s(p)]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    warden(&refs)
}

#[test]
fn a_cli_inclusion_proof_verifies_offline_and_fails_when_any_byte_changes() {
    let data = chain_of_runs("tlog-prove", 5);
    let d = s(&data);
    let (code, proof, err) = warden(&["audit", "prove", "3", "--data-dir", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{proof}"
    );
    assert!(proof.contains("\nindex 2\n"), "{proof}");
    let file = data.join("p3.tlog-proof");
    std::fs::write(&file, &proof).expect("write");
    let pubkey = s(&data.join("host.pub"));
    let (code, out, err) = warden(&["audit", "verify-proof", &s(&file), "--pubkey", &pubkey]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok: entry 3") && out.contains("is leaf 2 of 5"),
        "{out}"
    );
    // Every byte flip is refused (a sample of positions keeps this fast).
    let bytes = proof.into_bytes();
    for i in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        std::fs::write(&file, &bad).expect("write");
        let (code, out, _) = warden(&["audit", "verify-proof", &s(&file), "--pubkey", &pubkey]);
        assert_ne!(code, 0, "byte {i} flipped still verifies: {out}");
    }
    // Consistency from every older size to the newest.
    for old in 0..=5 {
        let (code, proof, err) = warden(&[
            "audit",
            "prove",
            "--consistency",
            &old.to_string(),
            "--data-dir",
            &d,
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::write(&file, &proof).expect("write");
        let (code, out, err) = warden(&["audit", "verify-proof", &s(&file), "--pubkey", &pubkey]);
        assert_eq!(code, 0, "{old}: {out}{err}");
    }
    // `audit verify` checks the tree and every note.
    let (code, out, err) = warden(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("tree: 5 leaves, 5 checkpoint notes checked"),
        "{out}"
    );
}

/// Attack 1: drop the newest entries together with their checkpoints (and
/// the anchor file). The log verifies on its own and the next run signs
/// happily; a witness holding the newer checkpoint refuses, naming both.
#[test]
fn a_witness_holding_a_newer_checkpoint_catches_dropped_entries() {
    let data = chain_of_runs("tlog-truncate", 4);
    let dir = scratch("tlog-truncate-witness");
    let (wkey, _) = witness_key(&dir);
    let state = dir.join("state.json");
    let note4 = dir.join("note4");
    save_checkpoint(&data, &note4);
    let (code, out, err) = witness_once(&state, &wkey, &data, &note4, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\u{2014} witness.test/w1 "), "{out}");
    // The attack.
    let conn = tamper(&data);
    for sql in [
        "DELETE FROM audit_entries WHERE seq > 2",
        "DELETE FROM audit_checkpoints WHERE size > 2",
        "DELETE FROM audit_notes WHERE size > 2",
    ] {
        conn.execute(sql, []).expect("cut");
    }
    rebuild_tree(&conn);
    drop(conn);
    std::fs::remove_file(warden_host::store::anchor_path(&data.join("warden.db")))
        .expect("rm anchor");
    warden_run_echo(&s(&data), "after the cut");
    let note3 = dir.join("note3");
    let text = save_checkpoint(&data, &note3);
    assert!(
        text.contains("\n3\n"),
        "the log re-signed at size 3: {text}"
    );
    let (code, _, err) = witness_once(&state, &wkey, &data, &note3, None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("was truncated"), "{err}");
    assert!(
        err.contains("holds size 4") && err.contains("offers size 3"),
        "{err}"
    );
}

/// Attack 2: rewrite history after an older checkpoint, re-chain it,
/// rebuild the tree and let warden re-sign: the witness refuses.
#[test]
fn a_witness_refuses_history_rewritten_after_an_older_checkpoint_and_re_signed() {
    let data = chain_of_runs("tlog-rewrite", 4);
    let dir = scratch("tlog-rewrite-witness");
    let (wkey, _) = witness_key(&dir);
    let state = dir.join("state.json");
    let note4 = dir.join("note4");
    save_checkpoint(&data, &note4);
    let (code, _, err) = witness_once(&state, &wkey, &data, &note4, None);
    assert_eq!(code, 0, "{err}");
    rewrite_after_checkpoint(&data, 2);
    std::fs::remove_file(warden_host::store::anchor_path(&data.join("warden.db")))
        .expect("rm anchor");
    warden_run_echo(&s(&data), "after the rewrite");
    let note5 = dir.join("note5");
    save_checkpoint(&data, &note5);
    let proof = dir.join("proof");
    let (code, text, err) = warden(&[
        "audit",
        "prove",
        "--consistency",
        "4",
        "--data-dir",
        &s(&data),
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&proof, text).expect("write");
    let (code, _, err) = witness_once(&state, &wkey, &data, &note5, Some(&proof));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("was rewritten"), "{err}");
    assert!(
        err.contains("holds size 4") && err.contains("offered size 5"),
        "{err}"
    );
    // The state still holds size 4.
    let held = std::fs::read_to_string(&state).expect("state");
    assert!(held.contains("\"size\": 4"), "{held}");
}

/// An honest log that only grows is cosigned at each step from files.
#[test]
fn a_witness_cosigns_each_extension_of_an_honest_log() {
    let data = scratch("tlog-honest");
    let d = s(&data);
    warden_run_echo(&d, "one");
    let dir = scratch("tlog-honest-witness");
    let (wkey, wpub) = witness_key(&dir);
    let state = dir.join("state.json");
    let note = dir.join("note");
    save_checkpoint(&data, &note);
    let (code, _, err) = witness_once(&state, &wkey, &data, &note, None);
    assert_eq!(code, 0, "{err}");
    for i in 2..=4 {
        warden_run_echo(&d, &format!("message {i}"));
        save_checkpoint(&data, &note);
        let proof = dir.join("proof");
        let (code, text, err) = warden(&[
            "audit",
            "prove",
            "--consistency",
            &(i - 1).to_string(),
            "--data-dir",
            &d,
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::write(&proof, text).expect("write");
        let (code, out, err) = witness_once(&state, &wkey, &data, &note, Some(&proof));
        assert_eq!(code, 0, "{i}: {err}");
        std::fs::write(dir.join("cosigned"), out).expect("write");
    }
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        &d,
        "--witnesses",
        "1",
        "--witness-key",
        &format!("witness.test/w1={wpub}"),
        "--cosigned",
        &s(&dir.join("cosigned")),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("including the witnessed one"), "{out}");
    // Two required, one given: refused.
    let (code, out, _) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        &d,
        "--witnesses",
        "2",
        "--witness-key",
        &format!("witness.test/w1={wpub}"),
        "--cosigned",
        &s(&dir.join("cosigned")),
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("1 valid cosignature(s)") && out.contains("2 required"),
        "{out}"
    );
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

struct Witness(Child);
impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_daemon_pushes_checkpoints_to_a_second_warden_witness_and_answers_carry_leaf_indexes() {
    let dir = scratch("tlog-push-witness");
    let (wkey, wpub) = witness_key(&dir);
    let port = free_port();
    let deploy = echo_deploy(
        "tlog-push",
        "",
        &format!(
            "[checkpoints]\nevery_entries = 1\n\n[[checkpoints.witnesses]]\n\
             url = \"http://127.0.0.1:{port}\"\nname = \"witness.test/w1\"\nkey = \"{wpub}\"\n"
        ),
    );
    let daemon = Daemon::start(&deploy);
    let data = deploy.join("data");
    let _witness = Witness(
        Command::new(warden_bin())
            .args(["audit", "witness", "--state"])
            .arg(dir.join("state.json"))
            .arg("--key")
            .arg(&wkey)
            .args(["--name", "witness.test/w1", "--log-key"])
            .arg(data.join("host.pub"))
            .args(["--serve", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the witness"),
    );
    let mut last = None;
    for i in 0..3 {
        let answer = daemon.submit(greet(&format!("hello {i}"))).json();
        let audit = &answer["audit"];
        let seq = audit["seq"].as_u64().expect("seq");
        assert_eq!(audit["leaf_index"].as_u64(), Some(seq - 1), "{answer}");
        last = Some((seq, audit["hash"].as_str().expect("hash").to_owned()));
    }
    let (seq, hash) = last.expect("answers");
    // The entry's inclusion proof, fetched as a client would.
    let proof = daemon
        .client(AUDIT)
        .get(&format!("/v1/audit/proof/inclusion?index={}", seq - 1))
        .expect("proof");
    assert_eq!(proof.status, 200, "{}", proof.text());
    let file = dir.join("entry.tlog-proof");
    std::fs::write(&file, proof.text()).expect("write");
    let (code, out, err) = warden(&[
        "audit",
        "verify-proof",
        &s(&file),
        "--pubkey",
        &s(&data.join("host.pub")),
        "--entry-hash",
        &hash,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cp = daemon
        .client(AUDIT)
        .get("/v1/audit/checkpoint")
        .expect("checkpoint");
    assert!(cp.text().starts_with("warden/audit/"), "{}", cp.text());
    let bad = daemon
        .client(AUDIT)
        .get("/v1/audit/proof/inclusion?index=999999")
        .expect("proof");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.text().contains("invalid_proof_request"),
        "{}",
        bad.text()
    );
    // The push reaches the witness; the cosigned note lands beside the db.
    let cosigned = warden_host::server::witness_push::cosigned_path(&data.join("warden.db"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&cosigned)
            && text.contains(&format!("\n{seq}\n"))
            && text.contains("witness.test/w1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cosigned checkpoint at size {seq}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = warden(&[
        "audit",
        "verify",
        "--data-dir",
        &s(&data),
        "--allow-uncovered-tail",
        "--witnesses",
        "1",
        "--witness-key",
        &format!("witness.test/w1={wpub}"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // `warden audit witness --from` fetches the checkpoint and, once it
    // holds one, the consistency proof from the daemon itself.
    let state2 = dir.join("state-from.json");
    let from = || {
        daemon.cli(
            &[
                "audit",
                "witness",
                "--state",
                &s(&state2),
                "--key",
                &s(&wkey),
                "--name",
                "witness.test/w2",
                "--log-key",
                &s(&data.join("host.pub")),
                "--from",
                &daemon.url(),
            ],
            AUDIT,
        )
    };
    let (code, out, err) = from();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\u{2014} witness.test/w2 "), "{out}");
    daemon.submit(greet("one more"));
    let (code, out, err) = from();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("\n{}\n", seq + 1)), "{out}");
    drop(daemon);
}
