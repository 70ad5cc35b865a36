//! The async driver: chitchat pools on real UDP sockets around a
//! [`MeshCore`].
//!
//! [`Mesh::start`] spawns one task that, every tick (a quarter of the
//! gossip interval, at most 250 ms):
//!
//! 1. reads each joined pool's chitchat state into [`PeerRecord`]s and
//!    hands them to the core;
//! 2. carries out the core's actions: starts a chitchat instance for a
//!    pool to join (site pool on the base gossip port, region pool on the
//!    next, global on the one after), announces the leave and stops one
//!    to leave, and broadcasts membership events;
//! 3. publishes this node's facts and the core's relay records in each pool;
//! 4. gossips to the members the core knows, or seeds referred, to belong
//!    in a pool but that are not live in it ([`referral`]), and rejoins as
//!    a new incarnation a pool where a peer forged this node's own state;
//! 5. publishes a [`MeshSnapshot`] for the API, metrics and the CLI.
//!
//! All decisions are the core's; this module only moves bytes and reads
//! clocks, so the simulator can drive the same core with virtual time.

mod pool;
pub mod pool_state;
pub mod referral;
pub mod transport;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use meshdns_ring::Ring;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use self::pool::PoolRuntime;
use self::pool_state::pool_addr;
use self::referral::Contact;
use self::transport::{GossipAuth, Traffic};
use crate::core::{Action, MembershipEvent, MeshCore};
use crate::facts::{Liveness, NodeFacts, PeerRecord, Source};
use crate::tier::{Pool, TierConfig};

/// Gossip timing and garbage collection.
#[derive(Clone, Debug)]
pub struct GossipSettings {
    /// How often each pool gossips (chitchat's round).
    pub interval: Duration,
    /// phi-accrual threshold above which a member is declared dead.
    pub phi_threshold: f64,
    /// How long a dead member is remembered (and reported dead) before
    /// chitchat forgets it. chitchat's default of 24 h lets a churning pool
    /// collect enough dead members to overflow its digest datagram.
    pub dead_grace: Duration,
    /// How long a deleted key's tombstone is kept.
    pub tombstone_grace: Duration,
    /// A live member not heard from for this many gossip intervals is
    /// reported as suspect.
    pub suspect_intervals: u32,
}

impl Default for GossipSettings {
    fn default() -> Self {
        GossipSettings {
            interval: Duration::from_secs(1),
            phi_threshold: 8.0,
            dead_grace: Duration::from_secs(15 * 60),
            tombstone_grace: Duration::from_secs(60 * 60),
            suspect_intervals: 3,
        }
    }
}

/// Everything [`Mesh::start`] needs.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// Cluster name: nodes of different clusters never admit each other.
    pub cluster: String,
    /// This node (its roles are managed by the core).
    pub facts: NodeFacts,
    /// Representatives per tier.
    pub tiers: TierConfig,
    /// Seed gossip addresses (`host:port`; host names are re-resolved).
    pub seeds: Vec<String>,
    /// Timing.
    pub gossip: GossipSettings,
    /// The cluster keyring that authenticates gossip and referrals; `None`
    /// gossips unauthenticated (loopback, or `--insecure-gossip`).
    pub auth: Option<Arc<GossipAuth>>,
}

/// Why the mesh could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A pool's UDP port, or the referral TCP port, could not be bound.
    #[error(
        "cannot gossip in {pool:?} on {addr}: {reason} (choose another --gossip port; the node uses it and the next two)"
    )]
    Bind {
        /// Pool.
        pool: Pool,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        reason: String,
    },
    /// The base port leaves no room for the two upper pools.
    #[error("gossip port of {0} is too high: the node also uses the next two ports")]
    PortRange(SocketAddr),
}

/// One member as the API shows it.
#[derive(Clone, Debug)]
pub struct MemberView {
    /// What this node believes about it.
    pub record: PeerRecord,
    /// Time since its heartbeat last moved, for members heard directly.
    pub last_heard: Option<Duration>,
}

/// One joined pool as the API shows it.
#[derive(Clone, Debug)]
pub struct PoolStatus {
    /// The pool.
    pub pool: Pool,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Live members other than this node.
    pub live_peers: usize,
    /// (messages in, bytes in, messages out, bytes out) since start.
    pub traffic: (u64, u64, u64, u64),
}

