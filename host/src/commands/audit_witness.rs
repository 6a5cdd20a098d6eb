//! `warden audit witness`: witness another warden's audit log (C2SP
//! tlog-witness, docs/audit.md "Witnesses"). Once: fetch (`--from`) or read
//! (`--checkpoint`, `--proof`) the log's newest checkpoint, check it
//! against the witness's state file, cosign and store it. With `--serve`:
//! answer `POST /add-checkpoint` over HTTP for that log, and serve what it
//! cosigned to monitors ([`super::audit_witness_monitor`]), logging each
//! decision to standard error.
//!
//! Exit codes: 0 cosigned (the cosigned note is printed); 3 refused (the
//! reason names the old and new size and root); 2 anything unreadable.
//!
//! This module must never update the state file without holding its lock
//! across the check and the update.

use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use warden_host::audit::note::{SignedNote, TreeHead, default_origin};
use warden_host::audit::proof_file::ConsistencyProof;
use warden_host::audit::witness::{AddCheckpoint, WitnessError, add_checkpoint};
use warden_host::keys::{read_private_key, read_public_key_file};
use warden_host::store::witness_state::{lock_state, read_state, write_state};

/// Exit code when the witness refuses.
const EXIT_REFUSED: u8 = 3;

/// Largest `add-checkpoint` body accepted.
const MAX_BODY: usize = 256 * 1024;

/// `warden audit witness`.
#[derive(Args, Debug)]
pub struct WitnessArgs {
    /// The witness's state file (created on first use).
    #[arg(long)]
    state: PathBuf,
    /// The witness's private key (`warden key generate`).
    #[arg(long)]
    key: PathBuf,
    /// The witness's name (its cosignature key name, e.g. `witness.example/w1`).
    #[arg(long)]
    name: String,
    /// The witnessed log's public key (`host.pub` of that warden).
    #[arg(long)]
    log_key: PathBuf,
    /// The log's origin (default: derived from its key, `warden/audit/<key id>`).
    #[arg(long)]
    origin: Option<String>,
    /// Fetch the newest checkpoint and the consistency proof from this
    /// daemon (`GET /v1/audit/checkpoint`, `/v1/audit/proof/consistency`).
    #[arg(long, conflicts_with_all = ["checkpoint", "serve"])]
    from: Option<String>,
    /// A bearer-token file for `--from` (else `WARDEN_TOKEN`).
    #[arg(long, requires = "from")]
    token_file: Option<PathBuf>,
    /// A checkpoint note file to witness.
    #[arg(long, conflicts_with = "serve")]
    checkpoint: Option<PathBuf>,
    /// A consistency proof file (`warden audit prove --consistency`) from
    /// the witnessed size to `--checkpoint`.
    #[arg(long, requires = "checkpoint")]
    proof: Option<PathBuf>,
    /// Serve `POST /add-checkpoint` on this address instead.
    #[arg(long)]
    serve: Option<SocketAddr>,
}

struct Witness {
    state: PathBuf,
    key: ed25519_dalek::SigningKey,
    name: String,
    log_key: ed25519_dalek::VerifyingKey,
    origin: String,
}

