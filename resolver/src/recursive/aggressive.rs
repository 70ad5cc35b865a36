//! Aggressive use of the DNSSEC-validated cache (RFC 8198): validated NSEC
//! records prove the non-existence of every name they cover, not only of
//! the name that was asked, so a flood of random names under a signed
//! zone ("water torture") is answered from here after the first few
//! upstream denials.
//!
//! NSEC (RFC 8198 §5.1, §5.3) and NSEC3 (§5.2, in `nsec3`: the closest
//! encloser proof of RFC 5155 §8.4 from held records; opt-out records are
//! never held, RFC 5155 §6, nor records past the RFC 9276 iteration limit).
//!
//! What goes in: the NSEC/NSEC3 records (with their RRSIGs) of a negative or
//! wildcard answer the validator found Secure, each checked again here
//! against the signer's validated keys, and the zone's SOA for the
//! synthesised answers' authority section. What comes out: NXDOMAIN when
//! an NSEC covers the name *and* one covers the wildcard at its closest
//! encloser (RFC 8198 §5.1: without the latter a wildcard could answer),
//! NODATA when the NSEC at the name lacks the type and CNAME, or when
//! the name is an empty non-terminal. Every synthesised answer is also
//! run through the ordinary proof functions before it is used.
//!
//! Bounds: entries per zone, zones, and entries in all; past them new
//! records are not stored (after dropping expired ones). Lifetimes (RFC
//! 8198 §5.4, RFC 9077 §3): an entry lives no longer than its NSEC TTL,
//! the RRSIG's Original TTL and expiry, and the SOA's TTL and MINIMUM.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::{Name, RData, Record, RecordType};

mod nsec3;

use super::rrset::group;
use crate::dnssec::denial::closest_encloser;
use crate::dnssec::{nsec_covers, prove_nodata, prove_nxdomain, relies_on_opt_out, validate_rrset};
use crate::types::Millis;

/// NSEC records kept per zone.
pub(crate) const MAX_PER_ZONE: usize = 2048;
/// Zones kept.
pub(crate) const MAX_ZONES: usize = 1024;
/// NSEC records kept in all: an entry (NSEC, RRSIG, names) takes well
/// under 1 KiB, so the index stays within some 16 MiB.
pub(crate) const MAX_TOTAL: usize = 16_384;

/// A record (NSEC or SOA) with its RRSIGs, and when it stops being usable.
#[derive(Clone, Debug)]
struct Held {
    records: Vec<Record>,
    expires: Millis,
}

impl Held {
    fn live(&self, now: Millis) -> bool {
        self.expires > now
    }
}

#[derive(Default, Debug)]
struct Zone {
    /// The SOA and its RRSIGs; `neg_ttl` = min(SOA TTL, MINIMUM) (RFC 2308 §5).
    soa: Option<(Held, u32)>,
    /// NSEC records by owner, in canonical order (hickory's `Name` order
    /// is RFC 4034 §6.1's: labels compared right to left, case-folded).
    nsecs: BTreeMap<Name, Held>,
    /// NSEC3 records (never opt-out) by owner hash, all with `nsec3_params`.
    nsec3: BTreeMap<Vec<u8>, Held>,
    nsec3_params: Option<nsec3::Params>,
}

impl Zone {
    fn len(&self) -> usize {
        self.nsecs.len() + self.nsec3.len()
    }
}

/// Where an entry goes in its zone.
enum Key {
    Nsec(Name),
    Nsec3(Vec<u8>, nsec3::Params),
}

#[derive(Default, Debug)]
struct Inner {
    zones: HashMap<Name, Zone>,
    total: usize,
    last_purge: Option<Millis>,
}

/// A negative answer made from the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Synthesised {
    /// NXDOMAIN, or NODATA.
    pub(crate) nxdomain: bool,
    /// The SOA, the NSEC records and their RRSIGs, TTLs set to the time left.
    pub(crate) authority: Vec<Record>,
}

