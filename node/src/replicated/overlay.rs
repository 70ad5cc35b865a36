//! Which replicated changes are answered from the zone's overlay at once
//! (see [`crate::zone::overlay`]), and what goes into it.
//!
//! A change qualifies when its answer is exactly "this RRset at this
//! name", judged against the snapshot being served:
//! - it sets (does not delete) an RRset of a type in
//!   [`OVERLAY_TYPES`](crate::zone::overlay::OVERLAY_TYPES);
//! - the zone is unsigned (no RRSIG at its apex);
//! - the owner already exists with data, and is not a wildcard, a cut,
//!   below a cut or DNAME, or a CNAME owner; or it is a new leaf whose
//!   parent exists, is not below a cut or DNAME, is not a cut itself
//!   (the apex excepted), and has no wildcard child.
//!
//! Then no other answer in the zone changes: a new leaf adds one name
//! and no empty non-terminal, no referral, alias or synthesis depends on
//! it, and no additional-section data follows from it. Every other change recompiles
//! the zone before it is acknowledged, as before.

use meshdns_replication::{EntryKey, RRset};

use crate::zone::overlay::{OVERLAY_TYPES, OverlayRRset};
use crate::zone::snapshot::{Snapshot, flags};

/// RRSIG.
const RRSIG: u16 = 46;
/// SOA.
const SOA: u16 = 6;

/// Whether setting `key` to `value` in the zone `snap` serves can be
/// answered from the overlay (see the module docs).
pub(crate) fn fits(snap: &Snapshot, key: &EntryKey, value: Option<&RRset>) -> bool {
    value.is_some() && fits_name(snap, &key.owner, key.rtype)
}

/// Whether an entry an overlay holds still fits `snap` (after a recompile
/// that others may have changed the zone for). The zone's SOA always does.
pub(crate) fn entry_fits(snap: &Snapshot, owner: &[u8], rtype: u16) -> bool {
    rtype == SOA || fits_name(snap, owner, rtype)
}

/// [`fits`] for setting an RRset of `rtype` at `owner`.
fn fits_name(snap: &Snapshot, owner: &[u8], rtype: u16) -> bool {
    if !OVERLAY_TYPES.contains(&rtype) {
        return false;
    }
    let Some(apex) = snap.node(snap.apex()) else { return false };
    if snap.rrset_at(&apex, RRSIG).is_some() {
        return false;
    }
    let origin = snap.origin();
    let Some(rel_len) = owner.len().checked_sub(origin.len()) else { return false };
    if owner.get(rel_len..) != Some(origin) || owner.starts_with(b"\x01*") {
        return false;
    }
    let excluded = flags::CUT | flags::OCCLUDED | flags::CNAME | flags::DNAME;
    match snap.find(&owner[..rel_len]) {
        Some((_, node)) => node.flags() & flags::HAS_DATA != 0 && node.flags() & excluded == 0,
        None => {
            // A new leaf: its parent must exist, plain (the apex may be a
            // cut), with no wildcard child whose synthesis it would end.
            let Some(&first) = owner.first() else { return false };
            let Some(parent) = owner.get(1 + first as usize..) else { return false };
            let Some(parent_rel) = parent.len().checked_sub(origin.len()) else { return false };
            let Some((_, p)) = snap.find(&parent[..parent_rel]) else { return false };
            let cut_ok = parent_rel == 0 || p.flags() & flags::CUT == 0;
            cut_ok && p.flags() & (flags::OCCLUDED | flags::DNAME | flags::WILDCARD_CHILD) == 0
        }
    }
}

/// The overlay entry for a key's value as it now stands.
pub(crate) fn entry(seq: u64, value: &RRset) -> OverlayRRset {
    OverlayRRset { seq, ttl: value.ttl, rdata: value.rdata.clone() }
}
