use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use proptest::prelude::*;

use super::*;
use crate::cache::{Rank, WorkerCache};
use crate::types::Security;

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn rrset(owner: &str, rank: Rank, last_octet: u8) -> RrsetEntry {
    let rec = Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, last_octet))));
    RrsetEntry { records: vec![rec], rrsigs: vec![], security: Security::Insecure, rank }
}

fn cfg() -> CacheConfig {
    CacheConfig {
        max_bytes: 1 << 20,
        min_ttl: 5,
        max_ttl: 3_600,
        max_negative_ttl: 900,
        max_stale: 100,
        ..Default::default()
    }
}

/// A template whose header says NOERROR with `ancount` answers (or the
/// rcode given), `extra` bytes long after the header.
fn template(stored_ms: Millis, ttl: u32, rcode: u8, ancount: u16, extra: usize) -> Arc<Template> {
    let mut wire = vec![0, 0, 0x81, 0x80 | rcode, 0, 1];
    wire.extend_from_slice(&ancount.to_be_bytes());
    wire.extend_from_slice(&[0, 0, 0, 0]);
    wire.resize(12 + extra, 0);
    Arc::new(Template {
        wire: wire.into(),
        ttl_offsets: Box::new([]),
        opt_offset: None,
        stored_ms,
        ttl,
        security: Security::Insecure,
    })
}

fn akey(n: &str) -> AnswerKey {
    AnswerKey { question: Question::new(&name(n), RecordType::A), dnssec_ok: false, checking_disabled: false }
}

#[test]
fn rrsets_clamp_expire_and_serve_stale() {
    let c = Cache::new(cfg());
    let n = name("WWW.example.");
    c.insert_rrset(&n, RecordType::A, rrset("www.example.", Rank::Answer, 1), 1, 0);
    let hit = c.rrset(&name("www.example."), RecordType::A, 1_000).unwrap_or_else(|| panic!("hit"));
    assert_eq!(hit.ttl_left, 4, "clamped up to min_ttl 5, 1 s gone");
    assert!(!hit.stale);
    assert_eq!(hit.records_with_ttl()[0].ttl(), 4);
    assert!(c.rrset(&n, RecordType::AAAA, 1_000).is_none());
    assert!(c.rrset(&n, RecordType::A, 5_000).is_none(), "expired");
    let stale = c.rrset_stale(&n, RecordType::A, 5_000).unwrap_or_else(|| panic!("stale"));
    assert!(stale.stale);
    assert_eq!(stale.ttl_left, 0);
    assert!(c.rrset_stale(&n, RecordType::A, 104_999).is_some());
    assert!(c.rrset_stale(&n, RecordType::A, 105_000).is_none(), "past max_stale");
    c.insert_rrset(&n, RecordType::MX, rrset("www.example.", Rank::Answer, 1), 1_000_000, 0);
    assert_eq!(c.rrset(&n, RecordType::MX, 0).map(|r| r.ttl_left), Some(3_600), "clamped to max_ttl");
    let s = c.stats();
    assert_eq!((s.rrset_hits, s.rrset_misses, s.rrset_stale), (2, 2, 2));
}

#[test]
fn lower_rank_never_replaces_live_higher_rank() {
    let c = Cache::new(cfg());
    let n = name("ns.example.");
    c.insert_rrset(&n, RecordType::A, rrset("ns.example.", Rank::AuthoritativeAnswer, 1), 60, 0);
    c.insert_rrset(&n, RecordType::A, rrset("ns.example.", Rank::Additional, 2), 60, 1_000);
    let got = |now| c.rrset_stale(&n, RecordType::A, now).map(|r| r.entry.rank);
    assert_eq!(got(2_000), Some(Rank::AuthoritativeAnswer));
    c.insert_rrset(&n, RecordType::A, rrset("ns.example.", Rank::Additional, 2), 60, 61_000);
    assert_eq!(got(61_000), Some(Rank::Additional), "the old one had expired");
    c.insert_rrset(&n, RecordType::A, rrset("ns.example.", Rank::Answer, 3), 60, 62_000);
    assert_eq!(got(62_000), Some(Rank::Answer), "a higher rank replaces");
}

#[test]
fn negative_answers_nxdomain_covers_every_type() {
    let c = Cache::new(cfg());
    let nx = Question::new(&name("gone.example."), RecordType::A);
    let entry = |nxdomain| NegativeEntry { nxdomain, authority: vec![], security: Security::Insecure };
    c.insert_negative(&nx, entry(true), 10_000, 0);
    let hit = c.negative(&Question::new(&name("gone.example."), RecordType::TXT), 0).unwrap_or_else(|| panic!("nx"));
    assert_eq!(hit.ttl_left, 900, "capped at max_negative_ttl");
    let nodata = Question::new(&name("here.example."), RecordType::AAAA);
    c.insert_negative(&nodata, entry(false), 60, 0);
    assert!(c.negative(&nodata, 59_000).is_some());
    assert!(c.negative(&Question::new(&name("here.example."), RecordType::A), 0).is_none(), "NODATA is per type");
    assert!(c.negative(&nodata, 60_000).is_none());
    let s = c.stats();
    assert_eq!((s.negative_hits, s.negative_misses), (2, 2));
}

