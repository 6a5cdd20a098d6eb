//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! # Threat
//!
//! A cache file holds *native machine code*. Loading one with
//! [`Component::deserialize`] maps that code executable and trusts it
//! completely: wasmtime does not (and cannot) check that it was compiled from
//! the component whose signature we verified, or that it is well formed. So
//! anyone who can write a file into the cache directory could otherwise run
//! arbitrary native code inside the host, bypassing signatures, policy and
//! the sandbox. Even a file that really came from this host must not be
//! reused for a different component (that would run the wrong capability).
//!
//! # Defence
//!
//! - Every cache file ends with an HMAC-SHA256 over everything before it,
//!   keyed with a 32-byte secret (`cache.key`, mode 0600) that this host
//!   creates on first use and never writes anywhere else. Only a process that
//!   can read that secret can produce a file we accept.
//! - The header names the component digest and the engine compatibility
//!   hash; both must equal what is requested. A file copied to another
//!   name, or produced by a different engine configuration, is discarded.
//! - All of that is checked *before* `Component::deserialize`. Any mismatch,
//!   truncation or deserialize error deletes the file and recompiles from the
//!   (already verified) component bytes; a cache file is never a reason to
//!   refuse or to trust anything.
//! - The directory must not be writable by group or others and must belong
//!   to the user running the host; the key must be a regular 0600 file. An
//!   attacker running as the host's own user is out of scope (they could read
//!   the key, or simply ptrace the host).
//! - Files are written to a temporary name and renamed into place, so a
//!   crash never leaves a half-written file under a real name.
//!
//! File layout (all integers little endian):
//!
//! | offset | len | field                                          |
//! |--------|-----|------------------------------------------------|
//! | 0      | 8   | magic `WRDNCWSM`                                |
//! | 8      | 4   | format version, `1`                            |
//! | 12     | 32  | component digest (SHA-256, signatures stripped) |
//! | 44     | 32  | engine hash (SHA-256 of wasmtime's compatibility hash) |
//! | 76     | 8   | artifact length `n`                            |
//! | 84     | n   | `Component::serialize` output                  |
//! | 84+n   | 32  | HMAC-SHA256(cache.key, bytes 0..84+n)           |

use crate::digest::Hash256 as Digest;
use crate::signing;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::hash::{Hash as _, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 8] = b"WRDNCWSM";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 32 + 32 + 8;
const MAC_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;

/// Why the cache could not be opened or a component could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The cache directory could be written by someone else.
    #[error(
        "{path}: compiled-component cache directory {problem}; anyone who can write it could plant native \
         code, so fix it (`chmod 700 {path}`, owned by the host's user) or choose another cache directory"
    )]
    InsecureDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The cache secret is not a private 32-byte regular file.
    #[error(
        "{path}: cache key {problem}; delete it (a new key is created and existing cache files are \
         recompiled)"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The digest passed in is not `sha256:<hex>` or does not match the bytes.
    #[error(
        "cache asked for {given:?} but the component bytes are {actual} (a host bug: pass the verified digest)"
    )]
    DigestMismatch {
        /// The digest passed in.
        given: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// The component bytes could not be read.
    #[error("cannot cache component: {0}")]
    Component(#[from] signing::SigningError),
    /// wasmtime refused to compile the component.
    #[error("component {digest} does not compile: {message}")]
    Compile {
        /// The component's digest.
        digest: String,
        /// wasmtime's error, with causes.
        message: String,
    },
}

/// Why a cache file was discarded (and the component recompiled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscardReason {
    /// Shorter than a header plus MAC, or the length field disagrees.
    Truncated,
    /// The HMAC does not match: corrupted, or not produced by this host.
    BadMac,
    /// Valid MAC but wrong magic or format version.
    UnknownFormat,
    /// Produced by this host for a different component.
    WrongDigest,
    /// Produced by this host with a different engine configuration.
    WrongEngine,
    /// wasmtime refused the artifact.
    Deserialize(String),
    /// The file could not be read.
    Unreadable(String),
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated"),
            Self::BadMac => {
                f.write_str("integrity check failed (corrupted or not written by this host)")
            }
            Self::UnknownFormat => f.write_str("unknown cache format"),
            Self::WrongDigest => f.write_str("compiled from a different component"),
            Self::WrongEngine => f.write_str("compiled by a different engine configuration"),
            Self::Deserialize(err) => write!(f, "wasmtime refused it: {err}"),
            Self::Unreadable(err) => write!(f, "unreadable: {err}"),
        }
    }
}

