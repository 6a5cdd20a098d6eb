//! Filesystem results as recorded for `warden audit replay`, and what
//! answers a replayed guest instead of the host's filesystem.
//!
//! Every `wasi:filesystem` call that reaches the host's directories has its
//! result recorded in call order, as `{"ok": …}`, `{"err": "<error-code>"}`
//! or `{"trap": null}` under the descriptor `wasi:filesystem <op> <target>`
//! (the summary's target plus the call's arguments). A stream's operations
//! (reads, skips, write permits, writes, flushes) are recorded under
//! `wasi:filesystem stream <target> <op>`, a listing's entries under
//! `wasi:filesystem entries <target>`. Consecutive filesystem results share
//! one run ([`RUN`]) of `[<descriptor>, <result>]` pairs.
//!
//! Replaying, descriptors and directory-entry streams are placeholders in
//! the resource table (only their rep is used), and streams are
//! [`ReplayInput`]/[`ReplayOutput`]: nothing here opens, reads or writes a
//! host file. This module must never answer a replayed call with anything
//! but the recording, and never record a result it did not see.

use crate::interfaces::recording::{self, Replayed};
use bytes::Bytes;
use serde_json::{Value, json};
use wasmtime_wasi::p2::bindings::filesystem::types;
use wasmtime_wasi::p2::{FsError, FsResult};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

/// The resource a replayed descriptor or directory-entry stream occupies in
/// the table: it holds nothing, every call on it is answered from the
/// recording.
pub(super) struct Placeholder;

/// A filesystem call's successful value, as recorded.
pub(super) trait Answer: Sized {
    /// The recorded form.
    fn to_json(&self) -> Value;
    /// Back from the recorded form (`None`: malformed).
    fn from_json(v: &Value) -> Option<Self>;
    /// Roughly how many bytes the recorded form takes (checked against the
    /// recording's bound before it is encoded).
    fn size_hint(&self) -> usize {
        64
    }
}

impl Answer for () {
    fn to_json(&self) -> Value {
        Value::Null
    }
    fn from_json(_: &Value) -> Option<()> {
        Some(())
    }
}

impl Answer for bool {
    fn to_json(&self) -> Value {
        json!(self)
    }
    fn from_json(v: &Value) -> Option<bool> {
        v.as_bool()
    }
}

impl Answer for u64 {
    fn to_json(&self) -> Value {
        json!(self)
    }
    fn from_json(v: &Value) -> Option<u64> {
        v.as_u64()
    }
}

impl Answer for String {
    fn to_json(&self) -> Value {
        json!(self)
    }
    fn from_json(v: &Value) -> Option<String> {
        v.as_str().map(str::to_string)
    }
    fn size_hint(&self) -> usize {
        self.len().saturating_mul(2).saturating_add(8)
    }
}

impl Answer for (Vec<u8>, bool) {
    fn to_json(&self) -> Value {
        json!({"data": hex::encode(&self.0), "end": self.1})
    }
    fn from_json(v: &Value) -> Option<(Vec<u8>, bool)> {
        Some((hex::decode(v["data"].as_str()?).ok()?, v["end"].as_bool()?))
    }
    fn size_hint(&self) -> usize {
        self.0.len().saturating_mul(2).saturating_add(32)
    }
}

const DESCRIPTOR_FLAGS: [(types::DescriptorFlags, &str); 6] = [
    (types::DescriptorFlags::READ, "read"),
    (types::DescriptorFlags::WRITE, "write"),
    (
        types::DescriptorFlags::FILE_INTEGRITY_SYNC,
        "file-integrity-sync",
    ),
    (
        types::DescriptorFlags::DATA_INTEGRITY_SYNC,
        "data-integrity-sync",
    ),
    (
        types::DescriptorFlags::REQUESTED_WRITE_SYNC,
        "requested-write-sync",
    ),
    (types::DescriptorFlags::MUTATE_DIRECTORY, "mutate-directory"),
];

