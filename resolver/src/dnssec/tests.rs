//! Tests on real signed zones: resolver/tests/data/dnssec/*.zone, made
//! by ldns-signzone / dnssec-signzone (see make.sh there), valid until
//! 2036-01-01.

use std::str::FromStr;

use hickory_proto::dnssec::rdata::{DNSSECRData, DS, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::verify::{dnskey, ds, rrsig};
use super::*;
use crate::Ede;

/// 2026-01-01, inside every fixture's validity but expired.zone's.
pub(super) const NOW: u64 = 1_767_225_600;

pub(super) fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn load(file: &str) -> Vec<Record> {
    let path = format!("{}/tests/data/dnssec/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text::parse_records(&text, None).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One signed fixture: its records and its KSK's DS.
struct Zone {
    records: Vec<Record>,
    ds: Vec<Record>,
}

impl Zone {
    fn load(stem: &str) -> Self {
        Zone { records: load(&format!("{stem}.zone")), ds: load(&format!("{stem}.ds")) }
    }

    fn rrset(&self, owner: &str, t: RecordType) -> Vec<Record> {
        let owner = name(owner);
        self.records.iter().filter(|r| r.name() == &owner && r.record_type() == t).cloned().collect()
    }

    fn rrsigs(&self) -> Vec<Record> {
        self.records.iter().filter(|r| rrsig(r).is_some()).cloned().collect()
    }

    /// The NSEC or NSEC3 records.
    fn denial(&self) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
            .cloned()
            .collect()
    }

    fn keys(&self) -> Result<Vec<Record>, Ede> {
        validate_dnskeys(&name("example."), &self.rrset("example.", RecordType::DNSKEY), &self.rrsigs(), &self.ds, NOW)
    }

    fn valid_keys(&self) -> Vec<Record> {
        self.keys().unwrap_or_else(|e| panic!("DNSKEY RRset: {e:?}"))
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, Ede>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code,
    }
}

/// The same RRSIG with one field changed by `f`.
fn edit_rrsig(record: &Record, f: impl FnOnce(&RRSIG) -> RRSIG) -> Record {
    let sig = rrsig(record).unwrap_or_else(|| panic!("not an RRSIG"));
    Record::from_rdata(record.name().clone(), record.ttl(), RData::DNSSEC(DNSSECRData::RRSIG(f(sig))))
}

fn rrsig_with(s: &RRSIG, sig: Vec<u8>, signer: Name) -> RRSIG {
    RRSIG::new(
        s.type_covered(),
        s.algorithm(),
        s.num_labels(),
        s.original_ttl(),
        s.sig_expiration().get(),
        s.sig_inception().get(),
        s.key_tag(),
        signer,
        sig,
    )
}

/// ECDSA P-256 (NSEC, NSEC3, NSEC3 opt-out), RSA/SHA-256, Ed25519, and
/// ECDSA P-384 (whose DS ldns makes with SHA-384).
const ALL: [&str; 6] = ["nsec-ecdsa", "rsa", "ed25519", "p384", "nsec3", "nsec3-optout"];

#[test]
fn every_algorithm_validates_keys_and_data() {
    for stem in ALL {
        let z = Zone::load(stem);
        let keys = z.valid_keys();
        assert_eq!(keys.len(), 2, "{stem}: KSK and ZSK");
        let a = z.rrset("www.example.", RecordType::A);
        let proof = validate_rrset(&a, &z.rrsigs(), &keys, NOW).unwrap_or_else(|e| panic!("{stem}: {e:?}"));
        assert_eq!(proof.signer, name("example."));
        assert_eq!(proof.wildcard, None);
        assert_eq!(proof.ttl, 3600);
        // Near expiry the TTL is cut to what is left (RFC 4035 §5.3.3).
        let late = 2_082_758_400 - 100;
        let proof = validate_rrset(&a, &z.rrsigs(), &keys, late).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(proof.ttl, 100);
        // TTLs as decremented by a cache do not change what was signed.
        let mut dnskeys = z.rrset("example.", RecordType::DNSKEY);
        dnskeys[1].set_ttl(17);
        validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &z.ds, NOW)
            .unwrap_or_else(|e| panic!("{stem} with TTLs changed: {e:?}"));
        let mx = z.rrset("example.", RecordType::MX);
        validate_rrset(&mx, &z.rrsigs(), &keys, NOW).unwrap_or_else(|e| panic!("{stem} MX: {e:?}"));
    }
}

#[test]
fn flipped_signature_byte_is_bogus() {
    for stem in ALL {
        let z = Zone::load(stem);
        let keys = z.valid_keys();
        let a = z.rrset("www.example.", RecordType::A);
        let sigs: Vec<Record> = z
            .rrsigs()
            .iter()
            .map(|r| {
                edit_rrsig(r, |s| {
                    let mut bytes = s.sig().to_vec();
                    bytes[10] ^= 0x01;
                    rrsig_with(s, bytes, s.signer_name().clone())
                })
            })
            .collect();
        let e = validate_rrset(&a, &sigs, &keys, NOW).err().unwrap_or_else(|| panic!("{stem}: accepted"));
        assert_eq!(e.code, Ede::DNSSEC_BOGUS, "{stem}: {e:?}");
        assert!(e.text.contains("www.example."), "{}", e.text);
        // And the DNSKEY RRset with its signature flipped.
        let e = validate_dnskeys(&name("example."), &z.rrset("example.", RecordType::DNSKEY), &sigs, &z.ds, NOW);
        assert_eq!(code(e), Ede::DNSSEC_BOGUS, "{stem}");
    }
}

#[test]
fn signature_checks_are_bounded() {
    // KeyTrap (CVE-2023-50387): many bad RRSIGs cost at most
    // MAX_VERIFICATIONS checks, then the RRset is bogus.
    let z = Zone::load("nsec-ecdsa");
    let keys = z.valid_keys();
    let a = z.rrset("www.example.", RecordType::A);
    let good = z
        .rrsigs()
        .into_iter()
        .find(|r| r.name() == &name("www.example.") && rrsig(r).is_some_and(|s| s.type_covered() == RecordType::A));
    let good = good.unwrap_or_else(|| panic!("no RRSIG A"));
    let mut sigs: Vec<Record> = (0..12u8)
        .map(|i| {
            edit_rrsig(&good, |s| {
                let mut bytes = s.sig().to_vec();
                bytes[i as usize] ^= 0x01;
                rrsig_with(s, bytes, s.signer_name().clone())
            })
        })
        .collect();
    sigs.push(good.clone());
    let e = validate_rrset(&a, &sigs, &keys, NOW).err().unwrap_or_else(|| panic!("13th signature checked"));
    assert_eq!(e.code, Ede::DNSSEC_BOGUS);
    assert!(e.text.contains("too many"), "{}", e.text);
    // Within the budget the good one is found.
    let few: Vec<Record> = sigs[5..].to_vec();
    validate_rrset(&a, &few, &keys, NOW).unwrap_or_else(|e| panic!("{e:?}"));
}

#[test]
fn changed_data_is_bogus() {
    let z = Zone::load("nsec-ecdsa");
    let keys = z.valid_keys();
    let mut a = z.rrset("www.example.", RecordType::A);
    a[0].set_data(RData::A("192.0.2.11".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert_eq!(code(validate_rrset(&a, &z.rrsigs(), &keys, NOW)), Ede::DNSSEC_BOGUS);
}

#[test]
fn ds_of_another_key_is_bogus() {
    let z = Zone::load("nsec-ecdsa");
    let dnskeys = z.rrset("example.", RecordType::DNSKEY);
    // The DS of another zone's key: no key here has its tag (EDE 9,
    // RFC 8914 §4.10 "DNSKEY Missing").
    let other = Zone::load("nsec3");
    let e = validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &other.ds, NOW);
    assert_eq!(code(e), Ede::DNSKEY_MISSING);
    // Right key tag, wrong digest: DS mismatch, EDE 6.
    let d = ds(&z.ds[0]).unwrap_or_else(|| panic!("no DS"));
    let mut digest = d.digest().to_vec();
    digest[0] ^= 0xff;
    let bad = Record::from_rdata(
        name("example."),
        3600,
        RData::DNSSEC(DNSSECRData::DS(DS::new(d.key_tag(), d.algorithm(), d.digest_type(), digest))),
    );
    let e = validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &[bad], NOW);
    assert_eq!(code(e), Ede::DNSSEC_BOGUS);
}

#[test]
fn dnskey_rrset_signed_only_by_zsk_is_bogus() {
    let z = Zone::load("nsec-ecdsa");
    let dnskeys = z.rrset("example.", RecordType::DNSKEY);
    let ksk_tag = ds(&z.ds[0]).map(|d| d.key_tag()).unwrap_or_default();
    let sigs: Vec<Record> =
        z.rrsigs().into_iter().filter(|r| rrsig(r).is_some_and(|s| s.key_tag() != ksk_tag)).collect();
    let e = validate_dnskeys(&name("example."), &dnskeys, &sigs, &z.ds, NOW);
    assert_eq!(code(e), Ede::RRSIGS_MISSING);
}

#[test]
fn expired_and_not_yet_valid() {
    let z = Zone::load("expired");
    let e = z.keys().err().unwrap_or_else(|| panic!("expired zone accepted"));
    assert_eq!(e.code, Ede::SIGNATURE_EXPIRED, "{e:?}");
    assert!(e.text.contains("expired 2020-01-01"), "{}", e.text);
    assert!(e.text.contains("DNSKEY example."), "{}", e.text);
    // The same zone seen in 2019-06: valid; and in 2018: not yet valid.
    let dnskeys = z.rrset("example.", RecordType::DNSKEY);
    let mid_2019 = 1_560_000_000;
    validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &z.ds, mid_2019).unwrap_or_else(|e| panic!("{e:?}"));
    let e = validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &z.ds, 1_520_000_000);
    assert_eq!(code(e), Ede::SIGNATURE_NOT_YET_VALID);
}

