//! Differential conformance: the same zones in NSD, in Knot and in meshdns,
//! the same queries to all three, meshdns's answers compared with each.
//!
//! Zones: `tests/data/semantics.test.zone` (wildcards, DNAME, CNAME chains,
//! delegations, empty non-terminals, many types), `tests/data/tricky.test.zone`
//! (TTL units, CNAME chains into a delegation as in RFC 2317, SVCB/HTTPS,
//! `@` in RDATA) and the real root zone of March 2018 from
//! `../shared/zones/root.zone` (1,545 delegations with glue).
//! Queries: every owner name (taken from NSD's own AXFR) × its types and the
//! common ones, a non-existent child of each, a mixed-case variant, names
//! below delegations and wildcard matches; with EDNS, with DO, and without
//! EDNS (512-byte limit).
//!
//! Compared: rcode, AA, TC, and the answer and authority sections. What is
//! normalised, and why:
//! - records within a section are sorted and owner names lower-cased: RRset
//!   order carries no meaning (RFC 2181 §5) and names compare
//!   case-insensitively (RFC 4343);
//! - the additional section is compared for referrals only: NSD with
//!   `minimal-responses: yes` adds nothing for MX/SRV/NS answers, meshdns adds
//!   in-zone target addresses (RFC 1035 §3.3.9, §3.3.11), and neither is
//!   required; referral glue is required (RFC 9471) and is compared;
//! - a CNAME whose in-zone target does not exist: NSD 4.6 answers NOERROR,
//!   meshdns NXDOMAIN as RFC 6604 §3 requires (the rcode of the last name);
//!   that one difference is accepted;
//! - a referral whose in-domain glue does not fit (512 bytes without EDNS):
//!   meshdns sets TC as RFC 9471 §3 requires, NSD 4.6 (older than that RFC)
//!   sends part of the glue without TC; accepted when the authority
//!   sections agree;
//! - names below an owner of only NSEC3 records are not compared (RFC 5155
//!   §7.2.8 takes such owners out of the namespace; NSD 4.6 still treats them
//!   as closest enclosers);
//! - ANY is not compared: RFC 8482 lets a server pick any one RRset;
//! - against Knot, the additional section of SVCB and HTTPS answers is
//!   compared too (RFC 9460 §4.1: the TargetName's in-zone addresses), except
//!   the owner's own addresses that meshdns adds for a ServiceMode TargetName
//!   of "." (RFC 9460 §2.5.2 makes the owner the target there; Knot 3.2
//!   adds nothing for it); NSD 4.6 adds nothing for SVCB.
//!
//! Where NSD and Knot disagree with each other, docs/conformance.md says
//! which one meshdns follows and why; the differences accepted above are
//! listed there too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::knot::start_knot;
use common::nsd::*;
use common::*;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

#[derive(Debug, PartialEq, Eq)]
struct Normalised {
    rcode: ResponseCode,
    aa: bool,
    tc: bool,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

/// Which reference server an answer came from: what is compared differs a
/// little (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reference {
    Nsd,
    Knot,
}

fn normalise(m: &Message, against: Reference, qtype: RecordType) -> Normalised {
    // A referral, also one that ends a CNAME chain (RFC 1034 §4.3.2 3.b):
    // NS records in authority and no SOA.
    let referral = m.response_code() == ResponseCode::NoError
        && m.name_servers().iter().any(|r| r.record_type() == RecordType::NS)
        && !m.answers().iter().any(|r| r.record_type() == qtype);
    let service = against == Reference::Knot && matches!(qtype, RecordType::SVCB | RecordType::HTTPS);
    let additional = if referral {
        lines(m.additionals())
    } else if service {
        // The owner's own addresses for a "." TargetName (meshdns only).
        let dot_owners: BTreeSet<Name> = m
            .answers()
            .iter()
            .filter(|r| r.data().to_string().split_whitespace().nth(1) == Some("."))
            .map(|r| r.name().to_lowercase())
            .collect();
        let kept: Vec<_> =
            m.additionals().iter().filter(|r| !dot_owners.contains(&r.name().to_lowercase())).cloned().collect();
        lines(&kept)
    } else {
        Vec::new()
    };
    Normalised {
        rcode: m.response_code(),
        aa: m.authoritative(),
        tc: m.truncated(),
        answer: lines(m.answers()),
        authority: lines(m.name_servers()),
        additional,
    }
}

