//! The event loop: virtual nodes, their messages and the fault schedule.
//!
//! One thread, one queue ordered by (virtual time, sequence number), one
//! seeded generator: the same scenario and seed replay the same run. Each
//! node holds what the real node holds, driven the way the real drivers
//! drive it (`meshdns_mesh::gossip` and `meshdns::replicated::sync`):
//!
//! - gossip mode: per joined pool a chitchat instance (the vendored fork,
//!   called sans-IO), its [`PoolState`], and a [`MeshCore`] on top;
//! - always: per zone a [`ZoneReplica`], an HLC [`Clock`], a
//!   [`SyncScheduler`] with the node's [`PullPolicy`]; fresh writes follow
//!   [`push_targets`], repairs follow [`pulls_from`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use chitchat::{Chitchat, ChitchatEnvelope, ChitchatMessage};
use meshdns_mesh::gossip::pool_state::{
    PROTOCOL_VERSION, PoolState, announce_leave, chitchat_config, initial_keys, pool_addr,
};
use meshdns_mesh::gossip::referral::{self, Contact, hint_targets};
use meshdns_mesh::gossip::{GossipSettings, settle_now};
use meshdns_mesh::tier::{Pool, TierConfig, region_representatives, site_representatives};
use meshdns_mesh::{Action, Liveness, MembershipEvent, MeshCore, NodeFacts, Roles};
use meshdns_replication::replica::rrset_digest;
use meshdns_replication::sync::{Hop, Peer, PullPolicy, SyncLimits, SyncScheduler, pulls_from, push_targets};
use meshdns_replication::{Clock, Delta, EntryKey, RRset, ZoneReplica};
use meshdns_ring::{Member, Ring};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::net::{GOSSIP_PORT, Net};
use crate::scenario::{EventKind, MembershipMode, Scenario};
use crate::stats::{Stats, WriteTrack};

/// µs in a second.
const SEC: u64 = 1_000_000;
/// A pull not answered within this is a failed pull.
const PULL_TIMEOUT_US: u64 = 5 * SEC;
/// How often each node checks its peers' digests (the node: every 250 ms).
const ANTI_ENTROPY_US: u64 = 250_000;
/// Oracle mode: membership changes known at the same 100 ms step are
/// applied together (a simplification on top of the detection delay).
const ORACLE_REBUILD_US: u64 = 100_000;
/// Wall-clock epoch of virtual time zero, so HLC stamps look real and a
/// negative skew stays positive.
const EPOCH_MS: u64 = 1_767_225_600_000;
/// UDP and IP headers per gossip datagram.
const DATAGRAM_OVERHEAD: usize = 28;
/// QUIC stream, packet and UDP/IP headers per replication message.
const STREAM_OVERHEAD: usize = 60;

