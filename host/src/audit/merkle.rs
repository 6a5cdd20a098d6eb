//! The RFC 6962 / RFC 9162 Merkle tree over the audit entries: hashing,
//! the incremental right edge kept by the writer, proof generation over
//! stored nodes, and proof verification.
//!
//! Leaf `i` (0-based, entry `seq = i + 1`) is `SHA-256(0x00 ‖ hash)` where
//! `hash` is the entry's 32-byte chain hash (docs/audit.md "Merkle tree");
//! an interior node is `SHA-256(0x01 ‖ left ‖ right)`; the empty tree's
//! root is `SHA-256("")`. A *stored node* `(level, index)` is the root of
//! the complete subtree over leaves `index·2^level .. (index+1)·2^level`;
//! every proof and every root of any size `≤` the tree's size is assembled
//! from O(log n) stored nodes, never by rehashing leaves.
//!
//! This module must never do I/O: storage hands nodes in through
//! [`NodeSource`]. Verification functions must never panic on any input.

use crate::digest::Hash256;
use sha2::{Digest, Sha256};

/// Most hashes an inclusion or consistency proof can hold (a tree of at
/// most 2^63 leaves has depth 63; C2SP tlog-witness allows 63 lines).
pub const MAX_PROOF_HASHES: usize = 63;

/// `SHA-256("")`, the root of the empty tree.
pub fn empty_root() -> Hash256 {
    Hash256(Sha256::digest([]).into())
}

/// `SHA-256(0x00 ‖ entry_hash)`: the leaf for an entry with that chain hash.
pub fn leaf_hash(entry_hash: &Hash256) -> Hash256 {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry_hash.0);
    Hash256(h.finalize().into())
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash256(h.finalize().into())
}

