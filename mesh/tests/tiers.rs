//! Tier plans over random topologies.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use meshdns_mesh::tier::{Pool, TierConfig, plan, region_representatives, site_representatives};
use meshdns_ring::{Member, Ring};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every site sends min(k, its size) members to its region pool, every
    /// region min(k, its site representatives) to the global pool, and the
    /// pools each node plans for itself add up to exactly those sets.
    #[test]
    fn each_tier_gets_exactly_its_representatives(
        sizes in proptest::collection::vec(proptest::collection::vec(1usize..7, 1..4), 1..4),
        site_k in 1usize..4,
        region_k in 1usize..4,
    ) {
        let mut members = Vec::new();
        for (r, sites) in sizes.iter().enumerate() {
            for (s, &n) in sites.iter().enumerate() {
                for i in 0..n {
                    members.push(Member::new(format!("r{r}s{s}n{i}"), format!("r{r}"), format!("s{s}")));
                }
            }
        }
        let view = Ring::new(members.clone());
        let cfg = TierConfig { site_representatives: site_k, region_representatives: region_k };
        let site_reps = site_representatives(&view, &cfg);
        let expected_site: usize = sizes.iter().flatten().map(|&n| n.min(site_k)).sum();
        prop_assert_eq!(site_reps.len(), expected_site);
        let region_reps = region_representatives(&view, &cfg);
        let expected_region: usize = sizes.iter().map(|sites| sites.iter().map(|&n| n.min(site_k)).sum::<usize>().min(region_k)).sum();
        prop_assert_eq!(region_reps.len(), expected_region);

        let mut in_pool: BTreeMap<Pool, BTreeSet<String>> = BTreeMap::new();
        for m in &members {
            for p in plan(m, &view, &cfg) {
                in_pool.entry(p).or_default().insert(m.id.clone());
            }
        }
        let regional: BTreeSet<String> = in_pool.iter().filter(|(p, _)| matches!(p, Pool::Region(_))).flat_map(|(_, ids)| ids.clone()).collect();
        prop_assert_eq!(regional, site_reps);
        prop_assert_eq!(in_pool.get(&Pool::Global).cloned().unwrap_or_default(), region_reps);
    }
}
