//! Signature checks: a zone's DNSKEY RRset against its DS or anchor
//! (RFC 4035 §5.2), and any RRset against the zone's keys (§5.3).
//!
//! The cryptography is hickory-proto's: [`TBS::from_sig`] builds the
//! signed data of RFC 4034 §3.1.8.1 (canonical names and order, original
//! TTL, the wildcard owner of RFC 4035 §5.3.2), and a [`DNSKEY`] verifies
//! it ([`Verifier`]). What is ours is which signatures and keys may be
//! used, and what a failure is called.

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::dnssec::{DigestType, TBS, Verifier};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::time::{Window, format_utc, serial_to_unix, window};
use crate::Ede;

/// What a good signature over an RRset established (RFC 4035 §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrsetProof {
    /// The wildcard the RRset was expanded from, if the RRSIG's Labels
    /// field is less than the owner's label count (RFC 4035 §5.3.4): the
    /// caller must then prove, with [`super::prove_wildcard`], that no
    /// closer match exists.
    pub wildcard: Option<Name>,
    /// The zone that signed it (the RRSIG's Signer's Name).
    pub signer: Name,
    /// The TTL to cache it with: the least of the records' TTL, the
    /// RRSIG's Original TTL, and the seconds until the signature expires
    /// (RFC 4035 §5.3.3).
    pub ttl: u32,
}

/// The DNSKEY in a record, if it is one.
pub(crate) fn dnskey(record: &Record) -> Option<&DNSKEY> {
    match record.data() {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    }
}

/// The DS in a record, if it is one.
pub(crate) fn ds(record: &Record) -> Option<&DS> {
    match record.data() {
        RData::DNSSEC(DNSSECRData::DS(d)) => Some(d),
        _ => None,
    }
}