enum Ev {
    /// A gossip-mode node's round: chitchat rounds in each pool, then the
    /// driver's step.
    Round { node: usize, boot: u64 },
    /// A chitchat datagram.
    Gossip { to: usize, to_addr: SocketAddr, from: SocketAddr, msg: ChitchatMessage },
    /// A pushed delta.
    Push { to: usize, zone: usize, write: u32, delta: Rc<Delta>, hop: Hop },
    /// A node's digest check and pull scheduling.
    AntiEntropy { node: usize, boot: u64 },
    /// A pull request, carrying the asker's version vectors.
    PullRequest { to: usize, from: usize, from_boot: u64, token: u64 },
    /// A pull's answer.
    PullAnswer { to: usize, boot: u64, token: u64, deltas: Vec<(usize, Vec<Delta>)> },
    /// A pull that got no answer.
    PullTimeout { node: usize, boot: u64, token: u64 },
    /// The next write of the load.
    Write,
    /// A scheduled scenario event.
    Scheduled(usize),
    /// A node starts for the first time.
    Boot { node: usize },
    /// A node crashes (a rolling restart's step).
    Crash { node: usize },
    /// A crashed node starts again.
    Restart { node: usize, wipe: bool },
    /// Oracle mode: the cluster learns that a node is up or down.
    Known { node: usize, up: bool, boot: u64 },
    /// Oracle mode: views are rebuilt from what is known.
    RebuildOracle,
    /// Once a second: samples and convergence checks.
    Sample,
    /// Seeds' referral answers reach a node.
    Referral { node: usize, boot: u64, contacts: Vec<Contact> },
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A pool this node is in.
struct PoolInst {
    cc: Chitchat,
    state: PoolState,
    addr: SocketAddr,
    seeds: BTreeSet<SocketAddr>,
    last_hinted: Option<u64>,
    /// When this instance started (the pool is forming for a while).
    joined_at: u64,
}

/// Membership as one node's `MeshCore` sees it.
struct Membership {
    core: MeshCore,
    pools: BTreeMap<Pool, PoolInst>,
    /// Pools being left: since when, and since when the successor is in.
    leaving: BTreeMap<Pool, (u64, Option<u64>)>,
    joins: u64,
    /// Members to push to and pull from, rebuilt when membership changes.
    peers: Option<Rc<PeerView>>,
    /// What the seeds referred last.
    referred: Vec<Contact>,
    /// A referral answer not yet acted on.
    fresh_referral: Option<Vec<Contact>>,
    /// A referral is on its way.
    referral_pending: bool,
    /// When the seeds were last asked.
    last_referral: Option<u64>,
    /// Rotates which hint targets are tried.
    hint_offset: usize,
    /// Pools left, whose instance still answers for one round (the driver
    /// shuts an instance down a gossip interval after announcing the
    /// leave, so the announcement travels), with when it stops.
    stopping: Vec<(u64, PoolInst)>,
}

/// The members one node replicates with.
pub(crate) struct PeerView {
    me: Peer,
    /// Live members relevant to push and pull.
    members: Vec<Peer>,
    /// Their node indices, in the same order.
    idx: Vec<usize>,
}

struct InFlight {
    pull: meshdns_replication::sync::Pull,
    digest: u64,
}

struct Node {
    id: String,
    up: bool,
    boot: u64,
    generation: u64,
    skew_ms: i64,
    mesh: Option<Membership>,
    zones: Vec<ZoneReplica>,
    digests: Vec<u64>,
    /// Writes held, over all zones (the node's digest counts them too, so
    /// a digest never recurs).
    writes_held: u64,
    /// [`state_digest`] of the above, kept current: every peer reads it
    /// four times a second.
    state: u64,
    clock: Clock,
    scheduler: SyncScheduler,
    policy: PullPolicy,
    in_flight: BTreeMap<u64, InFlight>,
    started_us: u64,
}

/// Oracle mode's shared view.
struct Oracle {
    known: Vec<bool>,
    /// A rebuild is scheduled.
    rebuild_pending: bool,
    /// Per site: the view its members replicate with.
    site_views: Vec<Rc<PeerView>>,
}

/// A running simulation.
pub struct World {
    sc: Scenario,
    net: Net,
    rng: StdRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    nodes: Vec<Node>,
    oracle: Option<Oracle>,
    settings: GossipSettings,
    tiers: TierConfig,
    next_token: u64,
    zone_names: Vec<String>,
    /// Per (origin node, zone, seq): the write's index in the stats.
    write_ids: HashMap<(u32, u32, u64), u32>,
    /// Tokio's paused clock, as far as it has been advanced.
    clock_us: u64,
    /// The crash currently open for each node, as an index into stats.
    open_crash: Vec<Option<usize>>,
    /// Stats gathered as the run goes.
    pub stats: Stats,
    /// Print a line every virtual minute.
    pub progress: bool,
    /// Pulls in flight across the cluster.
    pulls_in_flight: usize,
    /// Convergence measurements waiting: label and since when.
    pending: Vec<(String, u64)>,
    /// Seed nodes, as an operator lists them: the first node of the first
    /// site of up to three regions.
    seeds: Vec<usize>,
}

fn wire_name(labels: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn state_digest(digests: &[u64], writes_held: u64) -> u64 {
    let d = digests.iter().enumerate().fold(0u64, |acc, (i, d)| {
        acc.wrapping_add(d.wrapping_mul(0x9E37_79B9_7F4A_7C15u64.wrapping_add(2 * i as u64 + 1)))
    });
    let d = d ^ writes_held.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29);
    // 0 means "not heard" to the pull loop.
    d.max(1)
}

impl World {
    /// A world for `sc` with `seed`.
    pub fn new(sc: Scenario, seed: u64) -> World {
        let n = sc.topology.nodes();
        let net = Net::new(sc.topology.clone(), sc.network.clone());
        chitchat::seed_shuffles(seed ^ 0xC417_C4A7);
        let settings = GossipSettings {
            interval: Duration::from_millis(sc.membership.gossip_interval_ms),
            phi_threshold: sc.membership.phi_threshold,
            ..GossipSettings::default()
        };
        let zones = sc.writes.zones.max(1);
        let nodes = (0..n)
            .map(|i| Node {
                id: net.id(i),
                up: false,
                boot: 0,
                generation: 0,
                skew_ms: 0,
                mesh: None,
                zones: vec![ZoneReplica::new(); zones],
                digests: vec![0; zones],
                writes_held: 0,
                state: state_digest(&[], 0),
                clock: Clock::new(60_000),
                scheduler: SyncScheduler::with_entropy(
                    SyncLimits::default(),
                    (seed ^ (i as u64).wrapping_mul(0x5eed)).to_le_bytes(),
                ),
                policy: PullPolicy::default(),
                in_flight: BTreeMap::new(),
                started_us: 0,
            })
            .collect();
        let oracle = (sc.membership.mode == MembershipMode::Oracle).then(|| Oracle {
            known: vec![true; n],
            rebuild_pending: false,
            site_views: Vec::new(),
        });
        let mut w = World {
            stats: Stats::new(&sc, seed, n),
            net,
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            oracle,
            settings,
            tiers: TierConfig::default(),
            next_token: 0,
            zone_names: (0..zones).map(|z| format!("z{z}.example.")).collect(),
            write_ids: HashMap::new(),
            clock_us: 0,
            open_crash: vec![None; n],
            pending: Vec::new(),
            progress: false,
            pulls_in_flight: 0,
            seeds: (0..sc.topology.regions.min(3))
                .map(|r| r * sc.topology.sites_per_region * sc.topology.nodes_per_site)
                .collect(),
            sc,
        };
        w.rebuild_oracle();
        // Nodes start spread over `boot_spread_s`, as a rollout does; all
        // at once, every node first sees a near-empty mesh, takes itself
        // for a representative and relays everything.
        let spread = (w.sc.membership.boot_spread_s * SEC as f64) as u64;
        let per_site = w.sc.topology.nodes_per_site;
        for i in 0..n {
            // Seeds (each site's first three nodes) are up first, as an
            // operator starts them.
            let seed = i % per_site < 3;
            let at = if spread > 0 && !seed { w.rng.random_range(0..spread) } else { 0 };
            if at == 0 {
                w.boot(i, 0);
            } else {
                w.schedule(at, Ev::Boot { node: i });
            }
        }
        if w.sc.writes.rate_per_s > 0.0 {
            let at = (w.sc.writes.start_s * SEC as f64) as u64;
            w.schedule(at, Ev::Write);
        }
        for k in 0..w.sc.events.len() {
            let at = (w.sc.events[k].at_s * SEC as f64) as u64;
            w.schedule(at, Ev::Scheduled(k));
        }
        w.schedule(SEC, Ev::Sample);
        w
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued { at, seq: self.seq, ev }));
    }

    fn gossip_mode(&self) -> bool {
        self.oracle.is_none()
    }

    /// Runs to the end of the scenario.
    pub async fn run(&mut self) {
        let end = (self.sc.duration_s * SEC as f64) as u64;
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > end {
                break;
            }
            self.now = q.at;
            self.handle(q.ev).await;
        }
        self.now = end;
        self.finish();
    }

    /// Moves tokio's paused clock (which chitchat reads) to now.
    async fn sync_clock(&mut self) {
        if self.clock_us < self.now {
            tokio::time::advance(Duration::from_micros(self.now - self.clock_us)).await;
            self.clock_us = self.now;
        }
    }

    async fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Round { node, boot } => {
                if self.nodes[node].up && self.nodes[node].boot == boot {
                    self.sync_clock().await;
                    self.round(node);
                    let next = self.now + self.settings.interval.as_micros() as u64;
                    self.schedule(next, Ev::Round { node, boot });
                }
            }
            Ev::Gossip { to, to_addr, from, msg } => {
                if self.nodes[to].up {
                    self.sync_clock().await;
                    self.on_gossip(to, to_addr, from, msg);
                }
            }
            Ev::Push { to, zone, write, delta, hop } => self.on_push(to, zone, write, &delta, hop),
            Ev::AntiEntropy { node, boot } => {
                if self.nodes[node].up && self.nodes[node].boot == boot {
                    self.anti_entropy(node);
                    self.schedule(self.now + ANTI_ENTROPY_US, Ev::AntiEntropy { node, boot });
                }
            }
            Ev::PullRequest { to, from, from_boot, token } => self.on_pull_request(to, from, from_boot, token),
            Ev::PullAnswer { to, boot, token, deltas } => self.on_pull_answer(to, boot, token, deltas),
            Ev::PullTimeout { node, boot, token } => {
                if self.nodes[node].boot == boot
                    && let Some(f) = self.nodes[node].in_flight.remove(&token)
                {
                    self.pulls_in_flight -= 1;
                    let now_ms = self.ms_since_start(node);
                    self.nodes[node].scheduler.pull_done(&f.pull, false, now_ms);
                    self.stats.pull_failures += 1;
                }
            }
            Ev::Write => {
                self.write();
                let gap = (SEC as f64 / self.sc.writes.rate_per_s) as u64;
                // By default writing stops 20 s before the end, so the final
                // convergence check sees a quiet cluster.
                let stop = if self.sc.writes.stop_s > 0.0 { self.sc.writes.stop_s } else { self.sc.duration_s - 20.0 };
                if (self.now + gap) as f64 <= stop * SEC as f64 {
                    self.schedule(self.now + gap.max(1), Ev::Write);
                }
            }
            Ev::Scheduled(k) => self.scheduled(k),
            Ev::Crash { node } => self.crash(node),
            Ev::Boot { node } => self.boot(node, self.now),
            Ev::Restart { node, wipe } => {
                if !self.nodes[node].up {
                    if wipe {
                        self.stats.data_lost(node);
                        let zones = self.nodes[node].zones.len();
                        self.nodes[node].zones = vec![ZoneReplica::new(); zones];
                        self.nodes[node].digests = vec![0; zones];
                        self.nodes[node].writes_held = 0;
                        self.nodes[node].state = state_digest(&self.nodes[node].digests, 0);
                        self.nodes[node].clock = Clock::new(60_000);
                    }
                    self.boot(node, self.now);
                    self.stats.restarts += 1;
                }
            }
            Ev::Known { node, up, boot } => {
                // News of an incarnation that is gone is stale: a node
                // restarted within the detection delay stays known (the
                // mesh sees its new generation, not a death).
                let current = self.nodes[node].boot == boot && self.nodes[node].up == up;
                if current && let Some(o) = &mut self.oracle {
                    o.known[node] = up;
                    // Views are rebuilt at most every ORACLE_REBUILD_US: a
                    // mass rejoin at 10,000 nodes is 2,000 such events, and
                    // each rebuild hashes the whole ring.
                    if !o.rebuild_pending {
                        o.rebuild_pending = true;
                        let at = self.now.div_ceil(ORACLE_REBUILD_US) * ORACLE_REBUILD_US;
                        self.schedule(at, Ev::RebuildOracle);
                    }
                }
            }
            Ev::RebuildOracle => {
                if let Some(o) = &mut self.oracle {
                    o.rebuild_pending = false;
                }
                self.rebuild_oracle();
            }
            Ev::Referral { node, boot, contacts } => {
                if self.nodes[node].boot == boot
                    && let Some(m) = self.nodes[node].mesh.as_mut()
                {
                    m.referral_pending = false;
                    m.fresh_referral = Some(contacts);
                }
            }
            Ev::Sample => {
                if self.now % (60 * SEC) < SEC && self.progress {
                    // Progress on stderr: not part of the results (it reads
                    // the wall clock), so determinism is untouched.
                    eprintln!(
                        "meshdns-sim: {} virtual s, {} nodes up",
                        self.now / SEC,
                        self.nodes.iter().filter(|n| n.up).count()
                    );
                }
                self.sample();
                self.schedule(self.now + SEC, Ev::Sample);
            }
        }
    }

    // ----- node life -----

    fn facts(&self, i: usize) -> NodeFacts {
        let p = self.net.place(i);
        let n = &self.nodes[i];
        NodeFacts {
            id: n.id.clone(),
            generation: n.generation,
            region: Net::region_name(p.region),
            site: Net::site_name(p.site),
            gossip: SocketAddr::new(Net::ip(i), GOSSIP_PORT),
            dns: None,
            grpc: None,
            quic: Some(SocketAddr::new(Net::ip(i), 8853)),
            version: "sim".into(),
            started_unix: 0,
            load: 0,
            state_digest: n.state,
            agreement: 0,
            agreement_digest: 0,
            zone_serials: String::new(),
            hot_names: String::new(),
            roles: Roles::default(),
        }
    }

    fn boot(&mut self, i: usize, at: u64) {
        let gossip = self.gossip_mode();
        let n = &mut self.nodes[i];
        n.up = true;
        n.boot += 1;
        n.generation += 1;
        n.started_us = at;
        // A restart is a new process: nothing of the pull loop survives.
        self.pulls_in_flight -= n.in_flight.len();
        n.in_flight.clear();
        n.policy = PullPolicy::default();
        n.scheduler = SyncScheduler::with_entropy(SyncLimits::default(), ((i as u64) << 16 ^ n.boot).to_le_bytes());
        if gossip {
            let facts = self.facts(i);
            let mut m = Membership {
                core: MeshCore::new(facts, self.tiers),
                pools: BTreeMap::new(),
                leaving: BTreeMap::new(),
                joins: 0,
                peers: None,
                referred: Vec::new(),
                fresh_referral: None,
                referral_pending: false,
                last_referral: None,
                hint_offset: 0,
                stopping: Vec::new(),
            };
            let mut actions = Vec::new();
            while let Some(a) = m.core.poll_action() {
                actions.push(a);
            }
            self.nodes[i].mesh = Some(m);
            for a in actions {
                self.act(i, a);
            }
            let phase = self.rng.random_range(0..self.settings.interval.as_micros() as u64);
            let boot = self.nodes[i].boot;
            self.schedule(at + phase + 1, Ev::Round { node: i, boot });
        } else if at > 0 {
            let delay = (self.sc.membership.join_s * SEC as f64) as u64;
            let boot = self.nodes[i].boot;
            self.schedule(at + delay, Ev::Known { node: i, up: true, boot });
        }
        let boot = self.nodes[i].boot;
        let phase = self.rng.random_range(0..ANTI_ENTROPY_US);
        self.schedule(at + phase + 1, Ev::AntiEntropy { node: i, boot });
    }

    fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if !n.up {
            return;
        }
        n.up = false;
        n.mesh = None;
        self.pulls_in_flight -= n.in_flight.len();
        n.in_flight.clear();
        let c = self.stats.crash(i, self.now);
        let up = self.nodes.iter().filter(|n| n.up).count();
        self.stats.crash_witnesses(c, up);
        self.open_crash[i] = Some(c);
        if self.oracle.is_some() {
            let delay = (self.sc.membership.detection_s * SEC as f64) as u64;
            let boot = self.nodes[i].boot;
            self.schedule(self.now + delay, Ev::Known { node: i, up: false, boot });
        }
    }

    // ----- gossip mode: the driver -----

    fn send_gossip(&mut self, from_node: usize, from: SocketAddr, to: SocketAddr, msg: ChitchatMessage) {
        let Some(to_node) = self.net.node_of(to) else { return };
        let envelope = ChitchatEnvelope { version: PROTOCOL_VERSION, message: msg };
        let bytes = envelope.serialized_len() + DATAGRAM_OVERHEAD;
        let msg = envelope.message;
        self.stats.gossip_bytes(from_node, bytes);
        if let Some(d) = self.net.datagram(&mut self.rng, from_node, to_node, bytes) {
            self.schedule(self.now + d, Ev::Gossip { to: to_node, to_addr: to, from, msg });
        }
    }

    fn on_gossip(&mut self, to: usize, to_addr: SocketAddr, from: SocketAddr, msg: ChitchatMessage) {
        let now = self.now;
        let Some(m) = self.nodes[to].mesh.as_mut() else { return };
        m.stopping.retain(|(until, _)| *until > now);
        let Membership { pools, stopping, .. } = m;
        let live = pools.values_mut().find(|p| p.addr == to_addr);
        let Some(inst) = live.or_else(|| stopping.iter_mut().map(|(_, p)| p).find(|p| p.addr == to_addr)) else {
            return;
        };
        if let Some(reply) = inst.cc.process_message(msg) {
            self.send_gossip(to, to_addr, from, reply);
        }
    }

    /// One gossip round in every pool, then the driver's step (the node
    /// steps every quarter round; once per round here, to save time).
    fn round(&mut self, i: usize) {
        let Some(mut m) = self.nodes[i].mesh.take() else { return };
        let mut out: Vec<(SocketAddr, SocketAddr, ChitchatMessage)> = Vec::new();
        for inst in m.pools.values_mut() {
            let me = inst.cc.self_chitchat_id().clone();
            let peers: BTreeSet<SocketAddr> =
                inst.cc.node_states().keys().filter(|id| **id != me).map(|id| id.gossip_advertise_addr).collect();
            let live: BTreeSet<SocketAddr> =
                inst.cc.live_nodes().filter(|id| **id != me).map(|id| id.gossip_advertise_addr).collect();
            let dead: BTreeSet<SocketAddr> = inst.cc.dead_nodes().map(|id| id.gossip_advertise_addr).collect();
            let seeds: BTreeSet<SocketAddr> = inst.seeds.iter().filter(|a| **a != inst.addr).copied().collect();
            let (picked, dead_pick, seed_pick) =
                chitchat::select_nodes_for_gossip(&mut self.rng, peers, live, dead, seeds);
            inst.cc.update_self_heartbeat();
            inst.cc.gc_keys_marked_for_deletion();
            for to in picked.into_iter().chain(dead_pick).chain(seed_pick) {
                out.push((inst.addr, to, inst.cc.create_syn_message()));
            }
            inst.cc.update_nodes_liveness();
        }
        self.nodes[i].mesh = Some(m);
        for (from, to, msg) in out {
            self.send_gossip(i, from, to, msg);
        }
        self.step(i);
    }

    fn step(&mut self, i: usize) {
        let now_instant = tokio::time::Instant::now();
        let suspect_after = self.settings.interval * self.settings.suspect_intervals;
        let Some(mut m) = self.nodes[i].mesh.take() else { return };
        let mut actions = Vec::new();
        let joined: Vec<Pool> = m.pools.keys().cloned().collect();
        for p in joined {
            let Some(inst) = m.pools.get_mut(&p) else { continue };
            let read = inst.state.read(&inst.cc, now_instant, suspect_after);
            self.stats.bad_relay_records += read.bad_records;
            m.core.handle_pool_view(p, read.records);
            while let Some(a) = m.core.poll_action() {
                actions.push(a);
            }
        }
        // A few rounds in the site pool, then upper pools (the driver's rule).
        let site_pool = Pool::site(&m.core.me().region, &m.core.me().site);
        let heard = m.pools.get(&site_pool).is_some_and(|p| p.cc.live_nodes().count() > 1);
        let up_for = Duration::from_micros(self.now - self.nodes[i].started_us);
        if !m.core.settled() && settle_now(heard, up_for, self.settings.interval) {
            m.core.settle();
            while let Some(a) = m.core.poll_action() {
                actions.push(a);
            }
        }
        self.nodes[i].mesh = Some(m);
        for a in actions {
            self.act(i, a);
        }
        self.finish_leaves(i);
        // Pools the core wants but that are not started.
        let missing: Vec<Pool> = match &self.nodes[i].mesh {
            Some(m) => m.core.pools().iter().filter(|p| !m.pools.contains_key(*p)).cloned().collect(),
            None => return,
        };
        for p in missing {
            self.join(i, p);
        }
        let digest = self.nodes[i].state;
        if let Some(m) = self.nodes[i].mesh.as_mut() {
            let mut facts = m.core.me().clone();
            facts.state_digest = digest;
            m.core.set_facts(facts);
            let me = m.core.me().clone();
            let Membership { core, pools, .. } = m;
            for (p, inst) in pools.iter_mut() {
                let relays = core.relays(p);
                if inst.state.needs_publish(&me, &relays) {
                    inst.state.publish(&mut inst.cc, &me, &relays);
                }
            }
        }
        self.seek_contacts(i);
    }

    /// The driver's `seek_contacts`: ask the seeds for a referral (often
    /// while some pool is empty or young, rarely otherwise) and gossip to
    /// members known or referred to belong in a pool but not live in it.
    fn seek_contacts(&mut self, i: usize) {
        let now = self.now;
        let interval = self.settings.interval.as_micros() as u64;
        let seeds = self.seeds.clone();
        let Some(m) = self.nodes[i].mesh.as_mut() else { return };
        let fresh = m.fresh_referral.take();
        let fresh_referral = fresh.is_some();
        if let Some(c) = fresh {
            m.referred = c;
        }
        let me = m.core.me().id.clone();
        let mut lonely = false;
        let mut forming = false;
        let mut missing: Vec<(Pool, Vec<SocketAddr>)> = Vec::new();
        for (p, inst) in &m.pools {
            let self_id = inst.cc.self_chitchat_id();
            let live: BTreeSet<SocketAddr> =
                inst.cc.live_nodes().filter(|id| *id != self_id).map(|id| id.gossip_advertise_addr).collect();
            lonely |= live.is_empty();
            forming |= now - inst.joined_at < interval * u64::from(referral::FORMING_ROUNDS);
            let targets = hint_targets(p, &me, m.core.records().values(), &m.referred);
            let gaps = referral::missing_targets(&targets, &live);
            if !gaps.is_empty() {
                missing.push((p.clone(), gaps));
            }
        }
        let every = referral::referral_interval(lonely, forming).as_micros() as u64;
        let mut ask = false;
        if !seeds.is_empty() && !m.referral_pending && m.last_referral.is_none_or(|t| now - t >= every) {
            m.last_referral = Some(now);
            m.referral_pending = true;
            ask = true;
        }
        let mut sends = Vec::new();
        for (p, targets) in missing {
            let Membership { pools, hint_offset, .. } = &mut *m;
            let Some(inst) = pools.get_mut(&p) else { continue };
            if !fresh_referral && inst.last_hinted.is_some_and(|t| now - t < interval) {
                continue;
            }
            inst.last_hinted = Some(now);
            let start = *hint_offset % targets.len();
            for addr in targets.iter().cycle().skip(start).take(targets.len().min(8)) {
                sends.push((inst.addr, *addr, inst.cc.create_syn_message()));
            }
            *hint_offset = hint_offset.wrapping_add(8);
        }
        for (from, to, msg) in sends {
            self.send_gossip(i, from, to, msg);
        }
        if ask {
            self.ask_seeds(i);
        }
    }

    /// Asks every seed for contacts; the answers (each a round trip later)
    /// arrive together, as the driver collects them.
    fn ask_seeds(&mut self, i: usize) {
        let mut contacts = Vec::new();
        let mut slowest = 0;
        for s in self.seeds.clone() {
            if s == i || !self.nodes[s].up {
                continue;
            }
            let (Some(there), Some(back)) =
                (self.net.stream(&mut self.rng, i, s, 100), self.net.stream(&mut self.rng, s, i, 2_000))
            else {
                continue;
            };
            slowest = slowest.max(there + back);
            if let Some(m) = &self.nodes[s].mesh {
                contacts.extend(referral::contacts(m.core.me(), m.core.records().values()));
            }
        }
        let boot = self.nodes[i].boot;
        self.schedule(self.now + slowest.max(1_000), Ev::Referral { node: i, boot, contacts });
    }

    fn act(&mut self, i: usize, a: Action) {
        match a {
            Action::JoinPool(p) => self.join(i, p),
            Action::LeavePool(p) => {
                let now = self.now;
                let Some(m) = self.nodes[i].mesh.as_mut() else { return };
                if m.pools.contains_key(&p) {
                    m.leaving.entry(p).or_insert((now, None));
                } else {
                    m.core.pool_left(&p);
                }
            }
            Action::Event(e) => {
                if let Some(m) = self.nodes[i].mesh.as_mut() {
                    m.peers = None;
                }
                self.on_membership_event(i, e);
            }
        }
    }

    fn on_membership_event(&mut self, observer: usize, e: MembershipEvent) {
        match e {
            MembershipEvent::Down(id, why) => {
                let Some(t) = self.net.index_of(&id) else { return };
                if let Some(c) = self.open_crash[t] {
                    self.stats.detected(c, observer, self.now);
                } else if self.nodes[t].up && self.net.reachable(observer, t) && why != Liveness::Left {
                    self.stats.false_positive(observer, t, self.now);
                }
            }
            MembershipEvent::Up(_) => {}
        }
    }

    fn join(&mut self, i: usize, p: Pool) {
        let facts = self.facts(i);
        let site_start = self.net.site_start(i);
        let per_site = self.sc.topology.nodes_per_site;
        let Some(m) = self.nodes[i].mesh.as_mut() else { return };
        m.leaving.remove(&p);
        if m.pools.contains_key(&p) {
            return;
        }
        let me = m.core.me().clone();
        let Some(addr) = pool_addr(facts.gossip, &p) else { return };
        m.joins += 1;
        let config = chitchat_config("sim", &p, m.joins, &me, &self.settings, addr);
        // Site pools start from seeds (the first three nodes of the site),
        // as an operator configures them; upper pools from what the core knows.
        let seeds: BTreeSet<SocketAddr> = match p {
            Pool::Site { .. } => {
                (site_start..site_start + per_site.min(3)).map(|k| SocketAddr::new(Net::ip(k), GOSSIP_PORT)).collect()
            }
            _ => BTreeSet::new(),
        };
        let (_tx, rx) = tokio::sync::watch::channel(seeds.iter().copied().collect::<HashSet<_>>());
        let initial = initial_keys(&me);
        let cc = Chitchat::with_chitchat_id_and_seeds(config, rx, initial.clone());
        let joined_at = self.now;
        m.pools.insert(p, PoolInst { cc, state: PoolState::new(initial), addr, seeds, last_hinted: None, joined_at });
    }

    fn finish_leaves(&mut self, i: usize) {
        let interval = self.settings.interval.as_micros() as u64;
        let now = self.now;
        let Some(m) = self.nodes[i].mesh.as_mut() else { return };
        let mut due = Vec::new();
        let pools: Vec<Pool> = m.leaving.keys().cloned().collect();
        for p in pools {
            let present = m.core.successors_present(&p);
            let Some(l) = m.leaving.get_mut(&p) else { continue };
            l.1 = if present { l.1.or(Some(now)) } else { None };
            let settled = l.1.is_some_and(|t| now - t >= 2 * interval);
            if settled || now - l.0 >= 20 * interval {
                due.push(p);
            }
        }
        let mut sends = Vec::new();
        for p in due {
            m.leaving.remove(&p);
            m.core.pool_left(&p);
            if let Some(mut inst) = m.pools.remove(&p) {
                let peers = announce_leave(&mut inst.cc, true);
                for to in peers {
                    sends.push((inst.addr, to, inst.cc.create_syn_message()));
                }
                m.stopping.push((now + interval, inst));
            }
        }
        let mut actions = Vec::new();
        while let Some(a) = m.core.poll_action() {
            actions.push(a);
        }
        for (from, to, msg) in sends {
            self.send_gossip(i, from, to, msg);
        }
        for a in actions {
            self.act(i, a);
        }
    }

    // ----- who replicates with whom -----

    fn as_peer(&self, i: usize, region_rep: bool, global_rep: bool) -> Peer {
        let p = self.net.place(i);
        Peer {
            id: self.nodes[i].id.clone(),
            region: Net::region_name(p.region),
            site: Net::site_name(p.site),
            region_rep,
            global_rep,
        }
    }

    /// Oracle mode: the tier plan over the known-live members, and per site
    /// the members its nodes push to and pull from.
    fn rebuild_oracle(&mut self) {
        let Some(o) = &self.oracle else { return };
        let known: Vec<usize> = (0..self.nodes.len()).filter(|&i| o.known[i]).collect();
        let ring = Ring::new(known.iter().map(|&i| {
            let p = self.net.place(i);
            Member::new(self.nodes[i].id.clone(), Net::region_name(p.region), Net::site_name(p.site))
        }));
        let site_reps = site_representatives(&ring, &self.tiers);
        let region_reps = region_representatives(&ring, &self.tiers);
        let peer = |i: usize| {
            let id = &self.nodes[i].id;
            self.as_peer(i, site_reps.contains(id), region_reps.contains(id))
        };
        let sites = self.net.nodes() / self.sc.topology.nodes_per_site;
        let upper: Vec<usize> = known.iter().copied().filter(|&i| site_reps.contains(&self.nodes[i].id)).collect();
        let mut views = Vec::with_capacity(sites);
        for s in 0..sites {
            let start = s * self.sc.topology.nodes_per_site;
            let region = self.net.place(start).region;
            let mut members: BTreeSet<usize> = known.iter().copied().filter(|&i| self.net.site_index(i) == s).collect();
            for &u in &upper {
                let pu = self.net.place(u);
                if pu.region == region || region_reps.contains(&self.nodes[u].id) {
                    members.insert(u);
                }
            }
            let idx: Vec<usize> = members.into_iter().collect();
            let members = idx.iter().map(|&i| peer(i)).collect();
            views.push(Rc::new(PeerView { me: peer(start), members, idx }));
        }
        if let Some(o) = &mut self.oracle {
            o.site_views = views;
        }
    }

    /// This node and the live members it replicates with, and the current
    /// view's state digests.
    fn peer_view(&mut self, i: usize) -> Option<(Peer, Rc<PeerView>)> {
        if let Some(o) = &self.oracle {
            let v = o.site_views.get(self.net.site_index(i))?.clone();
            let me = v.idx.iter().position(|&k| k == i).map(|at| v.members[at].clone());
            let me = me.unwrap_or_else(|| self.as_peer(i, false, false));
            return Some((me, v));
        }
        let m = self.nodes[i].mesh.as_mut()?;
        let roles = m.core.roles();
        if m.peers.as_ref().is_none_or(|v| (v.me.region_rep, v.me.global_rep) != (roles.region, roles.global)) {
            let f = m.core.me();
            let me = Peer {
                id: f.id.clone(),
                region: f.region.clone(),
                site: f.site.clone(),
                region_rep: roles.region,
                global_rep: roles.global,
            };
            // Only those push or pull can name (push_targets and pulls_from
            // choose among them exactly as among all members).
            let (members, idx): (Vec<Peer>, Vec<usize>) = m
                .core
                .records()
                .values()
                .filter(|r| r.facts.id != me.id && r.liveness == Liveness::Alive)
                .filter(|r| {
                    r.facts.region == me.region && (r.facts.site == me.site || r.facts.roles.region)
                        || r.facts.roles.global
                })
                .filter_map(|r| {
                    let k = self.net.index_of(&r.facts.id)?;
                    let peer = Peer {
                        id: r.facts.id.clone(),
                        region: r.facts.region.clone(),
                        site: r.facts.site.clone(),
                        region_rep: r.facts.roles.region,
                        global_rep: r.facts.roles.global,
                    };
                    Some((peer, k))
                })
                .unzip();
            m.peers = Some(Rc::new(PeerView { me, members, idx }));
        }
        let v = m.peers.clone()?;
        Some((v.me.clone(), v))
    }

    // ----- replication -----

    fn wall_ms(&self, i: usize) -> u64 {
        (EPOCH_MS + self.now / 1_000).saturating_add_signed(self.nodes[i].skew_ms)
    }

    fn ms_since_start(&self, i: usize) -> u64 {
        (self.now - self.nodes[i].started_us.min(self.now)) / 1_000
    }

    fn write(&mut self) {
        let n = self.nodes.len();
        let mut writer = None;
        for _ in 0..64 {
            let k = self.rng.random_range(0..n);
            if self.nodes[k].up {
                writer = Some(k);
                break;
            }
        }
        let Some(i) = writer else { return };
        let zone = self.rng.random_range(0..self.zone_names.len());
        let name = self.rng.random_range(0..self.sc.writes.names_per_zone);
        let owner = wire_name(&[&format!("n{name}"), &format!("z{zone}"), "example"]);
        let Some(key) = EntryKey::new(&owner, 16) else { return };
        let mut text = vec![0u8; self.sc.writes.record_bytes.clamp(1, 255)];
        self.rng.fill(&mut text[..]);
        text[0] = (text.len() - 1) as u8;
        let rrset = RRset::new(300, vec![text]);
        let wall = self.wall_ms(i);
        let hlc = self.nodes[i].clock.tick(wall);
        let id = self.nodes[i].id.clone();
        let old = self.nodes[i].zones[zone].entries().get(&key).and_then(|e| e.value.clone());
        let w = self.nodes[i].zones[zone].write(&id, hlc, key.clone(), Some(rrset.clone()));
        let d = &mut self.nodes[i].digests[zone];
        if let Some(old) = old {
            *d = d.wrapping_sub(rrset_digest(&key, &old));
        }
        *d = d.wrapping_add(rrset_digest(&key, &rrset));
        let n = &mut self.nodes[i];
        n.writes_held += 1;
        n.state = state_digest(&n.digests, n.writes_held);
        let delta = Delta { origin: id, covered: vec![(w.seq, w.seq)], writes: vec![w.clone()] };
        let bytes = meshdns_replication::wire::encode(&self.zone_names[zone], &delta).len() + STREAM_OVERHEAD;
        let quiet = !self.net.partitioned() && self.stats.quiet(self.now);
        let idx = self.stats.write(WriteTrack::new(i, zone, self.now, bytes, quiet, &self.nodes_up()));
        self.write_ids.insert((i as u32, zone as u32, w.seq), idx);
        self.stats.visible(idx, i, self.now);
        self.push(i, zone, idx, Rc::new(delta), Hop::Local);
    }

    fn nodes_up(&self) -> Vec<bool> {
        self.nodes.iter().map(|n| n.up).collect()
    }

    fn push(&mut self, i: usize, zone: usize, write: u32, delta: Rc<Delta>, hop: Hop) {
        if !self.stats.first_forward(write, i, hop) {
            return;
        }
        let Some((me, view)) = self.peer_view(i) else { return };
        let bytes = self.stats.write_bytes(write);
        for (target, next) in push_targets(&me, &view.members, hop) {
            let Some(t) = self.net.index_of(&target) else { continue };
            self.stats.repl_bytes(bytes);
            if let Some(d) = self.net.stream(&mut self.rng, i, t, bytes) {
                self.schedule(self.now + d, Ev::Push { to: t, zone, write, delta: delta.clone(), hop: next });
            }
        }
    }

    fn on_push(&mut self, to: usize, zone: usize, write: u32, delta: &Delta, hop: Hop) {
        if !self.nodes[to].up {
            return;
        }
        self.apply(to, zone, std::slice::from_ref(delta));
        self.push(to, zone, write, Rc::new(delta.clone()), hop);
    }

    /// Applies deltas to a zone of node `i` the way the node does, keeping
    /// the digest up to date and recording which writes became visible.
    fn apply(&mut self, i: usize, zone: usize, deltas: &[Delta]) {
        let wall = self.wall_ms(i);
        for d in deltas {
            let Some(origin) = self.net.index_of(&d.origin) else { continue };
            let mut fresh = Vec::new();
            let mut digest = self.nodes[i].digests[zone];
            {
                let replica = &self.nodes[i].zones[zone];
                let known = replica.knowledge().get(&d.origin);
                let mut keys = BTreeSet::new();
                // Every number a delta covers is held afterwards, also those
                // of writes already superseded (not carried).
                for &(a, b) in &d.covered {
                    for seq in a..=b.min(a.saturating_add(1_000_000)) {
                        if !known.is_some_and(|s| s.contains(seq)) {
                            fresh.push(seq);
                        }
                    }
                }
                for w in &d.writes {
                    keys.insert(w.key.clone());
                }
                for k in &keys {
                    if let Some(v) = replica.entries().get(k).and_then(|e| e.value.as_ref()) {
                        digest = digest.wrapping_sub(rrset_digest(k, v));
                    }
                }
            }
            for w in &d.writes {
                // The node refuses stamps too far ahead of its clock.
                if self.nodes[i].clock.observe(w.hlc, wall).is_err() {
                    self.stats.drift_refusals += 1;
                }
            }
            let replica = &mut self.nodes[i].zones[zone];
            replica.apply_delta(d.clone());
            let keys: BTreeSet<&EntryKey> = d.writes.iter().map(|w| &w.key).collect();
            for k in keys {
                if let Some(v) = replica.entries().get(k).and_then(|e| e.value.as_ref()) {
                    digest = digest.wrapping_add(rrset_digest(k, v));
                }
            }
            let n = &mut self.nodes[i];
            n.digests[zone] = digest;
            n.writes_held += fresh.len() as u64;
            n.state = state_digest(&n.digests, n.writes_held);
            for seq in fresh {
                if let Some(&idx) = self.write_ids.get(&(origin as u32, zone as u32, seq)) {
                    self.stats.visible(idx, i, self.now);
                }
            }
        }
    }

    fn anti_entropy(&mut self, i: usize) {
        let Some((me, view)) = self.peer_view(i) else { return };
        let mine = self.nodes[i].state;
        let now_ms = self.ms_since_start(i);
        let oracle = self.oracle.is_some();
        for (p, k) in view.members.iter().zip(&view.idx) {
            if !pulls_from(&me, p) {
                continue;
            }
            let theirs = self.gossiped_digest(i, p, *k, oracle);
            if theirs == 0 {
                continue;
            }
            let n = &mut self.nodes[i];
            n.policy.observe(&mut n.scheduler, &p.id, theirs, mine, now_ms);
        }
        while let Some(pull) = self.nodes[i].scheduler.poll(now_ms) {
            // Only pool mates that gossiped a digest are scheduled; look the
            // peer up again only for the few pulls that start.
            let found = view.members.iter().zip(&view.idx).find(|(p, _)| p.id == pull.peer);
            let Some((p, &peer)) = found else {
                self.nodes[i].scheduler.peer_gone(&pull.peer);
                continue;
            };
            let digest = self.gossiped_digest(i, p, peer, oracle);
            self.next_token += 1;
            let token = self.next_token;
            self.nodes[i].in_flight.insert(token, InFlight { pull, digest });
            self.pulls_in_flight += 1;
            self.stats.pull_started(self.now, self.pulls_in_flight);
            let boot = self.nodes[i].boot;
            // The request carries a version vector per zone.
            let bytes =
                STREAM_OVERHEAD + self.nodes[i].zones.iter().map(|z| 24 * z.knowledge().len() + 16).sum::<usize>();
            self.stats.repl_bytes(bytes);
            if let Some(d) = self.net.stream(&mut self.rng, i, peer, bytes) {
                self.schedule(self.now + d, Ev::PullRequest { to: peer, from: i, from_boot: boot, token });
            }
            self.schedule(self.now + PULL_TIMEOUT_US, Ev::PullTimeout { node: i, boot, token });
        }
        self.stats.in_flight_sample(self.nodes[i].scheduler.in_flight());
    }

    /// The digest node `i` sees for pool mate `p` (node `k`). Gossip mode:
    /// the digest the peer gossiped (relayed records carry none: only
    /// direct pool mates are pulled from). Oracle mode has no gossip: the
    /// peer's digest is read as it is. 0: not heard.
    fn gossiped_digest(&self, i: usize, p: &Peer, k: usize, oracle: bool) -> u64 {
        if oracle {
            return self.nodes[k].state;
        }
        self.nodes[i].mesh.as_ref().and_then(|m| m.core.records().get(&p.id)).map_or(0, |r| r.facts.state_digest)
    }

    fn on_pull_request(&mut self, to: usize, from: usize, from_boot: u64, token: u64) {
        if !self.nodes[to].up || self.nodes[from].boot != from_boot {
            return;
        }
        let mut deltas = Vec::new();
        let mut bytes = STREAM_OVERHEAD;
        for z in 0..self.nodes[to].zones.len() {
            let theirs = self.nodes[from].zones[z].version_vector();
            if let Ok(ds) = self.nodes[to].zones[z].deltas_for(&theirs) {
                for d in &ds {
                    bytes += meshdns_replication::wire::encode(&self.zone_names[z], d).len();
                }
                if !ds.is_empty() {
                    deltas.push((z, ds));
                }
            }
        }
        self.stats.repl_bytes(bytes);
        self.stats.pull_bytes += bytes as u64;
        if let Some(d) = self.net.stream(&mut self.rng, to, from, bytes) {
            self.schedule(self.now + d, Ev::PullAnswer { to: from, boot: from_boot, token, deltas });
        }
    }

    fn on_pull_answer(&mut self, i: usize, boot: u64, token: u64, deltas: Vec<(usize, Vec<Delta>)>) {
        if self.nodes[i].boot != boot || !self.nodes[i].up {
            return;
        }
        let Some(f) = self.nodes[i].in_flight.remove(&token) else { return };
        self.pulls_in_flight -= 1;
        for (z, ds) in deltas {
            self.apply(i, z, &ds);
        }
        let now_ms = self.ms_since_start(i);
        let n = &mut self.nodes[i];
        n.scheduler.pull_done(&f.pull, true, now_ms);
        n.policy.pulled(&f.pull.peer, f.digest, now_ms);
        self.stats.pulls += 1;
    }

    // ----- the schedule -----

    fn random_up(&mut self, count: usize) -> Vec<usize> {
        let mut up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].up).collect();
        let mut out = Vec::new();
        while out.len() < count && !up.is_empty() {
            let k = self.rng.random_range(0..up.len());
            out.push(up.swap_remove(k));
        }
        out.sort_unstable();
        out
    }

    fn scheduled(&mut self, k: usize) {
        let kind = self.sc.events[k].kind.clone();
        let label = format!("{} at {}s", kind_label(&kind), self.sc.events[k].at_s);
        self.stats.fault(self.now, &label);
        match kind {
            EventKind::Crash { count, down_s } => {
                for i in self.random_up(count) {
                    self.crash(i);
                    if let Some(d) = down_s {
                        self.schedule(self.now + (d * SEC as f64) as u64, Ev::Restart { node: i, wipe: false });
                    }
                }
                if let Some(d) = down_s {
                    self.pending.push((label, self.now + (d * SEC as f64) as u64));
                }
            }
            EventKind::Partition { region, site } => self.net.cut(region, site),
            EventKind::Heal => {
                self.net.heal();
                self.pending.push((label, self.now));
            }
            EventKind::RollingRestart { every_s, down_s, count } => {
                let n = count.unwrap_or(self.nodes.len()).min(self.nodes.len());
                let mut last = self.now;
                for j in 0..n {
                    // Spread over the sites: node j of the order visits every site in turn.
                    let per_site = self.sc.topology.nodes_per_site;
                    let sites = self.nodes.len() / per_site;
                    let i = (j % sites) * per_site + (j / sites) % per_site;
                    let at = self.now + (j as f64 * every_s * SEC as f64) as u64;
                    last = at + (down_s * SEC as f64) as u64;
                    self.schedule(at, Ev::Crash { node: i });
                    self.schedule(last, Ev::Restart { node: i, wipe: false });
                }
                self.pending.push((label, last));
            }
            EventKind::MassRejoin { fraction, down_s } => {
                let count = (self.nodes.len() as f64 * fraction).round() as usize;
                let back = self.now + (down_s * SEC as f64) as u64;
                for i in self.random_up(count) {
                    self.crash(i);
                    self.schedule(back, Ev::Restart { node: i, wipe: true });
                }
                self.stats.mass_rejoin(back, count);
                self.pending.push((label, back));
            }
            EventKind::ClockSkew { count, skew_ms } => {
                for i in self.random_up(count) {
                    self.nodes[i].skew_ms = skew_ms;
                }
            }
        }
    }

    // ----- measurements -----

    fn sample(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].up).collect();
        self.stats.second(self.now, up.len(), self.pulls_in_flight);
        if self.pending.iter().all(|(_, since)| *since > self.now) {
            return;
        }
        // Writes go on while convergence is measured: converged means every
        // up node holds every write made more than a second ago (equal
        // digests would also wait for the writes still being pushed).
        let data = self.stats.all_hold_writes_before(&up, self.now.saturating_sub(SEC));
        let members = !self.gossip_mode() || self.members_converged(&up);
        let now = self.now;
        let mut still = Vec::new();
        for (label, since) in std::mem::take(&mut self.pending) {
            if since <= now && data && members {
                self.stats.converged(&label, since, now);
            } else {
                still.push((label, since));
            }
        }
        self.pending = still;
    }

    fn data_converged(&self, up: &[usize]) -> bool {
        let mut it = up.iter().map(|&i| self.nodes[i].state);
        let Some(first) = it.next() else { return true };
        it.all(|d| d == first)
    }

    fn members_converged(&self, up: &[usize]) -> bool {
        let ids: Vec<&str> = up.iter().map(|&i| self.nodes[i].id.as_str()).collect();
        up.iter().all(|&i| match &self.nodes[i].mesh {
            Some(m) => {
                let ring = m.core.members();
                ring.len() == ids.len() && ids.iter().all(|id| ring.get(id).is_some())
            }
            None => false,
        })
    }

    fn finish(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].up).collect();
        let data = self.data_converged(&up);
        let members = !self.gossip_mode() || self.members_converged(&up);
        // The digests kept change by change must equal a full recount.
        let recount_ok =
            up.iter().all(|&i| self.nodes[i].zones.iter().zip(&self.nodes[i].digests).all(|(z, d)| z.digest() == *d));
        let ring = self.ring_figures();
        self.stats.finish(self.now, data, members, recount_ok, ring, &self.pending);
    }

    /// Ring balance over the final live membership, and keys moved when one
    /// member leaves or joins.
    fn ring_figures(&self) -> crate::stats::RingFigures {
        let members: Vec<Member> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up)
            .map(|i| {
                let p = self.net.place(i);
                Member::new(self.nodes[i].id.clone(), Net::region_name(p.region), Net::site_name(p.site))
            })
            .collect();
        crate::stats::RingFigures::measure(members, self.sc.ring.keys)
    }
}

fn kind_label(k: &EventKind) -> String {
    match k {
        EventKind::Crash { count, down_s } => match down_s {
            Some(d) => format!("crash {count} (back after {d}s)"),
            None => format!("crash {count}"),
        },
        EventKind::Partition { region, site: Some(s) } => format!("partition r{region}-s{s}"),
        EventKind::Partition { region, site: None } => format!("partition region r{region}"),
        EventKind::Heal => "heal".into(),
        EventKind::RollingRestart { every_s, down_s, count } => {
            format!(
                "rolling restart of {} nodes, every {every_s}s, {down_s}s down",
                count.map_or("all".into(), |c| c.to_string())
            )
        }
        EventKind::MassRejoin { fraction, down_s } => {
            format!("mass rejoin of {:.0}% after {down_s}s, data lost", fraction * 100.0)
        }
        EventKind::ClockSkew { count, skew_ms } => format!("clock skew {skew_ms} ms on {count} nodes"),
    }
}
