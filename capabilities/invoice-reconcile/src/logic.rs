//! Reconciliation on indices, independent of the generated bindings.

use std::collections::{HashMap, VecDeque};

/// Outcome as indices into the inputs, each list in input order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Invoice indices matched with a same-amount ledger line.
    pub matched: Vec<usize>,
    /// Invoice indices with no ledger line.
    pub unmatched_invoices: Vec<usize>,
    /// Ledger line indices that paid no invoice.
    pub unmatched_lines: Vec<usize>,
    /// (invoice index, ledger line index) pairs whose amounts differ.
    pub discrepancies: Vec<(usize, usize)>,
}

/// `invoices` are `(id, amount)`, `ledger` is `(ref, amount)`. Each ledger line
/// pays at most one invoice; lines with the same ref are used in input order.
/// O(n + m).
pub fn reconcile(invoices: &[(&str, i64)], ledger: &[(&str, i64)]) -> Outcome {
    let mut by_ref: HashMap<&str, VecDeque<usize>> = HashMap::with_capacity(ledger.len());
    for (i, (r, _)) in ledger.iter().enumerate() {
        by_ref.entry(r).or_default().push_back(i);
    }
    let mut used = vec![false; ledger.len()];
    let mut out = Outcome::default();
    for (i, (id, amount)) in invoices.iter().enumerate() {
        match by_ref.get_mut(id).and_then(|q| q.pop_front()) {
            Some(l) => {
                used[l] = true;
                if ledger[l].1 == *amount {
                    out.matched.push(i);
                } else {
                    out.discrepancies.push((i, l));
                }
            }
            None => out.unmatched_invoices.push(i),
        }
    }
    out.unmatched_lines = used.iter().enumerate().filter(|(_, u)| !**u).map(|(i, _)| i).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let inv = [("A", 100), ("B", 200), ("C", 300), ("D", 5)];
        let led = [("B", 250), ("X", 1), ("A", 100), ("D", 5), ("D", 5)];
        let r = reconcile(&inv, &led);
        assert_eq!(r.matched, vec![0, 3]);
        assert_eq!(r.discrepancies, vec![(1, 0)]);
        assert_eq!(r.unmatched_invoices, vec![2]);
        assert_eq!(r.unmatched_lines, vec![1, 4]);
    }

    #[test]
    fn large_is_linear() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("INV-{i}")).collect();
        let inv: Vec<(&str, i64)> = ids.iter().map(|s| (s.as_str(), 100)).collect();
        let led: Vec<(&str, i64)> = ids.iter().rev().map(|s| (s.as_str(), 100)).collect();
        let r = reconcile(&inv, &led);
        assert_eq!(r.matched.len(), 10_000);
        assert!(r.unmatched_lines.is_empty());
    }
}
