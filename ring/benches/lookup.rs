//! Cost of a placement lookup: `cargo bench -p meshdns-ring`.
use meshdns_ring::{Member, Ring, Scope};

fn main() {
    divan::main();
}

fn ring(n: usize) -> Ring {
    Ring::new((0..n).map(|i| Member::new(format!("node-{i:05}"), format!("r{}", i % 5), format!("s{}", i % 50))))
}

#[divan::bench(args = [10, 100, 200, 1000, 10000])]
fn owner_global(bencher: divan::Bencher, n: usize) {
    let ring = ring(n);
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        divan::black_box(ring.owner(&i.to_le_bytes(), Scope::Global).map(|m| m.id.len()))
    });
}

#[divan::bench(args = [10, 100, 200, 1000])]
fn owners_3_in_a_site(bencher: divan::Bencher, n: usize) {
    let ring = ring(n);
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        divan::black_box(ring.owners(&i.to_le_bytes(), 3, Scope::Site { region: "r1", site: "s1" }).len())
    });
}
