//! The zone lookup of RFC 1034 §4.3.2 step 3, one zone at a time.
//!
//! The walk, for the current name (the QNAME, then each CNAME/DNAME target
//! inside the zone):
//!
//! 1. Exact match (§4.3.2 3.a). If the node lies below a cut or a DNAME, the
//!    occluding node answers instead (3.b / RFC 6672 §3.2). A cut answers
//!    with a referral, except for DS, which lives on the parent side
//!    (RFC 4035 §3.1.4.1). Otherwise the RRset of QTYPE is the answer; a
//!    CNAME at the node is followed (RFC 1034 §3.6.2); no RRset is NODATA.
//! 2. No match: find the closest encloser (RFC 4592 §3.3.1). A cut or DNAME
//!    at or above it takes over as in 1. Otherwise, if `*.<closest encloser>`
//!    exists, it answers with the QNAME as owner (RFC 4592 §3.3.3); if not,
//!    the name does not exist: NXDOMAIN (RFC 1034 §4.3.2 3.c).
//!
//! A CNAME chain that reaches a zone cut ends with the referral to it (RFC
//! 1034 §4.3.2 step 3.b, after 3.a restarted the walk at the target): the
//! child's NS RRset in authority and its glue in additional, with AA set for
//! the CNAMEs already answered, as NSD and Knot send it. This is the common
//! shape of RFC 2317 classless reverse delegation.
//!
//! Negative answers carry the zone's SOA in authority with the TTL RFC 2308
//! §3 asks for, min(SOA TTL, SOA MINIMUM). CNAME chains stop after
//! [`MAX_CHAIN`] links or when they leave the zone; the rcode is that of the
//! last name (RFC 6604 §2).

use meshdns_schemas::zone_snapshot::{Node, RRset};

use crate::dns::iana::{Rcode, Rtype};
use crate::dns::wire::builder::{Full, Owner, ResponseBuilder, Section};
use crate::dns::wire::name::{MAX_NAME_LEN, is_subdomain};
use crate::zone::set::ZoneSet;
use crate::zone::snapshot::{Snapshot, flags};

/// Longest CNAME/DNAME chain followed inside one zone.
pub(super) const MAX_CHAIN: usize = 12;

/// Additional-section candidates collected while answering.
const MAX_ADDITIONAL: usize = 32;

/// How the lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Outcome {
    /// The rcode.
    pub rcode: Rcode,
    /// AA: answered from authoritative data (not a referral).
    pub authoritative: bool,
    /// TC: required records did not fit.
    pub truncated: bool,
}

struct Additional<'z> {
    /// Target names (absolute, as written in RDATA) and whether their
    /// addresses are required glue (RFC 9471).
    names: [(&'z [u8], bool); MAX_ADDITIONAL],
    len: usize,
}

impl<'z> Additional<'z> {
    fn push(&mut self, name: &'z [u8], required: bool) {
        if self.len < MAX_ADDITIONAL && !self.names[..self.len].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            self.names[self.len] = (name, required);
            self.len += 1;
        }
    }
}

/// A name being looked up: owned in a stack buffer so DNAME substitutions
/// can build new ones.
struct Current {
    buf: [u8; MAX_NAME_LEN],
    len: usize,
    /// Whether the owner to write is the question (pointer) or `buf`.
    is_qname: bool,
}

impl Current {
    fn name(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn owner(&self) -> Owner<'_> {
        if self.is_qname { Owner::Question } else { Owner::Name(self.name()) }
    }
    fn copy(&self) -> Current {
        Current { buf: self.buf, len: self.len, is_qname: self.is_qname }
    }
    fn set(&mut self, name: &[u8]) {
        self.buf[..name.len()].copy_from_slice(name);
        self.len = name.len();
        self.is_qname = false;
    }
}

