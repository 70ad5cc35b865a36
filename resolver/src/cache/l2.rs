//! L2: the cache all workers share.
//!
//! Entries are spread over shards by an xxh3 hash of their key; each shard
//! has its own read-write lock, its share of the byte bound and its own
//! S3-FIFO queues (`s3fifo` module). Lookups take the read lock only, so
//! hits on the same shard do not wait for each other; inserts, flushes
//! and evictions take the write lock of one shard at a time.
//!
//! Lifetimes: an entry is fresh for its TTL, clamped to
//! [`CacheConfig::min_ttl`]..=[`CacheConfig::max_ttl`] (negative answers
//! capped at [`CacheConfig::max_negative_ttl`] instead, RFC 2308 §5), then
//! stale for [`CacheConfig::max_stale`] seconds, when only the `*_stale`
//! lookups and [`Cache::answer`]'s `Stale` serve it (RFC 8767 §4), then
//! dead: never served, dropped when eviction meets it or [`Cache::purge`]
//! sweeps.
//!
//! Sizes are estimates of the heap an entry holds: the wire length of its
//! records (or the template's bytes), its key twice (map and queue), plus
//! [`ENTRY_OVERHEAD`] for the map slot, queue slot, `Arc` headers and
//! bookkeeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use xxhash_rust::xxh3::xxh3_64;

use super::key::{self, KeyBuf};
use super::l1::L1Key;
use super::s3fifo::{Entry, Removed, Shard, Value};
use super::{AnswerKey, AnswerLookup, CacheConfig, CacheStats, CachedNegative, CachedRrset, NegativeEntry, RrsetEntry};
use crate::response::Template;
use crate::types::{Millis, Question};

/// Bytes counted per entry on top of its data and key (map and queue
/// slots, `Arc` headers, the entry's fields, allocator rounding). Set
/// from measurement, so that `cache_bytes` bounds the memory really
/// taken: a million single-A answers grew the node's RSS by about 740
/// bytes each (docs/benchmarks.md, resolver test 5) where 160 counted
/// only 335.
pub const ENTRY_OVERHEAD: usize = 560;

/// Counters of one shard, outside its lock.
#[derive(Default)]
struct Counters {
    answer_hits: AtomicU64,
    answer_misses: AtomicU64,
    answer_stale: AtomicU64,
    rrset_hits: AtomicU64,
    rrset_misses: AtomicU64,
    rrset_stale: AtomicU64,
    negative_hits: AtomicU64,
    negative_misses: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct ShardCell {
    lock: RwLock<Shard>,
    counters: Counters,
}

/// How a lookup found its entry.
enum Found {
    /// Live, with this many seconds left.
    Fresh(u32),
    /// Past its TTL, within the serve-stale window.
    Stale,
}

/// The shared cache (L2). See the module docs.
pub struct Cache {
    cfg: CacheConfig,
    shards: Box<[ShardCell]>,
    /// Bumped by every flush, so workers can drop their L1 copies.
    generation: AtomicU64,
}

impl Cache {
    /// An empty cache.
    pub fn new(cfg: CacheConfig) -> Self {
        let n = cfg.shards.clamp(1, 1024).next_power_of_two();
        let per_shard = cfg.max_bytes / n;
        let stale_ms = u64::from(cfg.max_stale) * 1000;
        let shards = (0..n)
            .map(|_| ShardCell { lock: RwLock::new(Shard::new(per_shard, stale_ms)), counters: Counters::default() })
            .collect();
        Cache { cfg, shards, generation: AtomicU64::new(0) }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    fn cell(&self, key: &[u8]) -> &ShardCell {
        let h = xxh3_64(key);
        &self.shards[(h >> 32) as usize & (self.shards.len() - 1)]
    }

    fn read(cell: &ShardCell) -> RwLockReadGuard<'_, Shard> {
        cell.lock.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(cell: &ShardCell) -> RwLockWriteGuard<'_, Shard> {
        cell.lock.write().unwrap_or_else(|e| e.into_inner())
    }

    fn clamp(&self, ttl: u32) -> u32 {
        clamp(&self.cfg, ttl)
    }

