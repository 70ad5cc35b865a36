//! The cluster side of a node: the gRPC admin API over the mesh
//! ([`service`]), its client for `meshdns cluster ...` ([`client`]) and
//! the mesh's Prometheus metrics ([`metrics`]).
//!
//! The membership logic itself lives in `meshdns-mesh`; this module only
//! turns its [`MeshSnapshot`](meshdns_mesh::gossip::MeshSnapshot) into
//! answers.

pub mod client;
pub mod guard;
pub mod metrics;
pub mod service;
pub mod zone_client;
pub mod zones;

use std::collections::BTreeMap;

use meshdns_mesh::gossip::{MemberView, MeshSnapshot};
use meshdns_mesh::tier::Pool;
use meshdns_mesh::{Liveness, Source};
use meshdns_proto::cluster as pb;

/// A pool's name as the API prints it: `site/<region>/<site>`,
/// `region/<region>` or `global`.
pub fn pool_name(p: &Pool) -> String {
    match p {
        Pool::Site { region, site } => format!("site/{region}/{site}"),
        Pool::Region(r) => format!("region/{r}"),
        Pool::Global => "global".to_owned(),
    }
}

fn addr(a: Option<std::net::SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// One member in API form.
pub fn member(m: &MemberView) -> pb::Member {
    let f = &m.record.facts;
    pb::Member {
        id: f.id.clone(),
        region: f.region.clone(),
        site: f.site.clone(),
        generation: f.generation,
        gossip: f.gossip.to_string(),
        dns: addr(f.dns),
        grpc: addr(f.grpc),
        quic: addr(f.quic),
        version: f.version.clone(),
        started_unix: f.started_unix,
        load: f.load,
        roles: f.roles.as_str().to_owned(),
        liveness: m.record.liveness.as_str().to_owned(),
        last_heard_ms: m.last_heard.map(|d| d.as_millis() as u64),
        via: match &m.record.source {
            Source::Direct => String::new(),
            Source::Via(v) => v.clone(),
        },
    }
}

/// Counts by liveness: (alive, suspect, dead, left).
fn count<'a>(members: impl Iterator<Item = &'a MemberView>) -> (u32, u32, u32, u32) {
    let mut c = (0, 0, 0, 0);
    for m in members {
        match m.record.liveness {
            Liveness::Alive => c.0 += 1,
            Liveness::Suspect => c.1 += 1,
            Liveness::Dead => c.2 += 1,
            Liveness::Left => c.3 += 1,
        }
    }
    c
}

/// `Status` in API form.
pub fn status(s: &MeshSnapshot, now: tokio::time::Instant) -> pb::StatusReply {
    let mut by_site: BTreeMap<(&str, &str), Vec<&MemberView>> = BTreeMap::new();
    for m in s.members.values() {
        by_site.entry((&m.record.facts.region, &m.record.facts.site)).or_default().push(m);
    }
    let sites = by_site
        .into_iter()
        .map(|((region, site), ms)| {
            let (alive, suspect, dead, left) = count(ms.into_iter());
            pb::SiteCount { region: region.to_owned(), site: site.to_owned(), alive, suspect, dead, left }
        })
        .collect();
    let (alive, suspect, dead, left) = count(s.members.values());
    pb::StatusReply {
        node_id: s.me.id.clone(),
        cluster: s.cluster.clone(),
        region: s.me.region.clone(),
        site: s.me.site.clone(),
        roles: s.me.roles.as_str().to_owned(),
        sites,
        alive,
        suspect,
        dead,
        left,
        view_age_ms: now.saturating_duration_since(s.taken).as_millis() as u64,
        since_change_ms: now.saturating_duration_since(s.changed).as_millis() as u64,
        pools: s
            .pools
            .iter()
            .map(|p| pb::PoolInfo {
                name: pool_name(&p.pool),
                addr: p.addr.to_string(),
                live_peers: p.live_peers as u32,
                messages_in: p.traffic.0,
                bytes_in: p.traffic.1,
                messages_out: p.traffic.2,
                bytes_out: p.traffic.3,
            })
            .collect(),
        pool_errors: s.pool_errors.iter().map(|(p, e)| format!("{}: {e}", pool_name(p))).collect(),
        representative_changes: s.representative_changes,
        version: s.me.version.clone(),
    }
}
