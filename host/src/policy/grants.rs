//! What each grantable interface means, and the settings a grant may carry.
//!
//! This is the catalogue of everything warden knows how to link. An import
//! that is not in the catalogue can never be granted, so it can never be
//! linked: the component is refused at load.

use super::egress::OriginPattern;
use super::names::InterfaceName;
use crate::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// How a clock import behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    /// Fixed at the request's admission time (wall clock); a deterministic
    /// counter (monotonic clock). Invocations stay replayable.
    #[default]
    Virtual,
    /// The host's real clock. Invocations are not replayable.
    System,
}

/// How a random import behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomMode {
    /// A generator seeded from the request id. Invocations stay replayable.
    #[default]
    Seeded,
    /// The host's entropy source. Invocations are not replayable.
    System,
}

/// Limits on `warden:host/log` per invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLimits {
    /// Most log lines one invocation may write. By default 100.
    #[serde(default = "LogLimits::default_lines")]
    pub max_lines: u32,
    /// Most log bytes (messages) one invocation may write. By default 16KiB.
    #[serde(default = "LogLimits::default_bytes")]
    pub max_bytes: ByteSize,
}

impl LogLimits {
    fn default_lines() -> u32 {
        100
    }
    fn default_bytes() -> ByteSize {
        ByteSize(16 << 10)
    }
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: Self::default_lines(),
            max_bytes: Self::default_bytes(),
        }
    }
}

/// Quotas on `warden:host/kv` for the capability's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvLimits {
    /// Most bytes (keys + values) the namespace may hold. By default 1MiB.
    #[serde(default = "KvLimits::default_bytes")]
    pub max_bytes: ByteSize,
    /// Largest single value. By default 64KiB.
    #[serde(default = "KvLimits::default_value_bytes")]
    pub max_value_bytes: ByteSize,
    /// Most keys the namespace may hold. By default 1000.
    #[serde(default = "KvLimits::default_keys")]
    pub max_keys: u32,
    /// Most kv calls (`get`, `set`, `delete`, `list-keys`) one invocation
    /// may make. By default 10000. The call past it is refused and the
    /// invocation ends `budget_exhausted:kv`.
    #[serde(default = "KvLimits::default_calls")]
    pub max_calls: u32,
}

impl KvLimits {
    fn default_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    fn default_value_bytes() -> ByteSize {
        ByteSize(64 << 10)
    }
    fn default_keys() -> u32 {
        1000
    }
    fn default_calls() -> u32 {
        10_000
    }
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_bytes: Self::default_bytes(),
            max_value_bytes: Self::default_value_bytes(),
            max_keys: Self::default_keys(),
            max_calls: Self::default_calls(),
        }
    }
}

/// `warden:host/model`: which host-configured models, and the token budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGrant {
    /// Model names (as configured on the host) the capability may call.
    /// Required; any other name is `error::denied`.
    pub models: Vec<String>,
    /// Tokens (input + output, as reported by the provider) one invocation
    /// may use across all its calls. By default 2000.
    #[serde(default = "ModelGrant::default_tokens")]
    pub max_tokens: u32,
}

impl ModelGrant {
    fn default_tokens() -> u32 {
        2000
    }
}

/// `wasi:http/outgoing-handler`: where requests may go, and per-invocation limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Origins (`scheme://host[:port]`, `*.domain` wildcards) requests may
    /// go to. Required; everything else is refused before connecting.
    pub allow: Vec<OriginPattern>,
    /// Requests per invocation. By default 10.
    #[serde(default = "HttpGrant::default_requests")]
    pub max_requests: u32,
    /// Request body bytes per invocation (all requests). By default 1MiB.
    #[serde(default = "HttpGrant::default_request_bytes")]
    pub max_request_bytes: ByteSize,
    /// Response body bytes per invocation (all responses). By default 1MiB.
    #[serde(default = "HttpGrant::default_response_bytes")]
    pub max_response_bytes: ByteSize,
    /// Per-request time limit: connect, headers and body. By default 10s.
    /// The invocation's `wall_time` still bounds the total.
    #[serde(default = "HttpGrant::default_timeout")]
    pub timeout: HumanDuration,
}

impl HttpGrant {
    fn default_requests() -> u32 {
        10
    }
    fn default_request_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    fn default_response_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    fn default_timeout() -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(10))
    }
}

/// Whether a preopened directory may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirMode {
    /// Read files and list directories only.
    ReadOnly,
    /// Also create, write, rename and remove files and directories.
    ReadWrite,
}

