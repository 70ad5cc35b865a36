//! The mesh's part of `/metrics` (through [`crate::exposition`]).

use meshdns_mesh::gossip::MeshSnapshot;

use crate::exposition::{Exposition, Kind};

/// Thresholds (seconds) of `meshdns_mesh_peers_heard_within_seconds`.
const HEARD_WITHIN: [f64; 8] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Adds the mesh metrics for snapshot `s` to `out`.
pub fn render(s: &MeshSnapshot, out: &mut Exposition) {
    out.family("meshdns_mesh_members", Kind::Gauge, "Members this node knows, by liveness and highest tier role.");
    for state in ["alive", "suspect", "dead", "left"] {
        for tier in ["site", "region", "global"] {
            let n = s
                .members
                .values()
                .filter(|m| m.record.liveness.as_str() == state)
                .filter(|m| {
                    let r = m.record.facts.roles;
                    tier == if r.global {
                        "global"
                    } else if r.region {
                        "region"
                    } else {
                        "site"
                    }
                })
                .count();
            out.sample("meshdns_mesh_members", &[("state", state), ("tier", tier)], n);
        }
    }
    out.family("meshdns_mesh_gossip_messages_total", Kind::Counter, "Gossip datagrams per pool this node is in.");
    for p in &s.pools {
        let name = super::pool_name(&p.pool);
        out.sample("meshdns_mesh_gossip_messages_total", &[("pool", &name), ("direction", "in")], p.traffic.0);
        out.sample("meshdns_mesh_gossip_messages_total", &[("pool", &name), ("direction", "out")], p.traffic.2);
    }
    out.family("meshdns_mesh_gossip_bytes_total", Kind::Counter, "Gossip UDP payload bytes per pool this node is in.");
    for p in &s.pools {
        let name = super::pool_name(&p.pool);
        out.sample("meshdns_mesh_gossip_bytes_total", &[("pool", &name), ("direction", "in")], p.traffic.1);
        out.sample("meshdns_mesh_gossip_bytes_total", &[("pool", &name), ("direction", "out")], p.traffic.3);
    }
    out.family("meshdns_mesh_pool_live_peers", Kind::Gauge, "Live members of each pool besides this node.");
    for p in &s.pools {
        out.sample("meshdns_mesh_pool_live_peers", &[("pool", &super::pool_name(&p.pool))], p.live_peers);
    }
    // A snapshot of the peers now, which can fall from one scrape to the
    // next: gauges, not a histogram (a histogram's counts only grow).
    let heard: Vec<f64> = s.members.values().filter_map(|m| m.last_heard).map(|d| d.as_secs_f64()).collect();
    out.family("meshdns_mesh_peers_heard", Kind::Gauge, "Peers this node hears directly.");
    out.sample("meshdns_mesh_peers_heard", &[], heard.len());
    out.family(
        "meshdns_mesh_peers_heard_within_seconds",
        Kind::Gauge,
        "Directly heard peers whose heartbeat moved within the last `within` seconds.",
    );
    for b in HEARD_WITHIN {
        let n = heard.iter().filter(|&&h| h <= b).count();
        out.sample("meshdns_mesh_peers_heard_within_seconds", &[("within", &b.to_string())], n);
    }
    out.family(
        "meshdns_mesh_last_heard_seconds_max",
        Kind::Gauge,
        "Longest time since a directly heard peer's heartbeat moved.",
    );
    out.sample("meshdns_mesh_last_heard_seconds_max", &[], heard.iter().copied().fold(0.0, f64::max));
    out.family(
        "meshdns_mesh_representative_changes_total",
        Kind::Counter,
        "Changes of the set of representatives seen by this node.",
    );
    out.sample("meshdns_mesh_representative_changes_total", &[], s.representative_changes);
    out.family(
        "meshdns_mesh_relay_records_invalid_total",
        Kind::Counter,
        "Relay records from peers that could not be read.",
    );
    out.sample("meshdns_mesh_relay_records_invalid_total", &[], s.bad_relay_records);
    out.family(
        "meshdns_mesh_pool_restarts_total",
        Kind::Counter,
        "Pool gossip instances restarted after their task stopped.",
    );
    out.sample("meshdns_mesh_pool_restarts_total", &[], s.pool_restarts);
    if let Some(rejected) = &s.gossip_rejected {
        out.family(
            "meshdns_mesh_gossip_rejected_total",
            Kind::Counter,
            "Gossip datagrams and referral messages refused by the cluster keyring check, by cause.",
        );
        for (cause, n) in rejected {
            out.sample("meshdns_mesh_gossip_rejected_total", &[("cause", cause)], *n);
        }
    }
    out.family(
        "meshdns_mesh_identity_refutations_total",
        Kind::Counter,
        "Pools rejoined as a new incarnation after a peer claimed state for this node's id.",
    );
    out.sample("meshdns_mesh_identity_refutations_total", &[], s.identity_refutations);
    out.family("meshdns_mesh_pools_failed", Kind::Gauge, "Pools this node should be in but could not join.");
    out.sample("meshdns_mesh_pools_failed", &[], s.pool_errors.len());
}
