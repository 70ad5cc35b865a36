//! Names and addresses, computed from the scenario alone so every part of
//! the harness (and a later `meshdns-chaos clean`) agrees on them.
//!
//! Region `r`, site `s`, node `k` (0-based) is node `r{r}s{s}n{k}` at
//! `10.{r+1}.{s+1}.{k+1}` in namespace `mc-r{r}s{s}n{k}`; its site's bridge
//! `br{s}` lives in the region's router namespace `mc-r{r}` at
//! `10.{r+1}.{s+1}.254`; routers meet on the bridge of `mc-core`
//! (`10.0.0.{r+1}`), where the harness's own namespace `mc-client`
//! (`10.0.0.100`) is attached too.

use std::net::{Ipv4Addr, SocketAddr};

use crate::scenario::Topology;

/// Prefix of every namespace the harness makes.
pub const PREFIX: &str = "mc-";
/// The namespace the workload and checker run in.
pub const CLIENT_NS: &str = "mc-client";
/// The namespace joining the regions.
pub const CORE_NS: &str = "mc-core";
/// The workload's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

/// DNS port on each node.
pub const DNS_PORT: u16 = 53;
/// Gossip base port (UDP 7944–7946 and TCP 7944).
pub const GOSSIP_PORT: u16 = 7944;
/// Replication (QUIC) port.
pub const QUIC_PORT: u16 = 7948;
/// gRPC admin API port.
pub const GRPC_PORT: u16 = 50051;
/// Metrics and readiness port.
pub const HTTP_PORT: u16 = 9153;

/// One node of the topology.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Position in [`nodes`]'s list.
    pub index: usize,
    /// Region number.
    pub region: usize,
    /// Site number within the region.
    pub site: usize,
    /// Node number within the site.
    pub k: usize,
    /// `r{r}s{s}n{k}`.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

impl NodeSpec {
    /// Its network namespace.
    pub fn netns(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }
    /// Its region's name, `r{r}`.
    pub fn region_name(&self) -> String {
        format!("r{}", self.region)
    }
    /// Its site's name, `r{r}s{s}`.
    pub fn site_name(&self) -> String {
        format!("r{}s{}", self.region, self.site)
    }
    /// DNS address.
    pub fn dns(&self) -> SocketAddr {
        SocketAddr::from((self.ip, DNS_PORT))
    }
    /// gRPC endpoint URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{}:{GRPC_PORT}", self.ip)
    }
    /// Interface name of its veth end in the router namespace.
    pub fn router_port(&self) -> String {
        format!("n{}-{}", self.site, self.k)
    }
}

/// Every node, region by region, site by site.
pub fn nodes(t: &Topology) -> Vec<NodeSpec> {
    let mut out = Vec::with_capacity(t.nodes());
    for region in 0..t.regions {
        for site in 0..t.sites_per_region {
            for k in 0..t.nodes_per_site {
                out.push(NodeSpec {
                    index: out.len(),
                    region,
                    site,
                    k,
                    name: format!("r{region}s{site}n{k}"),
                    ip: node_ip(region, site, k),
                });
            }
        }
    }
    out
}

/// Address of node `k` of site `s` of region `r`.
pub fn node_ip(r: usize, s: usize, k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, r as u8 + 1, s as u8 + 1, k as u8 + 1)
}

/// The router namespace of region `r`.
pub fn router_ns(r: usize) -> String {
    format!("{PREFIX}r{r}")
}

/// The router's address on the core bridge.
pub fn router_ip(r: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, r as u8 + 1)
}

/// The gateway of site `s` of region `r` (the router's bridge address).
pub fn gateway_ip(r: usize, s: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, r as u8 + 1, s as u8 + 1, 254)
}

/// A region's node subnet, `10.{r+1}.0.0/16`.
pub fn region_net(r: usize) -> String {
    format!("10.{}.0.0/16", r + 1)
}

/// A site's subnet, `10.{r+1}.{s+1}.0/24`.
pub fn site_net(r: usize, s: usize) -> String {
    format!("10.{}.{}.0/24", r + 1, s + 1)
}

/// `r{r}s{s}n{k}` → (r, s, k), if it is in the topology.
pub fn parse_node(name: &str, t: &Topology) -> Option<(usize, usize, usize)> {
    let (r, rest) = name.strip_prefix('r')?.split_once('s')?;
    let (s, k) = rest.split_once('n')?;
    let (r, s, k) = (r.parse().ok()?, s.parse().ok()?, k.parse().ok()?);
    (r < t.regions && s < t.sites_per_region && k < t.nodes_per_site).then_some((r, s, k))
}

/// `r{r}s{s}` → (r, s), if it is in the topology.
pub fn parse_site(name: &str, t: &Topology) -> Option<(usize, usize)> {
    let (r, s) = name.strip_prefix('r')?.split_once('s')?;
    let (r, s) = (r.parse().ok()?, s.parse().ok()?);
    (r < t.regions && s < t.sites_per_region).then_some((r, s))
}

/// `r{r}` → r, if it is in the topology.
pub fn parse_region(name: &str, t: &Topology) -> Option<usize> {
    let r = name.strip_prefix('r')?.parse().ok()?;
    (r < t.regions).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_follow_the_position() {
        let t = Topology { regions: 2, sites_per_region: 3, nodes_per_site: 2 };
        let all = nodes(&t);
        assert_eq!(all.len(), 12);
        let n = &all[7];
        assert_eq!((n.region, n.site, n.k), (1, 0, 1));
        assert_eq!(n.name, "r1s0n1");
        assert_eq!(n.ip, Ipv4Addr::new(10, 2, 1, 2));
        assert_eq!(parse_node("r1s0n1", &t), Some((1, 0, 1)));
        assert_eq!(parse_node("r2s0n1", &t), None);
        assert_eq!(parse_site("r1s2", &t), Some((1, 2)));
        assert_eq!(parse_region("r1", &t), Some(1));
        assert!(n.netns().len() <= 15, "namespace names stay short");
    }
}
