//! Faults: the plan (scheduled ones plus those drawn from the seed) and
//! how each is made and healed on the real network and processes.
//!
//! Network faults are nftables tables named `mc_f{index}` at priority -10
//! (before anything else), added to and deleted from the namespace they
//! act in. Traffic from and to the harness (`10.0.0.100`) is never
//! dropped: a cut-off node still takes writes, which must reach everyone
//! after the heal.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::cluster::{Cluster, ProcState};
use crate::netns::{self, CommandError};
use crate::scenario::{FaultKind, Scenario};
use crate::topology::{self, CLIENT_IP, parse_node, parse_region, parse_site, region_net, router_ns, site_net};

/// What a fault hits.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A node, by index.
    Node(usize),
    /// A site: (region, site).
    Site(usize, usize),
    /// A region.
    Region(usize),
    /// Every router.
    All,
}

/// One fault of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    /// Its number.
    pub index: usize,
    /// Start, seconds after the workload starts.
    pub at_s: f64,
    /// How long.
    pub duration_s: f64,
    /// What.
    pub kind: FaultKind,
    /// On what.
    pub target: Target,
    /// `loss`: percent dropped.
    pub loss_pct: u32,
    /// `clock_offset`: seconds.
    pub offset_s: i64,
}

/// The plan: the scenario's scheduled faults and `random_faults` drawn
/// from `seed`, by start time.
pub fn plan(sc: &Scenario, seed: u64) -> Vec<Planned> {
    let t = &sc.topology;
    let nodes = topology::nodes(t);
    let node_index = |r: usize, s: usize, k: usize| {
        nodes.iter().position(|n| (n.region, n.site, n.k) == (r, s, k)).unwrap_or_default()
    };
    let mut out = Vec::new();
    for f in &sc.faults {
        // Targets were checked when the scenario was read.
        let target = if let Some((r, s, k)) = f.node.as_deref().and_then(|n| parse_node(n, t)) {
            Target::Node(node_index(r, s, k))
        } else if let Some((r, s)) = f.site.as_deref().and_then(|s| parse_site(s, t)) {
            Target::Site(r, s)
        } else if let Some(r) = f.region.as_deref().and_then(|r| parse_region(r, t)) {
            Target::Region(r)
        } else {
            Target::All
        };
        out.push(Planned {
            index: 0,
            at_s: f.at_s,
            duration_s: f.duration_s,
            kind: f.kind,
            target,
            loss_pct: f.loss_pct.unwrap_or(0),
            offset_s: f.offset_s.unwrap_or(0),
        });
    }
    if let Some(r) = &sc.random_faults {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xFA17);
        let end = r.end_s.unwrap_or(sc.duration_s - r.max_s);
        // Per node, the spans of its process faults (with 5 s after each
        // for the restart): a node never has two at once.
        let mut busy: Vec<Vec<(f64, f64)>> = vec![Vec::new(); nodes.len()];
        for _ in 0..r.count {
            let kind = r.kinds[rng.random_range(0..r.kinds.len())];
            let at_s = rng.random_range(r.start_s..end);
            let duration_s = rng.random_range(r.min_s..=r.max_s);
            let span = (at_s, at_s + duration_s + 5.0);
            let free = |i: usize, busy: &[Vec<(f64, f64)>]| busy[i].iter().all(|&(a, b)| b <= span.0 || span.1 <= a);
            let target = match kind {
                FaultKind::Partition => match rng.random_range(0..10) {
                    0..5 => Target::Node(rng.random_range(0..nodes.len())),
                    5..8 => Target::Site(rng.random_range(0..t.regions), rng.random_range(0..t.sites_per_region)),
                    _ => Target::Region(rng.random_range(0..t.regions)),
                },
                FaultKind::Loss => {
                    if rng.random_bool(0.5) {
                        Target::Region(rng.random_range(0..t.regions))
                    } else {
                        Target::All
                    }
                }
                FaultKind::RestartSite => {
                    let (rr, ss) = (rng.random_range(0..t.regions), rng.random_range(0..t.sites_per_region));
                    let members: Vec<usize> =
                        nodes.iter().filter(|n| (n.region, n.site) == (rr, ss)).map(|n| n.index).collect();
                    if !members.iter().all(|&i| free(i, &busy)) {
                        continue;
                    }
                    for i in members {
                        busy[i].push(span);
                    }
                    Target::Site(rr, ss)
                }
                _ => {
                    let start = rng.random_range(0..nodes.len());
                    let Some(i) = (0..nodes.len()).map(|k| (start + k) % nodes.len()).find(|&i| free(i, &busy)) else {
                        continue;
                    };
                    busy[i].push(span);
                    Target::Node(i)
                }
            };
            let loss_pct = rng.random_range(5..=30);
            let offset_s = rng.random_range(5..=120) * if rng.random_bool(0.5) { 1 } else { -1 };
            out.push(Planned { index: 0, at_s, duration_s, kind, target, loss_pct, offset_s });
        }
    }
    out.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    for (i, f) in out.iter_mut().enumerate() {
        f.index = i;
    }
    out
}