/// One preopened directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreopenDir {
    /// Directory on the host: absolute, or relative to the policy file's
    /// directory. Must exist when the capability is loaded.
    pub host: String,
    /// Path the guest sees it at (for example `/in`).
    pub guest: String,
    /// `read-only` or `read-write`. Required: no default for write access.
    pub mode: DirMode,
    /// Most bytes one invocation may write under this directory (writes,
    /// stream writes, zero fills, and file sizes set); past it writes are
    /// refused and the invocation ends `budget_exhausted:fs`. By default
    /// 16MiB. Ignored for `read-only`.
    #[serde(default = "PreopenDir::default_write_bytes")]
    pub max_write_bytes: ByteSize,
}

impl PreopenDir {
    fn default_write_bytes() -> ByteSize {
        ByteSize(16 << 20)
    }
}

/// `wasi:filesystem/preopens` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreopenDirs {
    /// The directories. By default none (the guest sees no filesystem).
    #[serde(default)]
    pub dirs: Vec<PreopenDir>,
}

/// What a granted interface gives the guest, with its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GrantKind {
    /// Carries no authority: types, streams, polling, empty environment and
    /// arguments, closed stdin, exit, terminal queries, filesystem types
    /// without any preopened directory.
    AuthorityFree,
    /// stdout/stderr: captured into the invocation record, capped by the
    /// `max_stdout` budget.
    CapturedOutput,
    /// A clock.
    Clock {
        /// Virtual or system.
        mode: ClockMode,
    },
    /// A random source.
    Random {
        /// Seeded or system.
        mode: RandomMode,
    },
    /// `wasi:filesystem/preopens`: the preopened directories (none by default).
    Preopens(PreopenDirs),
    /// `warden:host/log`.
    Log(LogLimits),
    /// `warden:host/kv`.
    Kv(KvLimits),
    /// `warden:host/model`.
    Model(ModelGrant),
    /// `wasi:http/outgoing-handler`.
    Http(HttpGrant),
}