impl Answer for types::DescriptorFlags {
    fn to_json(&self) -> Value {
        DESCRIPTOR_FLAGS
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| json!(n))
            .collect()
    }
    fn from_json(v: &Value) -> Option<types::DescriptorFlags> {
        let mut flags = types::DescriptorFlags::empty();
        for name in v.as_array()? {
            let (f, _) = DESCRIPTOR_FLAGS
                .iter()
                .find(|(_, n)| Some(*n) == name.as_str())?;
            flags |= *f;
        }
        Some(flags)
    }
}

const DESCRIPTOR_TYPES: [(types::DescriptorType, &str); 8] = [
    (types::DescriptorType::Unknown, "unknown"),
    (types::DescriptorType::BlockDevice, "block-device"),
    (types::DescriptorType::CharacterDevice, "character-device"),
    (types::DescriptorType::Directory, "directory"),
    (types::DescriptorType::Fifo, "fifo"),
    (types::DescriptorType::SymbolicLink, "symbolic-link"),
    (types::DescriptorType::RegularFile, "regular-file"),
    (types::DescriptorType::Socket, "socket"),
];

impl Answer for types::DescriptorType {
    fn to_json(&self) -> Value {
        let name = DESCRIPTOR_TYPES
            .iter()
            .find(|(t, _)| t == self)
            .map_or("unknown", |(_, n)| n);
        json!(name)
    }
    fn from_json(v: &Value) -> Option<types::DescriptorType> {
        DESCRIPTOR_TYPES
            .iter()
            .find(|(_, n)| Some(*n) == v.as_str())
            .map(|(t, _)| *t)
    }
}

fn datetime(d: &Option<types::Datetime>) -> Value {
    d.as_ref()
        .map_or(Value::Null, |d| json!([d.seconds, d.nanoseconds]))
}

fn datetime_of(v: &Value) -> Option<Option<types::Datetime>> {
    if v.is_null() {
        return Some(None);
    }
    Some(Some(types::Datetime {
        seconds: v.get(0)?.as_u64()?,
        nanoseconds: u32::try_from(v.get(1)?.as_u64()?).ok()?,
    }))
}

impl Answer for types::DescriptorStat {
    fn to_json(&self) -> Value {
        json!({
            "type": self.type_.to_json(),
            "link_count": self.link_count,
            "size": self.size,
            "accessed": datetime(&self.data_access_timestamp),
            "modified": datetime(&self.data_modification_timestamp),
            "changed": datetime(&self.status_change_timestamp),
        })
    }
    fn from_json(v: &Value) -> Option<types::DescriptorStat> {
        Some(types::DescriptorStat {
            type_: types::DescriptorType::from_json(&v["type"])?,
            link_count: v["link_count"].as_u64()?,
            size: v["size"].as_u64()?,
            data_access_timestamp: datetime_of(&v["accessed"])?,
            data_modification_timestamp: datetime_of(&v["modified"])?,
            status_change_timestamp: datetime_of(&v["changed"])?,
        })
    }
}

impl Answer for types::MetadataHashValue {
    fn to_json(&self) -> Value {
        json!([self.lower, self.upper])
    }
    fn from_json(v: &Value) -> Option<types::MetadataHashValue> {
        Some(types::MetadataHashValue {
            lower: v.get(0)?.as_u64()?,
            upper: v.get(1)?.as_u64()?,
        })
    }
}

impl Answer for Option<types::DirectoryEntry> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(
            Value::Null,
            |e| json!({"type": e.type_.to_json(), "name": e.name}),
        )
    }
    fn from_json(v: &Value) -> Option<Option<types::DirectoryEntry>> {
        if v.is_null() {
            return Some(None);
        }
        Some(Some(types::DirectoryEntry {
            type_: types::DescriptorType::from_json(&v["type"])?,
            name: v["name"].as_str()?.to_string(),
        }))
    }
    fn size_hint(&self) -> usize {
        self.as_ref().map_or(8, |e| e.name.len().saturating_add(48))
    }
}

