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

/// Reads `<data_dir>/host.key`, or creates the pair on first start.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let private = data_dir.join(PRIVATE_FILE);
    if private.exists() {
        return keys::read_private_key(&private);
    }
    let key = keys::try_generate()?;
    keys::write_key_pair(data_dir, "host", &key)?;
    Ok(key)
}