/// Why a proof cannot be produced or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index is not inside the tree.
    #[error("leaf index {index} is not in a tree of size {size} (indexes run 0..{size})")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size beyond what exists (or an old size above the new one).
    #[error("tree size {asked} is larger than {available}; ask for a size up to {available}")]
    SizeOutOfRange {
        /// The size asked for.
        asked: u64,
        /// The largest size that may be asked for.
        available: u64,
    },
    /// More hashes than any valid proof has.
    #[error("proof has {0} hashes, more than the {MAX_PROOF_HASHES} any valid proof has")]
    TooLong(usize),
    /// The proof does not lead to the expected root.
    #[error("{0}")]
    Mismatch(String),
    /// A stored node is missing or unreadable.
    #[error("stored tree node (level {level}, index {index}) is unavailable: {reason}")]
    Node {
        /// Node level.
        level: u32,
        /// Node index within its level.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// Where proofs get the stored nodes from (`level 0` = leaf hashes).
pub trait NodeSource {
    /// The hash of the complete subtree `(level, index)`; it must exist.
    fn node(&self, level: u32, index: u64) -> Result<Hash256, ProofError>;
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The RFC 6962 hash of leaves `start..end` (`start < end`). Every range the
/// RFC recursion produces splits into aligned complete subtrees, so this
/// reads O(log n) stored nodes.
fn range_hash<S: NodeSource + ?Sized>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash256, ProofError> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return src.node(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(src, start, start + k)?;
    let right = range_hash(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the first `size` leaves.
pub fn root_at<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Hash256, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size`.
pub fn prove_inclusion<S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash256>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    inclusion_path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn inclusion_path<S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash256>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        inclusion_path(src, m, start, start + k, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        inclusion_path(src, m - k, start + k, end, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1 consistency proof from `old` to `new` leaves
/// (empty when `old` is 0 or equal to `new`).
pub fn prove_consistency<S: NodeSource + ?Sized>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash256>, ProofError> {
    if old > new {
        return Err(ProofError::SizeOutOfRange {
            asked: old,
            available: new,
        });
    }
    let mut out = Vec::new();
    if old == 0 || old == new {
        return Ok(out);
    }
    subproof(src, old, 0, new, true, &mut out)?;
    Ok(out)
}

fn subproof<S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash256>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(range_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, start + k, complete, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: does `proof` show that `leaf` is leaf `index` of the
/// tree of `size` whose root is `root`?
pub fn verify_inclusion(
    leaf: &Hash256,
    index: u64,
    size: u64,
    proof: &[Hash256],
    root: &Hash256,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooLong(proof.len()));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::Mismatch(format!(
                "inclusion proof for leaf {index} of {size} has too many hashes"
            )));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::Mismatch(format!(
            "inclusion proof for leaf {index} of {size} has too few hashes"
        )));
    }
    if r != *root {
        return Err(ProofError::Mismatch(format!(
            "inclusion proof for leaf {index} leads to root {r}, not {root} (size {size})"
        )));
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `new` leaves with
/// root `new_root` extends the tree of `old` leaves with root `old_root`?
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash256,
    new_root: &Hash256,
    proof: &[Hash256],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizeOutOfRange {
            asked: old,
            available: new,
        });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooLong(proof.len()));
    }
    if old == 0 {
        if !proof.is_empty() || *old_root != empty_root() {
            return Err(ProofError::Mismatch(
                "from the empty tree the proof must be empty and the old root SHA-256(\"\")"
                    .to_owned(),
            ));
        }
        return Ok(());
    }
    if old == new {
        if !proof.is_empty() || old_root != new_root {
            return Err(ProofError::Mismatch(format!(
                "two trees of size {old} with roots {old_root} and {new_root} are not the same tree"
            )));
        }
        return Ok(());
    }
    let mismatch = || {
        ProofError::Mismatch(format!(
            "consistency proof does not show that size {new} (root {new_root}) extends \
             size {old} (root {old_root})"
        ))
    };
    if proof.is_empty() {
        return Err(mismatch());
    }
    let mut path: Vec<Hash256> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(mismatch());
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if fr != *old_root || sr != *new_root || s != 0 {
        return Err(mismatch());
    }
    Ok(())
}

/// A stored node the writer must persist: `(level, index, hash)`.
pub type NewNode = (u32, u64, Hash256);

/// The right edge of the tree: one complete-subtree root per set bit of
/// `size`, largest first. Appending a leaf touches only this edge, so the
/// writer maintains the tree in O(1) amortised hashes per entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)`, levels strictly decreasing.
    edge: Vec<(u32, Hash256)>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Loads the right edge of a tree of `size` from stored nodes.
    pub fn load<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Frontier, ProofError> {
        let mut edge = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                edge.push((level, src.node(level, start >> level)?));
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, edge })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; calls `store` for the leaf and every complete subtree
    /// it completes, bottom up.
    pub fn append(&mut self, leaf: Hash256, mut store: impl FnMut(NewNode)) {
        let index = self.size;
        store((0, index, leaf));
        let mut level = 0u32;
        let mut hash = leaf;
        while let Some(&(l, left)) = self.edge.last() {
            if l != level {
                break;
            }
            self.edge.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            store((level, index >> level, hash));
        }
        self.edge.push((level, hash));
        self.size += 1;
    }

    /// The root hash of the current tree.
    pub fn root(&self) -> Hash256 {
        let mut it = self.edge.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return empty_root();
        };
        for (_, left) in it {
            r = node_hash(left, &r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Every stored node of a tree, built by the frontier.
    struct Memory(HashMap<(u32, u64), Hash256>);

    impl NodeSource for Memory {
        fn node(&self, level: u32, index: u64) -> Result<Hash256, ProofError> {
            self.0
                .get(&(level, index))
                .copied()
                .ok_or(ProofError::Node {
                    level,
                    index,
                    reason: "absent".into(),
                })
        }
    }

    fn leaf(i: u64) -> Hash256 {
        leaf_hash(&Hash256::of(&i.to_be_bytes()))
    }

    fn tree(n: u64) -> (Memory, Vec<Hash256>) {
        let mut f = Frontier::new();
        let mut m = HashMap::new();
        let mut roots = vec![f.root()];
        for i in 0..n {
            f.append(leaf(i), |(l, x, h)| {
                m.insert((l, x), h);
            });
            roots.push(f.root());
        }
        (Memory(m), roots)
    }

    /// RFC 6962 MTH straight from the definition.
    fn reference_root(leaves: &[Hash256]) -> Hash256 {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn the_incremental_root_equals_the_rfc_definition_for_every_size_up_to_300() {
        let (mem, roots) = tree(300);
        let leaves: Vec<Hash256> = (0..300).map(leaf).collect();
        for n in 0..=300usize {
            assert_eq!(roots[n], reference_root(&leaves[..n]), "size {n}");
            assert_eq!(root_at(&mem, n as u64).expect("root"), roots[n], "size {n}");
        }
    }

    #[test]
    fn a_frontier_loaded_from_stored_nodes_continues_identically() {
        let (mem, roots) = tree(300);
        for n in [0u64, 1, 2, 3, 7, 8, 100, 255, 256, 299] {
            let mut f = Frontier::load(&mem, n).expect("loads");
            assert_eq!(f.root(), roots[n as usize]);
            f.append(leaf(n), |_| {});
            assert_eq!(f.root(), roots[n as usize + 1]);
        }
    }

    #[test]
    fn empty_tree_root_is_the_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn inclusion_proofs_for_every_index_of_sizes_1_to_300_verify() {
        let (mem, roots) = tree(300);
        for size in 1..=300u64 {
            for index in 0..size {
                let proof = prove_inclusion(&mem, index, size).expect("proves");
                verify_inclusion(&leaf(index), index, size, &proof, &roots[size as usize])
                    .unwrap_or_else(|e| panic!("{index}/{size}: {e}"));
            }
        }
    }

    fn flips(h: &Hash256) -> impl Iterator<Item = Hash256> + '_ {
        (0..256).map(move |bit| {
            let mut x = *h;
            x.0[bit / 8] ^= 1 << (bit % 8);
            x
        })
    }

    #[test]
    fn inclusion_proof_fails_when_any_bit_of_proof_root_leaf_or_index_flips() {
        let (mem, roots) = tree(70);
        for size in [1u64, 2, 3, 5, 8, 13, 31, 64, 70] {
            for index in 0..size {
                let proof = prove_inclusion(&mem, index, size).expect("proves");
                let root = roots[size as usize];
                let l = leaf(index);
                for (i, h) in proof.iter().enumerate() {
                    for bad in flips(h) {
                        let mut p = proof.clone();
                        p[i] = bad;
                        assert!(verify_inclusion(&l, index, size, &p, &root).is_err());
                    }
                }
                for bad in flips(&root) {
                    assert!(verify_inclusion(&l, index, size, &proof, &bad).is_err());
                }
                for bad in flips(&l) {
                    assert!(verify_inclusion(&bad, index, size, &proof, &root).is_err());
                }
                // The size is not bound by an inclusion proof (the signed
                // checkpoint binds it); the index is.
                for bit in 0..64 {
                    let i2 = index ^ (1 << bit);
                    assert!(verify_inclusion(&l, i2, size, &proof, &root).is_err());
                }
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(verify_inclusion(&l, index, size, shorter, &root).is_err());
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(verify_inclusion(&l, index, size, &longer, &root).is_err());
            }
        }
    }

    #[test]
    fn consistency_proofs_for_every_pair_of_sizes_up_to_64_verify() {
        let (mem, roots) = tree(64);
        for new in 0..=64u64 {
            for old in 0..=new {
                let proof = prove_consistency(&mem, old, new).expect("proves");
                verify_consistency(old, new, &roots[old as usize], &roots[new as usize], &proof)
                    .unwrap_or_else(|e| panic!("{old}->{new}: {e}"));
            }
        }
    }

    #[test]
    fn consistency_proof_fails_when_any_bit_of_proof_or_either_root_flips() {
        let (mem, roots) = tree(40);
        for new in 1..=40u64 {
            for old in 1..new {
                let proof = prove_consistency(&mem, old, new).expect("proves");
                let (or, nr) = (roots[old as usize], roots[new as usize]);
                for (i, h) in proof.iter().enumerate() {
                    for bad in flips(h) {
                        let mut p = proof.clone();
                        p[i] = bad;
                        assert!(verify_consistency(old, new, &or, &nr, &p).is_err());
                    }
                }
                for bad in flips(&or) {
                    assert!(verify_consistency(old, new, &bad, &nr, &proof).is_err());
                }
                for bad in flips(&nr) {
                    assert!(verify_consistency(old, new, &or, &bad, &proof).is_err());
                }
                assert!(verify_consistency(old, new, &or, &nr, &proof[1..]).is_err());
            }
        }
    }

    #[test]
    fn a_rewritten_tree_is_not_consistent_with_the_old_root() {
        let (mem, roots) = tree(20);
        // Another history: same first 9 leaves, a different 10th.
        let mut f = Frontier::new();
        for i in 0..9 {
            f.append(leaf(i), |_| {});
        }
        f.append(leaf(1000), |_| {});
        let other_root_10 = f.root();
        let proof = prove_consistency(&mem, 10, 20).expect("proves");
        assert!(verify_consistency(10, 20, &other_root_10, &roots[20], &proof).is_err());
        assert!(verify_consistency(10, 20, &roots[10], &roots[20], &proof).is_ok());
    }

    #[test]
    fn proofs_beyond_the_tree_are_refused_with_the_sizes() {
        let (mem, _) = tree(5);
        assert_eq!(
            prove_inclusion(&mem, 5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert!(matches!(
            prove_consistency(&mem, 6, 5),
            Err(ProofError::SizeOutOfRange {
                asked: 6,
                available: 5
            })
        ));
        assert!(matches!(root_at(&mem, 6), Err(ProofError::Node { .. })));
    }

    #[test]
    fn a_proof_longer_than_any_valid_one_is_refused() {
        let long = vec![Hash256::ZERO; MAX_PROOF_HASHES + 1];
        assert_eq!(
            verify_inclusion(&Hash256::ZERO, 0, u64::MAX, &long, &Hash256::ZERO),
            Err(ProofError::TooLong(64))
        );
    }
}