/// The RRSIG in a record, if it is one.
pub(crate) fn rrsig(record: &Record) -> Option<&RRSIG> {
    match record.data() {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

/// A key's tag (RFC 4034 Appendix B), or `None` if it cannot be encoded.
pub(crate) fn key_tag(key: &DNSKEY) -> Option<u16> {
    key.calculate_key_tag().ok()
}

/// Why one signature did not verify, ranked so the most telling reason
/// is reported when all fail: a bad signature outranks an expired one,
/// which outranks a missing key, which outranks an unsupported algorithm.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Unsupported(String),
    NoKey(String),
    NotYet(String),
    Expired(String),
    Bad(String),
}

impl Failure {
    fn into_ede(self) -> Ede {
        match self {
            Failure::Unsupported(t) => Ede::new(Ede::UNSUPPORTED_DNSKEY_ALGORITHM, t),
            Failure::NoKey(t) => Ede::new(Ede::DNSKEY_MISSING, t),
            Failure::NotYet(t) => Ede::new(Ede::SIGNATURE_NOT_YET_VALID, t),
            Failure::Expired(t) => Ede::new(Ede::SIGNATURE_EXPIRED, t),
            Failure::Bad(t) => Ede::new(Ede::DNSSEC_BOGUS, t),
        }
    }
}

/// Checks the records are one RRset: one owner, type and class.
fn one_rrset(rrset: &[Record]) -> Result<&Record, Ede> {
    let first = rrset.first().ok_or_else(|| Ede::new(Ede::DNSSEC_BOGUS, "empty RRset given to validate"))?;
    if let Some(other) = rrset.iter().find(|r| {
        r.name() != first.name() || r.record_type() != first.record_type() || r.dns_class() != first.dns_class()
    }) {
        return Err(Ede::new(
            Ede::DNSSEC_BOGUS,
            format!(
                "not one RRset: {} {} and {} {}",
                first.name(),
                first.record_type(),
                other.name(),
                other.record_type()
            ),
        ));
    }
    Ok(first)
}

/// Tries every RRSIG covering `rrset` against `keys` (already filtered by
/// the caller to those allowed to sign it). Ok at the first good one.
fn check_signatures(rrset: &[Record], rrsigs: &[Record], keys: &[&Record], now_s: u64) -> Result<RrsetProof, Ede> {
    let first = one_rrset(rrset)?;
    let owner = first.name();
    let rtype = first.record_type();
    // RFC 2181 §5: duplicates are one record; signing them twice would
    // not match what the signer hashed.
    let mut unique: Vec<&Record> = Vec::with_capacity(rrset.len());
    for r in rrset {
        if !unique.iter().any(|u| u.data() == r.data()) {
            unique.push(r);
        }
    }
    let covering: Vec<(&Record, &RRSIG)> = rrsigs
        .iter()
        .filter(|r| r.name() == owner && r.dns_class() == first.dns_class())
        .filter_map(|r| rrsig(r).map(|s| (r, s)))
        .filter(|(_, s)| s.type_covered() == rtype)
        .collect();
    if covering.is_empty() {
        return Err(Ede::new(Ede::RRSIGS_MISSING, format!("no RRSIG for {owner} {rtype}")));
    }
    let mut worst: Option<Failure> = None;
    let mut budget = MAX_VERIFICATIONS;
    for (_, sig) in covering {
        if budget == 0 {
            return Err(Ede::new(
                Ede::DNSSEC_BOGUS,
                format!("too many signatures to check for {owner} {rtype} (more than {MAX_VERIFICATIONS})"),
            ));
        }
        match check_one(&unique, owner, rtype, sig, keys, now_s, &mut budget) {
            Ok(proof) => return Ok(proof),
            Err(f) => {
                if worst.as_ref().is_none_or(|w| f > *w) {
                    worst = Some(f);
                }
            }
        }
    }
    Err(worst
        .map(Failure::into_ede)
        .unwrap_or_else(|| Ede::new(Ede::DNSSEC_BOGUS, format!("no RRSIG for {owner} {rtype}"))))
}

/// At most this many signature verifications per RRset: a zone could
/// otherwise publish many keys sharing a key tag and many RRSIGs, and
/// make one validation cost keys × signatures public-key operations
/// (KeyTrap, CVE-2023-50387). Real zones need one or two.
pub const MAX_VERIFICATIONS: u32 = 8;

/// RFC 4035 §5.3.1 and §5.3.3 for one RRSIG. `budget` counts down the
/// verifications left ([`MAX_VERIFICATIONS`]).
fn check_one(
    rrset: &[&Record],
    owner: &Name,
    rtype: RecordType,
    sig: &RRSIG,
    keys: &[&Record],
    now_s: u64,
    budget: &mut u32,
) -> Result<RrsetProof, Failure> {
    let tag = sig.key_tag();
    let signer = sig.signer_name();
    let what = format!("RRSIG {rtype} {owner} key {tag}");
    // The signer must be the owner or an ancestor: the zone holding it.
    if !signer.zone_of(owner) {
        return Err(Failure::Bad(format!("{what}: signer {signer} is not a zone above the owner")));
    }
    // The Labels field must not exceed the owner's label count ('*' not
    // counted); fewer means a wildcard expansion (RFC 4035 §5.3.2).
    let labels = sig.num_labels();
    let owner_labels = owner.num_labels();
    if labels > owner_labels {
        return Err(Failure::Bad(format!("{what}: labels {labels} more than the owner's {owner_labels}")));
    }
    let wildcard = if labels < owner_labels {
        let base = owner.trim_to(usize::from(labels));
        let star = base.prepend_label("*").map_err(|e| Failure::Bad(format!("{what}: wildcard name: {e}")))?;
        if !signer.zone_of(&base) {
            return Err(Failure::Bad(format!("{what}: wildcard {star} outside signer {signer}")));
        }
        Some(star)
    } else {
        None
    };
    let inception = sig.sig_inception().get();
    let expiration = sig.sig_expiration().get();
    match window(inception, expiration, now_s) {
        Window::Inside => {}
        Window::NotYet => {
            return Err(Failure::NotYet(format!(
                "signature not yet valid: {what} valid from {}",
                format_utc(serial_to_unix(inception, now_s))
            )));
        }
        Window::Expired => {
            return Err(Failure::Expired(format!(
                "signature expired: {what} expired {}",
                format_utc(serial_to_unix(expiration, now_s))
            )));
        }
    }
    let algorithm = sig.algorithm();
    let candidates: Vec<&DNSKEY> = keys
        .iter()
        .filter(|k| k.name() == signer)
        .filter_map(|k| dnskey(k))
        .filter(|k| k.zone_key() && k.algorithm() == algorithm && key_tag(k) == Some(tag))
        .collect();
    if candidates.is_empty() {
        return Err(Failure::NoKey(format!("DNSKEY missing: {what}: no {algorithm:?} key {tag} of {signer}")));
    }
    if !algorithm.is_supported() {
        return Err(Failure::Unsupported(format!("unsupported DNSKEY algorithm {}: {what}", u8::from(algorithm))));
    }
    let first = rrset.first().copied().ok_or_else(|| Failure::Bad(format!("{what}: empty RRset")))?;
    // hickory sorts the records as `Record`s, TTL before RDATA; give them
    // all the Original TTL (which is what is signed) so the order is the
    // RDATA order RFC 4034 §6.3 asks for.
    let normalized: Vec<Record> = rrset
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            r.set_ttl(sig.original_ttl());
            r
        })
        .collect();
    let tbs = TBS::from_sig(owner, first.dns_class(), sig, normalized.iter())
        .map_err(|e| Failure::Bad(format!("{what}: cannot build signed data: {e}")))?;
    let mut good = false;
    for k in &candidates {
        if *budget == 0 {
            return Err(Failure::Bad(format!(
                "too many signatures to check for {owner} {rtype} (more than {MAX_VERIFICATIONS})"
            )));
        }
        *budget -= 1;
        if k.verify(tbs.as_ref(), sig.sig()).is_ok() {
            good = true;
            break;
        }
    }
    if !good {
        return Err(Failure::Bad(format!("signature does not verify: {what}")));
    }
    let until_expiry = u32::try_from(serial_to_unix(expiration, now_s) - now_s as i64).unwrap_or(0);
    let ttl = rrset.iter().map(|r| r.ttl()).min().unwrap_or(0).min(sig.original_ttl()).min(until_expiry);
    Ok(RrsetProof { wildcard, signer: signer.clone(), ttl })
}

