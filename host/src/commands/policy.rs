//! `warden policy check|init`.

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::component::Shape;
use warden_host::policy::{InterfaceName, Policy, default_grant_settings};
use warden_host::review;
use warden_host::sandbox::{Sandbox, SandboxConfig, linker_for};

/// Validate or generate capability policies.
#[derive(Subcommand)]
pub enum Cmd {
    /// Validate a policy (every problem, with file:line), and against a component when given.
    ///
    /// With a component, grants that no import uses are warnings (unused
    /// authority). Exit code 0 when valid, 2 otherwise (and, with
    /// `--deny-warnings`, when there is a warning).
    Check(CheckArgs),
    /// Write a policy granting every import of a component with safe defaults
    /// (virtual clocks, seeded random, no preopens), for authors to review.
    Init(InitArgs),
}

/// `warden policy check`.
#[derive(ClapArgs)]
pub struct CheckArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// Also check that this component's imports are all granted.
    pub component: Option<PathBuf>,
    /// Treat warnings (grants no import of the component uses) as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `warden policy init`.
#[derive(ClapArgs)]
pub struct InitArgs {
    /// The component file (.wasm).
    pub component: PathBuf,
    /// Capability name (default: from the file name, kebab-cased).
    #[arg(long)]
    pub name: Option<String>,
    /// Write here instead of stdout. Refuses to overwrite an existing file.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check(a) => check(a),
        Cmd::Init(a) => init(a),
    }
}

pub(super) fn shape_of(path: &std::path::Path) -> anyhow::Result<(Sandbox, Shape)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent_instances: 1,
        ..SandboxConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component = wasmtime::component::Component::from_binary(sandbox.engine(), &bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid component: {e:#}", path.display()))?;
    let shape = Shape::of(sandbox.engine(), &component);
    Ok((sandbox, shape))
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let policy = match Policy::load(&args.policy) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} problem(s) in {}", errors.0.len(), args.policy.display());
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(component) = &args.component {
        let (sandbox, shape) = shape_of(component)?;
        if let Err(e) = linker_for(sandbox.engine(), &shape, &policy) {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
        let warnings = review::review(&shape, Some(&policy)).warnings;
        for w in &warnings {
            eprintln!("{}: warning: {w}", args.policy.display());
        }
        if args.deny_warnings && !warnings.is_empty() {
            eprintln!(
                "{} warning(s) in {} (--deny-warnings)",
                warnings.len(),
                args.policy.display()
            );
            return Ok(ExitCode::from(2));
        }
        println!(
            "ok: {} is valid and grants every import of {} ({} imports)",
            args.policy.display(),
            component.display(),
            shape.imports.len()
        );
    } else {
        println!(
            "ok: {} is valid (policy hash {})",
            args.policy.display(),
            policy.hash()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let (_sandbox, shape) = shape_of(&args.component)?;
    let file_name = args
        .component
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "component.wasm".into());
    let name = args.name.clone().unwrap_or_else(|| {
        file_name
            .trim_end_matches(".wasm")
            .replace('_', "-")
            .to_lowercase()
    });
    let (text, problems) = policy_text(&shape, &name, &file_name);
    match &args.out {
        Some(path) => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
            f.write_all(text.as_bytes())?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("warning: {p}");
        }
        Ok(ExitCode::from(3))
    }
}

/// A policy granting every import of `shape` with safe defaults, for the
/// capability `name` whose component file is `file_name`; and the imports
/// that can never be granted (each a reason).
pub(super) fn policy_text(shape: &Shape, name: &str, file_name: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Policy for `{name}`, written by `warden policy init` from {file_name}."
    );
    let _ = writeln!(
        text,
        "# Review every grant: anything not listed here is denied. See docs/policy.md.\n"
    );
    let _ = writeln!(
        text,
        "[capability]\nname = \"{name}\"\ncomponent = \"{file_name}\"\n"
    );
    let _ = writeln!(text, "[imports]");
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for import in &shape.imports {
        let parsed = import.interface.as_ref();
        match parsed.map(|n: &InterfaceName| (n.unversioned(), default_grant_settings(n))) {
            Some((id, Ok(settings))) => {
                if seen.insert(id.clone()) {
                    let _ = writeln!(text, "\"{id}\" = {settings}");
                }
            }
            Some((_, Err(why))) => problems.push(why),
            None => problems.push(format!(
                "`{}` is not an interface warden can grant",
                import.name
            )),
        }
    }
    let _ = writeln!(
        text,
        "\n[budget]\nfuel = 1_000_000_000\nmemory = \"64MiB\"\nwall_time = \"5s\"\nmax_output = \"1MiB\"\nmax_stdout = \"64KiB\""
    );
    for p in &problems {
        let _ = writeln!(text, "# NOT GRANTABLE: {p}");
    }
    (text, problems)
}
