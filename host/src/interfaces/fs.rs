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

use super::calls::MAX_ITEMISED_CALLS;
use crate::audit::HostCall;
use crate::audit::entry::Hash256;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
use wasmtime_wasi::p2::{FsError, FsResult, ReaddirIterator};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, StreamError, StreamResult,
};

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

/// Where a descriptor (or directory-entry stream) came from.
#[derive(Clone)]
struct Origin {
    /// The preopen's guest path.
    preopen: Arc<str>,
    /// SHA-256 state over the relative path so far (`None`: the preopen
    /// itself). A state, not a string, so nested opens cost constant memory.
    path: Option<Sha256>,
}

impl Origin {
    fn preopen(name: &str) -> Origin {
        Origin {
            preopen: name.into(),
            path: None,
        }
    }

    /// A descriptor the host does not know (cannot happen: every
    /// descriptor comes from `get-directories` or `open-at`).
    fn unknown() -> Origin {
        Origin::preopen("?")
    }

    /// `rel` opened relative to this one.
    fn child(&self, rel: &str) -> Origin {
        let mut h = match &self.path {
            Some(h) => {
                let mut h = h.clone();
                h.update(b"/");
                h
            }
            None => Sha256::new(),
        };
        h.update(rel.as_bytes());
        Origin {
            preopen: self.preopen.clone(),
            path: Some(h),
        }
    }

    /// `<preopen>` or `<preopen> sha256:<hex of the relative path>`.
    fn describe(&self) -> String {
        match &self.path {
            None => self.preopen.to_string(),
            Some(h) => format!("{} {}", self.preopen, Hash256(h.clone().finalize().into())),
        }
    }
}

/// One summary being accumulated.
struct Tally {
    target: String,
    status: String,
    calls: u64,
    bytes_in: u64,
    bytes_out: u64,
    request: Sha256,
    response: Sha256,
    /// Folded summaries count bytes but hash nothing (unrelated data).
    hashed: bool,
}

/// The write budget of one preopen (by its guest path).
#[derive(Debug, Clone)]
pub struct WriteBudget {
    /// The preopen's guest path.
    pub preopen: Arc<str>,
    /// Most bytes one invocation may write under it; `None`: read-only
    /// (wasmtime-wasi refuses every write there itself).
    pub limit: Option<u64>,
    /// Bytes charged so far.
    pub used: u64,
}

/// The filesystem summaries of one invocation, shared with the stream
/// wrappers (which outlive the call that opened them), and the write
/// budgets they charge.
#[derive(Default)]
pub struct FsLog {
    tallies: Vec<Tally>,
    index: HashMap<(String, String), usize>,
    itemised: usize,
    budgets: Vec<WriteBudget>,
    /// Why a write was refused for its budget: the invocation then ends
    /// `budget_exhausted:fs`.
    overrun: Option<String>,
}

impl FsLog {
    /// Charges `n` bytes a guest asks to write under `preopen`, before the
    /// write happens. Refuses (and remembers why) past the budget.
    fn charge(&mut self, preopen: &str, n: u64) -> Result<(), String> {
        let why = match self.budgets.iter_mut().find(|b| &*b.preopen == preopen) {
            Some(WriteBudget { limit: None, .. }) => return Ok(()),
            Some(b) => match (b.used.checked_add(n), b.limit) {
                (Some(total), Some(limit)) if total <= limit => {
                    b.used = total;
                    return Ok(());
                }
                (_, limit) => format!(
                    "writes under preopen `{preopen}` would pass its max_write_bytes of {} bytes \
                     ({} written, {n} more asked)",
                    limit.unwrap_or(0),
                    b.used
                ),
            },
            None => {
                format!("a write through a descriptor of unknown origin (`{preopen}`) was refused")
            }
        };
        self.overrun.get_or_insert_with(|| why.clone());
        Err(why)
    }

