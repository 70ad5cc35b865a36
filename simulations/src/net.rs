//! The virtual network: who is where, what a datagram costs between two
//! nodes, and which partitions are in force.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::RngExt;
use rand::rngs::StdRng;

use crate::scenario::{Link, Network, Topology};

/// How far apart two nodes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// The same node.
    Local,
    /// Same site.
    Site,
    /// Same region, other site.
    Region,
    /// Other region.
    Global,
}

/// Where one node sits.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    /// Region index.
    pub region: usize,
    /// Site index within the region.
    pub site: usize,
}

/// The gossip port of a node's site pool; region and global pools use the
/// next two (as the node does).
pub const GOSSIP_PORT: u16 = 7946;

/// The topology and the links, with partitions.
#[derive(Debug)]
pub struct Net {
    topo: Topology,
    links: Network,
    /// A cut-off group: nodes inside cannot reach nodes outside.
    cuts: Vec<(usize, Option<usize>)>,
}

impl Net {
    /// A network for `topo` with `links`.
    pub fn new(topo: Topology, links: Network) -> Net {
        Net { topo, links, cuts: Vec::new() }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.topo.nodes()
    }

    /// Where node `i` is.
    pub fn place(&self, i: usize) -> Place {
        let per_region = self.topo.sites_per_region * self.topo.nodes_per_site;
        Place { region: i / per_region, site: (i % per_region) / self.topo.nodes_per_site }
    }

    /// Global site number of node `i`.
    pub fn site_index(&self, i: usize) -> usize {
        i / self.topo.nodes_per_site
    }

    /// The first node of the site of node `i`.
    pub fn site_start(&self, i: usize) -> usize {
        self.site_index(i) * self.topo.nodes_per_site
    }

    /// Node id as the mesh sees it.
    pub fn id(&self, i: usize) -> String {
        let p = self.place(i);
        format!("r{}-s{}-n{}", p.region, p.site, i % self.topo.nodes_per_site)
    }

    /// The node named `id` (`r{region}-s{site}-n{node}`).
    pub fn index_of(&self, id: &str) -> Option<usize> {
        let mut parts = id.split('-');
        let r: usize = parts.next()?.strip_prefix('r')?.parse().ok()?;
        let s: usize = parts.next()?.strip_prefix('s')?.parse().ok()?;
        let n: usize = parts.next()?.strip_prefix('n')?.parse().ok()?;
        let t = &self.topo;
        (r < t.regions && s < t.sites_per_region && n < t.nodes_per_site)
            .then(|| (r * t.sites_per_region + s) * t.nodes_per_site + n)
    }

    /// Region name.
    pub fn region_name(r: usize) -> String {
        format!("r{r}")
    }

    /// Site name.
    pub fn site_name(s: usize) -> String {
        format!("s{s}")
    }

    /// The node's address (10.0.0.0/8, one per node).
    pub fn ip(i: usize) -> IpAddr {
        let n = u32::try_from(i).unwrap_or(u32::MAX - 1).saturating_add(1);
        IpAddr::V4(Ipv4Addr::from(0x0A00_0000u32.saturating_add(n)))
    }

    /// The node whose address is `addr`.
    pub fn node_of(&self, addr: SocketAddr) -> Option<usize> {
        let IpAddr::V4(v4) = addr.ip() else { return None };
        let n = u32::from(v4).checked_sub(0x0A00_0001)? as usize;
        (n < self.nodes()).then_some(n)
    }

    /// How far apart `a` and `b` are.
    pub fn tier(&self, a: usize, b: usize) -> Tier {
        let (pa, pb) = (self.place(a), self.place(b));
        if a == b {
            Tier::Local
        } else if pa.region != pb.region {
            Tier::Global
        } else if pa.site != pb.site {
            Tier::Region
        } else {
            Tier::Site
        }
    }

    fn link(&self, tier: Tier) -> Option<&Link> {
        match tier {
            Tier::Local => None,
            Tier::Site => Some(&self.links.site),
            Tier::Region => Some(&self.links.region),
            Tier::Global => Some(&self.links.global),
        }
    }

    /// Cuts a region (or one of its sites) off from everything else.
    pub fn cut(&mut self, region: usize, site: Option<usize>) {
        self.cuts.push((region, site));
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    /// Whether any partition is in force.
    pub fn partitioned(&self) -> bool {
        !self.cuts.is_empty()
    }

    fn inside(&self, i: usize, cut: (usize, Option<usize>)) -> bool {
        let p = self.place(i);
        p.region == cut.0 && cut.1.is_none_or(|s| s == p.site)
    }

    /// Whether `a` can reach `b` now.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.cuts.iter().all(|&c| self.inside(a, c) == self.inside(b, c))
    }

    /// One-way delay of a datagram of `bytes` from `a` to `b`, in µs, or
    /// `None` when it is lost or cannot get through.
    pub fn datagram(&self, rng: &mut StdRng, a: usize, b: usize, bytes: usize) -> Option<u64> {
        if !self.reachable(a, b) {
            return None;
        }
        let Some(l) = self.link(self.tier(a, b)) else { return Some(1) };
        if l.loss > 0.0 && rng.random::<f64>() < l.loss {
            return None;
        }
        Some(self.delay(rng, l, bytes))
    }

    /// One-way delay of a message of `bytes` over a reliable stream (QUIC)
    /// from `a` to `b`, in µs: each of its packets lost on the way costs a
    /// retransmission after about one round trip (QUIC's loss detection),
    /// so loss shows as delay. `None` when `b` cannot be reached.
    pub fn stream(&self, rng: &mut StdRng, a: usize, b: usize, bytes: usize) -> Option<u64> {
        if !self.reachable(a, b) {
            return None;
        }
        let Some(l) = self.link(self.tier(a, b)) else { return Some(1) };
        let mut d = self.delay(rng, l, bytes);
        let packets = bytes.div_ceil(1_200).max(1);
        let rtt_us = (2.0 * l.latency_ms * 1_000.0) as u64;
        for _ in 0..packets.min(64) {
            // Geometric: a packet may be lost again on its retransmission.
            while l.loss > 0.0 && rng.random::<f64>() < l.loss {
                d += rtt_us.max(1_000) * 9 / 8;
            }
        }
        Some(d)
    }

    fn delay(&self, rng: &mut StdRng, l: &Link, bytes: usize) -> u64 {
        let jitter = if l.jitter_ms > 0.0 { rng.random::<f64>() * l.jitter_ms } else { 0.0 };
        let serialise_ms = (bytes as f64 * 8.0) / (l.bandwidth_mbps * 1_000.0);
        (((l.latency_ms + jitter + serialise_ms) * 1_000.0) as u64).max(1)
    }
}
