//! What an authoritative server's reply means for the iteration
//! (RFC 1034 §5.3.3 step 4): an answer, a CNAME/DNAME redirection, a
//! referral, a negative answer, or a sign that the server is lame.
//!
//! Everything here is scrubbed against the zone the server was asked as
//! an authority for (RFC 2181 §5.4.1, the bailiwick rule): records outside
//! it are dropped, so a server cannot plant data for names it does not
//! serve.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::rrset::{covered_type, dname_target};

/// The kinds of reply.
#[derive(Debug)]
pub(crate) enum Class {
    /// The RRset asked for, after `chain` (CNAMEs, DNAMEs and the CNAMEs
    /// synthesised from them, RFC 6672 §3), with RRSIGs.
    /// `proofs` are the NSEC/NSEC3 records (and RRSIGs) of the authority
    /// section: a wildcard answer's proof that no closer name exists
    /// (RFC 4035 §3.1.3.3).
    Answer { chain: Vec<Record>, data: Vec<Record>, proofs: Vec<Record> },
    /// A CNAME/DNAME chain ending at `target`, for which this reply has no
    /// answer: resolution goes on for `target`.
    Redirect { chain: Vec<Record>, target: Name },
    /// The name (after `chain`) does not exist (RFC 2308 §2.1).
    NxDomain { chain: Vec<Record>, authority: Vec<Record> },
    /// The name exists without data of the type (RFC 2308 §2.2).
    NoData { chain: Vec<Record>, authority: Vec<Record> },
    /// A delegation to `cut`, closer to the name asked.
    Referral { cut: Name, ns: Vec<Record>, glue: Vec<Record>, authority: Vec<Record> },
    /// The server is no authority for the zone it was asked as one for.
    Lame(&'static str),
    /// The server failed (SERVFAIL, REFUSED, NOTIMP, FORMERR, …).
    Error(ResponseCode),
}

/// Longest CNAME/DNAME chain followed within one reply.
const MAX_CHAIN_IN_REPLY: usize = 16;

/// Classifies `msg`, the reply to (`qname`, `qtype`) from a server asked
/// as an authority for `zone`. Record names must already be lowercase.
pub(crate) fn classify(msg: &Message, qname: &Name, qtype: RecordType, zone: &Name) -> Class {
    let rcode = msg.response_code();
    if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Class::Error(rcode);
    }
    let in_zone = |r: &&Record| zone.zone_of(r.name());
    let answers: Vec<&Record> = msg.answers().iter().filter(in_zone).collect();

    // Follow the chain from qname through the answer section.
    let mut chain = Vec::new();
    let mut cur = qname.clone();
    let mut seen = vec![cur.clone()];
    let mut data = Vec::new();
    for _ in 0..MAX_CHAIN_IN_REPLY {
        let at_cur = |t: RecordType| -> Vec<Record> { rrset_with_sigs(&answers, &cur, t) };
        let want = if qtype == RecordType::ANY {
            answers.iter().filter(|r| *r.name() == cur).map(|r| (*r).clone()).collect()
        } else {
            at_cur(qtype)
        };
        if want.iter().any(|r| r.record_type() != RecordType::RRSIG) {
            data = want;
            break;
        }
        // A DNAME at an ancestor of cur (RFC 6672 §3.2) comes before any CNAME.
        let dname = answers.iter().find_map(|r| {
            if r.record_type() != RecordType::Unknown(39) || *r.name() == cur || !r.name().zone_of(&cur) {
                return None;
            }
            Some(((*r).clone(), dname_target(r)?))
        });
        let next = if let Some((dn, dtarget)) = dname {
            let owner = dn.name().clone();
            chain.extend(rrset_with_sigs(&answers, &owner, RecordType::Unknown(39)));
            let Some(synth) = synthesise(&cur, &owner, &dtarget) else { break };
            let cname =
                Record::from_rdata(cur.clone(), dn.ttl(), RData::CNAME(hickory_proto::rr::rdata::CNAME(synth.clone())));
            chain.push(cname);
            // A CNAME the server sent for cur is replaced by ours; its RRSIG
            // is kept for validators that check it (RFC 6672 §5.3.1).
            synth
        } else if let Some(target) = answers.iter().find_map(|r| match r.data() {
            RData::CNAME(c) if *r.name() == cur && qtype != RecordType::CNAME => Some(c.0.to_lowercase()),
            _ => None,
        }) {
            chain.extend(rrset_with_sigs(&answers, &cur, RecordType::CNAME));
            target
        } else {
            break;
        };
        if seen.contains(&next) {
            // A loop: hand it on as a redirection; the resolution sees
            // the repeated name and fails.
            return Class::Redirect { chain, target: next };
        }
        seen.push(next.clone());
        cur = next;
    }
    let redirected = cur != *qname;

