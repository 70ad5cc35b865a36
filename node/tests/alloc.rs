//! The authoritative UDP path allocates nothing per query: a counting global
//! allocator watches `answer` over every kind of answer (hit, CNAME chain,
//! wildcard, DNAME, referral with glue, NXDOMAIN, NODATA, TC, FORMERR,
//! REFUSED), run over the same zone set and buffers the UDP workers use.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{plain_query, query};
use hickory_proto::rr::RecordType;
use meshdns::dns::auth::{AnswerConfig, Transport, answer};
use meshdns::zone::store::ZoneStore;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
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

#[test]
fn answering_allocates_nothing_per_query() {
    let zones = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/semantics.test.zone"),
        zones.path().join("semantics.test.zone"),
    )
    .unwrap();
    let store = ZoneStore::new(zones.path(), data.path());
    assert_eq!(store.reload().unwrap().failures(), 0);

    let mut queries: Vec<Vec<u8>> = [
        ("web.semantics.test.", RecordType::A),
        ("WWW.semantics.test.", RecordType::AAAA),
        ("chain1.semantics.test.", RecordType::A),
        ("host3.semantics.test.", RecordType::MX),
        ("any.cn.semantics.test.", RecordType::A),
        ("x.dn.semantics.test.", RecordType::A),
        ("deep.below.subdel.semantics.test.", RecordType::A),
        ("zz.host1.semantics.test.", RecordType::A),
        ("web.semantics.test.", RecordType::MX),
        ("semantics.test.", RecordType::MX),
        ("semantics.test.", RecordType::ANY),
        ("example.org.", RecordType::A),
    ]
    .iter()
    .map(|(n, t)| query(n, *t).to_vec().unwrap())
    .collect();
    queries.push(plain_query("big.semantics.test.", RecordType::TXT).to_vec().unwrap());
    let mut formerr = queries[0].clone();
    formerr.truncate(20);
    queries.push(formerr);

    let cfg = AnswerConfig::default();
    let mut out = vec![0u8; 65535];
    // Warm up (first-touch work such as arc-swap's thread-local slots).
    for q in &queries {
        answer(q, &store.current(), &mut out, Transport::Udp, &cfg);
    }
    let mut answered = 0;
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        for q in &queries {
            let zones = store.current();
            if answer(q, &zones, &mut out, Transport::Udp, &cfg).is_some() {
                answered += 1;
            }
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    // Control: the counter does see an allocation.
    COUNTING.store(true, Ordering::SeqCst);
    let control = std::hint::black_box(vec![0u8; 64]);
    COUNTING.store(false, Ordering::SeqCst);
    drop(control);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), allocations + 1, "the counting allocator is not counting");
    assert_eq!(answered, 1000 * queries.len());
    assert_eq!(allocations, 0, "{allocations} allocations over {answered} answers");
}