    /// Looks `key` up in its shard `cell`, recording a hit if it is served.
    fn find(cell: &ShardCell, key: &[u8], now: Millis, allow_stale: bool) -> Option<(Value, Found)> {
        let shard = Self::read(cell);
        let e = shard.get(key)?;
        let found = match ttl_left(e, now) {
            Some(left) => Found::Fresh(left),
            None if allow_stale && !shard.is_dead(e, now) => Found::Stale,
            None => return None,
        };
        e.touch();
        Some((e.value.clone(), found))
    }

    fn store(&self, key: &[u8], value: Value, stored_ms: Millis, ttl: u32, data_bytes: usize) {
        let cell = self.cell(key);
        let removed = Self::write(cell).insert(key, value, stored_ms, ttl, entry_size(key, data_bytes));
        count_removed(&cell.counters, removed);
    }

    /// A live RRset `name`/`rtype`.
    pub fn rrset(&self, name: &Name, rtype: RecordType, now: Millis) -> Option<CachedRrset> {
        let k = key::rrset_key(name, rtype)?;
        let cell = self.cell(k.as_bytes());
        let counters = &cell.counters;
        match Self::find(cell, k.as_bytes(), now, false) {
            Some((Value::Rrset(entry), Found::Fresh(ttl_left))) => {
                bump(&counters.rrset_hits);
                Some(CachedRrset { entry, ttl_left, stale: false })
            }
            _ => {
                bump(&counters.rrset_misses);
                None
            }
        }
    }

    /// RFC 8767 §4: an RRset to fall back on when resolution failed: the
    /// live one if there is one (`stale: false`, as [`Cache::rrset`]),
    /// else one past its TTL by at most `max_stale` seconds, with
    /// `stale: true` and `ttl_left: 0` (the caller gives it
    /// `stale_answer_ttl`).
    pub fn rrset_stale(&self, name: &Name, rtype: RecordType, now: Millis) -> Option<CachedRrset> {
        let k = key::rrset_key(name, rtype)?;
        let cell = self.cell(k.as_bytes());
        match Self::find(cell, k.as_bytes(), now, true)? {
            (Value::Rrset(entry), Found::Fresh(ttl_left)) => Some(CachedRrset { entry, ttl_left, stale: false }),
            (Value::Rrset(entry), Found::Stale) => {
                bump(&cell.counters.rrset_stale);
                Some(CachedRrset { entry, ttl_left: 0, stale: true })
            }
            _ => None,
        }
    }

    /// Stores an RRset for `ttl` seconds (clamped), unless live data of a
    /// higher rank is there (RFC 2181 §5.4.1).
    pub fn insert_rrset(&self, name: &Name, rtype: RecordType, entry: RrsetEntry, ttl: u32, now: Millis) {
        let Some(k) = key::rrset_key(name, rtype) else { return };
        let key = k.as_bytes();
        let ttl = self.clamp(ttl);
        let bytes = records_size(entry.records.iter().chain(&entry.rrsigs));
        let cell = self.cell(key);
        let mut shard = Self::write(cell);
        if let Some(old) = shard.get(key)
            && let Value::Rrset(o) = &old.value
            && o.rank > entry.rank
            && ttl_left(old, now).is_some()
        {
            return;
        }
        let removed = shard.insert(key, Value::Rrset(Arc::new(entry)), now, ttl, entry_size(key, bytes));
        drop(shard);
        count_removed(&cell.counters, removed);
    }

    /// Removes the RRset `name`/`rtype`, so that the next lookup asks a
    /// server (an RFC 5011 check wants the zone's DNSKEY RRset as it is
    /// published now); whether it was there. Scans one shard.
    pub fn remove_rrset(&self, name: &Name, rtype: RecordType) -> bool {
        let Some(k) = key::rrset_key(name, rtype) else { return false };
        let key = k.as_bytes();
        Self::write(self.cell(key)).remove_where(|k, _| k == key) > 0
    }

    /// A live negative answer for `q`; an NXDOMAIN cached for the name
    /// answers every type (RFC 2308 §5).
    pub fn negative(&self, q: &Question, now: Millis) -> Option<CachedNegative> {
        let exact = key::negative_key(&q.name, q.qtype, q.qclass)?;
        let counters = &self.cell(exact.as_bytes()).counters;
        let nx = key::negative_key(&q.name, RecordType::ANY, q.qclass)?;
        let hit = [exact, nx].into_iter().enumerate().find_map(|(i, k)| {
            match Self::find(self.cell(k.as_bytes()), k.as_bytes(), now, false)? {
                (Value::Negative(entry), Found::Fresh(ttl_left)) if i == 0 || entry.nxdomain => {
                    Some(CachedNegative { entry, ttl_left })
                }
                _ => None,
            }
        });
        bump(if hit.is_some() { &counters.negative_hits } else { &counters.negative_misses });
        hit
    }

