//! Zone cuts: which servers to ask for a name (RFC 1034 §5.3.3 step 2),
//! found in the cache or the root hints, or learned from a referral.

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::classify::ns_target;
use super::hints::RootHints;
use crate::cache::Cache;
use crate::types::Millis;

/// Where a server's addresses stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Not looked up (its addresses may still have come as glue).
    NotTried,
    /// Its A records are being looked up.
    A,
    /// The A lookup found nothing: look up AAAA next.
    NeedAaaa,
    /// Its AAAA records are being looked up.
    Aaaa,
    /// Looked up, or not to be (loop, depth, fan-out limit).
    Done,
}

/// One name server of a zone cut.
#[derive(Clone, Debug)]
pub(crate) struct NsServer {
    pub(crate) name: Name,
    pub(crate) addrs: Vec<IpAddr>,
    pub(crate) lookup: Lookup,
}

/// A zone cut and its servers, as the iteration walks down.
#[derive(Clone, Debug)]
pub(crate) struct Delegation {
    /// The zone the servers are asked as authorities for.
    pub(crate) zone: Name,
    pub(crate) servers: Vec<NsServer>,
    /// Addresses already asked the current question (reset when the
    /// question or the delegation changes).
    pub(crate) tried: Vec<IpAddr>,
    /// NS names resolved for this delegation so far (NXNSAttack bound).
    pub(crate) fanout: u32,
    /// The DS RRset and its RRSIGs from the referral, or the proof of its
    /// absence (kept for validation).
    pub(crate) referral_authority: Vec<Record>,
}

impl Delegation {
    fn new(zone: Name, servers: Vec<NsServer>) -> Self {
        Delegation { zone, servers, tried: Vec::new(), fanout: 0, referral_authority: Vec::new() }
    }

    /// The root, from the hints.
    pub(crate) fn from_hints(hints: &RootHints) -> Self {
        let servers = hints
            .servers()
            .iter()
            .map(|(n, a)| NsServer { name: n.clone(), addrs: a.clone(), lookup: Lookup::Done })
            .collect();
        Delegation::new(Name::root(), servers)
    }

    /// A delegation to `zone` served by the NS records `ns`, with the
    /// addresses the cache (glue included) knows for them.
    pub(crate) fn from_ns(zone: Name, ns: &[Record], cache: &Cache, now: Millis) -> Self {
        let mut servers: Vec<NsServer> = Vec::new();
        for name in ns.iter().filter_map(ns_target) {
            if servers.iter().any(|s| s.name == name) {
                continue;
            }
            let addrs = cached_addrs(cache, &name, now);
            let lookup = if addrs.is_empty() { Lookup::NotTried } else { Lookup::Done };
            servers.push(NsServer { name, addrs, lookup });
        }
        Delegation::new(zone, servers)
    }

    /// The delegation a referral gives: addresses from its glue, then
    /// from the cache.
    pub(crate) fn from_referral(cut: Name, ns: &[Record], glue: &[Record], cache: &Cache, now: Millis) -> Self {
        let mut d = Delegation::from_ns(cut, ns, cache, now);
        for s in &mut d.servers {
            for ip in glue.iter().filter(|g| *g.name() == s.name).filter_map(addr_of) {
                if !s.addrs.contains(&ip) {
                    s.addrs.push(ip);
                }
                s.lookup = Lookup::Done;
            }
        }
        d
    }

    /// The closest enclosing zone cut of `name` whose NS RRset is in the
    /// cache, or the root from the hints. `parent_side` starts above
    /// `name` itself (DS lives on the parent side, RFC 4035 §4.2).
    pub(crate) fn closest(name: &Name, parent_side: bool, cache: &Cache, hints: &RootHints, now: Millis) -> Self {
        let mut n = name.clone();
        if parent_side && !n.is_root() {
            n = n.base_name();
        }
        loop {
            if let Some(hit) = cache.rrset(&n, RecordType::NS, now) {
                let d = Delegation::from_ns(n.clone(), &hit.entry.records, cache, now);
                // A cut whose servers all lack addresses and are named inside
                // it cannot be used (its glue expired): the parent gives the
                // glue again.
                let usable = d.servers.iter().any(|s| !s.addrs.is_empty() || !n.zone_of(&s.name));
                if usable {
                    return d;
                }
            }
            if n.is_root() {
                return Delegation::from_hints(hints);
            }
            n = n.base_name();
        }
    }
}

/// The A and AAAA addresses the cache has for `name`, any rank.
pub(crate) fn cached_addrs(cache: &Cache, name: &Name, now: Millis) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for t in [RecordType::A, RecordType::AAAA] {
        if let Some(hit) = cache.rrset(name, t, now) {
            out.extend(hit.entry.records.iter().filter_map(addr_of));
        }
    }
    out
}

/// The address in an A or AAAA record.
pub(crate) fn addr_of(r: &Record) -> Option<IpAddr> {
    match r.data() {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// Addresses a resolver must never send to unless told (Unbound's
/// do-not-query-localhost): loopback and unspecified.
pub(crate) fn is_local(ip: &IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
        _ => *ip,
    };
    ip.is_loopback() || ip.is_unspecified()
}
