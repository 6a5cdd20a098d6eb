//! `wasi:io` streams opened on files, wrapped so the bytes the guest reads
//! or writes are counted and hashed into the summary of the call that
//! opened them, and writes are charged to their preopen's budget first.
//!
//! It must never write a byte the budget refused.

use super::ledger::{FsLog, lock};
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
pub(super) struct CountedOutput {
    pub(super) inner: DynOutputStream,
    pub(super) log: Arc<Mutex<FsLog>>,
    pub(super) tally: usize,
    pub(super) preopen: Arc<str>,
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
