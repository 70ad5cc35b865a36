//! L1: a worker thread's own answer cache.
//!
//! Each worker owns one [`WorkerCache`] outright (no lock, no atomics): a
//! fixed array of 2-way sets of built answers, indexed by a 64-bit xxh3
//! hash of the [`L1Key`] bytes. A lookup hashes the question as it sits
//! in the packet (lowercased into a stack buffer on the way), looks at two
//! slots, compares the stored key bytes, and hands back a reference to the
//! [`Template`]: no allocation and no `Arc` clone on a hit. Inserts (after
//! an L2 hit or a resolution) replace the less recently hit way.
//!
//! L1 holds fresh answers only: stale serving, prefetch decisions and
//! statistics per name are L2's. A [`crate::cache::Cache::flush`] bumps
//! L2's generation; a worker calls [`WorkerCache::sync`] with it now and
//! then (once per batch of packets) and so drops flushed answers too.

use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::key::{self, KeyBuf};
use super::{AnswerKey, CacheConfig};
use crate::response::Template;
use crate::types::Millis;

/// The key of an answer in every cache level: the lowercase QNAME in
/// wire form, QTYPE, QCLASS and the DO/CD bits, with its hash. Built on
/// the stack, without allocating.
#[derive(Clone)]
pub struct L1Key {
    /// The L2 answer key: kind byte, then the bytes L1 and L3 use.
    buf: KeyBuf,
    hash: u64,
}

impl L1Key {
    /// The key of a query as it sits in the packet: `qname_wire` is the
    /// QNAME's bytes, exactly one uncompressed name in any case. `None`
    /// if it is not a valid name (such a query cannot be cached anyway).
    pub fn from_wire(
        qname_wire: &[u8],
        qtype: u16,
        qclass: u16,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Option<Self> {
        let mut buf = KeyBuf::new(key::KIND_ANSWER);
        if !buf.push_name_wire(qname_wire) {
            return None;
        }
        buf.push_u16(qtype);
        buf.push_u16(qclass);
        buf.push_u8(key::flags(dnssec_ok, checking_disabled));
        Some(Self::finish(buf))
    }

    /// The key of `key`, to promote an L2 hit (or a fresh resolution)
    /// into L1. Equal to [`L1Key::from_wire`] of the same question.
    pub fn from_answer_key(key: &AnswerKey) -> Option<Self> {
        key::answer_key(&key.question, key.dnssec_ok, key.checking_disabled).map(Self::finish)
    }

    /// A key from its [`L1Key::as_bytes`] form (as the disk file stores
    /// it); `None` if they are not a valid key.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let n = key::name_wire_len(bytes)?;
        if bytes.len() != n + 5 {
            return None;
        }
        let mut buf = KeyBuf::new(key::KIND_ANSWER);
        buf.push_name_wire(&bytes[..n]).then(|| {
            for &b in &bytes[n..] {
                buf.push_u8(b);
            }
            Self::finish(buf)
        })
    }

    fn finish(buf: KeyBuf) -> Self {
        let hash = xxh3_64(&buf.as_bytes()[1..]);
        L1Key { buf, hash }
    }

    /// The key bytes: name, type, class, flags.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf.as_bytes()[1..]
    }

    /// xxh3-64 of [`L1Key::as_bytes`].
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The question and bits this key stands for.
    pub fn to_answer_key(&self) -> Option<AnswerKey> {
        key::answer_key_of(self.buf.as_bytes())
    }

    /// The same key as L2 spells it (kind byte first).
    pub(crate) fn l2_bytes(&self) -> &[u8] {
        self.buf.as_bytes()
    }
}

impl std::fmt::Debug for L1Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "L1Key({:016x}, {:?})", self.hash, self.as_bytes())
    }
}

struct Slot {
    hash: u64,
    key: Box<[u8]>,
    template: Arc<Template>,
    expires_ms: Millis,
}