/// Resolves `qname` (lower-cased wire, at or below the zone origin) in `zone`
/// and writes answer, authority and additional records into `b`.
pub(super) fn resolve(
    zones: &ZoneSet,
    zone: &Snapshot,
    qname: &[u8],
    qtype: Rtype,
    dnssec_ok: bool,
    b: &mut ResponseBuilder<'_>,
) -> Outcome {
    let start = b.mark();
    let mut r = Resolver {
        zones,
        zone,
        qtype,
        dnssec_ok,
        additional: Additional { names: [(&[][..], false); MAX_ADDITIONAL], len: 0 },
        owner_addresses: None,
    };
    let mut out = match r.run(qname, b) {
        Ok(o) => o,
        Err(Full) => {
            // RFC 2181 §9: the answer does not fit; send the question with TC
            // and let the client retry over TCP.
            b.rollback(start);
            return Outcome { rcode: Rcode::NOERROR, authoritative: true, truncated: true };
        }
    };
    if r.write_additional(b) {
        out.truncated = true;
    }
    out
}

/// What a cut or DNAME did to the walk.
enum Step {
    /// The response is complete.
    Done(Outcome),
    /// A DNAME moved the walk to a new name inside the zone.
    Follow,
}

const DONE_AUTH: Outcome = Outcome { rcode: Rcode::NOERROR, authoritative: true, truncated: false };

struct Resolver<'z> {
    zones: &'z ZoneSet,
    zone: &'z Snapshot,
    qtype: Rtype,
    /// DO was set on the query.
    dnssec_ok: bool,
    additional: Additional<'z>,
    /// An SVCB/HTTPS answer in ServiceMode with TargetName "." (RFC 9460
    /// §2.5.2): the node and owner whose own addresses go in additional.
    owner_addresses: Option<(Node, Current)>,
}

impl<'z> Resolver<'z> {
    fn run(&mut self, qname: &[u8], b: &mut ResponseBuilder<'_>) -> Result<Outcome, Full> {
        let mut cur = Current { buf: [0; MAX_NAME_LEN], len: qname.len(), is_qname: true };
        cur.buf[..qname.len()].copy_from_slice(qname);
        for link in 0..MAX_CHAIN {
            // A CNAME may have moved the walk into another served zone:
            // take the zone afresh on every link.
            let zone = self.zone;
            let first = link == 0;
            // `enter` only admits names at or below the zone's origin.
            let Some(rel_len) = cur.len.checked_sub(zone.origin().len()) else {
                return self.negative(Rcode::SERVFAIL, b);
            };
            // Whether the node is the name itself, not a wildcard's
            // synthesis: only then can an overlay entry answer.
            let mut exact = true;
            let found = zone.find(&cur.buf[..rel_len]);
            if found.is_none() && !zone.overlay().is_empty() {
                // A name added since the compile (a leaf under an existing
                // name, with no wildcard or cut involved: see
                // `zone::overlay`): it exists now.
                let held = zone.overlay().at_owner(cur.name());
                if !held.is_empty() {
                    let wanted = held.iter().find(|(t, _)| self.qtype == Rtype::ANY || *t == self.qtype.0);
                    return match wanted {
                        Some((t, rrset)) => {
                            write_overlay(Section::Answer, cur.owner(), Rtype(*t), rrset, b)?;
                            Ok(DONE_AUTH)
                        }
                        None => self.negative(Rcode::NOERROR, b),
                    };
                }
            }
            let node = match found {
                Some((_, node)) if node.flags() & flags::OCCLUDED != 0 => {
                    match self.occluded_by(node.occluder(), &mut cur, first, b)? {
                        Step::Done(o) => return Ok(o),
                        Step::Follow => continue,
                    }
                }
                Some((_, node)) => node,
                None => {
                    let (ce_idx, ce) = self.closest_encloser(&cur.buf[..rel_len]);
                    let occluder = if ce.flags() & flags::OCCLUDED != 0 {
                        Some(ce.occluder())
                    } else if (ce.flags() & flags::CUT != 0 && !is_apex(&ce)) || ce.flags() & flags::DNAME != 0 {
                        Some(ce_idx)
                    } else {
                        None
                    };
                    if let Some(idx) = occluder {
                        match self.occluded_by(idx, &mut cur, first, b)? {
                            Step::Done(o) => return Ok(o),
                            Step::Follow => continue,
                        }
                    }
                    if ce.flags() & flags::WILDCARD_CHILD == 0 {
                        return self.name_error(&cur, first, b);
                    }
                    // RFC 4592 §3.3.3: the source of synthesis `*.<closest encloser>`.
                    exact = false;
                    let ce_name = zone.node_name(&ce);
                    let mut wild = [0u8; MAX_NAME_LEN];
                    wild[0] = 1;
                    wild[1] = b'*';
                    wild[2..2 + ce_name.len()].copy_from_slice(ce_name);
                    match zone.find(&wild[..2 + ce_name.len()]) {
                        Some((_, w)) => w,
                        None => return self.name_error(&cur, first, b),
                    }
                }
            };
            // A zone cut: referral, except DS which the parent side answers
            // (RFC 4035 §3.1.4.1), also at the end of a CNAME chain (NSD
            // and Knot answer NODATA there when the cut has no DS).
            if node.flags() & flags::CUT != 0 && self.qtype != Rtype::DS {
                return self.referral(&node, first, b);
            }
            let overlay = (exact && !zone.overlay().is_empty()).then(|| zone.overlay());
            if self.qtype == Rtype::ANY {
                // RFC 8482 §4.2: one RRset is a complete answer to ANY.
                return match zone.rrsets_at(&node).next() {
                    Some(rrset) => {
                        match overlay.and_then(|o| o.get(cur.name(), rrset.rtype())) {
                            Some(newer) => {
                                write_overlay(Section::Answer, cur.owner(), Rtype(rrset.rtype()), &newer, b)?
                            }
                            None => self.answer_rrset(&cur, &node, &rrset, b)?,
                        }
                        Ok(DONE_AUTH)
                    }
                    None => self.negative(Rcode::NOERROR, b),
                };
            }
            if let Some(newer) = overlay.and_then(|o| o.get(cur.name(), self.qtype.0)) {
                write_overlay(Section::Answer, cur.owner(), self.qtype, &newer, b)?;
                return Ok(DONE_AUTH);
            }
            if let Some(rrset) = zone.rrset_at(&node, self.qtype.0) {
                self.answer_rrset(&cur, &node, &rrset, b)?;
                return Ok(DONE_AUTH);
            }
            if node.flags() & flags::CNAME != 0 {
                let Some(cname) = zone.rrset_at(&node, Rtype::CNAME.0) else {
                    break;
                };
                self.write_rrset(Section::Answer, cur.owner(), &cname, Some(&node), b)?;
                let Some(target) = zone.records(&cname).next() else {
                    break;
                };
                if !self.enter(target, &mut cur) {
                    return Ok(DONE_AUTH);
                }
                continue;
            }
            return self.negative(Rcode::NOERROR, b);
        }
        // Chain too long (or a loop): answer with what was collected.
        Ok(DONE_AUTH)
    }

