//! RFC 8198 aggressive NSEC answers over the scripted network, on the
//! signed `nsec-ecdsa` fixture. Its NSEC chain (owner → next):
//!
//! ```text
//! example. → b.c.deep.example. → insecure.example. (delegation, no DS)
//! → mail.example. → ns1.example. → secure.example. (delegation, DS)
//! → *.wild.example. → www.example. → example.
//! ```
//!
//! The fixture's server answers with the minimal proofs a real server
//! sends ([`Behaviour::MinimalDenial`]), so what the index holds depends
//! on what was asked before.

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Record, RecordType};

use super::dnssec::{EXAMPLE, NOW, ROOT, fixture, world};
use super::fake::{Behaviour, FakeNet, recursor, recursor_with, resolve, resolve_cd};
use crate::recursive::Recursor;
use crate::types::{Resolved, Security};

fn setup() -> (FakeNet, Arc<Recursor>) {
    let (zone, anchors) = fixture("nsec-ecdsa");
    let mut net = world(zone);
    net.behave(EXAMPLE, Behaviour::MinimalDenial);
    let rec = recursor_with(&[("a.root.", ROOT)], |c| c.qname_minimisation = false, Some(anchors));
    (net, rec)
}

fn nsec_owners(r: &Resolved) -> Vec<String> {
    let mut o: Vec<String> =
        r.authority.iter().filter(|x| x.record_type() == RecordType::NSEC).map(|x| x.name().to_ascii()).collect();
    o.sort();
    o
}

fn has_sig_over(records: &[Record], t: RecordType) -> bool {
    records.iter().any(|r| crate::recursive::rrset::covered_type(r) == Some(t))
}

/// One NXDOMAIN from upstream; the NSEC records it carried (mail. → ns1.,
/// and the apex's for the wildcard) then deny other names with no query.
#[test]
fn covered_names_are_denied_without_a_query() {
    let (mut net, rec) = setup();
    let (r, q) = resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert!(q > 0);
    assert_eq!(nsec_owners(&r), ["example.", "mail.example."], "the server sent the minimal proof");
    assert_eq!(rec.aggressive_hits(), 0);
    assert_eq!(rec.aggressive_entries(), 2);
    let names = [
        ("nop2.example.", RecordType::A),
        ("n.example.", RecordType::AAAA),
        ("mb.example.", RecordType::TXT),
        ("deep.nop4.example.", RecordType::A), // closest encloser example.
        ("x.mail.example.", RecordType::A),    // closest encloser mail.example.
    ];
    for (i, (name, qtype)) in names.iter().enumerate() {
        let (r, q) = resolve(&mut net, &rec, name, *qtype, NOW + 1000);
        assert_eq!(q, 0, "{name}: answered from the NSEC index");
        assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{name}: {r:?}");
        assert!(r.answer.is_empty());
        assert!(r.authority.iter().any(|x| x.record_type() == RecordType::SOA), "{name}: SOA for the negative TTL");
        assert!(has_sig_over(&r.authority, RecordType::NSEC), "{name}: the NSEC RRSIGs go along for DO clients");
        assert!(nsec_owners(&r).contains(&"mail.example.".to_string()), "{name}: {:?}", nsec_owners(&r));
        assert!(r.authority.iter().all(|x| x.ttl() <= 300), "{name}: no longer than the NSEC TTL");
        assert_eq!(rec.aggressive_hits(), i as u64 + 1);
        // Nothing is cached per synthesised name (no pollution).
        let neg = rec.cache().negative(&crate::Question::new(&super::fake::n(name), *qtype), NOW + 1000);
        assert!(neg.is_none(), "{name}");
    }
    // A client without DO gets the same answer (the builder drops NSECs).
    let mut res = rec.start(crate::Question::new(&super::fake::n("nop3.example."), RecordType::A), false, false, NOW);
    let r = super::fake::drive(&mut net, &mut res, NOW + 1000);
    assert_eq!((r.rcode, res.queries_sent()), (ResponseCode::NXDomain, 0));
}

