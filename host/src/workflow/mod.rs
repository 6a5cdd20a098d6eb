//! Workflows: declarative plans of governed steps (docs/workflows.md).
//!
//! This folder owns the plan file format (`plan.rs`), the template language
//! that builds each step's input (`template.rs`), static types over JSON
//! Schemas (`types.rs`), the static checker (`check.rs`), the readable views
//! (`render.rs`), the bridge from loaded components to the checker's
//! catalog (`catalog.rs`), input validation (`validate.rs`), the saga rules
//! as a pure decision (`saga.rs`) and the executor that drives a run from
//! its journal (`executor.rs`). Everything but `Plan::load` and the
//! executor is pure.
//!
//! It must never run guest code except through `Host::invoke` (the request
//! pipeline), type inputs or evaluate a policy's approval rules itself,
//! append to the audit log other than through the host's `Recorder`, or
//! decide control flow from anything but the plan and the journal.

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
