//! The observing `wasi:filesystem` host: every call is delegated unchanged
//! to wasmtime-wasi, its result recorded ([`super::recorded`]) and
//! summarised into the invocation's ledger; streams are wrapped
//! ([`super::streams`]) and descriptor origins tracked ([`super::origin`]).
//! Replaying, every call is answered from the recording instead, and
//! summarised the same way.
//!
//! It must never change what wasmtime-wasi allows or answers (cap-std's
//! confinement is wasmtime-wasi's), only observe it; and replaying, it
//! must never reach wasmtime-wasi's filesystem at all.

use super::FsAudit;
use super::ledger::{FsLog, lock};
use super::origin::Origin;
use super::recorded::{self, Answer, Placeholder, ReplayInput, ReplayOutput, StreamRecord};
use super::streams::{CountedInput, CountedOutput};
use crate::digest::Hash256;
use std::sync::{Arc, MutexGuard};
use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
use wasmtime_wasi::p2::{FsError, FsResult, ReaddirIterator};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

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
    fn origin<T: Send + 'static>(&self, r: &Resource<T>) -> Origin {
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

    /// Replaying: the recorded result of `call` (a departure from the
    /// recording traps). Recording: `None` (make the call).
    fn answer<T: Answer>(&mut self, call: &str) -> Option<FsResult<T>> {
        if !self.audit.replaying() {
            return None;
        }
        Some(
            recorded::replayed(&self.audit.recording, call)
                .unwrap_or_else(|| Err(recorded::diverged())),
        )
    }

    /// Records the result of `call` (a no-op when replaying).
    fn keep<T: Answer>(&self, call: &str, r: &FsResult<T>) {
        recorded::keep(&self.audit.recording, call, r);
    }

    /// Replaying: a new descriptor or directory-entry stream that holds
    /// nothing (every call on it is answered from the recording).
    fn placeholder<T: 'static>(&mut self) -> FsResult<Resource<T>> {
        let p = self.inner.table.push(Placeholder)?;
        Ok(Resource::new_own(p.rep()))
    }

    /// Replaying: drops a placeholder made by [`placeholder`](Self::placeholder).
    fn drop_placeholder(&mut self, rep: u32) -> wasmtime::Result<()> {
        self.inner
            .table
            .delete(Resource::<Placeholder>::new_own(rep))?;
        Ok(())
    }

    /// The recording of a stream opened by the call summarised as `target`.
    fn stream_record(&self, target: &str) -> StreamRecord {
        StreamRecord {
            recording: self.audit.recording.clone(),
            call: format!("wasi:filesystem stream {target}"),
        }
    }
}

/// Record mode: delegates, then records the result under `call`. Replay
/// mode: the recorded result (the host's filesystem is never touched).
macro_rules! recorded {
    ($self:ident, $call:expr, $delegate:expr) => {{
        let call: String = $call;
        match $self.answer(&call) {
            Some(r) => r,
            None => {
                let r = $delegate;
                $self.keep(&call, &r);
                r
            }
        }
    }};
}

impl preopens::Host for FsView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        // Lists only what the policy granted; not summarised, not recorded
        // (the policy decides it).
        let dirs = match self.audit.replay_preopens.clone() {
            Some(names) => {
                let mut dirs = Vec::with_capacity(names.len());
                for name in names {
                    let p = self.inner.table.push(Placeholder)?;
                    dirs.push((Resource::new_own(p.rep()), name));
                }
                dirs
            }
            None => preopens::Host::get_directories(&mut self.inner)?,
        };
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
        let r = recorded!(
            $self,
            format!("wasi:filesystem {} {}", $op, origin.describe()),
            types::HostDescriptor::$method(&mut $self.inner, $fd $(, $arg)*).await
        );
        $self.on($op, &origin, &r);
        r
    }};
}

