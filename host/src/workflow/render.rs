//! Readable views of a plan: `warden workflow explain` (the plan in journal
//! order with its hash) and `warden workflow graph` (Mermaid). Pure text
//! rendering; it never checks anything (that is `check.rs`).

use super::plan::{Action, Compensation, Plan};
use crate::digest::canonical_json;
use std::fmt::Write as _;

/// The plan as an operator reads it: name, hash, input type, then each
/// step in `order` with what it calls, needs, when it runs and what undoes it.
pub fn explain(plan: &Plan, order: &[usize]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "workflow    {}", plan.name);
    let _ = writeln!(out, "plan hash   {}", plan.hash());
    if let Some(d) = &plan.description {
        let _ = writeln!(out, "about       {d}");
    }
    let _ = writeln!(out, "source      {}", plan.source.display());
    let _ = writeln!(
        out,
        "parallel    at most {} step(s) at once",
        plan.max_parallel
    );
    let _ = writeln!(out, "input       {}", canonical_json(&plan.input));
    match plan.pivot() {
        Some(p) => {
            let _ = writeln!(
                out,
                "pivot       `{}`: a failure before it compensates; after it, retries then needs_attention",
                p.id
            );
        }
        None => {
            let _ = writeln!(
                out,
                "pivot       none: any failure compensates the finished steps"
            );
        }
    }
    for (n, &i) in order.iter().enumerate() {
        let step = &plan.steps[i];
        let _ = writeln!(out);
        let pivot = if step.pivot { "  [pivot]" } else { "" };
        let _ = writeln!(out, "{}. {}{pivot}", n + 1, step.id);
        match &step.action {
            Action::Call(c) => {
                let _ = writeln!(out, "   call        {}.{}", c.capability, c.function);
                let _ = writeln!(out, "   input       {}", canonical_json(&c.input_written));
            }
            Action::Approval(g) => {
                let who = if g.approvers.is_empty() {
                    "anyone with the approve role".to_string()
                } else {
                    g.approvers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    out,
                    "   approval    {} ({}), expires in {}s",
                    g.mode.as_str(),
                    who,
                    g.expires.as_secs()
                );
            }
        }
        if !step.needs.is_empty() {
            let needs: Vec<&str> = step.needs.iter().map(|(n, _)| n.as_str()).collect();
            let _ = writeln!(out, "   needs       {}", needs.join(", "));
        }
        if let Some(w) = &step.when {
            let _ = writeln!(out, "   when        {}", w.source());
        }
        if let Some(t) = step.timeout {
            let _ = writeln!(out, "   timeout     {}ms", t.as_millis());
        }
        if let Some(r) = &step.retry {
            let _ = writeln!(
                out,
                "   retry       {}",
                serde_json::to_value(r).map_or_else(|_| "?".into(), |v| canonical_json(&v))
            );
        }
        match &step.compensate {
            Compensation::Undeclared => {}
            Compensation::Nothing => {
                let _ = writeln!(out, "   compensate  none (changes nothing)");
            }
            Compensation::Call(c) => {
                let _ = writeln!(
                    out,
                    "   compensate  {}.{} {}",
                    c.capability,
                    c.function,
                    canonical_json(&c.input_written)
                );
            }
        }
    }
    out
}

/// A Mermaid flowchart: one node per step (approvals as hexagons, the
/// pivot marked), one edge per `needs`, conditions on the node.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for step in &plan.steps {
        let mut label = step.id.to_string();
        match &step.action {
            Action::Call(c) => {
                let _ = write!(label, "<br/>{}.{}", c.capability, c.function);
            }
            Action::Approval(g) => {
                let _ = write!(label, "<br/>approval: {}", g.mode.as_str());
            }
        }
        if let Some(w) = &step.when {
            let _ = write!(label, "<br/>when {}", w.source());
        }
        if let Compensation::Call(c) = &step.compensate {
            let _ = write!(label, "<br/>undo: {}.{}", c.capability, c.function);
        }
        let label = escape(&label);
        let node = match &step.action {
            Action::Approval(_) => format!("    {}{{{{\"{label}\"}}}}\n", step.id),
            Action::Call(_) => format!("    {}[\"{label}\"]\n", step.id),
        };
        out.push_str(&node);
    }
    for step in &plan.steps {
        for (need, _) in &step.needs {
            let _ = writeln!(out, "    {need} --> {}", step.id);
        }
    }
    if let Some(p) = plan.pivot() {
        out.push_str("    classDef pivot stroke-width:4px\n");
        let _ = writeln!(out, "    class {} pivot", p.id);
    }
    out
}

/// Mermaid label text: quotes and angle brackets (other than our `<br/>`)
/// as entity codes, so operator text cannot break the chart.
fn escape(label: &str) -> String {
    label
        .replace('"', "#quot;")
        .replace("<br/>", "\u{0}")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('\u{0}', "<br/>")
}
