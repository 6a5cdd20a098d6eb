//! The artifact store: content-addressed, write-once files in the data
//! directory (`<data-dir>/artifacts/sha256/<2 hex>/<62 hex>`) holding every
//! artifact an audit entry names by hash — component bytes (signature
//! sections stripped, so they hash to the entry's `component_digest`), the
//! effective policy in canonical JSON (`policy_hash`), the route table in
//! canonical JSON (`route.table_hash`).
//!
//! Files, not a table: components are megabytes, and writing them through
//! the audit writer's group commit would put large blobs in the WAL on the
//! request path; a content-addressed file is written once (temp file, fsync,
//! rename, fsync of the directory) outside any transaction, is never
//! rewritten, and a bundle or an operator can copy it as it is.
//!
//! Artifacts are stored when a capability or route table is *loaded*, so
//! they are durable before any entry naming them can be committed; the
//! per-request cost is nothing. Reads always verify the hash.
//!
//! This module must never overwrite or delete an artifact (retention never
//! prunes artifacts: docs/audit.md "Artifacts"), and must never return bytes
//! that do not hash to the name they were asked for.

use crate::digest::Hash256;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Directory name inside the data directory.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// Why an artifact could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// No artifact of that hash is stored.
    #[error("artifact {hash} is not in the artifact store ({path} does not exist)")]
    Missing {
        /// The hash asked for.
        hash: Hash256,
        /// Where it would be.
        path: PathBuf,
    },
    /// The stored file does not hash to its name (it was altered).
    #[error("artifact {hash} fails its hash: {path} hashes to {actual} (the file was altered)")]
    Tampered {
        /// The hash asked for.
        hash: Hash256,
        /// The file.
        path: PathBuf,
        /// What its bytes hash to.
        actual: Hash256,
    },
    /// Bytes given to [`ArtifactStore::put_as`] do not hash to the name
    /// they were to be stored under.
    #[error("refusing to store artifact {expected}: the bytes hash to {actual}")]
    WrongBytes {
        /// The name given.
        expected: Hash256,
        /// What the bytes hash to.
        actual: Hash256,
    },
    /// The file system failed.
    #[error("artifact store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A content-addressed, write-once store of artifacts under one directory.
#[derive(Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    /// Hashes known to be stored durably (written or found by this process).
    known: Mutex<HashSet<Hash256>>,
}

impl ArtifactStore {
    /// The store of a data directory (`<data_dir>/artifacts`); nothing is
    /// created until the first artifact is stored.
    pub fn in_data_dir(data_dir: &Path) -> ArtifactStore {
        ArtifactStore::at(data_dir.join(ARTIFACTS_DIR))
    }

    /// A store rooted at `root`.
    pub fn at(root: PathBuf) -> ArtifactStore {
        ArtifactStore {
            root,
            known: Mutex::new(HashSet::new()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where artifact `hash` lives.
    pub fn path_of(&self, hash: &Hash256) -> PathBuf {
        let hex = hash.hex();
        self.root.join("sha256").join(&hex[..2]).join(&hex[2..])
    }

    /// Stores `bytes` under their SHA-256 (durable when this returns) and
    /// returns the hash. Storing the same bytes again costs a set lookup.
    pub fn put(&self, bytes: &[u8]) -> Result<Hash256, ArtifactError> {
        let hash = Hash256::of(bytes);
        self.store(hash, bytes)?;
        Ok(hash)
    }

    /// Stores `bytes` under `expected`, refusing bytes that hash otherwise.
    pub fn put_as(&self, expected: Hash256, bytes: &[u8]) -> Result<(), ArtifactError> {
        if self.is_known(&expected) {
            return Ok(());
        }
        let actual = Hash256::of(bytes);
        if actual != expected {
            return Err(ArtifactError::WrongBytes { expected, actual });
        }
        self.store(expected, bytes)
    }

    fn is_known(&self, hash: &Hash256) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hash)
    }

    fn store(&self, hash: Hash256, bytes: &[u8]) -> Result<(), ArtifactError> {
        if self.is_known(&hash) {
            return Ok(());
        }
        let path = self.path_of(&hash);
        // Write-once: an existing file is never rewritten. One that does not
        // verify is left for `get` to report (evidence of tampering), and the
        // store refuses to claim it holds the artifact.
        if path.exists() {
            self.get(&hash)?;
        } else {
            write_durably(&path, bytes)?;
        }
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash);
        Ok(())
    }

    /// The artifact's bytes, verified against `hash`.
    pub fn get(&self, hash: &Hash256) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path_of(hash);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::Missing { hash: *hash, path });
            }
            Err(source) => return Err(ArtifactError::Io { path, source }),
        };
        let actual = Hash256::of(&bytes);
        if actual != *hash {
            return Err(ArtifactError::Tampered {
                hash: *hash,
                path,
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Temp file in the same directory, fsync, rename into place (never over
/// an existing file's contents: the name is the content), fsync of the
/// directory so the rename itself is durable.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArtifactError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_is_stored_under_its_hash_and_read_back_verified() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::in_data_dir(dir.path());
        let hash = store.put(b"component bytes").expect("put");
        assert_eq!(hash, Hash256::of(b"component bytes"));
        let hex = hash.hex();
        let path = dir
            .path()
            .join("artifacts/sha256")
            .join(&hex[..2])
            .join(&hex[2..]);
        assert!(path.is_file(), "{}", path.display());
        assert_eq!(store.get(&hash).expect("get"), b"component bytes");
        // A second store over the same directory (a restarted host) reads it.
        let again = ArtifactStore::in_data_dir(dir.path());
        assert_eq!(again.get(&hash).expect("get"), b"component bytes");
        assert_eq!(again.put(b"component bytes").expect("put"), hash);
    }

    #[test]
    fn a_missing_artifact_is_reported_as_missing() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::in_data_dir(dir.path());
        let err = store.get(&Hash256([7; 32])).expect_err("missing");
        assert!(matches!(err, ArtifactError::Missing { .. }), "{err}");
        assert!(
            err.to_string().contains("is not in the artifact store"),
            "{err}"
        );
    }

    #[test]
    fn an_altered_artifact_fails_its_hash_and_is_never_rewritten() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::in_data_dir(dir.path());
        let hash = store.put(b"policy").expect("put");
        std::fs::write(store.path_of(&hash), b"polic!").expect("tamper");
        let err = store.get(&hash).expect_err("tampered");
        assert!(matches!(err, ArtifactError::Tampered { .. }), "{err}");
        assert!(err.to_string().contains("the file was altered"), "{err}");
        // A fresh store (no memory of having written it) refuses to claim
        // it holds the artifact, and leaves the altered file as evidence.
        let fresh = ArtifactStore::in_data_dir(dir.path());
        assert!(fresh.put(b"policy").is_err());
        assert_eq!(
            std::fs::read(store.path_of(&hash)).expect("read"),
            b"polic!"
        );
    }

    #[test]
    fn bytes_that_do_not_hash_to_the_given_name_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::in_data_dir(dir.path());
        let err = store
            .put_as(Hash256([1; 32]), b"something else")
            .expect_err("wrong");
        assert!(matches!(err, ArtifactError::WrongBytes { .. }), "{err}");
        assert!(!store.path_of(&Hash256([1; 32])).exists());
    }
}