/// Delegates a call on `path` relative to a directory descriptor.
macro_rules! at_path {
    ($self:ident, $op:literal, $method:ident($fd:ident, $($arg:expr),*), $path:ident) => {{
        let origin = $self.origin(&$fd);
        let rel = $path.clone();
        let r = recorded!(
            $self,
            format!("wasi:filesystem {} {}", $op, origin.child(&rel).describe()),
            types::HostDescriptor::$method(&mut $self.inner, $fd, $($arg),*).await
        );
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
        let r = recorded!(
            self,
            format!(
                "wasi:filesystem read {} len={len} @{offset}",
                origin.describe()
            ),
            types::HostDescriptor::read(&mut self.inner, fd, len, offset).await
        );
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
        let r = recorded!(
            self,
            format!(
                "wasi:filesystem write {} len={} @{offset}",
                origin.describe(),
                data.len()
            ),
            types::HostDescriptor::write(&mut self.inner, fd, buf, offset).await
        );
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
        let call = format!("wasi:filesystem read-directory {}", origin.describe());
        let r = match self.answer::<()>(&call) {
            Some(r) => r.and_then(|()| self.placeholder()),
            None => {
                let r = types::HostDescriptor::read_directory(&mut self.inner, fd).await;
                self.keep(&call, &r);
                r
            }
        };
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
        let r = recorded!(
            self,
            format!("wasi:filesystem {target}"),
            types::HostDescriptor::link_at(
                &mut self.inner,
                fd,
                old_path_flags,
                old_path,
                new_descriptor,
                new_path,
            )
            .await
        );
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
        let call = format!("wasi:filesystem {target}");
        let r = match self.answer::<()>(&call) {
            Some(r) => r.and_then(|()| self.placeholder()),
            None => {
                let r = types::HostDescriptor::open_at(
                    &mut self.inner,
                    fd,
                    path_flags,
                    path,
                    oflags,
                    flags,
                )
                .await;
                self.keep(&call, &r);
                r
            }
        };
        self.log().call(target, status(&r));
        if let Ok(new) = &r {
            self.audit.origins.insert(new.rep(), opened);
        }
        r
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.audit.origins.remove(&fd.rep());
        if self.audit.replaying() {
            return self.drop_placeholder(fd.rep());
        }
        types::HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let origin = self.origin(&fd);
        let rel = path.clone();
        let r = recorded!(
            self,
            format!(
                "wasi:filesystem readlink-at {}",
                origin.child(&rel).describe()
            ),
            types::HostDescriptor::readlink_at(&mut self.inner, fd, path).await
        );
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
        let r = recorded!(
            self,
            format!("wasi:filesystem {target}"),
            types::HostDescriptor::rename_at(&mut self.inner, fd, old_path, new_fd, new_path).await
        );
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
        let r = recorded!(
            self,
            format!("wasi:filesystem {target}"),
            types::HostDescriptor::symlink_at(&mut self.inner, fd, src_path, dest_path).await
        );
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
        let call = format!("wasi:filesystem {target}");
        let rec = self.stream_record(&target);
        if let Some(r) = self.answer::<()>(&call) {
            let i = self.log().call(target, status(&r));
            r?;
            let replayed: DynInputStream = Box::new(CountedInput {
                inner: Box::new(ReplayInput { rec }),
                log: self.audit.shared().clone(),
                tally: i,
                rec: None,
            });
            return Ok(self.inner.table.push(replayed)?);
        }
        let r = types::HostDescriptor::read_via_stream(&mut self.inner, fd, offset);
        self.keep(&call, &r);
        let i = self.log().call(target, status(&r));
        let stream = self.inner.table.delete(r?)?;
        let counted: DynInputStream = Box::new(CountedInput {
            inner: stream,
            log: self.audit.shared().clone(),
            tally: i,
            rec: Some(rec),
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
        let call = format!("wasi:filesystem {target}");
        let rec = self.stream_record(&target);
        if let Some(r) = self.answer::<()>(&call) {
            let i = self.log().call(target, status(&r));
            r?;
            return self.replayed_output(rec, i, origin.preopen);
        }
        let r = types::HostDescriptor::write_via_stream(&mut self.inner, fd, offset);
        self.keep(&call, &r);
        let i = self.log().call(target, status(&r));
        self.counted_output(r?, i, origin.preopen, rec)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let origin = self.origin(&fd);
        let target = format!("append-via-stream {}", origin.describe());
        let call = format!("wasi:filesystem {target}");
        let rec = self.stream_record(&target);
        if let Some(r) = self.answer::<()>(&call) {
            let i = self.log().call(target, status(&r));
            r?;
            return self.replayed_output(rec, i, origin.preopen);
        }
        let r = types::HostDescriptor::append_via_stream(&mut self.inner, fd);
        self.keep(&call, &r);
        let i = self.log().call(target, status(&r));
        self.counted_output(r?, i, origin.preopen, rec)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        // Compares two descriptors the guest already holds; not summarised,
        // but its answer comes from the host's filesystem: recorded.
        let call = format!(
            "wasi:filesystem is-same-object {} {}",
            self.origin(&a).describe(),
            self.origin(&b).describe()
        );
        let r: FsResult<bool> = recorded!(
            self,
            call,
            types::HostDescriptor::is_same_object(&mut self.inner, a, b)
                .await
                .map_err(FsError::trap)
        );
        r.map_err(|e| match e.downcast() {
            Ok(code) => wasmtime::format_err!("is-same-object failed: {code:?}"),
            Err(trap) => trap,
        })
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
        rec: StreamRecord,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = self.inner.table.delete(stream)?;
        let counted: DynOutputStream = Box::new(CountedOutput {
            inner: stream,
            log: self.audit.shared().clone(),
            tally,
            preopen,
            rec: Some(rec),
        });
        Ok(self.inner.table.push(counted)?)
    }

    /// Replaying: an output stream answered from `rec`, still charged to
    /// its preopen's budget and summarised like the recorded one.
    fn replayed_output(
        &mut self,
        rec: StreamRecord,
        tally: usize,
        preopen: Arc<str>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let replayed: DynOutputStream = Box::new(CountedOutput {
            inner: Box::new(ReplayOutput { rec }),
            log: self.audit.shared().clone(),
            tally,
            preopen,
            rec: None,
        });
        Ok(self.inner.table.push(replayed)?)
    }
}

impl types::HostDirectoryEntryStream for FsView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<ReaddirIterator>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        let rep = stream.rep();
        let origin = self.origin(&stream);
        let call = format!("wasi:filesystem entries {}", origin.describe());
        let r = match self.answer(&call) {
            Some(r) => r,
            None => {
                let r =
                    types::HostDirectoryEntryStream::read_directory_entry(&mut self.inner, stream)
                        .await;
                self.keep(&call, &r);
                r
            }
        };
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
        if self.audit.replaying() {
            return self.drop_placeholder(stream.rep());
        }
        types::HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}
