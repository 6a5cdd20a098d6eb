//! The embedding API: a [`Host`] holds loaded capabilities and runs
//! invocations. The `warden` CLI and daemon are thin shells over it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use warden_host::{Host, HostConfig, Call};
//! let mut host = Host::new(HostConfig::default())?;
//! host.load_files("policies/echo.toml".as_ref(), "echo.wasm".as_ref())?;
//! let record = host.invoke(Call::new("echo", "echo", serde_json::json!({"message": "hi"}))).await;
//! println!("{} {:?}", record.outcome, record.output);
//! # Ok(()) }
//! ```

use crate::canonical::{json_digest, sha256_tagged};
use crate::component::{Shape, convert};
use crate::interfaces::log::LogLine;
use crate::outcome::{Outcome, Usage};
use crate::policy::{Policy, PolicyErrors};
use crate::sandbox::{
    self, InvocationIdentity, InvocationState, LinkError, Sandbox, SandboxConfig,
};
use serde::Serialize;
use serde_json::Value;
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
    /// The bytes are not a valid component.
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Compile {
        /// The component path (or `<bytes>`).
        path: String,
        /// wasmtime's message.
        message: String,
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

/// A loaded capability: validated policy, compiled component, its shape, and
/// a pre-linked instance template.
pub struct Capability {
    /// The policy it runs under.
    pub policy: Policy,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// `sha256:<hex>` of the effective policy.
    pub policy_hash: String,
    /// Size of the component file in bytes.
    pub size: usize,
    /// Imports and exports.
    pub shape: Shape,
    pre: InstancePre<InvocationState>,
}

impl Capability {
    /// The capability name.
    pub fn name(&self) -> &str {
        &self.policy.capability.name
    }
}

/// One invocation request to the library.
#[derive(Debug, Clone)]
pub struct Call {
    /// Capability name.
    pub capability: String,
    /// Export id (`echo`, `iface#func`).
    pub function: String,
    /// Input object keyed by parameter names.
    pub input: Value,
    /// Request id; generated when absent. Seeds random.
    pub request_id: Option<String>,
    /// Admission time; now when absent. The virtual wall clock reads it.
    pub admitted_at: Option<SystemTime>,
}

impl Call {
    /// A call with a generated request id admitted now.
    pub fn new(capability: &str, function: &str, input: Value) -> Call {
        Call {
            capability: capability.to_string(),
            function: function.to_string(),
            input,
            request_id: None,
            admitted_at: None,
        }
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Call {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the admission time.
    pub fn admitted_at(mut self, at: SystemTime) -> Call {
        self.admitted_at = Some(at);
        self
    }
}

/// Everything known about one finished invocation.
#[derive(Debug, Clone, Serialize)]
pub struct InvocationRecord {
    /// Request id.
    pub request_id: String,
    /// Admission time, Unix milliseconds.
    pub admitted_at_ms: u64,
    /// Capability name.
    pub capability: String,
    /// Function id.
    pub function: String,
    /// Component digest (empty when the capability is unknown).
    pub component_digest: String,
    /// Effective policy hash (empty when the capability is unknown).
    pub policy_hash: String,
    /// Outcome.
    #[serde(serialize_with = "ser_outcome")]
    pub outcome: Outcome,
    /// Output JSON (`ok` and `capability_error`).
    pub output: Option<Value>,
    /// Failure reason.
    pub error: Option<String>,
    /// `sha256:` of the canonical input JSON.
    pub input_hash: String,
    /// `sha256:` of the canonical output JSON, or of the error text.
    pub output_hash: String,
    /// Resources used.
    pub usage: Usage,
    /// Whether the invocation can be replayed bit for bit.
    pub replayable: bool,
    /// Captured stdout, lossy UTF-8.
    pub stdout: String,
    /// Captured stderr, lossy UTF-8.
    pub stderr: String,
    /// Log lines.
    pub logs: Vec<LogLine>,
    /// Log lines dropped over budget.
    pub logs_dropped: u64,
}

fn ser_outcome<S: serde::Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&o.as_string())
}

/// Loaded capabilities and the sandbox that runs them.
pub struct Host {
    sandbox: Sandbox,
    capabilities: BTreeMap<String, Arc<Capability>>,
}

impl Host {
    /// Creates a host with no capabilities.
    pub fn new(config: HostConfig) -> Result<Host, wasmtime::Error> {
        Ok(Host {
            sandbox: Sandbox::new(config.sandbox)?,
            capabilities: BTreeMap::new(),
        })
    }

    /// The sandbox (engine) this host runs on.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
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

    /// Compiles, inspects and links a component under `policy`; refuses it if
    /// it imports anything the policy does not grant.
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
        let capability = Arc::new(prepare(&self.sandbox, policy, bytes, origin)?);
        self.capabilities.insert(name, capability.clone());
        Ok(capability)
    }

    /// A loaded capability by name.
    pub fn capability(&self, name: &str) -> Option<&Arc<Capability>> {
        self.capabilities.get(name)
    }

    /// All loaded capabilities, by name.
    pub fn capabilities(&self) -> impl Iterator<Item = &Arc<Capability>> {
        self.capabilities.values()
    }

    /// Runs one invocation. Never panics and never fails as a Rust error:
    /// every way it can end is an [`Outcome`] in the record.
    pub async fn invoke(&self, call: Call) -> InvocationRecord {
        let admitted_at = call.admitted_at.unwrap_or_else(SystemTime::now);
        let request_id = call.request_id.clone().unwrap_or_else(new_request_id);
        let mut record = InvocationRecord {
            request_id: request_id.clone(),
            admitted_at_ms: unix_ms(admitted_at),
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
            stdout: String::new(),
            stderr: String::new(),
            logs: Vec::new(),
            logs_dropped: 0,
        };
        let Some(cap) = self.capabilities.get(&call.capability) else {
            return record.fail(
                Outcome::Denied,
                format!("no capability named `{}` is loaded", call.capability),
            );
        };
        record.component_digest = cap.digest.clone();
        record.policy_hash = cap.policy_hash.clone();
        record.replayable = cap.policy.is_replayable();
        let Some(export) = cap.shape.export(&call.function) else {
            let names: Vec<&str> = cap.shape.exports.iter().map(|e| e.id.as_str()).collect();
            return record.fail(
                Outcome::InvalidInput,
                format!(
                    "capability `{}` exports no function `{}`; it exports: {}",
                    call.capability,
                    call.function,
                    names.join(", ")
                ),
            );
        };
        if !export.callable {
            return record.fail(
                Outcome::InvalidInput,
                format!(
                    "`{}` uses resources, futures or streams, which cannot be called with JSON",
                    export.id
                ),
            );
        }
        let params = match convert::json_to_params(&export.params, &call.input) {
            Ok(p) => p,
            Err(e) => return record.fail(Outcome::InvalidInput, format!("invalid input {e}")),
        };
        let id = InvocationIdentity {
            request_id,
            admitted_at,
            capability: call.capability.clone(),
        };
        let done = sandbox::invoke(&self.sandbox, &cap.pre, &cap.policy, export, params, &id).await;
        record.outcome = done.outcome;
        record.usage = done.usage;
        record.stdout = String::from_utf8_lossy(&done.stdout).into_owned();
        record.stderr = String::from_utf8_lossy(&done.stderr).into_owned();
        record.logs = done.logs;
        record.logs_dropped = done.logs_dropped;
        record.output_hash = match (&done.output, &done.error) {
            (Some(out), _) => json_digest(out),
            (None, Some(err)) => sha256_tagged(err.as_bytes()),
            (None, None) => json_digest(&Value::Null),
        };
        record.output = done.output;
        record.error = done.error;
        record
    }
}

