//! warden-host: run signed WebAssembly capabilities under a deny-by-default
//! policy, within fuel, memory and time budgets, with every invocation
//! recorded.
//!
//! Embedders start from [`Host`]; the `warden` binary is a thin shell over it.

pub mod audit;
pub mod bundle;
pub mod cache;
mod capability;
pub mod component;
pub mod deployment;
pub mod diagnostic;
pub mod digest;
mod host;
pub mod interfaces;
mod invocation;
pub mod keys;
pub mod names;
pub mod outcome;
pub mod pipeline;
pub mod policy;
pub mod principal;
pub mod replay;
pub mod review;
pub mod router;
pub mod sandbox;
pub mod scaffold;
pub mod server;
pub mod signing;
pub mod store;
pub mod tenant;
pub mod toml_shape;
pub mod units;
pub mod workflow;

pub use capability::{Binding, Capability};
pub use host::{Host, HostConfig, HostError, LoadError};
pub use invocation::{AuditRef, Call, InvocationRecord};
pub use outcome::{Budget, Outcome, Usage};
pub use pipeline::admit::new_request_id;
pub use tenant::Tenant;
