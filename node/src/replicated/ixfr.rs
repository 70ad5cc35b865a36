//! Incremental zone transfer history (RFC 1995) for replicated zones.
//!
//! Every time a replicated zone is served anew, the RRsets that changed
//! since the version served before are turned into one IXFR *step*: the
//! old SOA, the records removed, the new SOA, the records added (RFC 1995
//! §4). The changes are known by key as they are applied (see
//! [`Pending`]), so a step costs what the change costs, not what the zone
//! holds: a one-record change to a million-record zone is a one-record step.
//!
//! A history keeps the most recent steps, bounded in count and bytes. A
//! secondary whose serial is not the start of a step it can chain from
//! (too old, or a serial this node never served) gets the whole zone, as
//! RFC 1995 §4 allows. Changes that cannot be told key by key (a snapshot
//! adopted from a peer, a zone deleted and created again) clear the
//! history: the next transfer is a whole zone, never a wrong increment.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use meshdns_replication::{EntryKey, RRset};

/// One resource record as served: owner (wire form, lower case), type,
/// TTL, RDATA.
pub type Record = (Vec<u8>, u16, u32, Vec<u8>);

/// One changed key: its value as served before, and now.
pub(crate) type Changed = (EntryKey, Option<RRset>, Option<RRset>);

/// Steps kept per zone.
const MAX_STEPS: usize = 512;
/// Bytes of records kept per zone, over its steps.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// SOA.
const SOA: u16 = 6;

/// What changed in a zone since it was last served.
#[derive(Debug)]
pub(crate) enum Pending {
    /// These keys, with the value each had when the zone was last served.
    Keys(BTreeMap<EntryKey, Option<RRset>>),
    /// Too much to tell key by key: the history starts again.
    Whole,
}

impl Pending {
    /// Notes that `key` is about to change from `before` (its value as
    /// last served, unless an earlier change is already noted).
    pub(crate) fn note(&mut self, key: &EntryKey, before: impl FnOnce() -> Option<RRset>) {
        if let Pending::Keys(keys) = self
            && !keys.contains_key(key)
        {
            keys.insert(key.clone(), before());
        }
    }
}

/// One version of a zone to the next (RFC 1995 §4: old SOA, deletions,
/// new SOA, additions).
#[derive(Debug)]
pub struct Step {
    /// The SOA of the version the step starts from.
    pub old_soa: Record,
    /// Records in the old version and not in the new one.
    pub removed: Vec<Record>,
    /// The SOA of the version the step leads to.
    pub new_soa: Record,
    /// Records in the new version and not in the old one.
    pub added: Vec<Record>,
}

impl Step {
    fn start_serial(&self) -> Option<u32> {
        soa_serial(&self.old_soa.3)
    }

    fn end_serial(&self) -> Option<u32> {
        soa_serial(&self.new_soa.3)
    }

    fn bytes(&self) -> usize {
        let size = |r: &Record| r.0.len() + r.3.len() + 10;
        self.removed.iter().chain(&self.added).map(size).sum::<usize>() + size(&self.old_soa) + size(&self.new_soa)
    }
}

/// The serial field of SOA RDATA (RFC 1035 §3.3.13: the first of the five
/// 32-bit fields that end it).
pub fn soa_serial(rdata: &[u8]) -> Option<u32> {
    let at = rdata.len().checked_sub(20)?;
    Some(u32::from_be_bytes(rdata.get(at..at + 4)?.try_into().ok()?))
}

/// The recent steps of one zone.
#[derive(Debug, Default)]
pub struct History {
    /// The SOA last served, if the zone is served.
    served_soa: Option<Record>,
    steps: VecDeque<Arc<Step>>,
    bytes: usize,
}

