//! Which sequence numbers of one origin a replica holds.

use std::collections::BTreeSet;

/// The writes of one origin a replica has applied (or knows to be
/// superseded): everything up to `contiguous`, and some above it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    contiguous: u64,
    beyond: BTreeSet<u64>,
}

impl SeqSet {
    /// All of `1..=n`.
    pub fn up_to(n: u64) -> SeqSet {
        SeqSet { contiguous: n, beyond: BTreeSet::new() }
    }

    /// The highest `n` such that all of `1..=n` are held.
    pub fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// Held numbers above the contiguous prefix.
    pub fn beyond(&self) -> impl Iterator<Item = u64> + '_ {
        self.beyond.iter().copied()
    }

    /// Whether `seq` is held.
    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.contiguous || self.beyond.contains(&seq)
    }

    /// Adds `seq`; returns whether it was new. Zero is never a sequence
    /// number and is ignored.
    pub fn insert(&mut self, seq: u64) -> bool {
        if seq == 0 || self.contains(seq) {
            return false;
        }
        self.beyond.insert(seq);
        while self.beyond.remove(&(self.contiguous.saturating_add(1))) {
            self.contiguous += 1;
        }
        true
    }

    /// Adds every number in `from..=to` if the range touches the contiguous
    /// prefix; a range beyond a gap is ignored (its writes are added one by
    /// one by the caller), so a hostile range cannot cost memory.
    pub fn insert_range(&mut self, from: u64, to: u64) {
        let from = from.max(1);
        if from > to {
            return;
        }
        if from <= self.contiguous.saturating_add(1) && to > self.contiguous {
            self.contiguous = to;
            self.beyond = self.beyond.split_off(&(to.saturating_add(1)));
            while self.beyond.remove(&(self.contiguous.saturating_add(1))) {
                self.contiguous += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_numbers_close_the_gap() {
        let mut s = SeqSet::default();
        assert!(s.insert(2));
        assert!(s.insert(3));
        assert_eq!(s.contiguous(), 0);
        assert!(s.insert(1));
        assert_eq!(s.contiguous(), 3);
        assert!(!s.insert(2), "idempotent");
        assert!(!s.insert(0));
    }

    #[test]
    fn ranges_extend_the_prefix() {
        let mut s = SeqSet::default();
        s.insert(9);
        s.insert_range(1, 7);
        assert_eq!(s.contiguous(), 7);
        s.insert_range(8, 8);
        assert_eq!(s.contiguous(), 9);
        s.insert_range(20, u64::MAX);
        assert_eq!(s.beyond().count(), 0, "beyond a gap: ignored");
        assert_eq!(s.contiguous(), 9);
        s.insert(20);
        s.insert_range(5, 30);
        assert_eq!(s.contiguous(), 30);
        assert_eq!(s.beyond().count(), 0);
    }
}
