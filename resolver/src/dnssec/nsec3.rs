//! Authenticated denial with NSEC3 (RFC 5155 §8), opt-out (§6), and the
//! iteration limit of RFC 9276 §3.2. The NSEC3 records given are already
//! validated by the caller.
//!
//! Iterations: a zone whose NSEC3 records have more than
//! [`MAX_ITERATIONS`] (150, Unbound's default) is treated as Insecure:
//! every proof fails with EDE 27 (Unsupported NSEC3 Iterations Value),
//! which [`super::is_insecure`] counts as Insecure. We do not go on to a
//! second, SERVFAIL limit: above 150 nothing is hashed at all, so there
//! is no cost to bound.

use std::cell::RefCell;
use std::collections::HashMap;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC3};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::denial::DNAME;
use crate::Ede;

/// Above this many extra iterations a zone is treated as Insecure
/// (RFC 9276 §3.2; Unbound's default).
pub const MAX_ITERATIONS: u16 = 150;

/// The NSEC3 in a record, if it is one.
pub(crate) fn nsec3(record: &Record) -> Option<&NSEC3> {
    match record.data() {
        RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some(n),
        _ => None,
    }
}

/// One NSEC3 record with its owner hash decoded.
struct Entry<'a> {
    owner: &'a Name,
    hash: Vec<u8>,
    rdata: &'a NSEC3,
}

/// The owner hash: the first label of an NSEC3 owner, base32hex.
fn owner_hash(owner: &Name) -> Option<Vec<u8>> {
    let label = owner.iter().next()?;
    let upper = label.to_ascii_uppercase();
    data_encoding::BASE32HEX_NOPAD.decode(&upper).ok()
}

/// H(name) under this record's parameters (RFC 5155 §5).
fn hash_with(n: &NSEC3, name: &Name) -> Option<Vec<u8>> {
    n.hash_algorithm().hash(n.salt(), name, n.iterations()).ok().map(|d| d.as_ref().to_vec())
}

/// Does the span of `e` cover `h` (strictly between owner and next hash,
/// wrapping at the end of the chain)?
fn span_covers(e: &Entry<'_>, h: &[u8]) -> bool {
    let next = e.rdata.next_hashed_owner_name();
    if e.hash.as_slice() < next { e.hash.as_slice() < h && h < next } else { h > e.hash.as_slice() || h < next }
}

fn missing(what: String) -> Ede {
    Ede::new(Ede::NSEC_MISSING, what)
}

fn bogus(what: String) -> Ede {
    Ede::new(Ede::DNSSEC_BOGUS, what)
}

fn has(n: &NSEC3, t: RecordType) -> bool {
    n.type_bit_maps().any(|x| x == t)
}

/// A name hashed with a salt and iteration count.
type HashKey = (Name, Vec<u8>, u16);

/// The NSEC3 records of `zone` (owner = one label below the apex).
pub(crate) struct Chain<'a> {
    zone: Name,
    entries: Vec<Entry<'a>>,
    /// Hashes already computed, by (name, salt, iterations): a zone's
    /// records share their parameters, so each name is hashed once, not
    /// once per record (up to 151 SHA-1 rounds each).
    memo: RefCell<HashMap<HashKey, Option<Vec<u8>>>>,
}

impl<'a> Chain<'a> {
    /// The NSEC3 records of `zone` in `authority`; `None` if there are
    /// none. EDE 27 when any has more than [`MAX_ITERATIONS`].
    pub(crate) fn new(zone: &Name, authority: &'a [Record]) -> Option<Result<Self, Ede>> {
        let mut entries = Vec::new();
        for r in authority {
            let Some(n) = nsec3(r) else { continue };
            if r.name().base_name() != *zone {
                continue;
            }
            if n.iterations() > MAX_ITERATIONS {
                return Some(Err(Ede::new(
                    Ede::UNSUPPORTED_NSEC3_ITERATIONS,
                    format!(
                        "NSEC3 of {zone} has {} iterations, above {MAX_ITERATIONS}: treated as insecure (RFC 9276)",
                        n.iterations()
                    ),
                )));
            }
            let Some(hash) = owner_hash(r.name()) else { continue };
            entries.push(Entry { owner: r.name(), hash, rdata: n });
        }
        if entries.is_empty() {
            None
        } else {
            Some(Ok(Chain { zone: zone.clone(), entries, memo: RefCell::default() }))
        }
    }

