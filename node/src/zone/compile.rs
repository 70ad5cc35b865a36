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
use xxhash_rust::xxh3::{Xxh3DefaultBuilder, xxh3_64};

use super::diag::{Diagnostic, ZoneError};
use super::parse::{Location, ParsedFile};
use super::snapshot::{FORMAT_VERSION, flags};
use crate::dns::iana::Rtype;
use crate::dns::wire::name::{is_subdomain, to_text};

/// RFC 5155 NSEC3.
const NSEC3: u16 = 50;

/// A compiled zone, ready to be written with `snapshot::write_atomic`.
#[derive(Debug)]
pub struct Compiled {
    /// The FlatBuffer builder's buffer; the payload is `buffer[head..]`.
    buffer: Vec<u8>,
    head: usize,
    /// The zone origin, lower-cased wire form.
    pub origin: Vec<u8>,
    /// SOA serial.
    pub serial: u32,
    /// Records after deduplication.
    pub records: usize,
    /// Warnings found.
    pub warnings: Vec<Diagnostic>,
}

impl Compiled {
    /// The FlatBuffer payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer[self.head..]
    }
}

/// Compiles a parsed file. `expected_origin`, if given, must match the SOA owner.
///
/// Records are grouped without sorting names: each owner gets a node the
/// first time it is seen (its missing ancestors first, as empty
/// non-terminals), so parents always precede children; then record indices
/// are sorted by (node, type), an integer sort.
pub fn compile(parsed: &ParsedFile, expected_origin: Option<&[u8]>) -> Result<Compiled, ZoneError> {
    let error = |at: &Location, text: String| Diagnostic::error(parsed.file(at), parsed.line(at), text);
    let warning = |at: &Location, text: String| Diagnostic::warning(parsed.file(at), parsed.line(at), text);
    let file = parsed.sources.first().cloned().unwrap_or_default();

    // The zone is the owner of the SOA (RFC 1035 §5.2: exactly one).
    let mut soas = parsed.records.iter().filter(|r| r.rtype == Rtype::SOA.0);
    let Some(first_soa) = soas.next() else {
        let text = "no SOA record: a zone needs exactly one, at its apex".to_owned();
        return Err(ZoneError::single(Diagnostic::error(&file, 0, text)));
    };
    if let Some(second) = soas.next() {
        let text = format!("second SOA record (the first is at line {})", parsed.line(&first_soa.at));
        return Err(ZoneError::single(error(&second.at, text)));
    }
    let origin = parsed.owner(first_soa);
    if let Some(expected) = expected_origin
        && expected != origin
    {
        let text = format!("SOA owner {} does not match the zone name {}", to_text(origin), to_text(expected));
        return Err(ZoneError::single(error(&first_soa.at, text)));
    }
    let soa_rdata = parsed.rdata(first_soa);
    let serial = soa_rdata.len().checked_sub(20).and_then(|at| crate::dns::wire::read_u32(soa_rdata, at)).unwrap_or(0);

    let mut warnings = Vec::new();
    let mut errors = Vec::new();

    // Nodes, in first-seen order with ancestors first.
    let mut b = Builder::new(origin);
    let mut kept: Vec<(u32, u16, u32)> = Vec::with_capacity(parsed.records.len());
    for (i, r) in parsed.records.iter().enumerate() {
        let owner = parsed.owner(r);
        if !is_subdomain(owner, origin) {
            let text = format!("{} is outside the zone {}: ignored", to_text(owner), to_text(origin));
            warnings.push(warning(&r.at, text));
            continue;
        }
        let node = b.node_for(&owner[..owner.len() - origin.len()], i as u32);
        kept.push((node, r.rtype, i as u32));
    }
    kept.sort_unstable();

    // RRsets: one run of `kept` per (node, type); runs of a node are adjacent.
    let mut record_count = 0;
    let mut rdatas: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    while at < kept.len() {
        let (node, rtype, first_idx) = kept[at];
        let first = &parsed.records[first_idx as usize];
        rdatas.clear();
        while at < kept.len() && kept[at].0 == node && kept[at].1 == rtype {
            let r = &parsed.records[kept[at].2 as usize];
            if r.ttl != first.ttl {
                let text = format!(
                    "TTL {} differs from {} earlier in the same RRset ({} {}): using {}",
                    r.ttl,
                    first.ttl,
                    to_text(parsed.owner(r)),
                    rtype_name(rtype),
                    first.ttl
                );
                warnings.push(warning(&r.at, text));
            }
            let rdata = parsed.rdata(r);
            // RFC 2181 §5: an RRset holds no duplicates.
            if !rdatas.contains(&rdata) {
                rdatas.push(rdata);
            }
            at += 1;
        }
        if (rtype == Rtype::CNAME.0 || rtype == Rtype::DNAME.0) && rdatas.len() > 1 {
            let text = format!(
                "{} has {} {} records; only one is allowed",
                to_text(parsed.owner(first)),
                rdatas.len(),
                rtype_name(rtype)
            );
            errors.push(error(&first.at, text));
        }
        record_count += rdatas.len();
        b.add_rrset(node, rtype, first.ttl, &rdatas, first_idx);
    }
    b.finish_flags();

    // RFC 1034 §3.6.2: CNAME and other data (RRSIG/NSEC may accompany it, RFC 4035 §2.5).
    for n in &b.nodes {
        if n.flags & flags::CNAME == 0 {
            continue;
        }
        let allowed = [Rtype::CNAME.0, Rtype::RRSIG.0, Rtype::NSEC.0];
        if let Some((r, idx)) = b.sets(n).iter().find(|(r, _)| !allowed.contains(&r.rtype())) {
            let rec = &parsed.records[*idx as usize];
            let text = format!(
                "{} has a CNAME and other data ({}) (RFC 1034 §3.6.2)",
                to_text(parsed.owner(rec)),
                rtype_name(r.rtype())
            );
            errors.push(error(&rec.at, text));
        }
    }

    // Pre-signed zones: signatures are served, denial proofs not yet.
    if b.sets(&b.nodes[0]).iter().any(|(r, _)| r.rtype() == Rtype::RRSIG.0) {
        let text = "signed zone: DO answers carry RRSIGs, but NXDOMAIN/NODATA answers carry no NSEC/NSEC3 proof yet, \
                    so validating resolvers will reject this zone's negative answers"
            .to_owned();
        warnings.push(warning(&first_soa.at, text));
    }

    // Data hidden below cuts and DNAMEs.
    for (idx, n) in b.nodes.iter().enumerate() {
        if n.flags & flags::OCCLUDED == 0 || n.flags & flags::HAS_DATA == 0 {
            continue;
        }
        let occ = &b.nodes[n.occluder as usize];
        let below_dname = occ.flags & flags::DNAME != 0 && occ.flags & flags::CUT == 0;
        let non_glue = b.sets(n).iter().any(|(r, _)| r.rtype() != Rtype::A.0 && r.rtype() != Rtype::AAAA.0);
        if below_dname || non_glue {
            let what = if below_dname { "DNAME" } else { "zone cut" };
            let text = format!(
                "{} is below the {what} at {}: occluded, never answered",
                to_text(&b.abs_name(idx)),
                to_text(&b.abs_name(n.occluder as usize))
            );
            warnings.push(warning(&parsed.records[n.first_record as usize].at, text));
        }
    }

    // NS targets that need an address here: in authoritative data, or below
    // the very cut they serve (glue, RFC 9471).
    for (idx, n) in b.nodes.iter().enumerate() {
        let is_apex = idx == 0;
        if !(is_apex || n.flags & flags::CUT != 0) || n.flags & flags::OCCLUDED != 0 {
            continue;
        }
        let Some((ns, _)) = b.sets(n).iter().find(|(r, _)| r.rtype() == Rtype::NS.0) else { continue };
        let cut_name = b.abs_name(idx);
        for target in b.rdatas(ns) {
            let target = target.to_ascii_lowercase();
            if !is_subdomain(&target, origin) {
                continue;
            }
            let rel = &target[..target.len() - origin.len()];
            let t = b.lookup(rel);
            let needs_glue = !is_apex && is_subdomain(&target, &cut_name);
            let authoritative =
                t.is_none_or(|t| b.nodes[t as usize].flags & flags::OCCLUDED == 0) && !b.below_any_cut(rel);
            if !(needs_glue || authoritative) {
                continue;
            }
            let has_addr = t.is_some_and(|t| {
                b.sets(&b.nodes[t as usize]).iter().any(|(r, _)| r.rtype() == Rtype::A.0 || r.rtype() == Rtype::AAAA.0)
            });
            if !has_addr {
                let rec = &parsed.records[n.first_record as usize];
                let text = format!(
                    "NS target {} of {} has no address records (A or AAAA){}",
                    to_text(&target),
                    to_text(&cut_name),
                    if needs_glue { ": glue is required below the cut" } else { "" }
                );
                errors.push(error(&rec.at, text));
            }
        }
    }
    if !errors.is_empty() {
        errors.extend(warnings);
        return Err(ZoneError { diagnostics: errors });
    }
    let (buffer, head) = b.serialize(serial, &parsed.sources);
    Ok(Compiled { buffer, head, origin: origin.to_vec(), serial, records: record_count, warnings })
}

