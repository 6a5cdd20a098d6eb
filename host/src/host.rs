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
//! Request path: input typed against the export -> fresh sandbox -> output
//! typed back -> audit entry committed -> record returned.

use crate::audit::hostkey;
use crate::cache::{CacheError, CacheOutcome, CompiledCache};
use crate::canonical::json_digest;
use crate::component::{ExportFunc, Shape, convert};
use crate::interfaces::HostServices;
use crate::interfaces::kv::{KvError, KvStore};
use crate::invocation::{AuditRef, Call, InvocationRecord};
use crate::keys::KeyError;
use crate::outcome::{Outcome, Usage};
use crate::policy::{Policy, PolicyErrors};
use crate::sandbox::{
    self, InvocationIdentity, InvocationState, LinkError, Sandbox, SandboxConfig,
};
use crate::signing::{self, Refusal, SignerPins, TrustStore};
use crate::store::{AuditLog, CheckpointPolicy, Payloads, StoreError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use wasmtime::component::{Component, InstancePre};

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
}

/// A loaded capability: validated policy, verified and compiled component,
/// its shape, and a pre-linked instance template.
pub struct Capability {
    /// The policy it runs under.
    pub policy: Policy,
    /// `sha256:<hex>` of the component with signature sections stripped.
    pub digest: String,
    /// `sha256:<hex>` of the effective policy.
    pub policy_hash: String,
    /// The trust-store key that signed it (`None`: loaded unsigned).
    pub signer: Option<String>,
    /// That key's id.
    pub key_id: Option<String>,
    /// Size of the component file in bytes.
    pub size: usize,
    /// How the compiled code was obtained.
    pub compiled: CacheOutcome,
    /// Imports and exports.
    pub shape: Shape,
    pre: InstancePre<InvocationState>,
}

impl Capability {
    /// The capability name.
    pub fn name(&self) -> &str {
        &self.policy.capability.name
    }

    /// Checks that `function` is a callable export and types `input`
    /// against its parameters (the daemon checks held requests with this
    /// before anyone is asked to approve them).
    pub fn typed_params(
        &self,
        function: &str,
        input: &serde_json::Value,
    ) -> Result<(&ExportFunc, Vec<wasmtime::component::Val>), String> {
        let Some(export) = self.shape.export(function) else {
            let names: Vec<&str> = self.shape.exports.iter().map(|e| e.id.as_str()).collect();
            return Err(format!(
                "capability `{}` exports no function `{function}`; it exports: {}",
                self.name(),
                names.join(", ")
            ));
        };
        if !export.callable {
            return Err(format!(
                "`{}` uses resources, futures or streams, which cannot be called with JSON",
                export.id
            ));
        }
        let params = convert::json_to_params(&export.params, input)
            .map_err(|e| format!("invalid input {e}"))?;
        Ok((export, params))
    }

    /// Whether the policy keeps only hashes of payloads.
    pub fn hash_only(&self) -> bool {
        self.policy.capability.payloads == crate::policy::PayloadRetention::HashOnly
    }
}

/// What a request was bound to when it was held: the exact component and
/// policy approvers see (and the payload retention and replayability that
/// go with them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// `sha256:<hex>` of the component.
    pub component_digest: String,
    /// `sha256:<hex>` of the effective policy.
    pub policy_hash: String,
    /// Payloads are kept as hashes only.
    pub hash_only: bool,
    /// Replayable by its grants.
    pub replayable: bool,
}

impl Capability {
    /// This capability's binding.
    pub fn binding(&self) -> Binding {
        Binding {
            component_digest: self.digest.clone(),
            policy_hash: self.policy_hash.clone(),
            hash_only: self.hash_only(),
            replayable: self.policy.is_replayable(),
        }
    }
}

