//! DNSSEC validation of a resolution's answer (RFC 4035 §5): the chain
//! of trust from an anchor down to the zone that signed each RRset.
//!
//! The status of the zone holding a name is worked out top-down and
//! lazily, as Unbound's validator does: the anchor's DNSKEY RRset is
//! checked against the anchor; below it, a name's DS RRset (asked of the
//! parent side) is checked with the keys of the zone that signed it, and
//! then the name's DNSKEY RRset against that DS. A signed denial of the
//! DS proves either an unsigned delegation (Insecure) or that the name is
//! no zone cut (the parent's status holds). Whatever is not yet known is
//! returned as [`Eval::Need`]: the resolution looks that question up
//! (through the cache and the iteration) and evaluates again, so this
//! code stays a pure function of the lookups made.

use std::collections::HashMap;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};

use super::frame::chain_target;
use super::rrset::{DNAME, RrsetParts, covered_type, group};
use crate::dnssec::{
    TrustAnchors, is_insecure, prove_no_ds, prove_nodata, prove_nxdomain, prove_wildcard, relies_on_opt_out,
    validate_dnskeys, validate_rrset, wildcard_relies_on_opt_out,
};
use crate::types::{Ede, Question, Resolved, Security};

/// A value, or the lookup it waits for.
pub(crate) enum Eval<T> {
    Ready(T),
    Need(Question),
}

/// The DNSSEC status of the zone holding a name.
#[derive(Clone, Debug)]
pub(crate) enum ZoneStatus {
    /// Signed, with these validated keys.
    Secure(Vec<Record>),
    Insecure,
    Bogus(Ede),
}

macro_rules! ready {
    ($e:expr) => {
        match $e {
            Eval::Ready(v) => v,
            Eval::Need(q) => return Eval::Need(q),
        }
    };
}

/// Bound on the zone levels walked (names have at most 127 labels).
const MAX_LEVELS: usize = 128;

/// Validation over the lookups of one resolution.
pub(crate) struct Validator<'a> {
    pub(crate) anchors: &'a TrustAnchors,
    pub(crate) fetched: &'a HashMap<Question, Resolved>,
    pub(crate) memo: &'a mut HashMap<Name, ZoneStatus>,
    pub(crate) now_s: u64,
    /// The closest zone cut known at or above a name (from the cached NS
    /// RRsets): where unsigned data is looked for a proof of insecurity.
    pub(crate) cut_of: &'a dyn Fn(&Name) -> Name,
    /// The status the cache already holds for an RRset with these very
    /// records, when it is Secure or Insecure (no need to check again).
    pub(crate) known: &'a dyn Fn(&RrsetParts) -> Option<Security>,
    /// The status found for each RRset of the answer, for the cache.
    pub(crate) marks: &'a mut Vec<Mark>,
    /// The status the cache holds for a negative answer to a question.
    pub(crate) known_negative: &'a dyn Fn(&Question) -> Option<Security>,
    /// The TTL the last validated RRset may be cached for.
    pub(crate) proof_ttl: Option<u32>,
}

/// The validation result of one RRset, to record in the cache.
pub(crate) struct Mark {
    pub(crate) name: Name,
    pub(crate) rtype: RecordType,
    pub(crate) security: Security,
    /// RFC 4035 §5.3.3: a Secure RRset lives no longer than its RRSIG's
    /// Original TTL and the signature's expiry allow.
    pub(crate) ttl: Option<u32>,
    /// It is about the negative answer to (name, rtype).
    pub(crate) negative: bool,
    /// For a negative mark with no negative answer cached (a no-DS proof
    /// that came with a referral): the proof, cached under (name, rtype)
    /// so the next resolution need not check it again.
    pub(crate) proof: Option<Vec<Record>>,
}

fn bogus(code: u16, text: impl Into<String>) -> ZoneStatus {
    ZoneStatus::Bogus(Ede::new(code, text))
}

/// The signer of the first RRSIG in `sigs`.
fn signer(sigs: &[Record]) -> Option<Name> {
    sigs.iter().find_map(|r| match r.data() {
        hickory_proto::rr::RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(s)) => {
            Some(s.signer_name().to_lowercase())
        }
        _ => None,
    })
}

fn proper_ancestor(p: &Name, t: &Name) -> bool {
    p.zone_of(t) && p != t
}

