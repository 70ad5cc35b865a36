//! When a tombstone may be dropped: once every live member holds it.
//!
//! Members cannot all be asked (there may be thousands, and no vote is
//! taken), and a member's state digest is gossiped only to the members it
//! shares a pool with. So each node also gossips an *agreement*: how many
//! hops of the pool graph around it are known to hold its digest.
//!
//! - A node whose live neighbours (members of its pools, heard directly)
//!   all publish its digest has agreement 1 + the least of theirs; any
//!   neighbour with another digest makes it 0.
//! - By induction, agreement k means every member within k hops held the
//!   same digest, each when it last published. A member with another
//!   digest k hops away caps the agreement of everyone around it below k.
//! - Any two members are at most [`SPAN`] hops apart: site pool → site
//!   representative → region pool → region representative → global pool →
//!   the other region's representative → its region pool → the site
//!   representative → the site pool. An agreement of [`SPAN`] therefore
//!   covers every live member, and the tombstones in that state are held
//!   everywhere.
//!
//! The digest covers live data, not tombstones: a member with the same
//! digest either holds the tombstone or never held what it deletes, and
//! no live member holds the deleted entry (its digest would differ).
//! Members that are dead are not waited for; one that returns behind the
//! collected tombstones is sent a snapshot, never the deltas it missed.

/// Hops that separate any two members of the pool graph, at most.
pub const SPAN: u8 = 6;
/// Agreement is not counted higher than this.
pub const MAX_AGREEMENT: u8 = 8;

/// This node's agreement, from its own digest and each live neighbour's
/// (digest, agreement). A node without neighbours agrees with itself
/// fully.
pub fn agreement(mine: u64, neighbours: impl IntoIterator<Item = (u64, u8)>) -> u8 {
    let mut least = MAX_AGREEMENT;
    for (digest, theirs) in neighbours {
        if digest != mine {
            return 0;
        }
        least = least.min(theirs.saturating_add(1));
    }
    least.min(MAX_AGREEMENT)
}

/// Whether an agreement covers every live member.
pub fn everyone_holds(agreement: u8) -> bool {
    agreement >= SPAN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs rounds of agreement on a graph (adjacency lists) where each
    /// node has a digest; returns the agreements after `rounds`.
    fn run(adj: &[Vec<usize>], digests: &[u64], rounds: usize) -> Vec<u8> {
        let mut ag = vec![0u8; adj.len()];
        for _ in 0..rounds {
            ag = (0..adj.len()).map(|i| agreement(digests[i], adj[i].iter().map(|&j| (digests[j], ag[j])))).collect();
        }
        ag
    }

    fn path(n: usize) -> Vec<Vec<usize>> {
        (0..n).map(|i| [i.checked_sub(1), (i + 1 < n).then_some(i + 1)].into_iter().flatten().collect()).collect()
    }

    #[test]
    fn a_converged_graph_reaches_the_span() {
        let adj = path(SPAN as usize + 1);
        let ag = run(&adj, &vec![7; adj.len()], 20);
        assert!(ag.iter().all(|&a| everyone_holds(a)), "{ag:?}");
    }

    #[test]
    fn one_member_that_differs_keeps_everyone_within_the_span_from_collecting() {
        // A path of SPAN + 1 members (the longest the pool graph allows):
        // the last one lags. However many rounds pass, the first one is
        // SPAN hops away and must not collect.
        let adj = path(SPAN as usize + 1);
        let mut digests = vec![7; adj.len()];
        *digests.last_mut().unwrap() = 8;
        let ag = run(&adj, &digests, 100);
        assert!(ag.iter().all(|&a| !everyone_holds(a)), "{ag:?}");
        assert_eq!(ag[0], SPAN - 1, "agreement is the distance to the laggard, less one");
    }

    #[test]
    fn agreement_is_capped_and_needs_no_neighbours() {
        assert_eq!(agreement(1, []), MAX_AGREEMENT);
        assert_eq!(agreement(1, [(1, MAX_AGREEMENT)]), MAX_AGREEMENT);
        assert_eq!(agreement(1, [(1, 2), (1, 5)]), 3);
        assert_eq!(agreement(1, [(1, 5), (2, 5)]), 0);
    }
}
