//! The static checker behind `warden workflow check`: everything about a
//! plan that can be known before a run, reported all at once with
//! `file:line:col` (docs/workflows.md, "What check refuses").
//!
//! Graph: `needs` naming no step, cycles, unreachable steps (in or behind a
//! cycle, or behind a `when` that is always false). Data flow: every
//! template and `when` path must be able to exist (a field of the declared
//! input; the output of a step the reader needs, directly or not). With a
//! [`Catalog`] of loaded capabilities: unknown capabilities and functions
//! (calls and compensations), and templates whose type cannot match the
//! function's WIT parameters. Saga: every step that can finish before the
//! pivot declares its compensation; a compensation that can never run is
//! refused. Pure: the catalog is handed in; nothing here does I/O.

use super::plan::{Action, Call, Compensation, Plan, Problems};
use super::template::{Path, Root, Seg};
use super::types::{can_match, navigate, template_schema};
use crate::diagnostic::Diagnostics;
use crate::policy::predicate::Step as PredStep;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// What the checker knows of one function: its canonical id and the JSON
/// Schemas of its input object and of the output a step sees.
#[derive(Debug, Clone)]
pub struct FunctionSig {
    /// The canonical export id.
    pub id: String,
    /// The WIT signature, for messages.
    pub signature: String,
    /// JSON Schema of the input object (one property per parameter).
    pub input: Value,
    /// JSON Schema of the step's output: the function's result, or for a
    /// `result<T, E>` the `ok` payload `T` (an `err` fails the step).
    pub output: Value,
}

/// The answer of a [`Catalog`] lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// No capability of that name is loaded.
    NoCapability {
        /// The capabilities that are.
        known: Vec<String>,
    },
    /// The capability exports no function of that name.
    NoFunction {
        /// Its exported function ids.
        exports: Vec<String>,
    },
    /// Found.
    Found(FunctionSig),
}

/// The loaded capabilities the checker checks calls against.
pub trait Catalog {
    /// Resolves `capability` and `function` (export id or `iface#func`).
    fn lookup(&self, capability: &str, function: &str) -> Lookup;
}

/// What a checked plan yields: the order steps are journaled and audited
/// in (plan order, each step after the steps it needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Step indexes in journal order.
    pub order: Vec<usize>,
    /// Whether function types were checked (a catalog was given).
    pub typed: bool,
}

/// The output an approval step gives later steps.
pub fn approval_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"approved_by": {"type": "array", "items": {"type": "string"}}},
        "required": ["approved_by"],
        "additionalProperties": false,
    })
}