    /// Continues the chain at `target` if it is inside a served zone: this
    /// one, or another (RFC 1034 §4.3.2 step 3.a restarts the lookup at the
    /// new name; NSD and Knot follow into their other zones too).
    fn enter(&mut self, target: &[u8], cur: &mut Current) -> bool {
        let mut lower = [0u8; MAX_NAME_LEN];
        let Some(l) = lower.get_mut(..target.len()) else {
            return false;
        };
        crate::dns::wire::name::lowercase_into(target, l);
        // The closest served zone, as for the QNAME: a target below a cut
        // of this zone may belong to a child zone served here too.
        match self.zones.find(l, self.qtype == Rtype::DS) {
            Some(zone) => self.zone = zone,
            None => return false,
        }
        cur.set(l);
        true
    }

    /// The closest existing ancestor of `rel` (RFC 4592 §3.3.1). The apex
    /// always exists, so there is one.
    fn closest_encloser(&self, rel: &[u8]) -> (u32, Node) {
        let mut at = 0usize;
        while let Some(&len) = rel.get(at) {
            at += 1 + len as usize;
            if let Some(found) = self.zone.find(rel.get(at..).unwrap_or(&[])) {
                return found;
            }
        }
        let apex = self.zone.apex();
        (apex, self.zone.node(apex).unwrap_or(Node::new(0, 0, 0, 0, 0, 0)))
    }