/// A referral whose glue did not all fit: Knot writes each server's A and
/// AAAA together, NSD and meshdns every A first so each server keeps an IPv4
/// address. Accepted when all else agrees, every record on both sides is an
/// address of a name server in the referral, and meshdns keeps an address
/// for every server Knot does.
fn glue_cut_differently(t: &Normalised, m: &Normalised) -> bool {
    let owner = |line: &String| line.split_whitespace().next().unwrap_or("").to_owned();
    let servers: BTreeSet<String> =
        t.authority.iter().filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned)).collect();
    let covered = |n: &Normalised| n.additional.iter().map(owner).collect::<BTreeSet<_>>();
    (t.rcode, t.aa, t.tc, &t.answer, &t.authority) == (m.rcode, m.aa, m.tc, &m.answer, &m.authority)
        && t.additional.iter().chain(&m.additional).all(|l| servers.contains(&owner(l)))
        && covered(m).is_superset(&covered(t))
}

/// A CNAME into another zone served here: Knot answers with the CNAME and
/// stops; NSD and meshdns go on in the other zone (RFC 1034 §4.3.2 step 3.a
/// goes back to step 1, which picks the zone afresh).
fn knot_stops_at_the_zone_edge(t: &Normalised, m: &Normalised) -> bool {
    t.rcode == ResponseCode::NoError
        && t.authority.is_empty()
        && t.answer.last().is_some_and(|l| l.contains(" cname ") || l.contains(" dname "))
        && t.answer.iter().all(|l| m.answer.contains(l))
        && (m.answer.len() > t.answer.len() || !m.authority.is_empty())
}

/// DS for the apex of a zone served here whose parent is also served but
/// does not delegate it: Knot answers NXDOMAIN from the parent's data, NSD
/// and meshdns NODATA, since the name exists on this server (an NXDOMAIN
/// would, by RFC 8020, deny the whole zone below it to a resolver).
fn apex_ds_nodata(t: &Normalised, m: &Normalised, name: &str, rtype: RecordType) -> bool {
    rtype == RecordType::DS
        && ["semantics.test.", "tricky.test."].contains(&name.to_ascii_lowercase().as_str())
        && t.rcode == ResponseCode::NXDomain
        && m.rcode == ResponseCode::NoError
        && (&t.answer, &t.authority) == (&m.answer, &m.authority)
}

fn mixed_case(name: &str) -> String {
    name.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect()
}

