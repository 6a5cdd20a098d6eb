//! Host key files (stop-gap until merged with the crate's key module).
//!
//! Formats are fixed: public key text `ed25519:<64 lowercase hex>`; private
//! key file `warden-ed25519-private-key:<64 hex seed>\n`, mode 0600. The
//! audit log signs checkpoints with this key; verifiers need only the public
//! key.

use ed25519_dalek::{SigningKey, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prefix of public key text.
pub const PUBLIC_PREFIX: &str = "ed25519:";
/// Prefix of the private key file.
pub const PRIVATE_PREFIX: &str = "warden-ed25519-private-key:";
/// File name of the host's private key inside the data directory.
pub const PRIVATE_FILE: &str = "host.key";
/// File name of the host's public key inside the data directory.
pub const PUBLIC_FILE: &str = "host.pub";

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// Reading or writing failed.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Text is not in the fixed format.
    #[error("{what} is not `{expected}`: {found:?}")]
    BadFormat {
        /// Which key.
        what: &'static str,
        /// The expected shape.
        expected: &'static str,
        /// The start of what was found (private keys are never echoed).
        found: String,
    },
}

fn hex32(hex_text: &str) -> Option<[u8; 32]> {
    if hex_text.len() != 64 || hex_text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// `ed25519:<64 lowercase hex>`.
pub fn format_public_key(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(key.as_bytes()))
}

/// Parses [`format_public_key`]'s form (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, HostKeyError> {
    let t = text.trim();
    let bad = || HostKeyError::BadFormat {
        what: "public key",
        expected: "ed25519:<64 lowercase hex>",
        found: t.chars().take(80).collect(),
    };
    let bytes = t
        .strip_prefix(PUBLIC_PREFIX)
        .and_then(hex32)
        .ok_or_else(bad)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// The private key file's content, newline included.
pub fn format_private_key(key: &SigningKey) -> String {
    format!("{PRIVATE_PREFIX}{}\n", hex::encode(key.to_bytes()))
}

/// Parses [`format_private_key`]'s form.
pub fn parse_private_key(text: &str) -> Result<SigningKey, HostKeyError> {
    let seed = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .strip_prefix(PRIVATE_PREFIX)
        .and_then(hex32)
        .ok_or_else(|| HostKeyError::BadFormat {
            what: "private key file",
            expected: "warden-ed25519-private-key:<64 hex seed>",
            found: text.chars().take(PRIVATE_PREFIX.len()).collect(),
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read(path: &Path) -> Result<String, HostKeyError> {
    std::fs::read_to_string(path).map_err(|source| HostKeyError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a public key text file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, HostKeyError> {
    parse_public_key(&read(path)?)
}

/// Loads `<data_dir>/host.key`, or creates it (mode 0600) with a fresh key and
/// writes `<data_dir>/host.pub` beside it.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, HostKeyError> {
    let private = data_dir.join(PRIVATE_FILE);
    if private.exists() {
        return parse_private_key(&read(&private)?);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| HostKeyError::Io { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&private).map_err(io(&private))?;
    f.write_all(format_private_key(&key).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&private))?;
    let public = data_dir.join(PUBLIC_FILE);
    std::fs::write(
        &public,
        format!("{}\n", format_public_key(&key.verifying_key())),
    )
    .map_err(io(&public))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_texts_round_trip() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let p = parse_private_key(&format_private_key(&k)).expect("private parses");
        assert_eq!(p.to_bytes(), k.to_bytes());
        let v = parse_public_key(&format_public_key(&k.verifying_key())).expect("public parses");
        assert_eq!(v, k.verifying_key());
        assert!(parse_public_key("ed25519:ABCD").is_err());
    }

    #[test]
    fn a_created_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = load_or_create(dir.path()).expect("created");
        let again = load_or_create(dir.path()).expect("loaded");
        assert_eq!(k.to_bytes(), again.to_bytes());
        let pubkey = read_public_key(&dir.path().join(PUBLIC_FILE)).expect("pub");
        assert_eq!(pubkey, k.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PRIVATE_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
