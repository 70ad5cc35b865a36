//! What the iteration puts in the cache, at which rank (RFC 2181 §5.4.1)
//! and for how long (RFC 2181 §5.2, RFC 2308 §5).

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::rrset::group;
use super::validate::Mark;
use crate::cache::{Cache, NegativeEntry, Rank, RrsetEntry};
use crate::types::{Millis, Question, Resolved, Security};

/// Stores every RRset in `records` (RRSIGs attached) at `rank`.
pub(crate) fn store_rrsets(cache: &Cache, records: &[Record], rank: Rank, security: Security, now: Millis) {
    for s in group(records) {
        let ttl = s.ttl();
        let entry = RrsetEntry { records: s.records, rrsigs: s.rrsigs, security, rank };
        cache.insert_rrset(&s.name, s.rtype, entry, ttl, now);
    }
}

/// Stores a referral: the NS RRset (and any DS RRset) at rank Authority,
/// the glue at rank Additional. The glue was already checked to be inside
/// the delegated zone.
pub(crate) fn store_referral(
    cache: &Cache,
    cut: &Name,
    ns: &[Record],
    glue: &[Record],
    authority: &[Record],
    now: Millis,
) {
    store_rrsets(cache, ns, Rank::Authority, Security::Indeterminate, now);
    let ds: Vec<Record> = authority.iter().filter(|r| r.name() == cut).cloned().collect();
    let ds: Vec<Record> = ds
        .iter()
        .filter(|r| r.record_type() == RecordType::DS || super::rrset::covered_type(r) == Some(RecordType::DS))
        .cloned()
        .collect();
    store_rrsets(cache, &ds, Rank::Authority, Security::Indeterminate, now);
    store_rrsets(cache, glue, Rank::Additional, Security::Indeterminate, now);
}

/// RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM)
/// seconds; without a SOA it is not cached.
pub(crate) fn negative_ttl(authority: &[Record]) -> Option<u32> {
    authority.iter().find_map(|r| match r.data() {
        RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
        _ => None,
    })
}

/// Stores a negative answer for `q`.
pub(crate) fn store_negative(
    cache: &Cache,
    q: &Question,
    nxdomain: bool,
    authority: &[Record],
    security: Security,
    now: Millis,
) {
    if let Some(ttl) = negative_ttl(authority) {
        let entry = NegativeEntry { nxdomain, authority: authority.to_vec(), security };
        cache.insert_negative(q, entry, ttl, now);
    }
}

/// Records validation results in the cache, keeping each entry's rank
/// and remaining TTL: `marks` per RRset of the answer `res` to `q`, and
/// `overall` for the negative entry of a negative answer.
pub(crate) fn mark_security(
    cache: &Cache,
    q: &Question,
    res: &Resolved,
    marks: &[Mark],
    overall: Security,
    now: Millis,
) {
    for m in marks.iter().filter(|m| m.negative) {
        let q = Question::new(&m.name, m.rtype);
        match cache.negative(&q, now) {
            Some(hit) if hit.entry.security != m.security => {
                let entry = NegativeEntry { security: m.security, ..(*hit.entry).clone() };
                cache.insert_negative(&q, entry, hit.ttl_left, now);
            }
            Some(_) => {}
            None => {
                // A proof that came with a referral: kept as the negative
                // answer it is, for as long as its shortest record lives.
                let Some(proof) = &m.proof else { continue };
                let ttl = negative_ttl(proof).or_else(|| proof.iter().map(Record::ttl).min()).unwrap_or(0);
                let entry = NegativeEntry { nxdomain: false, authority: proof.clone(), security: m.security };
                cache.insert_negative(&q, entry, ttl, now);
            }
        }
    }
    for m in marks.iter().filter(|m| !m.negative) {
        if let Some(hit) = cache.rrset(&m.name, m.rtype, now)
            && hit.entry.security != m.security
        {
            let entry = RrsetEntry { security: m.security, ..(*hit.entry).clone() };
            let ttl = m.ttl.map_or(hit.ttl_left, |t| t.min(hit.ttl_left));
            cache.insert_rrset(&m.name, m.rtype, entry, ttl, now);
        }
    }
    let end = super::frame::chain_target(&res.answer).unwrap_or_else(|| q.name.clone());
    let nq = Question::new(&end, q.qtype);
    if let Some(hit) = cache.negative(&nq, now)
        && hit.entry.security != overall
    {
        let entry = NegativeEntry { security: overall, ..(*hit.entry).clone() };
        cache.insert_negative(&nq, entry, hit.ttl_left, now);
    }
}