#[test]
fn missing_signatures_and_keys() {
    let z = Zone::load("nsec-ecdsa");
    let keys = z.valid_keys();
    let a = z.rrset("www.example.", RecordType::A);
    assert_eq!(code(validate_rrset(&a, &[], &keys, NOW)), Ede::RRSIGS_MISSING);
    let other = Zone::load("ed25519").valid_keys();
    assert_eq!(code(validate_rrset(&a, &z.rrsigs(), &other, NOW)), Ede::DNSKEY_MISSING);
    assert_eq!(code(validate_dnskeys(&name("example."), &[], &z.rrsigs(), &z.ds, NOW)), Ede::DNSKEY_MISSING);
}

#[test]
fn unsupported_digest_or_algorithm_is_insecure() {
    let z = Zone::load("nsec-ecdsa");
    let dnskeys = z.rrset("example.", RecordType::DNSKEY);
    let d = ds(&z.ds[0]).unwrap_or_else(|| panic!("no DS"));
    let with = |alg: Algorithm, digest: DigestType| {
        Record::from_rdata(
            name("example."),
            3600,
            RData::DNSSEC(DNSSECRData::DS(DS::new(d.key_tag(), alg, digest, d.digest().to_vec()))),
        )
    };
    let e =
        validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &[with(d.algorithm(), DigestType::Unknown(3))], NOW)
            .err()
            .unwrap_or_else(|| panic!("GOST DS accepted"));
    assert_eq!(e.code, Ede::UNSUPPORTED_DS_DIGEST);
    assert!(is_insecure(&e));
    let e = validate_dnskeys(
        &name("example."),
        &dnskeys,
        &z.rrsigs(),
        &[with(Algorithm::Unknown(253), d.digest_type())],
        NOW,
    )
    .err()
    .unwrap_or_else(|| panic!("private algorithm accepted"));
    assert_eq!(e.code, Ede::UNSUPPORTED_DNSKEY_ALGORITHM);
    assert!(is_insecure(&e));
    // An unsupported DS next to a good one does not make it insecure.
    let both = [with(d.algorithm(), DigestType::Unknown(3)), z.ds[0].clone()];
    validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &both, NOW).unwrap_or_else(|e| panic!("{e:?}"));
}