const ERROR_CODES: [types::ErrorCode; 37] = {
    use types::ErrorCode as E;
    [
        E::Access,
        E::WouldBlock,
        E::Already,
        E::BadDescriptor,
        E::Busy,
        E::Deadlock,
        E::Quota,
        E::Exist,
        E::FileTooLarge,
        E::IllegalByteSequence,
        E::InProgress,
        E::Interrupted,
        E::Invalid,
        E::Io,
        E::IsDirectory,
        E::Loop,
        E::TooManyLinks,
        E::MessageSize,
        E::NameTooLong,
        E::NoDevice,
        E::NoEntry,
        E::NoLock,
        E::InsufficientMemory,
        E::InsufficientSpace,
        E::NotDirectory,
        E::NotEmpty,
        E::NotRecoverable,
        E::Unsupported,
        E::NoTty,
        E::NoSuchDevice,
        E::Overflow,
        E::NotPermitted,
        E::Pipe,
        E::ReadOnly,
        E::InvalidSeek,
        E::TextFileBusy,
        E::CrossDevice,
    ]
};

/// A new resource (descriptor, stream): recorded as `null`; a replay makes
/// its own placeholder, so it is never read back.
impl<X: 'static> Answer for wasmtime::component::Resource<X> {
    fn to_json(&self) -> Value {
        Value::Null
    }
    fn from_json(_: &Value) -> Option<Self> {
        None
    }
}

/// A call's result as recorded.
pub(super) fn encode<T: Answer>(r: &FsResult<T>) -> Value {
    match r {
        Ok(v) => json!({"ok": v.to_json()}),
        Err(e) => match e.downcast_ref() {
            Some(code) => json!({"err": types::ErrorCode::name(code)}),
            None => json!({"trap": null}),
        },
    }
}

/// Roughly how many bytes [`encode`] takes.
pub(super) fn size_hint<T: Answer>(r: &FsResult<T>) -> usize {
    r.as_ref().map_or(48, Answer::size_hint)
}

/// [`encode`] back (`None`: malformed).
pub(super) fn decode<T: Answer>(v: &Value) -> Option<FsResult<T>> {
    if let Some(ok) = v.get("ok") {
        return T::from_json(ok).map(Ok);
    }
    if let Some(name) = v.get("err").and_then(Value::as_str) {
        let code = ERROR_CODES.iter().find(|c| c.name() == name)?;
        return Some(Err((*code).into()));
    }
    v.get("trap")
        .map(|_| Err(FsError::trap(wasmtime::format_err!("{REPLAYED_TRAP}"))))
}

/// What a replayed call that trapped when recorded traps with.
pub(super) const REPLAYED_TRAP: &str = "the recorded filesystem call trapped";

/// The trap a replayed guest gets when its call departs from the recording.
pub(super) fn diverged() -> FsError {
    FsError::trap(wasmtime::format_err!(
        "the replay diverged from the recorded filesystem calls"
    ))
}

/// The run every filesystem result joins: consecutive filesystem calls
/// (descriptor calls, listing entries, stream operations) share one
/// recorded result `{"call":"wasi:filesystem","result":{"run":[[<descriptor>,
/// <result>], …]}}`, so a loop of stats or a file read in many chunks is
/// one payload and one hash in the entry, not one per call.
pub(super) const RUN: &str = "wasi:filesystem";

/// Records `value()` as the result of the filesystem call `descriptor`
/// (record mode), within the recording's bound, checked (with `size`, the
/// encoded result's approximate size) before the result is encoded.
fn record_result(
    recording: &recording::Shared,
    descriptor: &str,
    size: usize,
    value: impl FnOnce() -> Value,
) {
    let mut rec = recording::lock(recording);
    let size = size.saturating_add(descriptor.len()).saturating_add(8);
    if rec.is_replay() || !rec.fits(size) {
        return;
    }
    rec.record_run(RUN, json!([descriptor, value()]));
}

