//! What each grantable interface means, and the settings a grant may carry.
//!
//! This is the catalogue of everything warden knows how to link. An import
//! that is not in the catalogue can never be granted, so it can never be
//! linked: the component is refused at load.

use super::names::InterfaceName;
use super::units::ByteSize;
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
    /// `wasi:filesystem/preopens`: the list of preopened directories. With no
    /// directories granted (the only form in this version) it is empty.
    Preopens,
    /// `warden:host/log`.
    Log(LogLimits),
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
        _ if name.package_id() == "wasi:sockets" => {
            return Err(format!(
                "`{id}` cannot be granted: warden never gives capabilities raw sockets; \
                 outbound network access goes through `wasi:http/outgoing-handler` with an allow-list"
            ));
        }
        "warden:host/kv" | "warden:host/model" => {
            return Err(format!(
                "`{id}` is declared in warden's WIT but this version of the host does not implement it yet"
            ));
        }
        _ if name.package_id() == "wasi:http" => {
            return Err(format!(
                "`{id}` is not supported by this version of the host yet"
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
        Family::AuthorityFree | Family::CapturedOutput | Family::Preopens => {
            NoSettings::deserialize(settings).map_err(bad)?;
            match fam {
                Family::AuthorityFree => GrantKind::AuthorityFree,
                Family::CapturedOutput => GrantKind::CapturedOutput,
                _ => GrantKind::Preopens,
            }
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

/// The settings `warden policy init` writes for an import: the safe default.
pub fn default_grant_settings(name: &InterfaceName) -> Result<&'static str, String> {
    Ok(match family(name)? {
        Family::Clock => "{ mode = \"virtual\" }",
        Family::Random => "{ mode = \"seeded\" }",
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
