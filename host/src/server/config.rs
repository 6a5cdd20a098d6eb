//! `warden.toml`: the daemon's configuration (docs/config.md).
//!
//! Parsed strictly: unknown fields are errors with `file:line:column`, and
//! every semantic problem is collected (never only the first). Relative
//! paths are resolved against the directory holding the config file.

use crate::policy::{ByteSize, HumanDuration};
use crate::toml_shape::{self, Field, Kind, field};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A principal's role: what its token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submit requests (`POST /v1/requests`, own `GET /v1/requests/{id}`).
    Submit,
    /// Read the audit chain, every request, capabilities and routes.
    Audit,
    /// Reload, and read capabilities and routes.
    Admin,
    /// Decide pending approvals (approvals issue).
    Approve,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submit => "submit",
            Role::Audit => "audit",
            Role::Admin => "admin",
            Role::Approve => "approve",
        }
    }
}

/// One `[[principal]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    /// Name recorded in the audit chain.
    pub name: String,
    /// Hex SHA-256 of the bearer token (the token itself is never stored).
    pub token_sha256: String,
    /// Roles granted.
    pub roles: Vec<Role>,
    /// Groups the principal belongs to (approval rules may name
    /// `group:<name>` as approvers).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Tenants the principal may submit requests for (canonical names, see
    /// [`crate::tenant`]); `["*"]` is any tenant. By default none: only
    /// tenant-less requests.
    #[serde(default)]
    pub tenants: Vec<String>,
}

impl PrincipalConfig {
    /// The tenants this principal may act for.
    pub fn tenant_binding(&self) -> Result<crate::tenant::TenantBinding, String> {
        crate::tenant::TenantBinding::parse(&self.tenants)
    }
}

/// `[limits]`: request handling limits and per-capability defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body. By default 1MiB.
    #[serde(default = "defaults::max_body")]
    pub max_body: ByteSize,
    /// Invocations running at once across all capabilities (the instance
    /// pool). By default 64.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: u32,
    /// How long a request waits for a free slot before 503. By default 2s.
    #[serde(default = "defaults::queue_timeout")]
    pub queue_timeout: HumanDuration,
    /// How long SIGTERM waits for in-flight requests. By default 30s.
    #[serde(default = "defaults::drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// Default per-capability concurrency. By default 16.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    /// Default: consecutive transient failures that open a capability's
    /// breaker (0 = never). By default 5.
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// Default: how long an open breaker refuses before a probe. By default 10s.
    #[serde(default = "defaults::breaker_cool_down")]
    pub breaker_cool_down: HumanDuration,
}

/// `[http]`: what a client may hold of the daemon's connection layer, and
/// for how long. These stop a client that opens connections and sends
/// nothing (or a request a byte at a time) from exhausting file
/// descriptors, memory or the request slots of everyone else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Connections open at once. At the cap, a new connection closes the
    /// oldest one that is not in the middle of a request; when every one
    /// is, the new one gets `503` and is closed. By default 1024.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// How long a client may take to send a request head once it has sent
    /// its first byte. By default 10s.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// How long a client may take to send a whole request body once its
    /// head is read; past it, `408 body_timeout` and the connection
    /// closes. By default 30s.
    #[serde(default = "defaults::body_read_timeout")]
    pub body_read_timeout: HumanDuration,
    /// How long a connection may wait, without a byte of its next request,
    /// before it is closed (a fresh connection and a keep-alive one alike).
    /// By default 60s.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Requests carrying a body (`POST /v1/requests`, approval decisions)
    /// admitted at once: reading their body, queued or running. Past it,
    /// `503 overloaded` with `Retry-After`, before the body is read; so at
    /// most `max_open_requests × max_body` bytes of bodies are held. By
    /// default 128.
    #[serde(default = "defaults::max_open_requests")]
    pub max_open_requests: u32,
}

