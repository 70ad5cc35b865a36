//! Compiles parsed records into a snapshot FlatBuffer, checking the zone
//! the way `named-checkzone` and `kzonecheck` do.
//!
//! Errors (the zone is rejected):
//! - no SOA, more than one SOA, or SOA records at two owners: the zone is
//!   the SOA owner (RFC 1035 §5.2: exactly one SOA, at the top);
//! - CNAME beside other data at one owner, or two CNAMEs (RFC 1034 §3.6.2;
//!   RRSIG and NSEC may sit beside a CNAME, RFC 4035 §2.5);
//! - more than one DNAME at an owner (RFC 6672 §2.4);
//! - an NS target inside the zone's authoritative data, or below the very
//!   cut it serves (glue is required, RFC 9471), with no A or AAAA record.
//!
//! Warnings (the zone loads):
//! - out-of-zone records: ignored, as BIND does;
//! - data other than glue below a zone cut, or anything below a DNAME:
//!   kept in the snapshot (used as glue or not at all) but never answered;
//! - records of one RRset with different TTLs: the first TTL is used
//!   (RFC 2181 §5.2 forbids the mix).
//!
//! Exact duplicate records are merged silently (RFC 2181 §5).

use std::collections::HashMap;

use flatbuffers::FlatBufferBuilder;
use meshdns_schemas::zone_snapshot::{self as fb, Node, RRset};
use xxhash_rust::xxh3::xxh3_64;

use super::diag::{Diagnostic, ZoneError};
use super::parse::{Location, ParsedFile, RawRecord};
use super::snapshot::{FORMAT_VERSION, flags};
use crate::dns::iana::Rtype;
use crate::dns::wire::name::{is_subdomain, to_text};

/// A compiled zone, ready to be written with `snapshot::write_atomic`.
#[derive(Debug)]
pub struct Compiled {
    /// The FlatBuffer payload.
    pub payload: Vec<u8>,
    /// The zone origin, lower-cased wire form.
    pub origin: Vec<u8>,
    /// SOA serial.
    pub serial: u32,
    /// Records after deduplication.
    pub records: usize,
    /// Warnings found.
    pub warnings: Vec<Diagnostic>,
}

