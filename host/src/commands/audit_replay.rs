//! `warden audit replay <seq> | --from A --to B | --request <id>`:
//! re-executes audit entries offline from the data directory's artifact
//! store and recorded host-call results, one line per entry and a summary.
//!
//! Exit codes: 0 every re-executed entry matched (entries that are not
//! replayable say why and do not fail the run); 3 any mismatch, or an
//! artifact or payload missing or failing its hash; 2 the database could
//! not be read or nothing matched the selection. The replay itself
//! (`warden_host::replay`) writes nothing and reaches nothing outside.

use anyhow::{Context, bail};
use clap::Args;
use std::process::ExitCode;
use warden_host::replay::{DataDir, Replayer, Summary};
use warden_host::sandbox::SandboxConfig;
use warden_host::store::{ArtifactStore, AuditReader, EntryFilter};

/// `warden audit replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The entry to replay (its sequence number).
    #[arg(conflicts_with_all = ["from", "request"])]
    seq: Option<u64>,
    /// First entry of a range.
    #[arg(long, conflicts_with = "request")]
    from: Option<u64>,
    /// Last entry of a range (default: the newest).
    #[arg(long, requires = "from")]
    to: Option<u64>,
    /// Every entry of this request id.
    #[arg(long)]
    request: Option<String>,
    /// Every entry of this workflow run (found through its journal in
    /// the audit database, or an embedder's `<data-dir>/runs.db`), then
    /// the run's control flow checked against
    /// the plan it pinned.
    #[arg(long, conflicts_with_all = ["seq", "from", "request", "bundle"])]
    run: Option<String>,
    /// With `--run`: the plan file the run started with (default: the plan
    /// of the run's workflow in `--workflows` whose hash the run pinned).
    #[arg(long, requires = "run")]
    plan: Option<std::path::PathBuf>,
    /// With `--run`: the directory of plan files to look in.
    #[arg(long, requires = "run", default_value = "workflows")]
    workflows: std::path::PathBuf,
    /// Replay the entries of an evidence bundle (`warden audit bundle`)
    /// instead of a data directory; the bundle is verified first (hashes
    /// and links; its checkpoint signature with `warden audit verify
    /// --bundle`).
    #[arg(long, conflicts_with_all = ["seq", "from", "request"])]
    bundle: Option<std::path::PathBuf>,
    /// The `[engine] memory_init_cow` setting the entries were recorded
    /// under (fuel differs between the two settings; the output does not).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    memory_init_cow: bool,
    #[command(flatten)]
    db: super::audit::DbArgs,
}

/// Entries read per page.
const PAGE: usize = 1000;

/// Runs `warden audit replay`.
pub fn run(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let engine = SandboxConfig {
        memory_init_cow: a.memory_init_cow,
        ..SandboxConfig::default()
    };
    if let Some(path) = &a.bundle {
        return replay_bundle(path, engine);
    }
    if let Some(run) = &a.run {
        let source = super::audit_replay_run::PlanSource {
            plan: a.plan.clone(),
            workflows: a.workflows.clone(),
        };
        return super::audit_replay_run::run(
            run,
            &a.db.data_dir(),
            &a.db.db_path(),
            &source,
            engine,
        );
    }
    let (from, to) = match (a.seq, a.from, &a.request) {
        (Some(seq), _, _) => (seq, seq),
        (None, Some(from), _) => (from, a.to.unwrap_or(u64::MAX)),
        (None, None, Some(_)) => (1, u64::MAX),
        (None, None, None) => {
            bail!("say which entries: <seq>, --from A [--to B], --request <id> or --run <id>")
        }
    };
    let db = a.db.db_path();
    let reader = AuditReader::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let evidence = DataDir {
        reader,
        artifacts: ArtifactStore::in_data_dir(&a.db.data_dir()),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut replayer = Replayer::new(engine).context("starting the engine")?;
    let mut summary = Summary::default();
    let mut next = from;
    'pages: while next <= to {
        let page = evidence
            .reader
            .entries(next, PAGE, &EntryFilter::default())
            .with_context(|| format!("reading {}", db.display()))?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for entry in &page {
            if entry.seq > to {
                break 'pages;
            }
            if a.request
                .as_ref()
                .is_some_and(|r| *r != entry.entry.request_id)
            {
                continue;
            }
            let r = runtime.block_on(replayer.replay(entry, &evidence));
            println!("{r}");
            summary.add(&r);
        }
        next = last.saturating_add(1);
        if last == u64::MAX {
            break;
        }
    }
    if summary.entries == 0 {
        eprintln!("error: no entries matched in {}", db.display());
        return Ok(ExitCode::from(2));
    }
    println!("{summary}");
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::audit::EXIT_NOT_VERIFIED)
    })
}

fn replay_bundle(path: &std::path::Path, engine: SandboxConfig) -> anyhow::Result<ExitCode> {
    let bundle = super::audit_bundle::read(path)?;
    if let Err(why) = bundle.verify(None) {
        println!(
            "bundle of request {} does NOT verify: {why}",
            bundle.request_id
        );
        return Ok(ExitCode::from(super::audit::EXIT_NOT_VERIFIED));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut replayer = Replayer::new(engine).context("starting the engine")?;
    let mut summary = Summary::default();
    for entry in bundle.entries() {
        let r = runtime.block_on(replayer.replay(entry, &bundle));
        println!("{r}");
        summary.add(&r);
    }
    println!("{summary}");
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::audit::EXIT_NOT_VERIFIED)
    })
}
