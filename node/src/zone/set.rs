//! The set of zones being served, swapped in whole on every change.
//!
//! A [`ZoneSet`] is immutable. Loading or reloading builds a new one and
//! stores it in the [`ZoneStore`](super::store::ZoneStore)'s `ArcSwap`, so the
//! query path reads the current set with one atomic load and never locks.

use std::collections::HashMap;
use std::sync::Arc;

use super::snapshot::Snapshot;
use crate::dns::wire::name::MAX_LABELS;
use crate::dns::wire::name::label_starts;

/// Above this many zones, [`ZoneSet::find`] hashes suffixes instead of scanning.
const SCAN_LIMIT: usize = 8;

/// Immutable set of served zones.
#[derive(Debug, Default)]
pub struct ZoneSet {
    /// Zones sorted by origin length, longest first.
    zones: Vec<Arc<Snapshot>>,
    by_origin: HashMap<Box<[u8]>, usize>,
}

impl ZoneSet {
    /// Builds a set. Origins must be distinct (the store guarantees it).
    pub fn new(mut zones: Vec<Arc<Snapshot>>) -> Self {
        zones.sort_by(|a, b| b.origin().len().cmp(&a.origin().len()).then_with(|| a.origin().cmp(b.origin())));
        let by_origin = zones.iter().enumerate().map(|(i, z)| (z.origin().into(), i)).collect();
        ZoneSet { zones, by_origin }
    }

    /// All zones, longest origin first.
    pub fn zones(&self) -> &[Arc<Snapshot>] {
        &self.zones
    }

    /// The zone with exactly this origin.
    pub fn get(&self, origin: &[u8]) -> Option<&Arc<Snapshot>> {
        self.by_origin.get(origin).map(|&i| &self.zones[i])
    }

    /// The zone closest to `qname` (lower-cased wire): the one with the
    /// longest origin that `qname` is at or below.
    ///
    /// With `parent_side`, a zone whose origin *is* `qname` is skipped when a
    /// zone above it is served too: DS records live on the parent side of a
    /// cut (RFC 4035 §3.1.4.1), so a DS query for a served zone's apex goes
    /// to its parent.
    pub fn find(&self, qname: &[u8], parent_side: bool) -> Option<&Snapshot> {
        let mut starts = [0u8; MAX_LABELS];
        let n = label_starts(qname, &mut starts);
        // With `parent_side`, the zone at exactly `qname` is only the fallback.
        let mut exact: Option<&Snapshot> = None;
        if self.zones.len() <= SCAN_LIMIT {
            for z in &self.zones {
                let o = z.origin();
                let under = o.len() <= qname.len()
                    && qname[qname.len() - o.len()..] == *o
                    && is_boundary(&starts[..n], qname.len(), qname.len() - o.len());
                if !under {
                    continue;
                }
                if parent_side && exact.is_none() && o.len() == qname.len() {
                    exact = Some(z);
                    continue;
                }
                return Some(z);
            }
            return exact;
        }
        let suffixes = starts[..n].iter().map(|&s| s as usize).chain(std::iter::once(qname.len() - 1));
        for start in suffixes {
            if let Some(&i) = self.by_origin.get(&qname[start..]) {
                if parent_side && start == 0 {
                    exact = Some(&self.zones[i]);
                    continue;
                }
                return Some(&self.zones[i]);
            }
        }
        exact
    }
}

/// Whether `at` is a label start of the name (or its root label).
fn is_boundary(starts: &[u8], name_len: usize, at: usize) -> bool {
    at + 1 == name_len || starts.iter().any(|&s| s as usize == at)
}