    /// RFC 8767 §4 (and RFC 8914 §4.19, Stale NXDOMAIN Answer): a negative
    /// answer to fall back on when resolution failed: the live one with
    /// `false`, else one past its TTL by at most `max_stale` seconds with
    /// `true` and `ttl_left: 0`.
    pub fn negative_stale(&self, q: &Question, now: Millis) -> Option<(CachedNegative, bool)> {
        let exact = key::negative_key(&q.name, q.qtype, q.qclass)?;
        let nx = key::negative_key(&q.name, RecordType::ANY, q.qclass)?;
        [exact, nx].into_iter().enumerate().find_map(|(i, k)| {
            match Self::find(self.cell(k.as_bytes()), k.as_bytes(), now, true)? {
                (Value::Negative(entry), found) if i == 0 || entry.nxdomain => Some(match found {
                    Found::Fresh(ttl_left) => (CachedNegative { entry, ttl_left }, false),
                    Found::Stale => (CachedNegative { entry, ttl_left: 0 }, true),
                }),
                _ => None,
            }
        })
    }

    /// Stores a negative answer for `ttl` seconds, capped at
    /// `max_negative_ttl` (RFC 2308 §5: the caller computes the TTL from
    /// the SOA). NXDOMAIN is stored for the name (under type ANY).
    pub fn insert_negative(&self, q: &Question, entry: NegativeEntry, ttl: u32, now: Millis) {
        let qtype = if entry.nxdomain { RecordType::ANY } else { q.qtype };
        let Some(k) = key::negative_key(&q.name, qtype, q.qclass) else { return };
        let ttl = ttl.min(self.cfg.max_negative_ttl);
        let bytes = records_size(entry.authority.iter());
        self.store(k.as_bytes(), Value::Negative(Arc::new(entry)), now, ttl, bytes);
    }

    /// A built answer for `key`: fresh, or stale within `max_stale`.
    pub fn answer(&self, key: &AnswerKey, now: Millis) -> AnswerLookup {
        match key::answer_key(&key.question, key.dnssec_ok, key.checking_disabled) {
            Some(k) => self.answer_by_bytes(k.as_bytes(), now),
            None => AnswerLookup::Miss,
        }
    }

    /// [`Cache::answer`] by an L1 key (built from the raw query), for the
    /// L1 miss path: no `Name` is parsed.
    pub fn answer_l1(&self, key: &L1Key, now: Millis) -> AnswerLookup {
        self.answer_by_bytes(key.l2_bytes(), now)
    }

    fn answer_by_bytes(&self, k: &[u8], now: Millis) -> AnswerLookup {
        let cell = self.cell(k);
        let counters = &cell.counters;
        match Self::find(cell, k, now, true) {
            Some((Value::Answer(t), Found::Fresh(_))) => {
                bump(&counters.answer_hits);
                AnswerLookup::Fresh(t)
            }
            Some((Value::Answer(t), Found::Stale)) => {
                bump(&counters.answer_misses);
                bump(&counters.answer_stale);
                AnswerLookup::Stale(t)
            }
            _ => {
                bump(&counters.answer_misses);
                AnswerLookup::Miss
            }
        }
    }

    /// Stores a built answer, stored at `t.stored_ms`. Its lifetime is
    /// `t.ttl` clamped like an RRset's when it carries data (NOERROR with
    /// answers), else capped at `max_negative_ttl` (NXDOMAIN, NODATA and
    /// cached errors).
    pub fn insert_answer(&self, key: AnswerKey, t: Arc<Template>) {
        let Some(k) = key::answer_key(&key.question, key.dnssec_ok, key.checking_disabled) else { return };
        let ttl = answer_ttl(&self.cfg, &t);
        let bytes = t.wire.len() + 2 * t.ttl_offsets.len() + std::mem::size_of::<Template>();
        let stored_ms = t.stored_ms;
        self.store(k.as_bytes(), Value::Answer(t), stored_ms, ttl, bytes);
    }