/// A name past the held NSEC's next name is not covered: upstream. The
/// answer's NSEC (the zone's last, pointing back to the apex) then
/// covers the names after it.
#[test]
fn names_not_covered_go_upstream() {
    let (mut net, rec) = setup();
    resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
    let before = net.log.len();
    let (r, q) = resolve(&mut net, &rec, "zzz.example.", RecordType::A, NOW + 1000);
    assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert_eq!(q, 1, "one query for the uncovered name");
    assert_eq!(net.log[before].q.name, super::fake::n("zzz.example."));
    assert_eq!(rec.aggressive_hits(), 0);
    // Also not covered: a name before mail.example. and after the apex's next.
    let (_, q) = resolve(&mut net, &rec, "f.example.", RecordType::A, NOW + 1000);
    assert_eq!(q, 1);
    // The wrap-around NSEC www. → example. now covers what sorts after www.
    let (r, q) = resolve(&mut net, &rec, "zzz2.example.", RecordType::A, NOW + 2000);
    assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert_eq!(rec.aggressive_hits(), 1);
}

/// RFC 8198 §5.1: a covered name whose wildcard is not proven absent is
/// not denied (a wildcard could have answered it).
#[test]
fn covered_name_without_wildcard_proof_goes_upstream() {
    let (mut net, rec) = setup();
    // The proof for x.b.c.deep.example. is one NSEC (b.c.deep. → insecure.),
    // covering both the name and *.b.c.deep.example.
    let (r, _) = resolve(&mut net, &rec, "x.b.c.deep.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert_eq!(nsec_owners(&r), ["b.c.deep.example."]);
    // f.example. is covered by that NSEC, but its closest encloser is
    // example., and nothing held covers *.example.
    let (r, q) = resolve(&mut net, &rec, "f.example.", RecordType::A, NOW + 1000);
    assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert_eq!((q, rec.aggressive_hits()), (1, 0));
    // That answer brought the apex NSEC (covering *.example.): now it works.
    let (r, q) = resolve(&mut net, &rec, "g.example.", RecordType::A, NOW + 2000);
    assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert_eq!(rec.aggressive_hits(), 1);
}

/// NODATA from the bitmap of the NSEC at the name, and for an empty
/// non-terminal; a type the bitmap lists goes upstream.
#[test]
fn nodata_from_the_type_bitmap() {
    let (mut net, rec) = setup();
    resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
    let (r, q) = resolve(&mut net, &rec, "mail.example.", RecordType::TXT, NOW + 1000);
    assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NoError, Security::Secure), "{r:?}");
    assert!(r.answer.is_empty());
    assert_eq!(nsec_owners(&r), ["mail.example."]);
    // deep.example. has no records but a name below it: the apex NSEC
    // (example. → b.c.deep.example.) shows an empty non-terminal.
    let (r, q) = resolve(&mut net, &rec, "deep.example.", RecordType::A, NOW + 1000);
    assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NoError, Security::Secure), "{r:?}");
    assert!(r.answer.is_empty());
    assert_eq!(rec.aggressive_hits(), 2);
    // The bitmap lists A at mail.example.: ask.
    let (r, q) = resolve(&mut net, &rec, "mail.example.", RecordType::A, NOW + 1000);
    let a = r.answer.iter().filter(|x| x.record_type() == RecordType::A).count();
    assert_eq!((q, r.rcode, a), (1, ResponseCode::NoError, 1), "{r:?}");
    assert_eq!(rec.aggressive_hits(), 2);
}

