//! The WASI context one invocation shares between wasmtime-wasi's
//! interfaces, and the units without settings of their own: `wasi:io` and
//! `wasi:cli` (stdout/stderr captured, environment empty, stdin closed).
//!
//! Owns what the context is made of (captured output, clocks and random
//! chosen by their grants — system ones recorded — preopened directories) and builds it on the
//! first WASI call, so an invocation that makes none never pays for it. It
//! must never give the guest an environment, arguments, stdin or an
//! uncaptured stream.

use super::catalogue::{Entry, GrantKind, Unit, empty_table, no_settings};
use super::clocks::{
    CountingMonotonicClock, FixedWallClock, RecordedMonotonicClock, RecordedWallClock,
};
use super::random::{RecordedRng, seed};
use super::recording;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliCtxView};
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// `wasi:io`'s place in the catalogue: authority-free, no settings.
pub(crate) const IO: Entry = Entry {
    unit: Unit::Io,
    names: &["wasi:io/error", "wasi:io/poll", "wasi:io/streams"],
    grant: no_settings,
    default_settings: empty_table,
};

/// `wasi:cli`'s place in the catalogue: no settings; stdout and stderr are
/// captured output, the rest is authority-free.
pub(crate) const CLI: Entry = Entry {
    unit: Unit::Cli,
    names: &[
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
    ],
    grant: cli_grant,
    default_settings: empty_table,
};

fn cli_grant(id: &str, settings: toml::Value) -> Result<GrantKind, String> {
    no_settings(id, settings)?;
    Ok(match id {
        "wasi:cli/stdout" | "wasi:cli/stderr" => GrantKind::CapturedOutput,
        _ => GrantKind::AuthorityFree,
    })
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the `wasi:io` interface `id` (one of [`IO`]'s names).
pub fn add_io_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    id: &str,
    get: fn(&mut T) -> &mut ResourceTable,
) -> wasmtime::Result<()> {
    use wasmtime_wasi_io::bindings::wasi::io;
    match id {
        "wasi:io/error" => io::error::add_to_linker::<T, HasIo>(l, get),
        "wasi:io/poll" => io::poll::add_to_linker::<T, HasIo>(l, get),
        _ => io::streams::add_to_linker::<T, HasIo>(l, get),
    }
}

/// Links the `wasi:cli` interface `id` (one of [`CLI`]'s names).
pub fn add_cli_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    id: &str,
    get: fn(&mut T) -> WasiCliCtxView<'_>,
) -> wasmtime::Result<()> {
    use wasi::cli;
    match id {
        "wasi:cli/environment" => cli::environment::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/exit" => cli::exit::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/stdin" => cli::stdin::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/stdout" => cli::stdout::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/stderr" => cli::stderr::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/terminal-input" => cli::terminal_input::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/terminal-output" => cli::terminal_output::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/terminal-stdin" => cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, get),
        "wasi:cli/terminal-stdout" => cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, get),
        _ => cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, get),
    }
}

/// The invocation's WASI context: what it is made of, decided from the
/// policy when the state is created, and the context once built.
pub struct WasiState {
    /// Built on first use (see [`WasiState::ctx`]); boxed, as the plan's
    /// builder, so that the Store data of the many invocations that never
    /// reach WASI stays small (it is moved into every Store).
    ctx: Option<Box<WasiCtx>>,
    plan: WasiPlan,
}

struct WasiPlan {
    /// Cap on each captured stream (`max_stdout`).
    capture_cap: usize,
    /// Captured stdout and stderr, created with the context.
    captured: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
    /// The virtual wall clock's reading, unless the system clock is granted.
    fixed_wall: Option<Duration>,
    virtual_monotonic: bool,
    /// The request id seeding random, unless system random is granted.
    seeded_from: Option<String>,
    /// A builder already holding the preopens, when the policy grants any
    /// (opened eagerly so a vanished directory fails before the call).
    preopened: Option<Box<WasiCtxBuilder>>,
    /// Where granted system clocks and random record what they hand out.
    recording: recording::Shared,
}

impl WasiState {
    /// The plan for one invocation; nothing is built yet.
    pub(crate) fn new(
        capture_cap: usize,
        fixed_wall: Option<Duration>,
        virtual_monotonic: bool,
        seeded_from: Option<String>,
        preopened: Option<WasiCtxBuilder>,
        recording: recording::Shared,
    ) -> WasiState {
        WasiState {
            ctx: None,
            plan: WasiPlan {
                capture_cap,
                captured: None,
                fixed_wall,
                virtual_monotonic,
                seeded_from,
                preopened: preopened.map(Box::new),
                recording,
            },
        }
    }

    /// The invocation's WASI context, built on first use.
    pub fn ctx(&mut self) -> &mut WasiCtx {
        self.ctx.get_or_insert_with(|| Box::new(self.plan.build()))
    }

    /// Captured stdout (empty if the guest never reached WASI).
    pub fn stdout(&self) -> bytes::Bytes {
        self.plan
            .captured
            .as_ref()
            .map(|(out, _)| out.contents())
            .unwrap_or_default()
    }

    /// Captured stderr (empty if the guest never reached WASI).
    pub fn stderr(&self) -> bytes::Bytes {
        self.plan
            .captured
            .as_ref()
            .map(|(_, err)| err.contents())
            .unwrap_or_default()
    }

    /// Whether either captured stream hit its cap.
    pub fn capture_overflowed(&self) -> bool {
        let cap = self.plan.capture_cap;
        self.stdout().len() >= cap || self.stderr().len() >= cap
    }
}

impl WasiPlan {
    fn build(&mut self) -> WasiCtx {
        let mut b = self.preopened.take().map(|b| *b).unwrap_or_default();
        let cap = self.capture_cap;
        let (stdout, stderr) = self
            .captured
            .get_or_insert_with(|| (MemoryOutputPipe::new(cap), MemoryOutputPipe::new(cap)));
        b.stdout(stdout.clone()).stderr(stderr.clone());
        let recording = &self.recording;
        match self.fixed_wall {
            Some(since_epoch) => b.wall_clock(FixedWallClock { since_epoch }),
            None => b.wall_clock(RecordedWallClock {
                recording: recording.clone(),
            }),
        };
        if self.virtual_monotonic {
            b.monotonic_clock(CountingMonotonicClock::default());
        } else {
            b.monotonic_clock(RecordedMonotonicClock {
                recording: recording.clone(),
                clock: wasmtime_wasi::clocks::MonotonicClock::new(),
            });
        }
        if self.seeded_from.is_none() {
            b.secure_random(RecordedRng::new(recording.clone(), "random"));
            b.insecure_random(RecordedRng::new(recording.clone(), "insecure"));
            b.insecure_random_seed(RecordedRng::insecure_seed(recording));
        }
        if let Some(request_id) = &self.seeded_from {
            b.secure_random(StdRng::from_seed(seed(request_id, "secure")));
            b.insecure_random(StdRng::from_seed(seed(request_id, "insecure")));
            let s = seed(request_id, "insecure-seed");
            let mut first = [0u8; 16];
            first.copy_from_slice(&s[..16]);
            b.insecure_random_seed(u128::from_le_bytes(first));
        }
        b.build()
    }
}