    /// The current name is at or below node `idx`, a cut or a DNAME.
    fn occluded_by(
        &mut self,
        idx: u32,
        cur: &mut Current,
        first: bool,
        b: &mut ResponseBuilder<'_>,
    ) -> Result<Step, Full> {
        let zone = self.zone;
        let Some(node) = zone.node(idx) else {
            return self.negative(Rcode::SERVFAIL, b).map(Step::Done);
        };
        if node.flags() & flags::CUT != 0 && !is_apex(&node) {
            return self.referral(&node, first, b).map(Step::Done);
        }
        // RFC 6672 §3.2: DNAME substitution.
        let node_name = abs_name(zone, &node);
        let Some(dname) = zone.rrset_at(&node, Rtype::DNAME.0) else {
            return self.negative(Rcode::SERVFAIL, b).map(Step::Done);
        };
        let Some(target) = zone.records(&dname).next() else {
            return self.negative(Rcode::SERVFAIL, b).map(Step::Done);
        };
        self.write_rrset(Section::Answer, Owner::Name(node_name.name()), &dname, Some(&node), b)?;
        let prefix_len = cur.len - node_name.len;
        let new_len = prefix_len + target.len();
        if new_len > MAX_NAME_LEN {
            // RFC 6672 §2.2: the substituted name would be too long.
            return Ok(Step::Done(Outcome { rcode: Rcode::YXDOMAIN, authoritative: true, truncated: false }));
        }
        let mut synth = [0u8; MAX_NAME_LEN];
        synth[..prefix_len].copy_from_slice(&cur.buf[..prefix_len]);
        synth[prefix_len..new_len].copy_from_slice(target);
        // The synthesized CNAME (RFC 6672 §3.2) carries the DNAME's TTL.
        b.record(Section::Answer, cur.owner(), Rtype::CNAME, dname.ttl(), &synth[..new_len])?;
        if !self.enter(&synth[..new_len], cur) {
            return Ok(Step::Done(DONE_AUTH));
        }
        Ok(Step::Follow)
    }

    /// RFC 1034 §4.3.2 3.b: a referral to the child zone at `cut`. After a
    /// CNAME or DNAME (`first` is false) the answer section already holds
    /// authoritative data for the QNAME, so AA stays set (RFC 1035 §4.1.1).
    fn referral(&mut self, cut: &Node, first: bool, b: &mut ResponseBuilder<'_>) -> Result<Outcome, Full> {
        let zone = self.zone;
        let cut_name = abs_name(zone, cut);
        let Some(ns) = zone.rrset_at(cut, Rtype::NS.0) else {
            return self.negative(Rcode::SERVFAIL, b);
        };
        self.write_rrset(Section::Authority, Owner::Name(cut_name.name()), &ns, None, b)?;
        // RFC 4035 §3.1.4: a signed zone adds the DS RRset to referrals for
        // DO queries. An unsigned zone (no RRSIG at its apex) has no proof to
        // offer, and NSD and Knot leave DS out there too.
        if self.dnssec_ok
            && zone.node(zone.apex()).is_some_and(|apex| zone.rrset_at(&apex, Rtype::RRSIG.0).is_some())
            && let Some(ds) = zone.rrset_at(cut, Rtype::DS.0)
        {
            self.write_rrset(Section::Authority, Owner::Name(cut_name.name()), &ds, Some(cut), b)?;
        }
        for target in zone.records(&ns) {
            let mut lower = [0u8; MAX_NAME_LEN];
            let required = match lower.get_mut(..target.len()) {
                Some(l) => {
                    crate::dns::wire::name::lowercase_into(target, l);
                    is_subdomain(l, cut_name.name())
                }
                None => false,
            };
            self.additional.push(target, required);
        }
        Ok(Outcome { rcode: Rcode::NOERROR, authoritative: !first, truncated: false })
    }

    /// The current name does not exist in this zone: NXDOMAIN — unless this
    /// is a DS query sent to the parent side of a zone we also serve, whose
    /// apex does exist on this server even where the parent has no
    /// delegation for it; then NODATA, as NSD answers.
    fn name_error(&mut self, cur: &Current, first: bool, b: &mut ResponseBuilder<'_>) -> Result<Outcome, Full> {
        let apex_here = first && self.qtype == Rtype::DS && self.zones.get(cur.name()).is_some();
        self.negative(if apex_here { Rcode::NOERROR } else { Rcode::NXDOMAIN }, b)
    }