    /// Prefetch decision, as Unbound's `prefetch`: true, once per stored
    /// answer, when it is still fresh, has been hit (by [`Cache::answer`])
    /// since it was stored, and less than 10% of its TTL is left. The
    /// caller then re-resolves in the background and stores the result,
    /// which starts a new lifetime, so a name in steady use never expires
    /// from the cache and never costs a client the full resolution time.
    pub fn should_prefetch(&self, key: &AnswerKey, now: Millis) -> bool {
        let Some(k) = key::answer_key(&key.question, key.dnssec_ok, key.checking_disabled) else { return false };
        let shard = Self::read(self.cell(k.as_bytes()));
        let Some(e) = shard.get(k.as_bytes()) else { return false };
        let end = e.expires_ms();
        let window = u64::from(e.ttl) * 100; // 10% of the TTL, in ms
        now < end && end - now < window && e.was_hit() && e.claim_prefetch()
    }

    /// [`Cache::should_prefetch`] by an L1 key (no `Name` parsed).
    pub fn should_prefetch_l1(&self, key: &L1Key, now: Millis) -> bool {
        let k = key.l2_bytes();
        let shard = Self::read(self.cell(k));
        let Some(e) = shard.get(k) else { return false };
        let end = e.expires_ms();
        let window = u64::from(e.ttl) * 100;
        now < end && end - now < window && e.was_hit() && e.claim_prefetch()
    }

    /// Removes `name` and everything below it (everything for `None`);
    /// returns how many entries went.
    pub fn flush(&self, name: Option<&Name>) -> usize {
        let zone = match name {
            Some(n) => {
                let mut k = KeyBuf::new(0);
                if !k.push_name(n) {
                    return 0;
                }
                Some(k)
            }
            None => None,
        };
        let zone = zone.as_ref().map(|k| &k.as_bytes()[1..]);
        let mut n = 0;
        for cell in &self.shards {
            n += Self::write(cell).remove_where(|key, _| {
                zone.is_none_or(|z| key::split(key).is_some_and(|(_, name, _)| key::is_under(name, z)))
            });
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        n
    }

    /// Drops every entry past the serve-stale window (eviction does too,
    /// lazily; call this periodically to give the memory back sooner).
    pub fn purge(&self, now: Millis) -> usize {
        let mut n = 0;
        for cell in &self.shards {
            let k = Self::write(cell).purge(now);
            cell.counters.expired.fetch_add(k as u64, Ordering::Relaxed);
            n += k;
        }
        n
    }

    /// Bumped by every [`Cache::flush`]: a worker whose L1 was filled
    /// under an older generation clears it ([`super::WorkerCache::sync`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::default();
        for cell in &self.shards {
            let c = &cell.counters;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            s.answer_hits += get(&c.answer_hits);
            s.answer_misses += get(&c.answer_misses);
            s.answer_stale += get(&c.answer_stale);
            s.rrset_hits += get(&c.rrset_hits);
            s.rrset_misses += get(&c.rrset_misses);
            s.rrset_stale += get(&c.rrset_stale);
            s.negative_hits += get(&c.negative_hits);
            s.negative_misses += get(&c.negative_misses);
            s.evictions += get(&c.evictions);
            s.expired += get(&c.expired);
            let shard = Self::read(cell);
            s.entries += shard.len() as u64;
            s.bytes += shard.bytes() as u64;
        }
        s
    }

