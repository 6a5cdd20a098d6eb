//! Renders component types and function signatures as WIT text, for
//! security reviewers (`warden inspect`) and error messages.
//!
//! Named types (records, variants, …) are shown structurally, because the
//! compiled component does not keep their WIT names.

use wasmtime::component::Type;

/// WIT text for a type, e.g. `list<record { x: s32, y: s32 }>`.
pub fn render_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", render_type(&l.ty())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", render_type(&l.ty()), l.len()),
        Type::Map(m) => format!(
            "map<{}, {}>",
            render_type(&m.key()),
            render_type(&m.value())
        ),
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields()
                .map(|f| format!("{}: {}", f.name, render_type(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let items: Vec<String> = t.types().map(|t| render_type(&t)).collect();
            format!("tuple<{}>", items.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match &c.ty {
                    Some(t) => format!("{}({})", c.name, render_type(t)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", render_type(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", render_type(&ok)),
            (None, Some(err)) => format!("result<_, {}>", render_type(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", render_type(&ok), render_type(&err)),
        },
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

/// WIT text for a function signature: `func(a: u32, b: string) -> string`.
pub fn render_signature(params: &[(String, Type)], result: Option<&Type>) -> String {
    let ps: Vec<String> = params
        .iter()
        .map(|(n, t)| format!("{n}: {}", render_type(t)))
        .collect();
    match result {
        Some(r) => format!("func({}) -> {}", ps.join(", "), render_type(r)),
        None => format!("func({})", ps.join(", ")),
    }
}