/// Loaded capabilities, the sandbox that runs them, and the audit log.
pub struct Host {
    sandbox: Sandbox,
    trust: Option<TrustStore>,
    allow_unsigned: bool,
    cache: Option<CompiledCache>,
    audit: Option<AuditLog>,
    capabilities: BTreeMap<String, Arc<Capability>>,
    services: Arc<HostServices>,
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
            audit,
            capabilities: BTreeMap::new(),
            services,
        })
    }

    /// The sandbox (engine) this host runs on.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The audit log, when the host has a data directory.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
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
        mut policy: Policy,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Capability, LoadError> {
        let name = policy.capability.name.clone();
        let (digest, signer, key_id) = self.check_signature(trust, &policy, bytes, origin)?;
        check_limits(&self.sandbox, &policy)?;
        let (component, compiled) = self.compile(&name, &digest, bytes, origin)?;
        let shape = Shape::of(self.sandbox.engine(), &component);
        bind_approval_rules(&shape, &mut policy)?;
        let link_err = |source| LoadError::Link {
            capability: name.clone(),
            source,
        };
        let linker =
            sandbox::linker_for(self.sandbox.engine(), &shape, &policy).map_err(link_err)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            link_err(LinkError::Wasmtime {
                import: "(instantiate_pre)".into(),
                message: format!("{e:#}"),
            })
        })?;
        Ok(Capability {
            policy_hash: policy.hash(),
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

    /// Runs one invocation and commits its audit entry before returning.
    /// Never panics and never fails as a Rust error: every way it can end is
    /// an [`Outcome`] in the record. If the audit entry cannot be committed,
    /// the result is withheld and the record says `transient`.
    pub async fn invoke(&self, call: Call) -> InvocationRecord {
        let cap = self.capabilities.get(&call.capability).cloned();
        let record = self.execute(cap.as_deref(), &call).await;
        self.commit(record, cap.as_deref(), &call).await
    }

    /// [`invoke`](Self::invoke) on a capability the caller holds (the daemon
    /// keeps its own swappable set: an in-flight call finishes under the
    /// capability it started with, whatever a reload does meanwhile).
    pub async fn invoke_capability(&self, cap: &Arc<Capability>, call: Call) -> InvocationRecord {
        let record = self.execute(Some(cap.as_ref()), &call).await;
        self.commit(record, Some(cap.as_ref()), &call).await
    }

    /// Records (and audits) a request that ends with `outcome` before any
    /// guest code runs: no route, overload, an open circuit breaker. `cap`
    /// fills in the digest and policy hash when a capability was chosen.
    pub async fn refuse(
        &self,
        cap: Option<&Capability>,
        call: &Call,
        outcome: Outcome,
        why: String,
    ) -> InvocationRecord {
        let mut record = self.blank_record(call);
        if let Some(cap) = cap {
            record.component_digest = cap.digest.clone();
            record.policy_hash = cap.policy_hash.clone();
            record.replayable = cap.policy.is_replayable();
        }
        let record = record.fail(outcome, why);
        self.commit(record, cap, call).await
    }

    /// [`refuse`](Self::refuse) for a request bound to a component digest
    /// and policy hash that may no longer be loaded (a held request whose
    /// approval ended after a reload).
    pub async fn refuse_bound(
        &self,
        binding: &Binding,
        call: &Call,
        outcome: Outcome,
        why: String,
    ) -> InvocationRecord {
        let mut record = self.blank_record(call);
        record.component_digest = binding.component_digest.clone();
        record.policy_hash = binding.policy_hash.clone();
        record.replayable = binding.replayable;
        let record = record.fail(outcome, why);
        self.commit_with(record, binding.hash_only, call).await
    }

    fn blank_record(&self, call: &Call) -> InvocationRecord {
        let admitted_at = call.admitted_at.unwrap_or_else(SystemTime::now);
        self.blank_record_at(call, admitted_at)
    }

    fn blank_record_at(&self, call: &Call, admitted_at: SystemTime) -> InvocationRecord {
        let request_id = call
            .request_id
            .clone()
            .unwrap_or_else(|| request_id_at(admitted_at));
        InvocationRecord {
            request_id,
            admitted_at_ms: unix_ms(admitted_at),
            principal: call.principal.clone(),
            tenant: call.tenant.clone(),
            capability: call.capability.clone(),
            function: call.function.clone(),
            component_digest: String::new(),
            policy_hash: String::new(),
            outcome: Outcome::Denied,
            output: None,
            error: None,
            input_hash: json_digest(&call.input),
            output_hash: String::new(),
            usage: Usage::default(),
            replayable: true,
            unsigned_allowed: self.allow_unsigned,
            stdout: String::new(),
            stderr: String::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            host_calls: Vec::new(),
            audit: None,
        }
    }

    /// Runs the invocation (no audit).
    async fn execute(&self, cap: Option<&Capability>, call: &Call) -> InvocationRecord {
        let admitted_at = call.admitted_at.unwrap_or_else(SystemTime::now);
        let mut record = self.blank_record_at(call, admitted_at);
        let Some(cap) = cap else {
            let why = format!("no capability named `{}` is loaded", call.capability);
            return record.fail(Outcome::Denied, why);
        };
        record.component_digest = cap.digest.clone();
        record.policy_hash = cap.policy_hash.clone();
        record.replayable = cap.policy.is_replayable();
        let (export, params) = match cap.typed_params(&call.function, &call.input) {
            Ok(typed) => typed,
            Err(why) => return record.fail(Outcome::InvalidInput, why),
        };
        // From here on the function is named by its canonical identity only.
        record.function = export.id.clone();
        if let Some(need) = cap.policy.approval_for(&export.function_id(), &call.input) {
            let have = call.approvers().len();
            if have < need.mode.required() {
                let why = format!(
                    "`{}` needs {} approval(s) (mode {}, rule {} of {}: {}) and has {have}; \
                     gated requests are held by the daemon (docs/approvals.md)",
                    export.id,
                    need.mode.required(),
                    need.mode.as_str(),
                    need.rule,
                    cap.policy.source.display(),
                    need.reason
                );
                return record.fail(Outcome::PendingApproval, why);
            }
        }
        let id = InvocationIdentity {
            request_id: &record.request_id,
            admitted_at,
            capability: &call.capability,
            tenant: call.tenant.as_ref(),
        };
        let done = sandbox::invoke(
            &self.sandbox,
            &cap.pre,
            &cap.policy,
            export,
            params,
            &id,
            &self.services,
            !cap.shape.imports.is_empty(),
        )
        .await;
        record.outcome = done.outcome;
        record.usage = done.usage;
        record.stdout = String::from_utf8_lossy(&done.stdout).into_owned();
        record.stderr = String::from_utf8_lossy(&done.stderr).into_owned();
        record.logs = done.logs;
        record.logs_dropped = done.logs_dropped;
        record.host_calls = done.host_calls;
        record.replayable &= !done.external_calls;
        record.output = done.output;
        record.error = done.error;
        record.output_hash = match &record.output {
            Some(out) => json_digest(out),
            None => json_digest(&record.output_document()),
        };
        record
    }

    /// Appends the record's audit entry (durable before this returns).
    async fn commit(
        &self,
        record: InvocationRecord,
        cap: Option<&Capability>,
        call: &Call,
    ) -> InvocationRecord {
        self.commit_with(record, cap.is_some_and(Capability::hash_only), call)
            .await
    }

    async fn commit_with(
        &self,
        mut record: InvocationRecord,
        hash_only: bool,
        call: &Call,
    ) -> InvocationRecord {
        let Some(log) = &self.audit else {
            return record;
        };
        let payloads = if hash_only {
            Payloads::default()
        } else {
            let (input, output) = record.payloads(&call.input);
            Payloads {
                input: Some(input),
                output: Some(output),
            }
        };
        match log.append(record.audit_entry(call), payloads).await {
            Ok(appended) => {
                record.audit = Some(AuditRef {
                    seq: appended.seq,
                    hash: appended.hash.to_string(),
                });
                record
            }
            Err(e) => {
                tracing::error!(request_id = %record.request_id, "audit append failed: {e}");
                InvocationRecord {
                    outcome: Outcome::Transient,
                    output: None,
                    error: Some(format!(
                        "the audit entry could not be committed ({e}); the result is withheld because it is not recorded"
                    )),
                    ..record
                }
            }
        }
    }

    /// Writes the final checkpoint and closes the audit log.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        match self.audit {
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

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh request id: time-ordered and unique (`r-<ms hex>-<random hex>`,
/// as `format!("r-{:011x}-{:016x}", ms, random)` writes it, without the
/// formatting machinery: it is on every request).
pub fn new_request_id() -> String {
    request_id_at(SystemTime::now())
}

/// A request id for a request admitted at `at` (no second clock read).
fn request_id_at(at: SystemTime) -> String {
    let mut id = String::with_capacity(2 + 11 + 1 + 16);
    id.push_str("r-");
    push_hex_u64(unix_ms(at), 11, &mut id);
    id.push('-');
    push_hex_u64(rand::random::<u64>(), 16, &mut id);
    id
}

/// Appends `v` in lowercase hex, zero-padded to at least `width` digits.
fn push_hex_u64(v: u64, width: usize, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'0'; 16];
    let mut i = buf.len();
    let mut rest = v;
    while rest > 0 {
        i -= 1;
        buf[i] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
    }
    let start = i.min(buf.len() - width.clamp(1, buf.len()));
    for &b in &buf[start..] {
        out.push(char::from(b));
    }
}

#[cfg(test)]
mod request_id_tests {
    use super::*;

    #[test]
    fn hex_matches_the_format_macro() {
        for v in [0u64, 1, 0xf, 0x10, 0x19a_3b4c_5d6e, u64::MAX, 1 << 44] {
            for width in [0usize, 1, 11, 16] {
                let mut s = String::new();
                push_hex_u64(v, width, &mut s);
                assert_eq!(s, format!("{v:0width$x}"), "{v} {width}");
            }
        }
    }

    #[test]
    fn request_ids_have_the_documented_shape() {
        let id = new_request_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "r");
        assert_eq!(parts[1].len(), 11, "{id}");
        assert_eq!(parts[2].len(), 16, "{id}");
        assert!(parts[1..].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
    }
}
