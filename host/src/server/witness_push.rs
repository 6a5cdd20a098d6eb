//! Pushes the audit log's checkpoint notes to the configured witnesses
//! (`[[checkpoints.witnesses]]`, C2SP tlog-witness `add-checkpoint`) and
//! keeps the newest note with every cosignature obtained for it in
//! `<db>.cosigned`, and the size each witness holds in `<db>.witnesses`
//! (both through [`crate::store::cosigned`]; docs/audit.md "Witnesses").
//!
//! One background task polls the newest note; for each witness behind it,
//! it sends `old <size the witness holds>`, the consistency proof from
//! there and the note. The sizes are loaded at start, so a restarted
//! daemon proves from where each witness is; a `409` still tells the size
//! a witness holds when it differs (the next round proves from it); other
//! refusals are logged with the witness's reason. A cosignature is kept
//! only if it verifies with the configured witness key.
//!
//! This module must never run SQLite or blocking HTTP on an async worker
//! (both go through the blocking pool), and never write a cosigned note
//! whose log signature or cosignatures it did not verify.

use super::Daemon;
use super::config::WitnessConfig;
use crate::audit::note::{NoteSignature, SignedNote, verify_checkpoint, verify_cosignature};
use crate::audit::witness::AddCheckpoint;
use crate::server::client::Client;
use crate::store::cosigned::{
    HeldSize, PushState, read_cosigned, read_push_state, write_cosigned, write_push_state,
};
use crate::store::hostkey::format_public_key;
use ed25519_dalek::VerifyingKey;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the newest note is compared with what witnesses hold.
const PUSH_EVERY: Duration = Duration::from_millis(500);

pub use crate::store::cosigned::cosigned_path;

struct Target {
    url: String,
    name: String,
    key: VerifyingKey,
    /// Size the witness holds, as far as we know.
    held: u64,
}

/// Parses the witnesses' keys; each bad one is a startup problem.
pub(super) fn targets(
    config: &[WitnessConfig],
) -> Result<Vec<(String, String, VerifyingKey)>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for w in config {
        match crate::keys::parse_public_key(&w.key) {
            Ok(k) if Client::new(&w.url, None).is_ok() => {
                out.push((w.url.clone(), w.name.clone(), k))
            }
            Ok(_) => errors.push(format!(
                "[[checkpoints.witnesses]] {}: url {:?} is not http://host:port",
                w.name, w.url
            )),
            Err(e) => errors.push(format!("[[checkpoints.witnesses]] {}: key: {e}", w.name)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Starts the push task.
pub(super) fn spawn(daemon: Arc<Daemon>, witnesses: Vec<(String, String, VerifyingKey)>) {
    if witnesses.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let d = daemon.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&d, witnesses)).await;
        let (mut targets, mut cosigned) = match loaded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("witness push task failed: {e}");
                return;
            }
        };
        let mut tick = tokio::time::interval(PUSH_EVERY);
        loop {
            tick.tick().await;
            if daemon.draining.load(Ordering::SeqCst) {
                return;
            }
            let d = daemon.clone();
            let taken = std::mem::take(&mut targets);
            let prev = cosigned.take();
            let round = tokio::task::spawn_blocking(move || push_round(&d, taken, prev)).await;
            match round {
                Ok((t, c)) => {
                    targets = t;
                    cosigned = c;
                }
                Err(e) => {
                    tracing::error!("witness push task failed: {e}");
                    return;
                }
            }
        }
    });
}

/// The targets with the sizes recorded in `<db>.witnesses`, and the
/// cosigned note kept in `<db>.cosigned` (on the blocking pool).
fn load(
    d: &Daemon,
    witnesses: Vec<(String, String, VerifyingKey)>,
) -> (Vec<Target>, Option<SignedNote>) {
    let log = d.host.audit();
    let state = match log.map(|l| read_push_state(l.path())).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("witness push: {e}; relearning what each witness holds");
            PushState::default()
        }
    };
    let cosigned = log.and_then(|l| match read_cosigned(l.path(), &l.public_key()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("witness push: {e}; starting without it");
            None
        }
    });
    let targets = witnesses
        .into_iter()
        .map(|(url, name, key)| Target {
            held: state.held(&name, &format_public_key(&key)).unwrap_or(0),
            url,
            name,
            key,
        })
        .collect();
    (targets, cosigned)
}

/// Records every target's held size in `<db>.witnesses`.
fn save(db: &Path, targets: &[Target]) {
    let state = PushState {
        witnesses: targets
            .iter()
            .map(|t| HeldSize {
                name: t.name.clone(),
                key: format_public_key(&t.key),
                size: t.held,
            })
            .collect(),
        ..PushState::default()
    };
    if let Err(e) = write_push_state(db, &state) {
        tracing::error!("witness push: cannot record the witnesses' sizes: {e}");
    }
}