    fn hash(&self, n: &NSEC3, name: &Name) -> Option<Vec<u8>> {
        let key = (name.to_lowercase(), n.salt().to_vec(), n.iterations());
        if let Some(h) = self.memo.borrow().get(&key) {
            return h.clone();
        }
        let h = hash_with(n, name);
        self.memo.borrow_mut().insert(key, h.clone());
        h
    }

    fn matching(&self, name: &Name) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| self.hash(e.rdata, name).is_some_and(|h| h == e.hash))
    }

    fn covering(&self, name: &Name) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| self.hash(e.rdata, name).is_some_and(|h| span_covers(e, &h)))
    }

    /// RFC 5155 §8.3: the closest encloser of `qname` (an ancestor with a
    /// matching NSEC3) and the NSEC3 covering the next closer name.
    /// `qname` itself must not match.
    fn closest_encloser(&self, qname: &Name) -> Result<(Name, &Entry<'a>), Ede> {
        let zone = &self.zone;
        if !zone.zone_of(qname) {
            return Err(bogus(format!("{qname} is not in zone {zone}")));
        }
        if self.matching(qname).is_some() {
            return Err(bogus(format!("an NSEC3 shows {qname} exists")));
        }
        let mut candidate = qname.base_name();
        loop {
            if let Some(ce) = self.matching(&candidate) {
                // §8.3: the closest encloser cannot be a delegation or DNAME.
                let delegation = has(ce.rdata, RecordType::NS) && !has(ce.rdata, RecordType::SOA);
                if delegation || ce.rdata.type_bit_maps().any(|t| u16::from(t) == DNAME) {
                    return Err(bogus(format!(
                        "closest encloser {candidate} of {qname} is a delegation or DNAME ({})",
                        ce.owner
                    )));
                }
                let next_closer = qname.trim_to(usize::from(candidate.num_labels()) + 1);
                return match self.covering(&next_closer) {
                    Some(cover) => Ok((candidate, cover)),
                    None => Err(missing(format!("no NSEC3 covers next closer name {next_closer} of {qname}"))),
                };
            }
            if candidate == *zone || candidate.is_root() {
                return Err(missing(format!("no NSEC3 shows a closest encloser for {qname}")));
            }
            candidate = candidate.base_name();
        }
    }
}

/// RFC 5155 §8.4: closest encloser proof, and the wildcard at the closest
/// encloser covered. Also reports whether the next closer's cover has
/// opt-out set (then an unsigned delegation may exist in the span, RFC
/// 5155 §6, and the NXDOMAIN is only Insecure).
pub(crate) fn prove_nxdomain(qname: &Name, chain: &Chain<'_>) -> Result<bool, Ede> {
    let (ce, cover) = chain.closest_encloser(qname)?;
    let wildcard = ce.prepend_label("*").map_err(|e| bogus(format!("wildcard at {ce}: {e}")))?;
    if chain.matching(&wildcard).is_some() {
        return Err(bogus(format!("NXDOMAIN for {qname}, but wildcard {wildcard} exists")));
    }
    if chain.covering(&wildcard).is_none() {
        return Err(missing(format!("no NSEC3 covers wildcard {wildcard} for {qname}")));
    }
    Ok(cover.rdata.opt_out())
}

fn bitmap_denies(name: &Name, n: &NSEC3, qtype: RecordType) -> Result<(), Ede> {
    if has(n, qtype) {
        return Err(bogus(format!("NODATA for {name} {qtype}, but its NSEC3 lists {qtype}")));
    }
    if qtype != RecordType::CNAME && has(n, RecordType::CNAME) {
        return Err(bogus(format!("NODATA for {name} {qtype}, but its NSEC3 lists CNAME")));
    }
    let delegation = has(n, RecordType::NS) && !has(n, RecordType::SOA);
    if qtype == RecordType::DS {
        if has(n, RecordType::SOA) && !name.is_root() {
            return Err(bogus(format!("no-DS proof for {name} is the child zone's NSEC3")));
        }
    } else if delegation {
        return Err(bogus(format!("NODATA for {name} {qtype} from the parent side of a delegation")));
    }
    Ok(())
}

