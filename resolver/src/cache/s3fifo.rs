//! One shard of the L2 cache and its eviction policy, S3-FIFO
//! (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023).
//!
//! # Why S3-FIFO
//!
//! - **Scan resistance.** A random-subdomain ("water torture") flood or a
//!   crawler fills a DNS cache with names asked once and never again.
//!   S3-FIFO admits every new entry into a *small* FIFO (10% of the
//!   bytes); an entry not hit again before it reaches the small queue's
//!   tail leaves the cache, its key hash remembered in a *ghost* queue.
//!   Only entries hit while in the small queue (or re-inserted while
//!   remembered as ghosts) enter the *main* FIFO (90%). So a flood of
//!   one-hit wonders churns the 10% and never pushes out the hot names in
//!   the 90%; under LRU each new name would evict the least recent one,
//!   however popular it had been.
//! - **Cheap hits.** A hit does not move anything: it bumps a saturating
//!   two-bit frequency counter, an atomic, under the shard's *read* lock,
//!   so hits on one shard run in parallel. LRU must relink the entry at
//!   the head on every hit, which needs the write lock. Eviction at the
//!   main queue's tail is CLOCK-like: an entry with a frequency left is
//!   reinserted at the head with the frequency lowered by one.
//!
//! Choices where the paper leaves room: an entry moves from the small to
//! the main queue if it was hit at least once since it was inserted; the
//! ghost queue remembers as many keys as the main queue holds (at least
//! 64); an entry expired past the serve-stale window is dropped when
//! eviction reaches it, whatever its frequency (and by `purge`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use xxhash_rust::xxh3::{Xxh3DefaultBuilder, xxh3_64};

use super::{NegativeEntry, RrsetEntry};
use crate::response::Template;
use crate::types::Millis;

/// Frequency saturates here (two bits, as in the paper).
const MAX_FREQ: u8 = 3;
/// The entry has been hit since it was stored.
const FLAG_HIT: u8 = 1;
/// `should_prefetch` has answered yes for this entry.
const FLAG_PREFETCHED: u8 = 2;
/// Fewest keys the ghost queue remembers.
const MIN_GHOST: usize = 64;

/// What an entry holds.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// An RRset.
    Rrset(Arc<RrsetEntry>),
    /// A negative answer.
    Negative(Arc<NegativeEntry>),
    /// A built answer.
    Answer(Arc<Template>),
}

/// An entry and its policy state.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) value: Value,
    pub(super) stored_ms: Millis,
    /// Lifetime in seconds, clamped.
    pub(super) ttl: u32,
    /// Estimated bytes, counted against the bound.
    pub(super) size: usize,
    id: u64,
    in_main: bool,
    freq: AtomicU8,
    flags: AtomicU8,
}

impl Entry {
    /// When it expires (then the serve-stale window starts).
    pub(super) fn expires_ms(&self) -> Millis {
        self.stored_ms.saturating_add(u64::from(self.ttl) * 1000)
    }

    /// Records a hit: frequency up (saturating), hit flag set.
    pub(super) fn touch(&self) {
        let _ = self.freq.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| (f < MAX_FREQ).then_some(f + 1));
        self.flags.fetch_or(FLAG_HIT, Ordering::Relaxed);
    }

    /// Whether it has been hit since stored.
    pub(super) fn was_hit(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & FLAG_HIT != 0
    }

    /// Marks it prefetched; true only for the first call.
    pub(super) fn claim_prefetch(&self) -> bool {
        self.flags.fetch_or(FLAG_PREFETCHED, Ordering::Relaxed) & FLAG_PREFETCHED == 0
    }

    /// Its frequency and whether it is in the main queue (for ordering
    /// the warm-start file: hottest first).
    pub(super) fn heat(&self) -> (bool, u8) {
        (self.in_main, self.freq.load(Ordering::Relaxed))
    }
}

/// What an insertion or sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Removed {
    /// Live entries evicted for room.
    pub(super) evicted: u64,
    /// Entries dropped for being past the serve-stale window.
    pub(super) expired: u64,
}

type Key = Arc<[u8]>;

/// One shard: a map and the three queues.
pub(super) struct Shard {
    map: HashMap<Key, Entry, Xxh3DefaultBuilder>,
    /// Oldest at the front (the tail in the paper's words).
    small: VecDeque<(Key, u64)>,
    main: VecDeque<(Key, u64)>,
    ghost: VecDeque<(u64, u64)>,
    ghost_set: HashMap<u64, u64>,
    small_bytes: usize,
    main_bytes: usize,
    main_len: usize,
    capacity: usize,
    /// How long past expiry entries are kept (serve-stale window).
    stale_ms: u64,
    next_id: u64,
    /// Queue items whose entry was removed or replaced.
    tombstones: usize,
}

impl Shard {
    /// An empty shard holding at most `capacity` bytes.
    pub(super) fn new(capacity: usize, stale_ms: u64) -> Self {
        Shard {
            map: HashMap::with_hasher(Xxh3DefaultBuilder::new()),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghost_set: HashMap::new(),
            small_bytes: 0,
            main_bytes: 0,
            main_len: 0,
            capacity,
            stale_ms,
            next_id: 0,
            tombstones: 0,
        }
    }

