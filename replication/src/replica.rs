//! [`ZoneReplica`]: one node's copy of one zone, as a CRDT.
//!
//! State is a map from [`EntryKey`] to the winning [`Entry`] under
//! last-writer-wins (by [`Stamp`]). Applying a write is commutative,
//! associative and idempotent: the result depends only on the *set* of
//! writes applied (`tests/convergence.rs` checks it over random histories).
//!
//! What a replica holds of each origin is a [`SeqSet`]: all writes up to a
//! number, and some above. A [`Delta`] from a peer names the ranges of an
//! origin's numbers it covers and carries only the writes among them that
//! still win: a superseded write need not travel, because the write that
//! superseded it travels under its own origin. So a replica never keeps a
//! log beyond its current entries, and catching up costs at most one
//! entry per key, however many writes were missed.

use std::collections::{BTreeMap, BTreeSet};

use crate::hlc::Hlc;
use crate::model::{Entry, EntryKey, NodeId, RRset, Write};
use crate::seen::SeqSet;

/// What a replica knows of each origin: the version vector, with the
/// numbers held above each contiguous prefix.
pub type Knowledge = BTreeMap<NodeId, SeqSet>;

/// Writes of one origin, covering whole ranges of its numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The origin whose numbers are covered.
    pub origin: NodeId,
    /// Inclusive ranges of numbers covered.
    pub covered: Vec<(u64, u64)>,
    /// The covered writes that still win (each within `covered`).
    pub writes: Vec<Write>,
}

/// A peer cannot be brought up to date with deltas.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the peer is behind tombstones already collected for {origin} (up to {collected}): it needs a snapshot")]
pub struct NeedsSnapshot {
    /// An origin whose collected tombstones the peer has not seen.
    pub origin: NodeId,
    /// Up to which number.
    pub collected: u64,
}

/// A whole replica: what it holds of each origin and every entry. Sent to
/// a peer too far behind for deltas, and written to disk to compact the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Per origin: numbers held, and tombstones collected up to.
    pub origins: BTreeMap<NodeId, OriginState>,
    /// Every entry, as the write that put it there.
    pub writes: Vec<Write>,
}

/// What a replica holds of one origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginState {
    /// All of `1..=contiguous` held.
    pub contiguous: u64,
    /// Numbers held above that.
    pub beyond: Vec<u64>,
    /// Tombstones of this origin collected up to this number.
    pub collected: u64,
}

/// A snapshot that does not describe a replica.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("inconsistent snapshot: {0}")]
pub struct BadSnapshot(pub &'static str);

/// Whether a write changed anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// New and winning: the served data changed.
    Won,
    /// New but older than the current entry (or covered): nothing to serve.
    Lost,
    /// Already held.
    Duplicate,
}

/// One node's copy of a zone.
#[derive(Clone, Debug, Default)]
pub struct ZoneReplica {
    entries: BTreeMap<EntryKey, Entry>,
    seen: Knowledge,
    /// Per origin, the numbers of its writes that are current entries.
    winners: BTreeMap<NodeId, BTreeMap<u64, EntryKey>>,
    /// Per origin, tombstones collected up to this number: a peer that has
    /// not seen that far cannot learn those deletions from deltas.
    collected: BTreeMap<NodeId, u64>,
}

impl ZoneReplica {
    /// An empty replica.
    pub fn new() -> ZoneReplica {
        ZoneReplica::default()
    }

    /// The current entries, tombstones included.
    pub fn entries(&self) -> &BTreeMap<EntryKey, Entry> {
        &self.entries
    }

    /// The live RRsets (no tombstones).
    pub fn rrsets(&self) -> impl Iterator<Item = (&EntryKey, &RRset)> {
        self.entries.iter().filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
    }

    /// What this replica holds of each origin.
    pub fn knowledge(&self) -> &Knowledge {
        &self.seen
    }

    /// The version vector: the contiguous prefix held of each origin.
    pub fn version_vector(&self) -> BTreeMap<NodeId, u64> {
        self.seen.iter().map(|(o, s)| (o.clone(), s.contiguous())).collect()
    }

    /// The next number for a write of `origin` accepted here.
    pub fn next_seq(&self, origin: &str) -> u64 {
        let s = self.seen.get(origin);
        let top = s.map_or(0, |s| s.beyond().last().unwrap_or(0).max(s.contiguous()));
        top.saturating_add(1)
    }

    /// Makes a local write as `origin` (this node) and applies it.
    pub fn write(&mut self, origin: &str, hlc: Hlc, key: EntryKey, value: Option<RRset>) -> Write {
        let w = Write { origin: origin.to_owned(), seq: self.next_seq(origin), hlc, key, value };
        self.apply(w.clone());
        w
    }

    /// Applies one write (from anywhere, in any order, any number of times).
    pub fn apply(&mut self, w: Write) -> Applied {
        if w.seq == 0 || self.collected.get(&w.origin).is_some_and(|&c| w.seq <= c) {
            return Applied::Duplicate;
        }
        if !self.seen.entry(w.origin.clone()).or_default().insert(w.seq) {
            return Applied::Duplicate;
        }
        self.offer(w)
    }