#[derive(Default)]
struct Set {
    ways: [Option<Slot>; 2],
    /// The way hit or filled last; the other one is replaced first.
    recent: usize,
}

/// One worker's answer cache. See the module docs.
pub struct WorkerCache {
    sets: Box<[Set]>,
    /// The TTL limits, applied as L2 applies them.
    cfg: CacheConfig,
    generation: u64,
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed (absent, expired or hash collision).
    pub misses: u64,
    /// Answers stored.
    pub inserts: u64,
}

impl WorkerCache {
    /// A cache of `slots` answers (rounded up to a power of two, at least
    /// 2), keeping each for the lifetime L2 would give it under `cfg`'s
    /// TTL limits.
    pub fn new(slots: usize, cfg: &CacheConfig) -> Self {
        let sets = (slots.max(2).next_power_of_two() / 2).max(1);
        WorkerCache {
            sets: (0..sets).map(|_| Set::default()).collect(),
            cfg: cfg.clone(),
            generation: 0,
            hits: 0,
            misses: 0,
            inserts: 0,
        }
    }

    /// How many answers it can hold.
    pub fn capacity(&self) -> usize {
        self.sets.len() * 2
    }

    fn set_index(&self, hash: u64) -> usize {
        hash as usize & (self.sets.len() - 1)
    }

    /// The fresh answer for `key` at `now`. Allocates nothing; an expired
    /// answer found is dropped.
    pub fn get(&mut self, key: &L1Key, now: Millis) -> Option<&Template> {
        let i = self.set_index(key.hash);
        let set = &mut self.sets[i];
        let way =
            set.ways.iter().position(|w| w.as_ref().is_some_and(|s| s.hash == key.hash && *s.key == *key.as_bytes()));
        let Some(w) = way else {
            self.misses += 1;
            return None;
        };
        if set.ways[w].as_ref().is_some_and(|s| now >= s.expires_ms) {
            set.ways[w] = None;
            self.misses += 1;
            return None;
        }
        set.recent = w;
        self.hits += 1;
        set.ways[w].as_ref().map(|s| &*s.template)
    }

    /// Stores `template` under `key` until its lifetime runs out
    /// (`stored_ms` + its TTL limited as in [`crate::cache::Cache::insert_answer`]),
    /// replacing the same key or the set's less recently used way.
    pub fn insert(&mut self, key: &L1Key, template: Arc<Template>) {
        let ttl = super::l2::answer_ttl(&self.cfg, &template);
        let expires_ms = template.stored_ms.saturating_add(u64::from(ttl) * 1000);
        let i = self.set_index(key.hash);
        let set = &mut self.sets[i];
        let w = set
            .ways
            .iter()
            .position(|w| w.as_ref().is_some_and(|s| s.hash == key.hash && *s.key == *key.as_bytes()))
            .or_else(|| set.ways.iter().position(Option::is_none))
            .unwrap_or(1 - set.recent);
        set.ways[w] = Some(Slot { hash: key.hash, key: key.as_bytes().into(), template, expires_ms });
        set.recent = w;
        self.inserts += 1;
    }

    /// Empties it.
    pub fn clear(&mut self) {
        for set in self.sets.iter_mut() {
            *set = Set::default();
        }
    }