/// Nothing is synthesised without validation, for CD clients, or below
/// an unsigned delegation (whose parent-side NSEC is held).
#[test]
fn insecure_unvalidated_and_cd_never_synthesise() {
    // No trust anchors: nothing is validated, nothing indexed.
    let (zone, _) = fixture("nsec-ecdsa");
    let mut net = world(zone);
    net.behave(EXAMPLE, Behaviour::MinimalDenial);
    let plain = recursor(&[("a.root.", ROOT)], |c| c.qname_minimisation = false);
    resolve(&mut net, &plain, "nope.example.", RecordType::A, NOW);
    let (r, q) = resolve(&mut net, &plain, "nop2.example.", RecordType::A, NOW + 1000);
    assert_eq!((q, r.rcode, r.security), (1, ResponseCode::NXDomain, Security::Indeterminate));
    assert_eq!((plain.aggressive_hits(), plain.aggressive_entries()), (0, 0));

    // CD: the client asked for data unvalidated.
    let (mut net, rec) = setup();
    resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
    let (r, q) = resolve_cd(&mut net, &rec, "nop2.example.", RecordType::A, true, NOW + 1000);
    assert_eq!((q, r.rcode, r.security), (1, ResponseCode::NXDomain, Security::Indeterminate));
    assert_eq!(rec.aggressive_hits(), 0);

    // The parent's NSEC at the unsigned delegation insecure.example. is
    // held (from a Secure DS NODATA), yet names below it are the child's.
    let (r, _) = resolve(&mut net, &rec, "insecure.example.", RecordType::DS, NOW + 1000);
    assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Secure), "{r:?}");
    assert_eq!(nsec_owners(&r), ["insecure.example."]);
    let held = rec.aggressive_entries();
    for name in ["nope1.insecure.example.", "nope2.insecure.example."] {
        let (r, q) = resolve(&mut net, &rec, name, RecordType::A, NOW + 2000);
        assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Insecure), "{name}: {r:?}");
        assert!(q >= 1, "{name}: asked upstream");
    }
    assert_eq!(rec.aggressive_hits(), 0);
    assert_eq!(rec.aggressive_entries(), held, "insecure denials are not indexed");
}

/// Entries live no longer than the NSEC TTL (300 s here; SOA MINIMUM 300).
#[test]
fn expired_entries_are_not_used() {
    let (mut net, rec) = setup();
    resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
    let (r, q) = resolve(&mut net, &rec, "nop2.example.", RecordType::A, NOW + 299_000);
    assert_eq!((q, r.rcode), (0, ResponseCode::NXDomain), "still live at 299 s");
    assert!(r.authority.iter().all(|x| x.ttl() <= 1), "TTLs count down: {:?}", r.authority);
    let (r, q) = resolve(&mut net, &rec, "nop3.example.", RecordType::A, NOW + 300_000);
    assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert!(q >= 1, "expired at 300 s: asked upstream");
    assert_eq!(net.log.last().map(|s| s.q.name.clone()), Some(super::fake::n("nop3.example.")));
    assert_eq!(rec.aggressive_hits(), 1);
}

/// A wildcard that exists is never denied: `$.wild.example.` sorts
/// between secure.example. and *.wild.example., so the held NSEC
/// secure. → *.wild. covers it, but that NSEC ends at the wildcard of
/// its closest encloser instead of covering it. The wildcard answer then
/// brings the NSEC *.wild. → www. into the index (a wildcard answer's
/// proof is indexed too).
#[test]
fn an_existing_wildcard_is_not_denied_and_wildcard_proofs_are_indexed() {
    let (mut net, rec) = setup();
    let (r, _) = resolve(&mut net, &rec, "sz.example.", RecordType::A, NOW);
    assert_eq!(nsec_owners(&r), ["example.", "secure.example."], "{r:?}");
    let dollar =
        hickory_proto::rr::Name::from_labels([&b"$"[..], b"wild", b"example"]).unwrap_or_else(|e| panic!("{e}"));
    let mut res = rec.start(crate::Question::new(&dollar, RecordType::TXT), true, false, NOW + 1000);
    let r = super::fake::drive(&mut net, &mut res, NOW + 1000);
    let q = res.queries_sent();
    assert_eq!((r.rcode, r.security), (ResponseCode::NoError, Security::Secure), "{r:?}");
    assert!(r.answer.iter().any(|x| x.record_type() == RecordType::TXT), "the wildcard answered: {r:?}");
    assert_eq!((q, rec.aggressive_hits()), (1, 0));
    assert_eq!(rec.aggressive_entries(), 3, "the wildcard answer's NSEC is held");
    // wild2.example. is covered by *.wild. → www.; *.example. by the apex's.
    let (r, q) = resolve(&mut net, &rec, "wild2.example.", RecordType::A, NOW + 2000);
    assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert_eq!(nsec_owners(&r), ["*.wild.example.", "example."]);
    assert_eq!(rec.aggressive_hits(), 1);
}

