//! A segment tree over the computing nodes keeping, for each subtree and node kind, the most
//! free of every resource: searches skip whole runs of nodes where nothing can fit.

use std::ops::Range;

use super::ledger::EPSILON;
use super::topology::NodeKind;
use super::workload::{Amounts, RESOURCES};

/// Per node kind, the most free of every resource in a subtree (`-inf` where the subtree has
/// no node of that kind).
type Maxima = [Amounts; 2];

const NONE: Maxima = [[f64::NEG_INFINITY; RESOURCES]; 2];

/// Which node kinds a search accepts, as a bit per [`NodeKind::index`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindMask(u8);

impl KindMask {
    /// Both kinds.
    pub const ANY: KindMask = KindMask(0b11);
    /// No kind.
    pub const NONE: KindMask = KindMask(0);

    /// Only `kind`.
    pub const fn only(kind: NodeKind) -> KindMask {
        KindMask(1 << kind.index())
    }

    /// Kinds in both masks.
    pub const fn and(self, other: KindMask) -> KindMask {
        KindMask(self.0 & other.0)
    }

    /// Whether `kind` is in the mask.
    pub const fn has(self, kind: NodeKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }
}

/// The segment tree.
#[derive(Clone, Debug, PartialEq)]
pub struct FreeIndex {
    /// Number of leaves (a power of two, at least the number of nodes).
    size: usize,
    /// Number of computing nodes.
    len: usize,
    /// `tree[1]` is the root, `tree[size + n]` the leaf of node `n`.
    tree: Vec<Maxima>,
    kinds: Vec<NodeKind>,
}

impl FreeIndex {
    /// An index over nodes of the given kinds with the given free amounts.
    pub fn new(kinds: Vec<NodeKind>, free: &[Amounts]) -> FreeIndex {
        let len = kinds.len();
        let size = len.next_power_of_two().max(1);
        let mut tree = vec![NONE; 2 * size];
        for (n, kind) in kinds.iter().enumerate() {
            tree[size + n][kind.index()] = free[n];
        }
        for i in (1..size).rev() {
            tree[i] = merge(&tree[2 * i], &tree[2 * i + 1]);
        }
        FreeIndex {
            size,
            len,
            tree,
            kinds,
        }
    }

    /// Records that node `n` now has `free` left.
    pub fn update(&mut self, n: usize, free: &Amounts) {
        let mut i = self.size + n;
        self.tree[i][self.kinds[n].index()] = *free;
        while i > 1 {
            i /= 2;
            self.tree[i] = merge(&self.tree[2 * i], &self.tree[2 * i + 1]);
        }
    }

    /// Calls `visit` on every node of `range` whose kind is in `kinds` and that has at least
    /// `lower` of every resource free, in index order; stops early when `visit` returns false.
    pub fn for_each_candidate(
        &self,
        range: Range<usize>,
        lower: &Amounts,
        kinds: KindMask,
        visit: &mut impl FnMut(usize) -> bool,
    ) -> bool {
        let end = range.end.min(self.len);
        if range.start >= end || kinds == KindMask::NONE {
            return true;
        }
        self.walk(1, 0, self.size, range.start, end, lower, kinds, visit)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        i: usize,
        lo: usize,
        hi: usize,
        start: usize,
        end: usize,
        lower: &Amounts,
        kinds: KindMask,
        visit: &mut impl FnMut(usize) -> bool,
    ) -> bool {
        if hi <= start || end <= lo || !self.may_fit(i, lower, kinds) {
            return true;
        }
        if hi - lo == 1 {
            return visit(lo);
        }
        let mid = (lo + hi) / 2;
        self.walk(2 * i, lo, mid, start, end, lower, kinds, visit)
            && self.walk(2 * i + 1, mid, hi, start, end, lower, kinds, visit)
    }

    /// Whether subtree `i` may hold a node of an accepted kind with `lower` free.
    fn may_fit(&self, i: usize, lower: &Amounts, kinds: KindMask) -> bool {
        NodeKind::ALL.into_iter().any(|kind| {
            kinds.has(kind)
                && self.tree[i][kind.index()]
                    .iter()
                    .zip(lower)
                    .all(|(free, need)| *need <= *free + EPSILON)
        })
    }
}

fn merge(a: &Maxima, b: &Maxima) -> Maxima {
    let mut out = *a;
    for (row, other) in out.iter_mut().zip(b) {
        for (x, y) in row.iter_mut().zip(other) {
            *x = x.max(*y);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(
        index: &FreeIndex,
        range: Range<usize>,
        need: f64,
        kinds: KindMask,
    ) -> Vec<usize> {
        let mut found = Vec::new();
        index.for_each_candidate(range, &[need, 0.0, 0.0, 0.0, 0.0, 0.0], kinds, &mut |n| {
            found.push(n);
            true
        });
        found
    }

    #[test]
    fn finds_exactly_the_nodes_with_room() {
        let kinds = vec![
            NodeKind::Host,
            NodeKind::Nic,
            NodeKind::Nic,
            NodeKind::Host,
            NodeKind::Nic,
        ];
        let free: Vec<Amounts> = [4.0, 1.0, 8.0, 2.0, 3.0]
            .iter()
            .map(|&c| [c, 1.0, 1.0, 1.0, 1.0, 1.0])
            .collect();
        let mut index = FreeIndex::new(kinds, &free);
        assert_eq!(candidates(&index, 0..5, 3.0, KindMask::ANY), [0, 2, 4]);
        assert_eq!(
            candidates(&index, 0..5, 3.0, KindMask::only(NodeKind::Nic)),
            [2, 4]
        );
        assert_eq!(candidates(&index, 1..4, 3.0, KindMask::ANY), [2]);
        index.update(2, &[0.5, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(candidates(&index, 0..5, 3.0, KindMask::ANY), [0, 4]);
        assert_eq!(
            candidates(&index, 0..5, 9.0, KindMask::ANY),
            Vec::<usize>::new()
        );
        let mut first = None;
        index.for_each_candidate(0..5, &[0.0; RESOURCES], KindMask::ANY, &mut |n| {
            first = Some(n);
            false
        });
        assert_eq!(first, Some(0));
    }
}