/// A presentation name for a TYPE, for messages.
pub fn rtype_name(rtype: u16) -> String {
    domain::base::iana::Rtype::from_int(rtype).to_string()
}

struct BNode<'p> {
    /// Relative lower-cased wire name (a slice of the parsed arena).
    rel: &'p [u8],
    flags: u8,
    /// The parent while building; the occluding node after `finish_flags`.
    occluder: u32,
    /// This node's RRsets in `Builder::rrsets` (contiguous: they are added
    /// in node order).
    rrset_start: u32,
    rrset_count: u16,
    /// A record at or below this node, for messages.
    first_record: u32,
}

struct Builder<'p> {
    origin: &'p [u8],
    nodes: Vec<BNode<'p>>,
    by_name: HashMap<&'p [u8], u32, Xxh3DefaultBuilder>,
    /// Every RRset, with the index of its first record (for messages).
    rrsets: Vec<(RRset, u32)>,
    rdata: Vec<u8>,
}

impl<'p> Builder<'p> {
    fn new(origin: &'p [u8]) -> Self {
        let apex = BNode { rel: &[], flags: 0, occluder: 0, rrset_start: 0, rrset_count: 0, first_record: 0 };
        let mut by_name = HashMap::with_hasher(Xxh3DefaultBuilder);
        by_name.insert(&[][..], 0);
        Builder { origin, nodes: vec![apex], by_name, rrsets: Vec::new(), rdata: Vec::new() }
    }

