//! The `warden serve` daemon: HTTP API (axum on tokio), authentication,
//! admission (routing, idempotency, concurrency, breakers, retries), reload,
//! metrics and graceful shutdown.
//!
//! This folder turns HTTP into [`crate::Call`]s and answers into responses,
//! and runs the daemon's stages of the request path ([`crate::pipeline`]
//! draws it: submit.rs sequences them; idempotency.rs, approvals.rs and
//! attempts.rs are the daemon's own stages). It must never run guest code
//! itself (that is [`crate::Host`]), decide routes (that is the route
//! table) nor append audit entries other than through the host's
//! [`Recorder`](crate::pipeline::audit::Recorder).

mod api;
pub mod approvals;
mod attempts;
pub mod auth;
pub mod client;
pub mod config;
mod connections;
mod deployment;
mod errors;
mod idempotency;
pub mod mcp;
pub mod mcp_config;
mod metrics;
mod pinned;
mod protect;
mod run_approvals;
mod state;
mod submit;
mod transparency;
pub mod witness_push;
mod workflow_metrics;
mod workflows;

pub use config::{DaemonConfig, Role};
pub use deployment::Deployment;
pub use submit::{SubmitBody, Transport};

use crate::audit::EventKind;
use crate::sandbox::SandboxConfig;
use crate::store::CheckpointPolicy;
use crate::{Host, HostConfig, Outcome};
use auth::Principals;
use metrics::Metrics;
use protect::Protection;
use serde_json::{Value, json};
use state::StateStore;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Why the daemon could not start (or stopped uncleanly).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    /// The host could not start (engine, host key, audit store).
    #[error("{0}")]
    Host(#[from] crate::HostError),
    /// The working-state database could not be opened.
    #[error("state store: {0}")]
    State(#[from] crate::store::StoreError),
    /// Policies, signatures, components or routes do not validate.
    #[error("refusing to start: {} problem(s):\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Options of `warden serve` beyond the config file.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides the config's `listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// Written with the bound address (`127.0.0.1:PORT`) once listening.
    pub ready_file: Option<PathBuf>,
}

/// The running daemon's shared state.
pub struct Daemon {
    host: Arc<Host>,
    config: DaemonConfig,
    principals: Principals,
    deployment: RwLock<Arc<Deployment>>,
    reload_lock: tokio::sync::Mutex<()>,
    state: StateStore,
    /// Idempotency keys being executed now: `(principal, key) -> done`.
    pending: Mutex<HashMap<(String, String), watch::Receiver<bool>>>,
    pool: Arc<Semaphore>,
    /// Requests holding a body (`[http] max_open_requests`), taken before
    /// the body is read.
    open_requests: Arc<Semaphore>,
    protection: Mutex<BTreeMap<String, Arc<Protection>>>,
    metrics: Metrics,
    faults: Mutex<BTreeMap<String, u32>>,
    draining: AtomicBool,
    active: watch::Sender<usize>,
    /// Serializes decisions on held requests.
    approvals_lock: tokio::sync::Mutex<()>,
    /// Bumped whenever a held request ends (wakes long-polls).
    changes: watch::Sender<u64>,
    /// The workflow run journal (in the audit database, `warden.db`).
    runs: Arc<crate::store::SqliteRunStore>,
    /// Runs a task drives (or an operator acts on) now: one at a time each.
    driving: Mutex<std::collections::BTreeSet<String>>,
    /// Cancels asked for while a task drives the run: applied by that task
    /// at the next step boundary (lock `driving` first, then this).
    cancel_requests: Mutex<BTreeMap<String, workflows::CancelRequest>>,
    /// Each unfinished run's cost so far, for the workflow metrics.
    run_costs: workflow_metrics::RunCosts,
    /// Pinned versions of capabilities no longer in the deployment.
    pinned: pinned::PinnedCache,
}

/// Counts a request as active until dropped (graceful shutdown drains them).
struct Active<'a>(&'a watch::Sender<usize>);

