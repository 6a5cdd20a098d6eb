//! The embedding API: a [`Host`] holds loaded capabilities and runs
//! invocations. The `warden` CLI and daemon are thin shells over it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use warden_host::{Host, HostConfig, Call};
//! let config = HostConfig { allow_unsigned: true, ..HostConfig::default() };
//! let mut host = Host::new(config)?;
//! host.load_files("policies/echo.toml".as_ref(), "echo.wasm".as_ref())?;
//! let record = host.invoke(Call::new("echo", "echo", serde_json::json!({"message": "hi"}))).await;
//! println!("{} {:?}", record.outcome, record.output);
//! # Ok(()) }
//! ```
//!
//! Load path: policy validated -> signature checked against the trust store
//! (trusted *for this capability*, digest pin, signer pin) -> compiled (or
//! taken from the integrity-checked precompiled cache) -> imports checked
//! against grants -> linker built from grants only -> `InstancePre`.
//!
//! Request path: [`crate::pipeline`] (admit -> route -> gate -> execute ->
//! audit); `Host` holds what its stages need and runs them in order.

use crate::cache::{CacheError, CacheOutcome, CompiledCache};
use crate::capability::Capability;
use crate::component::Shape;
use crate::interfaces::HostServices;
use crate::interfaces::kv::{KvError, KvStore};
use crate::invocation::{Call, InvocationRecord};
use crate::keys::KeyError;
use crate::outcome::Outcome;
use crate::pipeline::audit::Recorder;
use crate::pipeline::execute::Executor;
use crate::pipeline::gate::{self, Gate};
use crate::pipeline::route::{self, Routed};
use crate::pipeline::{self, admit};
use crate::policy::{Policy, PolicyErrors};
use crate::sandbox::{self, LinkError, Sandbox, SandboxConfig};
use crate::signing::{self, Refusal, SignerPins, TrustStore};
use crate::store::hostkey;
use crate::store::{ArtifactStore, AuditLog, CheckpointPolicy, StoreError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Component;

/// Host-wide settings.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Engine settings (pool size, epoch tick, fuel metering).
    pub sandbox: SandboxConfig,
    /// Which keys may sign which capabilities. By default none: then only
    /// `allow_unsigned` lets anything load.
    pub trust: Option<TrustStore>,
    /// Development switch: load components without a trusted signature. By
    /// default off. Recorded with every invocation (`unsigned_allowed`).
    ///
    /// # Security
    /// With it on, anyone who can write the components directory chooses
    /// the code that runs. Never enable it in production.
    pub allow_unsigned: bool,
    /// Data directory: the audit store (`warden.db`), the KV store (`kv.db`), the host key
    /// (`host.key`/`host.pub`) and the precompiled cache (`cache/`). By
    /// default none: no audit, no cache (tests and simple embedders).
    pub data_dir: Option<PathBuf>,
    /// When to sign audit checkpoints. By default every 10,000 entries or 60s.
    pub checkpoints: CheckpointPolicy,
    /// The host key signing audit checkpoints. By default
    /// `<data_dir>/host.key` (created on first start).
    pub host_key: Option<PathBuf>,
    /// Precompiled cache directory, when it should not be `<data_dir>/cache`
    /// (or when there is no data directory). By default none.
    pub cache_dir: Option<PathBuf>,
    /// Static name resolution for outbound HTTP and model calls, consulted
    /// before DNS (`name -> addresses`). By default empty.
    ///
    /// # Security
    /// An entry decides where a granted name connects; resolved addresses
    /// are still checked (internal ranges need a pattern that names them).
    pub hosts: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Model backends `warden:host/model` grants may name (`[models.<name>]`
    /// in `warden.toml`). By default none.
    pub models: BTreeMap<String, crate::interfaces::model::ModelBackend>,
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime rejected the engine configuration.
    #[error("engine: {0}")]
    Engine(String),
    /// The host key could not be read or created.
    #[error("host key: {0}")]
    Key(#[from] KeyError),
    /// The audit store could not be opened (or its tail does not verify).
    #[error("audit store: {0}")]
    Audit(#[from] StoreError),
    /// The precompiled cache could not be opened.
    #[error("precompiled cache: {0}")]
    Cache(#[from] CacheError),
    /// The KV store could not be opened.
    #[error("{0}")]
    Kv(#[from] KvError),
}

/// Why a capability could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The policy file is invalid.
    #[error("{0}")]
    Policy(#[from] PolicyErrors),
    /// The component file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// The component path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The signature checks refused the component.
    #[error("capability `{capability}` refused: {refusal}")]
    Signature {
        /// The capability name.
        capability: String,
        /// Which check failed.
        refusal: Refusal,
    },
    /// No trust store is configured and unsigned components are not allowed.
    #[error(
        "capability `{0}` refused: no trust store is configured, so no signature can be trusted; \
         give a trust file (--trust trust.toml, see docs/signing.md) or, for local authoring only, --allow-unsigned"
    )]
    NoTrust(String),
    /// The bytes are not a valid component.
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Compile {
        /// The component path (or origin).
        path: String,
        /// wasmtime's message.
        message: String,
    },
    /// The precompiled cache failed (not a stale file: those are recompiled).
    #[error("capability `{capability}`: {source}")]
    Cache {
        /// The capability name.
        capability: String,
        /// What failed.
        source: CacheError,
    },
    /// The component asks for authority its policy does not grant.
    #[error("capability `{capability}`: {source}")]
    Link {
        /// The capability name.
        capability: String,
        /// Which imports were refused.
        source: LinkError,
    },
    /// The policy asks for more than the host allows.
    #[error("capability `{capability}`: {message}")]
    Limits {
        /// The capability name.
        capability: String,
        /// What is over which host ceiling.
        message: String,
    },
    /// A capability of that name is already loaded.
    #[error("capability `{0}` is already loaded")]
    Duplicate(String),
    /// The component or policy could not be stored in the artifact store
    /// (nothing may run whose artifacts a replay could not find).
    #[error("capability `{capability}`: {source}")]
    Artifact {
        /// The capability name.
        capability: String,
        /// What failed.
        source: crate::store::ArtifactError,
    },
}

/// Loaded capabilities, the sandbox that runs them, and the audit log.
pub struct Host {
    sandbox: Sandbox,
    trust: Option<TrustStore>,
    allow_unsigned: bool,
    cache: Option<CompiledCache>,
    recorder: Recorder,
    capabilities: BTreeMap<String, Arc<Capability>>,
    services: Arc<HostServices>,
    /// The artifact store, when the host has a data directory.
    artifacts: Option<Arc<ArtifactStore>>,
    /// A host that only replays (`warden audit replay`): preopened
    /// directories are never opened, so they need not exist at load.
    replay_only: bool,
}

impl Host {
    /// Creates a host with no capabilities. With a data directory, opens (or
    /// creates) the audit store, the host key and the precompiled cache.
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let sandbox =
            Sandbox::new(config.sandbox).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let audit = match &config.data_dir {
            Some(dir) => {
                let key = match &config.host_key {
                    Some(path) => crate::keys::read_private_key(path)?,
                    None => hostkey::load_or_create(dir)?,
                };
                Some(AuditLog::open(
                    &dir.join("warden.db"),
                    key,
                    config.checkpoints,
                )?)
            }
            None => None,
        };
        let cache_dir = config
            .cache_dir
            .clone()
            .or_else(|| config.data_dir.as_ref().map(|d| d.join("cache")));
        let cache = match cache_dir {
            Some(dir) => Some(CompiledCache::open(&dir)?),
            None => None,
        };
        let kv = match &config.data_dir {
            Some(dir) => KvStore::open(&dir.join("kv.db"))?,
            None => KvStore::in_memory()?,
        };
        let services = Arc::new(HostServices {
            kv: Arc::new(kv),
            models: config.models.clone(),
            hosts: config.hosts.clone(),
            replay: std::sync::Mutex::new(None),
        });
        if config.allow_unsigned {
            tracing::warn!(
                "UNSIGNED COMPONENTS ALLOWED (--allow-unsigned): any component in the components \
                 directory will run without a trusted signature. For local authoring only; \
                 every invocation records unsigned_allowed = true."
            );
        }
        Ok(Host {
            sandbox,
            trust: config.trust,
            allow_unsigned: config.allow_unsigned,
            cache,
            recorder: Recorder::new(audit, config.allow_unsigned),
            capabilities: BTreeMap::new(),
            services,
            artifacts: config
                .data_dir
                .as_ref()
                .map(|d| Arc::new(ArtifactStore::in_data_dir(d))),
            replay_only: false,
        })
    }

    /// The sandbox (engine) this host runs on.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The audit log, when the host has a data directory.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.recorder.log()
    }

    /// The precompiled cache, when the host has a data directory.
    pub fn cache(&self) -> Option<&CompiledCache> {
        self.cache.as_ref()
    }

    /// Whether unsigned components are allowed (development switch).
    pub fn allows_unsigned(&self) -> bool {
        self.allow_unsigned
    }

    /// Reads a policy and a component file and loads the capability.
    pub fn load_files(
        &mut self,
        policy: &Path,
        component: &Path,
    ) -> Result<Arc<Capability>, LoadError> {
        let policy = Policy::load(policy)?;
        let bytes = std::fs::read(component).map_err(|source| LoadError::Read {
            path: component.to_path_buf(),
            source,
        })?;
        self.load(policy, &bytes, &component.display().to_string())
    }

    /// Verifies, compiles, inspects and links a component under `policy`.
    pub fn load(
        &mut self,
        policy: Policy,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Arc<Capability>, LoadError> {
        let name = policy.capability.name.clone();
        if self.capabilities.contains_key(&name) {
            return Err(LoadError::Duplicate(name));
        }
        let capability = Arc::new(self.prepare(policy, bytes, origin)?);
        self.capabilities.insert(name, capability.clone());
        Ok(capability)
    }

    /// Verifies, compiles and links one capability without registering it
    /// (the daemon prepares a whole new set before swapping it in).
    pub fn prepare(
        &self,
        policy: Policy,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Capability, LoadError> {
        self.prepare_with(self.trust.as_ref(), policy, bytes, origin)
    }

    /// [`prepare`](Self::prepare) against another trust store (the daemon's
    /// reload validates a new trust file before anything is swapped in).
    pub fn prepare_with(
        &self,
        trust: Option<&TrustStore>,
        policy: Policy,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Capability, LoadError> {
        let (digest, signer, key_id) = self.check_signature(trust, &policy, bytes, origin)?;
        self.prepare_checked(policy, bytes, origin, digest, signer, key_id)
    }

    /// Compiles and links a capability a workflow run pinned, from the
    /// artifact store: `bytes` (signature sections stripped) must hash to
    /// `digest`, the digest the component had when it was loaded — and its
    /// signature verified — before the run started. The signature is not
    /// checked again (the artifact has none); nothing else is skipped.
    pub fn prepare_pinned(
        &self,
        policy: Policy,
        bytes: &[u8],
        digest: &crate::digest::Hash256,
    ) -> Result<Capability, LoadError> {
        let origin = format!("artifact {digest}");
        let actual = signing::digest(bytes).map_err(|e| LoadError::Compile {
            path: origin.clone(),
            message: e.to_string(),
        })?;
        if actual != *digest {
            return Err(LoadError::Signature {
                capability: policy.capability.name.clone(),
                refusal: Refusal::DigestMismatch {
                    pinned: digest.tagged(),
                    actual: actual.tagged(),
                },
            });
        }
        self.prepare_checked(policy, bytes, &origin, digest.tagged(), None, None)
    }

    fn prepare_checked(
        &self,
        mut policy: Policy,
        bytes: &[u8],
        origin: &str,
        digest: String,
        signer: Option<String>,
        key_id: Option<String>,
    ) -> Result<Capability, LoadError> {
        let name = policy.capability.name.clone();
        check_limits(&self.sandbox, &policy)?;
        let (component, compiled) = self.compile(&name, &digest, bytes, origin)?;
        let shape = Shape::of(self.sandbox.engine(), &component);
        bind_approval_rules(&shape, &mut policy)?;
        let link_err = |source| LoadError::Link {
            capability: name.clone(),
            source,
        };
        let linker = if self.replay_only {
            sandbox::linker_for_replay(self.sandbox.engine(), &shape, &policy)
        } else {
            sandbox::linker_for(self.sandbox.engine(), &shape, &policy)
        }
        .map_err(link_err)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            link_err(LinkError::Wasmtime {
                import: "(instantiate_pre)".into(),
                message: format!("{e:#}"),
            })
        })?;
        let policy_hash = self.store_artifacts(&name, &digest, bytes, &policy)?;
        // Parsed once here: every invocation's record and audit entry carry
        // the values, not text.
        let digest = crate::digest::Hash256::parse(&digest).ok_or_else(|| LoadError::Compile {
            path: origin.to_string(),
            message: format!("the component digest `{digest}` is not sha256:<64 hex>"),
        })?;
        Ok(Capability {
            policy_hash,
            digest,
            signer,
            key_id,
            size: bytes.len(),
            compiled,
            shape,
            pre,
            policy,
        })
    }

    /// The artifact store, when the host has a data directory.
    pub fn artifacts(&self) -> Option<&Arc<ArtifactStore>> {
        self.artifacts.as_ref()
    }

    /// Stores the component (signature sections stripped: the bytes its
    /// digest names) and the effective policy's canonical JSON in the
    /// artifact store, before anything can run (and be audited) under
    /// them. Returns the policy hash. Without a data directory, only the
    /// hash.
    fn store_artifacts(
        &self,
        name: &str,
        digest: &str,
        bytes: &[u8],
        policy: &Policy,
    ) -> Result<crate::digest::Hash256, LoadError> {
        let effective = policy.effective();
        let Some(store) = &self.artifacts else {
            return Ok(crate::digest::Hash256::of_json(&effective));
        };
        let failed = |source| LoadError::Artifact {
            capability: name.to_string(),
            source,
        };
        let canonical = crate::digest::canonical_json(&effective);
        let policy_hash = store.put(canonical.as_bytes()).map_err(failed)?;
        if let Some(d) = crate::digest::Hash256::parse(digest) {
            let stripped = signing::strip(bytes).map_err(|e| LoadError::Compile {
                path: name.to_string(),
                message: e.to_string(),
            })?;
            store.put_as(d, &stripped).map_err(failed)?;
        }
        Ok(policy_hash)
    }

    /// Stores a route table's canonical form in the artifact store (the
    /// daemon calls this when it loads one, before any request is routed
    /// by it). Without a data directory, nothing to do.
    pub fn store_route_table(
        &self,
        table: &crate::router::RouteTable,
    ) -> Result<(), crate::store::ArtifactError> {
        let Some(store) = &self.artifacts else {
            return Ok(());
        };
        let canonical = table.canonical_form();
        let hash = store.put(canonical.as_bytes())?;
        debug_assert_eq!(hash.tagged(), table.hash());
        Ok(())
    }

    /// Signature, trust and pins. Returns (digest, signer, key id).
    fn check_signature(
        &self,
        trust: Option<&TrustStore>,
        policy: &Policy,
        bytes: &[u8],
        origin: &str,
    ) -> Result<(String, Option<String>, Option<String>), LoadError> {
        let name = &policy.capability.name;
        let refused = |refusal: Refusal| LoadError::Signature {
            capability: name.clone(),
            refusal,
        };
        let pins = SignerPins {
            digest: policy.capability.digest.clone(),
            signers: policy.capability.signers.clone(),
        };
        // Without a trust store every signature is from an unknown key; a
        // signed component is still checked fully (a tampered one is
        // refused as such), only "unsigned" can be waived.
        let empty = TrustStore::from_keys(Vec::new());
        let verdict = trust.unwrap_or(&empty).verify(bytes, name, &pins);
        match verdict {
            Ok(v) => Ok((v.digest, Some(v.signer), Some(v.key_id))),
            Err(Refusal::Unsigned) if self.allow_unsigned => {
                let digest = signing::digest(bytes)
                    .map_err(|e| LoadError::Compile {
                        path: origin.to_string(),
                        message: e.to_string(),
                    })?
                    .to_string();
                if let Some(pinned) = &pins.digest
                    && pinned != &digest
                {
                    return Err(refused(Refusal::DigestMismatch {
                        pinned: pinned.clone(),
                        actual: digest,
                    }));
                }
                tracing::warn!(capability = %name, "loading WITHOUT a signature (--allow-unsigned)");
                Ok((digest, None, None))
            }
            Err(Refusal::Unsigned | Refusal::UnknownKey { .. }) if trust.is_none() => {
                Err(LoadError::NoTrust(name.clone()))
            }
            Err(refusal) => Err(refused(refusal)),
        }
    }

    fn compile(
        &self,
        name: &str,
        digest: &str,
        bytes: &[u8],
        origin: &str,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        match &self.cache {
            Some(cache) => cache
                .load_or_compile(self.sandbox.engine(), digest, bytes)
                .map_err(|source| match source {
                    CacheError::Compile { .. } => LoadError::Compile {
                        path: origin.to_string(),
                        message: source.to_string(),
                    },
                    other => LoadError::Cache {
                        capability: name.to_string(),
                        source: other,
                    },
                }),
            None => Component::from_binary(self.sandbox.engine(), bytes)
                .map(|c| (c, CacheOutcome::Miss))
                .map_err(|e| LoadError::Compile {
                    path: origin.to_string(),
                    message: format!("{e:#}"),
                }),
        }
    }

    /// A loaded capability by name.
    pub fn capability(&self, name: &str) -> Option<&Arc<Capability>> {
        self.capabilities.get(name)
    }

    /// All loaded capabilities, by name.
    pub fn capabilities(&self) -> impl Iterator<Item = &Arc<Capability>> {
        self.capabilities.values()
    }

    /// Runs one invocation through the request path (admit -> route to the
    /// named capability -> gate -> execute -> audit) and returns its record,
    /// audited before this returns. Never panics and never fails as a Rust
    /// error: every way it can end is an [`Outcome`] in the record. If the
    /// audit entry cannot be committed, the result is withheld and the
    /// record says `transient`. A call that needs approvals it does not
    /// carry ends `pending_approval` (only the daemon holds requests).
    pub async fn invoke(&self, mut call: Call) -> InvocationRecord {
        admit::admit(&mut call);
        let routed = route::direct(&self.capabilities, &mut call);
        self.gate_and_run(routed, &mut call).await
    }

    /// [`invoke`](Self::invoke) on a capability the caller holds (an
    /// in-flight call finishes under the capability it started with,
    /// whatever a reload does meanwhile).
    pub async fn invoke_capability(
        &self,
        cap: &Arc<Capability>,
        mut call: Call,
    ) -> InvocationRecord {
        admit::admit(&mut call);
        let routed = route::to_capability(cap, &mut call);
        self.gate_and_run(routed, &mut call).await
    }

    /// Borrows the call its caller owns (moving it in would copy it into
    /// this future on every request); the record takes the call's names
    /// (`run_taking`), as the call is dropped once the record is audited.
    async fn gate_and_run(
        &self,
        routed: Result<Routed, pipeline::Refusal>,
        call: &mut Call,
    ) -> InvocationRecord {
        let cap = match routed {
            Ok(routed) => routed.cap,
            Err(refusal) => return self.recorder.refusal(&refusal, call).await,
        };
        let typed = match gate::gate(&cap, call) {
            Ok(Gate::Open(typed)) => typed,
            Ok(Gate::Hold(typed, need)) => {
                let refusal = gate::needs_approval(&cap, typed.export, call, &need);
                return self.recorder.refusal(&refusal, call).await;
            }
            Err(refusal) => return self.recorder.refusal(&refusal, call).await,
        };
        let mut record = self.executor().run_taking(&cap, typed, call).await;
        self.recorder
            .commit(&mut record, cap.hash_only(), call)
            .await;
        record
    }

    /// Runs and audits one attempt of a call that was admitted, routed and
    /// gated already (the daemon's attempts; a held request once approved):
    /// `params` is the input as the gate typed it.
    pub async fn execute_gated(
        &self,
        cap: &Capability,
        params: Vec<wasmtime::component::Val>,
        call: &Call,
    ) -> InvocationRecord {
        let Some(export) = cap.shape.export(&call.function) else {
            let why = format!("`{}` is not an export of `{}`", call.function, cap.name());
            let refusal = pipeline::Refusal::of(cap, Outcome::InvalidInput, why);
            return self.recorder.refusal(&refusal, call).await;
        };
        let typed = gate::Typed { export, params };
        let mut record = self.executor().run(cap, typed, call).await;
        self.recorder
            .commit(&mut record, cap.hash_only(), call)
            .await;
        record
    }

    /// Records (and audits) a request that ends before any guest code runs.
    pub async fn refuse(&self, refusal: &pipeline::Refusal, call: &Call) -> InvocationRecord {
        self.recorder.refusal(refusal, call).await
    }

    /// The audit stage: the one place entries are appended.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Makes this a host that only replays (`warden audit replay`): it
    /// loads capabilities whose preopened directories do not exist here.
    pub(crate) fn only_replays(mut self) -> Host {
        self.replay_only = true;
        self
    }

    /// `warden audit replay`: runs one attempt of `call` with its host
    /// calls answered from `recorded` (never the outside world), and does
    /// not audit it.
    pub(crate) async fn execute_replayed(
        &self,
        cap: &Capability,
        typed: gate::Typed<'_>,
        call: &Call,
        recorded: Vec<crate::interfaces::recording::Recorded>,
    ) -> InvocationRecord {
        *self
            .services
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(recorded);
        let record = self.executor().run(cap, typed, call).await;
        // A guest without any recorded-capable interface never took it.
        self.services
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        record
    }

    fn executor(&self) -> Executor<'_> {
        Executor {
            sandbox: &self.sandbox,
            services: &self.services,
            unsigned_allowed: self.allow_unsigned,
        }
    }

    /// Writes the final checkpoint and closes the audit log.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        match self.recorder.into_log() {
            Some(log) => log.close().await,
            None => Ok(()),
        }
    }
}

