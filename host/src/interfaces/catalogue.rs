//! The catalogue of everything warden knows how to link: which unit (module
//! under `interfaces/`) owns each interface name, and what a grant of it
//! carries ([`GrantKind`]).
//!
//! Policies delegate here: `policy` keeps the generic `[imports]` table
//! (names, duplicates, positions) and asks [`grant_kind`] what one entry
//! means. Each unit lists its own names and reads its own settings (its
//! [`Entry`]); this module only finds the unit. An import that is in no
//! unit's list can never be granted, so it can never be linked: the
//! component is refused at load.
//!
//! Pure: no I/O, no wasmtime types. It must never hold per-invocation
//! state or decide anything a unit's settings do not say.

use super::clocks::ClockMode;
use super::fs::PreopenDirs;
use super::http::HttpGrant;
use super::kv::KvLimits;
use super::log::LogLimits;
use super::model::ModelGrant;
use super::random::RandomMode;
use crate::names::InterfaceName;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One granted import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The interface as written in the policy (version optional).
    pub name: InterfaceName,
    /// What it gives, with its settings.
    pub kind: GrantKind,
}

/// What a granted interface gives the guest, with its settings.
///
/// Its JSON form is part of the effective policy, whose canonical form is
/// hashed (`policy_hash` in audit entries): variant and field names are
/// fixed.
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

/// The units, one per module under `interfaces/`, as the linker knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// `wasi:io` (wasmtime-wasi-io).
    Io,
    /// `wasi:cli` (wasmtime-wasi; output captured).
    Cli,
    /// `wasi:clocks`.
    Clocks,
    /// `wasi:random`.
    Random,
    /// `wasi:filesystem`.
    Fs,
    /// `warden:host/types` (types only: nothing to link but the instance).
    WardenTypes,
    /// `warden:host/log`.
    Log,
    /// `warden:host/kv`.
    Kv,
    /// `warden:host/model`.
    Model,
    /// `wasi:http`.
    Http,
    /// `warden:host/invocation`.
    Invocation,
}

/// One unit's place in the catalogue, declared by the unit itself.
pub(crate) struct Entry {
    /// Which unit links these names.
    pub unit: Unit,
    /// The interfaces it implements, unversioned (`wasi:clocks/wall-clock`).
    pub names: &'static [&'static str],
    /// Reads and validates a grant's settings for one of `names` (given as
    /// the first argument); the error is the whole message a policy author
    /// sees (`bad settings for ...`).
    pub grant: fn(&str, toml::Value) -> Result<GrantKind, String>,
    /// The settings `warden policy init` writes for one of `names`.
    pub default_settings: fn(&str) -> &'static str,
}

/// Every unit, in the order their names are looked up (names are distinct,
/// so the order only matters for speed).
static ENTRIES: [&Entry; 11] = [
    &super::wasi::IO,
    &super::wasi::CLI,
    &super::clocks::ENTRY,
    &super::random::ENTRY,
    &super::fs::ENTRY,
    &WARDEN_TYPES,
    &super::log::ENTRY,
    &super::kv::ENTRY,
    &super::model::ENTRY,
    &super::http::ENTRY,
    &super::invocation::ENTRY,
];

/// `warden:host/types` has no module of its own: it only defines types.
const WARDEN_TYPES: Entry = Entry {
    unit: Unit::WardenTypes,
    names: &["warden:host/types"],
    grant: no_settings,
    default_settings: empty_table,
};

/// Looks an interface up; the error says why it cannot be granted.
pub(crate) fn entry(name: &InterfaceName) -> Result<&'static Entry, String> {
    let id = name.unversioned();
    if let Some(entry) = ENTRIES
        .iter()
        .find(|e| e.names.contains(&id.as_str()))
        .copied()
    {
        return Ok(entry);
    }
    Err(if name.package_id() == "wasi:sockets" {
        format!(
            "`{id}` cannot be granted: warden never gives capabilities raw sockets; \
             outbound network access goes through `wasi:http/outgoing-handler` with an allow-list"
        )
    } else if name.package_id() == "wasi:http" {
        format!(
            "`{id}` cannot be granted: capabilities make outbound requests only \
             (`wasi:http/outgoing-handler` + `wasi:http/types`)"
        )
    } else {
        format!("`{id}` is not an interface warden can link; see docs/policy.md for the list")
    })
}

