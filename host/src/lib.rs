//! warden-host: run signed WebAssembly capabilities under a deny-by-default
//! policy, within fuel, memory and time budgets, with every invocation
//! recorded.
//!
//! Embedders start from [`Host`]; the `warden` binary is a thin shell over it.

pub mod audit;
pub mod cache;
pub mod canonical;
pub mod component;
mod host;
pub mod interfaces;
pub mod keys;
pub mod outcome;
pub mod policy;
pub mod sandbox;
pub mod scaffold;
pub mod signing;
pub mod store;

pub use host::{
    Call, Capability, Host, HostConfig, InvocationRecord, LoadError, new_request_id, prepare,
};
pub use outcome::{Budget, Outcome, Usage};
