//! Host interfaces: one module per interface warden implements itself.
//!
//! Each module implements the generated `Host` trait for a small piece of
//! per-invocation state and offers `add_to_linker`. Every limit is a named,
//! documented setting from the policy; a guest can never raise one. Every
//! call with authority (kv, model, HTTP, filesystem) is summarised in
//! [`calls`] for the invocation's audit entry ([`fs`] wraps wasmtime-wasi's
//! filesystem to observe it).
//!
//! Per-host resources the interfaces share across invocations (the KV store,
//! model backends, static name resolution) live in [`HostServices`]; the
//! host builds it once and hands it to every invocation.

pub mod calls;
pub mod fs;
pub mod http;
pub mod kv;
pub mod log;
pub mod model;
pub mod net;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Host bindings generated from the repository's single WIT source (`wit/`).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warden:host/imports",
        imports: {
            "warden:host/model.generate": async,
        },
    });
}

/// Resources shared by every invocation on one host.
pub struct HostServices {
    /// The scoped KV store.
    pub kv: Arc<kv::KvStore>,
    /// Model backends by the name policies grant.
    pub models: BTreeMap<String, model::ModelBackend>,
    /// Static name resolution used before DNS by outbound HTTP and model
    /// calls (`name -> addresses`, like `/etc/hosts` or curl's `--resolve`).
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
}

impl HostServices {
    /// Services with an in-memory KV store, no models and no static names
    /// (unit tests and embedders that need none of them).
    pub fn in_memory() -> Result<HostServices, kv::KvError> {
        Ok(HostServices {
            kv: Arc::new(kv::KvStore::in_memory()?),
            models: BTreeMap::new(),
            hosts: BTreeMap::new(),
        })
    }
}
