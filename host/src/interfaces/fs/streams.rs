//! `wasi:io` streams opened on files, wrapped so the bytes the guest reads
//! or writes are counted and hashed into the summary of the call that
//! opened them, writes are charged to their preopen's budget first, and
//! (recording) every operation's result is recorded as the stream's run.
//! Replaying, the wrapped stream is a `recorded::ReplayInput`/`ReplayOutput`
//! and nothing is recorded.
//!
//! It must never write a byte the budget refused.

use super::ledger::{FsLog, lock};
use super::recorded::{StreamRecord, keep_count, keep_done, keep_read};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, StreamError, StreamResult,
};

/// A file input stream whose bytes are counted into a summary. Bytes
/// skipped (`skip`) never reach the guest and are not counted.
pub(super) struct CountedInput {
    pub(super) inner: DynInputStream,
    pub(super) log: Arc<Mutex<FsLog>>,
    pub(super) tally: usize,
    /// Where results are recorded (`None`: replaying).
    pub(super) rec: Option<StreamRecord>,
}

impl CountedInput {
    fn count(&self, op: &str, r: &StreamResult<Bytes>) {
        if let Some(rec) = &self.rec {
            keep_read(rec, op, r);
        }
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
        self.count("read", &r);
        r
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        let r = self.inner.blocking_read(size).await;
        self.count("blocking-read", &r);
        r
    }

    fn skip(&mut self, nelem: usize) -> StreamResult<usize> {
        let r = self.inner.skip(nelem);
        self.keep_count("skip", &r);
        r
    }

    async fn blocking_skip(&mut self, nelem: usize) -> StreamResult<usize> {
        let r = self.inner.blocking_skip(nelem).await;
        self.keep_count("blocking-skip", &r);
        r
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// A file output stream whose accepted bytes are counted into a summary
/// and charged to its preopen's write budget before they are written.
/// Bytes a failing write may have partly written are not counted.
pub(super) struct CountedOutput {
    pub(super) inner: DynOutputStream,
    pub(super) log: Arc<Mutex<FsLog>>,
    pub(super) tally: usize,
    pub(super) preopen: Arc<str>,
    /// Where results are recorded (`None`: replaying).
    pub(super) rec: Option<StreamRecord>,
}

impl CountedInput {
    fn keep_count(&self, op: &str, r: &StreamResult<usize>) {
        if let Some(rec) = &self.rec {
            keep_count(rec, op, r);
        }
    }
}

impl CountedOutput {
    fn keep_count(&self, op: &str, r: &StreamResult<usize>) {
        if let Some(rec) = &self.rec {
            keep_count(rec, op, r);
        }
    }

    fn keep_done(&self, op: &str, r: &StreamResult<()>) {
        if let Some(rec) = &self.rec {
            keep_done(rec, op, r);
        }
    }

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
        self.keep_done("write", &r);
        self.count(&r, &data);
        r
    }

    fn flush(&mut self) -> StreamResult<()> {
        let r = self.inner.flush();
        self.keep_done("flush", &r);
        r
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let r = self.inner.check_write();
        self.keep_count("check-write", &r);
        r
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        let data = bytes.clone();
        let r = self.inner.blocking_write_and_flush(bytes).await;
        self.keep_done("blocking-write-and-flush", &r);
        self.count(&r, &data);
        r
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.charge(nelem)?;
        let r = self.inner.write_zeroes(nelem);
        self.keep_done("write-zeroes", &r);
        if r.is_ok() {
            lock(&self.log).sent_zeroes(self.tally, nelem);
        }
        r
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        let r = self.inner.write_ready().await;
        self.keep_count("write-ready", &r);
        r
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}