    fn sets(&self, n: &BNode<'_>) -> &[(RRset, u32)] {
        let start = n.rrset_start as usize;
        &self.rrsets[start..start + n.rrset_count as usize]
    }

    fn lookup(&self, rel: &[u8]) -> Option<u32> {
        self.by_name.get(rel).copied()
    }

    /// The node for `rel`, creating it and any missing ancestors (empty
    /// non-terminals) first, so a parent's index is always below its child's.
    fn node_for(&mut self, rel: &'p [u8], record: u32) -> u32 {
        if let Some(&i) = self.by_name.get(rel) {
            return i;
        }
        let label_len = 1 + rel[0] as usize;
        let parent = self.node_for(&rel[label_len.min(rel.len())..], record);
        if rel.get(0..2) == Some(b"\x01*") {
            self.nodes[parent as usize].flags |= flags::WILDCARD_CHILD;
        }
        let idx = self.nodes.len() as u32;
        self.nodes.push(BNode {
            rel,
            flags: 0,
            occluder: parent,
            rrset_start: 0,
            rrset_count: 0,
            first_record: record,
        });
        self.by_name.insert(rel, idx);
        idx
    }

    fn add_rrset(&mut self, node: u32, rtype: u16, ttl: u32, rdatas: &[&[u8]], first_record: u32) {
        let offset = self.rdata.len() as u32;
        for r in rdatas {
            self.rdata.extend_from_slice(&(r.len() as u16).to_be_bytes());
            self.rdata.extend_from_slice(r);
        }
        let len = self.rdata.len() as u32 - offset;
        let n = &mut self.nodes[node as usize];
        n.flags |= flags::HAS_DATA;
        match Rtype(rtype) {
            Rtype::NS if node != 0 => n.flags |= flags::CUT,
            Rtype::DNAME => n.flags |= flags::DNAME,
            Rtype::CNAME => n.flags |= flags::CNAME,
            _ => {}
        }
        if n.rrset_count == 0 {
            n.first_record = first_record;
            n.rrset_start = self.rrsets.len() as u32;
        }
        n.rrset_count += 1;
        self.rrsets.push((RRset::new(rtype, rdatas.len() as u16, ttl, offset, len), first_record));
    }

