//! The crate's modules depend on each other one way only (docs/architecture.md,
//! "Modules and their dependencies").
//!
//! Reads `host/src/**/*.rs`, collects every `crate::a::b` and `super::b`
//! path outside `#[cfg(test)]` code and comments, and checks that the graph
//! of modules has no cycle: at the top level, and one level down inside the
//! folders whose parts must not lean on each other both ways (`server`,
//! `pipeline`, `store`, `sandbox`).
//!
//! `store` is split because its parts sit at different layers: the KV
//! interface runs on `store::kv`, while `store::requests` persists held
//! requests with the policy's approval `Mode` (and `policy` takes its
//! grant types from `interfaces`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Folders whose direct submodules are nodes of their own.
const SPLIT: &[&str] = &["server", "pipeline", "store", "sandbox"];

type Node = String;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file (`server/submit.rs` -> `[server, submit]`).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The graph node a module path belongs to.
fn node(path: &[String]) -> Option<Node> {
    let first = path.first()?;
    match path.get(1) {
        Some(second) if SPLIT.contains(&first.as_str()) => Some(format!("{first}::{second}")),
        _ => Some(first.clone()),
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The leading `a::b::c` identifier segments of `text`.
fn segments(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut tail = text.trim_start();
    loop {
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if end == 0 {
            break;
        }
        out.push(&tail[..end]);
        match tail[end..].strip_prefix("::") {
            Some(next) => tail = next,
            None => break,
        }
    }
    out
}

/// The paths a `use` group names: `{a::B, c}` -> `[a, B]`, `[c]` (one level
/// of nesting is enough for this crate's imports).
fn group(text: &str) -> Vec<Vec<&str>> {
    let Some(inner) = text.strip_prefix('{') else {
        return vec![segments(text)];
    };
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(segments(&inner[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(segments(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Paths following each occurrence of `prefix` (`crate::`, `super::`),
/// with `use` groups expanded.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        found.extend(group(rest));
    }
    found
}

/// Items re-exported at the crate root (`pub use a::{B, C}`): name -> module.
fn root_reexports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = rest.split("::").next().unwrap_or_default().to_string();
        let names = rest.rsplit("::").next().unwrap_or_default();
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            out.insert(name.trim().to_string(), module.clone());
        }
    }
    out
}

fn graph() -> BTreeMap<Node, BTreeSet<Node>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let roots = root_reexports();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(f).first().cloned())
        .collect();
    let paths: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    for file in &files {
        let me_path = module_of(file);
        let Some(me) = node(&me_path) else {
            continue; // lib.rs and main.rs only declare and re-export
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let code = code(&text);
        let mut targets = Vec::new();
        for segments in paths_after(&code, "crate::") {
            let Some(first) = segments.first() else {
                continue;
            };
            let path: Vec<String> = if modules.contains(*first) {
                segments.iter().map(|s| s.to_string()).collect()
            } else if let Some(module) = roots.get(*first) {
                vec![module.clone()]
            } else {
                continue;
            };
            targets.push(path);
        }
        // `super::x` in `a/b.rs` (module a::b) and in `a/b/mod.rs` is a::x.
        let parent: Vec<String> = me_path[..me_path.len().saturating_sub(1)].to_vec();
        for segments in paths_after(&code, "super::") {
            if segments.first() == Some(&"super") {
                continue; // super::super: rare, and never across the split folders
            }
            let mut path = parent.clone();
            path.extend(segments.iter().map(|s| s.to_string()));
            targets.push(path);
        }
        for target in targets {
            // The longest prefix that is a module (`sandbox::Sandbox` is `sandbox`).
            let known = (1..=target.len())
                .rev()
                .map(|n| &target[..n])
                .find(|p| paths.contains(*p));
            if let Some(t) = known.and_then(node)
                && t != me
            {
                edges.entry(me.clone()).or_default().insert(t);
            }
        }
    }
    edges
}

/// Every strongly connected component with more than one module.
fn cycles(edges: &BTreeMap<Node, BTreeSet<Node>>) -> Vec<Vec<Node>> {
    // Reachability is enough at this size: a and b share a cycle when each reaches the other.
    let reach = |from: &Node| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let nodes: BTreeSet<Node> = edges
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a.clone()).chain(bs.iter().cloned()))
        .collect();
    let reaches: BTreeMap<Node, BTreeSet<Node>> =
        nodes.iter().map(|n| (n.clone(), reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(n) {
            continue;
        }
        let comp: Vec<Node> = nodes
            .iter()
            .filter(|m| *m == n || (reaches[n].contains(*m) && reaches[*m].contains(n)))
            .cloned()
            .collect();
        done.extend(comp.iter().cloned());
        if comp.len() > 1 {
            out.push(comp);
        }
    }
    out
}

#[test]
fn no_two_modules_import_each_other_directly_or_through_others() {
    let edges = graph();
    let found = cycles(&edges);
    let shown: Vec<String> = found
        .iter()
        .map(|comp| {
            let detail: Vec<String> = comp
                .iter()
                .map(|a| {
                    let to: Vec<&str> = edges[a]
                        .iter()
                        .filter(|b| comp.contains(b))
                        .map(String::as_str)
                        .collect();
                    format!("  {a} -> {}", to.join(", "))
                })
                .collect();
            format!("cycle among {}:\n{}", comp.join(", "), detail.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", shown.join("\n"));
}

#[test]
fn the_checker_sees_the_edges_it_must_see() {
    // If path extraction broke, the test above would pass vacuously.
    let edges = graph();
    let has = |a: &str, b: &str| edges.get(a).is_some_and(|t| t.contains(b));
    assert!(has("host", "pipeline::route"), "{edges:#?}");
    assert!(has("server::submit", "server::idempotency"), "{edges:#?}");
    assert!(has("pipeline::execute", "sandbox"), "{edges:#?}");
    assert!(has("pipeline::route", "capability"), "{edges:#?}");
    // The three cycles issue 15 names are gone.
    assert!(!has("policy", "approval") && !edges.contains_key("approval"));
    assert!(!has("interfaces", "sandbox"), "{edges:#?}");
    assert!(!has("server::state", "server::approvals"), "{edges:#?}");
    assert!(!has("server::approvals", "server::submit"), "{edges:#?}");
    let (a, b): (Vec<String>, Vec<String>) =
        (vec!["x".into(), "y".into()], vec!["y".into(), "x".into()]);
    let mut toy = BTreeMap::new();
    toy.insert(a[0].clone(), BTreeSet::from([a[1].clone()]));
    toy.insert(b[0].clone(), BTreeSet::from([b[1].clone()]));
    assert_eq!(cycles(&toy), vec![vec!["x".to_string(), "y".to_string()]]);
}
