//! The push tree reaches every member whatever the arrival order, with a
//! bounded number of messages; the pull graph connects the whole cluster.
//! Topologies are random; representatives come from the mesh's own rules.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet, VecDeque};

use meshdns_mesh::tier::{TierConfig, region_representatives, site_representatives};
use meshdns_replication::sync::{Hop, Jitter, Peer, pulls_from, push_targets};
use meshdns_ring::{Member, Ring};
use proptest::prelude::*;

fn topology(sizes: &[Vec<usize>], cfg: &TierConfig) -> Vec<Peer> {
    let mut members = Vec::new();
    for (r, sites) in sizes.iter().enumerate() {
        for (s, &n) in sites.iter().enumerate() {
            for i in 0..n {
                members.push(Member::new(format!("r{r}s{s}n{i}"), format!("r{r}"), format!("s{s}")));
            }
        }
    }
    let ring = Ring::new(members.clone());
    let site_reps = site_representatives(&ring, cfg);
    let region_reps = region_representatives(&ring, cfg);
    members
        .into_iter()
        .map(|m| Peer {
            region_rep: site_reps.contains(&m.id),
            global_rep: region_reps.contains(&m.id),
            id: m.id,
            region: m.region,
            site: m.site,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_member_gets_a_pushed_write_in_any_order(
        sizes in proptest::collection::vec(proptest::collection::vec(1usize..8, 1..4), 1..4),
        site_k in 1usize..3,
        region_k in 1usize..3,
        origin in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let cfg = TierConfig { site_representatives: site_k, region_representatives: region_k };
        let peers = topology(&sizes, &cfg);
        let by_id = |id: &str| peers.iter().find(|p| p.id == id).unwrap();
        let writer = origin.get(&peers);
        let mut got: BTreeSet<String> = BTreeSet::from([writer.id.clone()]);
        let mut forwarded: HashSet<(String, Hop)> = HashSet::new();
        let mut queue: VecDeque<(String, Hop)> = push_targets(writer, &peers, Hop::Local).into_iter().collect();
        let mut jitter = Jitter::new(seed);
        let mut messages = queue.len();
        while !queue.is_empty() {
            // Deliver in a random order.
            let i = jitter.below(queue.len() as u64) as usize;
            let (to, hop) = queue.remove(i).unwrap();
            got.insert(to.clone());
            if forwarded.insert((to.clone(), hop)) {
                let next = push_targets(by_id(&to), &peers, hop);
                messages += next.len();
                queue.extend(next);
            }
        }
        let all: BTreeSet<String> = peers.iter().map(|p| p.id.clone()).collect();
        prop_assert_eq!(&got, &all, "every member receives the write");
        let n = peers.len();
        prop_assert!(messages <= 6 * n * (1 + site_k.max(region_k)), "{} messages for {} members", messages, n);
    }

    #[test]
    fn the_pull_graph_connects_every_member(
        sizes in proptest::collection::vec(proptest::collection::vec(1usize..8, 1..4), 1..4),
        site_k in 1usize..3,
        region_k in 1usize..3,
    ) {
        let cfg = TierConfig { site_representatives: site_k, region_representatives: region_k };
        let peers = topology(&sizes, &cfg);
        // Anti-entropy flows both ways along an edge (either side pulls), so
        // connectivity of the undirected graph is what repairs everything.
        let mut seen = BTreeSet::from([peers[0].id.clone()]);
        let mut queue = vec![peers[0].clone()];
        while let Some(p) = queue.pop() {
            for q in &peers {
                if (pulls_from(&p, q) || pulls_from(q, &p)) && seen.insert(q.id.clone()) {
                    queue.push(q.clone());
                }
            }
        }
        prop_assert_eq!(seen.len(), peers.len());
    }
}
