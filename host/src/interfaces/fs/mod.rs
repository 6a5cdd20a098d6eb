//! `wasi:filesystem`: wasmtime-wasi's preopen implementation, observed.
//!
//! Every `wasi:filesystem/types` call is delegated unchanged to
//! wasmtime-wasi (so cap-std's confinement to the preopens is exactly
//! wasmtime-wasi's), and summarised for the invocation's audit entry.
//!
//! **Targets.** Each descriptor remembers where it came from: the preopen's
//! guest path (from the policy, recorded in clear) and the relative path the
//! guest opened it by, joined `<parent>/<child>` byte for byte (no
//! normalisation, so `../secret` stays visible as what was asked). The
//! relative path is recorded only as its SHA-256, like KV keys: paths often
//! carry data (names from input), and audit entries are permanent — unlike
//! payloads they cannot be pruned, so clear paths would defeat
//! `payloads = "hash-only"`. A target reads `<op> <preopen>[ sha256:<hex>]`,
//! plus ` flags=...` for `open-at`, ` @<offset>` for streams, and
//! ` -> <second location>` for `rename-at`, `link-at` and `symlink-at`.
//!
//! **Aggregation.** Calls are summarised per (target, status): a guest that
//! reads a file in 100 chunks, or stats one path in a loop, produces one
//! summary whose status says `calls=<n>`, with the bytes summed and the
//! SHA-256 taken over all the data of those calls in call order (for a file
//! read sequentially from offset 0, that is the SHA-256 of the file). At
//! most [`MAX_FS_SUMMARIES`] distinct summaries are kept; calls with any
//! further (target, status) are folded into one summary per status with the
//! target [`FURTHER_CALLS`] (bytes summed, no hashes), so a refusal is never
//! lost and an entry stays bounded.
//!
//! **Write budget.** Each preopen has `max_write_bytes` (policy; 16 MiB by
//! default). Every byte a guest asks to write — `write`, writes to
//! `write-via-stream`/`append-via-stream` streams, `write-zeroes`, and the
//! size given to `set-size` — is charged to the preopen the descriptor came
//! from *before* the host does the write. A write that would pass the budget
//! is refused (`quota` to the guest; the stream write fails), summarised,
//! and the invocation ends `budget_exhausted:fs` whatever the guest does
//! next. Bytes written before the refusal stay in the directory (a
//! filesystem has no rollback). A descriptor of unknown origin may not
//! write at all.
//!
//! **Streams.** `read-via-stream`, `write-via-stream` and `append-via-stream`
//! return `wasi:io` streams; the host wraps them so the bytes the guest reads
//! (or writes, and the stream accepts) are counted and hashed into the
//! summary of the call that opened the stream. Likewise the names read from a
//! `read-directory` stream count toward that `read-directory` summary
//! (joined by `\n`, as `list-keys` in KV).
//!
//! **Recording and replay.** Every call that reaches a preopened directory
//! has its result recorded, in call order, in the invocation's recording
//! (`interfaces::recording`; formats in [`recorded`]): file data, stats,
//! listings, errors, stream reads and write results. Recording is bounded
//! as the data arrives (each result is checked against the recording's
//! bound before it is encoded). Replaying, no preopen is opened: every
//! call is answered from the recording, descriptors are placeholders, and
//! a guest whose call differs from the recorded one diverges (its call
//! traps, and the replay reports `diverged at call N`).
//!
//! # Layout
//!
//! This unit has six jobs, one file each: the grant ([`grant`]: preopened
//! directories, their validation and host paths), descriptor origins and
//! summary targets ([`origin`]), the ledger of summaries and write budgets
//! ([`ledger`]), the observing host implementation ([`view`]), the
//! counted streams ([`streams`]) and the recorded results and replayed
//! streams ([`recorded`]). This file holds the per-invocation state
//! ([`FsAudit`]), linking, and what the sandbox asks of every interface.

mod grant;
mod ledger;
mod origin;
mod recorded;
mod streams;
mod view;

pub use grant::{
    DirMode, PreopenDir, PreopenDirs, open_preopens, preopen_host_path, write_budgets,
};
pub(crate) use grant::{ENTRY, check_preopens_exist};
pub use ledger::{FsLog, WriteBudget};
pub use view::FsView;

