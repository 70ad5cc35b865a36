//! Which replicated changes are answered from the zone's overlay at once
//! (see [`crate::zone::overlay`]), and what goes into it.
//!
//! A change qualifies when its answer is exactly "this RRset at this
//! name", judged against the snapshot being served:
//! - it sets (does not delete) an RRset of a type in
//!   [`OVERLAY_TYPES`](crate::zone::overlay::OVERLAY_TYPES);
//! - the zone is unsigned (no RRSIG at its apex);
//! - the owner already exists with data, and is not a wildcard, a cut,
//!   below a cut or DNAME, or a CNAME owner.
//!
//! Then no other answer in the zone changes: no name appears or
//! disappears, no referral, alias or synthesis depends on it, and no
//! additional-section data follows from it. Every other change recompiles
//! the zone before it is acknowledged, as before.

use meshdns_replication::{EntryKey, RRset};

use crate::zone::overlay::{OVERLAY_TYPES, OverlayRRset};
use crate::zone::snapshot::{Snapshot, flags};

/// RRSIG.
const RRSIG: u16 = 46;

/// Whether setting `key` to `value` in the zone `snap` serves can be
/// answered from the overlay (see the module docs).
pub(crate) fn fits(snap: &Snapshot, key: &EntryKey, value: Option<&RRset>) -> bool {
    if value.is_none() || !OVERLAY_TYPES.contains(&key.rtype) {
        return false;
    }
    let Some(apex) = snap.node(snap.apex()) else { return false };
    if snap.rrset_at(&apex, RRSIG).is_some() {
        return false;
    }
    let origin = snap.origin();
    let Some(rel_len) = key.owner.len().checked_sub(origin.len()) else { return false };
    if key.owner.get(rel_len..) != Some(origin) || key.owner.starts_with(b"\x01*") {
        return false;
    }
    let Some((_, node)) = snap.find(&key.owner[..rel_len]) else { return false };
    let excluded = flags::CUT | flags::OCCLUDED | flags::CNAME | flags::DNAME;
    node.flags() & flags::HAS_DATA != 0 && node.flags() & excluded == 0
}

/// The overlay entry for a key's value as it now stands.
pub(crate) fn entry(seq: u64, value: &RRset) -> OverlayRRset {
    OverlayRRset { seq, ttl: value.ttl, rdata: value.rdata.clone() }
}
