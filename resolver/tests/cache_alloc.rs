//! The answer-cache hit path allocates nothing: building an [`L1Key`] from
//! the question bytes of a packet, an L1 hit, and the L2 lookup by the
//! same key, watched by a counting global allocator.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::str::FromStr;
use std::sync::Arc;

use meshdns_resolver::Question;
use meshdns_resolver::Security;
use meshdns_resolver::cache::{AnswerKey, AnswerLookup, Cache, CacheConfig, L1Key, WorkerCache};
use meshdns_resolver::proto::{Name, RecordType};
use meshdns_resolver::response::Template;

struct Counting;

thread_local! {
    // Per thread, so the test harness's own threads do not count.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn cache_hits_allocate_nothing() {
    let template = Arc::new(Template {
        wire: vec![0; 64].into(),
        ttl_offsets: vec![40].into(),
        opt_offset: None,
        stored_ms: 0,
        ttl: 300,
        security: Security::Insecure,
    });
    let key = AnswerKey {
        question: Question::new(&Name::from_str("www.example.com.").unwrap(), RecordType::A),
        dnssec_ok: true,
        checking_disabled: false,
    };
    let l2 = Cache::new(CacheConfig::default());
    l2.insert_answer(key.clone(), template.clone());
    let mut l1 = WorkerCache::new(4096, &CacheConfig::default());
    l1.insert(&L1Key::from_answer_key(&key).unwrap(), template);
    // The question as a client spelled it in its packet.
    let qname: &[u8] = b"\x03WwW\x07exAMPLE\x03com\x00";

    let before = allocations();
    let mut served = 0;
    for now in 0..1_000 {
        let k = L1Key::from_wire(qname, 1, 1, true, false).unwrap();
        served += l1.get(&k, now).map_or(0, |t| t.wire.len());
        if let AnswerLookup::Fresh(t) = l2.answer_l1(&k, now) {
            served += t.wire.len();
        }
    }
    let after = allocations();
    assert_eq!(served, 2 * 64 * 1_000, "every lookup hit");
    assert_eq!(after - before, 0, "allocations on the hit path");
    assert_eq!(l1.hits, 1_000);
}