impl Default for Http {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// Longest `[http]` timeout accepted: long enough for any client, short
/// enough that every deadline computed from it is representable.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// `[capability.<name>]`: per-capability overrides of `[limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityLimits {
    /// Invocations of this capability at once.
    pub concurrency: Option<u32>,
    /// Consecutive transient failures that open the breaker (0 = never).
    pub breaker_failures: Option<u32>,
    /// Breaker cool-down.
    pub breaker_cool_down: Option<HumanDuration>,
}

/// `[checkpoints]`: when the audit log signs a checkpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoints {
    /// Entries between checkpoints (0 = never by count). By default 10_000.
    #[serde(default = "defaults::every_entries")]
    pub every_entries: u64,
    /// Time between checkpoints. By default 60s.
    #[serde(default = "defaults::every")]
    pub every: HumanDuration,
    /// Witnesses the daemon pushes each new checkpoint note to (C2SP
    /// tlog-witness `add-checkpoint`). By default none.
    #[serde(default)]
    pub witnesses: Vec<WitnessConfig>,
}

/// `[[checkpoints.witnesses]]`: one witness the daemon pushes to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's submission prefix, `http://host:port` (the daemon
    /// POSTs to `<url>/add-checkpoint`).
    pub url: String,
    /// The witness's cosignature key name.
    pub name: String,
    /// The witness's public key, `ed25519:<hex>`.
    pub key: String,
}

/// `[engine]`: settings of the one wasmtime engine every capability runs on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    /// Copy-on-write memory images (see `SandboxConfig::memory_init_cow`).
    /// By default true.
    #[serde(default = "defaults::memory_init_cow")]
    pub memory_init_cow: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            memory_init_cow: defaults::memory_init_cow(),
        }
    }
}

/// `[testing]`: fault injection for the daemon's own tests. Off by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Testing {
    /// `capability -> n`: the first `n` invocation attempts of that
    /// capability after (re)start end as `transient` before the guest runs
    /// (audited with an "injected fault" error). Exists so retries and the
    /// breaker can be tested: no guest can produce a host-side I/O failure.
    #[serde(default)]
    pub transient_faults: BTreeMap<String, u32>,
}