#[test]
fn anchor_dnskey_works_like_a_ds() {
    let z = Zone::load("rsa");
    let dnskeys = z.rrset("example.", RecordType::DNSKEY);
    let ksk: Vec<Record> = dnskeys.iter().filter(|r| dnskey(r).is_some_and(|k| k.flags() == 257)).cloned().collect();
    assert_eq!(ksk.len(), 1);
    validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &ksk, NOW).unwrap_or_else(|e| panic!("{e:?}"));
    let zsk: Vec<Record> = dnskeys.iter().filter(|r| dnskey(r).is_some_and(|k| k.flags() == 256)).cloned().collect();
    // The ZSK as anchor: it does not sign the DNSKEY RRset.
    assert_eq!(code(validate_dnskeys(&name("example."), &dnskeys, &z.rrsigs(), &zsk, NOW)), Ede::DNSSEC_BOGUS);
}

#[test]
fn wildcard_expansion_is_reported() {
    let z = Zone::load("nsec-ecdsa");
    let keys = z.valid_keys();
    let rename = |r: &Record| {
        let mut r = r.clone();
        r.set_name(name("foo.wild.example."));
        r
    };
    let txt: Vec<Record> = z.rrset("*.wild.example.", RecordType::TXT).iter().map(rename).collect();
    let sigs: Vec<Record> = z.rrsigs().iter().filter(|r| r.name() == &name("*.wild.example.")).map(rename).collect();
    let proof = validate_rrset(&txt, &sigs, &keys, NOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(proof.wildcard, Some(name("*.wild.example.")));
    prove_wildcard(&name("foo.wild.example."), &name("*.wild.example."), &name("example."), &z.denial())
        .unwrap_or_else(|e| panic!("{e:?}"));
}

#[test]
fn nsec_proofs() {
    let z = Zone::load("nsec-ecdsa");
    let ex = name("example.");
    let all = z.denial();
    prove_nxdomain(&name("nope.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    prove_nxdomain(&name("a.b.nope.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(code(prove_nxdomain(&name("www.example."), &ex, &all)), Ede::DNSSEC_BOGUS);
    // Under the wildcard, names exist.
    assert!(prove_nxdomain(&name("x.wild.example."), &ex, &all).is_err());
    // Only a wrong NSEC (www's: it covers nothing before "www").
    let wrong: Vec<Record> = all.iter().filter(|r| r.name() == &name("www.example.")).cloned().collect();
    assert_eq!(code(prove_nxdomain(&name("nope.example."), &ex, &wrong)), Ede::NSEC_MISSING);
    assert_eq!(code(prove_nxdomain(&name("nope.example."), &ex, &[])), Ede::NSEC_MISSING);

    prove_nodata(&name("www.example."), RecordType::MX, &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(prove_nodata(&name("www.example."), RecordType::A, &ex, &all).is_err());
    prove_nodata(&name("c.deep.example."), RecordType::A, &ex, &all).unwrap_or_else(|e| panic!("ENT: {e:?}"));
    prove_nodata(&name("x.wild.example."), RecordType::A, &ex, &all).unwrap_or_else(|e| panic!("wildcard: {e:?}"));
    assert!(prove_nodata(&name("x.wild.example."), RecordType::TXT, &ex, &all).is_err());
    // The parent side of a delegation says nothing of the child's types.
    assert!(prove_nodata(&name("insecure.example."), RecordType::A, &ex, &all).is_err());

    prove_no_ds(&name("insecure.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(prove_no_ds(&name("secure.example."), &ex, &all).is_err());
    assert!(prove_no_ds(&name("www.example."), &ex, &all).is_err());
    assert!(prove_no_ds(&name("nope.example."), &ex, &all).is_err());

    assert!(prove_wildcard(&name("www.example."), &name("*.example."), &ex, &all).is_err());
    // a.foo.wild from *.wild: foo.wild.example. would have to not exist,
    // and it does not, so this holds.
    prove_wildcard(&name("a.foo.wild.example."), &name("*.wild.example."), &ex, &all)
        .unwrap_or_else(|e| panic!("{e:?}"));
    // b.c.deep exists, so x.c.deep cannot come from a *.deep wildcard.
    assert!(prove_wildcard(&name("x.c.deep.example."), &name("*.deep.example."), &ex, &all).is_err());
}

#[test]
fn nsec_nxdomain_needs_both_nsecs() {
    let z = Zone::load("nsec-ecdsa");
    let ex = name("example.");
    let all = z.denial();
    let at = |owner: &str| all.iter().filter(|r| r.name() == &name(owner)).cloned().collect::<Vec<_>>();
    // nope.example. falls between mail and ns1; *.example. right after
    // the apex, in the apex NSEC's span.
    let qname_nsec = at("mail.example.");
    let wildcard_nsec = at("example.");
    let both: Vec<Record> = qname_nsec.iter().chain(&wildcard_nsec).cloned().collect();
    prove_nxdomain(&name("nope.example."), &ex, &both).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(code(prove_nxdomain(&name("nope.example."), &ex, &qname_nsec)), Ede::NSEC_MISSING);
    assert_eq!(code(prove_nxdomain(&name("nope.example."), &ex, &wildcard_nsec)), Ede::NSEC_MISSING);
    // Records of another zone do not count.
    assert_eq!(code(prove_nxdomain(&name("nope.example."), &name("other."), &both)), Ede::NSEC_MISSING);
}

#[test]
fn nsec3_nxdomain_needs_all_three_parts() {
    let z = Zone::load("nsec3");
    let ex = name("example.");
    let all = z.denial();
    let pick = |f: &dyn Fn(&Record) -> bool| all.iter().find(|r| f(r)).cloned().unwrap_or_else(|| panic!("none"));
    // RFC 5155 §8.4: the closest encloser (the apex) matched, the next
    // closer name (nope.example.) covered, the wildcard *.example. covered.
    let ce = pick(&|r| nsec3_matches(&ex, r));
    let next_closer = pick(&|r| nsec3_covers(&name("nope.example."), r));
    let wildcard = pick(&|r| nsec3_covers(&name("*.example."), r));
    let mut parts = vec![ce, next_closer, wildcard];
    parts.dedup();
    prove_nxdomain(&name("nope.example."), &ex, &parts).unwrap_or_else(|e| panic!("{e:?}"));
    for i in 0..parts.len() {
        let mut fewer = parts.clone();
        fewer.remove(i);
        if fewer.iter().any(|r| r == &parts[i]) {
            continue;
        }
        assert!(prove_nxdomain(&name("nope.example."), &ex, &fewer).is_err(), "proof without part {i}");
    }
}

#[test]
fn nsec_coverage_for_aggressive_caching() {
    let z = Zone::load("nsec-ecdsa");
    let all = z.denial();
    let at = |owner: &str| {
        all.iter().find(|r| r.name() == &name(owner)).cloned().unwrap_or_else(|| panic!("no NSEC at {owner}"))
    };
    // mail.example. NSEC ns1.example.
    assert!(nsec_covers(&name("mz.example."), &at("mail.example.")));
    assert!(!nsec_covers(&name("mail.example."), &at("mail.example.")));
    assert!(!nsec_covers(&name("ns1.example."), &at("mail.example.")));
    assert!(!nsec_covers(&name("zz.example."), &at("mail.example.")));
    // The last NSEC (www) wraps to the apex.
    assert!(nsec_covers(&name("zzz.example."), &at("www.example.")));
    assert!(!nsec_covers(&name("zzz.example.net."), &at("www.example.")));
    // insecure.example. is a delegation: nothing below it is covered.
    assert!(!nsec_covers(&name("a.insecure.example."), &at("insecure.example.")));
}

#[test]
fn nsec3_proofs() {
    let z = Zone::load("nsec3");
    let ex = name("example.");
    let all = z.denial();
    assert!(all.iter().all(|r| r.record_type() == RecordType::NSEC3));
    prove_nxdomain(&name("nope.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!relies_on_opt_out(&name("nope.example."), &ex, &all));
    assert!(prove_nxdomain(&name("www.example."), &ex, &all).is_err());
    assert!(prove_nxdomain(&name("x.wild.example."), &ex, &all).is_err());
    prove_nodata(&name("www.example."), RecordType::MX, &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(prove_nodata(&name("www.example."), RecordType::AAAA, &ex, &all).is_err());
    prove_nodata(&name("c.deep.example."), RecordType::A, &ex, &all).unwrap_or_else(|e| panic!("ENT: {e:?}"));
    prove_nodata(&name("x.wild.example."), RecordType::A, &ex, &all).unwrap_or_else(|e| panic!("wildcard: {e:?}"));
    prove_no_ds(&name("insecure.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(prove_no_ds(&name("secure.example."), &ex, &all).is_err());
    prove_wildcard(&name("foo.wild.example."), &name("*.wild.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(prove_wildcard(&name("x.c.deep.example."), &name("*.deep.example."), &ex, &all).is_err());
    // Only one NSEC3, the apex's: no closest-encloser proof.
    let apex_only: Vec<Record> = all.iter().filter(|r| nsec3_matches(&ex, r)).cloned().collect();
    assert_eq!(apex_only.len(), 1);
    assert!(prove_nxdomain(&name("nope.example."), &ex, &apex_only).is_err());
    // Each NSEC3 is signed like any RRset.
    let keys = z.valid_keys();
    for r in &all {
        validate_rrset(std::slice::from_ref(r), &z.rrsigs(), &keys, NOW).unwrap_or_else(|e| panic!("{e:?}"));
    }
}

#[test]
fn nsec3_opt_out() {
    let z = Zone::load("nsec3-optout");
    let ex = name("example.");
    let all = z.denial();
    // insecure.example. has no NSEC3 of its own: the opt-out span proves
    // the delegation unsigned (RFC 5155 §8.6).
    assert!(!all.iter().any(|r| nsec3_matches(&name("insecure.example."), r)));
    prove_no_ds(&name("insecure.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    prove_nodata(&name("insecure.example."), RecordType::DS, &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(prove_no_ds(&name("secure.example."), &ex, &all).is_err());
    prove_nxdomain(&name("nope.example."), &ex, &all).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(relies_on_opt_out(&name("nope.example."), &ex, &all));
    // Without opt-out, no NSEC3 at a name is not a no-DS proof.
    let plain = Zone::load("nsec3").denial();
    assert!(prove_no_ds(&name("nope.example."), &ex, &plain).is_err());
}

#[test]
fn nsec3_iterations_above_150_are_insecure() {
    let z = Zone::load("nsec3-iter200");
    let ex = name("example.");
    let all = z.denial();
    let e = prove_nxdomain(&name("nope.example."), &ex, &all).err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.code, Ede::UNSUPPORTED_NSEC3_ITERATIONS);
    assert!(is_insecure(&e));
    assert!(e.text.contains("200"), "{}", e.text);
    assert_eq!(code(prove_nodata(&name("www.example."), RecordType::MX, &ex, &all)), 27);
    assert!(!all.iter().any(|r| nsec3_covers(&name("nope.example."), r)));
    // The zone's keys and data still validate: only denial is affected.
    z.valid_keys();
}

#[test]
fn nsec3_coverage_for_aggressive_caching() {
    let z = Zone::load("nsec3");
    let all = z.denial();
    let n = name("nope.example.");
    assert_eq!(all.iter().filter(|r| nsec3_covers(&n, r)).count(), 1);
    assert!(!all.iter().any(|r| nsec3_matches(&n, r)));
    let www = name("www.example.");
    assert_eq!(all.iter().filter(|r| nsec3_matches(&www, r)).count(), 1);
    assert!(!all.iter().any(|r| nsec3_covers(&www, r)));
}

#[test]
fn builtin_root_anchors_match_the_root_ksks() {
    let anchors = TrustAnchors::builtin_root();
    let root = Name::root();
    let ds_set = anchors.for_zone(&root).unwrap_or_else(|| panic!("no root anchor"));
    let tags: Vec<u16> = ds_set.iter().filter_map(|r| ds(r)).map(|d| d.key_tag()).collect();
    assert_eq!(tags, [20326, 38696]);
    // root.key: the two KSKs as published (Debian's dns-root-data).
    let keys = load("root.key");
    assert_eq!(keys.len(), 2);
    for (k, d) in keys.iter().zip(ds_set) {
        let k = dnskey(k).unwrap_or_else(|| panic!("not a DNSKEY"));
        let d = ds(d).unwrap_or_else(|| panic!("not a DS"));
        assert_eq!(k.calculate_key_tag().ok(), Some(d.key_tag()));
        let digest = k.to_digest(&root, DigestType::SHA256).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest.as_ref(), d.digest());
    }
    assert_eq!(anchors.closest(&name("www.example.com.")), Some(&root));
}

#[test]
fn anchor_files() {
    let text = "; an anchor file\n$ORIGIN example.\n@ 3600 IN DS 46048 13 2 e748d6488390787b129628aa1fbe51d60bd5fe1b327f8370f281ae389a373879\nsub IN DNSKEY 257 3 13 ( hsmEQ0wWKB+drffoT66EqswKVCqv1GPUhHJMgp58UktxC0HCHRAjpEsZA6vTtmxI6asVuGIgsLKthFusc9+/eA== )\n";
    let a = TrustAnchors::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.closest(&name("www.example.")), Some(&name("example.")));
    assert_eq!(a.closest(&name("a.sub.EXAMPLE.")), Some(&name("sub.example.")));
    assert_eq!(a.closest(&name("example.net.")), None);
    assert_eq!(a.for_zone(&name("example.")).map(<[Record]>::len), Some(1));
    let e = TrustAnchors::parse("example. IN DS 1 13 2 abcd\nexample. IN A 192.0.2.1\n").err();
    assert!(matches!(e, Some(AnchorError::NotAnAnchor { line: 2, .. })), "{e:?}");
    let e = TrustAnchors::parse("example. IN DS 1 13 2 abcd\n\nexample. IN DNSKEY 257 3 13 !!!\n")
        .err()
        .unwrap_or_else(|| panic!("bad base64 accepted"));
    assert!(e.to_string().contains("line 3"), "{e}");
    assert!(matches!(TrustAnchors::parse("; nothing\n"), Err(AnchorError::Empty)));
    // The fixtures' DS files are anchor files too.
    let ds_text = std::fs::read_to_string(format!("{}/tests/data/dnssec/nsec3-optout.ds", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"));
    TrustAnchors::parse(&ds_text).unwrap_or_else(|e| panic!("{e}"));
}
