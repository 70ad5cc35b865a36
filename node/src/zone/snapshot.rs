//! Compiled zone snapshots on disk, memory-mapped for the query path.
//!
//! A snapshot file is a fixed 32-byte header followed by one
//! `meshdns.snapshot.ZoneSnapshot` FlatBuffer (`schemas/fbs/zone_snapshot.fbs`):
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | magic `MESHZSN1` |
//! | 8..16 | xxh3-64 of the FlatBuffer payload, little-endian |
//! | 16..24 | payload length |
//! | 24..32 | digest of the sources (zone file and `$INCLUDE`s) it was compiled from |
//!
//! [`Snapshot::open`] maps the file, checks the checksum, runs the FlatBuffers
//! verifier once and then checks every internal offset, so the query path
//! can read it with plain bounds-checked slicing and never sees a corrupt
//! or truncated file: such a file is an error (the caller rebuilds it from
//! the zone file), never served.
//!
//! Files are written to a temporary name, fsynced and renamed
//! ([`write_atomic`]), and never modified in place afterwards: that is the
//! invariant that makes mapping them sound.
#![allow(unsafe_code)]

use std::fs::{self, File};
use std::ops::Range;
use std::path::{Path, PathBuf};

use meshdns_schemas::zone_snapshot::{Node, RRset, root_as_zone_snapshot};
use xxhash_rust::xxh3::xxh3_64;

use crate::dns::wire::name::MAX_NAME_LEN;

/// First eight bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"MESHZSN1";
/// Length of the file header before the FlatBuffer.
pub const FILE_HEADER_LEN: usize = 32;
/// The `format_version` this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// `Node.flags` bits (mirrors `NodeFlag` in the schema).
pub mod flags {
    /// The node owns RRsets.
    pub const HAS_DATA: u8 = 1;
    /// A zone cut.
    pub const CUT: u8 = 2;
    /// Owns a DNAME.
    pub const DNAME: u8 = 4;
    /// Owns a CNAME.
    pub const CNAME: u8 = 8;
    /// `*.<node>` exists.
    pub const WILDCARD_CHILD: u8 = 16;
    /// Below a cut or a DNAME.
    pub const OCCLUDED: u8 = 32;
}

/// Why a snapshot file could not be used. The file is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading, writing or mapping failed.
    #[error("{path}: {source}")]
    Io {
        /// The snapshot file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid snapshot of this format (corrupt, truncated,
    /// foreign, or from another version): rebuild it from the zone file.
    #[error("{path}: corrupt snapshot: {what}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What check failed.
        what: &'static str,
    },
}

/// A verified, read-only zone snapshot.
pub struct Snapshot {
    map: memmap2::Mmap,
    path: PathBuf,
    source_digest: u64,
    origin: Box<[u8]>,
    serial: u32,
    apex: u32,
    node_count: u32,
    nodes: Range<usize>,
    rrsets: Range<usize>,
    names: Range<usize>,
    rdata: Range<usize>,
    index: Range<usize>,
    index_mask: usize,
    sources: Vec<String>,
    /// Changes made since it was compiled (replicated zones only).
    overlay: super::overlay::Overlay,
    /// The replication sequence it was compiled at: overlay entries at or
    /// below it are already in the compiled data.
    base_seq: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .field("serial", &self.serial)
            .field("nodes", &self.node_count)
            .finish()
    }
}

const NODE_LEN: usize = 16;
const RRSET_LEN: usize = 16;

impl Snapshot {
    /// Reads only the header's source digest, to decide whether a snapshot
    /// is current without mapping it. `None` if absent or unreadable.
    pub fn peek_source_digest(path: &Path) -> Option<u64> {
        use std::io::Read;
        let mut header = [0u8; FILE_HEADER_LEN];
        File::open(path).ok()?.read_exact(&mut header).ok()?;
        (&header[0..8] == MAGIC).then(|| u64::from_le_bytes(header[24..32].try_into().unwrap_or_default()))
    }

