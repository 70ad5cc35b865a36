//! Validation over the scripted network, with the signed fixtures of
//! `resolver/tests/data/dnssec` (zone `example.`, anchored by its DS).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};

use super::fake::{FakeNet, a, n, ns, recursor, recursor_with, resolve, resolve_cd, soa};
use crate::dnssec::TrustAnchors;
use crate::dnssec::text::parse_records;
use crate::types::{Ede, Security};

pub(super) const ROOT: &str = "10.0.0.1";
/// ns1.example. in the fixtures.
pub(super) const EXAMPLE: &str = "192.0.2.1";
/// Signatures in the fixtures run 2025-01-01 to 2036-01-01.
pub(super) const NOW: u64 = 1_780_000_000_000;

pub(super) fn fixture(name: &str) -> (Vec<Record>, TrustAnchors) {
    let (zone, ds) = match name {
        "nsec-ecdsa" => (
            include_str!("../../../tests/data/dnssec/nsec-ecdsa.zone"),
            include_str!("../../../tests/data/dnssec/nsec-ecdsa.ds"),
        ),
        "nsec3" => {
            (include_str!("../../../tests/data/dnssec/nsec3.zone"), include_str!("../../../tests/data/dnssec/nsec3.ds"))
        }
        "nsec3-optout" => (
            include_str!("../../../tests/data/dnssec/nsec3-optout.zone"),
            include_str!("../../../tests/data/dnssec/nsec3-optout.ds"),
        ),
        "expired" => (
            include_str!("../../../tests/data/dnssec/expired.zone"),
            include_str!("../../../tests/data/dnssec/expired.ds"),
        ),
        _ => panic!("no fixture {name}"),
    };
    let recs = parse_records(zone, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let recs = recs
        .into_iter()
        .map(|mut r| {
            let l = r.name().to_lowercase();
            r.set_name(l);
            r
        })
        .collect();
    (recs, TrustAnchors::parse(ds).unwrap_or_else(|e| panic!("{e}")))
}

/// An unsigned root delegating `example.` to the fixture's server, which
/// delegates secure.example (with a DS that matches no key) and
/// insecure.example (no DS) to unsigned servers.
pub(super) fn world(zone: Vec<Record>) -> FakeNet {
    let mut net = FakeNet::default();
    net.zone(ROOT, ".", vec![soa(".", 86400, 86400), ns("example.", "ns1.example."), a("ns1.example.", EXAMPLE)]);
    net.zone(EXAMPLE, "example.", zone);
    for (z, addr) in [("secure.example.", "192.0.2.53"), ("insecure.example.", "192.0.2.54")] {
        net.zone(addr, z, vec![soa(z, 3600, 300), ns(z, &format!("ns1.{z}")), a(&format!("www.{z}"), "192.0.2.99")]);
    }
    net
}

fn has_rrsig(records: &[Record]) -> bool {
    records.iter().any(|r| r.record_type() == RecordType::RRSIG)
}

#[test]
fn signed_answer_is_secure_and_carries_its_rrsigs() {
    let (zone, anchors) = fixture("nsec-ecdsa");
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.example.", RecordType::A, NOW);
    assert_eq!(r.rcode, ResponseCode::NoError, "{r:?}");
    assert_eq!(r.security, Security::Secure);
    assert!(has_rrsig(&r.answer), "RRSIGs stay in Resolved for DO clients");
    assert!(net.log.iter().all(|s| s.dnssec_ok), "DO on every upstream query");
    assert!(net.log.iter().any(|s| s.q.qtype == RecordType::DNSKEY), "the DNSKEY RRset was fetched");
    // Again from the cache: no query, still Secure, marked so in the cache.
    let (r2, queries) = resolve(&mut net, &rec, "www.example.", RecordType::A, NOW + 1000);
    assert_eq!((queries, r2.security), (0, Security::Secure));
    let entry = rec.cache().rrset(&n("www.example."), RecordType::A, NOW + 1000).map(|h| h.entry.security);
    assert_eq!(entry, Some(Security::Secure));
    // The key cache: the zone's DNSKEY RRset is held as Secure, and a
    // sibling name is answered Secure without fetching it again.
    let keys = rec.cache().rrset(&n("example."), RecordType::DNSKEY, NOW).map(|h| h.entry.security);
    assert_eq!(keys, Some(Security::Secure));
    let (r3, queries) = resolve(&mut net, &rec, "mail.example.", RecordType::A, NOW + 2000);
    assert_eq!((r3.security, queries), (Security::Secure, 1));
}

#[test]
fn signed_denials_are_secure() {
    for fx in ["nsec-ecdsa", "nsec3"] {
        let (zone, anchors) = fixture(fx);
        let mut net = world(zone);
        let rec = recursor_with(&[("a.root.", ROOT)], |c| c.qname_minimisation = false, Some(anchors));
        let (r, _) = resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
        assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{fx}: {r:?}");
        assert!(r.authority.iter().any(|x| matches!(x.record_type(), RecordType::NSEC | RecordType::NSEC3)));
        let (r, _) = resolve(&mut net, &rec, "www.example.", RecordType::TXT, NOW);
        assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Secure), "{fx}: {r:?}");
        assert!(r.answer.is_empty());
    }
}