    /// Empties it if L2's [`crate::cache::Cache::generation`] moved on
    /// (a flush happened) since the last call.
    pub fn sync(&mut self, generation: u64) {
        if generation != self.generation {
            self.clear();
            self.generation = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::types::{Question, Security};

    /// A NOERROR response with one answer, tagged in its ID.
    fn template(stored_ms: Millis, ttl: u32, tag: u8) -> Arc<Template> {
        Arc::new(Template {
            wire: Box::new([tag, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]),
            ttl_offsets: Box::new([]),
            opt_offset: None,
            stored_ms,
            ttl,
            security: Security::Insecure,
        })
    }

    fn key(name: &str, do_bit: bool) -> L1Key {
        let n = Name::from_str(name).unwrap_or_else(|e| panic!("{e}"));
        let k = AnswerKey { question: Question::new(&n, RecordType::A), dnssec_ok: do_bit, checking_disabled: false };
        L1Key::from_answer_key(&k).unwrap_or_else(|| panic!("key"))
    }

    #[test]
    fn wire_and_answer_keys_agree() {
        let w = L1Key::from_wire(b"\x03WWW\x07example\x03COM\x00", 1, 1, true, false).unwrap_or_else(|| panic!("key"));
        let a = key("www.example.com.", true);
        assert_eq!(w.as_bytes(), a.as_bytes());
        assert_eq!(w.hash(), a.hash());
        assert_ne!(w.hash(), key("www.example.com.", false).hash(), "DO is part of the key");
        assert_eq!(L1Key::from_bytes(w.as_bytes()).map(|k| k.hash()), Some(w.hash()));
        assert!(L1Key::from_bytes(&w.as_bytes()[1..]).is_none());
        assert!(L1Key::from_wire(b"\x03www", 1, 1, false, false).is_none());
    }

    #[test]
    fn hit_miss_expiry_and_counters() {
        let mut c = WorkerCache::new(64, &CacheConfig::default());
        let k = key("a.example.", false);
        assert!(c.get(&k, 0).is_none());
        c.insert(&k, template(1_000, 10, 7));
        assert_eq!(c.get(&k, 10_999).map(|t| t.wire[0]), Some(7));
        assert!(c.get(&key("b.example.", false), 5_000).is_none());
        assert!(c.get(&k, 11_000).is_none(), "expired at stored + ttl");
        assert!(c.get(&k, 2_000).is_none(), "an expired slot was dropped");
        assert_eq!((c.hits, c.misses, c.inserts), (1, 4, 1));
    }

    #[test]
    fn a_set_keeps_the_recently_hit_way() {
        // One set only: every key lands in it.
        let mut c = WorkerCache::new(2, &CacheConfig::default());
        let (a, b, d) = (key("a.", false), key("b.", false), key("d.", false));
        c.insert(&a, template(0, 60, 1));
        c.insert(&b, template(0, 60, 2));
        assert!(c.get(&a, 0).is_some());
        c.insert(&d, template(0, 60, 3));
        assert!(c.get(&a, 0).is_some(), "a was hit last, b goes");
        assert!(c.get(&b, 0).is_none());
        assert_eq!(c.get(&d, 0).map(|t| t.wire[0]), Some(3));
        c.insert(&d, template(0, 60, 4));
        assert_eq!(c.get(&d, 0).map(|t| t.wire[0]), Some(4), "same key replaced in place");
        assert!(c.get(&a, 0).is_some());
    }

    #[test]
    fn lifetimes_are_limited_as_in_l2() {
        let cfg = CacheConfig { max_ttl: 100, max_negative_ttl: 10, ..CacheConfig::default() };
        let mut c = WorkerCache::new(64, &cfg);
        let (k, nx) = (key("a.", false), key("nx.", false));
        c.insert(&k, template(0, 86_400, 1));
        let mut t = (*template(0, 86_400, 2)).clone();
        t.wire[3] = 0x83; // NXDOMAIN
        c.insert(&nx, Arc::new(t));
        assert!(c.get(&k, 99_999).is_some());
        assert!(c.get(&k, 100_000).is_none(), "max_ttl");
        assert!(c.get(&nx, 9_999).is_some());
        assert!(c.get(&nx, 10_000).is_none(), "max_negative_ttl");
    }

    #[test]
    fn sync_clears_on_a_new_generation() {
        let mut c = WorkerCache::new(16, &CacheConfig::default());
        let k = key("a.", false);
        c.insert(&k, template(0, 60, 1));
        c.sync(0);
        assert!(c.get(&k, 0).is_some());
        c.sync(1);
        assert!(c.get(&k, 0).is_none());
    }
}