/// Compiles a parsed file. `expected_origin`, if given, must match the SOA owner.
pub fn compile(parsed: &ParsedFile, expected_origin: Option<&[u8]>) -> Result<Compiled, ZoneError> {
    let diag_at = |at: &Location| parsed.sources.get(at.source as usize).cloned().unwrap_or_default();
    let error = |at: &Location, text: String| Diagnostic::error(&diag_at(at), at.line, text);
    let warning = |at: &Location, text: String| Diagnostic::warning(&diag_at(at), at.line, text);
    let file = parsed.sources.first().cloned().unwrap_or_default();

    // The zone is the owner of the SOA.
    let soas: Vec<&RawRecord> = parsed.records.iter().filter(|r| r.rtype == Rtype::SOA.0).collect();
    let Some(first_soa) = soas.first() else {
        return Err(ZoneError::single(Diagnostic::error(
            &file,
            0,
            "no SOA record: a zone needs exactly one, at its apex".into(),
        )));
    };
    let origin = first_soa.owner.clone();
    if let Some(second) = soas.get(1) {
        return Err(ZoneError::single(error(
            &second.at,
            format!("second SOA record (the first is at line {})", first_soa.at.line),
        )));
    }
    if let Some(expected) = expected_origin
        && expected != origin.as_slice()
    {
        return Err(ZoneError::single(error(
            &first_soa.at,
            format!("SOA owner {} does not match the zone name {}", to_text(&origin), to_text(expected)),
        )));
    }
    let serial = first_soa
        .rdata
        .get(first_soa.rdata.len().saturating_sub(20)..)
        .and_then(|t| t.get(..4))
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));

    let mut warnings = Vec::new();
    let mut errors = Vec::new();

    // Group into RRsets, owners in canonical order so ancestors come first.
    let mut recs: Vec<&RawRecord> = Vec::with_capacity(parsed.records.len());
    for r in &parsed.records {
        if is_subdomain(&r.owner, &origin) {
            recs.push(r);
        } else {
            warnings.push(warning(
                &r.at,
                format!("{} is outside the zone {}: ignored", to_text(&r.owner), to_text(&origin)),
            ));
        }
    }
    let mut keyed: Vec<(Vec<u8>, &RawRecord)> =
        recs.into_iter().map(|r| (canonical_key(&r.owner[..r.owner.len() - origin.len()]), r)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.rtype.cmp(&b.1.rtype)));

    let mut b = Builder::new(&origin);
    let mut i = 0;
    let mut record_count = 0;
    while i < keyed.len() {
        let owner = &keyed[i].1.owner;
        let rel = &owner[..owner.len() - origin.len()];
        let node = b.node_for(rel);
        let mut types_here: Vec<(u16, Location)> = Vec::new();
        while i < keyed.len() && keyed[i].1.owner == *owner {
            let rtype = keyed[i].1.rtype;
            let first = keyed[i].1;
            let mut rdatas: Vec<&[u8]> = Vec::new();
            while i < keyed.len() && keyed[i].1.owner == *owner && keyed[i].1.rtype == rtype {
                let r = keyed[i].1;
                if r.ttl != first.ttl {
                    warnings.push(warning(
                        &r.at,
                        format!(
                            "TTL {} differs from {} earlier in the same RRset ({} {}): using {}",
                            r.ttl,
                            first.ttl,
                            to_text(owner),
                            rtype_name(rtype),
                            first.ttl
                        ),
                    ));
                }
                if !rdatas.contains(&r.rdata.as_slice()) {
                    rdatas.push(&r.rdata);
                }
                i += 1;
            }
            if (rtype == Rtype::CNAME.0 || rtype == Rtype::DNAME.0) && rdatas.len() > 1 {
                errors.push(error(
                    &first.at,
                    format!(
                        "{} has {} {} records; only one is allowed",
                        to_text(owner),
                        rdatas.len(),
                        rtype_name(rtype)
                    ),
                ));
            }
            record_count += rdatas.len();
            b.add_rrset(node, rtype, first.ttl, &rdatas);
            types_here.push((rtype, first.at.clone()));
        }
        let has_cname = types_here.iter().any(|(t, _)| *t == Rtype::CNAME.0);
        if has_cname
            && let Some((t, at)) =
                types_here.iter().find(|(t, _)| ![Rtype::CNAME.0, Rtype::RRSIG.0, Rtype::NSEC.0].contains(t))
        {
            errors.push(error(
                at,
                format!("{} has a CNAME and other data ({}) (RFC 1034 §3.6.2)", to_text(owner), rtype_name(*t)),
            ));
        }
    }
    b.finish_flags();

    // Occluded data and NS targets.
    for (idx, n) in b.nodes.iter().enumerate() {
        if n.flags & flags::OCCLUDED != 0 && n.flags & flags::HAS_DATA != 0 {
            let occ = &b.nodes[n.occluder as usize];
            let below_dname = occ.flags & flags::DNAME != 0 && occ.flags & flags::CUT == 0;
            let non_glue = b.rrsets_of(idx).any(|r| r.rtype() != Rtype::A.0 && r.rtype() != Rtype::AAAA.0);
            if below_dname || non_glue {
                let at = find_location(parsed, &b.abs_name(idx));
                warnings.push(warning(
                    &at,
                    format!(
                        "{} is below the {} at {}: occluded, never answered",
                        to_text(&b.abs_name(idx)),
                        if below_dname { "DNAME" } else { "zone cut" },
                        to_text(&b.abs_name(n.occluder as usize))
                    ),
                ));
            }
        }
    }
    for idx in 0..b.nodes.len() {
        let n = &b.nodes[idx];
        let is_apex = idx == 0;
        if !(is_apex || n.flags & flags::CUT != 0) || n.flags & flags::OCCLUDED != 0 {
            continue;
        }
        let Some(ns) = b.rrsets_of(idx).find(|r| r.rtype() == Rtype::NS.0) else {
            continue;
        };
        let cut_name = b.abs_name(idx);
        for target in b.rdatas(ns) {
            if !is_subdomain(&target.to_ascii_lowercase(), &origin) {
                continue;
            }
            let target = target.to_ascii_lowercase();
            let rel = &target[..target.len() - origin.len()];
            let t = b.lookup(rel);
            let needs_glue = !is_apex && is_subdomain(&target, &cut_name);
            let authoritative = t.is_none_or(|t| b.nodes[t].flags & flags::OCCLUDED == 0) && !b.below_any_cut(rel);
            if !(needs_glue || authoritative) {
                continue;
            }
            let has_addr =
                t.is_some_and(|t| b.rrsets_of(t).any(|r| r.rtype() == Rtype::A.0 || r.rtype() == Rtype::AAAA.0));
            if !has_addr {
                let at = find_location(parsed, &cut_name);
                errors.push(error(
                    &at,
                    format!(
                        "NS target {} of {} has no address records (A or AAAA){}",
                        to_text(&target),
                        to_text(&cut_name),
                        if needs_glue { ": glue is required below the cut" } else { "" }
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        errors.extend(warnings);
        return Err(ZoneError { diagnostics: errors });
    }
    let payload = b.serialize(serial, &parsed.sources);
    Ok(Compiled { payload, origin, serial, records: record_count, warnings })
}

fn find_location(parsed: &ParsedFile, owner: &[u8]) -> Location {
    parsed.records.iter().find(|r| r.owner == owner).map(|r| r.at.clone()).unwrap_or(Location { source: 0, line: 0 })
}

/// RFC 5155 NSEC3.
const NSEC3: u16 = 50;

/// A presentation name for a TYPE, for messages.
pub fn rtype_name(rtype: u16) -> String {
    domain::base::iana::Rtype::from_int(rtype).to_string()
}

/// Sort key for RFC 4034 §6.1 canonical order: labels from the top, each
/// followed by a 0 byte. An ancestor's key is a prefix of its descendants',
/// so ancestors sort first.
fn canonical_key(rel: &[u8]) -> Vec<u8> {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = rel.get(at) {
        if len == 0 {
            break;
        }
        labels.push(&rel[at + 1..(at + 1 + len as usize).min(rel.len())]);
        at += 1 + len as usize;
    }
    let mut key = Vec::with_capacity(rel.len() + 1);
    for l in labels.iter().rev() {
        key.extend_from_slice(l);
        key.push(0);
    }
    key
}

struct BNode {
    rel: Vec<u8>,
    flags: u8,
    occluder: u32,
    rrsets: Vec<RRset>,
}

struct Builder<'o> {
    origin: &'o [u8],
    nodes: Vec<BNode>,
    by_name: HashMap<Vec<u8>, usize>,
    rdata: Vec<u8>,
}

impl<'o> Builder<'o> {
    fn new(origin: &'o [u8]) -> Self {
        let apex = BNode { rel: Vec::new(), flags: 0, occluder: 0, rrsets: Vec::new() };
        let mut by_name = HashMap::new();
        by_name.insert(Vec::new(), 0);
        Builder { origin, nodes: vec![apex], by_name, rdata: Vec::new() }
    }

    fn lookup(&self, rel: &[u8]) -> Option<usize> {
        self.by_name.get(rel).copied()
    }

    /// The node for `rel`, creating it and any missing ancestors (empty
    /// non-terminals) on the way.
    fn node_for(&mut self, rel: &[u8]) -> usize {
        if let Some(&i) = self.by_name.get(rel) {
            return i;
        }
        let parent_rel = &rel[1 + rel[0] as usize..];
        let parent = self.node_for(parent_rel);
        if rel.get(0..2) == Some(b"\x01*") {
            self.nodes[parent].flags |= flags::WILDCARD_CHILD;
        }
        let idx = self.nodes.len();
        self.nodes.push(BNode { rel: rel.to_vec(), flags: 0, occluder: parent as u32, rrsets: Vec::new() });
        self.by_name.insert(rel.to_vec(), idx);
        idx
    }

    fn add_rrset(&mut self, node: usize, rtype: u16, ttl: u32, rdatas: &[&[u8]]) {
        let offset = self.rdata.len() as u32;
        for r in rdatas {
            self.rdata.extend_from_slice(&(r.len() as u16).to_be_bytes());
            self.rdata.extend_from_slice(r);
        }
        let len = self.rdata.len() as u32 - offset;
        let n = &mut self.nodes[node];
        n.flags |= flags::HAS_DATA;
        match Rtype(rtype) {
            Rtype::NS if node != 0 => n.flags |= flags::CUT,
            Rtype::DNAME => n.flags |= flags::DNAME,
            Rtype::CNAME => n.flags |= flags::CNAME,
            _ => {}
        }
        n.rrsets.push(RRset::new(rtype, rdatas.len() as u16, ttl, offset, len));
    }

    /// Computes occlusion top-down. `occluder` temporarily holds the parent
    /// index (set in `node_for`); parents are always created before children.
    fn finish_flags(&mut self) {
        for i in 1..self.nodes.len() {
            let parent = self.nodes[i].occluder as usize;
            let p = &self.nodes[parent];
            let (occluded, occluder) = if p.flags & flags::OCCLUDED != 0 {
                (true, p.occluder)
            } else if p.flags & (flags::CUT | flags::DNAME) != 0 {
                (true, parent as u32)
            } else {
                (false, 0)
            };
            let n = &mut self.nodes[i];
            n.occluder = occluder;
            if occluded {
                n.flags |= flags::OCCLUDED;
            }
        }
        self.nodes[0].occluder = 0;
    }

    fn below_any_cut(&self, rel: &[u8]) -> bool {
        // Walk up to the closest existing ancestor.
        let mut at = 0;
        while at < rel.len() {
            if let Some(i) = self.lookup(&rel[at..]) {
                let n = &self.nodes[i];
                return n.flags & flags::OCCLUDED != 0 || (at > 0 && n.flags & flags::CUT != 0);
            }
            at += 1 + rel[at] as usize;
        }
        false
    }

    fn rrsets_of(&self, node: usize) -> impl Iterator<Item = &RRset> {
        self.nodes[node].rrsets.iter()
    }

    fn rdatas(&self, rrset: &RRset) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = rrset.rdata_offset() as usize;
        let end = at + rrset.rdata_len() as usize;
        while at + 2 <= end {
            let len = u16::from_be_bytes([self.rdata[at], self.rdata[at + 1]]) as usize;
            out.push(self.rdata[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        out
    }

    fn abs_name(&self, node: usize) -> Vec<u8> {
        let mut n = self.nodes[node].rel.clone();
        n.extend_from_slice(self.origin);
        n
    }

    fn serialize(self, serial: u32, sources: &[std::path::PathBuf]) -> Vec<u8> {
        let mut names = Vec::new();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut rrsets = Vec::new();
        for n in &self.nodes {
            let mut sets = n.rrsets.clone();
            sets.sort_by_key(|r| r.rtype());
            nodes.push(Node::new(
                names.len() as u32,
                n.rel.len() as u8,
                n.flags,
                sets.len() as u16,
                rrsets.len() as u32,
                n.occluder,
            ));
            names.extend_from_slice(&n.rel);
            rrsets.extend(sets);
        }
        // Keep the table at most 2/3 full so probes stay short.
        let slots = (self.nodes.len() * 3 / 2 + 1).next_power_of_two();
        let mut index = vec![0u32; slots];
        for (i, n) in self.nodes.iter().enumerate() {
            // RFC 5155 §7.2.8: a name that owns only NSEC3 records is not
            // part of the zone's namespace; queries for it are answered as
            // if it did not exist. It stays in the snapshot for AXFR.
            let nsec3_only = i != 0
                && n.rrsets.iter().any(|r| r.rtype() == NSEC3)
                && n.rrsets.iter().all(|r| r.rtype() == NSEC3 || r.rtype() == Rtype::RRSIG.0);
            if nsec3_only {
                continue;
            }
            let mut slot = xxh3_64(&n.rel) as usize & (slots - 1);
            while index[slot] != 0 {
                slot = (slot + 1) & (slots - 1);
            }
            index[slot] = i as u32 + 1;
        }
        let mut fbb = FlatBufferBuilder::with_capacity(
            names.len() + self.rdata.len() + nodes.len() * 16 + rrsets.len() * 16 + slots * 4 + 1024,
        );
        let source_strs: Vec<_> = sources.iter().map(|p| fbb.create_string(&p.display().to_string())).collect();
        let args = fb::ZoneSnapshotArgs {
            format_version: FORMAT_VERSION,
            origin: Some(fbb.create_vector(self.origin)),
            serial,
            apex: 0,
            nodes: Some(fbb.create_vector(&nodes)),
            rrsets: Some(fbb.create_vector(&rrsets)),
            names: Some(fbb.create_vector(&names)),
            rdata: Some(fbb.create_vector(&self.rdata)),
            index: Some(fbb.create_vector(&index)),
            sources: Some(fbb.create_vector(&source_strs)),
        };
        let root = fb::ZoneSnapshot::create(&mut fbb, &args);
        fb::finish_zone_snapshot_buffer(&mut fbb, root);
        fbb.finished_data().to_vec()
    }
}
