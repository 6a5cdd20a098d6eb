//! Ed25519 keys: generation, the on-disk private key file, and the text form
//! of public keys that operators paste into `trust.toml`.
//!
//! Formats (fixed; other parts of warden and operators' scripts rely on them):
//!
//! - public key text: `ed25519:<64 lowercase hex>` (the 32 public key bytes);
//! - private key file: `warden-ed25519-private-key:<64 lowercase hex>\n` (the
//!   32-byte seed), mode 0600, never overwritten;
//! - key id: the first 16 hex characters of SHA-256 over the 32 public key
//!   bytes. A key id names a key in reports; it is never used to decide trust
//!   (trust compares the full public key).

use sha2::{Digest as _, Sha256};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// Prefix of the public key text form.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// Prefix of the private key file content.
pub const PRIVATE_KEY_PREFIX: &str = "warden-ed25519-private-key:";

/// Why a key could not be generated, read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the operating system random number generator failed: {0}")]
    Rng(String),
    /// A public key text is not `ed25519:<64 lowercase hex>`.
    #[error(
        "{input:?} is not a public key: expected `ed25519:` followed by 64 lowercase hex characters \
         (as written by `warden key generate` into <name>.pub)"
    )]
    PublicKeySyntax {
        /// The text as given (truncated to 80 characters).
        input: String,
    },
    /// The bytes are well formed but not a usable Ed25519 public key.
    #[error(
        "{input:?} is not a usable Ed25519 public key ({reason}); regenerate the key pair with `warden key generate`"
    )]
    PublicKeyInvalid {
        /// The text as given (truncated to 80 characters).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key file does not have the expected content.
    #[error(
        "{path}: not a warden private key file: expected one line `warden-ed25519-private-key:<64 lowercase hex>` \
         (as written by `warden key generate`)"
    )]
    PrivateKeySyntax {
        /// The file.
        path: PathBuf,
    },
    /// A private key file can be read by other users.
    #[error(
        "{path}: private key file is readable by group or others (mode {mode:o}); run `chmod 600 {path}` \
         and consider the key compromised if others could read it"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key name would not make a safe file name.
    #[error(
        "{name:?} is not a valid key name: use 1-64 characters from A-Z a-z 0-9 . _ - and do not start with `.`"
    )]
    BadName {
        /// The name as given.
        name: String,
    },
    /// Refusing to overwrite an existing key file.
    #[error(
        "{path} already exists; refusing to overwrite a key file (choose another --name or --out)"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The host key is gone from a data directory that already holds an
    /// audit chain (or the host's public key): a new key would make every
    /// existing checkpoint fail verification, so none is created.
    #[error(
        "{key} is missing, but {dir} already holds an audit chain or a host public key made with it; \
         restore {key} from a backup (or set `host_key` to where it is). A new key would make every \
         existing checkpoint unverifiable; to start a new chain on purpose, move warden.db and host.pub \
         out of {dir} first"
    )]
    HostKeyMissing {
        /// The missing private key file.
        key: PathBuf,
        /// The data directory.
        dir: PathBuf,
    },
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A new key pair from the operating system's random number generator.
///
/// # Panics
///
/// If the operating system cannot supply random bytes (see [`try_generate`]
/// for the fallible form).
pub fn generate() -> SigningKey {
    match try_generate() {
        Ok(key) => key,
        Err(err) => panic!("{err}"),
    }
}

/// A new key pair from the operating system's random number generator.
pub fn try_generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|err| KeyError::Rng(err.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text form of a public key: `ed25519:<64 lowercase hex>`.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", hex::encode(key.as_bytes()))
}

/// The key id: the first 16 hex characters of SHA-256 over the public key bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    let hash = Sha256::digest(key.as_bytes());
    hex::encode(&hash[..8])
}

fn shorten(input: &str) -> String {
    input.chars().take(80).collect()
}

/// Parses the public key text form (surrounding whitespace is ignored).
///
/// Refuses keys that are not valid curve points and weak (small-order) keys,
/// for which forged signatures are easy.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let trimmed = text.trim();
    let syntax = || KeyError::PublicKeySyntax {
        input: shorten(trimmed),
    };
    let hex_part = trimmed.strip_prefix(PUBLIC_KEY_PREFIX).ok_or_else(syntax)?;
    let bytes = decode_lower_hex_32(hex_part).ok_or_else(syntax)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|err| KeyError::PublicKeyInvalid {
        input: shorten(trimmed),
        reason: err.to_string(),
    })?;
    if key.is_weak() {
        return Err(KeyError::PublicKeyInvalid {
            input: shorten(trimmed),
            reason: "weak (small-order) key".to_owned(),
        });
    }
    Ok(key)
}