impl History {
    /// The zone is served anew with `soa`; `changed` holds each changed
    /// key's value before and now (`None` when the change cannot be told
    /// key by key, or the zone stopped being served).
    pub(crate) fn served(&mut self, soa: Option<Record>, changed: Option<Vec<Changed>>) {
        let (Some(old_soa), Some(new_soa), Some(changed)) = (self.served_soa.take(), soa.clone(), changed) else {
            self.clear();
            self.served_soa = soa;
            return;
        };
        self.served_soa = soa;
        if old_soa == new_soa && changed.is_empty() {
            return;
        }
        if soa_serial(&old_soa.3) == soa_serial(&new_soa.3) {
            // A change without a new serial cannot be an increment.
            self.clear();
            return;
        }
        let mut step = Step { old_soa, removed: Vec::new(), new_soa, added: Vec::new() };
        for (key, before, after) in changed {
            if key.rtype == SOA {
                continue; // carried by the step's SOAs
            }
            diff_rrset(&key, before.as_ref(), after.as_ref(), &mut step.removed, &mut step.added);
        }
        self.bytes += step.bytes();
        self.steps.push_back(Arc::new(step));
        while self.steps.len() > MAX_STEPS || (self.bytes > MAX_BYTES && self.steps.len() > 1) {
            if let Some(old) = self.steps.pop_front() {
                self.bytes -= old.bytes();
            }
        }
        if self.bytes > MAX_BYTES {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.steps.clear();
        self.bytes = 0;
    }

    /// The steps from serial `from` to serial `to`, if the history holds
    /// an unbroken chain between them.
    pub fn chain(&self, from: u32, to: u32) -> Option<Vec<Arc<Step>>> {
        let start = self.steps.iter().position(|s| s.start_serial() == Some(from))?;
        let mut out = Vec::new();
        let mut at = from;
        for s in self.steps.iter().skip(start) {
            if s.start_serial() != Some(at) {
                return None;
            }
            out.push(s.clone());
            at = s.end_serial()?;
            if at == to {
                return Some(out);
            }
        }
        None
    }

    /// Steps held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step is held.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Adds to `removed` and `added` what turns `before` into `after`. A TTL
/// change replaces every record of the set: the TTL is part of each RR.
fn diff_rrset(
    key: &EntryKey,
    before: Option<&RRset>,
    after: Option<&RRset>,
    removed: &mut Vec<Record>,
    added: &mut Vec<Record>,
) {
    let same_ttl = matches!((before, after), (Some(b), Some(a)) if a.ttl == b.ttl);
    let record = |set: &RRset, r: &Vec<u8>| (key.owner.clone(), key.rtype, set.ttl, r.clone());
    if let Some(b) = before {
        for r in &b.rdata {
            if !(same_ttl && after.is_some_and(|a| a.rdata.contains(r))) {
                removed.push(record(b, r));
            }
        }
    }
    if let Some(a) = after {
        for r in &a.rdata {
            if !(same_ttl && before.is_some_and(|b| b.rdata.contains(r))) {
                added.push(record(a, r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soa(serial: u32) -> Record {
        let mut rdata = b"\x02ns\x00\x0ahostmaster\x00".to_vec();
        for v in [serial, 3600, 600, 86400, 300] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        (b"\x00".to_vec(), SOA, 300, rdata)
    }

    fn key(owner: &str) -> EntryKey {
        EntryKey { owner: format!("\x03{owner}\x00").into_bytes(), rtype: 1 }
    }

    fn a(ttl: u32, last: &[u8]) -> RRset {
        RRset::new(ttl, last.iter().map(|l| vec![192, 0, 2, *l]).collect())
    }

    #[test]
    fn rfc1995_4_a_step_holds_only_what_changed() {
        let mut h = History::default();
        h.served(Some(soa(1)), None);
        h.served(Some(soa(2)), Some(vec![(key("www"), Some(a(300, &[1, 2])), Some(a(300, &[2, 3])))]));
        let steps = h.chain(1, 2).expect("a chain from 1 to 2");
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].removed, vec![(key("www").owner, 1, 300, vec![192, 0, 2, 1])]);
        assert_eq!(steps[0].added, vec![(key("www").owner, 1, 300, vec![192, 0, 2, 3])]);
        // A TTL change replaces every record of the set.
        h.served(Some(soa(3)), Some(vec![(key("www"), Some(a(300, &[2, 3])), Some(a(60, &[2, 3])))]));
        let steps = h.chain(2, 3).unwrap();
        assert_eq!((steps[0].removed.len(), steps[0].added.len()), (2, 2));
        assert_eq!(h.chain(1, 3).unwrap().len(), 2);
        assert!(h.chain(3, 3).is_none(), "no step starts at the current serial");
        assert!(h.chain(7, 3).is_none(), "a serial never served");
    }

    #[test]
    fn a_change_that_cannot_be_told_by_key_clears_the_history() {
        let mut h = History::default();
        h.served(Some(soa(1)), None);
        h.served(Some(soa(2)), Some(vec![(key("www"), None, Some(a(300, &[1])))]));
        assert_eq!(h.len(), 1);
        h.served(Some(soa(5)), None);
        assert!(h.is_empty());
        assert!(h.chain(1, 5).is_none());
        // A zone that stops being served, then comes back, starts afresh.
        h.served(None, None);
        h.served(Some(soa(6)), Some(Vec::new()));
        assert!(h.is_empty());
    }

    #[test]
    fn the_history_is_bounded() {
        let mut h = History::default();
        h.served(Some(soa(0)), None);
        for s in 1..=(MAX_STEPS as u32 + 10) {
            h.served(Some(soa(s)), Some(vec![(key("www"), Some(a(300, &[1])), Some(a(300, &[2])))]));
        }
        assert_eq!(h.len(), MAX_STEPS);
        assert!(h.chain(0, MAX_STEPS as u32 + 10).is_none(), "the oldest steps are gone");
        assert!(h.chain(10, MAX_STEPS as u32 + 10).is_some());
    }
}
