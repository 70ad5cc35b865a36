//! Merge is commutative, associative and idempotent, and anti-entropy
//! converges: property tests over random write histories and deliveries.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use meshdns_replication::{Applied, Clock, EntryKey, RRset, Write, ZoneReplica};
use proptest::prelude::*;

const NODES: [&str; 4] = ["a", "b", "c", "d"];

/// One step of a history: node `n` writes key `k` (a value, or a delete).
#[derive(Clone, Debug)]
struct Op {
    node: usize,
    key: u8,
    value: Option<u8>,
    wall_step: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (0..NODES.len(), 0u8..6, proptest::option::weighted(0.8, any::<u8>()), 0u8..3)
        .prop_map(|(node, key, value, wall_step)| Op { node, key, value, wall_step })
}

fn key(k: u8) -> EntryKey {
    let mut owner = vec![2, b'k', b'0' + k % 10];
    owner.extend_from_slice(b"\x07example\x03com\x00");
    EntryKey::new(&owner, 1).unwrap()
}

/// Runs the history on one replica per node (each node sees only its own
/// writes) and returns the replicas and every write made.
fn run(history: &[Op]) -> (Vec<ZoneReplica>, Vec<Write>) {
    let mut reps: Vec<ZoneReplica> = NODES.iter().map(|_| ZoneReplica::new()).collect();
    let mut clocks: Vec<Clock> = NODES.iter().map(|_| Clock::new(1_000)).collect();
    // Clocks drift apart: each node's wall time advances on its own.
    let mut walls: Vec<u64> = vec![1_000, 1_000, 995, 1_010];
    let mut writes = Vec::new();
    for o in history {
        walls[o.node] += u64::from(o.wall_step);
        let hlc = clocks[o.node].tick(walls[o.node]);
        let value = o.value.map(|v| RRset::new(300, vec![vec![192, 0, 2, v]]));
        writes.push(reps[o.node].write(NODES[o.node], hlc, key(o.key), value));
    }
    (reps, writes)
}

/// The state two replicas must agree on: every entry, tombstones included.
fn state(r: &ZoneReplica) -> BTreeMap<EntryKey, Option<RRset>> {
    r.entries().iter().map(|(k, e)| (k.clone(), e.value.clone())).collect()
}

