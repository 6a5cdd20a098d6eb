//! Host interfaces: one module per interface warden implements itself.
//!
//! Each module implements the generated `Host` trait for a small piece of
//! per-invocation state and offers `add_to_linker`. Every limit is a named,
//! documented setting from the policy; a guest can never raise one.

pub mod log;

/// Host bindings generated from the repository's single WIT source (`wit/`).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warden:host/imports",
    });
}
