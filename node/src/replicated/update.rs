//! RFC 2136 dynamic UPDATE of replicated zones, signed with TSIG
//! (RFC 8945), so `nsupdate` and the RFC 2136 providers of ExternalDNS and
//! cert-manager can write zones through any node.
//!
//! An UPDATE must be signed with one of the keys in `update.tsig_keys`;
//! unsigned ones are refused. Prerequisites (§3.2) are checked against the
//! zone as this node holds it; the update section (§3.4) is turned into
//! whole-RRset writes, applied together (one journal sync), and then
//! replicated like any other write. A change that would leave the zone
//! unservable is refused (REFUSED), and nothing is written.

use std::collections::BTreeMap;

use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::name::ToLabelIter;
use domain::base::rdata::ComposeRecordData;
use domain::base::{Message, MessageBuilder, ParsedName};
use domain::rdata::AllRecordData;
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, Key, KeyName, ServerTransaction};
use meshdns_replication::{EntryKey, RRset};

use super::{ReplicatedError, ReplicatedZones};
use crate::dns::wire::name::{is_subdomain, to_text};

/// The TSIG keys UPDATEs may be signed with.
pub type UpdateKeys = std::sync::Arc<std::collections::HashMap<(KeyName, Algorithm), Key>>;

/// Why a key in the configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[error("update.tsig_keys: {0} (expected ALGORITHM:NAME:BASE64-SECRET, e.g. hmac-sha256:ddns-key:c2VjcmV0...)")]
pub struct KeyError(String);

/// Parses `[hmac-sha256:]name:base64` (as `nsupdate -y` takes it).
pub fn parse_keys(specs: &[String]) -> Result<UpdateKeys, KeyError> {
    use base64::Engine as _;
    let mut keys = std::collections::HashMap::new();
    for spec in specs {
        let parts: Vec<&str> = spec.splitn(3, ':').collect();
        let (alg, name, secret) = match parts.as_slice() {
            [name, secret] => ("hmac-sha256", *name, *secret),
            [alg, name, secret] => (*alg, *name, *secret),
            // Never quote the entry: it may be a secret alone.
            _ => return Err(KeyError("an entry has no NAME:SECRET".to_owned())),
        };
        let algorithm: Algorithm = alg.parse().map_err(|_| KeyError(format!("unknown algorithm {alg:?}")))?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .map_err(|_| KeyError(format!("the secret of {name:?} is not base64")))?;
        let name: KeyName = name.parse().map_err(|_| KeyError(format!("{name:?} is not a key name")))?;
        let key = Key::new(algorithm, &secret, name.clone(), None, None).map_err(|e| KeyError(e.to_string()))?;
        keys.insert((name, algorithm), key);
    }
    Ok(std::sync::Arc::new(keys))
}

/// Whether `query` is an UPDATE (opcode 5), from its header alone.
pub fn is_update(query: &[u8]) -> bool {
    query.len() >= 12 && (query[2] >> 3) & 0x0f == 5
}

/// One record of the prerequisite or update section.
struct Rr {
    owner: Vec<u8>,
    rtype: u16,
    class: Class,
    ttl: u32,
    /// RDATA in uncompressed wire form (empty for class ANY and most NONE).
    rdata: Vec<u8>,
}

/// Answers an UPDATE. `None` when the message cannot even be answered.
pub fn handle(query: &[u8], zones: &ReplicatedZones, keys: &UpdateKeys) -> Option<Vec<u8>> {
    let mut msg = Message::from_octets(query.to_vec()).ok()?;
    if msg.header().qr() || msg.header().opcode() != Opcode::UPDATE {
        return None;
    }
    let tsig = match ServerTransaction::request(keys, &mut msg, Time48::now()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("refused an UPDATE: bad TSIG");
            let builder = MessageBuilder::new_vec();
            return e.build_message(&msg, builder).ok().map(|b| b.finish());
        }
    };
    let rcode = match tsig {
        None => {
            tracing::warn!("refused an unsigned UPDATE (sign it with a key from update.tsig_keys)");
            Rcode::REFUSED
        }
        Some(_) => process(&msg, zones),
    };
    let mut answer = MessageBuilder::new_vec().start_answer(&msg, rcode).ok()?.additional();
    if let Some(t) = tsig {
        t.answer(&mut answer, Time48::now()).ok()?;
    }
    Some(answer.finish())
}