#[test]
fn answers_fresh_stale_miss_and_caps() {
    let c = Cache::new(cfg());
    c.insert_answer(akey("a.example."), template(10_000, 60, 0, 1, 20));
    assert!(matches!(c.answer(&akey("A.Example."), 69_999), AnswerLookup::Fresh(_)));
    assert!(matches!(c.answer(&akey("a.example."), 70_000), AnswerLookup::Stale(_)));
    assert!(matches!(c.answer(&akey("a.example."), 170_000), AnswerLookup::Miss));
    // NXDOMAIN template: its lifetime is capped by max_negative_ttl.
    c.insert_answer(akey("nx.example."), template(0, 86_400, 3, 0, 0));
    assert!(matches!(c.answer(&akey("nx.example."), 899_999), AnswerLookup::Fresh(_)));
    assert!(matches!(c.answer(&akey("nx.example."), 900_000), AnswerLookup::Stale(_)));
    let mut dnssec = akey("a.example.");
    dnssec.dnssec_ok = true;
    assert!(matches!(c.answer(&dnssec, 10_000), AnswerLookup::Miss), "DO is part of the key");
    let s = c.stats();
    assert_eq!((s.answer_hits, s.answer_misses, s.answer_stale), (2, 4, 2));
}

#[test]
fn l1_keys_find_l2_answers_and_promote() {
    let c = Cache::new(cfg());
    c.insert_answer(akey("x.example."), template(0, 60, 0, 1, 4));
    let k = L1Key::from_wire(b"\x01X\x07example\x00", 1, 1, false, false).unwrap_or_else(|| panic!("key"));
    let AnswerLookup::Fresh(t) = c.answer_l1(&k, 1_000) else { panic!("L2 hit by raw key") };
    let mut l1 = WorkerCache::new(16, &cfg());
    l1.insert(&k, t);
    assert!(l1.get(&k, 1_000).is_some());
    assert_eq!(k.to_answer_key(), Some(akey("x.example.")));
}

#[test]
fn prefetch_once_in_the_last_tenth_after_a_hit() {
    let c = Cache::new(cfg());
    let k = akey("p.example.");
    c.insert_answer(k.clone(), template(0, 100, 0, 1, 0));
    assert!(!c.should_prefetch(&k, 95_000), "never hit");
    assert!(matches!(c.answer(&k, 50_000), AnswerLookup::Fresh(_)));
    assert!(!c.should_prefetch(&k, 90_000), "10 s left of 100: not yet");
    assert!(c.should_prefetch(&k, 90_001));
    assert!(!c.should_prefetch(&k, 95_000), "once per lifetime");
    assert!(!c.should_prefetch(&akey("other.example."), 95_000));
    c.insert_answer(k.clone(), template(95_000, 100, 0, 1, 0));
    assert!(matches!(c.answer(&k, 100_000), AnswerLookup::Fresh(_)));
    assert!(c.should_prefetch(&k, 186_000), "a new lifetime prefetches again");
    assert!(!c.should_prefetch(&k, 196_000), "expired: no prefetch");
}

#[test]
fn flush_removes_the_name_and_below_only() {
    let c = Cache::new(cfg());
    for n in ["example.", "www.example.", "a.b.example.", "notexample.", "example.org."] {
        c.insert_rrset(&name(n), RecordType::A, rrset(n, Rank::Answer, 1), 60, 0);
        c.insert_answer(akey(n), template(0, 60, 0, 1, 0));
    }
    c.insert_negative(&Question::new(&name("nx.example."), RecordType::A), negative(), 60, 0);
    let g = c.generation();
    assert_eq!(c.flush(Some(&name("Example."))), 7);
    assert!(c.generation() > g);
    assert!(c.rrset(&name("www.example."), RecordType::A, 0).is_none());
    assert!(c.rrset(&name("notexample."), RecordType::A, 0).is_some());
    assert!(c.rrset(&name("example.org."), RecordType::A, 0).is_some());
    assert_eq!(c.stats().entries, 4);
    assert_eq!(c.flush(None), 4);
    assert_eq!((c.stats().entries, c.stats().bytes), (0, 0));
}

#[test]
fn stale_negative_answers_for_failed_resolutions() {
    let c = Cache::new(cfg());
    let q = Question::new(&name("nx.example."), RecordType::A);
    c.insert_negative(&q, negative(), 60, 0);
    let other_type = Question::new(&name("nx.example."), RecordType::MX);
    assert_eq!(c.negative_stale(&other_type, 1_000).map(|(n, s)| (n.ttl_left, s)), Some((59, false)));
    assert_eq!(c.negative_stale(&q, 60_000).map(|(n, s)| (n.ttl_left, s)), Some((0, true)));
    assert!(c.negative(&q, 60_000).is_none());
    assert!(c.negative_stale(&q, 160_000).is_none(), "past max_stale");
}