/// Replaying: the recorded result of the filesystem call `descriptor`
/// (`Some(None)`: the guest departed from the recording, kept as the
/// divergence). Record mode: `None`.
fn replay_result(recording: &recording::Shared, descriptor: &str) -> Option<Option<Value>> {
    let mut rec = recording::lock(recording);
    match rec.replay_run(RUN)? {
        Replayed::Answer(v) if v.get(0).and_then(Value::as_str) == Some(descriptor) => {
            Some(Some(v.get(1).cloned().unwrap_or(Value::Null)))
        }
        Replayed::Answer(v) => {
            let n = rec.call_number();
            rec.diverged(format!(
                "diverged at call {n}: expected {}, got {descriptor}",
                v.get(0)
                    .and_then(Value::as_str)
                    .unwrap_or("a malformed record")
            ));
            Some(None)
        }
        Replayed::Diverged => Some(None),
    }
}

/// Answers a replayed call from `recording` (`None`: not replaying).
pub(super) fn replayed<T: Answer>(
    recording: &recording::Shared,
    call: &str,
) -> Option<FsResult<T>> {
    let v = replay_result(recording, call)?;
    Some(match v.map(|v| decode(&v)) {
        Some(Some(r)) => r,
        Some(None) => {
            recording::lock(recording).malformed(call);
            Err(diverged())
        }
        None => Err(diverged()),
    })
}

/// Records a call's result (record mode), within the recording's bound,
/// checked before the result is encoded.
pub(super) fn keep<T: Answer>(recording: &recording::Shared, call: &str, r: &FsResult<T>) {
    record_result(recording, call, size_hint(r), || encode(r));
}

/// A stream operation's result as recorded.
fn stream_result<T>(r: &StreamResult<T>, ok: impl FnOnce(&T) -> Value) -> Value {
    match r {
        Ok(v) => json!({"ok": ok(v)}),
        Err(StreamError::Closed) => json!({"closed": null}),
        Err(StreamError::LastOperationFailed(e)) => json!({"failed": format!("{e:#}")}),
        Err(StreamError::Trap(_)) => json!({"trap": null}),
    }
}

fn stream_result_of<T>(v: &Value, ok: impl FnOnce(&Value) -> Option<T>) -> Option<StreamResult<T>> {
    if let Some(v) = v.get("ok") {
        return ok(v).map(Ok);
    }
    if v.get("closed").is_some() {
        return Some(Err(StreamError::Closed));
    }
    if let Some(why) = v.get("failed").and_then(Value::as_str) {
        return Some(Err(StreamError::LastOperationFailed(
            wasmtime::format_err!("{why}"),
        )));
    }
    v.get("trap")
        .map(|_| Err(StreamError::trap("the recorded stream operation trapped")))
}

/// One stream's operations, recorded as a run (record mode) or answered
/// from it (replay mode).
#[derive(Clone)]
pub(super) struct StreamRecord {
    /// The invocation's recording.
    pub(super) recording: recording::Shared,
    /// `wasi:filesystem stream <target>`.
    pub(super) call: String,
}

impl StreamRecord {
    /// Records `op`'s result (record mode; a no-op when replaying).
    pub(super) fn keep<T>(
        &self,
        op: &str,
        r: &StreamResult<T>,
        size: usize,
        ok: impl FnOnce(&T) -> Value,
    ) {
        record_result(
            &self.recording,
            &format!("{} {op}", self.call),
            size.saturating_add(32),
            || stream_result(r, ok),
        );
    }

    /// The recorded result of the stream's next operation, which must be
    /// `op` (anything else is a divergence, and the guest's stream traps).
    pub(super) fn answer<T>(
        &self,
        op: &str,
        ok: impl FnOnce(&Value) -> Option<T>,
    ) -> StreamResult<T> {
        let diverged =
            || StreamError::trap("the replay diverged from the recorded stream operations");
        let descriptor = format!("{} {op}", self.call);
        match replay_result(&self.recording, &descriptor) {
            Some(Some(v)) => stream_result_of(&v, ok).unwrap_or_else(|| {
                recording::lock(&self.recording).malformed(&descriptor);
                Err(diverged())
            }),
            _ => Err(diverged()),
        }
    }
}