/// RFC 4035 §5.3: validates `rrset` (one owner, type and class) with its
/// `rrsigs` against `keys`, the validated DNSKEY RRset of the signer zone
/// (from [`validate_dnskeys`]). Any one good signature suffices.
///
/// Checked per RRSIG: it covers the type; its signer is the owner or an
/// ancestor, and is the keys' owner; Labels ≤ the owner's labels (less:
/// a wildcard expansion, returned in [`RrsetProof::wildcard`]); now is
/// within inception..expiration in serial arithmetic (RFC 4034 §3.1.5);
/// a zone key (RFC 4034 §2.1.1) with its algorithm and key tag verifies
/// it. Revoked keys (RFC 5011 §2.1) sign nothing here.
///
/// Errors, when no signature is good (the most telling one): EDE 10
/// when there is no RRSIG at all, 6 when a signature does not verify,
/// 7 expired, 8 not yet valid, 9 no key with its tag, 1 unsupported
/// algorithm.
pub fn validate_rrset(rrset: &[Record], rrsigs: &[Record], keys: &[Record], now_s: u64) -> Result<RrsetProof, Ede> {
    let usable: Vec<&Record> = keys.iter().filter(|k| dnskey(k).is_some_and(|d| !d.revoke())).collect();
    check_signatures(rrset, rrsigs, &usable, now_s)
}

/// The digest types we use, strongest first, and whether one is
/// supported (RFC 4034 §5.1.3; SHA-1, SHA-256 RFC 4509, SHA-384 RFC 6605).
fn digest_supported(d: DigestType) -> bool {
    matches!(d, DigestType::SHA1 | DigestType::SHA256 | DigestType::SHA384)
}

