//! What a replicated zone is made of: keys, values, stamps and writes.

use crate::hlc::Hlc;

/// A node id (the mesh's member id).
pub type NodeId = String;

/// One RRset's place in a zone: owner name and type (RFC 2181 §5: the
/// RRset is the unit of data).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// Absolute owner name in lower case, presentation form (`www.example.com.`).
    pub owner: String,
    /// RR type code.
    pub rtype: u16,
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
