//! Why placement is rendezvous and not jump hash over the sorted members:
//! the measurement behind the crate docs. Run with `--nocapture` to see it.
#![allow(clippy::unwrap_used)]

use meshdns_ring::{Member, Ring, Scope};

fn jump_owner<'a>(key: &[u8], sorted: &'a [String]) -> &'a str {
    let h = xxhash_rust_free_hash(key);
    &sorted[jump_consistent_hash::hash(h, sorted.len()) as usize]
}

/// FNV-1a, so this test needs no hashing crate of its own.
fn xxhash_rust_free_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn a_middle_leave_moves_about_half_the_keys_under_jump_and_1_over_n_under_rendezvous() {
    for n in [20usize, 50, 200] {
        let ids: Vec<String> = (0..n).map(|i| format!("node-{i:04}")).collect();
        let gone = ids[n / 2].clone();
        let survivors: Vec<String> = ids.iter().filter(|id| **id != gone).cloned().collect();
        let keys: Vec<Vec<u8>> = (0..20_000).map(|i| format!("key-{i}").into_bytes()).collect();

        let jump_moved = keys.iter().filter(|k| jump_owner(k, &ids) != jump_owner(k, &survivors)).count();
        let ring = Ring::new(ids.iter().map(|id| Member::new(id.clone(), "r", "s")));
        let after = ring.without(&gone);
        let hrw_moved = keys
            .iter()
            .filter(|k| ring.owner(k, Scope::Global).unwrap().id != after.owner(k, Scope::Global).unwrap().id)
            .count();
        let (jump, hrw) = (jump_moved as f64 / keys.len() as f64, hrw_moved as f64 / keys.len() as f64);
        println!(
            "{n} members, middle leave: jump over sorted members moved {:.1}%, rendezvous {:.1}% (1/N = {:.1}%)",
            jump * 100.0,
            hrw * 100.0,
            100.0 / n as f64
        );
        assert!(jump > 0.3, "jump moved only {jump:.3}");
        assert!(hrw <= 1.0 / n as f64 + 0.02);
    }
}
