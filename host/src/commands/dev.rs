//! `warden dev`: the development loop in a capability's folder — build,
//! sign with a local development key, serve on loopback, and (with
//! `--watch`) rebuild and reload when sources change.
//!
//! Everything it writes is under `<folder>/.warden-dev/` (key, token,
//! trust file, config, route table, the signed component, the data
//! directory), except a `policy.toml` it creates from the component's
//! imports when the folder has none (printed, for review). It never serves
//! beyond loopback and says on every start that it is a development setup:
//! a key that lives next to the code and one principal with every role are
//! not a deployment (`warden init` writes one).

use super::policy::{policy_text, shape_of};
use anyhow::{Context as _, bail};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime};
use warden_host::component::Shape;
use warden_host::policy::Policy;
use warden_host::server::{self, DaemonConfig, ServeOptions};
use warden_host::{deployment, keys, signing};

/// Build the capability in a folder (Rust via cargo; Python/JavaScript via
/// the folder's build.sh), sign it with a local development key (created on
/// first use), trust that key for this capability only, create policy.toml
/// from the component's imports if there is none, and serve it on loopback
/// with a development principal whose token is printed. `--watch` rebuilds,
/// re-signs and reloads when the folder's sources change.
///
/// A DEVELOPMENT SETUP: never expose it; `warden init` writes a deployment.
#[derive(clap::Args)]
pub struct Args {
    /// The capability's folder (with Cargo.toml, or build.sh).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Rebuild, re-sign and reload when sources in the folder change.
    #[arg(long)]
    pub watch: bool,
    /// Where to listen; loopback addresses only.
    #[arg(long, default_value = "127.0.0.1:7878", env = "WARDEN_LISTEN")]
    pub listen: SocketAddr,
    /// Serve this component instead of building one.
    #[arg(long)]
    pub component: Option<PathBuf>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// How often `--watch` looks for changes.
const POLL: Duration = Duration::from_millis(400);

/// Folders `--watch` never looks into (build output, toolchains, our own).
const IGNORED: &[&str] = &[
    "target",
    ".warden-dev",
    "node_modules",
    ".venv",
    ".git",
    "__pycache__",
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen {}: `warden dev` serves on loopback only (it signs with a local key and has a principal with every role); deploy with `warden init`",
            args.listen
        );
    }
    let dir = args.dir.clone();
    let dev = dir.join(".warden-dev");
    let component = build(&dir, &dev, args.component.as_deref())?;
    let name = stage(&dir, &dev, &component)?;
    let token = dev_token(&dev)?;
    let config =
        DaemonConfig::load(&dev.join("warden.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = format!("http://{}", args.listen);
    eprintln!(
        "\n*** warden dev: a DEVELOPMENT setup — a signing key kept beside the code, one principal\n\
         *** with every role, loopback only. Never expose it; `warden init` writes a deployment.\n"
    );
    eprintln!("serving `{name}` from {}", dev.display());
    eprintln!(
        "token: {token}   (also in {})",
        dev.join("dev.token").display()
    );
    let kinds = route_kinds(&dev);
    eprintln!(
        "try:   warden submit --url {url} --token-file {} --kind {} --input '{{...}}'",
        dev.join("dev.token").display(),
        kinds.first().map_or("<kind>", String::as_str)
    );
    eprintln!(
        "       (kinds: {}; routes in {}; the audit log in {})",
        kinds.join(", "),
        dev.join("routes.toml").display(),
        dev.join("data").display()
    );
    if args.watch {
        let explicit = args.component.clone();
        std::thread::spawn(move || watch(&dir, &dev, explicit.as_deref()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = ServeOptions {
        listen: Some(args.listen),
        ready_file: args.ready_file,
    };
    match runtime.block_on(server::serve(config, options)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Builds the folder's component; returns its path.
fn build(dir: &Path, dev: &Path, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if dir.join("Cargo.toml").exists() {
        eprintln!("building {} (cargo, wasm32-wasip2, release)", dir.display());
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(dir)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
            ])
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo (is it installed?)")?;
        if !out.status.success() {
            bail!("the build failed (cargo's messages are above)");
        }
        // The last .wasm artifact cargo reports (it knows the target dir).
        let wasm = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .flat_map(|m| {
                m["filenames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| f.as_str().map(PathBuf::from))
                    .filter(|f| f.extension().is_some_and(|e| e == "wasm"))
                    .collect::<Vec<_>>()
            })
            .last();
        return wasm.context(
            "cargo built no .wasm file: is the crate a `cdylib` (as `warden new` writes it)?",
        );
    }
    if dir.join("build.sh").exists() {
        let out_dir = dev.join("build");
        eprintln!(
            "building {} (build.sh -> {})",
            dir.display(),
            out_dir.display()
        );
        let status = Command::new("bash")
            .arg(dir.join("build.sh"))
            .arg(&out_dir)
            .status()
            .context("running build.sh")?;
        if !status.success() {
            bail!("build.sh failed (its messages are above)");
        }
        let newest = std::fs::read_dir(&out_dir)
            .with_context(|| format!("reading {}", out_dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .max_by_key(|p| modified(p));
        return newest
            .with_context(|| format!("build.sh wrote no .wasm into {}", out_dir.display()));
    }
    bail!(
        "nothing to build in {}: no Cargo.toml and no build.sh (give --component FILE)",
        dir.display()
    )
}

fn modified(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Writes everything the daemon reads into `dev`: the signed component, the
/// policy, trust, routes and config. Returns the capability's name.
fn stage(dir: &Path, dev: &Path, component: &Path) -> anyhow::Result<String> {
    for sub in ["components", "policies", "keys"] {
        std::fs::create_dir_all(dev.join(sub))
            .with_context(|| format!("creating {}", dev.join(sub).display()))?;
    }
    let (_sandbox, shape) = shape_of(component)?;
    let policy_path = dir.join("policy.toml");
    if !policy_path.exists() {
        create_policy(&policy_path, component, &shape)?;
    }
    let policy = Policy::load(&policy_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = policy.capability.name.clone();
    let file = policy.capability.component.clone();
    if file.contains('/') || file.contains("..") {
        bail!(
            "{}: `component = {file:?}` must be a file name (the dev setup copies the built component beside it)",
            policy_path.display()
        );
    }

    let key_path = dev.join("keys/dev.key");
    if !key_path.exists() {
        let key = keys::try_generate()?;
        keys::write_key_pair(&dev.join("keys"), "dev", &key)?;
        eprintln!("created a development signing key: {}", key_path.display());
    }
    let key = keys::read_private_key(&key_path)?;
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let signed = signing::sign(&bytes, &key)?;
    write_atomic(&dev.join("components").join(&file), &signed)?;
    std::fs::copy(
        &policy_path,
        dev.join("policies").join(format!("{name}.toml")),
    )
    .with_context(|| format!("copying {}", policy_path.display()))?;
    write_atomic(
        &dev.join("trust.toml"),
        format!(
            "# warden dev: the development key, trusted for `{name}` only.\n[[key]]\nname = \"dev\"\npublic_key = \"{}\"\ncapabilities = [\"{name}\"]\n",
            keys::public_key_text(&key.verifying_key())
        )
        .as_bytes(),
    )?;
    write_atomic(&dev.join("routes.toml"), routes(&name, &shape).as_bytes())?;
    let token = dev_token(dev)?;
    write_atomic(
        &dev.join("warden.toml"),
        format!(
            "# warden dev: a DEVELOPMENT configuration (loopback, one principal with every role).\n\
             data_dir = \"data\"\ntrust = \"trust.toml\"\n\n{}",
            deployment::principal_block("dev", &token, &["submit", "audit", "admin", "approve"])
        )
        .as_bytes(),
    )?;
    Ok(name)
}

/// The kinds the staged route table routes.
fn route_kinds(dev: &Path) -> Vec<String> {
    std::fs::read_to_string(dev.join("routes.toml"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("id = "))
        .map(|k| k.trim_matches('"').to_owned())
        .collect()
}

/// One route per callable export; the kind is the function's own name.
fn routes(name: &str, shape: &Shape) -> String {
    let mut text = format!("# warden dev: one route per export of `{name}`.\n");
    let mut kinds = BTreeSet::new();
    for e in shape.exports.iter().filter(|e| e.callable) {
        let kind = e.id.rsplit('#').next().unwrap_or(&e.id).to_owned();
        if !kinds.insert(kind.clone()) {
            continue;
        }
        text.push_str(&format!(
            "\n[[route]]\nid = {kind:?}\nmatch = {{ kind = {kind:?} }}\ncapability = {name:?}\nfunction = {:?}\n",
            e.id
        ));
    }
    text
}

fn create_policy(path: &Path, component: &Path, shape: &Shape) -> anyhow::Result<()> {
    let file_name = component
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .context("the component has no file name")?;
    let name = file_name
        .trim_end_matches(".wasm")
        .replace('_', "-")
        .to_lowercase();
    let (text, problems) = policy_text(shape, &name, &file_name);
    if !problems.is_empty() {
        bail!(
            "the component imports what no policy can grant:\n  {}",
            problems.join("\n  ")
        );
    }
    std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "created {} from the component's imports (safe defaults; review it):\n\n{text}",
        path.display()
    );
    Ok(())
}

/// The development principal's token (`dev/dev.token`, created once).
fn dev_token(dev: &Path) -> anyhow::Result<String> {
    let path = dev.join("dev.token");
    if !path.exists() {
        std::fs::create_dir_all(dev)?;
        deployment::write_token_file(&path, &deployment::new_token()?)?;
    }
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// What the folder's sources look like now: every file's path, size and
/// modification time (outside [`IGNORED`] folders), in order.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                let skip = e.file_name().to_str().is_some_and(|n| IGNORED.contains(&n));
                if !skip {
                    stack.push(path);
                }
            } else {
                let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((path, meta.len(), when));
            }
        }
    }
    out.sort();
    out
}

/// `--watch`: rebuilds, re-stages and reloads (SIGHUP to this process)
/// whenever the sources change; a failed build keeps the last good one
/// serving.
fn watch(dir: &Path, dev: &Path, explicit: Option<&Path>) {
    let mut seen = snapshot(dir);
    loop {
        std::thread::sleep(POLL);
        let now = snapshot(dir);
        if now == seen {
            continue;
        }
        // Let an editor finish writing.
        std::thread::sleep(POLL);
        seen = snapshot(dir);
        eprintln!("warden dev: sources changed; rebuilding");
        let staged = build(dir, dev, explicit).and_then(|c| stage(dir, dev, &c));
        match staged {
            Ok(_) => {
                let pid = std::process::id().to_string();
                let sent = Command::new("kill").args(["-HUP", &pid]).status();
                if !sent.is_ok_and(|s| s.success()) {
                    eprintln!("warden dev: could not signal a reload; restart `warden dev`");
                }
            }
            Err(e) => eprintln!("warden dev: {e:#}; still serving the last good build"),
        }
    }
}
