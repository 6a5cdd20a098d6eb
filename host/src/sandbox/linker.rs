//! Builds a capability's linker from its grants: only imports that the
//! component declares *and* the policy grants are linked.

use super::state::InvocationState;
use crate::component::Shape;
use crate::interfaces::fs::HasFs;
use crate::policy::{GrantKind, Policy};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::random::WasiRandom;

/// Why a capability could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The component imports interfaces its policy does not grant.
    #[error(
        "refused: the component imports {} not granted by {}: {}\n  \
         grant them in the policy's [imports] table (see docs/policy.md) if the capability really needs them, \
         or rebuild the component without them",
        if .imports.len() == 1 { "an interface" } else { "interfaces" },
        .policy.display(),
        .imports.join(", ")
    )]
    Ungranted {
        /// The policy file.
        policy: PathBuf,
        /// Every ungranted import name, as the component names it.
        imports: Vec<String>,
    },
    /// A preopened directory named by the policy does not exist.
    #[error(
        "preopen `{guest}` -> {}: {message} (host paths are absolute or relative to the policy file)",
        .host.display()
    )]
    Preopen {
        /// The guest path.
        guest: String,
        /// The resolved host path.
        host: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// wasmtime refused a definition (a host bug, not a policy problem).
    #[error("linking `{import}` failed: {message}")]
    Wasmtime {
        /// The import being linked.
        import: String,
        /// wasmtime's message.
        message: String,
    },
}

/// Every import of `shape` that `policy` does not grant.
pub fn ungranted_imports(shape: &Shape, policy: &Policy) -> Vec<String> {
    shape
        .imports
        .iter()
        .filter(|i| {
            i.interface
                .as_ref()
                .is_none_or(|n| policy.grants(n).is_none())
        })
        .map(|i| i.name.clone())
        .collect()
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Builds the linker for one capability. Refuses (naming every ungranted
/// import and the policy file) before defining anything.
pub fn linker_for(
    engine: &Engine,
    shape: &Shape,
    policy: &Policy,
) -> Result<Linker<InvocationState>, LinkError> {
    let ungranted = ungranted_imports(shape, policy);
    if !ungranted.is_empty() {
        return Err(LinkError::Ungranted {
            policy: policy.source.clone(),
            imports: ungranted,
        });
    }
    check_preopens(policy)?;
    let mut linker = Linker::new(engine);
    for import in &shape.imports {
        let Some(name) = &import.interface else {
            continue; // unreachable: refused above
        };
        link_one(&mut linker, &name.unversioned(), &import.name).map_err(|e| {
            LinkError::Wasmtime {
                import: import.name.clone(),
                message: format!("{e:#}"),
            }
        })?;
    }
    Ok(linker)
}

/// Every preopened directory must exist (and be a directory) at load.
fn check_preopens(policy: &Policy) -> Result<(), LinkError> {
    for g in &policy.imports {
        let GrantKind::Preopens(p) = &g.kind else {
            continue;
        };
        for dir in &p.dirs {
            let host = super::state::preopen_host_path(policy, dir);
            let problem = match std::fs::metadata(&host) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => "not a directory".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(LinkError::Preopen {
                guest: dir.guest.clone(),
                host,
                message: problem,
            });
        }
    }
    Ok(())
}

/// Defines one granted interface. Each arm adds exactly that interface.
fn link_one(l: &mut Linker<InvocationState>, id: &str, full: &str) -> wasmtime::Result<()> {
    type S = InvocationState;
    match id {
        "wasi:io/error" => {
            wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<S, HasIo>(l, |s| {
                &mut s.table
            })
        }
        "wasi:io/poll" => {
            wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<S, HasIo>(l, |s| {
                &mut s.table
            })
        }
        "wasi:io/streams" => {
            wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<S, HasIo>(l, |s| {
                &mut s.table
            })
        }
        "wasi:cli/environment" => wasi::cli::environment::add_to_linker::<S, WasiCli>(l, S::cli),
        "wasi:cli/exit" => wasi::cli::exit::add_to_linker::<S, WasiCli>(l, S::cli),
        "wasi:cli/stdin" => wasi::cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli),
        "wasi:cli/stdout" => wasi::cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli),
        "wasi:cli/stderr" => wasi::cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli),
        "wasi:cli/terminal-input" => {
            wasi::cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)
        }
        "wasi:cli/terminal-output" => {
            wasi::cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)
        }
        "wasi:cli/terminal-stdin" => {
            wasi::cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)
        }
        "wasi:cli/terminal-stdout" => {
            wasi::cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)
        }
        "wasi:cli/terminal-stderr" => {
            wasi::cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)
        }
        "wasi:clocks/wall-clock" => {
            wasi::clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)
        }
        "wasi:clocks/monotonic-clock" => {
            wasi::clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)
        }
        "wasi:random/random" => {
            wasi::random::random::add_to_linker::<S, WasiRandom>(l, |s| s.wasi_ctx().random())
        }
        "wasi:random/insecure" => {
            wasi::random::insecure::add_to_linker::<S, WasiRandom>(l, |s| s.wasi_ctx().random())
        }
        "wasi:random/insecure-seed" => {
            wasi::random::insecure_seed::add_to_linker::<S, WasiRandom>(l, |s| {
                s.wasi_ctx().random()
            })
        }
        "wasi:filesystem/types" => {
            wasi::filesystem::types::add_to_linker::<S, HasFs>(l, S::fs_view)
        }
        "wasi:filesystem/preopens" => {
            wasi::filesystem::preopens::add_to_linker::<S, HasFs>(l, S::fs_view)
        }
        "warden:host/types" => l.instance(full).map(|_| ()),
        "warden:host/log" => crate::interfaces::log::add_to_linker(l),
        "warden:host/kv" => crate::interfaces::kv::add_to_linker(l),
        "warden:host/model" => crate::interfaces::model::add_to_linker(l),
        "wasi:http/outgoing-handler" => {
            wasmtime_wasi_http::p2::bindings::http::outgoing_handler::add_to_linker::<
                S,
                wasmtime_wasi_http::WasiHttp,
            >(l, <S as wasmtime_wasi_http::WasiHttpView>::http)
        }
        "wasi:http/types" => {
            let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
            wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<
                S,
                wasmtime_wasi_http::WasiHttp,
            >(
                l,
                &options.into(),
                <S as wasmtime_wasi_http::WasiHttpView>::http,
            )
        }
        other => Err(wasmtime::format_err!(
            "`{other}` is granted but this host has no implementation to link"
        )),
    }
}
