//! What a node publishes in a pool and how a pool's chitchat state is read
//! back into [`PeerRecord`]s: the part of a pool that does no I/O, shared by
//! the async driver and the simulator (which drives chitchat's state machine
//! itself on virtual time).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chitchat::{Chitchat, ChitchatConfig, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion};
use tokio::time::Instant;

use super::GossipSettings;
use crate::facts::{Liveness, NodeFacts, PeerRecord, Roles, Source};
use crate::tier::Pool;

/// Key prefix of relay records; the rest of the key is the member id.
const RELAY_PREFIX: &str = "r:";
/// Key announcing a graceful leave.
const STATE_KEY: &str = "state";
/// The node is leaving the mesh (SIGTERM).
const LEAVING: &str = "leaving";
/// The node is leaving this pool only (no longer a representative): its
/// record here is dropped, it is still alive elsewhere.
const DEMOTED: &str = "demoted";

/// The UDP port of a pool: the base gossip port for the site pool, the next
/// two for the region and global pools.
pub fn pool_addr(base: SocketAddr, pool: &Pool) -> Option<SocketAddr> {
    let offset = match pool {
        Pool::Site { .. } => 0,
        Pool::Region(_) => 1,
        Pool::Global => 2,
    };
    let port = base.port().checked_add(offset)?;
    Some(SocketAddr::new(base.ip(), port))
}

/// The key-values a node publishes about itself.
pub fn fact_keys(f: &NodeFacts) -> Vec<(String, String)> {
    let addr = |a: &Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    vec![
        ("generation".into(), f.generation.to_string()),
        ("region".into(), f.region.clone()),
        ("site".into(), f.site.clone()),
        ("gossip".into(), f.gossip.to_string()),
        ("dns".into(), addr(&f.dns)),
        ("grpc".into(), addr(&f.grpc)),
        ("quic".into(), addr(&f.quic)),
        ("version".into(), f.version.clone()),
        ("started".into(), f.started_unix.to_string()),
        ("load".into(), f.load.to_string()),
        ("sd".into(), format!("{:x}", f.state_digest)),
        ("ag".into(), format!("{}/{:x}", f.agreement, f.agreement_digest)),
        ("zs".into(), f.zone_serials.clone()),
        ("hn".into(), f.hot_names.clone()),
        ("roles".into(), f.roles.as_str().to_owned()),
    ]
}

/// A gossiped agreement `level/digest`, counted only when computed for the
/// state digest `sd` heard with it (the two are separate keys and may be
/// seen at different versions).
fn agreement_for(ag: Option<&str>, sd: Option<&str>) -> u8 {
    let Some((level, digest)) = ag.and_then(|v| v.split_once('/')) else { return 0 };
    if Some(digest) != sd {
        return 0;
    }
    level.parse().unwrap_or(0)
}

fn facts_from_state(id: &ChitchatId, s: &NodeState) -> Option<NodeFacts> {
    let addr = |k: &str| s.get(k).filter(|v| !v.is_empty()).and_then(|v| v.parse().ok());
    Some(NodeFacts {
        id: id.node_id.to_string(),
        generation: s.get("generation")?.parse().ok()?,
        region: s.get("region")?.to_owned(),
        site: s.get("site")?.to_owned(),
        gossip: addr("gossip")?,
        dns: addr("dns"),
        grpc: addr("grpc"),
        quic: addr("quic"),
        version: s.get("version").unwrap_or_default().to_owned(),
        started_unix: s.get("started").and_then(|v| v.parse().ok()).unwrap_or(0),
        load: s.get("load").and_then(|v| v.parse().ok()).unwrap_or(0),
        state_digest: s.get("sd").and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0),
        agreement: agreement_for(s.get("ag"), s.get("sd")),
        agreement_digest: s
            .get("ag")
            .and_then(|v| v.split_once('/'))
            .and_then(|(_, d)| u64::from_str_radix(d, 16).ok())
            .unwrap_or(0),
        zone_serials: s.get("zs").unwrap_or_default().to_owned(),
        hot_names: s.get("hn").unwrap_or_default().to_owned(),
        roles: Roles {
            region: s.get("roles").is_some_and(|r| r.contains("region")),
            global: s.get("roles").is_some_and(|r| r.contains("global")),
        },
    })
}