use super::calls::{HostCallLog, MAX_ITEMISED_CALLS};
use super::recording;
use super::{BudgetOverrun, HostInterface};
use crate::audit::HostCall;
use crate::outcome::Budget;
use ledger::lock;
use origin::Origin;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};

/// The interface name in host-call summaries.
pub const INTERFACE: &str = "wasi:filesystem";

/// Most distinct (target, status) summaries one invocation keeps for the
/// filesystem. Further calls are folded into one summary per status.
pub const MAX_FS_SUMMARIES: usize = 128;

/// Target of the summaries that fold calls past [`MAX_FS_SUMMARIES`].
pub const FURTHER_CALLS: &str = "further calls not itemised";

// The filesystem's bound is separate from (and smaller than) the one for
// the other interfaces, so a directory walk cannot push HTTP, model or KV
// evidence out of the entry.
const _: () = assert!(MAX_FS_SUMMARIES <= MAX_ITEMISED_CALLS);

/// Per-invocation filesystem audit state and write budgets.
pub struct FsAudit {
    /// Origin of every live descriptor and directory-entry stream, by rep.
    origins: HashMap<u32, Origin>,
    /// Which `read-directory` tally a directory-entry stream feeds.
    listings: HashMap<u32, usize>,
    /// The summaries, created by the first filesystem call (most
    /// invocations make none).
    log: Option<Arc<Mutex<FsLog>>>,
    /// Where results are recorded (or, replaying, answered from).
    recording: recording::Shared,
    /// Replaying: the preopens' guest paths (nothing is opened).
    replay_preopens: Option<Vec<String>>,
}

impl FsAudit {
    /// State for an invocation granted `budgets` (one per preopen),
    /// recording in `recording`. When `replaying` (`recording` answers
    /// from a replay feed), the preopens
    /// are the guest paths of `budgets` and nothing on the host is opened.
    pub fn new(
        budgets: Vec<WriteBudget>,
        recording: recording::Shared,
        replaying: bool,
    ) -> FsAudit {
        let replay_preopens =
            replaying.then(|| budgets.iter().map(|b| b.preopen.to_string()).collect());
        FsAudit {
            origins: HashMap::new(),
            listings: HashMap::new(),
            log: (!budgets.is_empty()).then(|| Arc::new(Mutex::new(FsLog::with_budgets(budgets)))),
            recording,
            replay_preopens,
        }
    }

    /// Whether calls are answered from the recording.
    fn replaying(&self) -> bool {
        self.replay_preopens.is_some()
    }

    /// The summaries recorded so far.
    pub fn summaries(&self) -> Vec<HostCall> {
        self.log
            .as_ref()
            .map_or_else(Vec::new, |log| lock(log).summaries())
    }

    /// The summaries, shared with counted streams.
    fn shared(&mut self) -> &Arc<Mutex<FsLog>> {
        self.log.get_or_insert_with(Default::default)
    }
}

/// Marker for linking `wasi:filesystem` with [`FsView`].
pub struct HasFs;

impl HasData for HasFs {
    type Data<'a> = FsView<'a>;
}

/// Links the `wasi:filesystem` interface `id` (`types` or `preopens`);
/// `get` borrows the invocation's [`FsView`] from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    l: &mut Linker<T>,
    id: &str,
    get: fn(&mut T) -> FsView<'_>,
) -> wasmtime::Result<()> {
    match id {
        "wasi:filesystem/preopens" => preopens::add_to_linker::<T, HasFs>(l, get),
        _ => types::add_to_linker::<T, HasFs>(l, get),
    }
}

/// A write past a preopen's `max_write_bytes` ends the invocation
/// `budget_exhausted:fs`; the summaries are listed after the other calls'.
impl HostInterface for FsAudit {
    fn overrun(&self) -> Option<BudgetOverrun> {
        let why = self
            .log
            .as_ref()
            .and_then(|log| lock(log).overrun.clone())?;
        Some(BudgetOverrun {
            budget: Budget::Fs,
            why,
        })
    }

    fn summarise(&mut self, calls: &mut HostCallLog) {
        calls.set_filesystem(self.summaries());
    }
}
