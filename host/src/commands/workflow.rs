//! `warden workflow check|explain|graph`: the operator's offline view of
//! workflow plans (docs/workflows.md). A thin shell over
//! `warden_host::workflow`; it never starts a run (`start|status|list|
//! cancel|resume` talk to the daemon: `workflow_runs.rs`).

use clap::{Args as ClapArgs, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_host::workflow::catalog::ShapeCatalog;
use warden_host::workflow::{Catalog, Plan, check, render};

/// Check workflow plans, explain one, or draw it.
#[derive(Subcommand)]
pub enum Cmd {
    /// Check plans: syntax, the step graph (unknown steps, cycles,
    /// unreachable steps), template and `when` paths, compensations and,
    /// with `--policies` and `--components`, every call's capability,
    /// function and input type against the WIT signature.
    ///
    /// Exit code 0 when every plan is valid, 2 otherwise (every problem is
    /// listed, with file:line:col).
    Check(CheckArgs),
    /// Print a plan in journal order with its hash (what a run pins).
    Explain(ExplainArgs),
    /// Print a plan as a Mermaid flowchart.
    Graph(GraphArgs),
    /// Start a run on the daemon: submit a request of a kind its route
    /// table sends to a workflow, then print the run.
    Start(super::workflow_runs::StartArgs),
    /// Print one run with its steps (state, attempts, outputs, audit seqs).
    Status(super::workflow_runs::StatusArgs),
    /// List runs, optionally in one state.
    List(super::workflow_runs::ListArgs),
    /// Cancel a run: compensate its done steps (role `approve`).
    Cancel(super::workflow_runs::CancelArgs),
    /// Resume a run in `needs_attention`, with an audited reason (role `approve`).
    Resume(super::workflow_runs::ResumeArgs),
}

/// Where the capabilities a plan calls come from (optional).
#[derive(ClapArgs)]
pub struct CapabilityArgs {
    /// Directory of capability policies (`*.toml`): loads every capability
    /// to check calls and input types against what it exports.
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

/// `warden workflow check`.
#[derive(ClapArgs)]
pub struct CheckArgs {
    /// Plan files; every `*.toml` in `--dir` when none is given.
    pub plans: Vec<PathBuf>,
    /// Directory of plans.
    #[arg(long, default_value = "workflows")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub capabilities: CapabilityArgs,
}

/// `warden workflow explain`.
#[derive(ClapArgs)]
pub struct ExplainArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub capabilities: CapabilityArgs,
}

/// `warden workflow graph`.
#[derive(ClapArgs)]
pub struct GraphArgs {
    /// The plan file.
    pub plan: PathBuf,
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check(a) => check_plans(a),
        Cmd::Explain(a) => explain(a),
        Cmd::Graph(a) => graph(a),
        Cmd::Start(a) => super::workflow_runs::start(a),
        Cmd::Status(a) => super::workflow_runs::status(a),
        Cmd::List(a) => super::workflow_runs::list(a),
        Cmd::Cancel(a) => super::workflow_runs::cancel(a),
        Cmd::Resume(a) => super::workflow_runs::resume(a),
    }
}

/// Loads the capabilities when asked to; the load failures are counted as problems.
fn catalog(args: &CapabilityArgs) -> anyhow::Result<Option<(ShapeCatalog, usize)>> {
    let (Some(policies), Some(components)) = (&args.policies, &args.components) else {
        return Ok(None);
    };
    if args.trust.is_none() && !args.allow_unsigned {
        anyhow::bail!(
            "--policies needs --trust <trust.toml> (or --allow-unsigned in development) to load the capabilities"
        );
    }
    let (shapes, failures) = super::routes::load_shapes(
        policies,
        components,
        args.trust.as_deref(),
        args.allow_unsigned,
    )?;
    let mut catalog = ShapeCatalog::new();
    for (name, shape) in shapes {
        catalog.insert(&name, shape);
    }
    Ok(Some((catalog, failures)))
}

fn plan_files(args: &CheckArgs) -> anyhow::Result<Vec<PathBuf>> {
    if !args.plans.is_empty() {
        return Ok(args.plans.clone());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .map_err(|e| anyhow::anyhow!("reading workflows directory {}: {e}", args.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no plans: {} holds no `*.toml`", args.dir.display());
    }
    Ok(files)
}

fn check_plans(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let files = plan_files(&args)?;
    let loaded = catalog(&args.capabilities)?;
    let mut problems = loaded.as_ref().map_or(0, |(_, failures)| *failures);
    let cat = loaded.as_ref().map(|(c, _)| c as &dyn Catalog);
    for file in &files {
        match Plan::load(file).and_then(|plan| check(&plan, cat).map(|c| (plan, c))) {
            Ok((plan, checked)) => println!(
                "ok: {}: workflow `{}`, {} step(s){} (plan hash {})",
                file.display(),
                plan.name,
                plan.steps.len(),
                if checked.typed {
                    ", calls and types checked"
                } else {
                    ""
                },
                plan.hash()
            ),
            Err(errors) => {
                eprintln!("{errors}");
                problems += errors.0.len().max(1);
            }
        }
    }
    if loaded.is_none() {
        println!(
            "note: capabilities, functions and input types were not checked; pass --policies and --components to check them"
        );
    }
    if problems > 0 {
        eprintln!("{problems} problem(s) in {} plan(s)", files.len());
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn load_checked(
    path: &Path,
    capabilities: &CapabilityArgs,
) -> anyhow::Result<Result<(Plan, Vec<usize>), ExitCode>> {
    let loaded = catalog(capabilities)?;
    let cat = loaded.as_ref().map(|(c, _)| c as &dyn Catalog);
    match Plan::load(path).and_then(|plan| check(&plan, cat).map(|c| (plan, c.order))) {
        Ok(ok) => Ok(Ok(ok)),
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} problem(s) in {}", errors.0.len(), path.display());
            Ok(Err(ExitCode::from(2)))
        }
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    match load_checked(&args.plan, &args.capabilities)? {
        Ok((plan, order)) => {
            print!("{}", render::explain(&plan, &order));
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn graph(args: GraphArgs) -> anyhow::Result<ExitCode> {
    match Plan::load(&args.plan) {
        Ok(plan) => {
            print!("{}", render::mermaid(&plan));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(2))
        }
    }
}