fn bytes_json(b: &Bytes) -> Value {
    json!(hex::encode(b))
}

fn bytes_of(v: &Value) -> Option<Bytes> {
    hex::decode(v.as_str()?).ok().map(Bytes::from)
}

fn usize_json(n: &usize) -> Value {
    json!(n)
}

fn usize_of(v: &Value) -> Option<usize> {
    usize::try_from(v.as_u64()?).ok()
}

fn unit_json(_: &()) -> Value {
    Value::Null
}

fn unit_of(_: &Value) -> Option<()> {
    Some(())
}

/// Records an input stream's reads and skips.
pub(super) fn keep_read(rec: &StreamRecord, op: &str, r: &StreamResult<Bytes>) {
    let size = r.as_ref().map_or(0, |b| b.len().saturating_mul(2));
    rec.keep(op, r, size, bytes_json);
}

/// Records a skip, permit or ready count.
pub(super) fn keep_count(rec: &StreamRecord, op: &str, r: &StreamResult<usize>) {
    rec.keep(op, r, 0, usize_json);
}

/// Records a write, flush or zero fill.
pub(super) fn keep_done(rec: &StreamRecord, op: &str, r: &StreamResult<()>) {
    rec.keep(op, r, 0, unit_json);
}

/// A replayed file input stream: every read and skip is answered from the
/// recording; the host's file is never touched.
pub(super) struct ReplayInput {
    pub(super) rec: StreamRecord,
}

#[async_trait::async_trait]
impl Pollable for ReplayInput {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl InputStream for ReplayInput {
    fn read(&mut self, _size: usize) -> StreamResult<Bytes> {
        self.rec.answer("read", bytes_of)
    }

    async fn blocking_read(&mut self, _size: usize) -> StreamResult<Bytes> {
        self.rec.answer("blocking-read", bytes_of)
    }

    fn skip(&mut self, _nelem: usize) -> StreamResult<usize> {
        self.rec.answer("skip", usize_of)
    }

    async fn blocking_skip(&mut self, _nelem: usize) -> StreamResult<usize> {
        self.rec.answer("blocking-skip", usize_of)
    }

    async fn cancel(&mut self) {}
}

/// A replayed file output stream: every permit, write and flush is
/// answered from the recording; nothing is written.
pub(super) struct ReplayOutput {
    pub(super) rec: StreamRecord,
}

#[async_trait::async_trait]
impl Pollable for ReplayOutput {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for ReplayOutput {
    fn write(&mut self, _bytes: Bytes) -> StreamResult<()> {
        self.rec.answer("write", unit_of)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.rec.answer("flush", unit_of)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.rec.answer("check-write", usize_of)
    }

    async fn blocking_write_and_flush(&mut self, _bytes: Bytes) -> StreamResult<()> {
        self.rec.answer("blocking-write-and-flush", unit_of)
    }

    fn write_zeroes(&mut self, _nelem: usize) -> StreamResult<()> {
        self.rec.answer("write-zeroes", unit_of)
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.rec.answer("write-ready", usize_of)
    }

    async fn cancel(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Answer>(r: FsResult<T>) {
        let v = encode(&r);
        let back: FsResult<T> = decode(&v).expect("decodes");
        assert_eq!(encode(&back), v);
    }

    #[test]
    fn every_recorded_filesystem_result_reads_back_as_it_was() {
        round_trip(Ok((b"hello".to_vec(), true)));
        round_trip(Ok(7u64));
        round_trip(Ok("link".to_string()));
        round_trip(Ok(
            types::DescriptorFlags::READ | types::DescriptorFlags::MUTATE_DIRECTORY
        ));
        for (t, _) in DESCRIPTOR_TYPES {
            round_trip(Ok(t));
        }
        round_trip(Ok(types::DescriptorStat {
            type_: types::DescriptorType::RegularFile,
            link_count: 1,
            size: 19,
            data_access_timestamp: None,
            data_modification_timestamp: Some(types::Datetime {
                seconds: 5,
                nanoseconds: 6,
            }),
            status_change_timestamp: None,
        }));
        round_trip(Ok(Some(types::DirectoryEntry {
            type_: types::DescriptorType::Directory,
            name: "sub".into(),
        })));
        round_trip::<Option<types::DirectoryEntry>>(Ok(None));
        for code in ERROR_CODES {
            round_trip::<()>(Err(code.into()));
        }
    }

    #[test]
    fn every_error_code_is_listed_once() {
        let names: std::collections::BTreeSet<&str> =
            ERROR_CODES.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), ERROR_CODES.len());
    }

