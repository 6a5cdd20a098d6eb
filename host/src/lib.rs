//! warden-host: run signed WebAssembly capabilities under a deny-by-default
//! policy, within fuel, memory and time budgets, with every invocation
//! recorded.
//!
//! Embedders start from [`Host`]; the `warden` binary is a thin shell over it.

pub mod audit;
pub mod outcome;
pub mod store;

pub use outcome::{Budget, Outcome, Usage};