impl Planned {
    /// Human-readable target.
    pub fn target_name(&self, cluster: &Cluster) -> String {
        match self.target {
            Target::Node(i) => cluster.nodes[i].name.clone(),
            Target::Site(r, s) => format!("r{r}s{s}"),
            Target::Region(r) => format!("r{r}"),
            Target::All => "all".into(),
        }
    }

    fn table(&self) -> String {
        format!("mc_f{}", self.index)
    }

    /// Namespaces the network rule goes into, and the rule's body.
    fn network_rules(&self, cluster: &Cluster, regions: usize) -> Vec<(String, String)> {
        let keep = format!("ip saddr {CLIENT_IP} accept\n ip daddr {CLIENT_IP} accept");
        let drop = if self.kind == FaultKind::Loss {
            format!("numgen random mod 100 < {} drop", self.loss_pct)
        } else {
            "drop".to_owned()
        };
        let forward = |match_: &str| {
            format!(
                "table inet {t} {{\n chain cut {{\n type filter hook forward priority -10; policy accept;\n {keep}\n {m}\n }}\n}}\n",
                t = self.table(),
                m = match_
            )
        };
        match self.target {
            Target::Node(i) => {
                // Only partitions target a node: everything but the
                // harness and loopback is dropped in the node's namespace.
                let body = format!(
                    "table inet {t} {{\n chain cut_in {{\n type filter hook input priority -10; policy accept;\n iif lo accept\n ip saddr {CLIENT_IP} accept\n drop\n }}\n chain cut_out {{\n type filter hook output priority -10; policy accept;\n oif lo accept\n ip daddr {CLIENT_IP} accept\n drop\n }}\n}}\n",
                    t = self.table()
                );
                vec![(cluster.nodes[i].netns(), body)]
            }
            // By subnet, not interface: with bridge netfilter, traffic
            // inside a site crosses the router's forward hook too.
            Target::Site(r, s) => {
                let net = site_net(r, s);
                let rule = format!("ip saddr {net} ip daddr != {net} {drop}\n ip daddr {net} ip saddr != {net} {drop}");
                vec![(router_ns(r), forward(&rule))]
            }
            Target::Region(r) => {
                let net = region_net(r);
                let rule = format!("ip saddr {net} ip daddr != {net} {drop}\n ip daddr {net} ip saddr != {net} {drop}");
                vec![(router_ns(r), forward(&rule))]
            }
            Target::All => (0..regions).map(|r| (router_ns(r), forward(&drop))).collect(),
        }
    }