/// The mesh as this node sees it at one moment.
#[derive(Clone, Debug)]
pub struct MeshSnapshot {
    /// Cluster name.
    pub cluster: String,
    /// This node, with its current roles.
    pub me: NodeFacts,
    /// Every member known, by id (this node included).
    pub members: BTreeMap<String, MemberView>,
    /// Live members as a ring.
    pub ring: Ring,
    /// Pools this node gossips in.
    pub pools: Vec<PoolStatus>,
    /// Pools that could not be joined, with why.
    pub pool_errors: Vec<(Pool, String)>,
    /// When the snapshot was taken.
    pub taken: Instant,
    /// When the merged view last changed.
    pub changed: Instant,
    /// Times the set of representatives changed, as seen here.
    pub representative_changes: u64,
    /// Relay records that could not be read, since start.
    pub bad_relay_records: u64,
    /// Pool instances restarted after their gossip task stopped.
    pub pool_restarts: u64,
    /// Gossip and referral messages refused by the keyring check, by cause
    /// (`None`: gossip is not authenticated).
    pub gossip_rejected: Option<BTreeMap<&'static str, u64>>,
    /// Pools rejoined as a new incarnation because a peer claimed state for
    /// this node's id that it never published.
    pub identity_refutations: u64,
}

/// A membership event with the wall-clock time it was seen.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The event.
    pub event: MembershipEvent,
}

enum Command {
    Leave(oneshot::Sender<()>),
}

/// A running mesh; dropping it stops gossip without announcing a leave
/// (call [`MeshHandle::leave`] first on a graceful shutdown).
pub struct MeshHandle {
    snapshot: Arc<ArcSwap<MeshSnapshot>>,
    events: broadcast::Sender<EventRecord>,
    commands: mpsc::Sender<Command>,
    load: Arc<AtomicU64>,
    state_digest: Arc<AtomicU64>,
    agreement: Arc<std::sync::Mutex<(u8, u64)>>,
    zone_serials: Arc<std::sync::Mutex<String>>,
    hot_names: Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
    referral_task: tokio::task::JoinHandle<()>,
}

impl Drop for MeshHandle {
    fn drop(&mut self) {
        self.task.abort();
        self.referral_task.abort();
    }
}

impl MeshHandle {
    /// The latest view.
    pub fn snapshot(&self) -> Arc<MeshSnapshot> {
        self.snapshot.load_full()
    }

    /// Membership events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.events.subscribe()
    }

    /// Sets the load figure published in gossip (queries per second).
    pub fn set_load(&self, qps: u64) {
        self.load.store(qps, Ordering::Relaxed);
    }

    /// Sets the digest of this node's replicated state published in gossip.
    pub fn set_state_digest(&self, digest: u64) {
        self.state_digest.store(digest, Ordering::Relaxed);
    }

    /// Sets how many hops around this node are known to hold its state
    /// digest (published in gossip beside the digest).
    pub fn set_agreement(&self, hops: u8, for_digest: u64) {
        *self.agreement.lock().unwrap_or_else(|e| e.into_inner()) = (hops, for_digest);
    }

    /// Sets the hot-name sketch published in gossip (see
    /// [`crate::NodeFacts::hot_names`]).
    pub fn set_hot_names(&self, sketch: String) {
        *self.hot_names.lock().unwrap_or_else(|e| e.into_inner()) = sketch;
    }

    /// Sets the per-zone serials published in gossip (`zone=serial,...`).
    pub fn set_zone_serials(&self, serials: String) {
        *self.zone_serials.lock().unwrap_or_else(|e| e.into_inner()) = serials;
    }

    /// Why gossip is down, if it is: the driver or the referral listener
    /// stopped, or a pool this node belongs in is not running. A node in
    /// that state still answers DNS but is cut off from the cluster, so it
    /// reports itself not ready.
    pub fn gossip_down(&self) -> Option<String> {
        if self.task.is_finished() {
            return Some("the mesh driver stopped".into());
        }
        if self.referral_task.is_finished() {
            return Some("the referral listener stopped".into());
        }
        let s = self.snapshot.load();
        if let Some((pool, why)) = s.pool_errors.first() {
            return Some(format!("cannot gossip in {pool:?}: {why}"));
        }
        let age = s.taken.elapsed();
        if age > STALE_SNAPSHOT {
            return Some(format!("the mesh driver has not stepped for {age:?}"));
        }
        None
    }

    /// Announces a leave in every pool, gives it `grace` to spread, and
    /// stops gossiping.
    pub async fn leave(&self, grace: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(grace, rx).await;
        }
    }
}

