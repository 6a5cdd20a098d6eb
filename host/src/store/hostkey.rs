//! The host's own key: signs audit checkpoints. Verifiers need only the
//! public key (`<data-dir>/host.pub`). File formats are those of
//! [`crate::keys`].

use crate::keys::{self, KeyError, SigningKey, VerifyingKey};
use std::path::Path;

/// The private key file in the data directory (mode 0600).
pub const PRIVATE_FILE: &str = "host.key";
/// The public key file in the data directory (paste-able text form).
pub const PUBLIC_FILE: &str = "host.pub";

/// The public key's text form (`ed25519:<hex>`).
pub fn format_public_key(key: &VerifyingKey) -> String {
    keys::public_key_text(key)
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    keys::read_public_key_file(path)
}

/// Reads `<data_dir>/host.key`, or creates the pair on first start. Refuses
/// to create one when the directory already holds a chain or a host public
/// key (the key was lost or moved, not never made).
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let private = data_dir.join(PRIVATE_FILE);
    if private.exists() {
        return keys::read_private_key(&private);
    }
    if data_dir.join(super::DB_FILE).exists() || data_dir.join(PUBLIC_FILE).exists() {
        return Err(KeyError::HostKeyMissing {
            key: private,
            dir: data_dir.to_path_buf(),
        });
    }
    let key = keys::try_generate()?;
    keys::write_key_pair(data_dir, "host", &key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("warden-hostkey-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn the_key_is_created_once_and_then_read_back() {
        let dir = fresh_dir("once");
        let first = load_or_create(&dir).expect("created");
        let again = load_or_create(&dir).expect("read");
        assert_eq!(first.to_bytes(), again.to_bytes());
    }

    #[test]
    fn a_lost_key_beside_an_existing_chain_is_refused_not_replaced() {
        let dir = fresh_dir("lost");
        load_or_create(&dir).expect("created");
        std::fs::write(dir.join(crate::store::DB_FILE), b"chain").expect("chain");
        std::fs::remove_file(dir.join(PRIVATE_FILE)).expect("rm key");
        std::fs::remove_file(dir.join(PUBLIC_FILE)).expect("rm pub");
        let err = load_or_create(&dir).expect_err("refused");
        assert!(matches!(err, KeyError::HostKeyMissing { .. }), "{err}");
        assert!(err.to_string().contains("restore"), "{err}");
        assert!(!dir.join(PRIVATE_FILE).exists(), "no new key was written");
    }

    #[test]
    fn a_lost_key_beside_its_public_half_is_refused() {
        let dir = fresh_dir("pub");
        load_or_create(&dir).expect("created");
        std::fs::remove_file(dir.join(PRIVATE_FILE)).expect("rm key");
        let err = load_or_create(&dir).expect_err("refused");
        assert!(matches!(err, KeyError::HostKeyMissing { .. }), "{err}");
    }
}