    /// Counts one call under (`target`, `status`); returns its tally.
    fn call(&mut self, target: String, status: String) -> usize {
        let folded = self.itemised >= MAX_FS_SUMMARIES;
        let key = if folded && !self.index.contains_key(&(target.clone(), status.clone())) {
            (FURTHER_CALLS.to_string(), status)
        } else {
            (target, status)
        };
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let hashed = key.0 != FURTHER_CALLS;
                self.itemised += usize::from(hashed);
                self.tallies.push(Tally {
                    target: key.0.clone(),
                    status: key.1.clone(),
                    calls: 0,
                    bytes_in: 0,
                    bytes_out: 0,
                    request: Sha256::new(),
                    response: Sha256::new(),
                    hashed,
                });
                let i = self.tallies.len() - 1;
                self.index.insert(key, i);
                i
            }
        };
        if let Some(t) = self.tallies.get_mut(i) {
            t.calls = t.calls.saturating_add(1);
        }
        i
    }

    /// Bytes the guest sent (written) under tally `i`.
    fn sent(&mut self, i: usize, data: &[u8]) {
        if let Some(t) = self.tallies.get_mut(i) {
            t.bytes_in = t.bytes_in.saturating_add(data.len() as u64);
            if t.hashed {
                t.request.update(data);
            }
        }
    }

    /// Bytes returned to the guest under tally `i`.
    fn received(&mut self, i: usize, data: &[u8]) {
        if let Some(t) = self.tallies.get_mut(i) {
            t.bytes_out = t.bytes_out.saturating_add(data.len() as u64);
            if t.hashed {
                t.response.update(data);
            }
        }
    }

    /// A directory entry name returned under tally `i` (names are joined by
    /// `\n`).
    fn name(&mut self, i: usize, name: &str) {
        let first = self.tallies.get(i).is_none_or(|t| t.bytes_out == 0);
        if !first {
            self.received(i, b"\n");
        }
        self.received(i, name.as_bytes());
    }

    /// `n` zero bytes written through a stream (`write-zeroes`).
    fn sent_zeroes(&mut self, i: usize, mut n: usize) {
        const ZEROES: [u8; 4096] = [0; 4096];
        while n > 0 {
            let chunk = n.min(ZEROES.len());
            self.sent(i, &ZEROES[..chunk]);
            n -= chunk;
        }
    }

    /// The summaries, in order of first occurrence.
    pub fn summaries(&self) -> Vec<HostCall> {
        self.tallies
            .iter()
            .map(|t| {
                let hash = |h: &Sha256, n: u64| {
                    (t.hashed && n > 0).then(|| Hash256(h.clone().finalize().into()))
                };
                HostCall {
                    interface: INTERFACE.into(),
                    target: t.target.clone(),
                    bytes_in: t.bytes_in,
                    bytes_out: t.bytes_out,
                    status: if t.calls > 1 {
                        format!("{} calls={}", t.status, t.calls)
                    } else {
                        t.status.clone()
                    },
                    request_sha256: hash(&t.request, t.bytes_in),
                    response_sha256: hash(&t.response, t.bytes_out),
                }
            })
            .collect()
    }
}

fn lock(log: &Mutex<FsLog>) -> MutexGuard<'_, FsLog> {
    // A poisoned lock only means a panic elsewhere; the tallies are plain data.
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-invocation filesystem audit state and write budgets.
#[derive(Default)]
pub struct FsAudit {
    /// Origin of every live descriptor and directory-entry stream, by rep.
    origins: HashMap<u32, Origin>,
    /// Which `read-directory` tally a directory-entry stream feeds.
    listings: HashMap<u32, usize>,
    /// The summaries, created by the first filesystem call (most
    /// invocations make none).
    log: Option<Arc<Mutex<FsLog>>>,
}

impl FsAudit {
    /// State for an invocation granted `budgets` (one per preopen).
    pub fn new(budgets: Vec<WriteBudget>) -> FsAudit {
        FsAudit {
            log: (!budgets.is_empty()).then(|| {
                Arc::new(Mutex::new(FsLog {
                    budgets,
                    ..FsLog::default()
                }))
            }),
            ..FsAudit::default()
        }
    }

    /// Why a write was refused for its budget, if one was.
    pub fn overrun(&self) -> Option<String> {
        self.log.as_ref().and_then(|log| lock(log).overrun.clone())
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

/// What a filesystem call works on: wasmtime-wasi's view plus the audit.
pub struct FsView<'a> {
    /// wasmtime-wasi's filesystem context and the resource table.
    pub inner: WasiFilesystemCtxView<'a>,
    /// Where calls are summarised.
    pub audit: &'a mut FsAudit,
}

/// The status of a call: `ok`, the WASI error code, or `trap`.
fn status<T>(r: &FsResult<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e
            .downcast_ref()
            .map_or("trap", types::ErrorCode::name)
            .into(),
    }
}