/// A snapshot older than this means the driver is stuck (it steps at least
/// four times a second).
const STALE_SNAPSHOT: Duration = Duration::from_secs(10);

/// Namespace for [`Mesh::start`].
pub struct Mesh;

#[allow(clippy::disallowed_methods)] // a driver: the one place that reads the wall clock
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Mesh {
    /// Binds the site pool and the referral listener, and starts the driver
    /// task. Fails if either address cannot be bound.
    pub async fn start(cfg: MeshConfig) -> Result<MeshHandle, MeshError> {
        let site = Pool::site(&cfg.facts.region, &cfg.facts.site);
        pool_addr(cfg.facts.gossip, &Pool::Global).ok_or(MeshError::PortRange(cfg.facts.gossip))?;
        let listener = tokio::net::TcpListener::bind(cfg.facts.gossip).await.map_err(|e| MeshError::Bind {
            pool: site.clone(),
            addr: cfg.facts.gossip,
            reason: format!("referral listener (TCP): {e}"),
        })?;
        let mut core = MeshCore::new(cfg.facts.clone(), cfg.tiers);
        let now = Instant::now();
        let snapshot = Arc::new(ArcSwap::from_pointee(MeshSnapshot {
            cluster: cfg.cluster.clone(),
            me: cfg.facts.clone(),
            members: BTreeMap::new(),
            ring: core.members().clone(),
            pools: Vec::new(),
            pool_errors: Vec::new(),
            taken: now,
            changed: now,
            representative_changes: 0,
            bad_relay_records: 0,
            pool_restarts: 0,
            gossip_rejected: cfg.auth.as_ref().map(|a| a.rejected()),
            identity_refutations: 0,
        }));
        let (events, _) = broadcast::channel(1024);
        let (commands, command_rx) = mpsc::channel(4);
        let load = Arc::new(AtomicU64::new(0));
        let state_digest = Arc::new(AtomicU64::new(cfg.facts.state_digest));
        let zone_serials = Arc::new(std::sync::Mutex::new(cfg.facts.zone_serials.clone()));
        let hot_names = Arc::new(std::sync::Mutex::new(cfg.facts.hot_names.clone()));
        let agreement = Arc::new(std::sync::Mutex::new((cfg.facts.agreement, cfg.facts.agreement_digest)));

        // The site pool must bind now, so a bad --gossip fails at start.
        let mut pools = BTreeMap::new();
        let traffic = Arc::new(Traffic::default());
        // Seeds are not handed to chitchat: a seed in another site would
        // answer every round with "wrong cluster". Referrals find the site.
        let first =
            PoolRuntime::start(&cfg.cluster, site.clone(), 0, core.me(), &cfg.gossip, traffic, cfg.auth.clone())
                .await?;
        pools.insert(site.clone(), first);
        // The core's first action is that join: it is done.
        let mut pending = Vec::new();
        while let Some(a) = core.poll_action() {
            if a != Action::JoinPool(site.clone()) {
                pending.push(a);
            }
        }

        let contacts_view = snapshot.clone();
        let referral_cluster = cfg.cluster.clone();
        let referral_auth = cfg.auth.clone();
        let listener = Arc::new(listener);
        // Supervised like the driver: a panic in the listener restarts it
        // on the same socket.
        let referral_task = tokio::spawn(restart_on_panic("the referral listener", move || {
            let view = contacts_view.clone();
            referral::serve(listener.clone(), referral_cluster.clone(), referral_auth.clone(), move || {
                contacts(&view.load())
            })
        }));
        let parts = DriverParts {
            cfg,
            snapshot: snapshot.clone(),
            events: events.clone(),
            load: load.clone(),
            state_digest: state_digest.clone(),
            agreement: agreement.clone(),
            zone_serials: zone_serials.clone(),
            hot_names: hot_names.clone(),
            joins: Arc::new(AtomicU64::new(0)),
        };
        let driver = Driver::new(&parts, core, pools, now);
        let task = tokio::spawn(supervise(parts, driver, pending, command_rx));
        Ok(MeshHandle {
            snapshot,
            events,
            commands,
            load,
            state_digest,
            agreement,
            zone_serials,
            hot_names,
            task,
            referral_task,
        })
    }
}