/// The index on its own: signatures checked on the way in, bounds, and
/// the SOA's negative TTL as a cap (RFC 9077).
mod index {
    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    use hickory_proto::rr::{RData, Record, RecordType};

    use super::super::fake::{n, soa};
    use super::super::signer::ZoneKey;
    use crate::recursive::aggressive::{AggressiveNsec, Limits};

    const T: u64 = 1_780_000_000_000;

    fn nsec(owner: &str, next: &str, ttl: u32) -> Record {
        let types = [RecordType::A, RecordType::RRSIG, RecordType::NSEC];
        Record::from_rdata(n(owner), ttl, RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(n(next), types))))
    }

    /// Zone `t.`: NSEC b. → d. → f. → h. (TTL `ttl`), SOA TTL 3600 MINIMUM
    /// `min`, signed; and the zone's keys.
    fn zone(ttl: u32, min: u32) -> (Vec<Record>, Vec<Record>) {
        let key = ZoneKey::new(&n("t."));
        let mut recs = vec![soa("t.", 3600, min)];
        for (o, x) in [("t.", "b.t."), ("b.t.", "d.t."), ("d.t.", "f.t."), ("f.t.", "h.t."), ("h.t.", "t.")] {
            recs.push(nsec(o, x, ttl));
        }
        (key.sign_zone(recs, (T / 1000) as u32), vec![key.dnskey()])
    }

    fn limits(per_zone: usize, total: usize) -> Limits {
        Limits { per_zone, zones: 8, total }
    }

    #[test]
    fn valid_records_go_in_and_deny_covered_names() {
        let (recs, keys) = zone(300, 300);
        let idx = AggressiveNsec::default();
        idx.insert(&n("t."), &recs, &keys, T);
        assert_eq!(idx.len(), 5);
        let s = idx.synthesise(&n("c.t."), RecordType::A, T).unwrap_or_else(|| panic!("c.t. is covered"));
        assert!(s.nxdomain);
        assert!(s.authority.iter().all(|r| r.ttl() == 300));
        assert_eq!(idx.synthesise(&n("d.t."), RecordType::AAAA, T).map(|s| s.nxdomain), Some(false), "NODATA");
        assert_eq!(idx.synthesise(&n("d.t."), RecordType::A, T), None, "A is in the bitmap");
        assert_eq!(idx.synthesise(&n("x.other."), RecordType::A, T), None, "no zone held");
        assert_eq!(idx.synthesise(&n("c.t."), RecordType::ANY, T), None);
        assert_eq!(idx.hits(), 2);
    }

    #[test]
    fn unsigned_or_wrongly_signed_records_stay_out() {
        let (recs, _) = zone(300, 300);
        let (_, other_keys) = zone(300, 300);
        let idx = AggressiveNsec::default();
        idx.insert(&n("t."), &recs, &other_keys, T);
        let unsigned: Vec<Record> = recs.iter().filter(|r| r.record_type() != RecordType::RRSIG).cloned().collect();
        let (_, keys) = zone(300, 300);
        idx.insert(&n("t."), &unsigned, &keys, T);
        assert_eq!(idx.len(), 0);
        assert_eq!(idx.synthesise(&n("c.t."), RecordType::A, T), None);
    }

    #[test]
    fn soa_minimum_caps_the_lifetime() {
        let (recs, keys) = zone(3600, 60);
        let idx = AggressiveNsec::default();
        idx.insert(&n("t."), &recs, &keys, T);
        let s = idx.synthesise(&n("c.t."), RecordType::A, T).unwrap_or_else(|| panic!("covered"));
        assert!(s.authority.iter().all(|r| r.ttl() == 60), "{:?}", s.authority);
        assert!(idx.synthesise(&n("c.t."), RecordType::A, T + 59_000).is_some());
        assert_eq!(idx.synthesise(&n("c.t."), RecordType::A, T + 60_000), None);
    }

    #[test]
    fn bounded_per_zone_and_in_all_with_expired_entries_purged() {
        let (recs, keys) = zone(300, 300);
        let idx = AggressiveNsec::with_limits(limits(3, 100));
        idx.insert(&n("t."), &recs, &keys, T);
        assert_eq!(idx.len(), 3);
        let idx = AggressiveNsec::with_limits(limits(100, 2));
        idx.insert(&n("t."), &recs, &keys, T);
        assert_eq!(idx.len(), 2);
        // Once those expired, a new insert makes room.
        let later = T + 301_000;
        let (recs2, keys2) = zone(300, 300);
        idx.insert(&n("t."), &recs2, &keys2, later);
        assert_eq!(idx.len(), 2);
        assert!(idx.synthesise(&n("a.t."), RecordType::A, later).is_some(), "fresh t. → b.t. held");
    }
}