/// What [`CompiledCache::load_or_compile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a valid cache file; nothing compiled.
    Hit,
    /// No cache file; compiled and stored.
    Miss,
    /// A cache file existed but was rejected and deleted; compiled and stored.
    Discarded(DiscardReason),
}

/// The compiled-component cache (see the module docs for the threat model).
#[derive(Debug)]
pub struct CompiledCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
    compiles: AtomicU64,
    hits: AtomicU64,
    discards: AtomicU64,
}

impl CompiledCache {
    /// Opens (creating if needed, mode 0700) the cache directory and its
    /// secret key.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
        check_dir(dir)?;
        let key = read_or_create_key(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            key,
            compiles: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            discards: AtomicU64::new(0),
        })
    }

    /// Components compiled by this instance.
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Components loaded from cache files by this instance.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Cache files rejected by this instance.
    pub fn discards(&self) -> u64 {
        self.discards.load(Ordering::Relaxed)
    }

    /// The cache file that would hold `digest` compiled by `engine`.
    pub fn path_for(&self, engine: &Engine, digest: &str) -> Option<PathBuf> {
        let digest = Digest::parse(digest)?;
        Some(self.file_path(&digest, &engine_hash(engine)))
    }

    fn file_path(&self, digest: &Digest, engine_hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(digest.as_bytes()),
            hex::encode(&engine_hash[..8])
        ))
    }

    /// The compiled component for `component_bytes` (whose verified digest is
    /// `digest`), from a valid cache file or by compiling and caching it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        component_bytes: &[u8],
    ) -> Result<(Component, CacheOutcome), CacheError> {
        let actual = signing::digest(component_bytes)?;
        if Digest::parse(digest) != Some(actual) {
            return Err(CacheError::DigestMismatch {
                given: digest.to_owned(),
                actual: actual.to_string(),
            });
        }
        let engine_hash = engine_hash(engine);
        let path = self.file_path(&actual, &engine_hash);
        let outcome = match fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => CacheOutcome::Miss,
            Err(err) => CacheOutcome::Discarded(DiscardReason::Unreadable(err.to_string())),
            Ok(data) => match self.check(&data, &actual, &engine_hash) {
                Ok(artifact) => {
                    // SAFETY: `Component::deserialize` trusts its input to be
                    // native code produced by a compatible wasmtime. `check`
                    // has verified an HMAC keyed with this host's secret over
                    // the whole file, so these bytes were written by this
                    // host's `store` from `Component::serialize` output, for
                    // this exact component digest and engine configuration.
                    // Nobody without the secret can produce such a file.
                    #[allow(unsafe_code)]
                    let loaded = unsafe { Component::deserialize(engine, artifact) };
                    match loaded {
                        Ok(component) => {
                            self.hits.fetch_add(1, Ordering::Relaxed);
                            return Ok((component, CacheOutcome::Hit));
                        }
                        Err(err) => {
                            CacheOutcome::Discarded(DiscardReason::Deserialize(format!("{err:#}")))
                        }
                    }
                }
                Err(reason) => CacheOutcome::Discarded(reason),
            },
        };
        if let CacheOutcome::Discarded(reason) = &outcome {
            self.discards.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %path.display(), %reason, "discarding compiled-component cache file; recompiling");
            if let Err(err) = fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %err, "cannot delete rejected cache file");
            }
        }
        let component = self.compile(engine, &actual, component_bytes)?;
        if let Err(err) = self.store(&path, &actual, &engine_hash, &component) {
            tracing::warn!(%err, "cannot write compiled-component cache file; next start recompiles");
        }
        Ok((component, outcome))
    }

    fn compile(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<Component, CacheError> {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        Component::new(engine, bytes).map_err(|err| CacheError::Compile {
            digest: digest.to_string(),
            message: format!("{err:#}"),
        })
    }

    /// Checks a cache file; returns the artifact bytes if it may be deserialized.
    fn check<'a>(
        &self,
        data: &'a [u8],
        digest: &Digest,
        engine_hash: &[u8; 32],
    ) -> Result<&'a [u8], DiscardReason> {
        if data.len() < HEADER_LEN + MAC_LEN {
            return Err(DiscardReason::Truncated);
        }
        let (body, tag) = data.split_at(data.len() - MAC_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| DiscardReason::BadMac)?;
        // From here on the bytes were written by this host.
        if &body[..8] != MAGIC || body[8..12] != FORMAT_VERSION.to_le_bytes() {
            return Err(DiscardReason::UnknownFormat);
        }
        if body[12..44] != digest.as_bytes()[..] {
            return Err(DiscardReason::WrongDigest);
        }
        if body[44..76] != engine_hash[..] {
            return Err(DiscardReason::WrongEngine);
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&body[76..84]);
        let artifact = &body[HEADER_LEN..];
        if u64::from_le_bytes(len) != artifact.len() as u64 {
            return Err(DiscardReason::Truncated);
        }
        Ok(artifact)
    }

    fn mac(&self) -> HmacSha256 {
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length.
            Err(_) => unreachable!("HMAC-SHA256 accepts a 32-byte key"),
        }
    }

    fn store(
        &self,
        path: &Path,
        digest: &Digest,
        engine_hash: &[u8; 32],
        component: &Component,
    ) -> Result<(), CacheError> {
        let artifact = component.serialize().map_err(|err| CacheError::Compile {
            digest: digest.to_string(),
            message: format!("cannot serialize: {err:#}"),
        })?;
        let mut data = Vec::with_capacity(HEADER_LEN + artifact.len() + MAC_LEN);
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        data.extend_from_slice(digest.as_bytes());
        data.extend_from_slice(engine_hash);
        data.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
        data.extend_from_slice(&artifact);
        let mut mac = self.mac();
        mac.update(&data);
        data.extend_from_slice(&mac.finalize().into_bytes());
        write_atomically(path, &data)
    }
}