/// Reads a grant's settings table for the interface `name`.
pub fn grant_kind(name: &InterfaceName, settings: toml::Value) -> Result<GrantKind, String> {
    let entry = entry(name)?;
    (entry.grant)(&name.unversioned(), settings)
}

/// The settings `warden policy init` writes for an import: the safe default
/// (for grants whose settings have no safe default, a placeholder the author
/// must fill in, which `policy check` refuses until then).
pub fn default_grant_settings(name: &InterfaceName) -> Result<&'static str, String> {
    let entry = entry(name)?;
    Ok((entry.default_settings)(&name.unversioned()))
}

/// Deserialises a unit's settings type for interface `id`, with the error
/// message every policy author sees for a bad settings table.
pub(crate) fn read_settings<T: DeserializeOwned>(
    id: &str,
    settings: toml::Value,
) -> Result<T, String> {
    T::deserialize(settings).map_err(|e| format!("bad settings for `{id}`: {}", e.message()))
}

/// Settings of an interface that takes none: only `{}` is accepted.
pub(crate) fn no_settings(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoSettings {}
    read_settings::<NoSettings>(id, settings)?;
    Ok(GrantKind::AuthorityFree)
}

/// `{}`: the default settings of most interfaces.
pub(crate) fn empty_table(_id: &str) -> &'static str {
    "{}"
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
        assert!(
            err.starts_with("bad settings for `wasi:io/streams`: "),
            "{err}"
        );
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
        let err = kind("wasi:http/incoming-handler", "{}").expect_err("incoming");
        assert!(err.contains("outbound requests only"), "{err}");
    }

    #[test]
    fn every_name_belongs_to_exactly_one_unit() {
        let mut seen = std::collections::BTreeSet::new();
        for entry in ENTRIES {
            for name in entry.names {
                assert!(seen.insert(*name), "{name} is listed by two units");
            }
        }
        assert_eq!(seen.len(), 27, "the catalogue's size changed: {seen:?}");
    }

    #[test]
    fn stdout_and_stderr_are_captured_output_and_the_rest_of_cli_is_authority_free() {
        assert_eq!(kind("wasi:cli/stdout", "{}"), Ok(GrantKind::CapturedOutput));
        assert_eq!(kind("wasi:cli/stderr", "{}"), Ok(GrantKind::CapturedOutput));
        assert_eq!(kind("wasi:cli/exit", "{}"), Ok(GrantKind::AuthorityFree));
        assert_eq!(
            kind("wasi:filesystem/types", "{}"),
            Ok(GrantKind::AuthorityFree)
        );
        assert_eq!(kind("wasi:http/types", "{}"), Ok(GrantKind::AuthorityFree));
    }

    #[test]
    fn policy_init_defaults_come_from_each_unit() {
        let d = |n: &str| default_grant_settings(&InterfaceName::parse(n).expect("name"));
        assert_eq!(
            d("wasi:clocks/monotonic-clock"),
            Ok("{ mode = \"virtual\" }")
        );
        assert_eq!(d("wasi:random/insecure"), Ok("{ mode = \"seeded\" }"));
        assert_eq!(
            d("warden:host/model"),
            Ok("{ models = [], max_tokens = 2000 }")
        );
        assert_eq!(
            d("wasi:http/outgoing-handler"),
            Ok("{ allow = [], max_requests = 10 }")
        );
        assert_eq!(d("wasi:http/types"), Ok("{}"));
        assert_eq!(d("warden:host/kv"), Ok("{}"));
        assert!(d("wasi:sockets/udp").is_err());
    }
}