    /// Past the serve-stale window at `now`: never served again.
    pub(super) fn is_dead(&self, e: &Entry, now: Millis) -> bool {
        now >= e.expires_ms().saturating_add(self.stale_ms)
    }

    /// The entry under `key`, dead or alive (no hit is recorded).
    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.small_bytes + self.main_bytes
    }

    /// Every entry, in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map.iter().map(|(k, e)| (&**k, e))
    }

    /// Stores `value` under `key` (replacing what was there, in place),
    /// then evicts until the shard fits. An entry larger than the whole
    /// shard is not stored (and replaces the old one by nothing).
    pub(super) fn insert(&mut self, key: &[u8], value: Value, stored_ms: Millis, ttl: u32, size: usize) -> Removed {
        let now = stored_ms;
        if size > self.capacity {
            if self.detach(key).is_some() {
                self.tombstones += 1;
                self.compact_if_needed();
            }
            return Removed::default();
        }
        if let Some(e) = self.map.get_mut(key) {
            let old = e.size;
            e.value = value;
            e.stored_ms = stored_ms;
            e.ttl = ttl;
            e.size = size;
            *e.flags.get_mut() = 0;
            let bytes = if e.in_main { &mut self.main_bytes } else { &mut self.small_bytes };
            *bytes = *bytes - old + size;
        } else {
            let key: Key = key.into();
            let id = self.next_id;
            self.next_id += 1;
            let ghost_hit = self.ghost_set.remove(&xxh3_64(&key)).is_some();
            let entry = Entry {
                value,
                stored_ms,
                ttl,
                size,
                id,
                in_main: ghost_hit,
                freq: AtomicU8::new(0),
                flags: AtomicU8::new(0),
            };
            if ghost_hit {
                self.main.push_back((key.clone(), id));
                self.main_bytes += size;
                self.main_len += 1;
            } else {
                self.small.push_back((key.clone(), id));
                self.small_bytes += size;
            }
            self.map.insert(key, entry);
        }
        let mut removed = Removed::default();
        while self.bytes() > self.capacity && self.evict_one(now, &mut removed) {}
        removed
    }

    /// Removes every entry whose key matches `pred`; returns how many.
    pub(super) fn remove_where(&mut self, mut pred: impl FnMut(&[u8], &Entry) -> bool) -> usize {
        let keys: Vec<Key> = self.map.iter().filter(|&(k, e)| pred(k, e)).map(|(k, _)| k.clone()).collect();
        for k in &keys {
            self.detach(k);
        }
        self.tombstones += keys.len();
        self.compact_if_needed();
        keys.len()
    }

    /// Drops every entry past the serve-stale window.
    pub(super) fn purge(&mut self, now: Millis) -> usize {
        let stale_ms = self.stale_ms;
        self.remove_where(|_, e| now >= e.expires_ms().saturating_add(stale_ms))
    }

    /// Takes an entry out of the map and the byte counts; its queue item
    /// stays (the caller counts it as a tombstone unless it is popping it).
    fn detach(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.map.remove(key)?;
        if e.in_main {
            self.main_bytes -= e.size;
            self.main_len -= 1;
        } else {
            self.small_bytes -= e.size;
        }
        Some(e)
    }

    /// Rebuilds the queues without their tombstones once those outnumber
    /// the entries, so replacing and flushing cannot grow them unbounded.
    fn compact_if_needed(&mut self) {
        if self.tombstones <= self.map.len() + MIN_GHOST {
            return;
        }
        let map = &self.map;
        let live = |(k, id): &(Key, u64), main: bool| map.get(k).is_some_and(|e| e.id == *id && e.in_main == main);
        self.small.retain(|item| live(item, false));
        self.main.retain(|item| live(item, true));
        self.tombstones = 0;
    }

    /// Evicts one entry; false if there is nothing left to evict.
    fn evict_one(&mut self, now: Millis, removed: &mut Removed) -> bool {
        if (self.small_bytes >= self.capacity / 10 || self.main.is_empty()) && self.evict_small(now, removed) {
            return true;
        }
        self.evict_main(now, removed)
    }

    /// Pops the small queue's tail: hit entries move to main, the first
    /// one never hit leaves (remembered as a ghost).
    fn evict_small(&mut self, now: Millis, removed: &mut Removed) -> bool {
        while let Some((k, id)) = self.small.pop_front() {
            let Some(e) = self.map.get(&k).filter(|e| e.id == id && !e.in_main) else {
                self.tombstones = self.tombstones.saturating_sub(1);
                continue;
            };
            if self.is_dead(e, now) {
                self.detach(&k);
                removed.expired += 1;
                return true;
            }
            if e.freq.load(Ordering::Relaxed) > 0 {
                let size = e.size;
                if let Some(e) = self.map.get_mut(&k) {
                    e.in_main = true;
                }
                self.small_bytes -= size;
                self.main_bytes += size;
                self.main_len += 1;
                self.main.push_back((k, id));
                continue;
            }
            self.detach(&k);
            self.remember_ghost(xxh3_64(&k));
            removed.evicted += 1;
            return true;
        }
        false
    }

    /// Pops the main queue's tail: entries with frequency left go back to
    /// the head one lower, the first at zero leaves.
    fn evict_main(&mut self, now: Millis, removed: &mut Removed) -> bool {
        while let Some((k, id)) = self.main.pop_front() {
            let Some(e) = self.map.get_mut(&k).filter(|e| e.id == id && e.in_main) else {
                self.tombstones = self.tombstones.saturating_sub(1);
                continue;
            };
            let dead = now >= e.expires_ms().saturating_add(self.stale_ms);
            let freq = e.freq.get_mut();
            if !dead && *freq > 0 {
                *freq -= 1;
                self.main.push_back((k, id));
                continue;
            }
            self.detach(&k);
            if dead {
                removed.expired += 1
            } else {
                removed.evicted += 1
            }
            return true;
        }
        false
    }

    fn remember_ghost(&mut self, hash: u64) {
        let seq = self.next_id;
        self.next_id += 1;
        self.ghost.push_back((hash, seq));
        self.ghost_set.insert(hash, seq);
        let cap = self.main_len.max(MIN_GHOST);
        while self.ghost.len() > cap {
            if let Some((h, s)) = self.ghost.pop_front()
                && self.ghost_set.get(&h) == Some(&s)
            {
                self.ghost_set.remove(&h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Security;

    fn answer(ttl: u32) -> Value {
        Value::Answer(Arc::new(Template {
            wire: Box::new([]),
            ttl_offsets: Box::new([]),
            opt_offset: None,
            stored_ms: 0,
            ttl,
            security: Security::Insecure,
        }))
    }

    fn put(s: &mut Shard, key: &str, now: Millis) -> Removed {
        s.insert(key.as_bytes(), answer(300), now, 300, 100)
    }

    fn hit(s: &Shard, key: &str) -> bool {
        s.get(key.as_bytes()).map(Entry::touch).is_some()
    }

    #[test]
    fn one_hit_wonders_leave_before_hit_entries() {
        let mut s = Shard::new(10_000, 0); // 100 entries of 100 bytes
        put(&mut s, "hot", 0);
        assert!(hit(&s, "hot"));
        for i in 0..1000 {
            put(&mut s, &format!("scan{i}"), 0);
            assert!(s.bytes() <= 10_000);
        }
        assert!(s.get(b"hot").is_some(), "a hit entry survived the scan");
        assert!(s.get(b"scan0").is_none());
    }

    #[test]
    fn a_ghost_comes_back_into_main() {
        let mut s = Shard::new(1_000, 0);
        for i in 0..20 {
            put(&mut s, &format!("k{i}"), 0);
        }
        assert!(s.get(b"k0").is_none(), "k0 evicted");
        put(&mut s, "k0", 0);
        assert_eq!(s.get(b"k0").map(|e| e.in_main), Some(true), "ghost hit goes to main");
    }

    #[test]
    fn main_entries_without_frequency_are_evicted() {
        let mut s = Shard::new(10_000, 0);
        put(&mut s, "a", 0);
        hit(&s, "a");
        for i in 0..150 {
            put(&mut s, &format!("x{i}"), 0);
        }
        assert_eq!(s.get(b"a").map(|e| e.in_main), Some(true), "promoted");
        // Refill the main queue with promoted entries until `a` (now at
        // frequency 0 after its second chance) is pushed out.
        for round in 0..300 {
            let k = format!("m{round}");
            put(&mut s, &k, 0);
            hit(&s, &k);
        }
        assert!(s.get(b"a").is_none());
        assert!(s.bytes() <= 10_000);
    }

    #[test]
    fn dead_entries_go_first_and_purge_drops_them() {
        let mut s = Shard::new(1_000, 1_000);
        s.insert(b"old", answer(1), 0, 1, 100);
        hit(&s, "old");
        assert_eq!(s.purge(1_999), 0, "within the stale window");
        assert_eq!(s.purge(2_000), 1);
        assert_eq!(s.len(), 0);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn replacing_keeps_one_entry_and_exact_bytes() {
        let mut s = Shard::new(1_000, 0);
        for i in 0..500 {
            s.insert(b"same", answer(300), i, 300, 100 + (i as usize % 7));
        }
        assert_eq!(s.len(), 1);
        assert_eq!(s.bytes(), 100 + 499 % 7);
        assert!(s.small.len() <= 1, "replacement in place adds no queue items");
        assert_eq!(s.insert(b"huge", answer(300), 0, 300, 5_000), Removed::default());
        assert!(s.get(b"huge").is_none());
    }

    #[test]
    fn flushes_do_not_grow_the_queues() {
        let mut s = Shard::new(1_000_000, 0);
        for i in 0..10_000 {
            let k = format!("k{i}");
            put(&mut s, &k, 0);
            s.remove_where(|key, _| key == k.as_bytes());
        }
        assert!(s.small.len() <= 2 * MIN_GHOST + 2, "{}", s.small.len());
    }
}