/// One round, on the blocking pool: push the newest note to every witness
/// behind it. Returns the targets and the cosigned note.
fn push_round(
    d: &Daemon,
    mut targets: Vec<Target>,
    mut cosigned: Option<SignedNote>,
) -> (Vec<Target>, Option<SignedNote>) {
    let Some(log) = d.host.audit() else {
        return (targets, cosigned);
    };
    let note = match log.latest_note() {
        Ok(Some((_, _, note))) => note,
        Ok(None) => return (targets, cosigned),
        Err(e) => {
            tracing::warn!("witness push: cannot read the newest checkpoint: {e}");
            return (targets, cosigned);
        }
    };
    let key = log.public_key();
    let Ok((parsed, head)) = verify_checkpoint(note.as_bytes(), &key, None) else {
        tracing::error!(
            "witness push: the newest checkpoint note does not verify with the host key"
        );
        return (targets, cosigned);
    };
    if cosigned.as_ref().is_none_or(|c| c.text != parsed.text) {
        cosigned = Some(parsed.clone());
    }
    let mut changed = false;
    let held_before: Vec<u64> = targets.iter().map(|t| t.held).collect();
    for t in &mut targets {
        if t.held == head.size && t.held != 0 {
            continue;
        }
        if t.held > head.size {
            // Recorded above the log's newest checkpoint (a restored
            // database?): ask again from 0; the witness's 409 says what it
            // holds, and a size above ours is logged as an error below.
            t.held = 0;
        }
        if cosigned
            .as_ref()
            .is_some_and(|c| verify_cosignature(c, &t.name, &t.key).is_ok())
        {
            continue;
        }
        let proof = if t.held == 0 {
            Vec::new()
        } else {
            match log.consistency_proof(t.held, Some(head.size)) {
                Ok(p) => p.hashes,
                Err(e) => {
                    tracing::warn!(
                        "witness push to {}: no proof from size {}: {e}",
                        t.name,
                        t.held
                    );
                    continue;
                }
            }
        };
        let body = AddCheckpoint {
            old_size: t.held,
            proof,
            checkpoint: note.clone(),
        }
        .to_text();
        let resp = Client::new(&t.url, None).and_then(|c| {
            c.with_timeout(Duration::from_secs(10)).send(
                "POST",
                "/add-checkpoint",
                Some(body.as_bytes()),
                &[("content-type", "text/plain")],
            )
        });
        match resp {
            Ok(r) if r.status == 200 => {
                let mut with = parsed.clone();
                for line in r.text().lines() {
                    if let Some(sig) = parse_line(line) {
                        with.signatures.push(sig);
                    }
                }
                match verify_cosignature(&with, &t.name, &t.key) {
                    Ok(_) => {
                        t.held = head.size;
                        if let Some(c) = cosigned.as_mut() {
                            c.signatures
                                .extend(with.signatures.into_iter().filter(|s| s.name == t.name));
                        }
                        changed = true;
                    }
                    Err(e) => tracing::warn!("witness {}: its answer does not verify: {e}", t.name),
                }
            }
            Ok(r) if r.status == 409 => match r.text().trim().parse::<u64>() {
                Ok(size) if size > head.size => {
                    tracing::error!(
                        "witness {} holds size {size}, more than the log's newest checkpoint \
                         ({}): the log was truncated or rewritten",
                        t.name,
                        head.size
                    );
                }
                Ok(size) => t.held = size,
                Err(_) => tracing::warn!("witness {}: 409 without a size", t.name),
            },
            Ok(r) => tracing::warn!(
                "witness {} refused size {}: {} {}",
                t.name,
                head.size,
                r.status,
                r.text().trim()
            ),
            Err(e) => tracing::warn!("witness {} unreachable: {e}", t.name),
        }
    }
    if changed
        && let Some(c) = &cosigned
        && let Err(e) = write_cosigned(log.path(), c)
    {
        tracing::error!("witness push: cannot keep the cosigned checkpoint: {e}");
    }
    if targets.iter().map(|t| t.held).ne(held_before) {
        save(log.path(), &targets);
    }
    (targets, cosigned)
}

fn parse_line(line: &str) -> Option<NoteSignature> {
    let text = format!("x\n\n{line}\n");
    SignedNote::parse(text.as_bytes())
        .ok()
        .and_then(|n| n.signatures.into_iter().next())
}