/// `open-at` flags as `flags=a,b` (WIT names, fixed order), or nothing.
fn open_flags(oflags: types::OpenFlags, flags: types::DescriptorFlags) -> String {
    use types::{DescriptorFlags as D, OpenFlags as O};
    let names: Vec<&str> = [
        (oflags.contains(O::CREATE), "create"),
        (oflags.contains(O::DIRECTORY), "directory"),
        (oflags.contains(O::EXCLUSIVE), "exclusive"),
        (oflags.contains(O::TRUNCATE), "truncate"),
        (flags.contains(D::READ), "read"),
        (flags.contains(D::WRITE), "write"),
        (
            flags.contains(D::FILE_INTEGRITY_SYNC),
            "file-integrity-sync",
        ),
        (
            flags.contains(D::DATA_INTEGRITY_SYNC),
            "data-integrity-sync",
        ),
        (
            flags.contains(D::REQUESTED_WRITE_SYNC),
            "requested-write-sync",
        ),
        (flags.contains(D::MUTATE_DIRECTORY), "mutate-directory"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" flags={}", names.join(","))
    }
}

impl FsView<'_> {
    fn origin<T: 'static>(&self, r: &Resource<T>) -> Origin {
        self.audit
            .origins
            .get(&r.rep())
            .cloned()
            .unwrap_or_else(Origin::unknown)
    }

    fn log(&mut self) -> MutexGuard<'_, FsLog> {
        lock(self.audit.shared())
    }

    /// Summarises a call on the descriptor itself.
    fn on<T>(&mut self, op: &str, fd: &Origin, r: &FsResult<T>) -> usize {
        self.log()
            .call(format!("{op} {}", fd.describe()), status(r))
    }

    /// Summarises a call on `path` relative to a directory descriptor.
    fn at<T>(&mut self, op: &str, dir: &Origin, path: &str, r: &FsResult<T>) -> usize {
        self.on(op, &dir.child(path), r)
    }
}

impl preopens::Host for FsView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        // Lists only what the policy granted; not summarised.
        let dirs = preopens::Host::get_directories(&mut self.inner)?;
        for (fd, name) in &dirs {
            self.audit.origins.insert(fd.rep(), Origin::preopen(name));
        }
        Ok(dirs)
    }
}

