//! Placement properties the mesh relies on.
#![allow(clippy::unwrap_used)]

use meshdns_ring::{Member, Ring, Scope};
use proptest::prelude::*;

fn members(ids: &[String]) -> Vec<Member> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Member::new(id.clone(), format!("r{}", i % 3), format!("s{}", i % 5)))
        .collect()
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key-{i}").into_bytes()).collect()
}

/// Balance at 1,000 keys per member: max/mean ≤ 1.10. Deterministic member
/// names, so the figures are reproducible; they are printed with `--nocapture`.
#[test]
fn balance_max_over_mean_is_at_most_1_10_at_1000_keys_per_member() {
    for n in [3usize, 10, 30, 100] {
        let ids: Vec<String> = (0..n).map(|i| format!("node-{i:04}.fra1.eu")).collect();
        let ring = Ring::new(members(&ids));
        let mut counts = std::collections::BTreeMap::new();
        for k in keys(1000 * n) {
            *counts.entry(ring.owner(&k, Scope::Global).unwrap().id.clone()).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), n, "every member owns keys");
        let max = *counts.values().max().unwrap() as f64;
        let ratio = max / 1000.0;
        println!("members {n}: max/mean {ratio:.3}");
        assert!(ratio <= 1.10, "members {n}: max/mean {ratio:.3}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A leave moves exactly the keys the leaver owned (≤ 1/N + 2 points).
    #[test]
    fn a_leave_moves_only_the_leavers_keys(
        ids in proptest::collection::btree_set("[a-z0-9]{1,12}", 2..120),
        pick in any::<prop::sample::Index>(),
    ) {
        let ids: Vec<String> = ids.into_iter().collect();
        let before = Ring::new(members(&ids));
        let gone = pick.get(&ids).clone();
        let after = before.without(&gone);
        let ks = keys(5000);
        let mut moved = 0;
        for k in &ks {
            let (a, b) = (before.owner(k, Scope::Global).unwrap(), after.owner(k, Scope::Global).unwrap());
            if a.id != b.id {
                prop_assert_eq!(&a.id, &gone, "a key moved that the leaver did not own");
                moved += 1;
            }
        }
        let fraction = moved as f64 / ks.len() as f64;
        prop_assert!(fraction <= 1.0 / ids.len() as f64 + 0.02, "moved {fraction:.3} with {} members", ids.len());
    }

    /// A join moves exactly the keys the joiner wins (≤ 1/(N+1) + 2 points).
    #[test]
    fn a_join_moves_only_keys_to_the_joiner(
        ids in proptest::collection::btree_set("[a-z0-9]{1,12}", 1..120),
        newcomer in "[A-Z]{3,8}",
    ) {
        let ids: Vec<String> = ids.into_iter().collect();
        let before = Ring::new(members(&ids));
        let after = before.with(Member::new(newcomer.clone(), "r0", "s0"));
        let ks = keys(5000);
        let mut moved = 0;
        for k in &ks {
            let (a, b) = (before.owner(k, Scope::Global).unwrap(), after.owner(k, Scope::Global).unwrap());
            if a.id != b.id {
                prop_assert_eq!(&b.id, &newcomer);
                moved += 1;
            }
        }
        let fraction = moved as f64 / ks.len() as f64;
        prop_assert!(fraction <= 1.0 / (ids.len() + 1) as f64 + 0.02, "moved {fraction:.3}");
    }

    /// Every node computes the same owners from the same set, whatever the
    /// order it learned the members in.
    #[test]
    fn owners_depend_only_on_the_member_set(
        ids in proptest::collection::btree_set("[a-z0-9]{1,12}", 1..60),
        seed in any::<u64>(),
        n in 1usize..5,
    ) {
        let ids: Vec<String> = ids.into_iter().collect();
        let mut shuffled = members(&ids);
        // Deterministic shuffle from the seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let (a, b) = (Ring::new(members(&ids)), Ring::new(shuffled));
        for k in keys(200) {
            for scope in [Scope::Global, Scope::Region("r1"), Scope::Site { region: "r2", site: "s2" }] {
                prop_assert_eq!(a.owners(&k, n, scope), b.owners(&k, n, scope));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Representatives are stable: removing a non-representative changes
    /// nothing; removing a representative replaces it with exactly one
    /// other member of the scope while the rest stay.
    #[test]
    fn representatives_change_only_when_one_leaves(
        ids in proptest::collection::btree_set("[a-z0-9]{1,10}", 3..80),
        k in 1usize..4,
        pick in any::<prop::sample::Index>(),
    ) {
        let ids: Vec<String> = ids.into_iter().collect();
        let ring = Ring::new(members(&ids));
        let scope = Scope::Site { region: "r0", site: "s0" };
        let before: Vec<String> = ring.representatives(scope, k).iter().map(|m| m.id.clone()).collect();
        let in_scope: Vec<&Member> = ring.members().filter(|m| m.region == "r0" && m.site == "s0").collect();
        prop_assert_eq!(before.len(), k.min(in_scope.len()));
        let gone = pick.get(&ids).clone();
        let after: Vec<String> = ring.without(&gone).representatives(scope, k).iter().map(|m| m.id.clone()).collect();
        if before.contains(&gone) {
            let kept: Vec<&String> = before.iter().filter(|id| **id != gone).collect();
            prop_assert!(kept.iter().all(|id| after.contains(id)), "a surviving representative lost its role");
            prop_assert!(after.len() >= kept.len() && after.len() <= kept.len() + 1);
        } else {
            prop_assert_eq!(before, after);
        }
    }
}