/// SHA-256 of wasmtime's engine compatibility hash (which covers the target,
/// compiler flags, tunables, features and the wasmtime version). Feeding the
/// `Hash` impl into SHA-256 rather than `DefaultHasher` keeps the value stable
/// across Rust releases.
pub fn engine_hash(engine: &Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let hash = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        u64::from_le_bytes(first)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The effective uid of this process (the owner of `/proc/self`), if known.
fn own_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn check_dir(dir: &Path) -> Result<(), CacheError> {
    let metadata = fs::metadata(dir).map_err(io_error(dir))?;
    let insecure = |problem: String| CacheError::InsecureDir {
        path: dir.to_owned(),
        problem,
    };
    if !metadata.is_dir() {
        return Err(insecure("is not a directory".into()));
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "is writable by group or others (mode {mode:o})"
        )));
    }
    if let Some(uid) = own_uid()
        && metadata.uid() != uid
    {
        return Err(insecure(format!(
            "belongs to uid {}, not to the host's uid {uid}",
            metadata.uid()
        )));
    }
    Ok(())
}

fn read_or_create_key(dir: &Path) -> Result<[u8; KEY_LEN], CacheError> {
    let path = dir.join(KEY_FILE);
    match fs::symlink_metadata(&path) {
        Ok(_) => read_key(&path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; KEY_LEN];
            getrandom::fill(&mut key).map_err(|err| CacheError::BadKey {
                path: path.clone(),
                problem: format!("cannot be generated: {err}"),
            })?;
            // Write under a temporary name, then hard-link into place: the
            // link fails if another process created the key meanwhile, and
            // then both use that one.
            let temp = temp_path(dir);
            write_new(&temp, &key)?;
            let linked = fs::hard_link(&temp, &path);
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => Ok(key),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
                Err(err) => Err(io_error(&path)(err)),
            }
        }
        Err(err) => Err(io_error(&path)(err)),
    }
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], CacheError> {
    let bad = |problem: String| CacheError::BadKey {
        path: path.to_owned(),
        problem,
    };
    let metadata = fs::symlink_metadata(path).map_err(io_error(path))?;
    if !metadata.file_type().is_file() {
        return Err(bad("is not a regular file".into()));
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "is readable or writable by group or others (mode {mode:o})"
        )));
    }
    if let Some(uid) = own_uid()
        && metadata.uid() != uid
    {
        return Err(bad(format!("belongs to uid {}", metadata.uid())));
    }
    let data = fs::read(path).map_err(io_error(path))?;
    data.try_into()
        .map_err(|data: Vec<u8>| bad(format!("is {} bytes, expected {KEY_LEN}", data.len())))
}

fn temp_path(dir: &Path) -> PathBuf {
    let mut nonce = [0u8; 8];
    // A predictable name is only a collision risk (create_new refuses to
    // reuse it), never a security one.
    let _ = getrandom::fill(&mut nonce);
    dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        hex::encode(nonce)
    ))
}

fn write_new(path: &Path, data: &[u8]) -> Result<(), CacheError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(data).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = temp_path(dir);
    let result =
        write_new(&temp, data).and_then(|()| fs::rename(&temp, path).map_err(io_error(path)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests;
