//! The cache levels.
//!
//! - **L1**, [`l1::WorkerCache`]: one per worker thread, no lock, a small
//!   2-way set-associative array of built answers keyed by the raw
//!   question bytes, so a hit neither parses nor allocates.
//! - **L2**, [`Cache`]: shared by all workers, sharded, bounded by bytes,
//!   evicting with S3-FIFO (see the `s3fifo` module for why). It holds
//!   RRsets (what iteration and validation reuse), negative answers
//!   (RFC 2308) and built answers (what clients get), under one policy
//!   and one byte bound: a name hot as an answer keeps its answer, a zone
//!   cut hot for iteration keeps its NS RRset, and none of the three
//!   kinds can starve the others by a fixed split that fits no workload.
//! - **L3**, [`disk`]: the answers written to a file at shutdown and read
//!   back (memory-mapped, checksummed) at start, so a restarted node is
//!   warm.
//! - [`sketch`]: a Space-Saving top-K of asked questions, which nodes
//!   gossip to warm each other's caches.
//!
//! Keys are the lowercase wire bytes of the question (`key` module), the
//! same at every level, so an L1 key built from a packet finds the L2 and
//! L3 entries without building a `Name`.

use std::sync::Arc;

use hickory_proto::rr::Record;

use crate::response::Template;
use crate::types::{Question, Security};

pub mod disk;
mod key;
pub mod l1;
mod l2;
mod s3fifo;
pub mod sketch;

pub use l1::{L1Key, WorkerCache};
pub use l2::{Cache, ENTRY_OVERHEAD};

/// Settings of the cache (the `[resolver]` table's cache keys).
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Bound on the L2 size in bytes.
    pub max_bytes: usize,
    /// TTL clamp: no entry lives shorter (seconds).
    pub min_ttl: u32,
    /// TTL clamp: no entry lives longer (seconds).
    pub max_ttl: u32,
    /// Cap on negative TTLs (RFC 2308 §5).
    pub max_negative_ttl: u32,
    /// RFC 8767 serve-stale: how long past expiry data may still be served
    /// when resolution fails (seconds; 0 = off).
    pub max_stale: u32,
    /// RFC 8767 §4: TTL of a stale answer (seconds).
    pub stale_answer_ttl: u32,
    /// Number of L2 shards (1..=1024, rounded up to a power of two), each
    /// with its own lock and an equal share of `max_bytes`. An entry
    /// larger than one share is not cached.
    pub shards: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 256 << 20,
            min_ttl: 0,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            max_stale: 86_400,
            stale_answer_ttl: 30,
            shards: 32,
        }
    }
}

/// How much an RRset is to be believed (RFC 2181 §5.4.1), lowest first:
/// data of a lower rank never replaces live data of a higher one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    /// From an additional section (glue included).
    Additional,
    /// From the authority section of a referral or negative answer.
    Authority,
    /// From the answer section of a non-authoritative answer.
    Answer,
    /// From the answer section of an authoritative answer.
    AuthoritativeAnswer,
}

/// A cached RRset with its signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrsetEntry {
    /// The records, TTLs as stored (clamped).
    pub records: Vec<Record>,
    /// The RRSIGs covering them.
    pub rrsigs: Vec<Record>,
    /// Validation status.
    pub security: Security,
    /// Trust rank.
    pub rank: Rank,
}

/// An RRset found in the cache.
#[derive(Clone, Debug)]
pub struct CachedRrset {
    /// The entry.
    pub entry: Arc<RrsetEntry>,
    /// Seconds of life left (0 when stale).
    pub ttl_left: u32,
    /// Past its TTL, served under RFC 8767.
    pub stale: bool,
}

impl CachedRrset {
    /// The records (then the RRSIGs) with their TTLs set to `ttl_left`.
    pub fn records_with_ttl(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self.entry.records.iter().chain(&self.entry.rrsigs).cloned().collect();
        for r in &mut out {
            r.set_ttl(self.ttl_left);
        }
        out
    }
}

/// A cached negative answer (RFC 2308): NXDOMAIN, or NODATA for one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegativeEntry {
    /// NXDOMAIN, or NOERROR for NODATA.
    pub nxdomain: bool,
    /// The SOA, and the NSEC/NSEC3 proofs, with their RRSIGs.
    pub authority: Vec<Record>,
    /// Validation status.
    pub security: Security,
}

/// A negative answer found in the cache.
#[derive(Clone, Debug)]
pub struct CachedNegative {
    /// The entry.
    pub entry: Arc<NegativeEntry>,
    /// Seconds of life left.
    pub ttl_left: u32,
}

/// Key of a built answer: what a client asked and with which DNSSEC bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The question (name lowercased).
    pub question: Question,
    /// DO was set (RFC 3225): the answer carries RRSIGs.
    pub dnssec_ok: bool,
    /// CD was set (RFC 4035 §3.2.2): unvalidated data is acceptable.
    pub checking_disabled: bool,
}

/// The result of an answer lookup.
#[derive(Clone, Debug)]
pub enum AnswerLookup {
    /// Live.
    Fresh(Arc<Template>),
    /// Past its TTL but within the serve-stale window.
    Stale(Arc<Template>),
    /// Not there.
    Miss,
}

/// Counters for `meshdns cache stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answer lookups that hit.
    pub answer_hits: u64,
    /// Answer lookups that missed.
    pub answer_misses: u64,
    /// RRset lookups that hit.
    pub rrset_hits: u64,
    /// RRset lookups that missed.
    pub rrset_misses: u64,
    /// Entries held.
    pub entries: u64,
    /// Approximate bytes held.
    pub bytes: u64,
    /// Answer lookups that found only stale data (counted as misses too).
    pub answer_stale: u64,
    /// Stale RRsets served through `rrset_stale`.
    pub rrset_stale: u64,
    /// Negative lookups that hit.
    pub negative_hits: u64,
    /// Negative lookups that missed.
    pub negative_misses: u64,
    /// Live entries evicted to stay within `max_bytes`.
    pub evictions: u64,
    /// Entries dropped for being past the serve-stale window.
    pub expired: u64,
}