    /// Maps and fully verifies a snapshot file.
    pub fn open(path: &Path) -> Result<Snapshot, SnapshotError> {
        let io = |source| SnapshotError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        // SAFETY: snapshot files are written once under a temporary name and
        // renamed into place (`write_atomic`); nothing modifies or truncates
        // them afterwards, so the mapping stays valid and immutable for the
        // life of the `Mmap`. A replacement is a new inode, not a rewrite.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_map(map, path)
    }

    /// The same snapshot held in anonymous memory, for when the data
    /// directory cannot be written (a full disk). `path` is only a label.
    pub fn in_memory(payload: &[u8], source_digest: u64, path: &Path) -> Result<Snapshot, SnapshotError> {
        let io = |source| SnapshotError::Io { path: path.to_owned(), source };
        let header = file_header(payload, source_digest);
        let mut map = memmap2::MmapMut::map_anon(FILE_HEADER_LEN + payload.len()).map_err(io)?;
        map[..FILE_HEADER_LEN].copy_from_slice(&header);
        map[FILE_HEADER_LEN..].copy_from_slice(payload);
        Self::from_map(map.make_read_only().map_err(io)?, path)
    }

    fn from_map(map: memmap2::Mmap, path: &Path) -> Result<Snapshot, SnapshotError> {
        let corrupt = |what| SnapshotError::Corrupt { path: path.to_owned(), what };
        let bytes: &[u8] = &map;
        let header = bytes.get(..FILE_HEADER_LEN).ok_or_else(|| corrupt("shorter than the header"))?;
        if &header[0..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let word = |r: Range<usize>| u64::from_le_bytes(header[r].try_into().unwrap_or_default());
        let (checksum, len, source_digest) = (word(8..16), word(16..24), word(24..32));
        let payload = bytes.get(FILE_HEADER_LEN..).ok_or_else(|| corrupt("truncated"))?;
        if payload.len() as u64 != len {
            return Err(corrupt("length does not match the header (truncated file?)"));
        }
        if xxh3_64(payload) != checksum {
            return Err(corrupt("checksum mismatch"));
        }
        let snap = root_as_zone_snapshot(payload).map_err(|_| corrupt("FlatBuffer verification failed"))?;
        if snap.format_version() != FORMAT_VERSION {
            return Err(corrupt("unknown format version"));
        }
        let range_of = |v: Option<&[u8]>| -> Option<Range<usize>> {
            let v = v?;
            let start = v.as_ptr() as usize - bytes.as_ptr() as usize;
            Some(start..start + v.len())
        };
        let nodes = range_of(snap.nodes().map(|v| v.bytes())).ok_or_else(|| corrupt("no nodes"))?;
        let rrsets = range_of(snap.rrsets().map(|v| v.bytes())).ok_or_else(|| corrupt("no rrsets"))?;
        let names = range_of(snap.names().map(|v| v.bytes())).ok_or_else(|| corrupt("no names"))?;
        let rdata = range_of(snap.rdata().map(|v| v.bytes())).ok_or_else(|| corrupt("no rdata"))?;
        let index = range_of(snap.index().map(|v| v.bytes())).ok_or_else(|| corrupt("no index"))?;
        let origin: Box<[u8]> = snap.origin().map(|o| o.bytes().into()).ok_or_else(|| corrupt("no origin"))?;
        let sources = snap.sources().map(|s| s.iter().map(str::to_owned).collect()).unwrap_or_default();
        let (serial, apex) = (snap.serial(), snap.apex());
        let node_count = u32::try_from(nodes.len() / NODE_LEN).map_err(|_| corrupt("too many nodes"))?;
        let slots = index.len() / 4;
        if !slots.is_power_of_two() || slots <= node_count as usize {
            return Err(corrupt("index size"));
        }
        let s = Snapshot {
            map,
            path: path.to_owned(),
            source_digest,
            origin,
            serial,
            apex,
            node_count,
            nodes,
            rrsets,
            names,
            rdata,
            index,
            index_mask: slots - 1,
            sources,
            overlay: Default::default(),
            base_seq: 0,
        };
        s.check_offsets().map_err(corrupt)?;
        Ok(s)
    }

    /// Checks every offset the query path follows, once, so lookups can
    /// trust them to be in range (they still use checked slicing).
    fn check_offsets(&self) -> Result<(), &'static str> {
        if self.apex >= self.node_count {
            return Err("apex out of range");
        }
        let rrset_count = self.rrsets.len() / RRSET_LEN;
        for i in 0..self.node_count {
            let n = self.node(i).ok_or("node out of range")?;
            let name_end = n.name_offset() as usize + n.name_len() as usize;
            if name_end > self.names.len() {
                return Err("node name out of range");
            }
            if n.rrset_start() as usize + n.rrset_count() as usize > rrset_count {
                return Err("node rrsets out of range");
            }
            if n.flags() & flags::OCCLUDED != 0 && n.occluder() >= self.node_count {
                return Err("occluder out of range");
            }
        }
        for i in 0..rrset_count {
            let r = self.rrset(i as u32).ok_or("rrset out of range")?;
            if r.rdata_offset() as usize + r.rdata_len() as usize > self.rdata.len() {
                return Err("rdata out of range");
            }
        }
        for slot in 0..=self.index_mask {
            if self.slot(slot).ok_or("index out of range")? > self.node_count {
                return Err("index entry out of range");
            }
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The file this snapshot was mapped from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Digest of the sources it was compiled from.
    pub fn source_digest(&self) -> u64 {
        self.source_digest
    }
    /// Files it was compiled from, zone file first.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
    /// The zone origin: absolute, lower-cased wire form.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }
    /// SOA serial at compile time.
    pub fn serial(&self) -> u32 {
        self.serial
    }
    /// Changes served beside the compiled data (see [`super::overlay`]).
    pub fn overlay(&self) -> &super::overlay::Overlay {
        &self.overlay
    }
    /// The replication sequence this snapshot was compiled at.
    pub fn base_seq(&self) -> u64 {
        self.base_seq
    }
    /// Marks the replication sequence this snapshot was compiled at.
    pub fn with_base_seq(mut self, seq: u64) -> Snapshot {
        self.base_seq = seq;
        self
    }
    /// Number of nodes (owner names and empty non-terminals).
    pub fn node_count(&self) -> u32 {
        self.node_count
    }
    /// Size of the mapped file.
    pub fn file_len(&self) -> usize {
        self.bytes().len()
    }
    /// Index of the apex node.
    pub fn apex(&self) -> u32 {
        self.apex
    }

    /// Node `i`, if in range.
    pub fn node(&self, i: u32) -> Option<Node> {
        let at = self.nodes.start + i as usize * NODE_LEN;
        let b: [u8; NODE_LEN] = self.bytes().get(at..at + NODE_LEN)?.try_into().ok()?;
        Some(Node(b))
    }

    /// RRset `i` of the whole zone, if in range.
    pub fn rrset(&self, i: u32) -> Option<RRset> {
        let at = self.rrsets.start + i as usize * RRSET_LEN;
        let b: [u8; RRSET_LEN] = self.bytes().get(at..at + RRSET_LEN)?.try_into().ok()?;
        Some(RRset(b))
    }

    fn slot(&self, slot: usize) -> Option<u32> {
        let at = self.index.start + slot * 4;
        let b: [u8; 4] = self.bytes().get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    }

    /// The relative lower-cased wire name of a node (empty for the apex).
    pub fn node_name(&self, node: &Node) -> &[u8] {
        let start = self.names.start + node.name_offset() as usize;
        self.bytes().get(start..start + node.name_len() as usize).unwrap_or(&[])
    }

    /// A node's absolute name (relative name + origin) in a stack buffer,
    /// with its length.
    pub fn absolute_name(&self, node: &Node) -> ([u8; MAX_NAME_LEN], usize) {
        let mut buf = [0u8; MAX_NAME_LEN];
        let rel = self.node_name(node);
        let len = (rel.len() + self.origin.len()).min(MAX_NAME_LEN);
        let r = rel.len().min(len);
        buf[..r].copy_from_slice(&rel[..r]);
        buf[r..len].copy_from_slice(&self.origin[..len - r]);
        (buf, len)
    }

    /// Finds the node whose relative lower-cased wire name is `rel`.
    pub fn find(&self, rel: &[u8]) -> Option<(u32, Node)> {
        let mut slot = xxh3_64(rel) as usize & self.index_mask;
        // Linear probing over a table kept under 2/3 full: the loop ends at
        // an empty slot long before it could wrap.
        for _ in 0..=self.index_mask {
            let entry = self.slot(slot)?;
            if entry == 0 {
                return None;
            }
            let node = self.node(entry - 1)?;
            if self.node_name(&node) == rel {
                return Some((entry - 1, node));
            }
            slot = (slot + 1) & self.index_mask;
        }
        None
    }

    /// The RRset of `rtype` at `node`, if any.
    pub fn rrset_at(&self, node: &Node, rtype: u16) -> Option<RRset> {
        let start = node.rrset_start();
        (start..start + node.rrset_count() as u32).filter_map(|i| self.rrset(i)).find(|r| r.rtype() == rtype)
    }

    /// All RRsets at `node`, in type order.
    pub fn rrsets_at<'s>(&'s self, node: &Node) -> impl Iterator<Item = RRset> + 's {
        let start = node.rrset_start();
        (start..start + node.rrset_count() as u32).filter_map(move |i| self.rrset(i))
    }