    /// Computes occlusion top-down (parents precede children).
    fn finish_flags(&mut self) {
        for i in 1..self.nodes.len() {
            let parent = self.nodes[i].occluder as usize;
            let p = &self.nodes[parent];
            let occluder = if p.flags & flags::OCCLUDED != 0 {
                Some(p.occluder)
            } else if p.flags & (flags::CUT | flags::DNAME) != 0 {
                Some(parent as u32)
            } else {
                None
            };
            let n = &mut self.nodes[i];
            n.occluder = occluder.unwrap_or(0);
            if occluder.is_some() {
                n.flags |= flags::OCCLUDED;
            }
        }
        self.nodes[0].occluder = 0;
    }

    /// Whether the closest existing ancestor of `rel` is a cut or below one.
    fn below_any_cut(&self, rel: &[u8]) -> bool {
        let mut at = 0;
        while at < rel.len() {
            if let Some(i) = self.lookup(&rel[at..]) {
                let n = &self.nodes[i as usize];
                return n.flags & flags::OCCLUDED != 0 || (at > 0 && n.flags & flags::CUT != 0);
            }
            at += 1 + rel[at] as usize;
        }
        false
    }

    fn rdatas(&self, rrset: &RRset) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = rrset.rdata_offset() as usize;
        let end = at + rrset.rdata_len() as usize;
        while at + 2 <= end {
            let len = u16::from_be_bytes([self.rdata[at], self.rdata[at + 1]]) as usize;
            out.push(&self.rdata[at + 2..at + 2 + len]);
            at += 2 + len;
        }
        out
    }

    fn abs_name(&self, node: usize) -> Vec<u8> {
        [self.nodes[node].rel, self.origin].concat()
    }

    /// Builds the FlatBuffer; returns the builder's buffer and where the
    /// finished data starts in it (no copy of a possibly large payload).
    fn serialize(self, serial: u32, sources: &[std::path::PathBuf]) -> (Vec<u8>, usize) {
        let mut names = Vec::new();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let (offset, len) = (names.len() as u32, n.rel.len() as u8);
            nodes.push(Node::new(offset, len, n.flags, n.rrset_count, n.rrset_start, n.occluder));
            names.extend_from_slice(n.rel);
        }
        let rrsets: Vec<RRset> = self.rrsets.iter().map(|(r, _)| *r).collect();
        // Keep the table at most 2/3 full so probes stay short.
        let slots = (self.nodes.len() * 3 / 2 + 1).next_power_of_two();
        let mut index = vec![0u32; slots];
        for (i, n) in self.nodes.iter().enumerate() {
            // RFC 5155 §7.2.8: a name that owns only NSEC3 records is not
            // part of the zone's namespace; queries for it are answered as
            // if it did not exist. It stays in the snapshot for AXFR.
            let nsec3_only = i != 0
                && self.sets(n).iter().any(|(r, _)| r.rtype() == NSEC3)
                && self.sets(n).iter().all(|(r, _)| r.rtype() == NSEC3 || r.rtype() == Rtype::RRSIG.0);
            if nsec3_only {
                continue;
            }
            let mut slot = xxh3_64(n.rel) as usize & (slots - 1);
            while index[slot] != 0 {
                slot = (slot + 1) & (slots - 1);
            }
            index[slot] = i as u32 + 1;
        }
        let capacity = names.len() + self.rdata.len() + nodes.len() * 16 + rrsets.len() * 16 + slots * 4 + 1024;
        let mut fbb = FlatBufferBuilder::with_capacity(capacity);
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
        fbb.collapse()
    }
}