impl GrantKind {
    /// Whether an invocation using this grant is still replayable.
    pub fn is_replayable(&self) -> bool {
        !matches!(
            self,
            GrantKind::Clock {
                mode: ClockMode::System
            } | GrantKind::Random {
                mode: RandomMode::System
            }
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockSettings {
    #[serde(default)]
    mode: ClockMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomSettings {
    #[serde(default)]
    mode: RandomMode,
}

/// The family an interface belongs to, before its settings are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    AuthorityFree,
    CapturedOutput,
    Clock,
    Random,
    Preopens,
    Log,
    Kv,
    Model,
    Http,
}

/// Looks an interface up in the catalogue; the error says why it cannot be granted.
fn family(name: &InterfaceName) -> Result<Family, String> {
    let id = name.unversioned();
    Ok(match id.as_str() {
        "wasi:io/error" | "wasi:io/poll" | "wasi:io/streams" => Family::AuthorityFree,
        "wasi:cli/environment"
        | "wasi:cli/exit"
        | "wasi:cli/stdin"
        | "wasi:cli/terminal-input"
        | "wasi:cli/terminal-output"
        | "wasi:cli/terminal-stdin"
        | "wasi:cli/terminal-stdout"
        | "wasi:cli/terminal-stderr" => Family::AuthorityFree,
        "wasi:cli/stdout" | "wasi:cli/stderr" => Family::CapturedOutput,
        "wasi:clocks/wall-clock" | "wasi:clocks/monotonic-clock" => Family::Clock,
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => {
            Family::Random
        }
        "wasi:filesystem/types" => Family::AuthorityFree,
        "wasi:filesystem/preopens" => Family::Preopens,
        "warden:host/types" => Family::AuthorityFree,
        "warden:host/log" => Family::Log,
        "warden:host/kv" => Family::Kv,
        "warden:host/model" => Family::Model,
        "wasi:http/types" => Family::AuthorityFree,
        "wasi:http/outgoing-handler" => Family::Http,
        _ if name.package_id() == "wasi:sockets" => {
            return Err(format!(
                "`{id}` cannot be granted: warden never gives capabilities raw sockets; \
                 outbound network access goes through `wasi:http/outgoing-handler` with an allow-list"
            ));
        }
        _ if name.package_id() == "wasi:http" => {
            return Err(format!(
                "`{id}` cannot be granted: capabilities make outbound requests only \
                 (`wasi:http/outgoing-handler` + `wasi:http/types`)"
            ));
        }
        _ => {
            return Err(format!(
                "`{id}` is not an interface warden can link; see docs/policy.md for the list"
            ));
        }
    })
}

/// Reads a grant's settings table for the interface `name`.
pub fn grant_kind(name: &InterfaceName, settings: toml::Value) -> Result<GrantKind, String> {
    let fam = family(name)?;
    let id = name.unversioned();
    let bad = |e: toml::de::Error| format!("bad settings for `{id}`: {}", e.message());
    Ok(match fam {
        Family::AuthorityFree | Family::CapturedOutput => {
            NoSettings::deserialize(settings).map_err(bad)?;
            match fam {
                Family::AuthorityFree => GrantKind::AuthorityFree,
                _ => GrantKind::CapturedOutput,
            }
        }
        Family::Preopens => {
            let dirs = PreopenDirs::deserialize(settings).map_err(bad)?;
            check_preopens(&dirs).map_err(|e| format!("bad settings for `{id}`: {e}"))?;
            GrantKind::Preopens(dirs)
        }
        Family::Kv => GrantKind::Kv(KvLimits::deserialize(settings).map_err(bad)?),
        Family::Model => {
            let grant = ModelGrant::deserialize(settings).map_err(bad)?;
            if grant.models.is_empty() {
                return Err(format!(
                    "bad settings for `{id}`: `models` is empty, so no call could ever succeed"
                ));
            }
            GrantKind::Model(grant)
        }
        Family::Http => {
            let grant = HttpGrant::deserialize(settings).map_err(bad)?;
            if grant.allow.is_empty() {
                return Err(format!(
                    "bad settings for `{id}`: `allow` is empty, so every request would be refused"
                ));
            }
            GrantKind::Http(grant)
        }
        Family::Clock => GrantKind::Clock {
            mode: ClockSettings::deserialize(settings).map_err(bad)?.mode,
        },
        Family::Random => GrantKind::Random {
            mode: RandomSettings::deserialize(settings).map_err(bad)?.mode,
        },
        Family::Log => GrantKind::Log(LogLimits::deserialize(settings).map_err(bad)?),
    })
}

/// Guest paths must be absolute, distinct and free of `..`; host paths non-empty.
fn check_preopens(dirs: &PreopenDirs) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for d in &dirs.dirs {
        if d.host.trim().is_empty() {
            return Err("a preopen's `host` path is empty".into());
        }
        if !d.guest.starts_with('/') || d.guest.split('/').any(|c| c == ".." || c == ".") {
            return Err(format!(
                "guest path `{}` must be absolute and contain no `.` or `..`",
                d.guest
            ));
        }
        if !seen.insert(d.guest.trim_end_matches('/')) {
            return Err(format!("guest path `{}` is preopened twice", d.guest));
        }
    }
    Ok(())
}

/// The settings `warden policy init` writes for an import: the safe default
/// (for grants whose settings have no safe default, a placeholder the author
/// must fill in, which `policy check` refuses until then).
pub fn default_grant_settings(name: &InterfaceName) -> Result<&'static str, String> {
    Ok(match family(name)? {
        Family::Clock => "{ mode = \"virtual\" }",
        Family::Random => "{ mode = \"seeded\" }",
        Family::Model => "{ models = [], max_tokens = 2000 }",
        Family::Http => "{ allow = [], max_requests = 10 }",
        _ => "{}",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str, settings: &str) -> Result<GrantKind, String> {
        let n = InterfaceName::parse(name).expect("name");
        let v: toml::Value = toml::from_str::<toml::Table>(&format!("x = {settings}"))
            .map(|mut t| {
                t.remove("x")
                    .unwrap_or(toml::Value::Table(Default::default()))
            })
            .map_err(|e| e.to_string())?;
        grant_kind(&n, v)
    }

    #[test]
    fn clocks_default_to_virtual_and_random_to_seeded() {
        assert_eq!(
            kind("wasi:clocks/wall-clock", "{}"),
            Ok(GrantKind::Clock {
                mode: ClockMode::Virtual
            })
        );
        assert_eq!(
            kind("wasi:random/random", "{}"),
            Ok(GrantKind::Random {
                mode: RandomMode::Seeded
            })
        );
        assert_eq!(
            kind("wasi:clocks/wall-clock", "{ mode = \"system\" }"),
            Ok(GrantKind::Clock {
                mode: ClockMode::System
            })
        );
    }

    #[test]
    fn unknown_settings_are_errors() {
        let err = kind("wasi:io/streams", "{ fast = true }").expect_err("unknown field");
        assert!(err.contains("fast"), "{err}");
        let err = kind("wasi:clocks/wall-clock", "{ mode = \"warp\" }").expect_err("bad mode");
        assert!(err.contains("warp"), "{err}");
    }

    #[test]
    fn sockets_are_never_grantable() {
        let err = kind("wasi:sockets/tcp", "{}").expect_err("sockets");
        assert!(err.contains("raw sockets"), "{err}");
    }

    #[test]
    fn unknown_interfaces_are_not_grantable() {
        let err = kind("acme:evil/backdoor", "{}").expect_err("unknown");
        assert!(err.contains("acme:evil/backdoor"), "{err}");
    }
}