/// Pairwise anti-entropy until nothing changes.
fn anti_entropy(reps: &mut [ZoneReplica]) {
    for _round in 0..reps.len() * 2 {
        for i in 0..reps.len() {
            for j in 0..reps.len() {
                if i == j {
                    continue;
                }
                let theirs = reps[j].version_vector();
                let deltas = reps[i].deltas_for(&theirs).unwrap();
                for d in deltas {
                    reps[j].apply_delta(d);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Applying the same writes in any order, with duplicates, gives the
    /// same state (commutative and idempotent).
    #[test]
    fn any_order_with_duplicates_gives_the_same_state(
        history in proptest::collection::vec(op(), 1..60),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
    ) {
        let (_, writes) = run(&history);
        let mut straight = ZoneReplica::new();
        for w in &writes {
            straight.apply(w.clone());
        }
        let mut shuffled = ZoneReplica::new();
        let mut pending = writes.clone();
        // Deliver in a random order, re-sending some along the way.
        for ix in &order {
            let w = ix.get(&writes).clone();
            shuffled.apply(w);
            if !pending.is_empty() {
                let w = pending.swap_remove(ix.index(pending.len()));
                shuffled.apply(w);
            }
        }
        for w in pending {
            shuffled.apply(w);
        }
        prop_assert_eq!(state(&straight), state(&shuffled));
        prop_assert_eq!(straight.digest(), shuffled.digest());
        prop_assert_eq!(straight.serial(), shuffled.serial());
        for w in &writes {
            prop_assert_eq!(shuffled.apply(w.clone()), Applied::Duplicate);
        }
    }

    /// Merging replicas in different groupings gives the same state
    /// (associative): (a ∪ b) ∪ c == a ∪ (b ∪ c), through deltas.
    #[test]
    fn merging_is_associative(history in proptest::collection::vec(op(), 1..60)) {
        let (reps, _) = run(&history);
        let merge = |into: &mut ZoneReplica, from: &ZoneReplica| {
            for d in from.deltas_for(&into.version_vector()).unwrap() {
                into.apply_delta(d);
            }
        };
        let mut left = reps[0].clone();
        merge(&mut left, &reps[1]);
        merge(&mut left, &reps[2]);
        let mut bc = reps[1].clone();
        merge(&mut bc, &reps[2]);
        let mut right = reps[0].clone();
        merge(&mut right, &bc);
        prop_assert_eq!(state(&left), state(&right));
    }

    /// Writes pushed with losses and duplicates, then anti-entropy: every
    /// replica ends with the state of one replica that got every write, and
    /// every key holds the write with the largest stamp.
    #[test]
    fn lossy_push_then_anti_entropy_converges(
        history in proptest::collection::vec(op(), 1..80),
        deliveries in proptest::collection::vec((0..NODES.len(), 0u8..4), 0..300),
    ) {
        let (mut reps, writes) = run(&history);
        // Push: each write to random nodes, some dropped (0), some twice (3).
        for (ix, (to, copies)) in deliveries.iter().enumerate() {
            if writes.is_empty() { break; }
            let w = &writes[ix % writes.len()];
            for _ in 0..*copies {
                reps[*to].apply(w.clone());
            }
        }
        anti_entropy(&mut reps);
        let mut reference = ZoneReplica::new();
        for w in &writes {
            reference.apply(w.clone());
        }
        for r in &reps {
            prop_assert_eq!(state(r), state(&reference));
            prop_assert_eq!(r.version_vector(), reference.version_vector());
            prop_assert_eq!(r.serial(), reference.serial());
        }
        // Last writer wins.
        let mut best: BTreeMap<EntryKey, &Write> = BTreeMap::new();
        for w in &writes {
            if best.get(&w.key).is_none_or(|b| b.stamp() < w.stamp()) {
                best.insert(w.key.clone(), w);
            }
        }
        for (k, w) in best {
            prop_assert_eq!(state(&reference).get(&k).cloned().flatten(), w.value.clone());
        }
    }

    /// Tombstones acknowledged by everyone are collected; a replica that
    /// had not seen them is told it needs a snapshot, and one that had
    /// converges by deltas without resurrecting anything.
    #[test]
    fn collected_tombstones_need_a_snapshot_for_laggards(history in proptest::collection::vec(op(), 1..60)) {
        let (mut reps, _) = run(&history);
        anti_entropy(&mut reps);
        let vvs: Vec<_> = reps.iter().map(|r| r.version_vector()).collect();
        let before = state(&reps[0]);
        let mut collected = Vec::new();
        for r in reps.iter_mut() {
            collected.push(r.collect_tombstones(vvs.iter()));
            prop_assert_eq!(r.tombstones(), 0);
        }
        let live: BTreeMap<_, _> = before.into_iter().filter(|(_, v)| v.is_some()).collect();
        prop_assert_eq!(state(&reps[0]), live);
        let empty = ZoneReplica::new();
        match reps[0].deltas_for(&empty.version_vector()) {
            Ok(_) => prop_assert_eq!(collected[0], 0),
            Err(e) => prop_assert!(collected[0] > 0, "{}", e),
        }
        // Replicas that saw everything still converge with each other.
        anti_entropy(&mut reps);
        let s0 = state(&reps[0]);
        for r in &reps {
            prop_assert_eq!(state(r), s0.clone());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A replica that fell behind collected tombstones is told it needs a
    /// snapshot; adopting one leaves it with exactly the others' state
    /// (no deleted record comes back), and snapshots round-trip.
    #[test]
    fn a_laggard_adopts_a_snapshot_without_resurrecting_deletes(
        history in proptest::collection::vec(op(), 2..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut reps, writes) = run(&history);
        // The laggard got an early part of the writes only.
        let mut laggard = ZoneReplica::new();
        for w in &writes[..cut.index(writes.len())] {
            laggard.apply(w.clone());
        }
        anti_entropy(&mut reps);
        let vvs: Vec<_> = reps.iter().map(|r| r.version_vector()).collect();
        let collected = reps[0].collect_tombstones(vvs.iter());
        let snap = reps[0].snapshot();
        prop_assert_eq!(&ZoneReplica::from_snapshot(snap.clone()).unwrap().snapshot(), &snap);
        match reps[0].deltas_for(&laggard.version_vector()) {
            Ok(deltas) => {
                for d in deltas {
                    laggard.apply_delta(d);
                }
            }
            Err(_) => {
                prop_assert!(collected > 0);
                laggard.adopt_snapshot(snap).unwrap();
            }
        }
        let live = |r: &ZoneReplica| -> BTreeMap<EntryKey, RRset> { r.rrsets().map(|(k, v)| (k.clone(), v.clone())).collect() };
        prop_assert_eq!(live(&laggard), live(&reps[0]));
        prop_assert_eq!(laggard.digest(), reps[0].digest());
        prop_assert_eq!(laggard.version_vector(), reps[0].version_vector());
    }
}

#[test]
fn tombstones_older_than_a_horizon_are_collected_and_laggards_get_a_snapshot() {
    use meshdns_replication::Hlc;
    let mut a = ZoneReplica::new();
    let k = key(1);
    a.write("a", Hlc { wall_ms: 10, logical: 0 }, k.clone(), Some(RRset::new(1, vec![vec![1, 2, 3, 4]])));
    let laggard_vv = a.version_vector();
    a.write("a", Hlc { wall_ms: 20, logical: 0 }, k.clone(), None);
    a.write("a", Hlc { wall_ms: 90, logical: 0 }, key(2), None);
    assert_eq!(a.collect_tombstones_before(Hlc { wall_ms: 50, logical: 0 }), 1, "only the old tombstone");
    assert_eq!(a.tombstones(), 1);
    let err = a.deltas_for(&laggard_vv).unwrap_err();
    assert_eq!(err.collected, 2);
    // The laggard adopts a snapshot: the deleted record does not come back.
    let mut laggard = ZoneReplica::new();
    laggard.write("a", Hlc { wall_ms: 10, logical: 0 }, k.clone(), Some(RRset::new(1, vec![vec![1, 2, 3, 4]])));
    laggard.adopt_snapshot(a.snapshot()).unwrap();
    assert!(laggard.rrsets().next().is_none());
    assert_eq!(laggard.version_vector(), a.version_vector());
}