#[test]
fn shared_between_threads_the_bound_holds() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Cache>();
    let c = Cache::new(CacheConfig { max_bytes: 256 << 10, shards: 8, ..cfg() });
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = &c;
            s.spawn(move || {
                for i in 0..2_000u32 {
                    let k = akey(&format!("n{}.example.", (i * 7 + t) % 1_500));
                    if matches!(c.answer(&k, 0), AnswerLookup::Miss) {
                        c.insert_answer(k, template(0, 60, 0, 1, 50));
                    }
                }
            });
        }
    });
    let s = c.stats();
    assert!(s.bytes <= 256 << 10, "{}", s.bytes);
    assert_eq!(s.answer_hits + s.answer_misses, 8_000);
    assert!(s.answer_hits > 0);
}

fn negative() -> NegativeEntry {
    NegativeEntry { nxdomain: true, authority: vec![], security: Security::Secure }
}

#[test]
fn dump_lists_every_live_entry() {
    let c = Cache::new(cfg());
    c.insert_rrset(&name("www.example."), RecordType::A, rrset("www.example.", Rank::Answer, 7), 60, 0);
    c.insert_negative(&Question::new(&name("nx.example."), RecordType::A), negative(), 60, 0);
    c.insert_answer(akey("www.example."), template(0, 60, 0, 1, 0));
    c.insert_answer(akey("old.example."), template(0, 1, 0, 1, 0));
    let lines = c.dump(30_000);
    assert_eq!(
        lines,
        vec![
            "; answer old.example. IN A do=0 cd=0 ttl=0 bytes=12 security=Insecure stale".to_owned(),
            "; answer www.example. IN A do=0 cd=0 ttl=30 bytes=12 security=Insecure".to_owned(),
            "; negative nx.example. IN * NXDOMAIN ttl=30 security=Secure".to_owned(),
            "www.example. 30 IN A 192.0.2.7 ; rank=Answer security=Insecure".to_owned(),
        ]
    );
    assert_eq!(c.dump(200_000).len(), 0, "all dead");
    assert_eq!(c.purge(200_000), 4);
}

#[test]
fn answers_for_disk_are_live_and_hottest_first() {
    let c = Cache::new(CacheConfig { shards: 1, ..cfg() });
    for n in ["cold.example.", "hot.example.", "warm.example."] {
        c.insert_answer(akey(n), template(0, 60, 0, 1, 0));
    }
    c.insert_answer(akey("dead.example."), template(0, 1, 0, 1, 0));
    for _ in 0..3 {
        c.answer(&akey("hot.example."), 0);
    }
    c.answer(&akey("warm.example."), 0);
    let got: Vec<String> = c.answers_for_disk(6_000).into_iter().map(|(k, _)| k.question.name.to_string()).collect();
    assert_eq!(got, ["hot.example.", "warm.example.", "cold.example."]);
}

#[test]
fn the_byte_bound_holds_and_evictions_are_counted() {
    let c = Cache::new(CacheConfig { max_bytes: 64 << 10, shards: 4, ..cfg() });
    for i in 0..5_000 {
        c.insert_answer(akey(&format!("n{i}.example.")), template(0, 60, 0, 1, 100 + i % 300));
    }
    let s = c.stats();
    assert!(s.bytes <= 64 << 10, "{}", s.bytes);
    assert!(s.entries > 50, "{}", s.entries);
    assert_eq!(s.evictions, 5_000 - s.entries);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Scan resistance: answers hit a few times survive any flood of
    /// names asked once, and the byte bound holds throughout.
    #[test]
    fn a_flood_of_one_hit_names_never_evicts_hot_entries(
        hot in 1usize..16,
        hits in 1usize..6,
        flood in 200usize..3_000,
        sizes in proptest::collection::vec(0usize..400, 1..50),
        seed in any::<u32>(),
    ) {
        let max_bytes = 200_000;
        let c = Cache::new(CacheConfig { max_bytes, shards: 4, ..cfg() });
        let hot_keys: Vec<AnswerKey> = (0..hot).map(|i| akey(&format!("hot{i}.{seed}.example."))).collect();
        for (i, k) in hot_keys.iter().enumerate() {
            c.insert_answer(k.clone(), template(0, 3_600, 0, 1, sizes[i % sizes.len()]));
            for _ in 0..hits {
                prop_assert!(matches!(c.answer(k, 0), AnswerLookup::Fresh(_)));
            }
        }
        for i in 0..flood {
            let k = akey(&format!("r{i}-{seed}.flood.example."));
            c.insert_answer(k, template(0, 3_600, 0, 1, sizes[i % sizes.len()]));
            if i % 64 == 0 {
                prop_assert!(c.stats().bytes <= max_bytes as u64);
            }
        }
        prop_assert!(c.stats().bytes <= max_bytes as u64);
        for k in &hot_keys {
            prop_assert!(matches!(c.answer(k, 1_000), AnswerLookup::Fresh(_)), "{} evicted", k.question);
        }
    }
}
