//! The daemon and its witness across a restart (issue 18): the checkpoint
//! the daemon serves carries the witness's cosignature, the daemon
//! remembers what size the witness holds (no `409` to relearn it after a
//! restart), and the witness serves what it cosigned to monitors.

use crate::daemon::{AUDIT, Daemon, echo_deploy, greet};
use crate::support::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_host::audit::note::{SignedNote, TreeHead, default_origin, verify_cosignature};
use warden_host::server::client::Client;

fn s(p: &Path) -> String {
    p.display().to_string()
}

struct Witness(Child);
impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `cond` holds, or fails naming `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restarted_daemon_pushes_from_the_size_its_witness_holds_and_serves_the_cosignature() {
    let dir = scratch("tlog-witness-restart");
    let (code, _, err) = warden(&["key", "generate", "--name", "w1", "--out", &s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let wkey = dir.join("w1.key");
    let wpub = std::fs::read_to_string(dir.join("w1.pub"))
        .expect("pub")
        .trim()
        .to_owned();
    let witness_key = warden_host::keys::parse_public_key(&wpub).expect("key");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let deploy = echo_deploy(
        "tlog-witness-restart",
        "",
        &format!(
            "[checkpoints]\nevery_entries = 1\n\n[[checkpoints.witnesses]]\n\
             url = \"http://127.0.0.1:{port}\"\nname = \"witness.test/w1\"\nkey = \"{wpub}\"\n"
        ),
    );
    let daemon = Daemon::start(&deploy);
    let data = deploy.join("data");
    let log_key =
        warden_host::store::hostkey::read_public_key(&data.join("host.pub")).expect("host.pub");
    let witness_log = dir.join("witness.log");
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
            .stderr(Stdio::from(
                std::fs::File::create(&witness_log).expect("log file"),
            ))
            .spawn()
            .expect("spawn the witness"),
    );
    for i in 0..2 {
        daemon.submit(greet(&format!("hello {i}")));
    }
    // The daemon's checkpoint carries the witness's cosignature once the
    // push reached it.
    let cosigned_checkpoint = |d: &Daemon| -> Option<(SignedNote, TreeHead)> {
        let text = d.client(AUDIT).get("/v1/audit/checkpoint").ok()?.text();
        let note = SignedNote::parse(text.as_bytes()).ok()?;
        verify_cosignature(&note, "witness.test/w1", &witness_key).ok()?;
        let head = TreeHead::parse_body(&note.text).ok()?;
        Some((note, head))
    };
    wait_for("a cosigned checkpoint from the daemon", || {
        cosigned_checkpoint(&daemon).is_some_and(|(_, h)| h.size >= 2)
    });
    let (code, out, err) = warden(&["audit", "checkpoint", "--data-dir", &s(&data)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\u{2014} witness.test/w1 "), "{out}");
    // The size the witness holds is recorded beside the database.
    let held = || -> u64 {
        warden_host::store::cosigned::read_push_state(&data.join("warden.db"))
            .expect("push state")
            .held("witness.test/w1", &wpub)
            .unwrap_or(0)
    };
    wait_for("the held size on disk", || held() >= 2);
    // The witness's monitoring side serves what it cosigned.
    let monitor = Client::new(&format!("http://127.0.0.1:{port}"), None).expect("url");
    let logs = monitor.get("/logs").expect("GET /logs").json();
    let origin = default_origin(&log_key);
    let entry = logs["logs"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["origin"] == origin.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{logs}"));
    let id = entry["id"].as_str().expect("id").to_owned();
    let cp = monitor
        .get(&format!("/logs/{id}/checkpoint"))
        .expect("GET checkpoint");
    assert_eq!(cp.status, 200, "{}", cp.text());
    let (note, head) =
        warden_host::audit::note::verify_checkpoint(cp.text().as_bytes(), &log_key, None)
            .expect("the log's signature");
    verify_cosignature(&note, "witness.test/w1", &witness_key).expect("the witness's");
    assert_eq!(Some(head.size), entry["size"].as_u64());
    assert_eq!(monitor.get("/logs/00/checkpoint").expect("GET").status, 404);
    // The read-only C2SP tlog-tiles layout: the checkpoint and a partial
    // level-0 tile that rebuilds its root.
    let tiles = |p: &str| {
        daemon
            .client(AUDIT)
            .get(&format!("/v1/audit/tlog/{p}"))
            .expect("GET")
    };
    let note = tiles("checkpoint").text();
    let (_, head) = warden_host::audit::note::verify_checkpoint(note.as_bytes(), &log_key, None)
        .expect("the tiles checkpoint verifies");
    assert!(head.size > 0 && head.size < 256, "{}", head.size);
    let t = tiles(&format!("tile/0/000.p/{}", head.size));
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.body.len() as u64, 32 * head.size);
    let mut f = warden_host::audit::merkle::Frontier::new();
    for h in t.body.chunks(32) {
        f.append(
            warden_host::digest::Hash256(h.try_into().expect("32")),
            |_| {},
        );
    }
    assert_eq!(
        f.root(),
        head.root,
        "the tile rebuilds the checkpoint's root"
    );
    let beyond = tiles(&format!("tile/0/000.p/{}", head.size + 1));
    assert_eq!(beyond.status, 404, "{}", beyond.text());
    assert_eq!(tiles("tile/0/0001").status, 400);
    // Restart: the pusher starts from what the witness holds.
    let before = held();
    let (code, err) = daemon.terminate();
    assert_eq!(code, 0, "{err}");
    let log_len = std::fs::read_to_string(&witness_log).expect("log").len();
    let daemon = Daemon::start(&deploy);
    daemon.submit(greet("after the restart"));
    let newest = || -> u64 {
        daemon
            .client(AUDIT)
            .get("/v1/audit/checkpoint")
            .ok()
            .and_then(|r| SignedNote::parse(r.text().as_bytes()).ok())
            .and_then(|n| TreeHead::parse_body(&n.text).ok())
            .map_or(0, |h| h.size)
    };
    wait_for("the new checkpoint cosigned", || {
        cosigned_checkpoint(&daemon).is_some_and(|(_, h)| h.size > before && h.size == newest())
    });
    let log = std::fs::read_to_string(&witness_log).expect("log");
    let after = &log[log_len..];
    assert!(
        after.contains(&format!("add-checkpoint old {before} size ")),
        "the first push after the restart proves from {before}:\n{log}"
    );
    assert!(!after.contains("refused"), "no 409 to relearn:\n{log}");
    drop(daemon);
}