impl Witness {
    /// Checks and (if it passes) records `req` under the state lock.
    fn add(&self, req: &AddCheckpoint) -> anyhow::Result<Result<String, WitnessError>> {
        let _lock = lock_state(&self.state)?;
        let mut state = read_state(&self.state)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match add_checkpoint(
            state.log(&self.origin),
            &self.origin,
            &self.log_key,
            req,
            &self.name,
            &self.key,
            now,
        ) {
            Ok((log, line)) => {
                state.set(log);
                write_state(&self.state, &state)?;
                Ok(Ok(line.line()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    fn held_size(&self) -> anyhow::Result<u64> {
        Ok(read_state(&self.state)?
            .log(&self.origin)
            .map_or(0, |l| l.size))
    }
}

/// Runs `warden audit witness`.
pub fn run(a: WitnessArgs) -> anyhow::Result<ExitCode> {
    let log_key = read_public_key_file(&a.log_key)
        .with_context(|| format!("reading the log key {}", a.log_key.display()))?;
    let w = Witness {
        key: read_private_key(&a.key)
            .with_context(|| format!("reading the witness key {}", a.key.display()))?,
        origin: a.origin.clone().unwrap_or_else(|| default_origin(&log_key)),
        name: a.name.clone(),
        log_key,
        state: a.state.clone(),
    };
    if let Some(addr) = a.serve {
        return serve(w, addr);
    }
    let (checkpoint, proof) = match (&a.from, &a.checkpoint) {
        (Some(url), _) => fetch(&w, url, a.token_file.as_deref())?,
        (None, Some(file)) => {
            let note = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let proof = match &a.proof {
                Some(p) => Some(ConsistencyProof::parse(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )?),
                None => None,
            };
            (note, proof)
        }
        (None, None) => anyhow::bail!("give --from URL, --checkpoint FILE or --serve ADDR"),
    };
    let req = AddCheckpoint {
        old_size: proof.as_ref().map_or(w.held_size()?, |p| p.old_size),
        proof: proof.map(|p| p.hashes).unwrap_or_default(),
        checkpoint,
    };
    match w.add(&req)? {
        Ok(line) => {
            print!("{}{line}", req.checkpoint);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("warden: {e}");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

/// The log's newest checkpoint and, when the witness holds an older one,
/// the consistency proof from it.
fn fetch(
    w: &Witness,
    url: &str,
    token_file: Option<&Path>,
) -> anyhow::Result<(String, Option<ConsistencyProof>)> {
    let token = match token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("WARDEN_TOKEN").ok(),
    };
    let client = warden_host::server::client::Client::new(url, token)?;
    let resp = client.get("/v1/audit/checkpoint")?;
    anyhow::ensure!(
        resp.status == 200,
        "GET {url}/v1/audit/checkpoint: {} {}",
        resp.status,
        resp.text()
    );
    let note = resp.text();
    let head = TreeHead::parse_body(&SignedNote::parse(note.as_bytes())?.text)?;
    let held = w.held_size()?;
    if held == 0 || head.size <= held {
        return Ok((note, None));
    }
    let path = format!("/v1/audit/proof/consistency?old={held}&new={}", head.size);
    let resp = client.get(&path)?;
    anyhow::ensure!(
        resp.status == 200,
        "GET {url}{path}: {} {}",
        resp.status,
        resp.text()
    );
    let proof = ConsistencyProof::parse(&resp.text())?;
    Ok((note, Some(proof)))
}

/// `--serve`: the C2SP tlog-witness `add-checkpoint` endpoint.
fn serve(w: Witness, addr: SocketAddr) -> anyhow::Result<ExitCode> {
    use axum::body::Bytes;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let w = Arc::new(w);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "warden: witness {} listening on {}",
            w.name,
            listener.local_addr()?
        );
        let monitor = super::audit_witness_monitor::routes(w.state.clone());
        let app = axum::Router::new().merge(monitor).route(
            "/add-checkpoint",
            axum::routing::post(move |body: Bytes| {
                let w = w.clone();
                async move {
                    if body.len() > MAX_BODY {
                        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n".to_owned())
                            .into_response();
                    }
                    let decided = tokio::task::spawn_blocking(move || {
                        let req = AddCheckpoint::parse(&body)?;
                        let decided = w
                            .add(&req)
                            .map_err(|e| WitnessError::Malformed(format!("{e:#}")))?;
                        log_decision(&req, &decided);
                        decided
                    })
                    .await;
                    match decided {
                        Ok(Ok(line)) => (StatusCode::OK, line).into_response(),
                        Ok(Err(e)) => {
                            let status =
                                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                            match &e {
                                WitnessError::OldSizeMismatch { held, .. } => (
                                    status,
                                    [(header::CONTENT_TYPE, "text/x.tlog.size")],
                                    format!("{held}\n"),
                                )
                                    .into_response(),
                                WitnessError::Truncated(sides) => (
                                    status,
                                    [(header::CONTENT_TYPE, "text/x.tlog.size")],
                                    format!("{}\n", sides.old_size),
                                )
                                    .into_response(),
                                _ => (status, format!("{e}\n")).into_response(),
                            }
                        }
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
                        }
                    }
                }
            }),
        );
        axum::serve(listener, app).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// One line on standard error per `add-checkpoint` decision (the served
/// witness's log).
fn log_decision(req: &AddCheckpoint, decided: &Result<String, WitnessError>) {
    let size = SignedNote::parse(req.checkpoint.as_bytes())
        .ok()
        .and_then(|n| TreeHead::parse_body(&n.text).ok())
        .map_or_else(|| "?".to_owned(), |h| h.size.to_string());
    match decided {
        Ok(_) => eprintln!(
            "warden: add-checkpoint old {} size {size}: cosigned",
            req.old_size
        ),
        Err(e) => eprintln!(
            "warden: add-checkpoint old {} size {size}: refused ({}): {e}",
            req.old_size,
            e.status()
        ),
    }
}
