//! RFC 2136 dynamic UPDATE of replicated zones, signed with TSIG
//! (RFC 8945), so `nsupdate` and the RFC 2136 providers of ExternalDNS and
//! cert-manager can write zones through any node.
//!
//! An UPDATE goes through two stages:
//!
//! 1. [`verify`], on the DNS worker that received it: the TSIG signature
//!    is checked, the message is parsed ([`parse`]) and the key's scope
//!    ([`Scope`]) is checked. No lock is taken and nothing is read from the
//!    zones, so an unsigned or forged flood costs one HMAC per message and
//!    never waits behind, or holds up, a write.
//! 2. [`apply`], on the update writer ([`super::writer`]): prerequisites
//!    (§3.2) are checked against the zone as this node holds it, the update
//!    section (§3.4) is turned into whole-RRset writes, applied together
//!    (one journal sync), and then replicated like any other write. A
//!    change that would leave the zone unservable is refused (REFUSED),
//!    and nothing is written.
//!
//! Unsigned UPDATEs are refused (REFUSED). A key may be scoped to zones,
//! names and types (in the spirit of Knot's ACL `update-owner`); an UPDATE
//! outside its key's scope is answered NOTAUTH, as Knot answers an ACL
//! denial, and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

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

/// What one key may change (Knot's `update-owner` with `sub-or-equal`
/// matching, and `update-type`). Empty lists allow everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Zones (wire form, lowercase) the key may update; empty: every zone.
    pub zones: Vec<Vec<u8>>,
    /// Owners the key may change, each with everything below it; a name
    /// without a final dot is relative to the zone being updated.
    pub names: Vec<String>,
    /// RR types the key may change (`ANY` deletes need `ANY` listed).
    pub types: Vec<u16>,
}

/// The TSIG keys UPDATEs may be signed with, and what each may change.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: HashMap<(KeyName, Algorithm), Key>,
    scopes: HashMap<KeyName, Scope>,
}

/// Shared [`KeyRing`].
pub type UpdateKeys = Arc<KeyRing>;

impl KeyRing {
    /// The scope of `key` (every zone, name and type if it has none).
    pub fn scope(&self, key: &KeyName) -> Option<&Scope> {
        self.scopes.get(key)
    }

    /// The keys, as a TSIG key store.
    pub fn store(&self) -> &HashMap<(KeyName, Algorithm), Key> {
        &self.keys
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A scoped key as configured (`[[update.keys]]`). Its `Debug` hides the
/// secret.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedKeySpec {
    /// Key name, as `nsupdate -y` gives it.
    pub name: String,
    /// `hmac-sha256` (the default), `hmac-sha384`, `hmac-sha512`, `hmac-sha1`.
    pub algorithm: Option<String>,
    /// The secret, base64.
    pub secret: String,
    /// Zones the key may update (required: at least one).
    pub zones: Vec<String>,
    /// Owners the key may change, each with everything below it.
    #[serde(default)]
    pub names: Vec<String>,
    /// RR types the key may change.
    #[serde(default)]
    pub types: Vec<String>,
}

impl std::fmt::Debug for ScopedKeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedKeySpec")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"(hidden)")
            .field("zones", &self.zones)
            .field("names", &self.names)
            .field("types", &self.types)
            .finish()
    }
}

/// Why a key in the configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} (expected ALGORITHM:NAME:BASE64-SECRET, e.g. hmac-sha256:ddns-key:c2VjcmV0..., or an [[update.keys]] table)"
)]
pub struct KeyError(String);

/// One key from `[hmac-sha256:]name:base64` (as `nsupdate -y` takes it).
pub fn parse_key(spec: &str) -> Result<Key, KeyError> {
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    let (alg, name, secret) = match parts.as_slice() {
        [name, secret] => ("hmac-sha256", *name, *secret),
        [alg, name, secret] => (*alg, *name, *secret),
        _ => return Err(KeyError("a key has no secret".into())),
    };
    make_key(alg, name, secret)
}