/// Checks `plan`, against `catalog` when given.
pub fn check(plan: &Plan, catalog: Option<&dyn Catalog>) -> Result<Checked, Diagnostics> {
    let mut p = Problems::new(&plan.source, &plan.text);
    let n = plan.steps.len();
    let index: BTreeMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();

    // Graph: needs → deps.
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, step) in plan.steps.iter().enumerate() {
        for (need, span) in &step.needs {
            match index.get(need.as_str()) {
                Some(&j) if j != i => {
                    deps[i].insert(j);
                }
                Some(_) => {} // needs itself: refused by the plan parser
                None => p.at(
                    span.start,
                    format!(
                        "step `{}` needs `{need}`, which is not a step of this plan (steps: {})",
                        step.id,
                        plan.steps
                            .iter()
                            .map(|s| format!("`{}`", s.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
    }

    // Order (Kahn, lowest plan index first); what remains is in or behind a cycle.
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    loop {
        let next = (0..n).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => break,
        }
    }
    let mut reported = vec![false; n];
    for i in 0..n {
        if placed[i] || reported[i] {
            continue;
        }
        if let Some(cycle) = cycle_through(i, &deps) {
            for &c in &cycle {
                reported[c] = true;
            }
            let names: Vec<String> = cycle
                .iter()
                .chain(std::iter::once(&i))
                .map(|&c| format!("`{}`", plan.steps[c].id))
                .collect();
            let step = &plan.steps[i];
            let at = step
                .needs
                .first()
                .map_or(step.id_at.start, |(_, s)| s.start);
            p.at(
                at,
                format!(
                    "cycle in `needs`: {} (each waits for the next; no step of it can start)",
                    names.join(" needs ")
                ),
            );
        }
    }
    for i in 0..n {
        if placed[i] || reported[i] {
            continue;
        }
        let blocker = deps[i].iter().find(|&&d| !placed[d]).copied().unwrap_or(i);
        p.at(
            plan.steps[i].id_at.start,
            format!(
                "step `{}` is unreachable: it needs `{}`, which is in or behind a cycle",
                plan.steps[i].id, plan.steps[blocker].id
            ),
        );
    }

    // Ancestors (acyclic part).
    let mut ancestors: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &i in &order {
        let mut all = BTreeSet::new();
        for &d in &deps[i] {
            all.insert(d);
            all.extend(ancestors[d].iter().copied());
        }
        ancestors[i] = all;
    }

    // `when` that can never hold.
    for step in &plan.steps {
        if let Some(when) = &step.when
            && when.is_constant()
            && when.eval_in(&Map::new()) != Ok(true)
        {
            p.at(
                step.when_at.start,
                format!(
                    "step `{}` is unreachable: its `when` ({}) is never true",
                    step.id,
                    when.source()
                ),
            );
        }
    }

    // Functions.
    let mut sigs: BTreeMap<usize, FunctionSig> = BTreeMap::new();
    let mut comp_sigs: BTreeMap<usize, FunctionSig> = BTreeMap::new();
    if let Some(catalog) = catalog {
        for (i, step) in plan.steps.iter().enumerate() {
            if let Action::Call(call) = &step.action
                && let Some(sig) = resolve(catalog, call, &step.id.to_string(), "calls", &mut p)
            {
                sigs.insert(i, sig);
            }
            if let Compensation::Call(call) = &step.compensate
                && let Some(sig) = resolve(
                    catalog,
                    call,
                    &step.id.to_string(),
                    "is compensated by",
                    &mut p,
                )
            {
                comp_sigs.insert(i, sig);
            }
        }
    }
    let output_of = |j: usize| -> Value {
        match &plan.steps[j].action {
            Action::Approval(_) => approval_output_schema(),
            Action::Call(_) => sigs.get(&j).map_or(json!({}), |s| s.output.clone()),
        }
    };

    // Paths and types.
    for (i, step) in plan.steps.iter().enumerate() {
        if !placed[i] {
            continue;
        }
        let readable = |j: usize, self_too: bool| ancestors[i].contains(&j) || (self_too && j == i);
        let check_call = |call: &Call,
                          sig: Option<&FunctionSig>,
                          self_too: bool,
                          what: &str,
                          p: &mut Problems<'_>| {
            let mut resolve_path = |path: &Path| -> Value {
                match path_schema(plan, &index, path, &|j| readable(j, self_too), &output_of) {
                    Ok(s) => s,
                    Err(message) => {
                        p.near(
                            &call.input_at,
                            &path.text,
                            format!("step `{}`{what}: `${{{}}}` {message}", step.id, path.text),
                        );
                        json!({})
                    }
                }
            };
            let ty = template_schema(&call.input, &mut resolve_path);
            if let Some(sig) = sig
                && let Err(reasons) = can_match(&ty, &sig.input, "input")
            {
                for r in reasons {
                    let field = r
                        .strip_prefix("input.")
                        .and_then(|rest| rest.split([':', '.', '[']).next())
                        .unwrap_or("");
                    p.near(
                        &call.input_at,
                        field,
                        format!(
                            "step `{}`{what}: the input cannot match `{}.{}` ({}): {r}",
                            step.id, call.capability, sig.id, sig.signature
                        ),
                    );
                }
            }
        };
        if let Action::Call(call) = &step.action {
            check_call(call, sigs.get(&i), false, "", &mut p);
        }
        if let Compensation::Call(call) = &step.compensate {
            check_call(call, comp_sigs.get(&i), true, " (compensation)", &mut p);
        }
        if let Some(when) = &step.when {
            for (root, segs) in when.paths() {
                let text = pred_path_text(&root, &segs);
                let path = match super::template::parse_path(&text) {
                    Ok(path) => path,
                    Err(e) => {
                        p.at(
                            step.when_at.start,
                            format!("step `{}`: `when`: {e}", step.id),
                        );
                        continue;
                    }
                };
                if let Err(message) =
                    path_schema(plan, &index, &path, &|j| readable(j, false), &output_of)
                {
                    p.at(
                        step.when_at.start,
                        format!("step `{}`: `when` reads `{text}`, which {message}", step.id),
                    );
                }
            }
        }
    }

    // Saga: compensations.
    let pivot = plan.steps.iter().position(|s| s.pivot);
    for (i, step) in plan.steps.iter().enumerate() {
        if !matches!(step.action, Action::Call(_)) {
            continue;
        }
        let after_pivot = pivot.is_some_and(|v| v == i || ancestors[i].contains(&v));
        match (&step.compensate, after_pivot) {
            (Compensation::Undeclared, false) => p.at(
                step.id_at.start,
                format!(
                    "step `{}` can finish before {} and declares no compensation: add `compensate = {{ call = \"capability.function\", input = {{ … }} }}`, or `compensate = \"none\"` when it changes nothing",
                    step.id,
                    pivot.map_or("a failure (the plan has no pivot)".to_string(), |v| format!(
                        "the pivot `{}`",
                        plan.steps[v].id
                    ))
                ),
            ),
            (Compensation::Call(_), true) => p.at(
                step.compensate_at.start,
                format!(
                    "step `{}` runs at or after the pivot, so its compensation never runs (after the pivot a run is retried or stops for an operator): remove it",
                    step.id
                ),
            ),
            _ => {}
        }
    }

    p.finish()?;
    Ok(Checked {
        order,
        typed: catalog.is_some(),
    })
}

fn resolve(
    catalog: &dyn Catalog,
    call: &Call,
    step: &str,
    verb: &str,
    p: &mut Problems<'_>,
) -> Option<FunctionSig> {
    match catalog.lookup(&call.capability, &call.function) {
        Lookup::Found(sig) => Some(sig),
        Lookup::NoCapability { known } => {
            p.at(
                call.call_at.start,
                format!(
                    "step `{step}` {verb} `{}.{}`, but no capability `{}` is loaded (loaded: {})",
                    call.capability,
                    call.function,
                    call.capability,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            None
        }
        Lookup::NoFunction { exports } => {
            p.at(
                call.call_at.start,
                format!(
                    "step `{step}` {verb} `{}.{}`, but `{}` exports no function `{}` (it exports {})",
                    call.capability,
                    call.function,
                    call.capability,
                    call.function,
                    exports.join(", ")
                ),
            );
            None
        }
    }
}

/// The schema at `path`, or why nothing can be there.
fn path_schema(
    plan: &Plan,
    index: &BTreeMap<&str, usize>,
    path: &Path,
    readable: &dyn Fn(usize) -> bool,
    output_of: &dyn Fn(usize) -> Value,
) -> Result<Value, String> {
    let (mut schema, mut walked) = match &path.root {
        Root::Input => (plan.input.clone(), "input".to_string()),
        Root::Step(id) => {
            let Some(&j) = index.get(id.as_str()) else {
                return Err(format!("cannot exist: there is no step `{id}`"));
            };
            if !readable(j) {
                return Err(format!(
                    "cannot exist when this step runs: it does not need `{id}` (add `{id}` to its `needs`)"
                ));
            }
            (output_of(j), format!("steps.{id}.output"))
        }
    };
    for seg in &path.segs {
        schema = navigate(&schema, seg).map_err(|e| format!("cannot exist: `{walked}` {e}"))?;
        match seg {
            Seg::Field(f) => {
                walked.push('.');
                walked.push_str(f);
            }
            Seg::Index(i) => walked.push_str(&format!("[{i}]")),
        }
    }
    Ok(schema)
}

fn pred_path_text(root: &str, segs: &[PredStep]) -> String {
    let mut s = root.to_string();
    for seg in segs {
        match seg {
            PredStep::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PredStep::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The cycle through `start`, if there is one, as the list of its steps
/// starting at `start` (each needs the next; the last needs `start`).
fn cycle_through(start: usize, deps: &[BTreeSet<usize>]) -> Option<Vec<usize>> {
    // BFS over deps from start's deps back to start, keeping parents.
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue: std::collections::VecDeque<usize> = deps[start].iter().copied().collect();
    for &d in &deps[start] {
        parent.insert(d, start);
    }
    while let Some(v) = queue.pop_front() {
        if v == start {
            let mut path = vec![start];
            let mut at = parent.get(&start).copied();
            while let Some(a) = at {
                if a == start {
                    break;
                }
                path.push(a);
                at = parent.get(&a).copied();
            }
            // path is start, then back-pointers: reverse the tail to read forwards.
            path[1..].reverse();
            return Some(path);
        }
        for &d in &deps[v] {
            if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(d) {
                e.insert(v);
                queue.push_back(d);
            }
        }
    }
    None
}