impl InvocationRecord {
    fn fail(mut self, outcome: Outcome, error: String) -> InvocationRecord {
        self.outcome = outcome;
        self.output_hash = sha256_tagged(error.as_bytes());
        self.error = Some(error);
        self
    }
}

/// Compiles and links one capability (no registration).
pub fn prepare(
    sandbox: &Sandbox,
    policy: Policy,
    bytes: &[u8],
    origin: &str,
) -> Result<Capability, LoadError> {
    let name = policy.capability.name.clone();
    let ceiling = sandbox.config().max_memory_per_memory;
    if policy.budget.memory.bytes() > ceiling {
        return Err(LoadError::Limits {
            capability: name,
            message: format!(
                "policy {} asks for memory = {} but this host allows at most {} per memory",
                policy.source.display(),
                policy.budget.memory,
                crate::policy::ByteSize(ceiling)
            ),
        });
    }
    let component =
        Component::from_binary(sandbox.engine(), bytes).map_err(|e| LoadError::Compile {
            path: origin.to_string(),
            message: format!("{e:#}"),
        })?;
    let shape = Shape::of(sandbox.engine(), &component);
    let linker = sandbox::linker_for(sandbox.engine(), &shape, &policy).map_err(|source| {
        LoadError::Link {
            capability: name.clone(),
            source,
        }
    })?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link {
            capability: name.clone(),
            source: LinkError::Wasmtime {
                import: "(instantiate_pre)".into(),
                message: format!("{e:#}"),
            },
        })?;
    Ok(Capability {
        policy_hash: policy.hash(),
        digest: sha256_tagged(bytes),
        size: bytes.len(),
        shape,
        pre,
        policy,
    })
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh request id: time-ordered and unique (`r-<ms hex>-<random hex>`).
pub fn new_request_id() -> String {
    format!(
        "r-{:011x}-{:016x}",
        unix_ms(SystemTime::now()),
        rand::random::<u64>()
    )
}
