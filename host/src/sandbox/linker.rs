//! Builds a capability's linker from its grants: only imports that the
//! component declares *and* the policy grants are linked.
//!
//! Which unit links an import is the interfaces' business
//! ([`crate::interfaces::link`]); this module refuses what is not granted
//! and never links anything itself.

use super::state::InvocationState;
use crate::component::Shape;
use crate::policy::Policy;
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Why a capability could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The component imports interfaces its policy does not grant.
    #[error(
        "refused: the component imports {} not granted by {}: {}\n  \
         grant them in the policy's [imports] table (see docs/policy.md) if the capability really needs them, \
         or rebuild the component without them",
        if .imports.len() == 1 { "an interface" } else { "interfaces" },
        .policy.display(),
        .imports.join(", ")
    )]
    Ungranted {
        /// The policy file.
        policy: PathBuf,
        /// Every ungranted import name, as the component names it.
        imports: Vec<String>,
    },
    /// A preopened directory named by the policy does not exist.
    #[error(
        "preopen `{guest}` -> {}: {message} (host paths are absolute or relative to the policy file)",
        .host.display()
    )]
    Preopen {
        /// The guest path.
        guest: String,
        /// The resolved host path.
        host: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// wasmtime refused a definition (a host bug, not a policy problem).
    #[error("linking `{import}` failed: {message}")]
    Wasmtime {
        /// The import being linked.
        import: String,
        /// wasmtime's message.
        message: String,
    },
}

/// Every import of `shape` that `policy` does not grant.
pub fn ungranted_imports(shape: &Shape, policy: &Policy) -> Vec<String> {
    shape
        .imports
        .iter()
        .filter(|i| {
            i.interface
                .as_ref()
                .is_none_or(|n| policy.grants(n).is_none())
        })
        .map(|i| i.name.clone())
        .collect()
}

/// Builds the linker for one capability. Refuses (naming every ungranted
/// import and the policy file) before defining anything.
pub fn linker_for(
    engine: &Engine,
    shape: &Shape,
    policy: &Policy,
) -> Result<Linker<InvocationState>, LinkError> {
    let ungranted = ungranted_imports(shape, policy);
    if !ungranted.is_empty() {
        return Err(LinkError::Ungranted {
            policy: policy.source.clone(),
            imports: ungranted,
        });
    }
    check_preopens(policy)?;
    linker_for_replay(engine, shape, policy)
}

/// [`linker_for`] for `warden audit replay`, which never opens a preopened
/// directory (filesystem calls are answered from the recording), so the
/// directories need not exist on the replaying machine.
pub fn linker_for_replay(
    engine: &Engine,
    shape: &Shape,
    policy: &Policy,
) -> Result<Linker<InvocationState>, LinkError> {
    let ungranted = ungranted_imports(shape, policy);
    if !ungranted.is_empty() {
        return Err(LinkError::Ungranted {
            policy: policy.source.clone(),
            imports: ungranted,
        });
    }
    let mut linker = Linker::new(engine);
    for import in &shape.imports {
        let Some(name) = &import.interface else {
            continue; // unreachable: refused above
        };
        crate::interfaces::link(&mut linker, name, &import.name).map_err(|e| {
            LinkError::Wasmtime {
                import: import.name.clone(),
                message: format!("{e:#}"),
            }
        })?;
    }
    Ok(linker)
}

/// Every preopened directory must exist (and be a directory) at load.
fn check_preopens(policy: &Policy) -> Result<(), LinkError> {
    crate::interfaces::fs::check_preopens_exist(&policy.imports, &policy.source).map_err(|m| {
        LinkError::Preopen {
            guest: m.guest,
            host: m.host,
            message: m.message,
        }
    })
}