/// What one read of a pool found.
pub struct PoolRead {
    /// Direct members and the relay records of the live ones.
    pub records: Vec<PeerRecord>,
    /// Time since each direct member's heartbeat last moved, by node id.
    pub last_heard: HashMap<String, Duration>,
    /// Relay records that could not be read.
    pub bad_records: u64,
}

/// The gossip wire format: V1 sends the digest (every pool member's id,
/// address and versions, the bulk of every SYN and SYN-ACK) as a zstd
/// stream: a quarter of V0's bytes on 50-node pools (4.1 against 17.6 KB/s
/// per node in the simulator, docs/scale.md).
/// Every meshdns node reads both, and a reply echoes the version of the
/// SYN it answers, so nodes of older builds still get V0 answers.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V1;

/// The chitchat configuration of this node's instance in `pool`, listening
/// on `addr`. `instance` numbers this node's joins of the pool: chitchat
/// ignores state from an id it has seen with higher versions, so a rejoin
/// must look like a new incarnation to it.
pub fn chitchat_config(
    cluster: &str,
    pool: &Pool,
    instance: u64,
    me: &NodeFacts,
    settings: &GossipSettings,
    addr: SocketAddr,
) -> ChitchatConfig {
    ChitchatConfig {
        chitchat_id: ChitchatId::new(me.id.clone(), me.generation.saturating_mul(1000).saturating_add(instance), addr),
        cluster_id: pool.cluster_id(cluster),
        gossip_interval: settings.interval,
        listen_addr: addr,
        seed_nodes: Vec::new(),
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: settings.phi_threshold,
            // chitchat's 1,000 preallocates ~8 KB per member pair; 100
            // samples are minutes of history at one gossip per second.
            sampling_window_size: 100,
            max_interval: Duration::from_secs(10),
            initial_interval: settings.interval,
            dead_node_grace_period: settings.dead_grace,
        },
        marked_for_deletion_grace_period: settings.tombstone_grace,
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: PROTOCOL_VERSION,
    }
}

/// The keys a node starts a pool with: its facts, and that it is alive.
pub fn initial_keys(me: &NodeFacts) -> Vec<(String, String)> {
    let mut initial = fact_keys(me);
    initial.push((STATE_KEY.into(), "alive".into()));
    initial
}

/// Marks this node as leaving (the mesh, or only this pool when `demoted`)
/// and returns the live members to tell at once.
pub fn announce_leave(guard: &mut Chitchat, demoted: bool) -> Vec<SocketAddr> {
    guard.self_node_state().set(STATE_KEY, if demoted { DEMOTED } else { LEAVING });
    let me = guard.self_chitchat_id().clone();
    guard.live_nodes().filter(|id| **id != me).map(|id| id.gossip_advertise_addr).collect()
}

/// The fact keys and encoded relay records to publish.
fn lines(me: &NodeFacts, relays: &BTreeMap<String, PeerRecord>) -> (Vec<(String, String)>, BTreeMap<String, String>) {
    let facts = fact_keys(me);
    let mut relay_lines: BTreeMap<String, String> = BTreeMap::new();
    for (id, r) in relays {
        let mut r = r.clone();
        // Relays change only when something a reader acts on changes:
        // suspicion is local, and load is rounded to a power of two.
        if r.liveness == Liveness::Suspect {
            r.liveness = Liveness::Alive;
        }
        r.facts.load = r.facts.load.checked_next_power_of_two().unwrap_or(u64::MAX);
        relay_lines.insert(id.clone(), r.encode());
    }
    (facts, relay_lines)
}

/// What this node has published in one pool and what it last read there.
#[derive(Debug, Default)]
pub struct PoolState {
    /// Relay records published, by member id, as encoded.
    published: BTreeMap<String, String>,
    /// Fact keys published.
    published_facts: Vec<(String, String)>,
    /// Last heartbeat seen per member incarnation, and when it moved.
    heartbeats: HashMap<ChitchatId, (u64, Instant)>,
    /// Incarnations the failure detector has called live at least once.
    /// chitchat lists a newcomer as dead until its second heartbeat; that
    /// first "dead" is not news and must not travel.
    ever_live: HashSet<ChitchatId>,
    /// Relay records as last decoded, per relayer and member, with the
    /// version of the key they were decoded from (`None`: unreadable).
    decoded: HashMap<ChitchatId, HashMap<String, (u64, Option<PeerRecord>)>>,
}