fn decode_lower_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a public key file (`<name>.pub`: the text form plus a newline).
pub fn read_public_key_file(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    parse_public_key(&text)
}

/// Reads a private key file written by [`write_key_pair`].
///
/// Refuses files that group or others may read: a signing key others can
/// read is a signing key others can use.
pub fn read_private_key(path: &Path) -> Result<SigningKey, KeyError> {
    let metadata = fs::metadata(path).map_err(io_error(path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let syntax = || KeyError::PrivateKeySyntax {
        path: path.to_owned(),
    };
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let hex_part = line.strip_prefix(PRIVATE_KEY_PREFIX).ok_or_else(syntax)?;
    let seed = decode_lower_hex_32(hex_part).ok_or_else(syntax)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Checks that `name` is safe to use as a file name stem.
pub fn validate_key_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName {
            name: name.to_owned(),
        })
    }
}

/// Writes `dir/<name>.key` (mode 0600) and `dir/<name>.pub`; returns their
/// paths (private, public). Creates `dir` if needed; never overwrites.
pub fn write_key_pair(
    dir: &Path,
    name: &str,
    key: &SigningKey,
) -> Result<(PathBuf, PathBuf), KeyError> {
    validate_key_name(name)?;
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let private_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    for path in [&private_path, &public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let private_text = format!("{PRIVATE_KEY_PREFIX}{}\n", hex::encode(key.to_bytes()));
    write_new(&private_path, private_text.as_bytes(), 0o600)?;
    let public_text = format!("{}\n", public_key_text(&key.verifying_key()));
    write_new(&public_path, public_text.as_bytes(), 0o644)?;
    Ok((private_path, public_path))
}

fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                KeyError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    file.write_all(content).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn public_key_text_round_trips() {
        let key = generate().verifying_key();
        let text = public_key_text(&key);
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.len(), 8 + 64);
        assert_eq!(parse_public_key(&format!(" {text}\n")).unwrap(), key);
    }

    #[test]
    fn key_id_is_sixteen_hex_chars_of_the_public_key_hash() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let expected = hex::encode(Sha256::digest(key.as_bytes()));
        assert_eq!(key_id(&key), expected[..16]);
    }

    #[test]
    fn malformed_public_keys_are_refused() {
        let good = public_key_text(&generate().verifying_key());
        for bad in [
            "",
            "ed25519:",
            "ed25519:abcd",
            &good.to_uppercase(),
            &good.replace("ed25519:", "ed448:"),
            &format!("{good}00"),
        ] {
            assert!(parse_public_key(bad).is_err(), "{bad:?} was accepted");
        }
        // The identity point is a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = format!("ed25519:{}", hex::encode(identity));
        assert!(matches!(
            parse_public_key(&weak),
            Err(KeyError::PublicKeyInvalid { .. })
        ));
    }

    #[test]
    fn key_pair_files_round_trip_and_private_key_is_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate();
        let (private, public) = write_key_pair(dir.path(), "dev", &key).unwrap();
        assert_eq!(private, dir.path().join("dev.key"));
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            read_private_key(&private).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(read_public_key_file(&public).unwrap(), key.verifying_key());
        let content = fs::read_to_string(&private).unwrap();
        assert!(content.starts_with(PRIVATE_KEY_PREFIX) && content.ends_with('\n'));
    }

    #[test]
    fn existing_key_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        write_key_pair(dir.path(), "dev", &generate()).unwrap();
        let err = write_key_pair(dir.path(), "dev", &generate()).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
    }

    #[test]
    fn group_readable_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = write_key_pair(dir.path(), "dev", &generate()).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_private_key(&private).unwrap_err();
        assert!(matches!(err, KeyError::TooOpen { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn key_names_that_escape_the_directory_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(validate_key_name(bad).is_err(), "{bad:?} was accepted");
        }
        validate_key_name("payments-team_2.v1").unwrap();
    }
}