#[test]
fn unsigned_delegation_is_insecure() {
    let (zone, anchors) = fixture("nsec-ecdsa");
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.insecure.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Insecure), "{r:?}");
    assert_eq!(r.answer.len(), 1);
    let q = crate::Question::new(&n("insecure.example."), RecordType::DS);
    let neg = rec.cache().negative(&q, NOW).map(|h| h.entry.security);
    assert_eq!(neg, Some(Security::Insecure), "the proven insecure delegation is remembered");
    let (r, queries) = resolve(&mut net, &rec, "www.insecure.example.", RecordType::A, NOW + 1000);
    assert_eq!((r.security, queries), (Security::Insecure, 0));
}

#[test]
fn ds_without_matching_key_is_bogus() {
    let (zone, anchors) = fixture("nsec-ecdsa");
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.secure.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::ServFail, Security::Bogus), "{r:?}");
    assert!(r.ede.is_some());
    assert!(
        !net.log.iter().any(|s| s.q.qtype == RecordType::DS),
        "the DS RRset came with the referral; no DS query needed"
    );
}

#[test]
fn tampered_data_is_bogus_unless_checking_is_disabled() {
    let (mut zone, anchors) = fixture("nsec-ecdsa");
    for r in zone.iter_mut().filter(|r| r.name() == &n("www.example.") && r.record_type() == RecordType::A) {
        r.set_data(RData::A(hickory_proto::rr::rdata::A("192.0.2.66".parse().unwrap_or_else(|e| panic!("{e}")))));
    }
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::ServFail, Security::Bogus), "{r:?}");
    assert_eq!(r.ede.map(|e| e.code), Some(Ede::DNSSEC_BOGUS));
    let (r, _) = resolve_cd(&mut net, &rec, "www.example.", RecordType::A, true, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Indeterminate), "{r:?}");
    assert!(r.answer.iter().any(|x| x.data().to_string() == "192.0.2.66"));
}

#[test]
fn expired_signatures_are_bogus() {
    let (zone, anchors) = fixture("expired");
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.example.", RecordType::A, NOW);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert_eq!(r.ede.map(|e| e.code), Some(Ede::SIGNATURE_EXPIRED));
}

#[test]
fn without_anchors_nothing_is_validated() {
    let (zone, _) = fixture("nsec-ecdsa");
    let mut net = world(zone);
    let rec = recursor(&[("a.root.", ROOT)], |_| {});
    let (r, _) = resolve(&mut net, &rec, "www.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Indeterminate));
    assert!(net.log.iter().all(|s| !s.dnssec_ok && s.q.qtype != RecordType::DNSKEY));
}

/// A chain of trust through a DS: anchor (test.'s DNSKEY) → test. signs
/// child.test.'s DS → child.test.'s DNSKEY → its data.
fn chained_world(child_ds_matches: bool) -> (FakeNet, TrustAnchors) {
    use super::signer::ZoneKey;
    let now_s = (NOW / 1000) as u32;
    let (test, child) = (n("test."), n("child.test."));
    let (kp, kc, other) = (ZoneKey::new(&test), ZoneKey::new(&child), ZoneKey::new(&child));
    let ds = if child_ds_matches { kc.ds() } else { other.ds() };
    let parent = kp.sign_zone(
        vec![
            soa("test.", 3600, 300),
            ns("test.", "ns.test."),
            a("ns.test.", "10.0.8.1"),
            kp.dnskey(),
            ns("child.test.", "ns.child.test."),
            a("ns.child.test.", "10.0.9.1"),
            ds,
        ],
        now_s,
    );
    let child_zone = kc.sign_zone(
        vec![
            soa("child.test.", 3600, 300),
            ns("child.test.", "ns.child.test."),
            a("ns.child.test.", "10.0.9.1"),
            kc.dnskey(),
            a("www.child.test.", "192.0.2.42"),
        ],
        now_s,
    );
    let mut net = FakeNet::default();
    net.zone(ROOT, ".", vec![soa(".", 86400, 86400), ns("test.", "ns.test."), a("ns.test.", "10.0.8.1")]);
    net.zone("10.0.8.1", "test.", parent);
    net.zone("10.0.9.1", "child.test.", child_zone);
    let mut anchors = TrustAnchors::default();
    anchors.add(kp.dnskey());
    (net, anchors)
}

#[test]
fn chain_of_trust_through_a_ds() {
    let (mut net, anchors) = chained_world(true);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.child.test.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Secure), "{r:?}");
    let dnskey_zones: Vec<String> =
        net.log.iter().filter(|s| s.q.qtype == RecordType::DNSKEY).map(|s| s.q.name.to_ascii()).collect();
    assert_eq!(dnskey_zones, ["test.", "child.test."], "top-down from the anchor");
    assert!(!net.log.iter().any(|s| s.q.qtype == RecordType::DS), "the DS came with the referral");
}

