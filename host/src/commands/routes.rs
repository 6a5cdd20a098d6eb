//! `warden routes check|explain`.

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_host::component::Shape;
use warden_host::policy::Policy;
use warden_host::router::{Decision, RouteRequest, RouteTable};
use warden_host::signing::TrustStore;
use warden_host::{Host, HostConfig};

/// Validate a route table, or show how it routes a request.
#[derive(Subcommand)]
pub enum Cmd {
    /// Validate a route table: syntax, duplicate ids, shadowed rules and, with
    /// `--policies` and `--components`, that every route names a loadable
    /// capability and a function it exports.
    ///
    /// Exit code 0 when valid, 2 otherwise (every problem is listed, with file:line:col).
    Check(CheckArgs),
    /// Show which rule a request matches and why each earlier rule did not.
    ///
    /// Exit code 0 when a rule matches, 4 when no rule does (`no_route`),
    /// 2 when the table is invalid.
    Explain(ExplainArgs),
}

/// `warden routes check`.
#[derive(ClapArgs)]
pub struct CheckArgs {
    /// The route table.
    #[arg(long, default_value = "routes.toml")]
    pub routes: PathBuf,
    /// Directory of capability policies (`*.toml`); loads every capability to
    /// check routes against what it exports.
    #[arg(long, requires = "components")]
    pub policies: Option<PathBuf>,
    /// Directory holding the components the policies name.
    #[arg(long, requires = "policies")]
    pub components: Option<PathBuf>,
    /// Trust file: which keys may sign which capabilities (docs/signing.md).
    #[arg(long, env = "WARDEN_TRUST", requires = "policies")]
    pub trust: Option<PathBuf>,
    /// Development only: load components without a trusted signature.
    #[arg(long, requires = "policies", conflicts_with = "trust")]
    pub allow_unsigned: bool,
}

/// `warden routes explain`.
#[derive(ClapArgs)]
pub struct ExplainArgs {
    /// The route table.
    #[arg(long, default_value = "routes.toml")]
    pub routes: PathBuf,
    /// The request kind, e.g. `invoice.create`.
    #[arg(long)]
    pub kind: String,
    /// The request's tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// A request attribute, `key=value`; repeat for more.
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
}

fn parse_attr(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not key=value")),
    }
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check(a) => check(a),
        Cmd::Explain(a) => explain(a),
    }
}

fn load(path: &Path) -> Result<RouteTable, ExitCode> {
    RouteTable::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} problem(s) in {}", errors.0.len(), path.display());
        ExitCode::from(2)
    })
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let table = match load(&args.routes) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let (Some(policies), Some(components)) = (&args.policies, &args.components) else {
        println!(
            "ok: {} is valid: {} route(s), no duplicate ids, none shadowed (table hash {})",
            args.routes.display(),
            table.rules().len(),
            table.hash()
        );
        println!(
            "note: capabilities and functions were not checked; pass --policies and --components to check them"
        );
        return Ok(ExitCode::SUCCESS);
    };
    if args.trust.is_none() && !args.allow_unsigned {
        anyhow::bail!(
            "--policies needs --trust <trust.toml> (or --allow-unsigned in development) to load the capabilities"
        );
    }
    let (catalog, load_failures) = load_catalog(
        policies,
        components,
        args.trust.as_deref(),
        args.allow_unsigned,
    )?;
    let result = table.check(&|name: &str| catalog.get(name).cloned());
    if let Err(errors) = &result {
        eprintln!("{errors}");
    }
    if result.is_err() || load_failures > 0 {
        let problems = result.err().map_or(0, |e| e.0.len()) + load_failures;
        eprintln!("{problems} problem(s) checking {}", args.routes.display());
        return Ok(ExitCode::from(2));
    }
    println!(
        "ok: {} is valid: {} route(s) against {} capability(ies) (table hash {})",
        args.routes.display(),
        table.rules().len(),
        catalog.len(),
        table.hash()
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads every capability in `policies` through a [`Host`] and returns each
/// one's exported function ids, plus how many failed to load (reported on stderr).
fn load_catalog(
    policies: &Path,
    components: &Path,
    trust: Option<&Path>,
    allow_unsigned: bool,
) -> anyhow::Result<(BTreeMap<String, Vec<String>>, usize)> {
    let (shapes, failures) = load_shapes(policies, components, trust, allow_unsigned)?;
    let catalog = shapes
        .into_iter()
        .map(|(name, shape)| (name, shape.exports.iter().map(|e| e.id.clone()).collect()))
        .collect();
    Ok((catalog, failures))
}

/// Loads every capability in `policies` through a [`Host`] and returns each
/// one's shape (imports, exports with WIT types), plus how many failed to
/// load (reported on stderr). `workflow check` uses it too.
pub(crate) fn load_shapes(
    policies: &Path,
    components: &Path,
    trust: Option<&Path>,
    allow_unsigned: bool,
) -> anyhow::Result<(BTreeMap<String, Shape>, usize)> {
    let trust = match trust {
        Some(path) => Some(TrustStore::load(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let mut host = Host::new(HostConfig {
        trust,
        allow_unsigned,
        ..HostConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(policies)
        .with_context(|| format!("reading policies directory {}", policies.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut catalog = BTreeMap::new();
    let mut failures = 0;
    for file in files {
        let policy = match Policy::load(&file) {
            Ok(p) => p,
            Err(errors) => {
                eprintln!("{errors}");
                failures += errors.0.len();
                continue;
            }
        };
        let component = components.join(&policy.capability.component);
        match host.load_files(&file, &component) {
            Ok(cap) => {
                catalog.insert(cap.name().to_string(), cap.shape.clone());
            }
            Err(e) => {
                eprintln!(
                    "{}: capability `{}` could not be loaded: {e}",
                    file.display(),
                    policy.capability.name
                );
                failures += 1;
            }
        }
    }
    Ok((catalog, failures))
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let table = match load(&args.routes) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    // Canonical, as the daemon makes it at admission.
    let tenant = match args.tenant.as_deref().map(warden_host::Tenant::parse) {
        Some(Err(e)) => {
            eprintln!("error: --tenant: {e}");
            return Ok(ExitCode::from(2));
        }
        Some(Ok(t)) => Some(t.to_string()),
        None => None,
    };
    let request = RouteRequest {
        kind: args.kind,
        tenant,
        attributes: args.attrs.into_iter().collect(),
    };
    let file = args.routes.display();
    for v in table.explain(&request) {
        let verdict = if v.matched { "matches" } else { "no" };
        println!(
            "{file}:{}: route `{}`: {verdict}: {}",
            v.line, v.rule_id, v.reason
        );
    }
    match table.decide(&request) {
        Decision::Route {
            rule_id,
            capability,
            function,
        } => {
            println!("=> route `{rule_id}`: {capability} / {function}");
            println!("table hash {}", table.hash());
            Ok(ExitCode::SUCCESS)
        }
        Decision::NoRoute => {
            println!(
                "=> no_route: none of the {} rule(s) matches",
                table.rules().len()
            );
            println!("table hash {}", table.hash());
            Ok(ExitCode::from(4))
        }
    }
}