    /// NXDOMAIN or NODATA: the SOA in authority (RFC 2308 §3), with its
    /// RRSIGs for DO queries to a signed zone. NSEC/NSEC3 denial proofs are
    /// not added yet (the zone compiler warns about that for signed zones).
    fn negative(&mut self, rcode: Rcode, b: &mut ResponseBuilder<'_>) -> Result<Outcome, Full> {
        let zone = self.zone;
        let apex = zone.node(zone.apex());
        if !zone.overlay().is_empty()
            && let Some(newer) = zone.overlay().get(zone.origin(), Rtype::SOA.0)
            && let Some(rdata) = newer.rdata.first()
        {
            // The zone changed since it was compiled: its serial with it.
            // (Overlays are only used for unsigned zones: no RRSIG to add.)
            let minimum = rdata.len().checked_sub(4).and_then(|at| crate::dns::wire::read_u32(rdata, at)).unwrap_or(0);
            b.record(Section::Authority, Owner::Name(zone.origin()), Rtype::SOA, newer.ttl.min(minimum), rdata)?;
            return Ok(Outcome { rcode, authoritative: true, truncated: false });
        }
        let soa = apex.as_ref().and_then(|a| zone.rrset_at(a, Rtype::SOA.0));
        if let (Some(apex), Some(soa)) = (apex, soa)
            && let Some(rdata) = zone.records(&soa).next()
        {
            let minimum = rdata.len().checked_sub(4).and_then(|at| crate::dns::wire::read_u32(rdata, at)).unwrap_or(0);
            let ttl = soa.ttl().min(minimum);
            b.record(Section::Authority, Owner::Name(zone.origin()), Rtype::SOA, ttl, rdata)?;
            if self.wants_signatures()
                && let Some(sigs) = zone.rrset_at(&apex, Rtype::RRSIG.0)
            {
                let covers_soa = |sig: &&[u8]| sig.get(..2) == Some(&Rtype::SOA.0.to_be_bytes()[..]);
                for sig in zone.records(&sigs).filter(covers_soa) {
                    b.record(Section::Authority, Owner::Name(zone.origin()), Rtype::RRSIG, ttl, sig)?;
                }
            }
        }
        Ok(Outcome { rcode, authoritative: true, truncated: false })
    }

    fn answer_rrset(
        &mut self,
        cur: &Current,
        node: &Node,
        rrset: &RRset,
        b: &mut ResponseBuilder<'_>,
    ) -> Result<(), Full> {
        self.write_rrset(Section::Answer, cur.owner(), rrset, Some(node), b)?;
        // Addresses of the names an answer points at (RFC 1035 §3.3.9,
        // §3.3.11; RFC 2782; RFC 9460 §4.1 for SVCB and HTTPS TargetNames).
        let rtype = Rtype(rrset.rtype());
        let offset = match rtype {
            Rtype::NS => 0,
            Rtype::MX | Rtype::SVCB | Rtype::HTTPS => 2,
            Rtype::SRV => 6,
            _ => return Ok(()),
        };
        let service = rtype == Rtype::SVCB || rtype == Rtype::HTTPS;
        for rdata in self.zone.records(rrset) {
            let Some(target) = rdata.get(offset..) else { continue };
            if service && target.first() == Some(&0) {
                // RFC 9460 §2.5.2: in ServiceMode (SvcPriority > 0) a
                // TargetName of "." is the owner itself; in AliasMode it
                // means the service does not exist, and has no addresses.
                if rdata.get(..2) != Some(&[0, 0][..]) {
                    self.owner_addresses = Some((*node, cur.copy()));
                }
                continue;
            }
            // SvcParams follow an SVCB TargetName; the name alone is pushed.
            let name_len = crate::dns::wire::name::plain_name_len(target, 0).unwrap_or(target.len());
            self.additional.push(&target[..name_len], false);
        }
        Ok(())
    }

    /// DO was set and the current zone is signed (an RRSIG at its apex):
    /// only then do signatures and DS records belong in the response. An
    /// unsigned zone has nothing to prove, and NSD and Knot send none there.
    fn wants_signatures(&self) -> bool {
        self.dnssec_ok
            && self.zone.node(self.zone.apex()).is_some_and(|apex| self.zone.rrset_at(&apex, Rtype::RRSIG.0).is_some())
    }