#[test]
fn ds_for_another_key_breaks_the_chain() {
    let (mut net, anchors) = chained_world(false);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "www.child.test.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::ServFail, Security::Bogus), "{r:?}");
}

#[test]
fn wildcard_answers_are_secure_with_their_proof() {
    for fx in ["nsec-ecdsa", "nsec3"] {
        let (zone, anchors) = fixture(fx);
        let mut net = world(zone);
        let rec = recursor_with(&[("a.root.", ROOT)], |c| c.qname_minimisation = false, Some(anchors));
        let (r, _) = resolve(&mut net, &rec, "anything.wild.example.", RecordType::TXT, NOW);
        assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Secure), "{fx}: {r:?}");
        assert_eq!(r.answer[0].name(), &n("anything.wild.example."));
    }
}

#[test]
fn wildcard_answer_without_its_proof_is_bogus() {
    let (zone, anchors) = fixture("nsec-ecdsa");
    // The server keeps its NSEC records to itself.
    let zone: Vec<Record> = zone
        .into_iter()
        .filter(|r| {
            r.record_type() != RecordType::NSEC && crate::recursive::rrset::covered_type(r) != Some(RecordType::NSEC)
        })
        .collect();
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |c| c.qname_minimisation = false, Some(anchors));
    let (r, _) = resolve(&mut net, &rec, "anything.wild.example.", RecordType::TXT, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::ServFail, Security::Bogus), "{r:?}");
}

/// RFC 5011 updates at run time: anchors that withdraw trust flush what
/// was validated with them; the next resolution checks again.
#[test]
fn new_anchors_withdrawing_a_key_flush_what_it_validated() {
    use super::signer::ZoneKey;
    let (mut net, anchors) = chained_world(true);
    let rec = recursor_with(&[("a.root.", ROOT)], |_| {}, Some(anchors.clone()));
    let (r, _) = resolve(&mut net, &rec, "www.child.test.", RecordType::A, NOW);
    assert_eq!(r.security, Security::Secure, "{r:?}");
    // Adding a key to the anchors withdraws nothing: the cache stays.
    let mut more = anchors.clone();
    more.add(ZoneKey::new(&n("test.")).dnskey());
    assert!(rec.set_anchors(more).is_empty());
    let (r, queries) = resolve(&mut net, &rec, "www.child.test.", RecordType::A, NOW + 1000);
    assert_eq!((r.security, queries), (Security::Secure, 0), "answered from the cache");
    // Now test.'s only anchor is a key the zone does not use (its real
    // key revoked): the Secure data of the zone must not survive.
    let mut other = TrustAnchors::default();
    other.add(ZoneKey::new(&n("test.")).dnskey());
    assert_eq!(rec.set_anchors(other), vec![n("test.")]);
    assert!(rec.cache().rrset(&n("test."), RecordType::DNSKEY, NOW + 2000).is_none(), "key cache flushed");
    let (r, _) = resolve(&mut net, &rec, "www.child.test.", RecordType::A, NOW + 2000);
    assert_eq!((r.rcode, r.security), (ResponseCode::ServFail, Security::Bogus), "{r:?}");
}

/// A DS anchor replaced by the DNSKEY it matches (what RFC 5011 does on
/// first sight of the key) trusts the same key: nothing is withdrawn.
#[test]
fn a_ds_anchor_replaced_by_its_key_withdraws_nothing() {
    let (zone, ds_anchor) = fixture("nsec-ecdsa");
    let ksk: Vec<Record> = zone
        .iter()
        .filter(|r| matches!(r.data(), RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::DNSKEY(k)) if k.secure_entry_point()))
        .cloned()
        .collect();
    assert!(!ksk.is_empty(), "the fixture has a KSK");
    let mut by_key = TrustAnchors::default();
    by_key.set_zone(&n("example."), ksk);
    assert!(ds_anchor.withdrawn(&by_key).is_empty());
    assert_eq!(by_key.withdrawn(&ds_anchor), vec![n("example.")], "a DNSKEY anchor gone is withdrawn");
    assert_eq!(ds_anchor.withdrawn(&TrustAnchors::default()), vec![n("example.")]);
}
