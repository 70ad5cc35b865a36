//! NSEC3 in the aggressive index (RFC 8198 §5.2): the closest encloser
//! proof of RFC 5155 §8.4 built from held records. Records with opt-out
//! set are never held (an unsigned delegation may hide in their span,
//! RFC 5155 §6), nor records above the iteration limit (RFC 9276 §3.2).

use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC3};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Held, Zone, nodata_allowed};
use crate::dnssec::nsec3::MAX_ITERATIONS;
use crate::types::Millis;

/// The hash parameters of a zone's NSEC3 chain (RFC 5155 §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Params {
    alg: Nsec3HashAlgorithm,
    salt: Vec<u8>,
    iterations: u16,
}

impl Params {
    /// H(name) (RFC 5155 §5).
    fn hash(&self, name: &Name) -> Option<Vec<u8>> {
        self.alg.hash(&self.salt, &name.to_lowercase(), self.iterations).ok().map(|d| d.as_ref().to_vec())
    }
}

fn rdata(r: &Record) -> Option<&NSEC3> {
    match r.data() {
        RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some(n),
        _ => None,
    }
}

fn held_rdata(h: &Held) -> Option<&NSEC3> {
    h.records.iter().find_map(rdata)
}

/// The hash an NSEC3 owner name carries: its first label, base32hex.
pub(super) fn owner_hash(owner: &Name) -> Option<Vec<u8>> {
    let label = owner.iter().next()?;
    data_encoding::BASE32HEX_NOPAD.decode(&label.to_ascii_uppercase()).ok()
}

/// The owner hash and parameters of `record` (at `owner`), if it may be
/// held: not opt-out, iterations within the limit.
pub(super) fn usable(owner: &Name, record: &Record) -> Option<(Vec<u8>, Params)> {
    let n = rdata(record)?;
    if n.opt_out() || n.iterations() > MAX_ITERATIONS {
        return None;
    }
    let params = Params { alg: n.hash_algorithm(), salt: n.salt().to_vec(), iterations: n.iterations() };
    Some((owner_hash(owner)?, params))
}

/// The held NSEC3 records proving `name`/`qtype` absent in `zone` (apex
/// `apex`): NXDOMAIN (true) or NODATA (false), and the entries used.
pub(super) fn proof<'a>(
    zone: &'a Zone,
    apex: &Name,
    name: &Name,
    qtype: RecordType,
    now: Millis,
) -> Option<(bool, Vec<&'a Held>)> {
    let params = zone.nsec3_params.as_ref()?;
    if zone.nsec3.is_empty() || !apex.zone_of(name) {
        return None;
    }
    let matching = |n: &Name| params.hash(n).and_then(|h| zone.nsec3.get(&h)).filter(|x| x.live(now));
    let covering = |n: &Name| -> Option<&'a Held> {
        let h = params.hash(n)?;
        // The span before the hash, or the last one (it wraps to the first).
        let (owner, held) = zone.nsec3.range(..h.clone()).next_back().or_else(|| zone.nsec3.iter().next_back())?;
        let next = held_rdata(held)?.next_hashed_owner_name();
        let covers =
            if owner.as_slice() < next { *owner < h && h.as_slice() < next } else { h > *owner || h.as_slice() < next };
        (covers && held.live(now)).then_some(held)
    };
    if let Some(m) = matching(name) {
        let n = held_rdata(m)?;
        return nodata_allowed(|t| n.type_bit_maps().any(|x| x == t), name, qtype).then(|| (false, vec![m]));
    }
    if name == apex {
        return None;
    }
    // RFC 5155 §8.3: the closest encloser matches, its next closer name is
    // covered; §8.4: and the wildcard at the closest encloser is covered.
    let mut ce = name.base_name();
    let ce_held = loop {
        if let Some(m) = matching(&ce) {
            break m;
        }
        if ce == *apex || ce.is_root() {
            return None;
        }
        ce = ce.base_name();
    };
    let n = held_rdata(ce_held)?;
    let has = |t: RecordType| n.type_bit_maps().any(|x| x == t);
    if (has(RecordType::NS) && !has(RecordType::SOA)) || has(super::super::rrset::DNAME) {
        return None; // the closest encloser cannot be a delegation or DNAME
    }
    let next_closer = name.trim_to(usize::from(ce.num_labels()) + 1);
    let cover = covering(&next_closer)?;
    let wildcard = ce.prepend_label("*").ok()?;
    if matching(&wildcard).is_some() {
        return None;
    }
    let w_cover = covering(&wildcard)?;
    let mut used = vec![ce_held];
    for h in [cover, w_cover] {
        if !used.iter().any(|u| std::ptr::eq(*u, h)) {
            used.push(h);
        }
    }
    Some((true, used))
}