    /// Nodes a process fault acts on.
    fn process_targets(&self, cluster: &Cluster) -> Vec<usize> {
        match self.target {
            Target::Node(i) => vec![i],
            Target::Site(r, s) => {
                cluster.nodes.iter().filter(|n| (n.region, n.site) == (r, s)).map(|n| n.index).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Makes the fault. Returns a note for the record.
    pub fn inject(&self, cluster: &mut Cluster, regions: usize) -> anyhow::Result<String> {
        match self.kind {
            FaultKind::Partition | FaultKind::Loss => {
                for (ns, body) in self.network_rules(cluster, regions) {
                    netns::nft(&ns, &body)?;
                }
                Ok(String::new())
            }
            FaultKind::Kill | FaultKind::RestartSite => {
                for i in self.process_targets(cluster) {
                    cluster.kill(i);
                }
                Ok(String::new())
            }
            FaultKind::Freeze => {
                for i in self.process_targets(cluster) {
                    cluster.freeze(i, true)?;
                }
                Ok(String::new())
            }
            FaultKind::DiskFull => {
                let mut filled = 0;
                for i in self.process_targets(cluster) {
                    filled += cluster.fill_disk(i)?;
                }
                Ok(format!("{} MiB filled", filled >> 20))
            }
            FaultKind::ClockOffset => {
                for i in self.process_targets(cluster) {
                    cluster.kill(i);
                    cluster.start(i, Some(self.offset_s))?;
                }
                Ok(format!("clock {:+} s", self.offset_s))
            }
        }
    }

    /// Undoes the fault.
    pub fn heal(&self, cluster: &mut Cluster, regions: usize) -> anyhow::Result<()> {
        match self.kind {
            FaultKind::Partition | FaultKind::Loss => {
                let mut first: Option<CommandError> = None;
                for (ns, _) in self.network_rules(cluster, regions) {
                    if let Err(e) =
                        netns::run(&["ip", "netns", "exec", &ns, "nft", "delete", "table", "inet", &self.table()])
                    {
                        first.get_or_insert(e);
                    }
                }
                first.map_or(Ok(()), |e| Err(e.into()))
            }
            // Only what is still down or frozen: healing twice (the final
            // heal after a failed runner) must not start a second process.
            FaultKind::Kill | FaultKind::RestartSite => {
                for i in self.process_targets(cluster) {
                    if cluster.state[i] == ProcState::Down {
                        cluster.start(i, None)?;
                    }
                }
                Ok(())
            }
            FaultKind::Freeze => {
                for i in self.process_targets(cluster) {
                    if cluster.state[i] == ProcState::Frozen {
                        cluster.freeze(i, false)?;
                    }
                }
                Ok(())
            }
            FaultKind::DiskFull => {
                for i in self.process_targets(cluster) {
                    cluster.free_disk(i)?;
                }
                Ok(())
            }
            FaultKind::ClockOffset => {
                for i in self.process_targets(cluster) {
                    cluster.kill(i);
                    cluster.start(i, None)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_a_function_of_the_seed_and_never_doubles_a_process_fault() {
        let text = "name = \"t\"\nduration_s = 600\n[topology]\nregions = 2\nsites_per_region = 2\nnodes_per_site = 2\n[random_faults]\ncount = 100\n";
        let sc = Scenario::parse(text, "t.toml").expect("valid");
        let a = plan(&sc, 7);
        let b = plan(&sc, 7);
        let c = plan(&sc, 8);
        let key =
            |p: &[Planned]| p.iter().map(|f| format!("{:.3}{:?}{:?}", f.at_s, f.kind, f.target)).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert!(a.len() >= 70, "most draws find a free target: {}", a.len());
        for kind in FaultKind::ALL {
            assert!(a.iter().any(|f| f.kind == kind), "{kind:?} drawn");
        }
        // No node has two process faults at once.
        let nodes = topology::nodes(&sc.topology);
        for n in &nodes {
            let mut spans: Vec<(f64, f64)> = a
                .iter()
                .filter(|f| f.kind.on_process())
                .filter(|f| match f.target {
                    Target::Node(i) => i == n.index,
                    Target::Site(r, s) => (n.region, n.site) == (r, s),
                    _ => false,
                })
                .map(|f| (f.at_s, f.at_s + f.duration_s))
                .collect();
            spans.sort_by(|x, y| x.0.total_cmp(&y.0));
            for w in spans.windows(2) {
                assert!(w[0].1 <= w[1].0, "{}: {:?} overlaps {:?}", n.name, w[0], w[1]);
            }
        }
    }
}