fn owner_of<N: ToLabelIter>(name: &N) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for label in name.iter_labels() {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_slice());
    }
    out.to_ascii_lowercase()
}

fn section(rrs: &mut Vec<Rr>, records: domain::base::message::RecordSection<'_, Vec<u8>>) -> Result<(), Rcode> {
    for r in records {
        let r = r.map_err(|_| Rcode::FORMERR)?;
        let owner = owner_of(&r.owner());
        let mut rdata = Vec::new();
        if r.rdlen() > 0 {
            let rec = r.to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>().map_err(|_| Rcode::FORMERR)?;
            rec.data().compose_rdata(&mut rdata).map_err(|_| Rcode::FORMERR)?;
        }
        rrs.push(Rr { owner, rtype: r.rtype().to_int(), class: r.class(), ttl: r.ttl().as_secs(), rdata });
    }
    Ok(())
}

fn process(msg: &Message<Vec<u8>>, zones: &ReplicatedZones) -> Rcode {
    // The zone section (RFC 2136 §2.3): one entry, type SOA.
    let mut questions = msg.question();
    let zone = match (questions.next(), questions.next()) {
        (Some(Ok(q)), None) if q.qtype() == Rtype::SOA && q.qclass() == Class::IN => owner_of(q.qname()),
        _ => return Rcode::FORMERR,
    };
    let zone_text = to_text(&zone);
    let current = match zones.rrsets(&zone_text) {
        Ok(c) => c,
        Err(ReplicatedError::NoZone(_)) => return Rcode::NOTAUTH,
        Err(_) => return Rcode::SERVFAIL,
    };
    let (mut prereq, mut updates) = (Vec::new(), Vec::new());
    let Ok(answer) = msg.answer() else { return Rcode::FORMERR };
    if let Err(rc) = section(&mut prereq, answer) {
        return rc;
    }
    let Ok(authority) = msg.authority() else { return Rcode::FORMERR };
    if let Err(rc) = section(&mut updates, authority) {
        return rc;
    }
    let mut sets: BTreeMap<(Vec<u8>, u16), RRset> = current.into_iter().map(|(k, v)| ((k.owner, k.rtype), v)).collect();
    if let Err(rc) = check_prerequisites(&zone, &prereq, &sets) {
        return rc;
    }
    let before = sets.clone();
    if let Err(rc) = apply_updates(&zone, &updates, &mut sets) {
        return rc;
    }
    let mut writes: Vec<(EntryKey, Option<RRset>)> = Vec::new();
    for (k, v) in &sets {
        if before.get(k) != Some(v) {
            writes.push((EntryKey { owner: k.0.clone(), rtype: k.1 }, Some(v.clone())));
        }
    }
    for k in before.keys().filter(|k| !sets.contains_key(*k)) {
        writes.push((EntryKey { owner: k.0.clone(), rtype: k.1 }, None));
    }
    if writes.is_empty() {
        return Rcode::NOERROR;
    }
    match zones.write(&zone_text, writes) {
        Ok(()) => {
            tracing::info!(zone = %zone_text, "applied an UPDATE");
            Rcode::NOERROR
        }
        Err(ReplicatedError::Invalid(why)) => {
            tracing::warn!(zone = %zone_text, %why, "refused an UPDATE");
            Rcode::REFUSED
        }
        Err(e) => {
            tracing::error!(zone = %zone_text, error = %e, "an UPDATE could not be stored");
            Rcode::SERVFAIL
        }
    }
}