    /// The RDATA of each record in `rrset`.
    pub fn records<'s>(&'s self, rrset: &RRset) -> Records<'s> {
        self.records_from(rrset, 0)
    }

    /// The RDATA of the records in `rrset` from byte `offset` of its list
    /// (each record takes 2 + its RDATA length).
    pub fn records_from<'s>(&'s self, rrset: &RRset, offset: usize) -> Records<'s> {
        let start = self.rdata.start + rrset.rdata_offset() as usize;
        let list = self.bytes().get(start..start + rrset.rdata_len() as usize).unwrap_or(&[]);
        Records { rest: list.get(offset..).unwrap_or(&[]) }
    }
}

/// Iterator over the RDATA of an RRset's records.
pub struct Records<'s> {
    rest: &'s [u8],
}

impl<'s> Iterator for Records<'s> {
    type Item = &'s [u8];
    fn next(&mut self) -> Option<&'s [u8]> {
        let len = u16::from_be_bytes([*self.rest.first()?, *self.rest.get(1)?]) as usize;
        let rdata = self.rest.get(2..2 + len)?;
        self.rest = &self.rest[2 + len..];
        Some(rdata)
    }
}

fn file_header(payload: &[u8], source_digest: u64) -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[0..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&xxh3_64(payload).to_le_bytes());
    header[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[24..32].copy_from_slice(&source_digest.to_le_bytes());
    header
}

/// Writes a snapshot file atomically: temp file, fsync, rename, fsync dir
/// (`meshdns_replication::journal::write_durably`).
pub fn write_atomic(path: &Path, payload: &[u8], source_digest: u64) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    meshdns_replication::journal::write_durably(path, &[&file_header(payload, source_digest), payload]).map_err(io)
}

/// Hands memory freed after a compile back to the operating system.
///
/// Compiling a large zone allocates several times the snapshot's size and
/// frees it again; glibc keeps freed heap pages mapped, so without this a
/// node that compiled a 1M-record zone would keep hundreds of MB resident
/// that it no longer uses.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; glibc serialises it with
    // the allocator's own locks, so it is safe from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