    /// The live (fresh) answers, hottest first (main queue, then by
    /// frequency): what [`super::disk::save`] writes, in the order its
    /// size limit keeps.
    pub fn answers_for_disk(&self, now: Millis) -> Vec<(AnswerKey, Arc<Template>)> {
        let mut out = Vec::new();
        for cell in &self.shards {
            let shard = Self::read(cell);
            for (k, e) in shard.iter() {
                if let Value::Answer(t) = &e.value
                    && ttl_left(e, now).is_some()
                    && let Some(key) = key::answer_key_of(k)
                {
                    out.push((e.heat(), key, t.clone()));
                }
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out.into_iter().map(|(_, k, t)| (k, t)).collect()
    }

    /// One line per cached record, negative answer and built answer, for
    /// `meshdns cache dump`: RRsets as zone-file lines with the TTL left
    /// (0 when stale) and a comment with rank and security; negative and
    /// built answers as comment lines. Sorted, dead entries left out.
    pub fn dump(&self, now: Millis) -> Vec<String> {
        let mut lines = Vec::new();
        for cell in &self.shards {
            let shard = Self::read(cell);
            for (k, e) in shard.iter().filter(|(_, e)| !shard.is_dead(e, now)) {
                dump_entry(k, e, now, &mut lines);
            }
        }
        lines.sort();
        lines
    }
}

fn clamp(cfg: &CacheConfig, ttl: u32) -> u32 {
    ttl.clamp(cfg.min_ttl, cfg.max_ttl.max(cfg.min_ttl))
}

/// The lifetime a built answer gets: its TTL clamped like an RRset's when
/// it carries data, else capped at `max_negative_ttl` (see
/// [`Cache::insert_answer`]). L1 uses the same, so it never outlives L2.
pub(super) fn answer_ttl(cfg: &CacheConfig, t: &Template) -> u32 {
    if carries_data(&t.wire) { clamp(cfg, t.ttl) } else { t.ttl.min(cfg.max_negative_ttl) }
}

/// Seconds of life left, `None` once expired.
fn ttl_left(e: &Entry, now: Millis) -> Option<u32> {
    let end = e.expires_ms();
    (now < end).then(|| ((end - now) / 1000).min(u64::from(u32::MAX)) as u32)
}

fn count_removed(c: &Counters, r: Removed) {
    c.evictions.fetch_add(r.evicted, Ordering::Relaxed);
    c.expired.fetch_add(r.expired, Ordering::Relaxed);
}

/// An entry's size as counted against the bound.
fn entry_size(key: &[u8], data_bytes: usize) -> usize {
    2 * key.len() + data_bytes + ENTRY_OVERHEAD
}

/// The records' wire length (uncompressed), plus their in-memory headers.
fn records_size<'a>(records: impl Iterator<Item = &'a Record>) -> usize {
    records.map(|r| r.to_bytes().map_or(64, |b| b.len()) + std::mem::size_of::<Record>()).sum()
}

/// Whether a response carries data: NOERROR with a non-empty answer
/// section (RFC 1035 §4.1.1 header: RCODE in byte 3, ANCOUNT at 6..8).
fn carries_data(wire: &[u8]) -> bool {
    let rcode = wire.get(3).map_or(u8::MAX, |b| b & 0x0f);
    rcode == ResponseCode::NoError.low() && key::u16_at(wire, 6).is_some_and(|n| n > 0)
}

fn dump_entry(k: &[u8], e: &Entry, now: Millis, lines: &mut Vec<String>) {
    let left = ttl_left(e, now);
    let (ttl, stale) = (left.unwrap_or(0), if left.is_none() { " stale" } else { "" });
    let Some((_, name_wire, rest)) = key::split(k) else { return };
    let name = key::name_from_wire(name_wire).map_or_else(|| "?".to_owned(), |n| n.to_string());
    let rtype = key::u16_at(rest, 0).map_or_else(|| "?".to_owned(), |t| RecordType::from(t).to_string());
    let class = key::u16_at(rest, 2).map_or_else(|| "IN".to_owned(), |c| DNSClass::from(c).to_string());
    match &e.value {
        Value::Rrset(r) => {
            for rec in r.records.iter().chain(&r.rrsigs) {
                let mut rec = rec.clone();
                rec.set_ttl(ttl);
                lines.push(format!("{rec} ; rank={:?} security={:?}{stale}", r.rank, r.security));
            }
        }
        Value::Negative(n) => {
            let what = if n.nxdomain { "NXDOMAIN" } else { "NODATA" };
            let rtype = if n.nxdomain { "*" } else { &rtype };
            lines.push(format!("; negative {name} {class} {rtype} {what} ttl={ttl} security={:?}{stale}", n.security));
        }
        Value::Answer(t) => {
            let flags = rest.get(4).copied().unwrap_or(0);
            lines.push(format!(
                "; answer {name} {class} {rtype} do={} cd={} ttl={ttl} bytes={} security={:?}{stale}",
                u8::from(flags & key::FLAG_DO != 0),
                u8::from(flags & key::FLAG_CD != 0),
                t.wire.len(),
                t.security
            ));
        }
    }
}

#[cfg(test)]
mod tests;