/// What a seed tells a newcomer (see [`referral::contacts`]).
fn contacts(s: &MeshSnapshot) -> Vec<Contact> {
    referral::contacts(&s.me, s.members.values().map(|m| &m.record))
}

/// What a driver shares with the handle, and what survives a restart of
/// the driver after a panic.
#[derive(Clone)]
struct DriverParts {
    cfg: MeshConfig,
    snapshot: Arc<ArcSwap<MeshSnapshot>>,
    events: broadcast::Sender<EventRecord>,
    load: Arc<AtomicU64>,
    state_digest: Arc<AtomicU64>,
    agreement: Arc<std::sync::Mutex<(u8, u64)>>,
    zone_serials: Arc<std::sync::Mutex<String>>,
    hot_names: Arc<std::sync::Mutex<String>>,
    /// Pool joins so far (numbers chitchat incarnations): kept across
    /// restarts, so a restarted driver never reuses an incarnation.
    joins: Arc<AtomicU64>,
}

/// Aborts a task when dropped (the supervisor's child, when the supervisor
/// itself is aborted).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the task `start` makes and, should it panic, starts another a
/// second later; returns when a run ends without panicking (or when this
/// future is dropped, which aborts the running task).
async fn restart_on_panic<F, Fut>(what: &'static str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let inner = tokio::spawn(start());
        let _guard = AbortOnDrop(inner.abort_handle());
        match inner.await {
            Err(e) if e.is_panic() => {
                tracing::error!("{what} panicked; starting it again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return,
        }
    }
}

/// Runs the driver and, should it panic, starts a fresh one (a new core
/// that joins its site pool again as a new incarnation) a second later.
/// Returns when the driver returns (a leave, or the handle dropped).
async fn supervise(parts: DriverParts, first: Driver, pending: Vec<Action>, commands: mpsc::Receiver<Command>) {
    let commands = Arc::new(tokio::sync::Mutex::new(commands));
    let mut next = Some((first, pending));
    restart_on_panic("the mesh driver", move || {
        let (driver, pending) = next.take().unwrap_or_else(|| {
            let mut core = MeshCore::new(parts.cfg.facts.clone(), parts.cfg.tiers);
            let mut pending = Vec::new();
            while let Some(a) = core.poll_action() {
                pending.push(a);
            }
            (Driver::new(&parts, core, BTreeMap::new(), Instant::now()), pending)
        });
        driver.run(commands.clone(), pending)
    })
    .await
}

struct Driver {
    cfg: MeshConfig,
    core: MeshCore,
    pools: BTreeMap<Pool, PoolRuntime>,
    pool_errors: BTreeMap<Pool, String>,
    /// Traffic counters outlive a pool's instance, so leaving and rejoining
    /// a pool does not reset its metrics.
    traffic_by_pool: BTreeMap<Pool, Arc<Traffic>>,
    snapshot: Arc<ArcSwap<MeshSnapshot>>,
    events: broadcast::Sender<EventRecord>,
    load: Arc<AtomicU64>,
    state_digest: Arc<AtomicU64>,
    agreement: Arc<std::sync::Mutex<(u8, u64)>>,
    zone_serials: Arc<std::sync::Mutex<String>>,
    hot_names: Arc<std::sync::Mutex<String>>,
    /// Contacts from the last successful referral.
    referred: Vec<Contact>,
    last_referral: Option<Instant>,
    referral_rx: Option<oneshot::Receiver<Vec<Contact>>>,
    changed: Instant,
    representative_changes: u64,
    bad_relay_records: u64,
    reps: BTreeSet<(String, bool)>,
    /// Pool joins so far (numbers chitchat incarnations; shared with the
    /// supervisor, see [`DriverParts::joins`]).
    joins: Arc<AtomicU64>,
    /// Pools being left: kept until the successors are in and relay this
    /// site (or a bound passes), so the tier above never loses this site.
    leaving: BTreeMap<Pool, Leaving>,
    /// Pools whose instance is shutting down.
    stopping: BTreeMap<Pool, tokio::task::JoinHandle<()>>,
    /// Pool instances restarted after chitchat's task ended.
    pool_restarts: u64,
    /// Pools rejoined because a peer forged this node's own state.
    identity_refutations: u64,
    /// Rotates which contacts get hints, so one bad set cannot stall a join.
    hint_offset: usize,
    /// When the driver started (the core settles [`SETTLE_ROUNDS`] rounds later).
    started: Instant,
}

/// Gossip rounds in its site pool before a starting node plans its upper
/// pools: chitchat calls a member live after its second heartbeat, so
/// after three rounds with a site mate heard the site is known.
pub const SETTLE_ROUNDS: u32 = 3;
/// Rounds after which a node that has heard no site mate takes itself to
/// be alone in its site (its seeds may be down) and plans anyway.
pub const ALONE_ROUNDS: u32 = 10;

/// Whether a starting node, up for `up_for` with gossip rounds of
/// `interval`, may plan its upper pools: [`SETTLE_ROUNDS`] after start
/// once a site mate is heard, or after [`ALONE_ROUNDS`] alone.
pub fn settle_now(heard_site_mate: bool, up_for: Duration, interval: Duration) -> bool {
    (heard_site_mate && up_for >= interval * SETTLE_ROUNDS) || up_for >= interval * ALONE_ROUNDS
}

/// A pool this node is leaving because it is no longer a representative.
#[derive(Debug, Clone, Copy)]
struct Leaving {
    since: Instant,
    /// Since when the successors have been in place, if they are.
    ready_since: Option<Instant>,
}

impl Driver {
    fn new(parts: &DriverParts, core: MeshCore, pools: BTreeMap<Pool, PoolRuntime>, now: Instant) -> Driver {
        Driver {
            cfg: parts.cfg.clone(),
            core,
            pools,
            pool_errors: BTreeMap::new(),
            traffic_by_pool: BTreeMap::new(),
            snapshot: parts.snapshot.clone(),
            events: parts.events.clone(),
            load: parts.load.clone(),
            state_digest: parts.state_digest.clone(),
            agreement: parts.agreement.clone(),
            zone_serials: parts.zone_serials.clone(),
            hot_names: parts.hot_names.clone(),
            referred: Vec::new(),
            last_referral: None,
            referral_rx: None,
            changed: now,
            representative_changes: 0,
            bad_relay_records: 0,
            reps: BTreeSet::new(),
            joins: parts.joins.clone(),
            leaving: BTreeMap::new(),
            stopping: BTreeMap::new(),
            pool_restarts: 0,
            identity_refutations: 0,
            hint_offset: 0,
            started: now,
        }
    }

    async fn run(mut self, commands: Arc<tokio::sync::Mutex<mpsc::Receiver<Command>>>, pending: Vec<Action>) {
        let mut commands = commands.lock().await;
        let tick = (self.cfg.gossip.interval / 4).min(Duration::from_millis(250)).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for a in pending {
            self.act(a).await;
        }
        loop {
            tokio::select! {
                _ = ticker.tick() => self.step().await,
                cmd = commands.recv() => match cmd {
                    Some(Command::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }

    async fn step(&mut self) {
        let now = Instant::now();
        let suspect_after = self.cfg.gossip.interval * self.cfg.gossip.suspect_intervals;
        let mut last_heard: HashMap<String, Duration> = HashMap::new();
        let joined: Vec<Pool> = self.pools.keys().cloned().collect();
        for p in joined {
            let Some(rt) = self.pools.get_mut(&p) else { continue };
            let read = rt.read(now, suspect_after).await;
            self.bad_relay_records += read.bad_records;
            for (id, d) in read.last_heard {
                let e = last_heard.entry(id).or_insert(d);
                *e = (*e).min(d);
            }
            self.core.handle_pool_view(p, read.records);
            while let Some(a) = self.core.poll_action() {
                self.act(a).await;
            }
        }
        // A few rounds in the site pool: this node knows its site and may
        // plan its upper pools.
        if !self.core.settled() {
            let site = Pool::site(&self.core.me().region, &self.core.me().site);
            let heard = match self.pools.get(&site) {
                Some(rt) => rt.live_peers().await > 0,
                None => false,
            };
            let up_for = now.duration_since(self.started);
            if settle_now(heard, up_for, self.cfg.gossip.interval) {
                self.core.settle();
                while let Some(a) = self.core.poll_action() {
                    self.act(a).await;
                }
            }
        }
        self.finish_leaves(now).await;
        // A pool whose chitchat task ended (it panics on an oversized
        // digest) is dropped here and joined afresh below.
        let dead: Vec<Pool> =
            self.pools.iter().filter(|(_, rt)| rt.terminated.load(Ordering::Acquire)).map(|(p, _)| p.clone()).collect();
        for p in dead {
            tracing::error!(pool = ?p, "the pool's gossip task stopped; restarting it");
            self.pools.remove(&p);
            self.pool_restarts += 1;
        }
        self.refute_identity_claims(now).await;
        // Pools the core wants but that failed to start: retry.
        let missing: Vec<Pool> = self.core.pools().iter().filter(|p| !self.pools.contains_key(*p)).cloned().collect();
        for p in missing {
            self.join(p).await;
        }

        let mut facts = self.core.me().clone();
        facts.load = self.load.load(Ordering::Relaxed);
        facts.state_digest = self.state_digest.load(Ordering::Relaxed);
        (facts.agreement, facts.agreement_digest) = *self.agreement.lock().unwrap_or_else(|e| e.into_inner());
        facts.zone_serials = self.zone_serials.lock().map(|s| s.clone()).unwrap_or_default();
        facts.hot_names = self.hot_names.lock().map(|s| s.clone()).unwrap_or_default();
        self.core.set_facts(facts);
        let me = self.core.me().clone();
        for (p, rt) in self.pools.iter_mut() {
            let relays = self.core.relays(p);
            rt.publish(&me, &relays).await;
        }
        self.seek_contacts(now).await;
        self.publish_snapshot(now, last_heard).await;
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::JoinPool(p) => self.join(p).await,
            Action::LeavePool(p) => {
                self.pool_errors.remove(&p);
                if self.pools.contains_key(&p) {
                    tracing::info!(pool = ?p, "no longer a representative: leaving the pool once the successor is in");
                    self.leaving.entry(p).or_insert_with(|| Leaving { since: Instant::now(), ready_since: None });
                } else {
                    self.core.pool_left(&p);
                }
            }
            Action::Event(e) => {
                match &e {
                    MembershipEvent::Up(r) => {
                        tracing::info!(member = %r.facts.id, region = %r.facts.region, site = %r.facts.site, "member up")
                    }
                    MembershipEvent::Down(id, why) => tracing::info!(member = %id, state = %why, "member down"),
                }
                let _ = self.events.send(EventRecord { unix_ms: unix_ms(), event: e });
                self.changed = Instant::now();
            }
        }
    }

    /// Leaves the pools whose successors have been in place, relaying this
    /// site, for two gossip intervals (time for their relays to reach every
    /// reader), or that have waited twenty intervals.
    async fn finish_leaves(&mut self, now: Instant) {
        let bound = self.cfg.gossip.interval * 20;
        let settle = self.cfg.gossip.interval * 2;
        let mut due: Vec<Pool> = Vec::new();
        for (p, l) in self.leaving.iter_mut() {
            l.ready_since = if self.core.successors_present(p) { l.ready_since.or(Some(now)) } else { None };
            let settled = l.ready_since.is_some_and(|t| now.duration_since(t) >= settle);
            if settled || now.duration_since(l.since) >= bound {
                due.push(p.clone());
            }
        }
        for p in due {
            self.leaving.remove(&p);
            self.core.pool_left(&p);
            if let Some(rt) = self.pools.remove(&p) {
                tracing::info!(pool = ?p, "left the pool");
                rt.announce_leave(true).await;
                let grace = self.cfg.gossip.interval;
                self.stopping.insert(
                    p,
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let _ = rt.handle.shutdown().await;
                    }),
                );
            }
        }
        while let Some(a) = self.core.poll_action() {
            self.act(a).await;
        }
    }

    async fn join(&mut self, p: Pool) {
        if self.leaving.remove(&p).is_some() {
            tracing::info!(pool = ?p, "representative again: staying in the pool");
        }
        if self.pools.contains_key(&p) {
            return;
        }
        // A previous instance still shutting down holds the port.
        if let Some(stopping) = self.stopping.remove(&p) {
            let _ = tokio::time::timeout(self.cfg.gossip.interval * 2 + Duration::from_secs(1), stopping).await;
        }
        let traffic = self.traffic_by_pool.entry(p.clone()).or_default().clone();
        let instance = self.joins.load(Ordering::Relaxed) + 1;
        let auth = self.cfg.auth.clone();
        match PoolRuntime::start(
            &self.cfg.cluster,
            p.clone(),
            instance,
            self.core.me(),
            &self.cfg.gossip,
            traffic,
            auth,
        )
        .await
        {
            Ok(rt) => {
                self.joins.store(instance, Ordering::Relaxed);
                tracing::info!(pool = ?p, addr = %rt.addr, "representative: joined the pool");
                self.pool_errors.remove(&p);
                self.pools.insert(p, rt);
            }
            Err(e) => {
                if self.pool_errors.insert(p.clone(), e.to_string()).is_none() {
                    tracing::error!(error = %e, "cannot join a pool; retrying");
                }
            }
        }
    }

    /// Rejoins, as a new incarnation, every pool where a peer claimed more
    /// about this node's own id than it published (a forged heartbeat or
    /// version: the peers holding it would ignore this node's real updates
    /// and soon call it dead). chitchat never takes such claims in; the new
    /// incarnation's state is fresh at every peer, and the forged one dies
    /// out. At most once per two gossip intervals per pool.
    async fn refute_identity_claims(&mut self, now: Instant) {
        let mut refute = Vec::new();
        for (p, rt) in self.pools.iter_mut() {
            let new = rt.new_identity_conflicts().await;
            if new > 0 && now.duration_since(rt.joined_at) >= self.cfg.gossip.interval * 2 {
                refute.push(p.clone());
            }
        }
        for p in refute {
            let Some(rt) = self.pools.remove(&p) else { continue };
            tracing::warn!(
                pool = ?p,
                "a peer claimed state for this node's id that it never published; rejoining the pool as a new incarnation"
            );
            self.identity_refutations += 1;
            self.stopping.insert(
                p,
                tokio::spawn(async move {
                    let _ = rt.handle.shutdown().await;
                }),
            );
        }
    }

    /// Finds peers: asks the seeds for a referral, and gossips to members
    /// known (or referred) to belong in a pool but not live in it.
    async fn seek_contacts(&mut self, now: Instant) {
        let mut fresh_referral = false;
        if let Some(rx) = &mut self.referral_rx {
            match rx.try_recv() {
                Ok(c) => {
                    self.referred = c;
                    self.referral_rx = None;
                    fresh_referral = true;
                }
                Err(oneshot::error::TryRecvError::Closed) => self.referral_rx = None,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
        let interval = self.cfg.gossip.interval;
        let me = self.core.me().clone();
        let mut lonely = false;
        let mut forming = false;
        let mut missing: BTreeMap<Pool, Vec<std::net::SocketAddr>> = BTreeMap::new();
        for (p, rt) in &self.pools {
            let live = rt.live_addrs().await;
            lonely |= live.is_empty();
            forming |= now.duration_since(rt.joined_at) < interval * referral::FORMING_ROUNDS;
            let targets = referral::hint_targets(p, &me.id, self.core.records().values(), &self.referred);
            let m = referral::missing_targets(&targets, &live);
            if !m.is_empty() {
                missing.insert(p.clone(), m);
            }
        }
        // Seeds are asked often while some pool is empty or forming, rarely
        // otherwise (that slow refresh heals a partition longer than the
        // dead-member grace period).
        let every = referral::referral_interval(lonely, forming);
        if !self.cfg.seeds.is_empty()
            && self.referral_rx.is_none()
            && self.last_referral.is_none_or(|t| now.duration_since(t) >= every)
        {
            self.last_referral = Some(now);
            let (tx, rx) = oneshot::channel();
            self.referral_rx = Some(rx);
            let seeds = self.cfg.seeds.clone();
            let request = referral::Request { cluster: self.cfg.cluster.clone(), id: self.core.me().id.clone() };
            let auth = self.cfg.auth.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                for seed in seeds {
                    let addrs = match tokio::net::lookup_host(&seed).await {
                        Ok(a) => a.collect::<Vec<_>>(),
                        Err(e) => {
                            tracing::warn!(seed = %seed, error = %e, "cannot resolve seed");
                            continue;
                        }
                    };
                    for addr in addrs {
                        match referral::ask(addr, &request, auth.as_deref()).await {
                            Ok(c) => all.extend(c),
                            Err(e @ referral::ReferralError::Refused(..)) => {
                                tracing::error!(error = %e, "seed refused")
                            }
                            Err(e @ referral::ReferralError::NoAnswer(..)) => {
                                tracing::warn!(error = %e, "seed did not answer")
                            }
                            Err(e) => tracing::debug!(error = %e, "referral failed"),
                        }
                    }
                }
                let _ = tx.send(all);
            });
        }
        // Gossip to the members known (or referred) to belong in a pool but
        // not live in it: a pool with no peer finds one, and a pool split
        // into islands is joined up within a round.
        for (p, targets) in missing {
            let Some(rt) = self.pools.get_mut(&p) else { continue };
            if !fresh_referral && rt.last_hinted.is_some_and(|t| now.duration_since(t) < interval) {
                continue;
            }
            rt.last_hinted = Some(now);
            let start = self.hint_offset % targets.len();
            for addr in targets.iter().cycle().skip(start).take(targets.len().min(8)) {
                let _ = rt.handle.gossip(*addr);
            }
            self.hint_offset = self.hint_offset.wrapping_add(8);
        }
    }

    async fn publish_snapshot(&mut self, now: Instant, last_heard: HashMap<String, Duration>) {
        let records = self.core.records();
        let reps: BTreeSet<(String, bool)> = records
            .values()
            .filter(|r| r.liveness.is_live() && (r.facts.roles.region || r.facts.roles.global))
            .map(|r| (r.facts.id.clone(), r.facts.roles.global))
            .collect();
        if reps != self.reps {
            if !self.reps.is_empty() {
                self.representative_changes += 1;
            }
            self.reps = reps;
        }
        let members = records
            .iter()
            .map(|(id, r)| {
                let heard = if r.source == Source::Direct && id != &self.core.me().id {
                    last_heard.get(id).copied()
                } else {
                    None
                };
                (id.clone(), MemberView { record: r.clone(), last_heard: heard })
            })
            .collect();
        let mut pools = Vec::new();
        for (p, rt) in &self.pools {
            pools.push(PoolStatus {
                pool: p.clone(),
                addr: rt.addr,
                live_peers: rt.live_peers().await,
                traffic: rt.traffic.read(),
            });
        }
        self.snapshot.store(Arc::new(MeshSnapshot {
            cluster: self.cfg.cluster.clone(),
            me: self.core.me().clone(),
            members,
            ring: self.core.members().clone(),
            pools,
            pool_errors: self.pool_errors.iter().map(|(p, e)| (p.clone(), e.clone())).collect(),
            taken: now,
            changed: self.changed,
            representative_changes: self.representative_changes,
            bad_relay_records: self.bad_relay_records,
            pool_restarts: self.pool_restarts,
            gossip_rejected: self.cfg.auth.as_ref().map(|a| a.rejected()),
            identity_refutations: self.identity_refutations,
        }));
    }

    async fn leave(&mut self) {
        tracing::info!(pools = self.pools.len(), "leaving the mesh");
        for rt in self.pools.values() {
            rt.announce_leave(false).await;
        }
        // One round for the Syn/SynAck/Ack that carries "leaving" to finish.
        tokio::time::sleep(self.cfg.gossip.interval.min(Duration::from_millis(500))).await;
        for (_, rt) in std::mem::take(&mut self.pools) {
            let _ = rt.handle.shutdown().await;
        }
        let mut s = (*self.snapshot.load_full()).clone();
        s.pools.clear();
        if let Some(me) = s.members.get_mut(&s.me.id) {
            me.record.liveness = Liveness::Left;
        }
        self.snapshot.store(Arc::new(s));
    }
}