impl<'a> Active<'a> {
    fn enter(tx: &'a watch::Sender<usize>) -> Active<'a> {
        tx.send_modify(|n| *n += 1);
        Active(tx)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The host the daemon runs on. Without `data` (for `--check`) nothing in
/// the data directory is used: no audit store, key, cache or KV file.
fn host_config(config: &DaemonConfig, data: bool) -> HostConfig {
    HostConfig {
        sandbox: SandboxConfig {
            max_concurrent_instances: config.limits.max_in_flight,
            memory_init_cow: config.engine.memory_init_cow,
            ..SandboxConfig::default()
        },
        trust: None,
        allow_unsigned: config.allow_unsigned,
        data_dir: data.then(|| config.data_dir.clone()),
        checkpoints: CheckpointPolicy {
            every_entries: config.checkpoints.every_entries,
            every: config.checkpoints.every.get(),
        },
        host_key: if data { config.host_key.clone() } else { None },
        cache_dir: None,
        models: config.models.clone(),
        hosts: config.hosts.clone(),
    }
}

impl Daemon {
    /// Validates `config` and everything it names (trust, policies,
    /// signatures, components, routes, approvers) without touching the data
    /// directory: no audit store, no lock, no key, no cache is opened or
    /// created, so it runs beside a daemon serving the same deployment.
    /// Components are compiled in memory.
    pub fn check(config: &DaemonConfig) -> Result<(), ServeError> {
        let host = Host::new(host_config(config, false))?;
        Deployment::load(&host, config)
            .map(|_| ())
            .map_err(ServeError::Invalid)
    }

    /// Opens the host and state store and validates the whole deployment.
    /// Nothing listens yet.
    pub fn start(config: DaemonConfig) -> Result<Arc<Daemon>, ServeError> {
        let host = Host::new(host_config(&config, true))?;
        let deployment = match Deployment::load(&host, &config) {
            Ok(d) => d,
            // Dropping the host closes the audit log (final checkpoint).
            Err(errors) => return Err(ServeError::Invalid(errors)),
        };
        let state = StateStore::open(&config.data_dir)?;
        let runs = Arc::new(crate::store::SqliteRunStore::for_host(
            &host,
            &config.data_dir,
        )?);
        let (active, _) = watch::channel(0usize);
        Ok(Arc::new(Daemon {
            principals: Principals::new(&config.principals),
            pool: Arc::new(Semaphore::new(config.limits.max_in_flight as usize)),
            open_requests: Arc::new(Semaphore::new(
                usize::try_from(config.http.max_open_requests)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            )),
            faults: Mutex::new(config.testing.transient_faults.clone()),
            host: Arc::new(host),
            deployment: RwLock::new(Arc::new(deployment)),
            reload_lock: tokio::sync::Mutex::new(()),
            state,
            pending: Mutex::new(HashMap::new()),
            protection: Mutex::new(BTreeMap::new()),
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            active,
            approvals_lock: tokio::sync::Mutex::new(()),
            changes: watch::channel(0u64).0,
            runs,
            driving: Mutex::new(std::collections::BTreeSet::new()),
            cancel_requests: Mutex::new(BTreeMap::new()),
            run_costs: workflow_metrics::RunCosts::default(),
            pinned: pinned::PinnedCache::default(),
            config,
        }))
    }

    /// The deployment new requests use.
    pub fn deployment(&self) -> Arc<Deployment> {
        self.deployment
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The protection (concurrency slots, breaker) of a capability.
    fn protection(&self, name: &str) -> Arc<Protection> {
        let mut map = self
            .protection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(name.to_string())
            .or_insert_with(|| {
                let (concurrency, failures, cool_down) = self.config.capability_limits(name);
                Arc::new(Protection::new(concurrency, failures, cool_down))
            })
            .clone()
    }

    /// Re-reads policies, routes, trust and components; swaps them in only
    /// if the whole new set validates. Audited either way.
    pub async fn reload(
        self: &Arc<Self>,
        principal: &str,
        via: &str,
    ) -> Result<Value, Vec<String>> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let this = self.clone();
        let loaded =
            tokio::task::spawn_blocking(move || Deployment::load(&this.host, &this.config))
                .await
                .unwrap_or_else(|e| Err(vec![format!("reload task failed: {e}")]));
        let old = self.deployment().fingerprint();
        let (outcome, detail, result) = match loaded {
            Ok(new) => {
                let fingerprint = new.fingerprint();
                *self
                    .deployment
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new);
                let changes = Deployment::changes(&old, &fingerprint);
                let detail = json!({
                    "result": "applied", "old": old, "new": fingerprint, "changes": changes,
                });
                (Outcome::Ok, detail.clone(), Ok(detail))
            }
            Err(errors) => {
                let detail = json!({"result": "rejected", "old": old, "errors": errors});
                (Outcome::InvalidInput, detail, Err(errors))
            }
        };
        self.metrics.add(
            "warden_reloads_total",
            metrics::labels(&[(
                "result",
                if result.is_ok() {
                    "applied"
                } else {
                    "rejected"
                },
            )]),
            1,
        );
        let recorder = self.host.recorder();
        let entry = recorder.event_entry(EventKind::Reload, principal, via, outcome, &detail);
        if let Err(e) = recorder.event(entry).await {
            tracing::error!("reload audit entry failed: {e}");
        }
        // After the reload's own entry: held requests bound to what it
        // changed end now, each with its entry, instead of listing as
        // pending until someone decides.
        match result {
            Ok(mut detail) => {
                detail["held_voided"] = json!(self.void_stale_held().await);
                Ok(detail)
            }
            Err(errors) => Err(errors),
        }
    }

    /// Stops admitting requests, waits for active ones up to `deadline`,
    /// then writes the final checkpoint. Returns whether everything drained.
    pub async fn drain_and_close(&self, deadline: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        let mut rx = self.active.subscribe();
        let drained = tokio::time::timeout(deadline, rx.wait_for(|n| *n == 0))
            .await
            .is_ok();
        if let Some(log) = self.host.audit().cloned()
            && let Err(e) = log.close().await
        {
            tracing::error!("final checkpoint failed: {e}");
        }
        drained
    }
}

/// Runs the daemon until SIGTERM/SIGINT: validates, listens, serves, drains.
pub async fn serve(config: DaemonConfig, options: ServeOptions) -> Result<(), ServeError> {
    // Installed before anything else, so before readiness is announced: a
    // SIGTERM that arrives right after the ready file appears must drain and
    // checkpoint, not kill the process with the default action.
    // SIGHUP too: one arriving while the deployment is still loading is
    // kept and applied as a reload once the daemon is up, instead of
    // killing it with the default action.
    let hup = hup_signal();
    let term = term_signal();
    serve_with(config, options, wait_for_term(term), hup).await
}

/// [`serve`] until `shutdown` completes instead of a signal (for embedders
/// running the daemon inside their own process, and the demo): validates,
/// listens, serves, then drains and writes the final checkpoint.
pub async fn serve_until(
    config: DaemonConfig,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(config, options, shutdown, hup_signal()).await
}

/// [`serve`] with a `session` beside the HTTP API: the daemon stops when
/// the session ends, or on SIGTERM/SIGINT.
pub(crate) async fn serve_session(
    config: DaemonConfig,
    options: ServeOptions,
    session: Session,
) -> Result<(), ServeError> {
    let hup = hup_signal();
    let term = term_signal();
    serve_with_session(config, options, wait_for_term(term), hup, Some(session)).await
}

/// A session the daemon serves besides its HTTP API once it listens (the
/// MCP stdio session of `warden mcp`); the daemon drains and stops when it
/// ends.
pub(crate) type Session = Box<
    dyn FnOnce(Arc<Daemon>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send,
>;

async fn serve_with(
    config: DaemonConfig,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    hup: Option<tokio::signal::unix::Signal>,
) -> Result<(), ServeError> {
    serve_with_session(config, options, shutdown, hup, None).await
}

/// [`serve_with`], also running `session` (if any) once listening.
async fn serve_with_session(
    config: DaemonConfig,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    hup: Option<tokio::signal::unix::Signal>,
    session: Option<Session>,
) -> Result<(), ServeError> {
    let listen = options.listen.unwrap_or(config.listen);
    let drain = config.limits.drain_timeout.get();
    let limits = connections::ConnectionLimits::of(&config);
    let witnesses =
        witness_push::targets(&config.checkpoints.witnesses).map_err(ServeError::Invalid)?;
    let daemon = tokio::task::block_in_place(|| Daemon::start(config))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    if let Some(hup) = hup {
        spawn_sighup(daemon.clone(), hup);
    }
    daemon.sweep_approvals(true).await;
    spawn_approval_sweeper(daemon.clone());
    daemon.resume_runs().await;
    witness_push::spawn(daemon.clone(), witnesses);
    eprintln!("warden: listening on http://{addr}");
    if let Some(path) = &options.ready_file {
        std::fs::write(path, addr.to_string())?;
    }
    // MCP over streamable HTTP beside the API (docs/mcp.md).
    let app = api::router(daemon.clone()).route(
        "/mcp",
        mcp::http::route(daemon.clone()).with_state(daemon.clone()),
    );
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let session_ended = session.map(|s| tokio::spawn(s(daemon.clone())));
    let shutdown = {
        let daemon = daemon.clone();
        async move {
            match session_ended {
                Some(ended) => {
                    tokio::select! {
                        _ = shutdown => {}
                        _ = ended => {}
                    }
                }
                None => shutdown.await,
            }
            tracing::info!("shutdown requested: draining");
            daemon.draining.store(true, Ordering::SeqCst);
            let _ = stop_tx.send(true);
        }
    };
    let server = tokio::spawn(connections::serve(
        listener,
        app,
        daemon.clone(),
        limits,
        stop_rx.clone(),
        shutdown,
    ));
    let _ = stop_rx.wait_for(|s| *s).await;
    let started = std::time::Instant::now();
    // Connections finish their current request; keep-alive ones are closed.
    if tokio::time::timeout(drain, server).await.is_err() {
        tracing::warn!("drain deadline passed with connections still open");
    }
    let left = drain.saturating_sub(started.elapsed());
    let drained = daemon.drain_and_close(left).await;
    eprintln!(
        "warden: stopped ({}; final checkpoint written)",
        if drained {
            "drained"
        } else {
            "drain deadline passed"
        }
    );
    Ok(())
}

/// Installs the SIGTERM handler now (`None` if the OS refuses).
fn term_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::terminate())
        .map_err(|e| tracing::error!("cannot install SIGTERM handler: {e}"))
        .ok()
}

async fn wait_for_term(term: Option<tokio::signal::unix::Signal>) {
    match term {
        Some(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// How often pending approvals are checked for expiry.
const APPROVAL_SWEEP: Duration = Duration::from_secs(1);

fn spawn_approval_sweeper(daemon: Arc<Daemon>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(APPROVAL_SWEEP);
        loop {
            tick.tick().await;
            if daemon.draining.load(Ordering::SeqCst) {
                return;
            }
            daemon.sweep_approvals(false).await;
        }
    });
}

/// Installs the SIGHUP handler now (`None` if the OS refuses).
fn hup_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .map_err(|e| {
            tracing::error!("cannot install SIGHUP handler; reload only through the API: {e}")
        })
        .ok()
}

/// One line saying what a reload changed (from its audit detail).
fn reload_summary(detail: &Value) -> String {
    let mut parts: Vec<String> = detail["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    if parts.is_empty() {
        parts.push("nothing changed".to_owned());
    }
    match detail["held_voided"].as_u64() {
        Some(0) | None => {}
        Some(n) => parts.push(format!(
            "{n} held request(s) voided (their capability changed; they end approval_denied)"
        )),
    }
    parts.join("; ")
}

fn spawn_sighup(daemon: Arc<Daemon>, mut hup: tokio::signal::unix::Signal) {
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match daemon.reload("signal:SIGHUP", "signal").await {
                Ok(detail) => eprintln!(
                    "warden: reload (SIGHUP) applied: {}",
                    reload_summary(&detail)
                ),
                Err(errors) => eprintln!(
                    "warden: reload (SIGHUP) rejected, nothing changed:\n{}",
                    errors.join("\n")
                ),
            }
        }
    });
}