/// RFC 5155 §8.5–§8.7: a matching NSEC3 without `qtype`; for DS, an
/// opt-out span covering the next closer name (§8.6); or a wildcard
/// NODATA (§8.7).
pub(crate) fn prove_nodata(qname: &Name, qtype: RecordType, chain: &Chain<'_>) -> Result<(), Ede> {
    if let Some(m) = chain.matching(qname) {
        return bitmap_denies(qname, m.rdata, qtype);
    }
    let (ce, cover) = chain.closest_encloser(qname)?;
    if qtype == RecordType::DS {
        return if cover.rdata.opt_out() {
            Ok(())
        } else {
            Err(bogus(format!("no NSEC3 at {qname} and its span is not opt-out")))
        };
    }
    let wildcard = ce.prepend_label("*").map_err(|e| bogus(format!("wildcard at {ce}: {e}")))?;
    match chain.matching(&wildcard) {
        Some(w) => bitmap_denies(&wildcard, w.rdata, qtype),
        None => Err(missing(format!("no NSEC3 at {qname} nor at wildcard {wildcard} for {qtype}"))),
    }
}

/// RFC 5155 §8.8: the next closer name (below the wildcard's parent
/// towards `qname`) is covered.
pub(crate) fn prove_wildcard(qname: &Name, wildcard: &Name, chain: &Chain<'_>) -> Result<(), Ede> {
    let ce = wildcard.base_name();
    if !ce.zone_of(qname) || ce == *qname {
        return Err(bogus(format!("{qname} is not below the parent of wildcard {wildcard}")));
    }
    let next_closer = qname.trim_to(usize::from(ce.num_labels()) + 1);
    if chain.covering(&next_closer).is_none() {
        return Err(missing(format!("no NSEC3 covers {next_closer}: {qname} from {wildcard} not proven")));
    }
    Ok(())
}

/// Whether the wildcard proof for `qname` rests on an opt-out NSEC3: the
/// span covering the next closer name may hide an unsigned delegation
/// (RFC 5155 §9.2), so the answer cannot be called secure.
pub(crate) fn wildcard_opt_out(qname: &Name, wildcard: &Name, chain: &Chain<'_>) -> bool {
    let ce = wildcard.base_name();
    let next_closer = qname.trim_to(usize::from(ce.num_labels()) + 1);
    chain.covering(&next_closer).is_some_and(|c| c.rdata.opt_out())
}

/// RFC 5155 §8.6 / RFC 4035 §5.2: the NSEC3 at `child` has NS and
/// neither DS nor SOA; or, with no NSEC3 at `child`, the next closer name
/// is covered by an opt-out NSEC3.
pub(crate) fn prove_no_ds(child: &Name, chain: &Chain<'_>) -> Result<(), Ede> {
    if let Some(m) = chain.matching(child) {
        if has(m.rdata, RecordType::DS) {
            return Err(bogus(format!("NSEC3 at {child} lists DS: the delegation is signed")));
        }
        if !has(m.rdata, RecordType::NS) || has(m.rdata, RecordType::SOA) {
            return Err(bogus(format!("NSEC3 at {child} is not the parent side of a delegation")));
        }
        return Ok(());
    }
    let (_, cover) = chain.closest_encloser(child)?;
    if cover.rdata.opt_out() {
        Ok(())
    } else {
        Err(bogus(format!("no NSEC3 at {child} and the covering span is not opt-out")))
    }
}

/// RFC 8198 (aggressive use of the cache) for NSEC3: whether the
/// validated NSEC3 record `nsec3_record` covers `name` (its hash falls
/// strictly inside the record's span). `name` must be in the record's
/// zone. Synthesising NXDOMAIN needs the full §8.4 proof: a matching
/// closest encloser, its next closer covered, and the wildcard covered;
/// and never when the next closer's cover has opt-out set, since an
/// unsigned delegation may hide in an opt-out span (RFC 5155 §6).
/// Records above [`MAX_ITERATIONS`] never cover.
pub fn nsec3_covers(name: &Name, nsec3_record: &Record) -> bool {
    let Some(n) = nsec3(nsec3_record) else { return false };
    let zone = nsec3_record.name().base_name();
    if n.iterations() > MAX_ITERATIONS || !zone.zone_of(name) {
        return false;
    }
    let Some(hash) = owner_hash(nsec3_record.name()) else { return false };
    let e = Entry { owner: nsec3_record.name(), hash, rdata: n };
    hash_with(n, name).is_some_and(|h| span_covers(&e, &h))
}

/// Whether the validated NSEC3 record `nsec3_record` matches `name`
/// (the hash of `name` is its owner).
pub fn nsec3_matches(name: &Name, nsec3_record: &Record) -> bool {
    let Some(n) = nsec3(nsec3_record) else { return false };
    if n.iterations() > MAX_ITERATIONS {
        return false;
    }
    match (owner_hash(nsec3_record.name()), hash_with(n, name)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
