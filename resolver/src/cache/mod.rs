//! The cache levels.
//!
//! PLACEHOLDER implementation (one mutex, no bound): the API is what the
//! iteration, the validator and the node use; the real L2 (sharded,
//! bounded by bytes, scan-resistant), L1 and L3 replace the inside.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::{Name, Record, RecordType};

use crate::response::Template;
use crate::types::{Millis, Question, Security};

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
}

type RrsetKey = (Name, RecordType);

#[derive(Default)]
struct Inner {
    rrsets: HashMap<RrsetKey, (Arc<RrsetEntry>, Millis, u32)>,
    negatives: HashMap<Question, (Arc<NegativeEntry>, Millis, u32)>,
    answers: HashMap<AnswerKey, Arc<Template>>,
    stats: CacheStats,
}

/// The shared cache (L2).
pub struct Cache {
    cfg: CacheConfig,
    inner: Mutex<Inner>,
}

impl Cache {
    /// An empty cache.
    pub fn new(cfg: CacheConfig) -> Self {
        Cache { cfg, inner: Mutex::new(Inner::default()) }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clamp(&self, ttl: u32) -> u32 {
        ttl.clamp(self.cfg.min_ttl, self.cfg.max_ttl.max(self.cfg.min_ttl))
    }

    /// A live RRset `name`/`rtype` (name lowercase).
    pub fn rrset(&self, name: &Name, rtype: RecordType, now: Millis) -> Option<CachedRrset> {
        let mut g = self.lock();
        let hit = g.rrsets.get(&(name.clone(), rtype)).and_then(|(e, at, ttl)| {
            let left = ttl_left(*at, *ttl, now)?;
            Some(CachedRrset { entry: e.clone(), ttl_left: left, stale: false })
        });
        if hit.is_some() {
            g.stats.rrset_hits += 1
        } else {
            g.stats.rrset_misses += 1
        }
        hit
    }

    /// Stores an RRset for `ttl` seconds (clamped), unless live data of a
    /// higher rank is there.
    pub fn insert_rrset(&self, name: &Name, rtype: RecordType, entry: RrsetEntry, ttl: u32, now: Millis) {
        let ttl = self.clamp(ttl);
        let mut g = self.lock();
        let key = (name.to_lowercase(), rtype);
        if let Some((old, at, old_ttl)) = g.rrsets.get(&key)
            && old.rank > entry.rank
            && ttl_left(*at, *old_ttl, now).is_some()
        {
            return;
        }
        g.rrsets.insert(key, (Arc::new(entry), now, ttl));
    }

    /// A live negative answer for `q`; an NXDOMAIN cached for the name
    /// answers every type.
    pub fn negative(&self, q: &Question, now: Millis) -> Option<CachedNegative> {
        let g = self.lock();
        let nx = Question { qtype: RecordType::ANY, ..q.clone() };
        [q, &nx].into_iter().find_map(|k| {
            let (e, at, ttl) = g.negatives.get(k)?;
            let left = ttl_left(*at, *ttl, now)?;
            (k.qtype != RecordType::ANY || e.nxdomain).then(|| CachedNegative { entry: e.clone(), ttl_left: left })
        })
    }

    /// Stores a negative answer for `ttl` seconds (capped).
    pub fn insert_negative(&self, q: &Question, entry: NegativeEntry, ttl: u32, now: Millis) {
        let ttl = ttl.min(self.cfg.max_negative_ttl);
        let key = if entry.nxdomain { Question { qtype: RecordType::ANY, ..q.clone() } } else { q.clone() };
        self.lock().negatives.insert(key, (Arc::new(entry), now, ttl));
    }

    /// A built answer for `key`.
    pub fn answer(&self, key: &AnswerKey, now: Millis) -> AnswerLookup {
        let mut g = self.lock();
        let found = g.answers.get(key).cloned();
        let out = match found {
            Some(t) if ttl_left(t.stored_ms, t.ttl, now).is_some() => AnswerLookup::Fresh(t),
            Some(t) if ttl_left(t.stored_ms, t.ttl.saturating_add(self.cfg.max_stale), now).is_some() => {
                AnswerLookup::Stale(t)
            }
            _ => AnswerLookup::Miss,
        };
        if matches!(out, AnswerLookup::Fresh(_)) {
            g.stats.answer_hits += 1
        } else {
            g.stats.answer_misses += 1
        }
        out
    }

    /// Stores a built answer.
    pub fn insert_answer(&self, key: AnswerKey, t: Arc<Template>) {
        self.lock().answers.insert(key, t);
    }

    /// Removes `name` and everything below it (everything for `None`);
    /// returns how many entries went.
    pub fn flush(&self, name: Option<&Name>) -> usize {
        let mut g = self.lock();
        let under = |n: &Name| name.is_none_or(|z| z.zone_of(n));
        let before = g.rrsets.len() + g.negatives.len() + g.answers.len();
        g.rrsets.retain(|(n, _), _| !under(n));
        g.negatives.retain(|q, _| !under(&q.name));
        g.answers.retain(|k, _| !under(&k.question.name));
        before - (g.rrsets.len() + g.negatives.len() + g.answers.len())
    }

    /// One human line per entry (placeholder format).
    pub fn dump(&self, now: Millis) -> Vec<String> {
        let g = self.lock();
        let mut out: Vec<String> = g
            .answers
            .iter()
            .map(|(k, t)| {
                format!("answer {} do={} cd={} ttl={}", k.question, k.dnssec_ok, k.checking_disabled, t.ttl_left(now))
            })
            .collect();
        out.sort();
        out
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats { entries: (g.rrsets.len() + g.negatives.len() + g.answers.len()) as u64, ..g.stats }
    }
}

/// Seconds left of an entry stored at `at` for `ttl` s, `None` once expired.
fn ttl_left(at: Millis, ttl: u32, now: Millis) -> Option<u32> {
    let end = at.saturating_add(u64::from(ttl) * 1000);
    (now < end).then(|| ((end - now) / 1000) as u32)
}