    /// Writes an RRset and, for DO queries, the RRSIGs at `signed_at` that
    /// cover its type (RFC 4035 §3.1.1: a signed zone returns them with
    /// the data). Pass `None` for data that is not signed (referral NS, glue).
    fn write_rrset(
        &self,
        section: Section,
        owner: Owner<'_>,
        rrset: &RRset,
        signed_at: Option<&Node>,
        b: &mut ResponseBuilder<'_>,
    ) -> Result<(), Full> {
        let rtype = Rtype(rrset.rtype());
        for rdata in self.zone.records(rrset) {
            b.record(section, owner, rtype, rrset.ttl(), rdata)?;
        }
        let Some(node) = signed_at.filter(|_| rtype != Rtype::RRSIG && self.wants_signatures()) else { return Ok(()) };
        let Some(sigs) = self.zone.rrset_at(node, Rtype::RRSIG.0) else { return Ok(()) };
        // The first two octets of RRSIG RDATA are the type covered (RFC 4034 §3.1).
        for sig in self.zone.records(&sigs).filter(|sig| sig.get(..2) == Some(&rtype.0.to_be_bytes()[..])) {
            b.record(section, owner, Rtype::RRSIG, sigs.ttl(), sig)?;
        }
        Ok(())
    }

    /// Writes A and AAAA records of the collected names that are in this
    /// zone: every A first, then the AAAAs, so that when space runs out
    /// each server keeps at least its IPv4 address (NSD does the same).
    /// Returns whether required glue had to be left out (set TC).
    fn write_additional(&self, b: &mut ResponseBuilder<'_>) -> bool {
        let zone = self.zone;
        let origin = zone.origin();
        let mut missing_required = false;
        for rtype in [Rtype::A, Rtype::AAAA] {
            if let Some((node, owner)) = &self.owner_addresses {
                let newer = if zone.overlay().is_empty() { None } else { zone.overlay().get(owner.name(), rtype.0) };
                let mark = b.mark();
                let written = match (newer, zone.rrset_at(node, rtype.0)) {
                    (Some(newer), _) => write_overlay(Section::Additional, owner.owner(), rtype, &newer, b),
                    (None, Some(rrset)) => self.write_rrset(Section::Additional, owner.owner(), &rrset, None, b),
                    (None, None) => Ok(()),
                };
                if written.is_err() {
                    b.rollback(mark);
                }
            }
            for &(name, required) in &self.additional.names[..self.additional.len] {
                let mut lower = [0u8; MAX_NAME_LEN];
                let Some(l) = lower.get_mut(..name.len()) else { continue };
                crate::dns::wire::name::lowercase_into(name, l);
                if !is_subdomain(l, origin) || self.owner_addresses.as_ref().is_some_and(|(_, o)| o.name() == &l[..]) {
                    continue;
                }
                let newer = if zone.overlay().is_empty() { None } else { zone.overlay().get(l, rtype.0) };
                let mark = b.mark();
                let written = match newer {
                    Some(newer) => write_overlay(Section::Additional, Owner::Name(name), rtype, &newer, b),
                    None => {
                        let Some((_, node)) = zone.find(&l[..l.len() - origin.len()]) else { continue };
                        match zone.rrset_at(&node, rtype.0) {
                            Some(rrset) => self.write_rrset(Section::Additional, Owner::Name(name), &rrset, None, b),
                            None => continue,
                        }
                    }
                };
                if written.is_err() {
                    b.rollback(mark);
                    missing_required |= required;
                }
            }
        }
        missing_required
    }
}

/// Writes an RRset from a zone's overlay.
fn write_overlay(
    section: Section,
    owner: Owner<'_>,
    rtype: Rtype,
    rrset: &crate::zone::overlay::OverlayRRset,
    b: &mut ResponseBuilder<'_>,
) -> Result<(), Full> {
    for rdata in &rrset.rdata {
        b.record(section, owner, rtype, rrset.ttl, rdata)?;
    }
    Ok(())
}

fn is_apex(node: &Node) -> bool {
    node.name_len() == 0
}

/// A node's absolute name, as a [`Current`] (not the QNAME).
fn abs_name(zone: &Snapshot, node: &Node) -> Current {
    let (buf, len) = zone.absolute_name(node);
    Current { buf, len, is_qname: false }
}
