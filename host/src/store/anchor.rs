//! The anchor file `<db>.anchor` (`warden.db.anchor`): the newest checkpoint
//! this host signed, kept outside the database so that deleting checkpoint
//! rows and re-chaining the entries is detected at the next open
//! (docs/audit.md "Trusted checkpoint").
//!
//! Written only by the audit writer (which holds `<db>.lock`), after the
//! checkpoint's transaction committed, atomically: temp file, fsync, rename,
//! fsync of the directory. So the anchor is never ahead of the database; a
//! crash can leave it one checkpoint behind, which is harmless.

use super::StoreError;
use crate::audit::Checkpoint;
use crate::audit::anchor::{MAX_CHECKPOINT_LINE, anchor_text, checkpoints_in_line, parse_anchor};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Anchor files are one short line; anything longer is not one.
const MAX_ANCHOR_BYTES: u64 = 4096;

/// `<db>.anchor`: the trusted checkpoint of the database at `db`.
pub fn anchor_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".anchor");
    PathBuf::from(name)
}

/// Reads the anchor at `path`; `Ok(None)` when there is none. The signature
/// is not checked here.
pub(crate) fn read_anchor(path: &Path) -> Result<Option<Checkpoint>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_ANCHOR_BYTES + 1),
        &mut text,
    )
    .map_err(|e| StoreError::BadAnchor {
        anchor: path.to_owned(),
        reason: format!("cannot read it as text: {e}"),
    })?;
    if text.len() as u64 > MAX_ANCHOR_BYTES {
        return Err(StoreError::BadAnchor {
            anchor: path.to_owned(),
            reason: format!("longer than {MAX_ANCHOR_BYTES} bytes"),
        });
    }
    parse_anchor(&text)
        .map(Some)
        .map_err(|e| StoreError::BadAnchor {
            anchor: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Replaces the anchor at `path` with `cp`: write `<path>.tmp`, fsync,
/// rename over `path`, fsync the directory.
pub(crate) fn write_anchor(path: &Path, cp: &Checkpoint) -> Result<(), StoreError> {
    replace_durably(path, anchor_text(cp).as_bytes())
}

/// Replaces the file at `path` with `bytes` so that a crash leaves either
/// the old file or the new one: write `<path>.tmp`, fsync, rename over
/// `path`, fsync the directory. (The anchor and the witness state file.)
pub(crate) fn replace_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Io { path: p, source }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Every checkpoint in a file in any form warden writes: an anchor file, one
/// checkpoint object, a `GET /v1/audit/checkpoints` answer (also
/// pretty-printed), or an export (its checkpoint lines). Reads the file
/// once, holding at most [`MAX_CHECKPOINT_LINE`] bytes at a time.
pub fn checkpoints_in_file(path: &Path) -> Result<Vec<Checkpoint>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let small = file
        .metadata()
        .map_err(io)?
        .len()
        .checked_sub(1)
        .is_none_or(|n| n < MAX_CHECKPOINT_LINE as u64);
    let mut r = std::io::BufReader::new(file);
    if small {
        let mut text = Vec::new();
        r.read_to_end(&mut text).map_err(io)?;
        let text = String::from_utf8_lossy(&text);
        let whole = checkpoints_in_line(&text);
        if !whole.is_empty() {
            return Ok(whole);
        }
        return Ok(text.lines().flat_map(checkpoints_in_line).collect());
    }
    let mut found = Vec::new();
    let mut buf = Vec::new();
    // One line, holding at most MAX_CHECKPOINT_LINE + 1 bytes of it.
    let mut next_line = |buf: &mut Vec<u8>| {
        buf.clear();
        (&mut r)
            .take(MAX_CHECKPOINT_LINE as u64 + 1)
            .read_until(b'\n', buf)
            .map_err(io)
    };
    while next_line(&mut buf)? > 0 {
        if buf.len() > MAX_CHECKPOINT_LINE && !buf.ends_with(b"\n") {
            // Too long to be a checkpoint line: skip to its end.
            while next_line(&mut buf)? > 0 && !buf.ends_with(b"\n") {}
            continue;
        }
        found.extend(checkpoints_in_line(&String::from_utf8_lossy(&buf)));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Hash256;
    use ed25519_dalek::SigningKey;

    #[test]
    fn an_anchor_is_replaced_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("warden-anchor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = anchor_path(&dir.join("warden.db"));
        assert!(path.ends_with("warden.db.anchor"));
        let _ = std::fs::remove_file(&path);
        assert!(read_anchor(&path).expect("read").is_none());
        let key = SigningKey::from_bytes(&[2; 32]);
        for size in [1, 2] {
            let cp = Checkpoint::sign(size, Hash256([3; 32]), 4, &key);
            write_anchor(&path, &cp).expect("write");
            assert_eq!(read_anchor(&path).expect("read"), Some(cp));
        }
        std::fs::write(&path, "x".repeat(5000)).expect("write");
        assert!(matches!(
            read_anchor(&path),
            Err(StoreError::BadAnchor { .. })
        ));
    }
}