#[test]
fn answers_match_nsd_and_knot_on_the_test_zones_and_the_root_zone() {
    let root = shared_dir().join("zones/root.zone");
    assert!(root.exists(), "{} is missing: the shared test data must sit beside the clone", root.display());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let semantics = data.join("semantics.test.zone");
    let tricky = data.join("tricky.test.zone");
    let served: [(&str, &Path); 3] = [("semantics.test", &semantics), ("tricky.test", &tricky), (".", &root)];
    let nsd = start_nsd(&served);
    let knot = start_knot(&served);
    let zones = zone_dir(&[]);
    std::fs::copy(&semantics, zones.path().join("semantics.test.zone")).unwrap();
    std::fs::copy(&tricky, zones.path().join("tricky.test.zone")).unwrap();
    std::fs::copy(&root, zones.path().join("root.zone")).unwrap();
    let ours = Server::with_zones(zones.path());

    let common_types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SOA,
        RecordType::DS,
        RecordType::CNAME,
        RecordType::PTR,
        RecordType::SVCB,
        RecordType::HTTPS,
    ];
    let mut questions: BTreeSet<(String, RecordType)> = BTreeSet::new();
    for zone in ["semantics.test.", "tricky.test.", "."] {
        let records = axfr(nsd.addr, zone);
        assert!(records.len() > 10, "AXFR of {zone} from NSD returned {} records", records.len());
        let owners: BTreeSet<Name> = records.iter().map(|r| r.name().clone()).collect();
        // Names owning only NSEC3 records are outside the namespace (RFC 5155
        // §7.2.8); NSD still uses them as closest enclosers for names below
        // them, meshdns does not. Names below them are not compared.
        let nsec3_only: BTreeSet<Name> = owners
            .iter()
            .filter(|o| records.iter().filter(|r| r.name() == *o).all(|r| r.record_type() == RecordType::NSEC3))
            .cloned()
            .collect();
        for r in &records {
            questions.insert((r.name().to_ascii(), r.record_type()));
            // Names the records point at: CNAME/DNAME/NS/MX targets.
            let target = match r.data() {
                RData::CNAME(c) => Some(c.0.clone()),
                RData::NS(n) => Some(n.0.clone()),
                RData::MX(m) => Some(m.exchange().clone()),
                _ => None,
            };
            if let Some(t) = target {
                questions.insert((t.to_ascii(), RecordType::A));
            }
        }
        for owner in &owners {
            let o = owner.to_ascii();
            for t in common_types {
                questions.insert((o.clone(), t));
            }
            if !nsec3_only.contains(owner) {
                questions.insert((format!("zz-nx.{}", o.trim_start_matches("*.")), RecordType::A));
            }
            questions.insert((mixed_case(&o), RecordType::A));
        }
    }
    for extra in [
        "host3.semantics.test.",
        "foo.bar.semantics.test.",
        "_ssh._tcp.host3.semantics.test.",
        "sub.*.semantics.test.",
        "x.sub.*.semantics.test.",
        "ghost.*.semantics.test.",
        "b.ent.semantics.test.",
        "ent.semantics.test.",
        "x.cn.semantics.test.",
        "deep.x.cn.semantics.test.",
        "a.b.dn.semantics.test.",
        "x.dn.semantics.test.",
        "deep.below.subdel.semantics.test.",
        "ns.subdel.semantics.test.",
        "x.v6del.semantics.test.",
        "WWW.Semantics.TEST.",
        "www.example.",
        "nx-tld-that-does-not-exist.",
        "a.b.c.d.com.",
        "x.dn.tricky.test.",
        "deep.x.64/26.tricky.test.",
        "67.tricky.test.",
    ] {
        for t in [RecordType::A, RecordType::MX, RecordType::TXT, RecordType::DS, RecordType::NS, RecordType::AAAA] {
            questions.insert((extra.to_owned(), t));
        }
    }
    // Questions with odd names in AXFR output may not parse back; skip those.
    let questions: Vec<_> = questions.into_iter().filter(|(n, _)| Name::from_ascii(n).is_ok()).collect();
    assert!(questions.len() > 20_000, "only {} questions", questions.len());

    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (i, (name, rtype)) in questions.iter().enumerate() {
        // Variants: EDNS 1232; every 7th also with DO; every 5th without EDNS.
        let mut variants = vec![query(name, *rtype)];
        if i % 7 == 0 {
            let mut m = plain_query(name, *rtype);
            let mut e = Edns::new();
            e.set_max_payload(1232).set_dnssec_ok(true);
            m.set_edns(e);
            variants.push(m);
        }
        if i % 5 == 0 {
            variants.push(plain_query(name, *rtype));
        }
        for q in variants {
            let bytes = q.to_vec().unwrap();
            let mine = Message::from_vec(&ours.udp_raw(&bytes).expect("meshdns did not answer")).unwrap();
            for (against, addr) in [(Reference::Nsd, nsd.addr), (Reference::Knot, knot.addr)] {
                let answer = udp_exchange(addr, &bytes).unwrap_or_else(|| panic!("{against:?} did not answer"));
                let theirs = Message::from_vec(&answer).unwrap();
                compared += 1;
                let (t, m) = (normalise(&theirs, against, *rtype), normalise(&mine, against, *rtype));
                let dangling_cname = t.rcode == ResponseCode::NoError
                    && m.rcode == ResponseCode::NXDomain
                    && !m.answer.is_empty()
                    && t.answer == m.answer
                    && t.authority == m.authority;
                let rfc9471_tc = m.tc && !t.tc && !m.aa && t.authority == m.authority && t.rcode == m.rcode;
                let knot = against == Reference::Knot;
                let accepted = dangling_cname
                    || rfc9471_tc
                    || (knot && glue_cut_differently(&t, &m))
                    || (knot && knot_stops_at_the_zone_edge(&t, &m))
                    || (knot && apex_ds_nodata(&t, &m, name, *rtype));
                if t != m && !accepted {
                    mismatches.push(format!(
                        "{name} {rtype} (edns: {:?})\n  {against:?}: {t:?}\n  meshdns: {m:?}",
                        q.extensions().as_ref().map(|e| e.flags().dnssec_ok)
                    ));
                }
            }
        }
    }
    // Every difference, for a closer look: DNS_DIFF_OUT=/tmp/diff.txt.
    if let Ok(path) = std::env::var("DNS_DIFF_OUT") {
        std::fs::write(path, mismatches.join("\n")).unwrap();
    }
    eprintln!("compared {compared} answers over {} questions", questions.len());
    assert!(
        mismatches.is_empty(),
        "{} of {compared} answers differ from NSD or Knot; first ones:\n{}",
        mismatches.len(),
        mismatches.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
    );
}