/// The index of validated NSEC records (see the module docs).
#[derive(Debug)]
pub(crate) struct AggressiveNsec {
    inner: RwLock<Inner>,
    hits: AtomicU64,
    limits: Limits,
}

/// The bounds of the index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) per_zone: usize,
    pub(crate) zones: usize,
    pub(crate) total: usize,
}

impl Default for AggressiveNsec {
    fn default() -> Self {
        AggressiveNsec::with_limits(Limits { per_zone: MAX_PER_ZONE, zones: MAX_ZONES, total: MAX_TOTAL })
    }
}

fn nsec_next(r: &Record) -> Option<&Name> {
    match r.data() {
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n)) => Some(n.next_domain_name()),
        _ => None,
    }
}

fn nsec_has(r: &Record, t: RecordType) -> bool {
    match r.data() {
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n)) => n.type_bit_maps().any(|x| x == t),
        _ => false,
    }
}

/// Types a NODATA can never be made for from a bitmap.
fn meta(t: RecordType) -> bool {
    matches!(t, RecordType::ANY | RecordType::AXFR | RecordType::IXFR | RecordType::OPT)
}

impl AggressiveNsec {
    /// An empty index with these bounds.
    pub(crate) fn with_limits(limits: Limits) -> Self {
        AggressiveNsec { inner: RwLock::default(), hits: AtomicU64::new(0), limits }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers synthesised so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Drops everything held (trust anchors were withdrawn: what they
    /// validated is no longer known to be secure).
    pub(crate) fn clear(&self) {
        *self.write() = Inner::default();
    }

    /// NSEC records held (live or not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.read().total
    }

    /// Takes in the denial records of a Secure answer from `zone`:
    /// `authority` holds NSEC records (and maybe the SOA) with RRSIGs;
    /// `keys` are `zone`'s validated DNSKEY records. Each RRset is checked
    /// against them again (a record already held with the same data is
    /// not), so nothing unvalidated gets in whatever the caller did.
    pub(crate) fn insert(&self, zone: &Name, authority: &[Record], keys: &[Record], now: Millis) {
        let now_s = now / 1000;
        let mut soa: Option<(Held, u32)> = None;
        let mut entries: Vec<(Key, Held)> = Vec::new();
        for s in group(authority) {
            if !zone.zone_of(&s.name) {
                continue;
            }
            let is_soa = s.rtype == RecordType::SOA && s.name == *zone;
            let key = match s.rtype {
                _ if is_soa => None,
                RecordType::NSEC if s.records.len() == 1 => Some(Key::Nsec(s.name.clone())),
                // Opt-out records and too many iterations stay out (nsec3::usable).
                RecordType::NSEC3 if s.records.len() == 1 && s.name.base_name() == *zone => {
                    let Some((hash, params)) = nsec3::usable(&s.name, &s.records[0]) else { continue };
                    Some(Key::Nsec3(hash, params))
                }
                _ => continue, // one NSEC/NSEC3 per owner (RFC 4034 §4, RFC 5155 §3)
            };
            if self.holds(zone, &s.name, s.rtype, &s.records, now) {
                continue; // e.g. the proof of an answer made here, validated again
            }
            let Ok(proof) = validate_rrset(&s.records, &s.rrsigs, keys, now_s) else { continue };
            if proof.signer != *zone || proof.wildcard.is_some() || proof.ttl == 0 {
                continue;
            }
            let mut records = s.records.clone();
            records.extend(s.rrsigs.iter().cloned());
            let held = Held { records, expires: now + u64::from(proof.ttl) * 1000 };
            if let Some(k) = key {
                entries.push((k, held));
            } else {
                let minimum = s.records.iter().find_map(|r| match r.data() {
                    RData::SOA(x) => Some(x.minimum()),
                    _ => None,
                });
                soa = minimum.map(|m| (held, m.min(proof.ttl)));
            }
        }
        if soa.is_none() && entries.is_empty() {
            return;
        }
        let mut inner = self.write();
        let limits = self.limits;
        if !inner.zones.contains_key(zone) && inner.zones.len() >= limits.zones {
            purge(&mut inner, now);
            if inner.zones.len() >= limits.zones {
                return;
            }
        }
        // RFC 9077 §3: an NSEC proves absence no longer than the SOA's
        // negative TTL; with the SOA at hand, cap the entries now.
        let cap = soa.as_ref().map(|(h, neg)| h.expires.min(now + u64::from(*neg) * 1000));
        for (key, mut held) in entries {
            if let Some(c) = cap {
                held.expires = held.expires.min(c);
            }
            if let Key::Nsec3(_, params) = &key {
                // New NSEC3 parameters (a re-salted zone): the old chain goes.
                let z = inner.zones.entry(zone.clone()).or_default();
                if z.nsec3_params.as_ref() != Some(params) {
                    let dropped = z.nsec3.len();
                    z.nsec3.clear();
                    z.nsec3_params = Some(params.clone());
                    inner.total -= dropped;
                }
            }
            let new = inner.zones.get(zone).is_none_or(|z| match &key {
                Key::Nsec(owner) => !z.nsecs.contains_key(owner),
                Key::Nsec3(hash, _) => !z.nsec3.contains_key(hash),
            });
            if new && !room(&inner, zone, limits) {
                purge(&mut inner, now);
                if !room(&inner, zone, limits) {
                    continue;
                }
            }
            let z = inner.zones.entry(zone.clone()).or_default();
            let old = match key {
                Key::Nsec(owner) => z.nsecs.insert(owner, held),
                Key::Nsec3(hash, _) => z.nsec3.insert(hash, held),
            };
            if old.is_none() {
                inner.total += 1;
            }
        }
        if let Some(s) = soa {
            inner.zones.entry(zone.clone()).or_default().soa = Some(s);
        }
    }

    /// Whether the live entry for `owner`/`rtype` (NSEC, or the apex SOA)
    /// in `zone` has these records.
    fn holds(&self, zone: &Name, owner: &Name, rtype: RecordType, records: &[Record], now: Millis) -> bool {
        let inner = self.read();
        let Some(z) = inner.zones.get(zone) else { return false };
        let held = match rtype {
            RecordType::SOA => z.soa.as_ref().map(|(h, _)| h),
            RecordType::NSEC3 => nsec3::owner_hash(owner).and_then(|h| z.nsec3.get(&h)),
            _ => z.nsecs.get(owner),
        };
        let Some(h) = held else { return false };
        h.live(now)
            && records
                .iter()
                .all(|r| h.records.iter().any(|x| x.record_type() == r.record_type() && x.data() == r.data()))
    }

    /// A negative answer for `name`/`qtype` proven by held NSEC records
    /// of the closest zone held at or above `name`, or `None`. Counts a
    /// hit when it returns one.
    pub(crate) fn synthesise(&self, name: &Name, qtype: RecordType, now: Millis) -> Option<Synthesised> {
        if meta(qtype) {
            return None;
        }
        let inner = self.read();
        let mut apex = name.clone();
        let zone = loop {
            if let Some(z) = inner.zones.get(&apex) {
                break z;
            }
            if apex.is_root() {
                return None;
            }
            apex = apex.base_name();
        };
        let (soa, neg_ttl) = zone.soa.as_ref().filter(|(h, _)| h.live(now))?;
        let (nxdomain, used) =
            nsec_proof(zone, &apex, name, qtype, now).or_else(|| nsec3::proof(zone, &apex, name, qtype, now))?;
        let left = used.iter().map(|h| h.expires).chain([soa.expires]).min().unwrap_or(0).saturating_sub(now) / 1000;
        let ttl = u32::try_from(left).unwrap_or(u32::MAX).min(*neg_ttl);
        if ttl == 0 {
            return None;
        }
        let mut authority: Vec<Record> = soa.records.clone();
        authority.extend(used.iter().flat_map(|h| h.records.iter().cloned()));
        for r in &mut authority {
            r.set_ttl(ttl);
        }
        drop(inner);
        // The same proof the validator will ask of it, as a last check.
        let proven = if nxdomain {
            prove_nxdomain(name, &apex, &authority)
        } else {
            prove_nodata(name, qtype, &apex, &authority)
        };
        // RFC 8198 §5.2 / RFC 5155 §6: never an answer resting on opt-out
        // (no opt-out record is held; checked again all the same).
        if proven.is_err() || (nxdomain && relies_on_opt_out(name, &apex, &authority)) {
            tracing::debug!(%name, %qtype, "aggressive NSEC synthesis did not prove itself; asking upstream");
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Synthesised { nxdomain, authority })
    }
}

/// The NSEC records proving `name`/`qtype` absent in `zone` (apex
/// `apex`): NXDOMAIN (true) or NODATA (false), and the entries used.
fn nsec_proof<'a>(
    zone: &'a Zone,
    apex: &Name,
    name: &Name,
    qtype: RecordType,
    now: Millis,
) -> Option<(bool, Vec<&'a Held>)> {
    let before = |n: &Name| zone.nsecs.range(..=n.clone()).next_back().filter(|(_, h)| h.live(now));
    let (owner, held) = before(name)?;
    let nsec = held.records.iter().find(|r| r.record_type() == RecordType::NSEC)?;
    let mut used = vec![held];
    if owner == name {
        return nodata_allowed(|t| nsec_has(nsec, t), name, qtype).then_some((false, used));
    }
    if !nsec_covers(name, nsec) {
        return None;
    }
    let next = nsec_next(nsec)?;
    if name.zone_of(next) {
        return Some((false, used)); // an empty non-terminal: the name exists, without data
    }
    // RFC 8198 §5.1: the wildcard at the closest encloser must be proven
    // absent too, or it could have answered.
    let ce = closest_encloser(name, nsec)?;
    if !apex.zone_of(&ce) {
        return None;
    }
    let wildcard = ce.prepend_label("*").ok()?;
    let (w_owner, w_held) = before(&wildcard)?;
    let w_nsec = w_held.records.iter().find(|r| r.record_type() == RecordType::NSEC)?;
    if *w_owner == wildcard || !nsec_covers(&wildcard, w_nsec) {
        return None;
    }
    if !std::ptr::eq(w_held, held) {
        used.push(w_held);
    }
    Some((true, used))
}