/// NSEC3 (RFC 8198 §5.2): after one NXDOMAIN (the fake server sends the
/// zone's whole NSEC3 chain), other names are denied from the index by
/// the closest encloser proof, and NODATA from a matching record.
#[test]
fn nsec3_denials_are_synthesised() {
    let (zone, anchors) = fixture("nsec3");
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |c| c.qname_minimisation = false, Some(anchors));
    let (r, q) = resolve(&mut net, &rec, "nope.example.", RecordType::A, NOW);
    assert_eq!((r.rcode, r.security), (ResponseCode::NXDomain, Security::Secure), "{r:?}");
    assert!(q > 0);
    assert!(rec.aggressive_entries() > 0, "the NSEC3 records are held");
    for (i, name) in ["nop2.example.", "zzz.example.", "a.b.example.", "x.mail.example."].iter().enumerate() {
        let (r, q) = resolve(&mut net, &rec, name, RecordType::A, NOW + 1000);
        assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NXDomain, Security::Secure), "{name}: {r:?}");
        assert!(r.authority.iter().any(|x| x.record_type() == RecordType::NSEC3), "{name}");
        assert_eq!(rec.aggressive_hits(), i as u64 + 1);
    }
    let (r, q) = resolve(&mut net, &rec, "mail.example.", RecordType::TXT, NOW + 1000);
    assert_eq!((q, r.rcode, r.security), (0, ResponseCode::NoError, Security::Secure), "{r:?}");
    assert!(r.answer.is_empty());
    // A wildcard exists at wild.example.: never denied.
    let (r, q) = resolve(&mut net, &rec, "any.wild.example.", RecordType::TXT, NOW + 1000);
    assert_eq!((q, r.rcode, r.security), (1, ResponseCode::NoError, Security::Secure), "{r:?}");
    // Types the bitmap lists are asked for.
    let (r, q) = resolve(&mut net, &rec, "mail.example.", RecordType::A, NOW + 1000);
    assert_eq!((q, r.rcode), (1, ResponseCode::NoError), "{r:?}");
    // Expired with the NSEC3 TTL (300 s).
    let (_, q) = resolve(&mut net, &rec, "nop3.example.", RecordType::A, NOW + 300_000);
    assert!(q >= 1);
}

/// An opt-out NSEC3 chain is never used aggressively.
#[test]
fn nsec3_opt_out_is_never_used() {
    let (zone, anchors) = fixture("nsec3-optout");
    let mut net = world(zone);
    let rec = recursor_with(&[("a.root.", ROOT)], |c| c.qname_minimisation = false, Some(anchors));
    for (i, name) in ["nope.example.", "nop2.example.", "zzz.example."].iter().enumerate() {
        let (r, q) = resolve(&mut net, &rec, name, RecordType::A, NOW + i as u64 * 1000);
        assert_eq!(r.rcode, ResponseCode::NXDomain, "{name}: {r:?}");
        assert!(q >= 1, "{name}: asked upstream");
    }
    let (r, q) = resolve(&mut net, &rec, "mail.example.", RecordType::TXT, NOW + 5000);
    assert_eq!(r.rcode, ResponseCode::NoError, "{r:?}");
    assert!(q >= 1);
    assert_eq!(rec.aggressive_hits(), 0);
    assert_eq!(rec.aggressive_entries(), 0, "no opt-out NSEC3 record is held");
}
