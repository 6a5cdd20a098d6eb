//! C2SP `tlog-tiles` resource paths (docs/audit.md "Tiles"): which tile or
//! entry bundle a request names, parsed strictly.
//!
//! `tile/<L>/<N>[.p/<W>]` is the tile at level `L` (hashes of tree level
//! `8·L`), index `N`, full (256 hashes) or partial (`W` of 1..=255);
//! `tile/entries/<N>[.p/<W>]` the entry bundle over the same leaves as
//! level-0 tile `N`. `N` is written in 3-digit groups, every group but the
//! last prefixed with `x` (`1234067` is `x001/x234/067`).
//!
//! This module must never do I/O, and must never accept two spellings of
//! one resource (leading zeros, empty groups, a `.p/256`).

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// Why a tile path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path:?} is not a tlog-tiles path ({why}); use tile/<L>/<N>[.p/<W>] or \
     tile/entries/<N>[.p/<W>], N in 3-digit groups like x001/x234/067"
)]
pub struct TilePathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Merkle tree hashes of tree level `8 · level`.
    Hashes {
        /// The tile level (0..=7: a level above 7 spans more than 2^64 leaves).
        level: u8,
    },
    /// The entries (records) under level-0 tile `index`.
    Entries,
}

/// A parsed tile path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    /// Hashes or entries.
    pub kind: TileKind,
    /// The tile index `N`.
    pub index: u64,
    /// Hashes (or entries) in it: 256 for a full tile, 1..=255 for a partial one.
    pub width: u64,
}

impl TilePath {
    /// Parses the part of the path after `tile/`.
    pub fn parse(path: &str) -> Result<TilePath, TilePathError> {
        let bad = |why| TilePathError {
            path: path.to_owned(),
            why,
        };
        let mut parts: Vec<&str> = path.split('/').collect();
        let width = match parts.iter().rposition(|p| p.ends_with(".p")) {
            Some(at) if at + 2 == parts.len() => {
                let w = parts.pop().unwrap_or_default();
                let n: u64 = decimal(w).ok_or_else(|| bad("the width is not a decimal"))?;
                if !(1..TILE_WIDTH).contains(&n) {
                    return Err(bad("a partial tile's width is 1..=255"));
                }
                let last = parts.pop().unwrap_or_default();
                parts.push(last.strip_suffix(".p").unwrap_or(last));
                n
            }
            Some(_) => return Err(bad("`.p` must be followed by exactly the width")),
            None => TILE_WIDTH,
        };
        let (first, groups) = parts.split_first().ok_or_else(|| bad("empty"))?;
        let kind = if *first == "entries" {
            TileKind::Entries
        } else {
            let level = decimal(first).ok_or_else(|| bad("the level is not a decimal"))?;
            if level > 63 {
                return Err(bad("the level is 0..=63"));
            }
            if level > 7 {
                return Err(bad("levels above 7 cover more leaves than a log can hold"));
            }
            TileKind::Hashes { level: level as u8 }
        };
        let Some((last, xs)) = groups.split_last() else {
            return Err(bad("no index"));
        };
        let mut index: u64 = 0;
        for (i, g) in xs
            .iter()
            .map(|g| g.strip_prefix('x'))
            .chain([Some(*last)])
            .enumerate()
        {
            let g = g.ok_or_else(|| bad("every index group but the last starts with x"))?;
            if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("index groups are 3 digits"));
            }
            if i == 0 && !xs.is_empty() && g == "000" {
                return Err(bad("the index has a leading zero group"));
            }
            let d: u64 = g.parse().map_err(|_| bad("index groups are 3 digits"))?;
            index = index
                .checked_mul(1000)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(|| bad("the index is too large"))?;
        }
        Ok(TilePath { kind, index, width })
    }

    /// The path (after `tile/`) that names this tile: the inverse of
    /// [`parse`](Self::parse).
    pub fn to_path(&self) -> String {
        let mut out = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let digits = self.index.to_string();
        let pad = (3 - digits.len() % 3) % 3;
        let digits = format!("{}{digits}", "0".repeat(pad));
        let groups: Vec<&str> = (0..digits.len() / 3)
            .map(|i| &digits[i * 3..i * 3 + 3])
            .collect();
        for (i, g) in groups.iter().enumerate() {
            out.push('/');
            if i + 1 < groups.len() {
                out.push('x');
            }
            out.push_str(g);
        }
        if self.width < TILE_WIDTH {
            out.push_str(&format!(".p/{}", self.width));
        }
        out
    }

    /// The tree level of the hashes in the tile (0 for entries).
    pub fn tree_level(&self) -> u32 {
        match self.kind {
            TileKind::Hashes { level } => u32::from(level) * 8,
            TileKind::Entries => 0,
        }
    }

    /// How many leaves the tree must hold for this tile to exist, or
    /// `None` if that is beyond any possible tree.
    pub fn leaves_needed(&self) -> Option<u64> {
        let per_hash = 1u64.checked_shl(self.tree_level())?;
        self.index
            .checked_mul(TILE_WIDTH)?
            .checked_add(self.width)?
            .checked_mul(per_hash)
    }
}

/// A decimal without leading zeros (`0` itself is fine).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_examples_parse_and_print_back() {
        let t = TilePath::parse("0/x001/x234/067").expect("parses");
        assert_eq!(
            t,
            TilePath {
                kind: TileKind::Hashes { level: 0 },
                index: 1_234_067,
                width: 256
            }
        );
        assert_eq!(t.to_path(), "0/x001/x234/067");
        let t = TilePath::parse("entries/000.p/112").expect("parses");
        assert_eq!((t.kind, t.index, t.width), (TileKind::Entries, 0, 112));
        assert_eq!(t.to_path(), "entries/000.p/112");
        let t = TilePath::parse("1/001.p/17").expect("parses");
        assert_eq!(t.leaves_needed(), Some((256 + 17) * 256));
        for index in [0, 1, 999, 1000, 1_234_067, u64::MAX / 256] {
            let t = TilePath {
                kind: TileKind::Hashes { level: 2 },
                index,
                width: 7,
            };
            assert_eq!(TilePath::parse(&t.to_path()), Ok(t), "{}", t.to_path());
        }
    }

    #[test]
    fn every_other_spelling_of_a_tile_is_refused() {
        for bad in [
            "",
            "0",
            "00/000",
            "01/000",
            "64/000",
            "8/000",
            "0/1",
            "0/0000",
            "0/001/002",
            "0/x000/001",
            "0/xx01/002",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/01",
            "0/000.p",
            "0/000.p/5/6",
            "0/x001.p/5/002",
            "entries",
            "entries/abc",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert!(TilePath::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