    #[test]
    fn file_data_past_the_recording_bound_is_refused_before_it_is_encoded() {
        use crate::interfaces::recording::{MAX_RECORDED_BYTES, Recording};
        let rec: recording::Shared =
            std::sync::Arc::new(std::sync::Mutex::new(Recording::default()));
        // Hex doubles the data: just under a quarter of the bound fits,
        // twice over, with room for a small read.
        let under = vec![7u8; MAX_RECORDED_BYTES / 4 - 1024];
        keep(&rec, "wasi:filesystem read a", &Ok((under.clone(), false)));
        keep(&rec, "wasi:filesystem read a", &Ok((under, false)));
        keep(&rec, "wasi:filesystem read a", &Ok((vec![0u8; 64], true)));
        let (kept, why) = recording::lock(&rec).finish();
        assert_eq!((kept.len(), why), (1, None), "three reads, one run");

        let rec: recording::Shared =
            std::sync::Arc::new(std::sync::Mutex::new(Recording::default()));
        let quarter = vec![7u8; MAX_RECORDED_BYTES / 4 - 64];
        keep(
            &rec,
            "wasi:filesystem read a",
            &Ok((quarter.clone(), false)),
        );
        keep(&rec, "wasi:filesystem read a", &Ok((quarter, false)));
        // 200 more bytes pass the bound (as hex): nothing is kept.
        keep(&rec, "wasi:filesystem read a", &Ok((vec![0u8; 200], true)));
        let (kept, why) = recording::lock(&rec).finish();
        assert!(kept.is_empty());
        assert!(why.expect("not replayable").contains("exceed"));
    }

    #[test]
    fn consecutive_filesystem_results_are_one_recorded_result_and_replay_in_order() {
        use crate::interfaces::recording::{Recorded, Recording};
        let rec: recording::Shared =
            std::sync::Arc::new(std::sync::Mutex::new(Recording::default()));
        for i in 0..1000u64 {
            keep(&rec, "wasi:filesystem stat-at /in sha256:aa", &Ok(i));
        }
        let (kept, why) = recording::lock(&rec).finish();
        assert_eq!(
            (kept.len(), why),
            (1, None),
            "a loop of stats is one payload"
        );
        let feed: Vec<Recorded> = kept
            .iter()
            .map(|b| Recorded::from_bytes(b).expect("parse"))
            .collect();
        let replay: recording::Shared =
            std::sync::Arc::new(std::sync::Mutex::new(Recording::replaying(feed)));
        for i in 0..3u64 {
            let r: FsResult<u64> =
                replayed(&replay, "wasi:filesystem stat-at /in sha256:aa").expect("replaying");
            assert_eq!(r.ok(), Some(i));
        }
        let r: FsResult<u64> =
            replayed(&replay, "wasi:filesystem stat-at /in sha256:bb").expect("replaying");
        assert!(r.is_err(), "another path than recorded traps");
        assert_eq!(
            recording::lock(&replay).divergence(),
            Some(
                "diverged at call 1: expected wasi:filesystem stat-at /in sha256:aa, got wasi:filesystem stat-at /in sha256:bb"
            )
        );
    }

    #[test]
    fn a_malformed_recorded_result_is_not_read_back() {
        assert!(decode::<u64>(&json!({"ok": "seven"})).is_none());
        assert!(decode::<()>(&json!({"err": "no-such-code"})).is_none());
        assert!(decode::<()>(&json!({})).is_none());
    }
}
