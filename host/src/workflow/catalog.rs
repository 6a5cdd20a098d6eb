//! The checker's view of loaded capabilities: each exported function's
//! input and output as JSON Schemas derived from its WIT signature
//! (`component::schema`, the same derivation `warden inspect` and MCP use).
//! It must never load or run anything itself: it is handed the shapes.

use super::check::{Catalog, FunctionSig, Lookup};
use crate::component::{ExportFunc, Shape, schema};
use std::collections::BTreeMap;
use wasmtime::component::Type;

/// Loaded capabilities by name.
#[derive(Debug, Default, Clone)]
pub struct ShapeCatalog {
    shapes: BTreeMap<String, Shape>,
}

impl ShapeCatalog {
    /// An empty catalog.
    pub fn new() -> ShapeCatalog {
        ShapeCatalog::default()
    }

    /// Adds a capability's shape.
    pub fn insert(&mut self, capability: &str, shape: Shape) {
        self.shapes.insert(capability.to_string(), shape);
    }

    /// How many capabilities it holds.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }
}

/// The signature a workflow step sees of `f`: for `result<T, E>` the output
/// is `T` (an `err` fails the step, it is never a step output).
pub fn function_sig(f: &ExportFunc) -> FunctionSig {
    let output = match &f.result {
        Some(Type::Result(r)) => r.ok().map_or(serde_json::json!({"type": "null"}), |t| {
            schema::type_schema(&t)
        }),
        other => schema::output_schema(other.as_ref()),
    };
    FunctionSig {
        id: f.id.clone(),
        signature: f.signature(),
        input: f.input_schema(),
        output,
    }
}

impl Catalog for ShapeCatalog {
    fn lookup(&self, capability: &str, function: &str) -> Lookup {
        let Some(shape) = self.shapes.get(capability) else {
            return Lookup::NoCapability {
                known: self.shapes.keys().cloned().collect(),
            };
        };
        match shape.export(function) {
            Some(f) => Lookup::Found(function_sig(f)),
            None => Lookup::NoFunction {
                exports: shape.exports.iter().map(|e| e.id.clone()).collect(),
            },
        }
    }
}
