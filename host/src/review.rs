//! A reviewer's view of a policy beside a component: every import with the
//! grant that covers it (or why none can), and every grant no import uses.
//!
//! `warden inspect` and `warden policy check` print it. A grant that no
//! import uses is a warning, not an error: the component links without it,
//! but it is authority a rebuilt component could start using without anyone
//! reviewing the policy again (an unused read-write preopen, KV, the system
//! clock). `--deny-warnings` turns them into errors.
//!
//! Pure: no I/O; it never decides whether a component loads (the linker
//! does, `sandbox::linker_for`).

use crate::component::Shape;
use crate::interfaces::catalogue::Grant;
use crate::policy::{Policy, default_grant_settings};

/// How one import stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The policy grants it.
    Granted,
    /// The policy does not grant it (the component is refused at load).
    Refused,
    /// No policy can grant it (raw sockets, unknown interfaces, bare
    /// functions): the component can never load as built.
    NeverGrantable(String),
    /// No policy was given, and a policy could grant it.
    NotJudged,
}

impl Status {
    /// The word `inspect` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Granted => "granted",
            Status::Refused => "refused",
            Status::NeverGrantable(_) => "never grantable",
            Status::NotJudged => "not judged",
        }
    }

    /// Whether the component cannot load as things stand.
    pub fn blocks_loading(&self) -> bool {
        matches!(self, Status::Refused | Status::NeverGrantable(_))
    }
}

/// One import and how it stands.
#[derive(Debug, Clone)]
pub struct ImportReview<'p> {
    /// The full import name.
    pub name: String,
    /// Granted, refused, never grantable or not judged.
    pub status: Status,
    /// The grant that covers it.
    pub grant: Option<&'p Grant>,
}

/// The review of one component (and, when given, its policy).
#[derive(Debug, Clone)]
pub struct Review<'p> {
    /// Every import, in declaration order.
    pub imports: Vec<ImportReview<'p>>,
    /// Warnings: grants that cover no import.
    pub warnings: Vec<String>,
}

impl Review<'_> {
    /// Whether any import keeps the component from loading.
    pub fn blocks_loading(&self) -> bool {
        self.imports.iter().any(|i| i.status.blocks_loading())
    }
}

/// Reviews `shape`'s imports against `policy` (or alone).
pub fn review<'p>(shape: &Shape, policy: Option<&'p Policy>) -> Review<'p> {
    let imports = shape
        .imports
        .iter()
        .map(|i| {
            let never = match &i.interface {
                None => Some(format!(
                    "`{}` is not an interface (a bare function import): no policy can grant it",
                    i.name
                )),
                Some(n) => default_grant_settings(n).err(),
            };
            let grant = policy.and_then(|p| i.interface.as_ref().and_then(|n| p.grants(n)));
            let status = match (policy, grant, never) {
                (_, Some(_), _) => Status::Granted,
                (_, None, Some(why)) => Status::NeverGrantable(why),
                (Some(_), None, None) => Status::Refused,
                (None, None, None) => Status::NotJudged,
            };
            ImportReview {
                name: i.name.clone(),
                status,
                grant,
            }
        })
        .collect::<Vec<_>>();
    let warnings = policy
        .map(|p| {
            p.imports
                .iter()
                .filter(|g| {
                    !imports
                        .iter()
                        .any(|i| i.grant.is_some_and(|used| used.name == g.name))
                })
                .map(|g| {
                    format!(
                        "`{}` is granted but the component imports nothing it covers: remove the grant \
                         (unused authority: a rebuilt component could start using it unreviewed)",
                        g.name
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Review { imports, warnings }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::component::Import;
    use crate::names::InterfaceName;
    use std::path::Path;

    fn shape(imports: &[&str]) -> Shape {
        Shape {
            imports: imports
                .iter()
                .map(|n| Import {
                    name: (*n).to_owned(),
                    interface: InterfaceName::parse(n).ok(),
                })
                .collect(),
            exports: Vec::new(),
        }
    }

    fn policy(imports: &str) -> Policy {
        Policy::parse(
            Path::new("p.toml"),
            &format!("[capability]\nname = \"x\"\ncomponent = \"x.wasm\"\n[imports]\n{imports}"),
        )
        .unwrap()
    }

    #[test]
    fn a_grant_no_import_uses_is_a_warning_naming_it() {
        let p = policy(
            "\"wasi:io/streams\" = {}\n\"warden:host/kv\" = {}\n\"wasi:clocks/wall-clock\" = { mode = \"system\" }\n",
        );
        let r = review(&shape(&["wasi:io/streams@0.2.6"]), Some(&p));
        assert_eq!(r.imports[0].status, Status::Granted);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("`warden:host/kv` is granted"))
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("`wasi:clocks/wall-clock` is granted"))
        );
        assert!(!r.blocks_loading());
    }

    #[test]
    fn sockets_are_never_grantable_even_without_a_policy() {
        let r = review(
            &shape(&["wasi:sockets/tcp@0.2.6", "wasi:io/poll@0.2.6"]),
            None,
        );
        assert!(matches!(r.imports[0].status, Status::NeverGrantable(_)));
        assert_eq!(r.imports[1].status, Status::NotJudged);
        assert!(r.blocks_loading());
    }

    #[test]
    fn an_import_the_policy_omits_is_refused() {
        let p = policy("\"wasi:io/streams\" = {}\n");
        let r = review(
            &shape(&["wasi:io/streams@0.2.6", "wasi:io/poll@0.2.6"]),
            Some(&p),
        );
        assert_eq!(r.imports[1].status, Status::Refused);
        assert!(r.blocks_loading());
        assert!(r.warnings.is_empty());
    }
}