impl PoolState {
    /// A pool just started with `initial` keys (see [`initial_keys`]).
    pub fn new(mut initial: Vec<(String, String)>) -> PoolState {
        initial.retain(|(k, _)| k != STATE_KEY);
        PoolState { published_facts: initial, ..PoolState::default() }
    }

    /// Whether [`PoolState::publish`] would write anything.
    pub fn needs_publish(&self, me: &NodeFacts, relays: &BTreeMap<String, PeerRecord>) -> bool {
        let (facts, relay_lines) = lines(me, relays);
        facts != self.published_facts || relay_lines != self.published
    }

    /// Reads members and relays. `suspect_after`: a live member not heard
    /// from for this long is reported as suspect.
    pub fn read(&mut self, guard: &Chitchat, now: Instant, suspect_after: Duration) -> PoolRead {
        let me = guard.self_chitchat_id().clone();
        let live: HashSet<&ChitchatId> = guard.live_nodes().collect();
        let dead: HashSet<&ChitchatId> = guard.dead_nodes().collect();
        let mut out = PoolRead { records: Vec::new(), last_heard: HashMap::new(), bad_records: 0 };
        let mut seen = HashMap::new();
        for (id, state) in guard.node_states() {
            if *id == me {
                continue;
            }
            let beat = u64::from(state.heartbeat());
            let moved = match self.heartbeats.get(id) {
                Some(&(old, at)) if old == beat => at,
                _ => now,
            };
            seen.insert(id.clone(), (beat, moved));
            let heard = now.saturating_duration_since(moved);
            let Some(facts) = facts_from_state(id, state) else { continue };
            if state.get(STATE_KEY) == Some(DEMOTED) {
                continue;
            }
            let liveness = if state.get(STATE_KEY) == Some(LEAVING) {
                Liveness::Left
            } else if live.contains(id) {
                self.ever_live.insert(id.clone());
                if heard > suspect_after { Liveness::Suspect } else { Liveness::Alive }
            } else if dead.contains(id) && self.ever_live.contains(id) {
                Liveness::Dead
            } else {
                continue; // not yet judged, or never seen alive
            };
            let entry = out.last_heard.entry(facts.id.clone()).or_insert(heard);
            *entry = (*entry).min(heard);
            if liveness.is_live() {
                // Decoded once per version: a site pool carries a relay
                // record of every member of the mesh, read four times a
                // second. Rebuilt per read, so withdrawn records go too.
                let mut old = self.decoded.remove(id).unwrap_or_default();
                let mut cache = HashMap::new();
                for (key, value) in state.iter_prefix(RELAY_PREFIX) {
                    let member = &key[RELAY_PREFIX.len()..];
                    let entry = match old.remove(member) {
                        Some((v, r)) if v == value.version => (v, r),
                        _ => (value.version, PeerRecord::decode(member, &facts.id, &value.value).ok()),
                    };
                    match &entry.1 {
                        Some(r) => out.records.push(r.clone()),
                        None => out.bad_records += 1,
                    }
                    cache.insert(member.to_owned(), entry);
                }
                if !cache.is_empty() {
                    self.decoded.insert(id.clone(), cache);
                }
            }
            out.records.push(PeerRecord { facts, liveness, source: Source::Direct });
        }
        // Forget incarnations chitchat has garbage-collected.
        self.ever_live.retain(|id| seen.contains_key(id));
        self.decoded.retain(|id, _| seen.contains_key(id));
        self.heartbeats = seen;
        out
    }

    /// Publishes this node's facts and relay records, writing only what changed.
    pub fn publish(&mut self, guard: &mut Chitchat, me: &NodeFacts, relays: &BTreeMap<String, PeerRecord>) {
        let (facts, relay_lines) = lines(me, relays);
        let state = guard.self_node_state();
        for (k, v) in &facts {
            if state.get(k) != Some(v.as_str()) {
                state.set(k, v);
            }
        }
        for (id, line) in &relay_lines {
            if self.published.get(id) != Some(line) {
                state.set(format!("{RELAY_PREFIX}{id}"), line);
            }
        }
        for id in self.published.keys().filter(|id| !relay_lines.contains_key(*id)) {
            state.delete(&format!("{RELAY_PREFIX}{id}"));
        }
        self.published_facts = facts;
        self.published = relay_lines;
    }
}
