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
