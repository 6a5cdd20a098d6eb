//! A loaded capability: its validated policy, its verified and compiled
//! component (digest, signer), its shape (imports, exports), and the
//! pre-linked instance template every invocation instantiates. Built by
//! [`crate::Host`]'s load path; read by every stage of the request path.
//!
//! Nothing here runs guest code or touches the audit log.

use crate::cache::CacheOutcome;
use crate::component::{ExportFunc, Shape, convert};
use crate::digest::Hash256;
use crate::policy::Policy;
use crate::sandbox::InvocationState;
use wasmtime::component::InstancePre;

/// A loaded capability: validated policy, verified and compiled component,
/// its shape, and a pre-linked instance template.
pub struct Capability {
    /// The policy it runs under.
    pub policy: Policy,
    /// SHA-256 of the component with signature sections stripped (text
    /// form `sha256:<hex>`).
    pub digest: Hash256,
    /// SHA-256 of the effective policy's canonical JSON.
    pub policy_hash: Hash256,
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
    pub(crate) pre: InstancePre<InvocationState>,
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

    /// The pre-linked instance template every invocation instantiates.
    pub(crate) fn instance_pre(&self) -> &InstancePre<InvocationState> {
        &self.pre
    }

    /// Whether the policy keeps only hashes of payloads.
    pub fn hash_only(&self) -> bool {
        self.policy.capability.payloads == crate::policy::PayloadRetention::HashOnly
    }
}

// Persisted with held requests, so defined with them in `store`.
pub use crate::store::Binding;

impl Capability {
    /// This capability's binding.
    pub fn binding(&self) -> Binding {
        Binding {
            component_digest: self.digest.tagged(),
            policy_hash: self.policy_hash.tagged(),
            hash_only: self.hash_only(),
            replayable: self.policy.is_replayable(),
        }
    }
}
