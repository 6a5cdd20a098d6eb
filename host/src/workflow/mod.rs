//! Workflows: declarative plans of governed steps (docs/workflows.md).
//!
//! This folder owns the plan file format (`plan.rs`), the template language
//! that builds each step's input (`template.rs`), static types over JSON
//! Schemas (`types.rs`), the static checker (`check.rs`), the readable views
//! (`render.rs`) and the bridge from loaded components to the checker's
//! catalog (`catalog.rs`). Everything here except `Plan::load` is pure.
//!
//! It must never run guest code, evaluate approval rules of policies,
//! append to the audit log, or decide control flow from anything but the
//! plan and recorded step results.

pub mod catalog;
pub mod check;
pub mod executor;
pub mod plan;
pub mod render;
pub mod saga;
pub mod template;
pub mod types;
pub mod validate;

#[cfg(test)]
mod tests;

pub use check::{Catalog, Checked, FunctionSig, Lookup, check};
pub use plan::Plan;