fn make_key(alg: &str, name: &str, secret: &str) -> Result<Key, KeyError> {
    use base64::Engine as _;
    let algorithm: Algorithm = alg.parse().map_err(|_| KeyError(format!("unknown algorithm {alg:?}")))?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .map_err(|_| KeyError(format!("the secret of {name:?} is not base64")))?;
    let name: KeyName = name.parse().map_err(|_| KeyError(format!("{name:?} is not a key name")))?;
    Key::new(algorithm, &secret, name, None, None).map_err(|e| KeyError(e.to_string()))
}

/// The keys of `update.tsig_keys` (`specs`, every zone) and of
/// `[[update.keys]]` (`scoped`). A key name may appear once.
pub fn parse_keys(specs: &[String], scoped: &[ScopedKeySpec]) -> Result<UpdateKeys, KeyError> {
    let mut ring = KeyRing::default();
    let add = |ring: &mut KeyRing, key: Key, scope: Scope| {
        let name = key.name().clone();
        if ring.scopes.insert(name.clone(), scope).is_some() {
            return Err(KeyError(format!("key {name} is given twice")));
        }
        ring.keys.insert((name, key.algorithm()), key);
        Ok(())
    };
    for spec in specs {
        add(&mut ring, parse_key(spec)?, Scope::default())?;
    }
    for s in scoped {
        let key = make_key(s.algorithm.as_deref().unwrap_or("hmac-sha256"), &s.name, &s.secret)?;
        if s.zones.is_empty() {
            return Err(KeyError(format!("key {:?} lists no zones (give zones = [\"example.net\"])", s.name)));
        }
        let zones = s
            .zones
            .iter()
            .map(|z| super::zone_wire(z).ok_or_else(|| KeyError(format!("{z:?} is not a zone name"))))
            .collect::<Result<Vec<_>, _>>()?;
        for n in &s.names {
            let test = if n.ends_with('.') { n.clone() } else { format!("{n}.example.") };
            if super::zone_wire(&test).is_none() {
                return Err(KeyError(format!("{n:?} in the names of key {:?} is not a domain name", s.name)));
            }
        }
        let types = s
            .types
            .iter()
            .map(|t| {
                Rtype::from_str(t)
                    .map(|t| t.to_int())
                    .map_err(|_| KeyError(format!("{t:?} in the types of key {:?} is not a record type", s.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        add(&mut ring, key, Scope { zones, names: s.names.clone(), types })?;
    }
    Ok(Arc::new(ring))
}

/// Whether `query` is an UPDATE (opcode 5), from its header alone.
pub fn is_update(query: &[u8]) -> bool {
    query.len() >= 12 && (query[2] >> 3) & 0x0f == 5
}

/// One record of the prerequisite or update section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// Owner, wire form, lowercase.
    pub owner: Vec<u8>,
    /// RR type.
    pub rtype: u16,
    /// Class (IN, ANY or NONE mean different things, RFC 2136 §2.4, §2.5).
    pub class: Class,
    /// TTL.
    pub ttl: u32,
    /// RDATA in uncompressed wire form (empty for class ANY and most NONE).
    pub rdata: Vec<u8>,
}

/// An UPDATE as parsed (RFC 2136 §2): its zone, prerequisites and updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRequest {
    /// The zone section's one name (wire form, lowercase).
    pub zone: Vec<u8>,
    /// The prerequisite section (§2.4).
    pub prereq: Vec<Rr>,
    /// The update section (§2.5).
    pub updates: Vec<Rr>,
}

/// Parses an UPDATE whose TSIG record, if any, is already removed. Any
/// bytes give a result or an RCODE to answer with; never a panic.
pub fn parse(msg: &Message<Vec<u8>>) -> Result<UpdateRequest, Rcode> {
    if msg.header().qr() || msg.header().opcode() != Opcode::UPDATE {
        return Err(Rcode::FORMERR);
    }
    // The zone section (RFC 2136 §2.3): one entry, type SOA.
    let mut questions = msg.question();
    let zone = match (questions.next(), questions.next()) {
        (Some(Ok(q)), None) if q.qtype() == Rtype::SOA && q.qclass() == Class::IN => owner_of(q.qname()),
        _ => return Err(Rcode::FORMERR),
    };
    let (mut prereq, mut updates) = (Vec::new(), Vec::new());
    section(&mut prereq, msg.answer().map_err(|_| Rcode::FORMERR)?)?;
    section(&mut updates, msg.authority().map_err(|_| Rcode::FORMERR)?)?;
    Ok(UpdateRequest { zone, prereq, updates })
}

/// Parses raw bytes as an UPDATE without looking for TSIG (the fuzz target
/// and property tests drive this).
pub fn parse_bytes(bytes: &[u8]) -> Result<UpdateRequest, Rcode> {
    let msg = Message::from_octets(bytes.to_vec()).map_err(|_| Rcode::FORMERR)?;
    parse(&msg)
}

/// Whether `name` (wire) matches a scope name: it or below it. A scope
/// name without a final dot is relative to `zone`.
fn name_allowed(name: &[u8], zone: &[u8], allowed: &str) -> bool {
    let absolute = if allowed.ends_with('.') {
        super::zone_wire(allowed)
    } else if allowed == "@" {
        Some(zone.to_vec())
    } else {
        super::zone_wire(&format!("{allowed}.{}", to_text(zone)))
    };
    absolute.is_some_and(|a| is_subdomain(name, &a))
}

/// Whether `scope` lets its key make this update (Knot's `update-owner`:
/// every updated RR must be allowed).
pub fn in_scope(scope: &Scope, req: &UpdateRequest) -> bool {
    if !scope.zones.is_empty() && !scope.zones.contains(&req.zone) {
        return false;
    }
    req.updates.iter().all(|r| {
        (scope.types.is_empty() || scope.types.contains(&r.rtype))
            && (scope.names.is_empty() || scope.names.iter().any(|n| name_allowed(&r.owner, &req.zone, n)))
    })
}

/// An UPDATE whose signature holds and whose key may make it: ready for
/// the writer.
pub struct Verified {
    msg: Message<Vec<u8>>,
    tsig: ServerTransaction<Key>,
    req: UpdateRequest,
    key: String,
}

impl Verified {
    /// The name of the key that signed it (for logs and the audit log).
    pub fn key_name(&self) -> &str {
        &self.key
    }

    /// The zone it updates, as text.
    pub fn zone(&self) -> String {
        to_text(&self.req.zone)
    }

    /// An unsigned SERVFAIL for it, for when applying it failed so badly
    /// (a panic) that the TSIG transaction went with it.
    pub fn servfail(&self) -> Option<Vec<u8>> {
        MessageBuilder::new_vec().start_answer(&self.msg, Rcode::SERVFAIL).ok().map(|b| b.finish())
    }
}

/// What [`verify`] decided.
pub enum Checked {
    /// Answer at once with this message (a refusal or error), no write.
    Answer(Vec<u8>),
    /// Hand to the writer.
    Write(Box<Verified>),
    /// Not an UPDATE, or nothing can be answered: drop it.
    Drop,
}

/// Stage 1: checks the signature, parses, checks the key's scope. Takes no
/// lock and reads no zone.
pub fn verify(query: &[u8], keys: &KeyRing) -> Checked {
    let Ok(mut msg) = Message::from_octets(query.to_vec()) else { return Checked::Drop };
    if msg.header().qr() || msg.header().opcode() != Opcode::UPDATE {
        return Checked::Drop;
    }
    let tsig = match ServerTransaction::request(keys.store(), &mut msg, Time48::now()) {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::warn!("refused an unsigned UPDATE (sign it with a key from update.tsig_keys or [[update.keys]])");
            return unsigned_answer(&msg, Rcode::REFUSED);
        }
        Err(e) => {
            tracing::warn!("refused an UPDATE: bad TSIG");
            return tsig_error_answer(e, &msg).map_or(Checked::Drop, Checked::Answer);
        }
    };
    let key = tsig.key().name().to_string();
    let req = match parse(&msg) {
        Ok(r) => r,
        Err(rcode) => return signed_answer(&msg, tsig, rcode).map_or(Checked::Drop, Checked::Answer),
    };
    let allowed = keys.scope(tsig.key().name()).is_none_or(|s| in_scope(s, &req));
    if !allowed {
        tracing::warn!(key = %key, zone = %to_text(&req.zone), "refused an UPDATE outside its key's scope (see [[update.keys]])");
        return signed_answer(&msg, tsig, Rcode::NOTAUTH).map_or(Checked::Drop, Checked::Answer);
    }
    Checked::Write(Box::new(Verified { msg, tsig, req, key }))
}

/// Stage 2, on the writer: checks prerequisites and writes. Returns the
/// RCODE (for logs and the audit log) and the signed answer.
pub fn apply(v: Verified, zones: &ReplicatedZones) -> (Rcode, Option<Vec<u8>>) {
    let rcode = process(&v.req, zones);
    (rcode, signed_answer(&v.msg, v.tsig, rcode))
}

/// The answer to `v` when it cannot be written at all (the writer is
/// overloaded or gone): SERVFAIL, signed.
pub fn unavailable(v: Verified) -> Option<Vec<u8>> {
    signed_answer(&v.msg, v.tsig, Rcode::SERVFAIL)
}

/// The answer to a request whose TSIG does not verify (RFC 8945 §5.2):
/// NOTAUTH with the TSIG error, unsigned.
///
/// domain 0.12 reports a MAC that does not match as TSIG error FORMERR;
/// RFC 8945 §5.2.2 says BADSIG (16), which is what BIND, Knot and NSD
/// send and what `dig` and `kdig` print. The error is the second-to-last
/// field of the TSIG RDATA, the message's last record, before an empty
/// "other data", so it is set right in place.
pub fn tsig_error_answer<K: AsRef<Key>>(e: domain::tsig::ServerError<K>, msg: &Message<Vec<u8>>) -> Option<Vec<u8>> {
    let bad_mac = e.error() == domain::base::iana::TsigRcode::FORMERR;
    let mut out = e.build_message(msg, MessageBuilder::new_vec()).ok()?.finish();
    let is_notauth = Message::from_octets(out.as_slice()).is_ok_and(|m| m.header().rcode() == Rcode::NOTAUTH);
    if bad_mac && is_notauth && out.len() >= 16 && out[out.len() - 2..] == [0, 0] {
        let at = out.len() - 4;
        out[at..at + 2].copy_from_slice(&domain::base::iana::TsigRcode::BADSIG.to_int().to_be_bytes());
    }
    Some(out)
}

fn unsigned_answer(msg: &Message<Vec<u8>>, rcode: Rcode) -> Checked {
    match MessageBuilder::new_vec().start_answer(msg, rcode) {
        Ok(b) => Checked::Answer(b.finish()),
        Err(_) => Checked::Drop,
    }
}

fn signed_answer(msg: &Message<Vec<u8>>, tsig: ServerTransaction<Key>, rcode: Rcode) -> Option<Vec<u8>> {
    let mut answer = MessageBuilder::new_vec().start_answer(msg, rcode).ok()?.additional();
    tsig.answer(&mut answer, Time48::now()).ok()?;
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

fn process(req: &UpdateRequest, zones: &ReplicatedZones) -> Rcode {
    let zone = &req.zone;
    let zone_text = to_text(zone);
    let current = match zones.rrsets(&zone_text) {
        Ok(c) => c,
        Err(ReplicatedError::NoZone(_)) => return Rcode::NOTAUTH,
        Err(_) => return Rcode::SERVFAIL,
    };
    let mut sets: BTreeMap<(Vec<u8>, u16), RRset> = current.into_iter().map(|(k, v)| ((k.owner, k.rtype), v)).collect();
    if let Err(rc) = check_prerequisites(zone, &req.prereq, &sets) {
        return rc;
    }
    let before = sets.clone();
    if let Err(rc) = apply_updates(zone, &req.updates, &mut sets) {
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

#[cfg(test)]
mod tests {
    use domain::base::iana::{Class, Opcode, Rtype};
    use domain::base::{MessageBuilder, Name, Question, UnknownRecordData};
    use proptest::prelude::*;

    use super::*;

    /// One record as the test writes it: label under the zone (empty: the
    /// apex), type, class, TTL, RDATA.
    type Spec = (String, u16, u16, u32, Vec<u8>);

    fn encode(zone: &str, prereq: &[Spec], updates: &[Spec]) -> Vec<u8> {
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_opcode(Opcode::UPDATE);
        let mut q = b.question();
        let z: Name<Vec<u8>> = zone.parse().unwrap();
        q.push(Question::new_in(z, Rtype::SOA)).unwrap();
        let record = |s: &Spec| {
            let owner = if s.0.is_empty() { zone.to_owned() } else { format!("{}.{zone}", s.0) };
            let name: Name<Vec<u8>> = owner.parse().unwrap();
            let data = UnknownRecordData::from_octets(Rtype::from_int(s.1), s.4.clone()).unwrap();
            (name, Class::from_int(s.2), s.3, data)
        };
        let mut a = q.answer();
        for s in prereq {
            a.push(record(s)).unwrap();
        }
        let mut auth = a.authority();
        for s in updates {
            auth.push(record(s)).unwrap();
        }
        auth.finish()
    }

    fn expected(zone: &str, specs: &[Spec]) -> Vec<Rr> {
        specs
            .iter()
            .map(|s| {
                let owner = if s.0.is_empty() { zone.to_owned() } else { format!("{}.{zone}", s.0) };
                Rr {
                    owner: super::super::zone_wire(&owner).unwrap(),
                    rtype: s.1,
                    class: Class::from_int(s.2),
                    ttl: s.3,
                    rdata: s.4.clone(),
                }
            })
            .collect()
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            "([a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2})?",
            // Private-use types: carried as opaque RDATA, so any bytes are valid.
            65280u16..65300,
            prop_oneof![Just(1u16), Just(254), Just(255)],
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
    }

    proptest! {
        /// RFC 2136 §2: what is encoded as the zone, prerequisite and
        /// update sections is what the parser gives back, owners lowercased.
        #[test]
        fn an_update_parses_back_to_what_was_encoded(
            zone in "[a-z]{1,12}\\.(net|org|example)\\.",
            prereq in proptest::collection::vec(spec(), 0..5),
            updates in proptest::collection::vec(spec(), 0..8),
        ) {
            let wire = encode(&zone, &prereq, &updates);
            let parsed = parse_bytes(&wire).unwrap();
            prop_assert_eq!(parsed.zone, super::super::zone_wire(&zone).unwrap());
            prop_assert_eq!(parsed.prereq, expected(&zone, &prereq));
            prop_assert_eq!(parsed.updates, expected(&zone, &updates));
        }

        /// Any bytes, and any UPDATE cut short or with one byte changed,
        /// give a parse or an RCODE, never a panic; `verify` likewise.
        #[test]
        fn damaged_updates_never_panic(
            updates in proptest::collection::vec(spec(), 1..4),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            noise in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let wire = encode("example.net.", &[], &updates);
            let keys = parse_keys(&[KEY.into()], &[]).unwrap();
            let mut flipped = wire.clone();
            let at = flip.index(flipped.len());
            flipped[at] = byte;
            let mut noisy = noise.clone();
            if noisy.len() >= 12 {
                noisy[2] = 5 << 3; // opcode UPDATE
            }
            for bytes in [&wire[..cut.index(wire.len())], &flipped[..], &noisy[..]] {
                let _ = parse_bytes(bytes);
                let _ = verify(bytes, &keys);
            }
        }
    }

    const KEY: &str = "hmac-sha256:k:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

    fn request(zone: &str, updates: &[Spec]) -> UpdateRequest {
        parse_bytes(&encode(zone, &[], updates)).unwrap()
    }

    fn scope(zones: &[&str], names: &[&str], types: &[&str]) -> Scope {
        let spec = ScopedKeySpec {
            name: "k".into(),
            algorithm: None,
            secret: "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=".into(),
            zones: zones.iter().map(|s| s.to_string()).collect(),
            names: names.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|s| s.to_string()).collect(),
        };
        let ring = parse_keys(&[], &[spec]).unwrap();
        ring.scopes.values().next().unwrap().clone()
    }

    /// Knot's `update-owner` (sub-or-equal) and `update-type`: every
    /// updated record must be in the key's zones, under one of its names,
    /// and of one of its types.
    #[test]
    fn a_scoped_key_may_change_only_its_zones_names_and_types() {
        let a = |label: &str| (label.to_owned(), 1u16, 1u16, 300u32, vec![192, 0, 2, 1]);
        let txt = |label: &str| (label.to_owned(), 16u16, 1u16, 300u32, vec![2, b'h', b'i']);
        let s = scope(&["example.net"], &[], &[]);
        assert!(in_scope(&s, &request("example.net.", &[a("www")])));
        assert!(!in_scope(&s, &request("example.org.", &[a("www")])), "another zone");
        let s = scope(&["example.net"], &["_acme-challenge", "dyn.example.net."], &["TXT"]);
        assert!(in_scope(&s, &request("example.net.", &[txt("_acme-challenge")])));
        assert!(in_scope(&s, &request("example.net.", &[txt("x._acme-challenge")])), "below a name");
        assert!(in_scope(&s, &request("example.net.", &[txt("host.dyn")])), "an absolute name");
        assert!(!in_scope(&s, &request("example.net.", &[txt("www")])), "another name");
        assert!(!in_scope(&s, &request("example.net.", &[a("_acme-challenge")])), "another type");
        assert!(
            !in_scope(&s, &request("example.net.", &[txt("_acme-challenge"), txt("www")])),
            "one record out of scope refuses the whole update"
        );
    }

    fn signed(wire: Vec<u8>, key: &str) -> Vec<u8> {
        let key = parse_key(key).unwrap();
        let msg = Message::from_octets(wire).unwrap();
        let mut b = MessageBuilder::new_vec();
        *b.header_mut() = msg.header();
        let mut q = b.question();
        for x in msg.question() {
            q.push(x.unwrap()).unwrap();
        }
        let mut a = q.answer().authority();
        for r in msg.authority().unwrap() {
            a.push(r.unwrap().to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>().unwrap()).unwrap();
        }
        let mut add = a.additional();
        domain::tsig::ClientTransaction::request(&key, &mut add, Time48::now()).unwrap();
        add.finish()
    }

    /// Stage 1 needs nothing but the message and the keys: it cannot take
    /// a zone lock, so a forged UPDATE is answered without waiting on any
    /// write. A bad MAC is BADSIG (RFC 8945 §5.2.2), not domain's FORMERR;
    /// an unknown key BADKEY; both NOTAUTH.
    #[test]
    fn tsig_is_checked_with_the_keys_alone_and_errors_are_named() {
        let keys = parse_keys(&[KEY.into()], &[]).unwrap();
        let update = encode("example.net.", &[], &[("www".into(), 1, 1, 300, vec![192, 0, 2, 1])]);
        assert!(matches!(verify(&signed(update.clone(), KEY), &keys), Checked::Write(_)));
        for (key, want) in [
            ("hmac-sha256:k:d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=", domain::base::iana::TsigRcode::BADSIG),
            ("hmac-sha256:other:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=", domain::base::iana::TsigRcode::BADKEY),
        ] {
            let Checked::Answer(answer) = verify(&signed(update.clone(), key), &keys) else {
                panic!("{key}: answered at once");
            };
            let msg = Message::from_octets(answer.clone()).unwrap();
            assert_eq!(msg.header().rcode(), Rcode::NOTAUTH);
            let error = u16::from_be_bytes([answer[answer.len() - 4], answer[answer.len() - 3]]);
            assert_eq!(error, want.to_int(), "{key}");
        }
        let Checked::Answer(answer) = verify(&update, &keys) else { panic!("unsigned: answered at once") };
        assert_eq!(Message::from_octets(answer).unwrap().header().rcode(), Rcode::REFUSED);
    }

    #[test]
    fn scoped_keys_that_cannot_work_are_configuration_errors() {
        let mut spec = ScopedKeySpec { name: "k".into(), secret: "c2VjcmV0".into(), ..Default::default() };
        let err = parse_keys(&[], &[spec.clone()]).unwrap_err().to_string();
        assert!(err.contains("lists no zones"), "{err}");
        spec.zones = vec!["example.net".into()];
        spec.types = vec!["NOTATYPE".into()];
        let err = parse_keys(&[], &[spec.clone()]).unwrap_err().to_string();
        assert!(err.contains("NOTATYPE"), "{err}");
        spec.types = vec![];
        let err = parse_keys(&["hmac-sha256:k:c2VjcmV0".into()], &[spec.clone()]).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        assert!(!format!("{spec:?}").contains("c2VjcmV0"), "the secret is not in Debug output");
    }
}