/// NODATA from the type bitmap (`has`) of the record at `name`: neither
/// the type nor CNAME, and from the right side of a zone cut (RFC 6840
/// §4.4: the parent's record at a delegation speaks only for DS, the
/// child's apex record never for DS).
pub(super) fn nodata_allowed(has: impl Fn(RecordType) -> bool, name: &Name, qtype: RecordType) -> bool {
    let wrong_side = if qtype == RecordType::DS {
        has(RecordType::SOA) && !name.is_root()
    } else {
        has(RecordType::NS) && !has(RecordType::SOA)
    };
    !has(qtype) && !has(RecordType::CNAME) && !wrong_side
}

/// Whether one more NSEC or NSEC3 record may go into `zone`.
fn room(inner: &Inner, zone: &Name, limits: Limits) -> bool {
    inner.total < limits.total && inner.zones.get(zone).is_none_or(|z| z.len() < limits.per_zone)
}

/// Drops expired entries and empty zones; at most once a second, so that
/// a full index does not cost a sweep per insert.
fn purge(inner: &mut Inner, now: Millis) {
    if inner.last_purge.is_some_and(|t| now < t + 1000) {
        return;
    }
    inner.last_purge = Some(now);
    let mut total = 0;
    inner.zones.retain(|_, z| {
        z.nsecs.retain(|_, h| h.live(now));
        z.nsec3.retain(|_, h| h.live(now));
        if z.soa.as_ref().is_some_and(|(h, _)| !h.live(now)) {
            z.soa = None;
        }
        total += z.len();
        z.len() > 0 || z.soa.is_some()
    });
    inner.total = total;
}
