//! Recent changes served beside a compiled zone, so a one-record change to
//! a large zone is answered at once instead of after a full recompile.
//!
//! An [`Overlay`] belongs to one [`Snapshot`](super::snapshot::Snapshot) and
//! holds whole RRsets by (owner, type), each stamped with the replication
//! sequence that produced it. Readers look up a key without a lock (a
//! `crossbeam-skiplist` map); the query path asks only when the overlay is
//! not empty, so zones without recent changes pay nothing. A background
//! compaction builds the next snapshot from the full state and hands over
//! the entries newer than what it compiled.
//!
//! Only changes whose answer is exactly "this RRset at this name" may go
//! into an overlay (see [`OVERLAY_TYPES`] and the checks of the replicated
//! zones' writer): the name already exists and stays, no cut, CNAME,
//! DNAME or wildcard is involved, the zone is unsigned, and the type
//! causes no additional-section processing. Everything else waits for the
//! recompile, so the answer engine needs only three small hooks: the
//! RRset of an exact name, the zone's SOA, and the addresses of glue.

use std::sync::Arc;

use crossbeam_skiplist::SkipMap;

use crate::dns::wire::name::MAX_NAME_LEN;

/// Types an overlay may hold besides the SOA: data that answers exactly
/// its own question (RFC 1035 A, TXT, PTR; RFC 3596 AAAA; RFC 8659 CAA;
/// RFC 4255 SSHFP; RFC 6698 TLSA).
pub const OVERLAY_TYPES: [u16; 7] = [1, 28, 16, 12, 257, 44, 52];

/// One RRset in an overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayRRset {
    /// The replication sequence that produced it: a newer one wins.
    pub seq: u64,
    /// TTL.
    pub ttl: u32,
    /// RDATA of each record.
    pub rdata: Vec<Vec<u8>>,
}

/// RRsets changed since the snapshot they sit beside was compiled.
#[derive(Debug, Default)]
pub struct Overlay {
    /// Key: owner (lower-case wire form) followed by the type, big-endian.
    entries: SkipMap<Box<[u8]>, Arc<OverlayRRset>>,
}

/// A lookup key built on the stack.
fn key(owner: &[u8], rtype: u16, buf: &mut [u8; MAX_NAME_LEN + 2]) -> Option<usize> {
    let len = owner.len() + 2;
    buf.get_mut(..owner.len())?.copy_from_slice(owner);
    buf.get_mut(owner.len()..len)?.copy_from_slice(&rtype.to_be_bytes());
    Some(len)
}

impl Overlay {
    /// Whether nothing is held (the query path's only cost then).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// RRsets held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The RRset of `owner` (lower-case wire form) and `rtype`, if held.
    pub fn get(&self, owner: &[u8], rtype: u16) -> Option<Arc<OverlayRRset>> {
        let mut buf = [0u8; MAX_NAME_LEN + 2];
        let len = key(owner, rtype, &mut buf)?;
        self.entries.get(&buf[..len]).map(|e| e.value().clone())
    }

    /// The RRsets held for `owner`, by type (in type order).
    pub fn at_owner(&self, owner: &[u8]) -> Vec<(u16, Arc<OverlayRRset>)> {
        let mut out = Vec::new();
        for e in self.entries.range::<[u8], _>((std::ops::Bound::Included(owner), std::ops::Bound::Unbounded)) {
            let k = e.key();
            if k.len() != owner.len() + 2 || !k.starts_with(owner) {
                break;
            }
            out.push((u16::from_be_bytes([k[owner.len()], k[owner.len() + 1]]), e.value().clone()));
        }
        out
    }

    /// Holds `rrset` for (`owner`, `rtype`) unless a newer one is held.
    /// Writers must be serialised by the caller (one check-then-insert).
    pub fn insert(&self, owner: &[u8], rtype: u16, rrset: OverlayRRset) {
        if self.get(owner, rtype).is_some_and(|held| held.seq >= rrset.seq) {
            return;
        }
        let mut k = owner.to_vec();
        k.extend_from_slice(&rtype.to_be_bytes());
        self.entries.insert(k.into_boxed_slice(), Arc::new(rrset));
    }

    /// Every entry newer than `seq`: (owner, type, RRset).
    pub fn newer_than(&self, seq: u64) -> Vec<(Vec<u8>, u16, OverlayRRset)> {
        self.entries
            .iter()
            .filter(|e| e.value().seq > seq)
            .filter_map(|e| {
                let k = e.key();
                let split = k.len().checked_sub(2)?;
                let rtype = u16::from_be_bytes([k[split], k[split + 1]]);
                Some((k[..split].to_vec(), rtype, (**e.value()).clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_sequence_wins_and_entries_are_found_by_name_and_type() {
        let o = Overlay::default();
        assert!(o.is_empty());
        let www = b"\x03www\x07example\x00";
        o.insert(www, 1, OverlayRRset { seq: 5, ttl: 60, rdata: vec![vec![192, 0, 2, 1]] });
        o.insert(www, 1, OverlayRRset { seq: 4, ttl: 60, rdata: vec![vec![192, 0, 2, 9]] });
        assert_eq!(o.get(www, 1).unwrap().rdata, vec![vec![192, 0, 2, 1]], "an older write does not replace a newer");
        assert!(o.get(www, 28).is_none());
        assert!(o.get(b"\x03www\x00", 1).is_none());
        o.insert(www, 28, OverlayRRset { seq: 7, ttl: 60, rdata: vec![vec![0; 16]] });
        assert_eq!(o.len(), 2);
        assert_eq!(o.at_owner(www).iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![1, 28]);
        assert!(o.at_owner(b"\x03www\x00").is_empty());
        assert!(o.at_owner(b"\x02ww\x07example\x00").is_empty());
        let newer = o.newer_than(5);
        assert_eq!(newer.len(), 1);
        assert_eq!((newer[0].0.as_slice(), newer[0].1), (&www[..], 28));
    }
}
