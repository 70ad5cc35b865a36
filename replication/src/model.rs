//! What a replicated zone is made of: keys, values, stamps and writes.

use crate::hlc::Hlc;

/// A node id (the mesh's member id).
pub type NodeId = String;

/// One RRset's place in a zone: owner name and type (RFC 2181 §5: the
/// RRset is the unit of data).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// Absolute owner name in lower-case wire form (RFC 1035 §3.1), so
    /// that equal names are equal bytes.
    pub owner: Vec<u8>,
    /// RR type code.
    pub rtype: u16,
}

impl EntryKey {
    /// A key for `owner` (wire form, any case) and `rtype`; `None` if
    /// `owner` is not a valid absolute wire-form name.
    pub fn new(owner: &[u8], rtype: u16) -> Option<EntryKey> {
        valid_wire_name(owner).then(|| EntryKey { owner: owner.to_ascii_lowercase(), rtype })
    }
}

/// Whether `name` is one absolute name in uncompressed wire form: labels of
/// 1–63 bytes ending with the root label, 255 bytes at most (RFC 1035
/// §2.3.4, §3.1).
pub fn valid_wire_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut i = 0;
    while let Some(&len) = name.get(i) {
        let len = usize::from(len);
        if len == 0 {
            return i + 1 == name.len();
        }
        if len > 63 {
            return false;
        }
        i += 1 + len;
    }
    false
}

/// An RRset's data: one TTL (RFC 2181 §5.2) and the RDATA of each record,
/// in wire form, sorted and without duplicates (RFC 2181 §5: a set).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RRset {
    /// TTL of every record.
    pub ttl: u32,
    /// RDATA in wire form.
    pub rdata: Vec<Vec<u8>>,
}

impl RRset {
    /// An RRset with its records put in canonical order, duplicates dropped,
    /// so equal sets compare equal whatever order they were written in.
    pub fn new(ttl: u32, mut rdata: Vec<Vec<u8>>) -> RRset {
        rdata.sort();
        rdata.dedup();
        RRset { ttl, rdata }
    }
}

/// Who wins between two writes of one key: the later hybrid timestamp, then
/// the larger node id (last writer wins, with a total order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// When.
    pub hlc: Hlc,
    /// Who.
    pub origin: NodeId,
}

/// One write: the `seq`-th write of `origin` to this zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The node that accepted the write.
    pub origin: NodeId,
    /// Its number among that node's writes to the zone, from 1.
    pub seq: u64,
    /// When it was made.
    pub hlc: Hlc,
    /// What it writes.
    pub key: EntryKey,
    /// The new RRset, or `None` to delete it (a tombstone).
    pub value: Option<RRset>,
}

impl Write {
    /// Its position in last-writer-wins order.
    pub fn stamp(&self) -> Stamp {
        Stamp { hlc: self.hlc, origin: self.origin.clone() }
    }
}

/// The current value of a key in a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The winning write's stamp.
    pub stamp: Stamp,
    /// The winning write's number among its origin's writes.
    pub seq: u64,
    /// The RRset, or `None` for a tombstone.
    pub value: Option<RRset>,
}