/// RFC 2136 §3.2.
fn check_prerequisites(zone: &[u8], prereq: &[Rr], sets: &BTreeMap<(Vec<u8>, u16), RRset>) -> Result<(), Rcode> {
    let name_exists = |owner: &[u8]| sets.keys().any(|(o, _)| o == owner);
    let mut wanted: BTreeMap<(Vec<u8>, u16), Vec<Vec<u8>>> = BTreeMap::new();
    for r in prereq {
        if r.ttl != 0 {
            return Err(Rcode::FORMERR);
        }
        if !is_subdomain(&r.owner, zone) {
            return Err(Rcode::NOTZONE);
        }
        let any = r.rtype == Rtype::ANY.to_int();
        if r.class == Class::ANY {
            if !r.rdata.is_empty() {
                return Err(Rcode::FORMERR);
            }
            if any && !name_exists(&r.owner) {
                return Err(Rcode::NXDOMAIN);
            }
            if !any && !sets.contains_key(&(r.owner.clone(), r.rtype)) {
                return Err(Rcode::NXRRSET);
            }
        } else if r.class == Class::NONE {
            if !r.rdata.is_empty() {
                return Err(Rcode::FORMERR);
            }
            if any && name_exists(&r.owner) {
                return Err(Rcode::YXDOMAIN);
            }
            if !any && sets.contains_key(&(r.owner.clone(), r.rtype)) {
                return Err(Rcode::YXRRSET);
            }
        } else if r.class == Class::IN {
            wanted.entry((r.owner.clone(), r.rtype)).or_default().push(r.rdata.clone());
        } else {
            return Err(Rcode::FORMERR);
        }
    }
    for (k, rdata) in wanted {
        let want = RRset::new(0, rdata).rdata;
        if sets.get(&k).map(|s| &s.rdata) != Some(&want) {
            return Err(Rcode::NXRRSET);
        }
    }
    Ok(())
}

/// Meta types that cannot be added or deleted (RFC 2136 §3.4.1.2).
fn is_meta(rtype: u16) -> bool {
    (128..=255).contains(&rtype) || rtype == 0 || rtype == Rtype::OPT.to_int() || rtype == Rtype::TSIG.to_int()
}

/// RFC 2136 §3.4: prescan, then apply to the working copy `sets`.
fn apply_updates(zone: &[u8], updates: &[Rr], sets: &mut BTreeMap<(Vec<u8>, u16), RRset>) -> Result<(), Rcode> {
    let (soa, ns, cname) = (Rtype::SOA.to_int(), Rtype::NS.to_int(), Rtype::CNAME.to_int());
    for r in updates {
        if !is_subdomain(&r.owner, zone) {
            return Err(Rcode::NOTZONE);
        }
        let ok = if r.class == Class::IN {
            !is_meta(r.rtype)
        } else if r.class == Class::ANY {
            r.ttl == 0 && r.rdata.is_empty() && (r.rtype == Rtype::ANY.to_int() || !is_meta(r.rtype))
        } else if r.class == Class::NONE {
            r.ttl == 0 && !is_meta(r.rtype)
        } else {
            false
        };
        if !ok {
            return Err(Rcode::FORMERR);
        }
    }
    for r in updates {
        let apex = r.owner == zone;
        let key = (r.owner.clone(), r.rtype);
        if r.class == Class::IN {
            let has_cname = sets.contains_key(&(r.owner.clone(), cname));
            let has_other = sets.keys().any(|(o, t)| o == &r.owner && *t != cname);
            if (r.rtype == cname && has_other) || (r.rtype != cname && has_cname) {
                continue; // §3.4.2.2: ignored
            }
            if r.rtype == cname {
                // §3.4.2.2: a CNAME replaces the one there (one per name).
                sets.insert(key, RRset::new(r.ttl, vec![r.rdata.clone()]));
                continue;
            }
            if r.rtype == soa {
                sets.insert(key, RRset::new(r.ttl, vec![r.rdata.clone()]));
                continue;
            }
            let set = sets.entry(key).or_insert_with(|| RRset::new(r.ttl, Vec::new()));
            let mut rdata = set.rdata.clone();
            rdata.push(r.rdata.clone());
            *set = RRset::new(r.ttl, rdata);
        } else if r.class == Class::ANY {
            if r.rtype == Rtype::ANY.to_int() {
                sets.retain(|(o, t), _| o != &r.owner || (apex && (*t == soa || *t == ns)));
            } else if !(apex && (r.rtype == soa || r.rtype == ns)) {
                sets.remove(&key);
            }
        } else if r.rtype != soa
            && let Some(set) = sets.get(&key)
        {
            let rest: Vec<Vec<u8>> = set.rdata.iter().filter(|d| **d != r.rdata).cloned().collect();
            if rest.is_empty() {
                if !(apex && r.rtype == ns) {
                    sets.remove(&key);
                }
            } else {
                let ttl = set.ttl;
                sets.insert(key, RRset::new(ttl, rest));
            }
        }
    }
    Ok(())
}
