//! RFC 5011 on a virtual clock, with keys made and RRsets signed here
//! (hickory's ring signers), since key rollovers and self-signed
//! revocations are not something a static fixture can show over time.

use std::rc::Rc;

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, SigningKey, TBS};
use hickory_proto::rr::{DNSClass, RData, Record};

use super::rfc5011::{ADD_HOLD_DOWN_S, REMOVE_HOLD_DOWN_S};
use super::tests::name;
use super::verify::{dnskey, key_tag};
use super::*;

const DAY: u64 = 86_400;
const T0: u64 = 1_767_225_600;

/// A key pair (rebuilt from its PKCS#8 on each use, as hickory's signer
/// is not Clone) and the DNSKEY flags it is published with.
struct Key {
    signer: Rc<dyn Fn() -> EcdsaSigningKey>,
    flags: u16,
}

impl Key {
    fn new(flags: u16) -> Self {
        let alg = Algorithm::ECDSAP256SHA256;
        let pkcs8 = EcdsaSigningKey::generate_pkcs8(alg).unwrap_or_else(|e| panic!("{e}"));
        let signer = move || EcdsaSigningKey::from_pkcs8(&pkcs8, alg).unwrap_or_else(|e| panic!("{e}"));
        Key { signer: Rc::new(signer), flags }
    }

    /// The same key pair with the REVOKE bit set (RFC 5011 §2.1).
    fn revoked(&self) -> Key {
        Key { signer: Rc::clone(&self.signer), flags: self.flags | 0x0080 }
    }

    fn dnskey(&self) -> DNSKEY {
        let public = (self.signer)().to_public_key().unwrap_or_else(|e| panic!("{e}"));
        DNSKEY::with_flags(self.flags, public)
    }

    fn record(&self) -> Record {
        Record::from_rdata(name("example."), 3600, RData::DNSSEC(DNSSECRData::DNSKEY(self.dnskey())))
    }

    fn tag(&self) -> u16 {
        key_tag(&self.dnskey()).unwrap_or_else(|| panic!("no key tag"))
    }

    /// An RRSIG by this key over `rrset`, valid around `now`.
    fn sign(&self, rrset: &[Record], now: u64) -> Record {
        let first = &rrset[0];
        let unsigned = RRSIG::new(
            first.record_type(),
            Algorithm::ECDSAP256SHA256,
            first.name().num_labels(),
            first.ttl(),
            (now + 10 * DAY) as u32,
            (now - DAY) as u32,
            self.tag(),
            name("example."),
            Vec::new(),
        );
        let tbs = TBS::from_sig(first.name(), DNSClass::IN, &unsigned, rrset.iter()).unwrap_or_else(|e| panic!("{e}"));
        let sig = (self.signer)().sign(&tbs).unwrap_or_else(|e| panic!("{e}"));
        let s = &unsigned;
        let signed = RRSIG::new(
            s.type_covered(),
            s.algorithm(),
            s.num_labels(),
            s.original_ttl(),
            s.sig_expiration().get(),
            s.sig_inception().get(),
            s.key_tag(),
            s.signer_name().clone(),
            sig,
        );
        Record::from_rdata(first.name().clone(), first.ttl(), RData::DNSSEC(DNSSECRData::RRSIG(signed)))
    }
}

/// What the resolver would hand `observe`: the DNSKEY RRset `keys`
/// signed by each of `signers`, after validating it against `trusted`.
fn rrset(keys: &[&Key], signers: &[&Key], state: &AnchorState, now: u64) -> Vec<Record> {
    let records: Vec<Record> = keys.iter().map(|k| k.record()).collect();
    let sigs: Vec<Record> = signers.iter().map(|k| k.sign(&records, now)).collect();
    validate_dnskeys(&name("example."), &records, &sigs, &state.trusted(), now)
        .unwrap_or_else(|e| panic!("DNSKEY RRset does not validate: {e:?}"));
    records.into_iter().chain(sigs).collect()
}

fn trusted_tags(state: &AnchorState) -> Vec<u16> {
    let mut tags: Vec<u16> = state.trusted().iter().filter_map(|r| dnskey(r)).filter_map(key_tag).collect();
    tags.sort_unstable();
    tags
}

fn sorted(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v
}