/// RFC 4035 §5.2: the DNSKEY RRset of `zone` is trusted when a key in it
/// that matches a trusted DS (digest of owner and RDATA, RFC 4034 §5.1.4)
/// or equals a trusted DNSKEY (an anchor) signs the whole RRset. Returns
/// all the DNSKEY records of `zone` in `dnskeys`, now validated.
///
/// `trusted` is the parent's validated DS RRset, or the anchor's DS
/// and/or DNSKEY records. A key must have the Zone Key flag; the SEP
/// flag is ignored as RFC 4034 §2.1.1 asks of validators. As RFC 4509
/// §3 advises, SHA-1 DS records are ignored when a SHA-256 or SHA-384 one
/// is present.
///
/// # Errors, and the two that mean Insecure
///
/// EDE 1 (unsupported DNSKEY algorithm) and EDE 2 (unsupported DS
/// digest) mean no DS or anchor could be used at all, because every one
/// has an algorithm or digest we do not implement: RFC 4035 §5.2 and RFC
/// 6840 §5.2 say to treat the zone as **Insecure**, not Bogus (see
/// [`super::is_insecure`]). All other errors are Bogus: 9 when no key
/// has a usable DS's key tag, 6 when a key with the tag does not match
/// the digest or no DS-matched key signs the RRset with a good signature,
/// 10 when the RRset has no RRSIG, 7/8 when those signatures are outside
/// their validity window.
pub fn validate_dnskeys(
    zone: &Name,
    dnskeys: &[Record],
    rrsigs: &[Record],
    trusted: &[Record],
    now_s: u64,
) -> Result<Vec<Record>, Ede> {
    let keys: Vec<Record> = dnskeys.iter().filter(|r| r.name() == zone && dnskey(r).is_some()).cloned().collect();
    if keys.is_empty() {
        return Err(Ede::new(Ede::DNSKEY_MISSING, format!("no DNSKEY RRset for {zone}")));
    }
    let anchors: Vec<&Record> = trusted.iter().filter(|r| r.name() == zone).collect();
    let ds_set: Vec<&DS> = anchors.iter().filter_map(|r| ds(r)).collect();
    let anchor_keys: Vec<&DNSKEY> = anchors.iter().filter_map(|r| dnskey(r)).collect();
    if ds_set.is_empty() && anchor_keys.is_empty() {
        return Err(Ede::new(Ede::DNSSEC_BOGUS, format!("no DS or trust anchor for {zone}")));
    }

    // DS (and anchor keys) we can use: digest and algorithm implemented.
    let strong = ds_set
        .iter()
        .any(|d| matches!(d.digest_type(), DigestType::SHA256 | DigestType::SHA384) && d.algorithm().is_supported());
    let usable_ds: Vec<&DS> = ds_set
        .iter()
        .copied()
        .filter(|d| digest_supported(d.digest_type()) && d.algorithm().is_supported())
        .filter(|d| !(strong && d.digest_type() == DigestType::SHA1))
        .collect();
    let usable_anchor_keys: Vec<&DNSKEY> =
        anchor_keys.iter().copied().filter(|k| k.algorithm().is_supported() && !k.revoke()).collect();
    if usable_ds.is_empty() && usable_anchor_keys.is_empty() {
        // RFC 4035 §5.2 / RFC 6840 §5.2: nothing we can check; Insecure.
        let digest_ok = ds_set.iter().any(|d| digest_supported(d.digest_type()));
        return Err(if !ds_set.is_empty() && !digest_ok {
            Ede::new(Ede::UNSUPPORTED_DS_DIGEST, format!("unsupported DS digest type for {zone}: treated as insecure"))
        } else {
            Ede::new(
                Ede::UNSUPPORTED_DNSKEY_ALGORITHM,
                format!("unsupported DNSKEY algorithm in the DS/anchor of {zone}: treated as insecure"),
            )
        });
    }

    // The secure entry points: keys matching a usable DS or anchor key.
    let mut entry: Vec<&Record> = Vec::new();
    let mut mismatch: Option<String> = None;
    for k in &keys {
        let Some(key) = dnskey(k) else { continue };
        if !key.zone_key() || key.revoke() {
            continue;
        }
        let tag = key_tag(key);
        let by_ds = usable_ds.iter().any(|d| {
            if Some(d.key_tag()) != tag || d.algorithm() != key.algorithm() {
                return false;
            }
            let ok = key.to_digest(zone, d.digest_type()).is_ok_and(|h| h.as_ref() == d.digest());
            if !ok {
                mismatch = Some(format!("DS {} of {zone} does not match its DNSKEY's digest", d.key_tag()));
            }
            ok
        });
        let by_anchor = usable_anchor_keys.iter().any(|a| {
            a.algorithm() == key.algorithm() && a.public_key() == key.public_key() && a.flags() == key.flags()
        });
        if by_ds || by_anchor {
            entry.push(k);
        }
    }
    if entry.is_empty() {
        let tags: Vec<String> = usable_ds.iter().map(|d| d.key_tag().to_string()).collect();
        return Err(match mismatch {
            Some(text) => Ede::new(Ede::DNSSEC_BOGUS, text),
            None if !usable_ds.is_empty() => {
                Ede::new(Ede::DNSKEY_MISSING, format!("no DNSKEY of {zone} matches DS key tag(s) {}", tags.join(", ")))
            }
            None => Ede::new(Ede::DNSKEY_MISSING, format!("no DNSKEY of {zone} matches its trust anchor")),
        });
    }
    let proof = check_signatures(&keys, rrsigs, &entry, now_s).map_err(|e| match e.code {
        // A DNSKEY RRset signed only by keys no DS points to is bogus.
        Ede::DNSKEY_MISSING => Ede::new(
            Ede::DNSSEC_BOGUS,
            format!("DNSKEY RRset of {zone} is not signed by a key its DS/anchor names: {}", e.text),
        ),
        _ => e,
    })?;
    if proof.signer != *zone || proof.wildcard.is_some() {
        return Err(Ede::new(Ede::DNSSEC_BOGUS, format!("DNSKEY RRset of {zone} signed by {}", proof.signer)));
    }
    Ok(keys)
}

/// Whether `key` itself makes a good signature over `rrset` (RFC 5011
/// §2.1: a revocation counts only if the revoked key signs it; the
/// REVOKE bit is allowed here, unlike in [`validate_rrset`]).
pub(crate) fn signs_with(rrset: &[Record], rrsigs: &[Record], key: &Record, now_s: u64) -> bool {
    check_signatures(rrset, rrsigs, &[key], now_s).is_ok()
}