    if !data.is_empty() {
        if !msg.authoritative() && msg.recursion_available() {
            // An answer from a cache, not from an authority (Unbound's "rec_lame").
            return Class::Lame("non-authoritative answer from a recursive server");
        }
        let proofs = msg
            .name_servers()
            .iter()
            .filter(|r| zone.zone_of(r.name()))
            .filter(|r| {
                matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3)
                    || matches!(covered_type(r), Some(RecordType::NSEC | RecordType::NSEC3))
            })
            .cloned()
            .collect();
        return Class::Answer { chain, data, proofs };
    }
    if redirected && !zone.zone_of(&cur) {
        return Class::Redirect { chain, target: cur };
    }

    let authority: Vec<&Record> = msg.name_servers().iter().filter(in_zone).collect();
    let soa = authority.iter().find(|r| r.record_type() == RecordType::SOA && r.name().zone_of(&cur));
    let negative_auth = || -> Vec<Record> {
        authority
            .iter()
            .filter(|r| {
                matches!(r.record_type(), RecordType::SOA | RecordType::NSEC | RecordType::NSEC3)
                    || (r.record_type() == RecordType::RRSIG
                        && matches!(covered_type(r), Some(RecordType::SOA | RecordType::NSEC | RecordType::NSEC3)))
            })
            .map(|r| (*r).clone())
            .collect()
    };
    if rcode == ResponseCode::NXDomain {
        if !msg.authoritative() && soa.is_none() {
            return Class::Lame("NXDOMAIN without authority");
        }
        return Class::NxDomain { chain, authority: negative_auth() };
    }

    // A referral: NS records for a zone below the one asked, above cur.
    if soa.is_none() && !redirected {
        let ns_owner = authority.iter().find(|r| r.record_type() == RecordType::NS).map(|r| r.name().clone());
        if let Some(cut) = ns_owner {
            if cut == *zone || !cut.zone_of(&cur) {
                return Class::Lame("referral upwards or sideways");
            }
            let ns: Vec<Record> = authority
                .iter()
                .filter(|r| r.record_type() == RecordType::NS && *r.name() == cut)
                .map(|r| (*r).clone())
                .collect();
            let targets: Vec<Name> = ns.iter().filter_map(ns_target).collect();
            // Glue only for the NS names of this referral, and only inside
            // the zone of the server that sent it (in-bailiwick, RFC 2181
            // §5.4.1; the poisoning defence): a server may vouch for
            // addresses in its own zone, not elsewhere. This admits sibling
            // glue (the root's addresses for a.gtld-servers.net when it
            // refers to com., as Unbound and BIND accept it): without it
            // the com. and net. servers, named under gtld-servers.net,
            // would be reachable only through a lookup that needs them.
            // Glue is cached at the lowest rank and never answers a client.
            let glue = msg
                .additionals()
                .iter()
                .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                .filter(|r| targets.contains(r.name()) && zone.zone_of(r.name()))
                .cloned()
                .collect();
            let authority = authority.iter().filter(|r| cut.zone_of(r.name())).map(|r| (*r).clone()).collect();
            return Class::Referral { cut, ns, glue, authority };
        }
    }

    if redirected {
        return Class::Redirect { chain, target: cur };
    }
    if !msg.authoritative() && soa.is_none() {
        return Class::Lame("non-authoritative empty answer");
    }
    Class::NoData { chain, authority: negative_auth() }
}

/// The RRset `name`/`rtype` among `records`, then the RRSIGs covering it.
fn rrset_with_sigs(records: &[&Record], name: &Name, rtype: RecordType) -> Vec<Record> {
    let data = records.iter().filter(|r| r.name() == name && r.record_type() == rtype);
    let sigs = records.iter().filter(|r| r.name() == name && covered_type(r) == Some(rtype));
    data.chain(sigs).map(|r| (*r).clone()).collect()
}

/// RFC 6672 §2.2: `name` with the suffix `owner` replaced by `target`;
/// `None` when the result is too long (the server should have sent
/// YXDOMAIN) or the owner is no proper ancestor of `name`.
pub(crate) fn synthesise(name: &Name, owner: &Name, target: &Name) -> Option<Name> {
    if !owner.zone_of(name) || name == owner {
        return None;
    }
    let keep = usize::from(name.num_labels() - owner.num_labels());
    let prefix: Vec<&[u8]> = name.iter().take(keep).collect();
    let mut out = Name::from_labels(prefix).ok()?.append_domain(target).ok()?;
    out.set_fqdn(true);
    Some(out.to_lowercase())
}

/// The name an NS record points to, lowercase.
pub(crate) fn ns_target(r: &Record) -> Option<Name> {
    match r.data() {
        RData::NS(ns) => Some(ns.0.to_lowercase()),
        _ => None,
    }
}