/// What warden.toml may hold, for [`toml_shape::check`] (kept in step with
/// [`RawConfig`]; `shape_matches_the_documented_config` checks it against
/// docs/config.md).
const SHAPE: &[Field] = &[
    field("listen", Kind::Text),
    field("data_dir", Kind::Text),
    field("components_dir", Kind::Text),
    field("policies_dir", Kind::Text),
    field("workflows_dir", Kind::Text),
    field("routes", Kind::Text),
    field("trust", Kind::Text),
    field("host_key", Kind::Text),
    field("allow_unsigned", Kind::Flag),
    field(
        "principal",
        Kind::Tables(&[
            field("name", Kind::Text),
            field("token_sha256", Kind::Text),
            field("roles", Kind::TextList),
            field("groups", Kind::TextList),
            field("tenants", Kind::TextList),
        ]),
    ),
    field(
        "limits",
        Kind::Table(&[
            field("max_body", Kind::Size),
            field("max_in_flight", Kind::Count),
            field("queue_timeout", Kind::Duration),
            field("drain_timeout", Kind::Duration),
            field("concurrency", Kind::Count),
            field("breaker_failures", Kind::Count),
            field("breaker_cool_down", Kind::Duration),
        ]),
    ),
    field(
        "http",
        Kind::Table(&[
            field("max_connections", Kind::Count),
            field("header_read_timeout", Kind::Duration),
            field("body_read_timeout", Kind::Duration),
            field("idle_timeout", Kind::Duration),
            field("max_open_requests", Kind::Count),
        ]),
    ),
    field(
        "capability",
        Kind::Named(&Kind::Table(&[
            field("concurrency", Kind::Count),
            field("breaker_failures", Kind::Count),
            field("breaker_cool_down", Kind::Duration),
        ])),
    ),
    field(
        "checkpoints",
        Kind::Table(&[
            field("every_entries", Kind::Count),
            field("every", Kind::Duration),
            field(
                "witnesses",
                Kind::Tables(&[
                    field("url", Kind::Text),
                    field("name", Kind::Text),
                    field("key", Kind::Text),
                ]),
            ),
        ]),
    ),
    field(
        "engine",
        Kind::Table(&[field("memory_init_cow", Kind::Flag)]),
    ),
    field(
        "testing",
        Kind::Table(&[field("transient_faults", Kind::Named(&Kind::Count))]),
    ),
    field(
        "models",
        Kind::Named(&Kind::Table(&[
            field("endpoint", Kind::Text),
            field("model", Kind::Text),
            field("api_key_env", Kind::Text),
            field("api_key_file", Kind::Text),
            field("timeout", Kind::Duration),
        ])),
    ),
    field("hosts", Kind::Named(&Kind::TextList)),
    field(
        "mcp",
        Kind::Table(&[
            field("stdio_principal", Kind::Text),
            field("allowed_origins", Kind::TextList),
            field(
                "tool",
                Kind::Tables(&[
                    field("name", Kind::Text),
                    field("kind", Kind::Text),
                    field("title", Kind::Text),
                    field("description", Kind::Text),
                    field("idempotent", Kind::Flag),
                    field("destructive", Kind::Flag),
                    field("principals", Kind::TextList),
                ]),
            ),
        ]),
    ),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "defaults::listen")]
    listen: String,
    #[serde(default = "defaults::data_dir")]
    data_dir: PathBuf,
    #[serde(default = "defaults::components_dir")]
    components_dir: PathBuf,
    #[serde(default = "defaults::policies_dir")]
    policies_dir: PathBuf,
    #[serde(default = "defaults::workflows_dir")]
    workflows_dir: PathBuf,
    #[serde(default = "defaults::routes")]
    routes: PathBuf,
    trust: Option<PathBuf>,
    host_key: Option<PathBuf>,
    #[serde(default)]
    allow_unsigned: bool,
    #[serde(default)]
    principal: Vec<PrincipalConfig>,
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    http: Option<Http>,
    #[serde(default)]
    capability: BTreeMap<String, CapabilityLimits>,
    #[serde(default)]
    checkpoints: Option<Checkpoints>,
    #[serde(default)]
    engine: Engine,
    #[serde(default)]
    testing: Testing,
    #[serde(default)]
    models: BTreeMap<String, crate::interfaces::model::ModelBackend>,
    #[serde(default)]
    hosts: BTreeMap<String, Vec<std::net::IpAddr>>,
    #[serde(default)]
    mcp: super::mcp_config::McpConfig,
}

mod defaults {
    use super::*;
    pub fn memory_init_cow() -> bool {
        true
    }
    pub fn listen() -> String {
        "127.0.0.1:7878".into()
    }
    pub fn data_dir() -> PathBuf {
        "data".into()
    }
    pub fn components_dir() -> PathBuf {
        "components".into()
    }
    pub fn policies_dir() -> PathBuf {
        "policies".into()
    }
    pub fn workflows_dir() -> PathBuf {
        "workflows".into()
    }
    pub fn routes() -> PathBuf {
        "routes.toml".into()
    }
    pub fn max_body() -> ByteSize {
        ByteSize(1 << 20)
    }
    pub fn max_in_flight() -> u32 {
        64
    }
    pub fn queue_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(2))
    }
    pub fn drain_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn concurrency() -> u32 {
        16
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cool_down() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
    pub fn max_connections() -> u32 {
        1024
    }
    pub fn header_read_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
    pub fn body_read_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn idle_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    pub fn max_open_requests() -> u32 {
        128
    }
    pub fn every_entries() -> u64 {
        10_000
    }
    pub fn every() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
}

