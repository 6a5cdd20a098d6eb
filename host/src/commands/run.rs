//! `warden run`: one invocation of one component, for authors and scripts.

use anyhow::Context;
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_host::signing::TrustStore;
use warden_host::{Call, Host, HostConfig, Tenant};

/// Run one function of a component under a policy and print its output and usage.
///
/// Exit codes: 0 ok; 10 invalid_input; 12 denied; 16 budget_exhausted;
/// 17 trap; 18 capability_error; 19 transient; 2 the capability could not be
/// loaded (bad policy, bad or untrusted signature, ungranted import,
/// unreadable file).
///
/// The component must be signed by a key the trust file trusts for the
/// policy's capability name (`--trust`), unless `--allow-unsigned`. The
/// invocation is appended to the audit store in `--data-dir`.
#[derive(ClapArgs)]
pub struct Args {
    /// The component file (.wasm).
    pub component: PathBuf,
    /// The capability's policy file.
    #[arg(long, short = 'p')]
    pub policy: PathBuf,
    /// The exported function to call: `name`, or `interface#name`.
    #[arg(long, short = 'c')]
    pub call: String,
    /// Input JSON: an object keyed by the function's parameter names.
    #[arg(long, short = 'i', default_value = "{}", conflicts_with = "input_file")]
    pub input: String,
    /// Read the input JSON from a file (`-` for stdin).
    #[arg(long)]
    pub input_file: Option<PathBuf>,
    /// Request id (seeds random; default: generated).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Tenant the call is made for: the capability's KV namespace for that
    /// tenant (default: the tenant-less namespace). Canonical form: see
    /// docs/api.md "Tenants".
    #[arg(long, value_parser = Tenant::parse)]
    pub tenant: Option<Tenant>,
    /// Print the whole invocation record as JSON instead of output + usage.
    #[arg(long)]
    pub json: bool,
    /// Trust file: which keys may sign which capabilities (docs/signing.md).
    #[arg(long, env = "WARDEN_TRUST")]
    pub trust: Option<PathBuf>,
    /// Development only: run a component without a trusted signature.
    /// Recorded in the audit entry (`unsigned_allowed`).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Data directory: audit store (warden.db), host key, precompiled cache
    /// (default `data`, as the daemon's).
    #[arg(long, env = "WARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data_dir = super::data_dir::resolve(args.data_dir.as_deref(), None);
    let input_text = match &args.input_file {
        Some(p) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading input from stdin")?
        }
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading input file {}", p.display()))?,
        None => args.input.clone(),
    };
    let input: serde_json::Value = serde_json::from_str(&input_text)
        .with_context(|| format!("--input is not valid JSON: {input_text}"))?;
    let tenant = args.tenant.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let trust = match &args.trust {
        Some(path) => Some(TrustStore::load(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    if args.allow_unsigned {
        eprintln!(
            "warning: --allow-unsigned: running without a trusted signature (development only)"
        );
    }
    let mut host = Host::new(HostConfig {
        trust,
        allow_unsigned: args.allow_unsigned,
        data_dir: Some(data_dir.clone()),
        ..HostConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cap = match host.load_files(&args.policy, &args.component) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut call = Call::new(cap.name(), &args.call, input);
    call.request_id = args.request_id.clone();
    call.tenant = tenant;
    let record = runtime.block_on(host.invoke(call));
    runtime
        .block_on(host.shutdown())
        .map_err(|e| anyhow::anyhow!("closing the audit store: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        if let Some(out) = &record.output {
            println!("{}", serde_json::to_string_pretty(out)?);
        }
        for line in &record.logs {
            eprintln!("log {}: {}", line.level, line.message);
        }
        if !record.stdout.is_empty() {
            eprintln!("stdout: {}", record.stdout.trim_end());
        }
        if let Some(err) = &record.error {
            eprintln!("{}: {err}", record.outcome);
        }
        eprintln!(
            "outcome: {}  fuel: {}  peak memory: {} bytes  wall time: {} us",
            record.outcome, record.usage.fuel, record.usage.peak_memory, record.usage.wall_time_us
        );
        if let Some(a) = &record.audit {
            eprintln!(
                "audit: entry {} {} in {}",
                a.seq,
                a.hash,
                data_dir.join("warden.db").display()
            );
        }
    }
    Ok(ExitCode::from(record.outcome.exit_code()))
}