impl types::Host for FsView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<types::ErrorCode> {
        types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<types::ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

/// Delegates a call on the descriptor itself and summarises it as `op`.
macro_rules! on_descriptor {
    ($self:ident, $op:literal, $method:ident($fd:ident $(, $arg:expr)*)) => {{
        let origin = $self.origin(&$fd);
        let r = types::HostDescriptor::$method(&mut $self.inner, $fd $(, $arg)*).await;
        $self.on($op, &origin, &r);
        r
    }};
}

/// Delegates a call on `path` relative to a directory descriptor.
macro_rules! at_path {
    ($self:ident, $op:literal, $method:ident($fd:ident, $($arg:expr),*), $path:ident) => {{
        let origin = $self.origin(&$fd);
        let rel = $path.clone();
        let r = types::HostDescriptor::$method(&mut $self.inner, $fd, $($arg),*).await;
        $self.at($op, &origin, &rel, &r);
        r
    }};
}

impl types::HostDescriptor for FsView<'_> {
    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        on_descriptor!(self, "advise", advise(fd, offset, len, advice))
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        on_descriptor!(self, "sync-data", sync_data(fd))
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorFlags> {
        on_descriptor!(self, "get-flags", get_flags(fd))
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorType> {
        on_descriptor!(self, "get-type", get_type(fd))
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: types::Filesize) -> FsResult<()> {
        let origin = self.origin(&fd);
        // Growing a file allocates up to `size` bytes: charged like a write.
        if self.log().charge(&origin.preopen, size).is_err() {
            let r = Err(types::ErrorCode::Quota.into());
            self.on("set-size", &origin, &r);
            return r;
        }
        on_descriptor!(self, "set-size", set_size(fd, size))
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        on_descriptor!(self, "set-times", set_times(fd, atim, mtim))
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        let origin = self.origin(&fd);
        let r = types::HostDescriptor::read(&mut self.inner, fd, len, offset).await;
        let i = self.on("read", &origin, &r);
        if let Ok((data, _)) = &r {
            self.log().received(i, data);
        }
        r
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        let origin = self.origin(&fd);
        if self
            .log()
            .charge(&origin.preopen, buf.len() as u64)
            .is_err()
        {
            let r = Err(types::ErrorCode::Quota.into());
            let i = self.on("write", &origin, &r);
            self.log().sent(i, &buf);
            return r;
        }
        let data = buf.clone();
        let r = types::HostDescriptor::write(&mut self.inner, fd, buf, offset).await;
        let i = self.on("write", &origin, &r);
        // What reached the file, or (refused) what the guest tried to write.
        let sent = match &r {
            Ok(n) => data
                .get(..usize::try_from(*n).unwrap_or(usize::MAX).min(data.len()))
                .unwrap_or(&data),
            Err(_) => &data,
        };
        self.log().sent(i, sent);
        r
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        let origin = self.origin(&fd);
        let r = types::HostDescriptor::read_directory(&mut self.inner, fd).await;
        let i = self.on("read-directory", &origin, &r);
        if let Ok(stream) = &r {
            self.audit.origins.insert(stream.rep(), origin);
            self.audit.listings.insert(stream.rep(), i);
        }
        r
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        on_descriptor!(self, "sync", sync(fd))
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        at_path!(
            self,
            "create-directory-at",
            create_directory_at(fd, path),
            path
        )
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        on_descriptor!(self, "stat", stat(fd))
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        at_path!(self, "stat-at", stat_at(fd, path_flags, path), path)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        at_path!(
            self,
            "set-times-at",
            set_times_at(fd, path_flags, path, atim, mtim),
            path
        )
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let target = format!(
            "link-at {} -> {}",
            self.origin(&fd).child(&old_path).describe(),
            self.origin(&new_descriptor).child(&new_path).describe()
        );
        let r = types::HostDescriptor::link_at(
            &mut self.inner,
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
        .await;
        self.log().call(target, status(&r));
        r
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let opened = self.origin(&fd).child(&path);
        let target = format!("open-at {}{}", opened.describe(), open_flags(oflags, flags));
        let r =
            types::HostDescriptor::open_at(&mut self.inner, fd, path_flags, path, oflags, flags)
                .await;
        self.log().call(target, status(&r));
        if let Ok(new) = &r {
            self.audit.origins.insert(new.rep(), opened);
        }
        r
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.audit.origins.remove(&fd.rep());
        types::HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let origin = self.origin(&fd);
        let rel = path.clone();
        let r = types::HostDescriptor::readlink_at(&mut self.inner, fd, path).await;
        let i = self.at("readlink-at", &origin, &rel, &r);
        if let Ok(text) = &r {
            self.log().received(i, text.as_bytes());
        }
        r
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        at_path!(
            self,
            "remove-directory-at",
            remove_directory_at(fd, path),
            path
        )
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let target = format!(
            "rename-at {} -> {}",
            self.origin(&fd).child(&old_path).describe(),
            self.origin(&new_fd).child(&new_path).describe()
        );
        let r =
            types::HostDescriptor::rename_at(&mut self.inner, fd, old_path, new_fd, new_path).await;
        self.log().call(target, status(&r));
        r
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let target = format!(
            "symlink-at {} -> {}",
            self.origin(&fd).child(&dest_path).describe(),
            Hash256::of(src_path.as_bytes())
        );
        let r = types::HostDescriptor::symlink_at(&mut self.inner, fd, src_path, dest_path).await;
        self.log().call(target, status(&r));
        r
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        at_path!(self, "unlink-file-at", unlink_file_at(fd, path), path)
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let target = format!("read-via-stream {} @{offset}", self.origin(&fd).describe());
        let r = types::HostDescriptor::read_via_stream(&mut self.inner, fd, offset);
        let i = self.log().call(target, status(&r));
        let stream = self.inner.table.delete(r?)?;
        let counted: DynInputStream = Box::new(CountedInput {
            inner: stream,
            log: self.audit.shared().clone(),
            tally: i,
        });
        Ok(self.inner.table.push(counted)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let origin = self.origin(&fd);
        let target = format!("write-via-stream {} @{offset}", origin.describe());
        let r = types::HostDescriptor::write_via_stream(&mut self.inner, fd, offset);
        let i = self.log().call(target, status(&r));
        self.counted_output(r?, i, origin.preopen)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let origin = self.origin(&fd);
        let target = format!("append-via-stream {}", origin.describe());
        let r = types::HostDescriptor::append_via_stream(&mut self.inner, fd);
        let i = self.log().call(target, status(&r));
        self.counted_output(r?, i, origin.preopen)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        // Compares two descriptors the guest already holds; not summarised.
        types::HostDescriptor::is_same_object(&mut self.inner, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        on_descriptor!(self, "metadata-hash", metadata_hash(fd))
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        at_path!(
            self,
            "metadata-hash-at",
            metadata_hash_at(fd, path_flags, path),
            path
        )
    }
}

impl FsView<'_> {
    fn counted_output(
        &mut self,
        stream: Resource<DynOutputStream>,
        tally: usize,
        preopen: Arc<str>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = self.inner.table.delete(stream)?;
        let counted: DynOutputStream = Box::new(CountedOutput {
            inner: stream,
            log: self.audit.shared().clone(),
            tally,
            preopen,
        });
        Ok(self.inner.table.push(counted)?)
    }
}

impl types::HostDirectoryEntryStream for FsView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<ReaddirIterator>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        let rep = stream.rep();
        let origin = self.origin(&stream);
        let r =
            types::HostDirectoryEntryStream::read_directory_entry(&mut self.inner, stream).await;
        match (&r, self.audit.listings.get(&rep).copied()) {
            // Names count toward the `read-directory` that opened the stream.
            (Ok(Some(entry)), Some(i)) => self.log().name(i, &entry.name),
            (Ok(_), _) => {}
            (Err(_), _) => {
                self.on("read-directory-entry", &origin, &r);
            }
        }
        r
    }

    fn drop(&mut self, stream: Resource<ReaddirIterator>) -> wasmtime::Result<()> {
        self.audit.origins.remove(&stream.rep());
        self.audit.listings.remove(&stream.rep());
        types::HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

/// A file input stream whose bytes are counted into a summary. Bytes
/// skipped (`skip`) never reach the guest and are not counted.
struct CountedInput {
    inner: DynInputStream,
    log: Arc<Mutex<FsLog>>,
    tally: usize,
}

impl CountedInput {
    fn count(&self, r: &StreamResult<Bytes>) {
        if let Ok(data) = r {
            lock(&self.log).received(self.tally, data);
        }
    }
}

#[async_trait::async_trait]
impl Pollable for CountedInput {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl InputStream for CountedInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let r = self.inner.read(size);
        self.count(&r);
        r
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        let r = self.inner.blocking_read(size).await;
        self.count(&r);
        r
    }

    fn skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.inner.skip(nelem)
    }

    async fn blocking_skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.inner.blocking_skip(nelem).await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// A file output stream whose accepted bytes are counted into a summary
/// and charged to its preopen's write budget before they are written.
/// Bytes a failing write may have partly written are not counted.
struct CountedOutput {
    inner: DynOutputStream,
    log: Arc<Mutex<FsLog>>,
    tally: usize,
    preopen: Arc<str>,
}

impl CountedOutput {
    fn charge(&self, n: usize) -> StreamResult<()> {
        lock(&self.log)
            .charge(&self.preopen, n as u64)
            .map_err(|why| StreamError::LastOperationFailed(wasmtime::format_err!("{why}")))
    }

    fn count(&self, r: &StreamResult<()>, data: &[u8]) {
        if r.is_ok() {
            lock(&self.log).sent(self.tally, data);
        }
    }
}

#[async_trait::async_trait]
impl Pollable for CountedOutput {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl OutputStream for CountedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        let data = bytes.clone();
        let r = self.inner.write(bytes);
        self.count(&r, &data);
        r
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        let data = bytes.clone();
        let r = self.inner.blocking_write_and_flush(bytes).await;
        self.count(&r, &data);
        r
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.charge(nelem)?;
        let r = self.inner.write_zeroes(nelem);
        if r.is_ok() {
            lock(&self.log).sent_zeroes(self.tally, nelem);
        }
        r
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// Marker for linking `wasi:filesystem` with [`FsView`].
pub struct HasFs;

impl HasData for HasFs {
    type Data<'a> = FsView<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> String {
        Hash256::of(s.as_bytes()).to_string()
    }

    #[test]
    fn nested_paths_hash_as_joined_with_a_slash() {
        let root = Origin::preopen("/in");
        assert_eq!(root.describe(), "/in");
        let sub = root.child("sub");
        assert_eq!(sub.describe(), format!("/in {}", hex("sub")));
        assert_eq!(
            sub.child("../x").describe(),
            format!("/in {}", hex("sub/../x"))
        );
    }

    #[test]
    fn calls_aggregate_per_target_and_status() {
        let mut log = FsLog::default();
        let a = log.call("read /in x".into(), "ok".into());
        log.received(a, b"hello ");
        let b = log.call("read /in x".into(), "ok".into());
        assert_eq!(a, b);
        log.received(b, b"world");
        log.call("read /in x".into(), "bad-descriptor".into());
        let s = log.summaries();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].status, "ok calls=2");
        assert_eq!(s[0].bytes_out, 11);
        assert_eq!(s[0].response_sha256, Some(Hash256::of(b"hello world")));
        assert_eq!(s[0].request_sha256, None);
        assert_eq!(s[1].status, "bad-descriptor");
        assert_eq!(s[1].response_sha256, None);
    }

