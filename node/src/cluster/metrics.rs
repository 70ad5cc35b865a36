//! The mesh's part of `/metrics` (Prometheus text format).

use std::fmt::Write;

use meshdns_mesh::gossip::MeshSnapshot;

/// Upper bounds (seconds) of the last-heard histogram.
const HEARD_BUCKETS: [f64; 8] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Appends the mesh metrics for snapshot `s`.
pub fn render(s: &MeshSnapshot, out: &mut String) {
    let _ = writeln!(out, "# HELP meshdns_mesh_members Members this node knows, by liveness and highest tier role.");
    let _ = writeln!(out, "# TYPE meshdns_mesh_members gauge");
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
            let _ = writeln!(out, "meshdns_mesh_members{{state=\"{state}\",tier=\"{tier}\"}} {n}");
        }
    }
    let _ = writeln!(out, "# HELP meshdns_mesh_gossip_messages_total Gossip datagrams per pool this node is in.");
    let _ = writeln!(out, "# TYPE meshdns_mesh_gossip_messages_total counter");
    for p in &s.pools {
        let name = super::pool_name(&p.pool);
        let _ = writeln!(out, "meshdns_mesh_gossip_messages_total{{pool=\"{name}\",direction=\"in\"}} {}", p.traffic.0);
        let _ =
            writeln!(out, "meshdns_mesh_gossip_messages_total{{pool=\"{name}\",direction=\"out\"}} {}", p.traffic.2);
    }
    let _ = writeln!(out, "# HELP meshdns_mesh_gossip_bytes_total Gossip UDP payload bytes per pool this node is in.");
    let _ = writeln!(out, "# TYPE meshdns_mesh_gossip_bytes_total counter");
    for p in &s.pools {
        let name = super::pool_name(&p.pool);
        let _ = writeln!(out, "meshdns_mesh_gossip_bytes_total{{pool=\"{name}\",direction=\"in\"}} {}", p.traffic.1);
        let _ = writeln!(out, "meshdns_mesh_gossip_bytes_total{{pool=\"{name}\",direction=\"out\"}} {}", p.traffic.3);
    }
    let _ = writeln!(out, "# HELP meshdns_mesh_pool_live_peers Live members of each pool besides this node.");
    let _ = writeln!(out, "# TYPE meshdns_mesh_pool_live_peers gauge");
    for p in &s.pools {
        let _ =
            writeln!(out, "meshdns_mesh_pool_live_peers{{pool=\"{}\"}} {}", super::pool_name(&p.pool), p.live_peers);
    }
    let heard: Vec<f64> = s.members.values().filter_map(|m| m.last_heard).map(|d| d.as_secs_f64()).collect();
    let _ = writeln!(
        out,
        "# HELP meshdns_mesh_last_heard_seconds Time since each directly heard peer's heartbeat last moved."
    );
    let _ = writeln!(out, "# TYPE meshdns_mesh_last_heard_seconds histogram");
    for b in HEARD_BUCKETS {
        let n = heard.iter().filter(|&&h| h <= b).count();
        let _ = writeln!(out, "meshdns_mesh_last_heard_seconds_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(out, "meshdns_mesh_last_heard_seconds_bucket{{le=\"+Inf\"}} {}", heard.len());
    let _ = writeln!(out, "meshdns_mesh_last_heard_seconds_sum {}", heard.iter().sum::<f64>());
    let _ = writeln!(out, "meshdns_mesh_last_heard_seconds_count {}", heard.len());
    let _ = writeln!(
        out,
        "# HELP meshdns_mesh_representative_changes_total Changes of the set of representatives seen by this node."
    );
    let _ = writeln!(out, "# TYPE meshdns_mesh_representative_changes_total counter");
    let _ = writeln!(out, "meshdns_mesh_representative_changes_total {}", s.representative_changes);
    let _ = writeln!(
        out,
        "# HELP meshdns_mesh_relay_records_invalid_total Relay records from peers that could not be read."
    );
    let _ = writeln!(out, "# TYPE meshdns_mesh_relay_records_invalid_total counter");
    let _ = writeln!(out, "meshdns_mesh_relay_records_invalid_total {}", s.bad_relay_records);
    let _ = writeln!(
        out,
        "# HELP meshdns_mesh_pool_restarts_total Pool gossip instances restarted after their task stopped."
    );
    let _ = writeln!(out, "# TYPE meshdns_mesh_pool_restarts_total counter");
    let _ = writeln!(out, "meshdns_mesh_pool_restarts_total {}", s.pool_restarts);
    let _ = writeln!(
        out,
        "# HELP meshdns_mesh_identity_refutations_total Pools rejoined as a new incarnation after a peer claimed state for this node's id."
    );
    let _ = writeln!(out, "# TYPE meshdns_mesh_identity_refutations_total counter");
    let _ = writeln!(out, "meshdns_mesh_identity_refutations_total {}", s.identity_refutations);
    let _ = writeln!(out, "# HELP meshdns_mesh_pools_failed Pools this node should be in but could not join.");
    let _ = writeln!(out, "# TYPE meshdns_mesh_pools_failed gauge");
    let _ = writeln!(out, "meshdns_mesh_pools_failed {}", s.pool_errors.len());
}