#[test]
fn add_hold_down_then_revoke_then_remove() {
    let k1 = Key::new(257);
    let k2 = Key::new(257);
    let zsk = Key::new(256);
    let mut state = AnchorState::new(&name("example."), &[k1.record()], T0);
    assert_eq!(trusted_tags(&state), [k1.tag()]);

    // A new KSK appears: AddPend, not yet trusted.
    let seen = rrset(&[&k1, &k2, &zsk], &[&k1], &state, T0);
    state.observe(&seen, T0);
    assert_eq!(state.state_of(k2.tag()), Some(KeyState::AddPend));
    assert_eq!(state.state_of(zsk.tag()), None, "ZSKs are not tracked");
    assert_eq!(trusted_tags(&state), [k1.tag()]);

    // Still pending just before 30 days.
    let t = T0 + ADD_HOLD_DOWN_S - 1;
    state.observe(&rrset(&[&k1, &k2, &zsk], &[&k1], &state, t), t);
    assert_eq!(state.state_of(k2.tag()), Some(KeyState::AddPend));

    // After the hold-down: Valid and trusted.
    let t = T0 + ADD_HOLD_DOWN_S;
    state.observe(&rrset(&[&k1, &k2, &zsk], &[&k1], &state, t), t);
    assert_eq!(state.state_of(k2.tag()), Some(KeyState::Valid));
    assert_eq!(trusted_tags(&state), sorted(vec![k1.tag(), k2.tag()]));

    // k1 revoked, but signed only by k2: not a revocation (RFC 5011 §2.1).
    let k1r = k1.revoked();
    let t = t + DAY;
    state.observe(&rrset(&[&k1r, &k2, &zsk], &[&k2], &state, t), t);
    assert_eq!(state.state_of(k1.tag()), Some(KeyState::Valid));

    // Self-signed revocation: Revoked, no longer trusted.
    let t = t + DAY;
    state.observe(&rrset(&[&k1r, &k2, &zsk], &[&k2, &k1r], &state, t), t);
    assert_eq!(state.state_of(k1r.tag()), Some(KeyState::Revoked));
    assert_eq!(trusted_tags(&state), [k2.tag()]);

    // Removed after the remove hold-down, and never re-added.
    let t = t + REMOVE_HOLD_DOWN_S;
    state.observe(&rrset(&[&k2, &zsk], &[&k2], &state, t), t);
    assert_eq!(state.state_of(k1r.tag()), Some(KeyState::Removed));
    let t = t + DAY;
    state.observe(&rrset(&[&k1, &k2, &zsk], &[&k2], &state, t), t);
    assert_eq!(state.state_of(k1r.tag()), Some(KeyState::Removed));
    assert_eq!(trusted_tags(&state), [k2.tag()]);
}

#[test]
fn missing_pending_and_ds_anchor() {
    let k1 = Key::new(257);
    let k2 = Key::new(257);
    // Start from a DS anchor, as a fresh install would.
    let ds = hickory_proto::dnssec::rdata::DS::new(
        k1.tag(),
        Algorithm::ECDSAP256SHA256,
        DigestType::SHA256,
        k1.dnskey()
            .to_digest(&name("example."), DigestType::SHA256)
            .unwrap_or_else(|e| panic!("{e}"))
            .as_ref()
            .to_vec(),
    );
    let ds = Record::from_rdata(name("example."), 3600, RData::DNSSEC(DNSSECRData::DS(ds)));
    let mut state = AnchorState::new(&name("example."), &[ds], T0);
    assert_eq!(state.trusted().len(), 1);
    state.observe(&rrset(&[&k1, &k2], &[&k1], &state, T0), T0);
    assert_eq!(state.state_of(k1.tag()), Some(KeyState::Valid), "the DS vouched for it");
    assert_eq!(trusted_tags(&state), [k1.tag()], "the DS is replaced by the key");

    // k2 disappears while pending: forgotten; comes back: starts over.
    let t = T0 + 20 * DAY;
    state.observe(&rrset(&[&k1], &[&k1], &state, t), t);
    assert_eq!(state.state_of(k2.tag()), None);
    let t = t + DAY;
    state.observe(&rrset(&[&k1, &k2], &[&k1], &state, t), t);
    let t = t + ADD_HOLD_DOWN_S - DAY;
    state.observe(&rrset(&[&k1, &k2], &[&k1], &state, t), t);
    assert_eq!(state.state_of(k2.tag()), Some(KeyState::AddPend));
    let t = t + DAY;
    state.observe(&rrset(&[&k1, &k2], &[&k1], &state, t), t);
    assert_eq!(state.state_of(k2.tag()), Some(KeyState::Valid));

    // A valid key absent is Missing, still trusted; back again, Valid.
    let t = t + DAY;
    state.observe(&rrset(&[&k2], &[&k2], &state, t), t);
    assert_eq!(state.state_of(k1.tag()), Some(KeyState::Missing));
    assert_eq!(trusted_tags(&state), sorted(vec![k1.tag(), k2.tag()]));
    let t = t + DAY;
    state.observe(&rrset(&[&k1, &k2], &[&k2], &state, t), t);
    assert_eq!(state.state_of(k1.tag()), Some(KeyState::Valid));
}

#[test]
fn state_file_round_trip() {
    let k1 = Key::new(257);
    let k2 = Key::new(257);
    let mut state = AnchorState::new(&name("example."), &[k1.record()], T0);
    state.observe(&rrset(&[&k1, &k2], &[&k1], &state, T0), T0);
    let text = state.to_text();
    assert!(text.contains(";;state=1 [ ADDPEND ]"), "{text}");
    assert!(text.contains(";;state=2 [ VALID ]"), "{text}");
    let back = AnchorState::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, state);
    assert_eq!(back.zone(), &name("example."));
    // The hold-down continues from the file's timestamps.
    let mut back = back;
    let t = T0 + ADD_HOLD_DOWN_S;
    back.observe(&rrset(&[&k1, &k2], &[&k1], &back, t), t);
    assert_eq!(back.state_of(k2.tag()), Some(KeyState::Valid));
    // It is a plain anchor file too, of the trusted keys only.
    let plain = TrustAnchors::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let anchors = plain.for_zone(&name("example.")).unwrap_or_else(|| panic!("no anchor"));
    assert_eq!(anchors.len(), 1, "the ADDPEND key is not an anchor yet");
    assert_eq!(dnskey(&anchors[0]).and_then(key_tag), Some(k1.tag()));
    let e = AnchorState::from_text("example. IN DNSKEY 257 3 13 AAAA ;;state=9\n");
    assert!(e.is_err());
}