    #[test]
    fn distinct_summaries_are_bounded_and_further_calls_folded_per_status() {
        let mut log = FsLog::default();
        for n in 0..MAX_FS_SUMMARIES + 50 {
            let i = log.call(format!("stat-at /in {n}"), "no-entry".into());
            log.received(i, b"ab");
        }
        log.call("open-at /in y".into(), "not-permitted".into());
        log.call("open-at /in z".into(), "not-permitted".into());
        // An itemised target keeps counting after the bound.
        log.call("stat-at /in 0".into(), "no-entry".into());
        let s = log.summaries();
        assert_eq!(s.len(), MAX_FS_SUMMARIES + 2);
        assert_eq!(s[0].status, "no-entry calls=2");
        let folded = &s[MAX_FS_SUMMARIES];
        assert_eq!(folded.target, FURTHER_CALLS);
        assert_eq!(folded.status, "no-entry calls=50");
        assert_eq!(folded.bytes_out, 100);
        assert_eq!(folded.response_sha256, None);
        let refused = &s[MAX_FS_SUMMARIES + 1];
        assert_eq!(refused.target, FURTHER_CALLS);
        assert_eq!(refused.status, "not-permitted calls=2");
    }

    #[test]
    fn directory_names_are_joined_by_newlines() {
        let mut log = FsLog::default();
        let i = log.call("read-directory /in".into(), "ok".into());
        log.name(i, "a.txt");
        log.name(i, "b");
        let s = log.summaries();
        assert_eq!(s[0].bytes_out, 7);
        assert_eq!(s[0].response_sha256, Some(Hash256::of(b"a.txt\nb")));
    }

    #[test]
    fn writes_are_charged_to_their_preopen_and_refused_past_its_budget() {
        let mut log = FsLog {
            budgets: vec![
                WriteBudget {
                    preopen: "/out".into(),
                    limit: Some(10),
                    used: 0,
                },
                WriteBudget {
                    preopen: "/in".into(),
                    limit: None,
                    used: 0,
                },
            ],
            ..FsLog::default()
        };
        assert!(log.charge("/out", 6).is_ok());
        assert!(log.charge("/out", 4).is_ok());
        assert!(log.overrun.is_none());
        let why = log.charge("/out", 1).expect_err("over");
        assert!(why.contains("max_write_bytes of 10"), "{why}");
        assert!(
            log.charge("/in", u64::MAX).is_ok(),
            "read-only: wasmtime refuses"
        );
        assert!(log.charge("?", 1).is_err(), "unknown origin never writes");
        assert!(log.charge("/out", u64::MAX).is_err(), "no overflow");
        assert!(log.overrun.is_some());
    }
}