    /// Puts `w` in place if it beats the current entry of its key.
    fn offer(&mut self, w: Write) -> Applied {
        let stamp = w.stamp();
        if let Some(cur) = self.entries.get(&w.key) {
            if cur.stamp >= stamp {
                return Applied::Lost;
            }
            if let Some(ws) = self.winners.get_mut(&cur.stamp.origin) {
                ws.remove(&cur.seq);
            }
        }
        self.winners.entry(w.origin.clone()).or_default().insert(w.seq, w.key.clone());
        self.entries.insert(w.key, Entry { stamp, seq: w.seq, value: w.value });
        Applied::Won
    }

    /// Applies a delta: the writes it carries, and the numbers it covers.
    /// Returns how many of its writes won.
    pub fn apply_delta(&mut self, d: Delta) -> usize {
        let mut won = 0;
        for w in d.writes {
            if w.origin != d.origin || !d.covered.iter().any(|&(a, b)| (a..=b).contains(&w.seq)) {
                continue; // not what the delta claims to be
            }
            if self.apply(w) == Applied::Won {
                won += 1;
            }
        }
        let seen = self.seen.entry(d.origin).or_default();
        for (a, b) in d.covered {
            seen.insert_range(a, b);
        }
        won
    }

    /// The deltas that bring a peer holding `theirs` up to this replica's
    /// knowledge, one per origin where this replica is ahead.
    pub fn deltas_for(&self, theirs: &BTreeMap<NodeId, u64>) -> Result<Vec<Delta>, NeedsSnapshot> {
        for (origin, &c) in &self.collected {
            if theirs.get(origin).copied().unwrap_or(0) < c {
                return Err(NeedsSnapshot { origin: origin.clone(), collected: c });
            }
        }
        let mut out = Vec::new();
        for (origin, mine) in &self.seen {
            let from = theirs.get(origin).copied().unwrap_or(0);
            let mut covered = Vec::new();
            if mine.contiguous() > from {
                covered.push((from + 1, mine.contiguous()));
            }
            covered.extend(mine.beyond().filter(|&s| s > from).map(|s| (s, s)));
            if covered.is_empty() {
                continue;
            }
            let writes = self
                .winners
                .get(origin)
                .map(|ws| {
                    ws.range(from.saturating_add(1)..)
                        .filter_map(|(&seq, key)| {
                            let e = self.entries.get(key)?;
                            Some(Write {
                                origin: origin.clone(),
                                seq,
                                hlc: e.stamp.hlc,
                                key: key.clone(),
                                value: e.value.clone(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Delta { origin: origin.clone(), covered, writes });
        }
        Ok(out)
    }

    /// Drops tombstones every member has seen: `acked` is the version
    /// vector each live member reports (this node's own included). Returns
    /// how many were dropped.
    pub fn collect_tombstones<'a>(&mut self, acked: impl IntoIterator<Item = &'a BTreeMap<NodeId, u64>>) -> usize {
        let acked: Vec<&BTreeMap<NodeId, u64>> = acked.into_iter().collect();
        if acked.is_empty() {
            return 0;
        }
        let everyone_has = |origin: &str, seq: u64| acked.iter().all(|vv| vv.get(origin).is_some_and(|&s| s >= seq));
        let doomed: Vec<EntryKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.value.is_none() && everyone_has(&e.stamp.origin, e.seq))
            .map(|(k, _)| k.clone())
            .collect();
        self.drop_tombstones(&doomed)
    }

    /// Drops tombstones stamped before `horizon`, whoever has seen them:
    /// the time-based policy (like Cassandra's `gc_grace_seconds`) for when
    /// the version vectors of every member are not at hand. A peer that
    /// has not seen a dropped tombstone is told it needs a snapshot. Returns
    /// how many were dropped.
    pub fn collect_tombstones_before(&mut self, horizon: Hlc) -> usize {
        // Only within each origin's contiguous prefix: the floor must not
        // jump over a gap, or a missing lower write arriving later would be
        // taken for collected and dropped.
        let doomed: Vec<EntryKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.value.is_none() && e.stamp.hlc < horizon)
            .filter(|(_, e)| self.seen.get(&e.stamp.origin).is_some_and(|s| e.seq <= s.contiguous()))
            .map(|(k, _)| k.clone())
            .collect();
        self.drop_tombstones(&doomed)
    }

    /// Removes the tombstones at `keys` and raises each origin's collected
    /// floor past them. Returns how many were removed.
    fn drop_tombstones(&mut self, keys: &[EntryKey]) -> usize {
        for k in keys {
            if let Some(e) = self.entries.remove(k) {
                if let Some(ws) = self.winners.get_mut(&e.stamp.origin) {
                    ws.remove(&e.seq);
                }
                let c = self.collected.entry(e.stamp.origin.clone()).or_insert(0);
                *c = (*c).max(e.seq);
            }
        }
        keys.len()
    }

    /// Tombstones held.
    pub fn tombstones(&self) -> usize {
        self.entries.values().filter(|e| e.value.is_none()).count()
    }

    /// A digest of the served data (live RRsets, not tombstones or stamps):
    /// equal on two replicas that answer alike. Order-independent.
    pub fn digest(&self) -> u64 {
        rrsets_digest(self.rrsets())
    }

    /// A serial for the zone's SOA as served by this node: the number of
    /// writes held, which only grows on a node and is equal on two nodes
    /// holding the same writes (RFC 1982 arithmetic copes with the wrap).
    pub fn serial(&self) -> u32 {
        let n = self
            .seen
            .values()
            .fold(0u64, |acc, s| acc.wrapping_add(s.contiguous()).wrapping_add(s.beyond().count() as u64));
        n as u32
    }

    /// The whole replica, for a peer or for the disk.
    pub fn snapshot(&self) -> Snapshot {
        let mut origins: BTreeMap<NodeId, OriginState> = self
            .seen
            .iter()
            .map(|(o, s)| {
                let st = OriginState {
                    contiguous: s.contiguous(),
                    beyond: s.beyond().collect(),
                    collected: self.collected.get(o).copied().unwrap_or(0),
                };
                (o.clone(), st)
            })
            .collect();
        for (o, &c) in &self.collected {
            origins.entry(o.clone()).or_default().collected = c;
        }
        let writes = self
            .entries
            .iter()
            .map(|(k, e)| Write {
                origin: e.stamp.origin.clone(),
                seq: e.seq,
                hlc: e.stamp.hlc,
                key: k.clone(),
                value: e.value.clone(),
            })
            .collect();
        Snapshot { origins, writes }
    }

    /// Rebuilds a replica from a snapshot. Every entry must be a write the
    /// snapshot says it holds, and keys must be unique.
    pub fn from_snapshot(snap: Snapshot) -> Result<ZoneReplica, BadSnapshot> {
        let mut r = ZoneReplica::new();
        for (o, st) in &snap.origins {
            let mut set = SeqSet::up_to(st.contiguous);
            for &b in &st.beyond {
                if b <= st.contiguous {
                    return Err(BadSnapshot("a number above the prefix is inside it"));
                }
                set.insert(b);
            }
            r.seen.insert(o.clone(), set);
            if st.collected > 0 {
                r.collected.insert(o.clone(), st.collected);
            }
        }
        for w in snap.writes {
            if !r.seen.get(&w.origin).is_some_and(|s| s.contains(w.seq)) {
                return Err(BadSnapshot("an entry whose write the snapshot does not hold"));
            }
            if r.entries.contains_key(&w.key) {
                return Err(BadSnapshot("two entries for one key"));
            }
            r.offer(w);
        }
        Ok(r)
    }

    /// Catches up from a peer's snapshot (when deltas cannot: the peer has
    /// collected tombstones this replica has not seen). The result holds
    /// the snapshot's state, plus this replica's own writes the snapshot
    /// does not hold. Entries the snapshot's knowledge covers but does not
    /// list (collected tombstones, superseded writes) are dropped, which is
    /// the point: a delete this replica missed is not undone.
    pub fn adopt_snapshot(&mut self, snap: Snapshot) -> Result<(), BadSnapshot> {
        let mut next = ZoneReplica::from_snapshot(snap)?;
        let mine = std::mem::take(&mut self.entries);
        for (k, e) in mine {
            let held = next.seen.get(&e.stamp.origin).is_some_and(|s| s.contains(e.seq));
            if !held {
                next.apply(Write { origin: e.stamp.origin, seq: e.seq, hlc: e.stamp.hlc, key: k, value: e.value });
            }
        }
        for (o, st) in &self.seen {
            let set = next.seen.entry(o.clone()).or_default();
            set.insert_range(1, st.contiguous());
            for b in st.beyond() {
                set.insert(b);
            }
        }
        for (o, &c) in &self.collected {
            let n = next.collected.entry(o.clone()).or_insert(0);
            *n = (*n).max(c);
        }
        *self = next;
        Ok(())
    }

    /// The origins this replica has heard of.
    pub fn origins(&self) -> BTreeSet<&NodeId> {
        self.seen.keys().collect()
    }
}

/// An order-independent digest of RRsets: equal for equal sets, whatever
/// order they come in (what [`ZoneReplica::digest`] and a node's view of a
/// zone both use).
pub fn rrsets_digest<'a>(rrsets: impl IntoIterator<Item = (&'a EntryKey, &'a RRset)>) -> u64 {
    rrsets.into_iter().fold(0u64, |acc, (k, v)| acc.wrapping_add(rrset_digest(k, v)))
}

/// One RRset's share of [`rrsets_digest`]: the digest is their wrapping
/// sum, so it can be kept up to date change by change.
pub fn rrset_digest(k: &EntryKey, v: &RRset) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&k.owner);
    h.update(&k.rtype.to_be_bytes());
    h.update(&v.ttl.to_be_bytes());
    for r in &v.rdata {
        h.update(&(r.len() as u32).to_be_bytes());
        h.update(r);
    }
    h.digest()
}
