//! Where a descriptor came from, and the target it is summarised under.
//!
//! Each descriptor remembers its preopen's guest path (recorded in clear)
//! and the relative path the guest opened it by, joined `<parent>/<child>`
//! byte for byte and kept only as a SHA-256 state (see the module
//! header of `interfaces::fs`). It must never record a relative path in
//! clear.

use crate::digest::Hash256;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Where a descriptor (or directory-entry stream) came from.
#[derive(Clone)]
pub(super) struct Origin {
    /// The preopen's guest path.
    pub(super) preopen: Arc<str>,
    /// SHA-256 state over the relative path so far (`None`: the preopen
    /// itself). A state, not a string, so nested opens cost constant memory.
    path: Option<Sha256>,
}

impl Origin {
    pub(super) fn preopen(name: &str) -> Origin {
        Origin {
            preopen: name.into(),
            path: None,
        }
    }

    /// A descriptor the host does not know (cannot happen: every
    /// descriptor comes from `get-directories` or `open-at`).
    pub(super) fn unknown() -> Origin {
        Origin::preopen("?")
    }

    /// `rel` opened relative to this one.
    pub(super) fn child(&self, rel: &str) -> Origin {
        let mut h = match &self.path {
            Some(h) => {
                let mut h = h.clone();
                h.update(b"/");
                h
            }
            None => Sha256::new(),
        };
        h.update(rel.as_bytes());
        Origin {
            preopen: self.preopen.clone(),
            path: Some(h),
        }
    }

    /// `<preopen>` or `<preopen> sha256:<hex of the relative path>`.
    pub(super) fn describe(&self) -> String {
        match &self.path {
            None => self.preopen.to_string(),
            Some(h) => format!("{} {}", self.preopen, Hash256(h.clone().finalize().into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> String {
        Hash256::of(s.as_bytes()).to_string()
    }

    #[test]
    fn nested_paths_hash_as_joined_with_a_slash() {
        let root = Origin::preopen("/in");
        assert_eq!(root.describe(), "/in");
        let sub = root.child("sub");
        assert_eq!(sub.describe(), format!("/in {}", hex("sub")));
        assert_eq!(
            sub.child("../x").describe(),
            format!("/in {}", hex("sub/../x"))
        );
    }
}