fn check_limits(sandbox: &Sandbox, policy: &Policy) -> Result<(), LoadError> {
    let ceiling = sandbox.config().max_memory_per_memory;
    if policy.budget.memory.bytes() > ceiling {
        return Err(LoadError::Limits {
            capability: policy.capability.name.clone(),
            message: format!(
                "policy {} asks for memory = {} but this host allows at most {} per memory",
                policy.source.display(),
                policy.budget.memory,
                crate::policy::ByteSize(ceiling)
            ),
        });
    }
    Ok(())
}

/// Every `[[approval]]` rule names a function the component exports, and
/// is bound to that function's canonical identity: from here on rules and
/// requests are compared only as [`crate::policy::FunctionId`]s, whichever
/// form (`iface#func` or `ns:pkg/iface#func`) either side was written in.
fn bind_approval_rules(shape: &Shape, policy: &mut Policy) -> Result<(), LoadError> {
    let source = policy.source.display().to_string();
    policy
        .bind_functions(|name| shape.resolve(name))
        .map_err(|(i, function)| {
            let names: Vec<&str> = shape.exports.iter().map(|e| e.id.as_str()).collect();
            LoadError::Limits {
                capability: policy.capability.name.clone(),
                message: format!(
                    "{source}: [[approval]] rule {i} names function `{function}`, which the component does not export (it exports: {})",
                    names.join(", ")
                ),
            }
        })
}