impl Validator<'_> {
    fn fetched(&self, name: &Name, rtype: RecordType) -> Eval<&Resolved> {
        let q = Question::new(name, rtype);
        match self.fetched.get(&q) {
            Some(r) => Eval::Ready(r),
            None => Eval::Need(q),
        }
    }

    /// The status of the zone holding `t` (`t` may be its apex).
    pub(crate) fn status(&mut self, t: &Name, level: usize) -> Eval<ZoneStatus> {
        if let Some(s) = self.memo.get(t) {
            return Eval::Ready(s.clone());
        }
        if level > MAX_LEVELS {
            return Eval::Ready(bogus(Ede::DNSSEC_BOGUS, format!("chain of trust to {t} too long")));
        }
        let Some(anchor) = self.anchors.closest(t).cloned() else {
            return Eval::Ready(ZoneStatus::Insecure); // no anchor covers it
        };
        let s = if *t == anchor {
            let trusted = self.anchors.for_zone(t).map(<[Record]>::to_vec).unwrap_or_default();
            ready!(self.keys(t, &trusted))
        } else {
            ready!(self.below_anchor(t, level))
        };
        self.memo.insert(t.clone(), s.clone());
        Eval::Ready(s)
    }

    /// `t`'s DNSKEY RRset checked against `trusted` (DS or anchor).
    fn keys(&mut self, t: &Name, trusted: &[Record]) -> Eval<ZoneStatus> {
        let r = ready!(self.fetched(t, RecordType::DNSKEY));
        let (keys, sigs) = split(&r.answer, t, RecordType::DNSKEY);
        // The key cache: a DNSKEY RRset validated before (and still live)
        // is trusted as it is.
        let parts = RrsetParts { name: t.clone(), rtype: RecordType::DNSKEY, records: keys, rrsigs: sigs };
        if !parts.records.is_empty() && (self.known)(&parts) == Some(Security::Secure) {
            return Eval::Ready(ZoneStatus::Secure(parts.records));
        }
        let (keys, sigs) = (parts.records, parts.rrsigs);
        Eval::Ready(match validate_dnskeys(t, &keys, &sigs, trusted, self.now_s) {
            Ok(k) => {
                self.mark(t, RecordType::DNSKEY, Security::Secure, false);
                ZoneStatus::Secure(k)
            }
            Err(e) if is_insecure(&e) => ZoneStatus::Insecure,
            Err(e) => ZoneStatus::Bogus(e),
        })
    }

    fn below_anchor(&mut self, t: &Name, level: usize) -> Eval<ZoneStatus> {
        let r = ready!(self.fetched(t, RecordType::DS)).clone();
        if r.rcode == ResponseCode::ServFail {
            let why = r.ede.map_or_else(String::new, |e| format!(": {}", e.text));
            return Eval::Ready(bogus(Ede::DNSKEY_MISSING, format!("no DS answer for {t}{why}")));
        }
        let (ds, ds_sigs) = split(&r.answer, t, RecordType::DS);
        let parts = RrsetParts { name: t.clone(), rtype: RecordType::DS, records: ds, rrsigs: ds_sigs };
        if !parts.records.is_empty() && (self.known)(&parts) == Some(Security::Secure) {
            return self.keys(t, &parts.records);
        }
        if parts.records.is_empty()
            && (self.known_negative)(&Question::new(t, RecordType::DS)) == Some(Security::Insecure)
        {
            return Eval::Ready(ZoneStatus::Insecure);
        }
        let (ds, ds_sigs) = (parts.records, parts.rrsigs);
        if !ds.is_empty() {
            let Some(p) = signer(&ds_sigs) else { return self.unsigned(t, &r, level) };
            if !proper_ancestor(&p, t) {
                return Eval::Ready(bogus(Ede::DNSSEC_BOGUS, format!("DS of {t} signed by {p}")));
            }
            return Eval::Ready(match ready!(self.status(&p, level + 1)) {
                ZoneStatus::Secure(k) => match validate_rrset(&ds, &ds_sigs, &k, self.now_s) {
                    Ok(_) => {
                        self.mark(t, RecordType::DS, Security::Secure, false);
                        ready!(self.keys(t, &ds))
                    }
                    Err(e) => ZoneStatus::Bogus(e),
                },
                other => other,
            });
        }
        // No DS: a signed denial from the parent, or an unsigned zone.
        let auth = &r.authority;
        let sigs: Vec<Record> = auth.iter().filter(|x| covered_type(x).is_some()).cloned().collect();
        let soa_owner = auth.iter().find(|x| x.record_type() == RecordType::SOA).map(|x| x.name().clone());
        let Some(p) = signer(&sigs).or(soa_owner) else { return self.unsigned(t, &r, level) };
        if !proper_ancestor(&p, t) {
            return Eval::Ready(bogus(Ede::DNSSEC_BOGUS, format!("the DS denial for {t} comes from {p}")));
        }
        let keys = match ready!(self.status(&p, level + 1)) {
            ZoneStatus::Secure(k) => k,
            other => return Eval::Ready(other),
        };
        if let Err(e) = check_all(auth, &keys, self.now_s) {
            return Eval::Ready(ZoneStatus::Bogus(e));
        }
        let proof = if r.rcode == ResponseCode::NXDomain {
            prove_nxdomain(t, &p, auth).map(|_| ZoneStatus::Secure(keys.clone()))
        } else {
            match prove_no_ds(t, &p, auth) {
                Ok(()) => {
                    self.marks.push(Mark {
                        name: t.clone(),
                        rtype: RecordType::DS,
                        security: Security::Insecure,
                        ttl: None,
                        negative: true,
                        proof: Some(auth.to_vec()),
                    });
                    Ok(ZoneStatus::Insecure)
                }
                // No delegation here: t lies inside p, whose keys hold.
                Err(_) => prove_nodata(t, RecordType::DS, &p, auth).map(|_| ZoneStatus::Secure(keys.clone())),
            }
        };
        Eval::Ready(proof.unwrap_or_else(|e| if is_insecure(&e) { ZoneStatus::Insecure } else { ZoneStatus::Bogus(e) }))
    }

    /// A DS answer without signatures: fine below an insecure zone, Bogus
    /// below a secure one.
    fn unsigned(&mut self, t: &Name, r: &Resolved, level: usize) -> Eval<ZoneStatus> {
        let soa = r.authority.iter().find(|x| x.record_type() == RecordType::SOA).map(|x| x.name().clone());
        let p = soa.filter(|p| proper_ancestor(p, t)).unwrap_or_else(|| t.base_name());
        Eval::Ready(match ready!(self.status(&p, level + 1)) {
            ZoneStatus::Secure(_) => bogus(Ede::RRSIGS_MISSING, format!("unsigned DS answer for {t} in signed {p}")),
            other => other,
        })
    }

    fn mark(&mut self, name: &Name, rtype: RecordType, security: Security, negative: bool) {
        self.marks.push(Mark { name: name.clone(), rtype, security, ttl: None, negative, proof: None });
    }

    /// The status of a resolution's answer for `q` (see the module docs).
    pub(crate) fn answer(&mut self, q: &Question, res: &Resolved) -> Eval<(Security, Option<Ede>)> {
        let sets = group(&res.answer);
        let dnames: Vec<Name> = sets.iter().filter(|s| s.rtype == DNAME).map(|s| s.name.clone()).collect();
        let mut overall = Security::Secure;
        for s in &sets {
            // A CNAME synthesised from a DNAME is proven by the DNAME's
            // signature (RFC 6672 §5.3.1).
            if s.rtype == RecordType::CNAME && s.rrsigs.is_empty() && dnames.iter().any(|d| d.zone_of(&s.name)) {
                continue;
            }
            if let Some(sec) = (self.known)(s) {
                if sec == Security::Insecure {
                    overall = Security::Insecure;
                }
                continue;
            }
            let (sec, ede) = match ready!(self.rrset(s, &res.authority)) {
                ZoneStatus::Secure(_) => (Security::Secure, None),
                ZoneStatus::Insecure => (Security::Insecure, None),
                ZoneStatus::Bogus(e) => (Security::Bogus, Some(e)),
            };
            let ttl = self.proof_ttl.take();
            self.marks.push(Mark {
                name: s.name.clone(),
                rtype: s.rtype,
                security: sec,
                ttl,
                negative: false,
                proof: None,
            });
            match sec {
                Security::Bogus => return Eval::Ready((Security::Bogus, ede)),
                Security::Insecure => overall = Security::Insecure,
                _ => {}
            }
        }
        let has_data = res.answer.iter().any(|r| r.record_type() == q.qtype);
        if res.rcode == ResponseCode::NXDomain || (res.rcode == ResponseCode::NoError && !has_data) {
            let end = chain_target(&res.answer).unwrap_or_else(|| q.name.clone());
            match ready!(self.denial(&end, q.qtype, res.rcode == ResponseCode::NXDomain, &res.authority)) {
                Security::Bogus => {
                    let e = Ede::new(Ede::NSEC_MISSING, format!("no valid denial of existence for {end} {}", q.qtype));
                    return Eval::Ready((Security::Bogus, Some(e)));
                }
                Security::Insecure => overall = Security::Insecure,
                _ => {}
            }
        }
        Eval::Ready((overall, None))
    }

    /// One RRset: signed by a secure zone and valid, or in an insecure one.
    fn rrset(&mut self, s: &RrsetParts, authority: &[Record]) -> Eval<ZoneStatus> {
        let Some(z) = signer(&s.rrsigs) else {
            let cut = (self.cut_of)(&s.name);
            return Eval::Ready(match ready!(self.status(&cut, 0)) {
                ZoneStatus::Secure(_) => {
                    bogus(Ede::RRSIGS_MISSING, format!("no RRSIG for {} {} in a signed zone", s.name, s.rtype))
                }
                other => other,
            });
        };
        if !z.zone_of(&s.name) {
            return Eval::Ready(bogus(Ede::DNSSEC_BOGUS, format!("{} {} signed by {z}", s.name, s.rtype)));
        }
        Eval::Ready(match ready!(self.status(&z, 0)) {
            ZoneStatus::Secure(k) => match validate_rrset(&s.records, &s.rrsigs, &k, self.now_s) {
                Ok(proof) => match proof.wildcard.clone() {
                    // The proof that no closer name exists must itself be
                    // signed by the zone: else a forged NSEC lets a
                    // wildcard answer stand in for a name that exists.
                    Some(_) if check_all(&denial_records(authority, &z), &k, self.now_s).is_err() => {
                        ZoneStatus::Bogus(Ede::new(
                            Ede::DNSSEC_BOGUS,
                            format!("the wildcard proof for {} {} does not validate", s.name, s.rtype),
                        ))
                    }
                    Some(w) => match prove_wildcard(&s.name, &w, &z, authority) {
                        Ok(()) if wildcard_relies_on_opt_out(&s.name, &w, &z, authority) => ZoneStatus::Insecure,
                        Ok(()) => {
                            self.proof_ttl = Some(proof.ttl);
                            ZoneStatus::Secure(k)
                        }
                        Err(e) => ZoneStatus::Bogus(e),
                    },
                    None => {
                        self.proof_ttl = Some(proof.ttl);
                        ZoneStatus::Secure(k)
                    }
                },
                Err(e) => ZoneStatus::Bogus(e),
            },
            other => other,
        })
    }

    /// A negative answer for `name`/`qtype`: Secure when proven.
    fn denial(&mut self, name: &Name, qtype: RecordType, nx: bool, auth: &[Record]) -> Eval<Security> {
        // The negative cache already holds this answer's status: it was
        // validated when it came in (a fresh answer replaces the entry,
        // and with it the status), so its signatures are not checked again.
        if let Some(sec) = (self.known_negative)(&Question::new(name, qtype))
            && matches!(sec, Security::Secure | Security::Insecure)
        {
            return Eval::Ready(sec);
        }
        let soa = auth.iter().find(|x| x.record_type() == RecordType::SOA).map(|x| x.name().clone());
        let zone = soa.unwrap_or_else(|| name.clone());
        let keys = match ready!(self.status(&zone, 0)) {
            ZoneStatus::Secure(k) => k,
            ZoneStatus::Insecure => return Eval::Ready(Security::Insecure),
            ZoneStatus::Bogus(_) => return Eval::Ready(Security::Bogus),
        };
        if check_all(auth, &keys, self.now_s).is_err() {
            return Eval::Ready(Security::Bogus);
        }
        let proof = if nx { prove_nxdomain(name, &zone, auth) } else { prove_nodata(name, qtype, &zone, auth) };
        Eval::Ready(match proof {
            Ok(()) if nx && relies_on_opt_out(name, &zone, auth) => Security::Insecure,
            Ok(()) => Security::Secure,
            Err(e) if is_insecure(&e) => Security::Insecure,
            Err(_) => Security::Bogus,
        })
    }
}

/// Every RRset in `records` validated with `keys`.
/// The NSEC/NSEC3 records of `zone` in `authority`, with their RRSIGs.
fn denial_records(authority: &[Record], zone: &Name) -> Vec<Record> {
    let denial = |t: Option<RecordType>| matches!(t, Some(RecordType::NSEC | RecordType::NSEC3));
    authority
        .iter()
        .filter(|r| zone.zone_of(r.name()) && (denial(Some(r.record_type())) || denial(covered_type(r))))
        .cloned()
        .collect()
}

fn check_all(records: &[Record], keys: &[Record], now_s: u64) -> Result<(), Ede> {
    for s in group(records) {
        validate_rrset(&s.records, &s.rrsigs, keys, now_s)?;
    }
    Ok(())
}

/// The `rtype` records at `name` in `records`, and the RRSIGs over them.
fn split(records: &[Record], name: &Name, rtype: RecordType) -> (Vec<Record>, Vec<Record>) {
    let data = records.iter().filter(|r| r.name() == name && r.record_type() == rtype).cloned().collect();
    let sigs = records.iter().filter(|r| r.name() == name && covered_type(r) == Some(rtype)).cloned().collect();
    (data, sigs)
}
