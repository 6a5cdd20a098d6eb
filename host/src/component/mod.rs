//! Components: load, inspect imports and exports, convert JSON <-> values,
//! describe exports as WIT and JSON Schema.
//!
//! Inspection reads only what the compiled component declares; it never
//! instantiates or runs guest code.

pub mod convert;
pub mod schema;
pub mod wit;

use crate::policy::{FunctionId, InterfaceName};
use serde_json::Value;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, Type};

/// One import of a component, as the component names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The full import name, e.g. `wasi:io/streams@0.2.6`.
    pub name: String,
    /// The parsed interface name; `None` when the import is not an interface
    /// (a bare function or a malformed name: never grantable).
    pub interface: Option<InterfaceName>,
}

/// One exported function.
#[derive(Debug, Clone)]
pub struct ExportFunc {
    /// How callers name it: `echo` for a top-level function,
    /// `<interface export>#<function>` inside an exported interface
    /// (e.g. `warden-test:all-types/calc#add`).
    pub id: String,
    /// The exported interface it lives in, if any.
    pub interface: Option<String>,
    /// The function's own name.
    pub name: String,
    /// Parameters with their WIT names and types.
    pub params: Vec<(String, Type)>,
    /// The result type, if any.
    pub result: Option<Type>,
    /// Whether every parameter and the result can cross JSON.
    pub callable: bool,
    pub(crate) index: ComponentExportIndex,
}

impl ExportFunc {
    /// The WIT signature, e.g. `func(message: string) -> string`.
    pub fn signature(&self) -> String {
        wit::render_signature(&self.params, self.result.as_ref())
    }

    /// JSON Schema of the input object.
    pub fn input_schema(&self) -> Value {
        schema::input_schema(&self.params)
    }

    /// JSON Schema of the output.
    pub fn output_schema(&self) -> Value {
        schema::output_schema(self.result.as_ref())
    }

    /// The canonical identity every comparison of function names uses.
    pub fn function_id(&self) -> FunctionId {
        FunctionId::from_export_id(&self.id)
    }

    /// Whether the result is a `result<..>`: an `err` is a capability error.
    pub fn returns_result(&self) -> bool {
        matches!(self.result, Some(Type::Result(_)))
    }
}

/// What a component declares: its imports (the authority it asks for) and
/// its exported functions (the operations it offers).
#[derive(Debug, Clone)]
pub struct Shape {
    /// Every import, in declaration order.
    pub imports: Vec<Import>,
    /// Every exported function, top-level first, then interface functions.
    pub exports: Vec<ExportFunc>,
}

impl Shape {
    /// Reads the imports and exports of a compiled component.
    pub fn of(engine: &Engine, component: &Component) -> Shape {
        let ty = component.component_type();
        let imports = ty
            .imports(engine)
            // A type import (a record named at world level) carries no
            // authority and needs no definition; everything else must be granted.
            .filter(|(_, item)| !matches!(item.ty, ComponentItem::Type(_)))
            .map(|(name, _)| Import {
                name: name.to_string(),
                interface: InterfaceName::parse(name).ok(),
            })
            .collect();
        let mut exports = Vec::new();
        for (name, item) in ty.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(f) => {
                    if let Some(index) = component.get_export_index(None, name) {
                        exports.push(export_func(name.to_string(), None, name, &f, index));
                    }
                }
                ComponentItem::ComponentInstance(inst) => {
                    let Some(inst_index) = component.get_export_index(None, name) else {
                        continue;
                    };
                    for (fname, fitem) in inst.exports(engine) {
                        if let ComponentItem::ComponentFunc(f) = fitem.ty
                            && let Some(index) =
                                component.get_export_index(Some(&inst_index), fname)
                        {
                            exports.push(export_func(
                                format!("{name}#{fname}"),
                                Some(name.to_string()),
                                fname,
                                &f,
                                index,
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Shape { imports, exports }
    }

    /// Resolves a caller's name for a function to its canonical identity:
    /// the export id itself, or the short form `iface#func` when exactly
    /// one export has it. Every place that names a function (approval
    /// rules, routes, `--call`, [`crate::Call`]) goes through this once.
    pub fn resolve(&self, name: &str) -> Option<FunctionId> {
        self.export(name).map(ExportFunc::function_id)
    }

    /// Finds an export by its id (`echo`, `ns:pkg/iface#func`) or by the short
    /// form `iface#func` when that is unambiguous.
    pub fn export(&self, id: &str) -> Option<&ExportFunc> {
        if let Some(f) = self.exports.iter().find(|f| f.id == id) {
            return Some(f);
        }
        let (iface, func) = id.split_once('#')?;
        let mut matches = self.exports.iter().filter(|f| {
            f.name == func
                && f.interface.as_deref().is_some_and(|i| {
                    let short = i.rsplit('/').next().unwrap_or(i);
                    short.split('@').next() == Some(iface)
                })
        });
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }
}

fn export_func(
    id: String,
    interface: Option<String>,
    name: &str,
    f: &wasmtime::component::types::ComponentFunc,
    index: ComponentExportIndex,
) -> ExportFunc {
    let params: Vec<(String, Type)> = f.params().map(|(n, t)| (n.to_string(), t)).collect();
    let result = f.results().next();
    let callable = params
        .iter()
        .all(|(_, t)| convert::is_json_representable(t))
        && result.as_ref().is_none_or(convert::is_json_representable);
    ExportFunc {
        id,
        interface,
        name: name.to_string(),
        params,
        result,
        callable,
        index,
    }
}
