//! Shared test support: built guest components, policies, hosts.

use serde_json::Value;
use std::path::{Path, PathBuf};
use warden_host::policy::Policy;
use warden_host::sandbox::SandboxConfig;
use warden_host::{Call, Host, HostConfig, InvocationRecord};

/// A guest component built by the root build script (`tests/guests`, `capabilities`).
pub fn guest(name: &str) -> PathBuf {
    Path::new(env!("WARDEN_GUESTS_DIR")).join(format!("{}.wasm", name.replace('-', "_")))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The WASI imports Rust's std pulls in on wasm32-wasip2 (stdio, environment,
/// exit): authority-free with defaults.
pub const STD_IMPORTS: &str = r#"
"wasi:io/poll" = {}
"wasi:io/error" = {}
"wasi:io/streams" = {}
"wasi:cli/environment" = {}
"wasi:cli/exit" = {}
"wasi:cli/stdin" = {}
"wasi:cli/stdout" = {}
"wasi:cli/stderr" = {}
"wasi:cli/terminal-input" = {}
"wasi:cli/terminal-output" = {}
"wasi:cli/terminal-stdin" = {}
"wasi:cli/terminal-stdout" = {}
"wasi:cli/terminal-stderr" = {}
"#;

/// A policy for `name` with the given extra `[imports]` lines and `[budget]` lines.
pub fn policy(name: &str, imports: &str, budget: &str) -> Policy {
    let text = format!(
        "[capability]\nname = \"{name}\"\ncomponent = \"{}.wasm\"\n\n[imports]\n{imports}\n\n[budget]\n{budget}\n",
        name.replace('-', "_")
    );
    Policy::parse(Path::new(&format!("policies/{name}.toml")), &text)
        .unwrap_or_else(|e| panic!("test policy for {name} is invalid:\n{e}\n---\n{text}"))
}

/// A host with a small instance pool (tests run many hosts at once) that
/// loads unsigned components: the sandbox tests are about sandboxing;
/// `signing.rs` tests the trust checks with signed components.
pub fn host() -> Host {
    Host::new(HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        ..HostConfig::default()
    })
    .expect("engine config is valid")
}

/// Sandbox settings for tests.
pub fn small_pool() -> SandboxConfig {
    SandboxConfig {
        max_concurrent_instances: 8,
        ..SandboxConfig::default()
    }
}

/// Loads guest `name` under `policy` into `host`, panicking with the load error.
pub fn load(host: &mut Host, policy: Policy, name: &str) {
    let bytes = std::fs::read(guest(name)).expect("guest was built by build.rs");
    host.load(policy, &bytes, name)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
}

/// A host with `echo` loaded, used to prove the host survives hostile guests.
pub fn host_with_echo() -> Host {
    let mut h = host();
    load(&mut h, policy("echo", "", ""), "echo");
    h
}

/// Calls `function` of `capability` with `input`.
pub async fn call(host: &Host, capability: &str, function: &str, input: Value) -> InvocationRecord {
    host.invoke(Call::new(capability, function, input)).await
}

/// Asserts that a normal invocation still succeeds on `host`.
pub async fn assert_host_still_works(host: &Host) {
    let r = call(
        host,
        "echo",
        "echo",
        serde_json::json!({"message": "still alive"}),
    )
    .await;
    assert_eq!(
        r.outcome.as_string(),
        "ok",
        "echo after a hostile guest: {r:?}"
    );
    assert_eq!(r.output, Some(serde_json::json!("still alive")));
}

/// The `warden` binary, built on first use (the root package cannot name
/// another package's binary with `CARGO_BIN_EXE_*`).
pub fn warden_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .current_dir(repo())
                .args(["build", "-q", "-p", "warden-host", "--bin", "warden"])
                .status()
                .expect("running cargo build for the warden binary");
            assert!(status.success(), "building the warden binary failed");
            // tests run from target/<profile>/deps; the binary is in target/<profile>.
            let exe = std::env::current_exe().expect("test binary path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target/<profile>/deps");
            profile_dir.join("warden")
        })
        .clone()
}

/// Runs `warden` with `args`; returns (exit code, stdout, stderr).
pub fn warden(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(warden_bin())
        .args(args)
        .output()
        .expect("running warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warden-e2e-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A host like [`host`] with a data directory (audit store, KV file).
pub fn audited_host(name: &str) -> Host {
    Host::new(HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(scratch(name)),
        ..HostConfig::default()
    })
    .expect("host with a data dir")
}

/// The committed audit entry of `record` (the host must have a data dir).
pub fn audit_entry_of(host: &Host, record: &InvocationRecord) -> warden_host::audit::AuditEntry {
    let seq = record.audit.as_ref().expect("record was audited").seq;
    let log = host.audit().expect("host keeps an audit log");
    log.entries(seq, 1, &warden_host::store::EntryFilter::default())
        .expect("read audit")
        .into_iter()
        .next()
        .expect("entry exists")
}

/// The string inside a `capability_error` output `{"err": "..."}`.
pub fn err_text(r: &InvocationRecord) -> String {
    r.output
        .as_ref()
        .and_then(|o| o.get("err"))
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_string()
}

/// Held by every test that binds a fixed loopback port of the example
/// policies (fx-rate's 127.0.0.1:18080, the payments service's 18081), and
/// by the quickstart demo's test (which binds them in its own process), so
/// none of them finds one busy.
pub static FX_PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