impl Default for Limits {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl Default for Checkpoints {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// A validated daemon configuration, paths resolved.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The config file.
    pub source: PathBuf,
    /// Listen address (`host:port`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Data directory: `warden.db`, `state.db`, host key, cache.
    pub data_dir: PathBuf,
    /// Where policies' `component` files are looked up.
    pub components_dir: PathBuf,
    /// Every `*.toml` in it is a capability policy.
    pub policies_dir: PathBuf,
    /// Every `*.toml` in it is a workflow plan (a missing directory: none).
    pub workflows_dir: PathBuf,
    /// The route table.
    pub routes: PathBuf,
    /// The trust file.
    pub trust: Option<PathBuf>,
    /// The host key (default `<data_dir>/host.key`).
    pub host_key: Option<PathBuf>,
    /// Development switch: load unsigned components.
    pub allow_unsigned: bool,
    /// Who may call the API.
    pub principals: Vec<PrincipalConfig>,
    /// Limits and per-capability defaults.
    pub limits: Limits,
    /// Connection-layer limits and timeouts.
    pub http: Http,
    /// Per-capability overrides.
    pub capabilities: BTreeMap<String, CapabilityLimits>,
    /// Checkpoint interval.
    pub checkpoints: Checkpoints,
    /// `[engine]`: wasmtime engine settings.
    pub engine: Engine,
    /// Test-only fault injection.
    pub testing: Testing,
    /// `[models.<name>]`: model backends that `warden:host/model` grants may name.
    pub models: BTreeMap<String, crate::interfaces::model::ModelBackend>,
    /// `[hosts]`: static name resolution for outbound HTTP and model calls.
    pub hosts: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// `[mcp]`: the MCP server's tools and transports (docs/mcp.md).
    pub mcp: super::mcp_config::McpConfig,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl DaemonConfig {
    /// One human gate — a policy's `[[approval]]` rule or a workflow's
    /// approval step, named by `at` — can be satisfied by the configured
    /// principals: each approver it names is a principal (or a group with a
    /// member) with the `approve` role, and at least `mode.required()` of
    /// them may approve it (anyone with the role when it names nobody).
    pub(super) fn check_gate(
        &self,
        at: &str,
        named: &[crate::policy::approval::Approver],
        mode: crate::policy::approval::Mode,
        errors: &mut Vec<String>,
    ) {
        use crate::policy::approval::Approver;
        let approvers: Vec<_> = self
            .principals
            .iter()
            .filter(|p| p.roles.contains(&Role::Approve))
            .collect();
        for a in named {
            if !approvers.iter().any(|p| a.admits(&p.name, &p.groups)) {
                errors.push(format!(
                    "{at}: approver `{a}` is not a principal with the `approve` role{} in the daemon config",
                    if matches!(a, Approver::Group(_)) { " (no member of that group has it)" } else { "" }
                ));
            }
        }
        let eligible = approvers
            .iter()
            .filter(|p| named.is_empty() || named.iter().any(|a| a.admits(&p.name, &p.groups)))
            .count();
        if eligible < mode.required() {
            errors.push(format!(
                "{at}: mode `{}` needs {} distinct approvers but only {eligible} configured principal(s) may approve it",
                mode.as_str(),
                mode.required()
            ));
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                message: format!("cannot read config: {e}"),
            }])
        })?;
        DaemonConfig::parse(path, &text)
    }

    /// Validates config `text` read from `source`, collecting every problem.
    pub fn parse(source: &Path, text: &str) -> Result<DaemonConfig, ConfigErrors> {
        let at = |needle: &str| {
            text.find(needle)
                .map(|o| text.get(..o).unwrap_or("").matches('\n').count() + 1)
        };
        let err = |line: Option<usize>, message: String| ConfigError {
            file: source.to_owned(),
            line,
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line_of = |o: usize| text.get(..o).unwrap_or("").matches('\n').count() + 1;
            // serde stops at the first problem; the shape walk finds them all.
            let all = toml_shape::check(text, SHAPE);
            if all.is_empty() {
                ConfigErrors(vec![err(
                    e.span().map(|s| line_of(s.start)),
                    e.message().trim().to_string(),
                )])
            } else {
                ConfigErrors(
                    all.into_iter()
                        .map(|p| err(Some(line_of(p.span.start)), p.message))
                        .collect(),
                )
            }
        })?;
        let mut errors = Vec::new();
        let listen = match raw.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(err(
                    at("listen"),
                    format!(
                        "listen = \"{}\" is not an address (`127.0.0.1:7878`, `[::1]:0`)",
                        raw.listen
                    ),
                ));
                None
            }
        };
        let mut names = std::collections::BTreeSet::new();
        let mut hashes = std::collections::BTreeSet::new();
        for p in &raw.principal {
            let line = at(&format!("\"{}\"", p.name));
            if let Err(why) = crate::principal::check_principal_name(&p.name) {
                errors.push(err(line, format!("principal {why}")));
            }
            for g in &p.groups {
                if let Err(why) = crate::principal::check_principal_name(g) {
                    errors.push(err(at(g), format!("principal `{}`: group {why}", p.name)));
                }
            }
            if !names.insert(p.name.clone()) {
                errors.push(err(line, format!("principal `{}` is listed twice", p.name)));
            }
            let hex_ok = p.token_sha256.len() == 64
                && p.token_sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !hex_ok {
                errors.push(err(
                    at(&p.token_sha256),
                    format!(
                        "principal `{}`: token_sha256 must be 64 lowercase hex digits (sha256 of the token: \
                         `printf %s \"$TOKEN\" | sha256sum`)",
                        p.name
                    ),
                ));
            } else if !hashes.insert(p.token_sha256.clone()) {
                errors.push(err(
                    at(&p.token_sha256),
                    format!(
                        "principal `{}` has the same token as another principal",
                        p.name
                    ),
                ));
            }
            if p.roles.is_empty() {
                errors.push(err(line, format!("principal `{}` has no roles", p.name)));
            }
            if let Err(why) = p.tenant_binding() {
                errors.push(err(line, format!("principal `{}`: tenants: {why}", p.name)));
            }
        }
        let limits = raw.limits.unwrap_or_default();
        if limits.max_in_flight == 0 {
            errors.push(err(
                at("max_in_flight"),
                "max_in_flight = 0 would refuse every request".into(),
            ));
        }
        if limits.concurrency == 0 {
            errors.push(err(
                at("concurrency"),
                "concurrency = 0 would refuse every request".into(),
            ));
        }
        let http = raw.http.unwrap_or_default();
        for (key, n) in [
            ("max_connections", http.max_connections),
            ("max_open_requests", http.max_open_requests),
        ] {
            if n == 0 {
                errors.push(err(
                    at(key),
                    format!("{key} = 0 would refuse every request"),
                ));
            }
        }
        for (key, d) in [
            ("header_read_timeout", http.header_read_timeout),
            ("body_read_timeout", http.body_read_timeout),
            ("idle_timeout", http.idle_timeout),
        ] {
            if d.get().is_zero() || d.get() > MAX_HTTP_TIMEOUT {
                errors.push(err(
                    at(key),
                    format!("{key} = \"{d}\" must be more than 0 and at most 1d"),
                ));
            }
        }
        for (name, c) in &raw.capability {
            if c.concurrency == Some(0) {
                errors.push(err(
                    at(&format!("capability.{name}")),
                    format!("capability `{name}`: concurrency = 0 would refuse every request"),
                ));
            }
        }
        let submitters: Vec<(String, bool)> = raw
            .principal
            .iter()
            .map(|p| (p.name.clone(), p.roles.contains(&Role::Submit)))
            .collect();
        for (needle, message) in raw.mcp.problems(&submitters) {
            errors.push(err(at(&needle), message));
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let base = source
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let listen = listen.unwrap_or_else(|| unreachable!("checked above"));
        Ok(DaemonConfig {
            source: source.to_owned(),
            listen,
            data_dir: resolve(raw.data_dir),
            components_dir: resolve(raw.components_dir),
            policies_dir: resolve(raw.policies_dir),
            workflows_dir: resolve(raw.workflows_dir),
            routes: resolve(raw.routes),
            trust: raw.trust.map(resolve),
            host_key: raw.host_key.map(resolve),
            allow_unsigned: raw.allow_unsigned,
            principals: raw.principal,
            limits,
            http,
            capabilities: raw.capability,
            checkpoints: raw.checkpoints.unwrap_or_default(),
            engine: raw.engine,
            testing: raw.testing,
            models: raw.models,
            hosts: raw.hosts,
            mcp: raw.mcp,
        })
    }

    /// Limits for one capability: its overrides over the defaults.
    pub fn capability_limits(&self, name: &str) -> (u32, u32, Duration) {
        let o = self.capabilities.get(name).cloned().unwrap_or_default();
        (
            o.concurrency.unwrap_or(self.limits.concurrency),
            o.breaker_failures.unwrap_or(self.limits.breaker_failures),
            o.breaker_cool_down
                .unwrap_or(self.limits.breaker_cool_down)
                .get(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DaemonConfig, ConfigErrors> {
        DaemonConfig::parse(Path::new("conf/warden.toml"), text)
    }

    #[test]
    fn every_misspelt_key_and_mistyped_value_in_a_config_is_reported_at_once() {
        let text = "listen = 7878\n[limits]\nqueue_timout = \"2s\"\ndrain_timeout = 30\n\
                    [engine]\nmemory_init_cow = \"no\"\n";
        let e = parse(text).expect_err("four problems");
        let lines: Vec<Option<usize>> = e.0.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(3), Some(4), Some(6)], "{e}");
        let text = e.to_string();
        assert!(text.contains("did you mean `queue_timeout`?"), "{text}");
        assert!(
            text.contains("`engine.memory_init_cow` must be true or false"),
            "{text}"
        );
        assert!(
            !text.contains("invalid type"),
            "serde's wording leaked: {text}"
        );
    }

    #[test]
    fn shape_matches_the_documented_config() {
        for doc in ["config.md", "mcp.md"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs")
                .join(doc);
            let doc = std::fs::read_to_string(&path).expect("docs readable");
            for block in doc.split("```toml\n").skip(1) {
                let block = block.split("```").next().unwrap_or_default();
                let problems = toml_shape::check(block, SHAPE);
                assert!(problems.is_empty(), "{problems:?}\n{block}");
            }
        }
    }

    #[test]
    fn an_empty_config_takes_every_default() {
        let c = parse("").expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.data_dir, Path::new("conf/data"));
        assert_eq!(c.limits.max_body.bytes(), 1 << 20);
        assert!(c.engine.memory_init_cow);
        assert_eq!(c.checkpoints.every_entries, 10_000);
        assert!(c.testing.transient_faults.is_empty());
    }

    #[test]
    fn the_engine_section_sets_memory_initialization() {
        let c = parse("[engine]\nmemory_init_cow = false\n").expect("valid");
        assert!(!c.engine.memory_init_cow);
        let e = parse("[engine]\nmemory_init = false\n").expect_err("unknown field");
        assert_eq!(e.0[0].line, Some(2), "{e}");
    }

    #[test]
    fn the_http_section_has_finite_defaults_and_refuses_zero_or_endless_limits() {
        let c = parse("").expect("valid");
        assert_eq!(c.http.max_connections, 1024);
        assert_eq!(c.http.header_read_timeout.get(), Duration::from_secs(10));
        assert_eq!(c.http.body_read_timeout.get(), Duration::from_secs(30));
        assert_eq!(c.http.idle_timeout.get(), Duration::from_secs(60));
        assert_eq!(c.http.max_open_requests, 128);
        let e = parse(
            "[http]\nmax_connections = 0\nmax_open_requests = 0\nheader_read_timeout = \"0s\"\n\
             body_read_timeout = \"2d\"\nidle_timeout = \"30d\"\n",
        )
        .expect_err("refused");
        assert_eq!(e.0.len(), 5, "{e}");
        assert!(e.to_string().contains("body_read_timeout"), "{e}");
    }

    #[test]
    fn principal_and_group_names_must_be_canonical() {
        let hash = "a".repeat(64);
        let e = parse(&format!(
            "[[principal]]\nname = \"Alice\"\ntoken_sha256 = \"{hash}\"\nroles = [\"submit\"]\ngroups = [\"Fin ance\"]\n"
        ))
        .expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("\"Alice\" is not canonical"), "{text}");
        assert!(text.contains("\"Fin ance\" is not canonical"), "{text}");
    }

    #[test]
    fn the_mcp_section_is_validated_at_load_naming_the_bad_key_and_its_line() {
        let ok = parse(
            "[mcp]\nallowed_origins = [\"http://localhost:5173\"]\n\n[[mcp.tool]]\nname = \"greet\"\nkind = \"greet\"\ndescription = \"Echo.\"\n",
        )
        .expect("valid");
        assert_eq!(ok.mcp.tool[0].name, "greet");
        assert!(parse("").expect("valid").mcp.tool.is_empty());
        let e = parse("[mcp]\nstdio_principal = \"ghost\"\n").expect_err("refused");
        assert_eq!(e.0[0].line, Some(2), "{e}");
        assert!(e.to_string().contains("mcp.stdio_principal"), "{e}");
        let e = parse("[mcp]\n\n[[mcp.tool]]\nname = \"t\"\nkind = \"t.*\"\ndescription = \"d\"\n")
            .expect_err("refused");
        assert_eq!(e.0[0].line, Some(5), "{e}");
        assert!(e.to_string().contains("mcp.tool.kind"), "{e}");
        let e = parse("[[mcp.tool]]\nname = \"t\"\nkind = \"t\"\ndescripton = \"d\"\n")
            .expect_err("unknown field");
        assert_eq!(e.0[0].line, Some(4), "{e}");
        assert!(e.to_string().contains("descripton"), "{e}");
    }

    #[test]
    fn unknown_fields_are_errors_with_their_line() {
        let e = parse("listen = \"127.0.0.1:0\"\n\n[limits]\nmax_bdy = \"1KiB\"\n")
            .expect_err("refused");
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, Some(4), "{e}");
        assert!(e.to_string().contains("max_bdy"), "{e}");
    }

    #[test]
    fn principal_tenants_are_canonical_and_star_stands_alone() {
        let principal = |tenants: &str| {
            format!(
                "[[principal]]\nname = \"a\"\ntoken_sha256 = \"{}\"\nroles = [\"submit\"]\n{tenants}\n",
                "0".repeat(64)
            )
        };
        let c = parse(&principal("tenants = [\"ACME\", \"globex\"]")).expect("valid");
        let acme = crate::tenant::Tenant::parse("acme").expect("tenant");
        assert!(
            c.principals[0]
                .tenant_binding()
                .expect("binding")
                .admits(Some(&acme))
        );
        let c = parse(&principal("")).expect("valid");
        assert_eq!(
            c.principals[0].tenant_binding(),
            Ok(crate::tenant::TenantBinding::TenantLess)
        );
        for bad in [
            "tenants = [\"ac me\"]",
            "tenants = [\"*\", \"acme\"]",
            "tenants = [\"\"]",
        ] {
            let e = parse(&principal(bad)).expect_err(bad);
            assert!(e.to_string().contains("principal `a`: tenants:"), "{e}");
        }
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let e = parse(
            "listen = \"nowhere\"\n[[principal]]\nname = \"a\"\ntoken_sha256 = \"xyz\"\nroles = []\n",
        )
        .expect_err("refused");
        assert_eq!(e.0.len(), 3, "{e}");
        assert_eq!(e.0[0].line, Some(1));
    }
}
