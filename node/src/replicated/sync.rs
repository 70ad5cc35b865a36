//! Replication between nodes over QUIC: pushes of fresh writes along the
//! tiers, and pulls (anti-entropy) from peers whose state digest differs.
//!
//! Which peers, in what order, how many at once and how soon again after a
//! failure is decided by `meshdns_replication::sync` (pure, shared with the
//! simulator); this module moves the bytes.
//!
//! On a connection (mutual TLS, see `meshdns-transport`):
//! - a bidirectional stream carries a pull: the request frame is `P` and
//!   the puller's version vectors as JSON; the answer is one frame per delta
//!   or snapshot part, then the end of the stream;
//! - or a question: `H` and a [`HoldsQuestion`] as JSON, "do you hold this
//!   write?"; the answer is one frame, `1` or `0` (what `--wait-for`
//!   asks, see [`Syncer::peer_holds`]);
//! - a unidirectional stream carries a push: a frame `U` and the hop, then
//!   one frame per delta.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use meshdns_mesh::gossip::MeshHandle;
use meshdns_mesh::{Liveness, Source};
use meshdns_replication::agreement::{agreement, everyone_holds};
use meshdns_replication::sync::{Hop, Peer, PullPolicy, SyncLimits, SyncScheduler, pulls_from, push_targets};
use meshdns_transport::net::{Endpoint, NetError, read_frame, write_frame};
use tokio::sync::{Mutex, mpsc};

use super::ReplicatedZones;

/// Most frames one pull answer or push stream may carry.
const MAX_FRAMES: usize = 100_000;
/// Most bytes one pull answer may carry over all its frames (each frame is
/// also bounded by the endpoint's frame limit).
const MAX_PULL_BYTES: usize = 1 << 30;
/// How long after start a node publishes no agreement (and so collects no
/// tombstone by agreement): time to hear its pools.
const SETTLE_BEFORE_AGREEING: Duration = Duration::from_secs(10);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Deltas applied that held something new.
    pub deltas_in: AtomicU64,
    /// Deltas or snapshot parts sent.
    pub frames_out: AtomicU64,
    /// Bytes received in deltas and snapshots.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Snapshots adopted.
    pub snapshots_in: AtomicU64,
    /// Pulls that failed.
    pub pull_errors: AtomicU64,
    /// Frames from peers refused (bad or undecodable).
    pub refused: AtomicU64,
    /// Pulls completed.
    pub pulls: AtomicU64,
    /// Failed pulls by cause (see [`ERROR_CAUSES`]).
    pub errors_by_cause: [AtomicU64; ERROR_CAUSES.len()],
    /// Snapshots sent to peers (one per zone answered with one).
    pub snapshots_out: AtomicU64,
}

/// Why a sync with a peer failed, as the `cause` label of
/// `meshdns_replication_sync_errors_total`.
pub const ERROR_CAUSES: [&str; 5] = ["unreachable", "identity", "stalled", "too_large", "bad_data"];

/// The [`ERROR_CAUSES`] index of an error.
fn cause(e: &NetError) -> usize {
    match e {
        NetError::Connect(..) | NetError::Bind { .. } => 0,
        NetError::Tls(_) | NetError::WrongIdentity(_) => 1,
        NetError::Timeout(_) => 2,
        NetError::TooLarge(..) | NetError::AnswerTooLarge { .. } => 3,
        NetError::Stream(_) => 4,
    }
}

/// "Do you hold write `seq` of `origin` in `zone`?"
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HoldsQuestion {
    zone: String,
    origin: String,
    seq: u64,
}

/// The replication driver of one node.
pub struct Syncer {
    zones: Arc<ReplicatedZones>,
    mesh: Arc<MeshHandle>,
    endpoint: Endpoint,
    me: String,
    /// Open connections by peer and address: a peer that restarts on
    /// another address gets a new connection, not the dead one.
    conns: Mutex<HashMap<(String, SocketAddr), quinn::Connection>>,
    /// (delta bytes digest, hop) already forwarded: each delta is forwarded
    /// once per hop kind.
    forwarded: std::sync::Mutex<HashSet<(u64, u8)>>,
    /// Counters.
    pub stats: SyncStats,
    /// The state digest last published (computing it walks every zone).
    digest: AtomicU64,
    /// Whether a tombstone collection is running.
    collecting: std::sync::atomic::AtomicBool,
}

/// Applies what a pull brought: deltas one by one, snapshot parts zone by
/// zone. Blocking (each is journalled): run off the async threads.
/// Returns (deltas with news, bytes, snapshots adopted, outcome).
fn apply_pulled(zones: &ReplicatedZones, frames: Vec<Vec<u8>>) -> (u64, u64, u64, Result<(), NetError>) {
    let (mut deltas, mut bytes, mut snapshots) = (0, 0, 0);
    let mut snapshot_parts: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for f in frames {
        bytes += f.len() as u64;
        match meshdns_replication::wire::decode(&f, &meshdns_replication::wire::Limits::default()) {
            Ok(part) if part.snapshot => snapshot_parts.entry(part.zone).or_default().push(f),
            Ok(_) => match zones.apply_remote(&f) {
                Ok(true) => deltas += 1,
                Ok(false) => {}
                Err(e) => return (deltas, bytes, snapshots, Err(NetError::Stream(format!("refused a delta: {e}")))),
            },
            Err(e) => return (deltas, bytes, snapshots, Err(NetError::Stream(format!("undecodable frame: {e}")))),
        }
    }
    for (_, parts) in snapshot_parts {
        if let Err(e) = zones.adopt_remote(&parts) {
            return (deltas, bytes, snapshots, Err(NetError::Stream(format!("refused a snapshot: {e}"))));
        }
        snapshots += 1;
    }
    (deltas, bytes, snapshots, Ok(()))
}

/// Eight bytes from the operating system's random source, for the pull
/// backoff jitter. Should the source fail (it does not on Linux once
/// booted), the standard library's per-process hash keys stand in.
fn os_entropy() -> [u8; 8] {
    use ring::rand::SecureRandom as _;
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::warn!("the OS random source failed; seeding the pull backoff jitter from the hash keys");
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        bytes = h.finish().to_le_bytes();
    }
    bytes
}

impl Syncer {
    /// A driver for this node; call [`Syncer::run`] to start it.
    pub fn new(zones: Arc<ReplicatedZones>, mesh: Arc<MeshHandle>, endpoint: Endpoint, me: String) -> Arc<Syncer> {
        Arc::new(Syncer {
            zones,
            mesh,
            endpoint,
            me,
            conns: Mutex::new(HashMap::new()),
            forwarded: std::sync::Mutex::new(HashSet::new()),
            stats: SyncStats::default(),
            digest: AtomicU64::new(0),
            collecting: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Serves peers, pushes local writes, and pulls where digests differ,
    /// until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let (tx, mut outbox) = mpsc::unbounded_channel();
        self.zones.set_outbox(tx);
        self.publish_digest();
        let server = self.clone();
        tokio::spawn(async move { server.serve().await });
        let pusher = self.clone();
        tokio::spawn(async move {
            while let Some(frames) = outbox.recv().await {
                pusher.publish_digest();
                pusher.clone().push(frames, Hop::Local).await;
            }
        });
        self.pull_loop().await;
    }

    /// Adds the replication counters to `out`.
    pub fn render_metrics(&self, out: &mut crate::exposition::Exposition) {
        use crate::exposition::Kind;
        let s = &self.stats;
        for (name, help, v) in [
            ("deltas_received_total", "Deltas from peers that held something new.", &s.deltas_in),
            ("frames_sent_total", "Deltas and snapshot parts sent to peers.", &s.frames_out),
            ("bytes_received_total", "Bytes of deltas and snapshots received.", &s.bytes_in),
            ("bytes_sent_total", "Bytes of deltas and snapshots sent.", &s.bytes_out),
            ("snapshots_received_total", "Snapshots adopted from peers.", &s.snapshots_in),
            ("pulls_total", "Pulls completed.", &s.pulls),
            ("pull_errors_total", "Pulls that failed (unreachable, TLS refused, bad data).", &s.pull_errors),
            ("refused_total", "Frames or requests from peers refused as malformed.", &s.refused),
            ("snapshots_sent_total", "Zones sent to peers as snapshots.", &s.snapshots_out),
        ] {
            let name = format!("meshdns_replication_{name}");
            out.family(&name, Kind::Counter, help);
            out.sample(&name, &[], v.load(Ordering::Relaxed));
        }
        out.family("meshdns_replication_sync_errors_total", Kind::Counter, "Failed pulls, by cause.");
        for (i, c) in ERROR_CAUSES.iter().enumerate() {
            let n = s.errors_by_cause[i].load(Ordering::Relaxed);
            out.sample("meshdns_replication_sync_errors_total", &[("cause", c)], n);
        }
        out.family(
            "meshdns_replication_peer_lag_writes",
            Kind::Gauge,
            "Writes this node holds that a peer it hears directly does not yet serve, per zone.",
        );
        let snap = self.mesh.snapshot();
        let mine = self.zones.list();
        for m in snap.members.values() {
            let f = &m.record.facts;
            if f.id == self.me || m.record.source != Source::Direct || !m.record.liveness.is_live() {
                continue;
            }
            let theirs: HashMap<&str, u32> = f
                .zone_serials
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(z, v)| Some((z, v.parse().ok()?)))
                .collect();
            for z in &mine {
                let behind = z.serial.saturating_sub(theirs.get(z.name.as_str()).copied().unwrap_or(0));
                out.sample("meshdns_replication_peer_lag_writes", &[("peer", &f.id), ("zone", &z.name)], behind);
            }
        }
        out.family("meshdns_replication_tombstones", Kind::Gauge, "Tombstones held (deletions not yet collected).");
        out.sample("meshdns_replication_tombstones", &[], self.zones.tombstones());
        out.family("meshdns_replication_zone_serial", Kind::Gauge, "Serial served per replicated zone (writes held).");
        for z in self.zones.list() {
            out.sample("meshdns_replication_zone_serial", &[("zone", &z.name)], z.serial);
        }
    }

    fn publish_digest(&self) {
        let digest = self.zones.state_digest();
        self.digest.store(digest, Ordering::Relaxed);
        self.mesh.set_state_digest(digest);
        let serials: Vec<String> = self.zones.list().into_iter().map(|z| format!("{}={}", z.name, z.serial)).collect();
        self.mesh.set_zone_serials(serials.join(","));
    }

    /// After state changed: tell peers by gossip (the data plane already
    /// has the new zones: `ReplicatedZones` hands them over itself).
    fn changed(&self) {
        self.publish_digest();
    }

    /// Publishes this node's agreement (how far around it its digest is
    /// known to be held) and, once it covers every live member, drops the
    /// tombstones of that state (see `meshdns_replication::agreement`).
    fn agree(self: Arc<Self>, mine: u64, settled: bool) {
        let snap = self.mesh.snapshot();
        let neighbours: Vec<(u64, u8)> = snap
            .members
            .values()
            .filter(|m| {
                m.record.facts.id != self.me && m.record.source == Source::Direct && m.record.liveness.is_live()
            })
            .map(|m| (m.record.facts.state_digest, m.record.facts.agreement))
            .collect();
        let heard = neighbours.len();
        let level = if settled { agreement(mine, neighbours) } else { 0 };
        self.mesh.set_agreement(level, mine);
        if !everyone_holds(level) || self.collecting.swap(true, Ordering::Relaxed) {
            return;
        }
        tokio::task::spawn_blocking(move || {
            if self.zones.tombstones() > 0 {
                let n = self.zones.collect_agreed_tombstones(mine);
                if n > 0 {
                    tracing::info!(collected = n, digest = %format!("{mine:x}"), neighbours = heard, "collected tombstones that every live member holds");
                }
            }
            self.collecting.store(false, Ordering::Relaxed);
        });
    }

    fn peers(&self) -> (Option<Peer>, Vec<(Peer, SocketAddr, u64)>) {
        let snap = self.mesh.snapshot();
        let as_peer = |f: &meshdns_mesh::NodeFacts| Peer {
            id: f.id.clone(),
            region: f.region.clone(),
            site: f.site.clone(),
            region_rep: f.roles.region,
            global_rep: f.roles.global,
        };
        let me = Some(as_peer(&snap.me));
        let others = snap
            .members
            .values()
            .filter(|m| m.record.facts.id != self.me && m.record.liveness == Liveness::Alive)
            .filter_map(|m| Some((as_peer(&m.record.facts), m.record.facts.quic?, m.record.facts.state_digest)))
            .collect();
        (me, others)
    }

    async fn connection(&self, peer: &str, addr: SocketAddr) -> Result<quinn::Connection, NetError> {
        if let Some(c) = self.conns.lock().await.get(&(peer.to_owned(), addr))
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        // Connect without holding the map: one slow peer must not hold up
        // every other push and pull.
        let c = self.endpoint.connect(addr, peer).await?;
        let mut conns = self.conns.lock().await;
        conns.retain(|(p, _), old| p != peer || old.close_reason().is_none());
        conns.insert((peer.to_owned(), addr), c.clone());
        Ok(c)
    }

    /// Pushes `frames` to the members the push tree names for `hop`.
    async fn push(self: Arc<Self>, frames: Vec<Vec<u8>>, hop: Hop) {
        let (Some(me), others) = self.peers() else { return };
        let members: Vec<Peer> = others.iter().map(|(p, _, _)| p.clone()).collect();
        let addrs: HashMap<String, SocketAddr> = others.iter().map(|(p, a, _)| (p.id.clone(), *a)).collect();
        let targets = push_targets(&me, &members, hop);
        tracing::debug!(?hop, known = members.len(), targets = targets.len(), "pushing");
        for (target, next_hop) in targets {
            let Some(&addr) = addrs.get(&target) else { continue };
            let this = self.clone();
            let frames = frames.clone();
            tokio::spawn(async move {
                let sent = async {
                    let conn = this.connection(&target, addr).await?;
                    let stream = async {
                        let mut send = conn.open_uni().await.map_err(|e| NetError::Stream(e.to_string()))?;
                        write_frame(&mut send, &[b'U', next_hop.code()]).await?;
                        for f in &frames {
                            write_frame(&mut send, f).await?;
                            this.stats.bytes_out.fetch_add(f.len() as u64, Ordering::Relaxed);
                            this.stats.frames_out.fetch_add(1, Ordering::Relaxed);
                        }
                        send.finish().map_err(|e| NetError::Stream(e.to_string()))
                    };
                    stream.await.inspect_err(|e| forget_if_stalled(&conn, e))
                };
                if let Err(e) = sent.await {
                    // The pull repairs what a push missed.
                    tracing::debug!(peer = %target, error = %e, "push failed");
                }
            });
        }
    }

    async fn pull_loop(self: Arc<Self>) {
        let mut scheduler = SyncScheduler::with_entropy(SyncLimits::default(), os_entropy());
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut policy = PullPolicy::default();
        let ms = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some((pull, digest, ok)) = done_rx.recv() => {
                    scheduler.pull_done(&pull, ok, ms());
                    if ok {
                        self.stats.pulls.fetch_add(1, Ordering::Relaxed);
                        policy.pulled(&pull.peer, digest, ms());
                    } else {
                        self.stats.pull_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let now = tokio::time::Instant::now();
            let mine = self.digest.load(Ordering::Relaxed);
            // A node that has just started may not have heard its
            // neighbours yet: alone, it would agree with itself.
            let settled = now.duration_since(started) >= SETTLE_BEFORE_AGREEING;
            self.clone().agree(mine, settled);
            let (Some(me), others) = self.peers() else { continue };
            let mut digests: HashMap<String, u64> = HashMap::new();
            for (peer, _, digest) in &others {
                if !pulls_from(&me, peer) || *digest == 0 {
                    continue;
                }
                digests.insert(peer.id.clone(), *digest);
                policy.observe(&mut scheduler, &peer.id, *digest, mine, ms());
            }
            let addrs: HashMap<String, SocketAddr> = others.iter().map(|(p, a, _)| (p.id.clone(), *a)).collect();
            while let Some(pull) = scheduler.poll(ms()) {
                let Some(&addr) = addrs.get(&pull.peer) else {
                    scheduler.peer_gone(&pull.peer);
                    continue;
                };
                let digest = digests.get(&pull.peer).copied().unwrap_or(0);
                let this = self.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let result = this.pull(&pull.peer, addr).await;
                    if let Err(e) = &result {
                        this.stats.errors_by_cause[cause(e)].fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = %pull.peer, error = %e, "pull failed; will retry with backoff");
                    }
                    let _ = done.send((pull, digest, result.is_ok()));
                });
            }
        }
    }

    /// Pulls everything `peer` has that this node lacks.
    async fn pull(&self, peer: &str, addr: SocketAddr) -> Result<(), NetError> {
        tracing::info!(%peer, "pulling from a peer whose state differs");
        let conn = self.connection(peer, addr).await?;
        let vv = self.zones.version_vectors();
        let mut request = vec![b'P'];
        request.extend(serde_json::to_vec(&vv).map_err(|e| NetError::Stream(e.to_string()))?);
        // Held to its bounds while it streams, never after it is buffered.
        let bounds = meshdns_transport::net::AnswerLimits { max_frames: MAX_FRAMES, max_bytes: MAX_PULL_BYTES };
        let frames = self.endpoint.request(&conn, &request, bounds).await.inspect_err(|e| {
            if matches!(e, NetError::AnswerTooLarge { .. }) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            forget_if_stalled(&conn, e);
        })?;
        let zones = self.zones.clone();
        let stats_in = tokio::task::spawn_blocking(move || apply_pulled(&zones, frames))
            .await
            .map_err(|e| NetError::Stream(e.to_string()))?;
        let (deltas, bytes, snapshots, result) = stats_in;
        self.stats.deltas_in.fetch_add(deltas, Ordering::Relaxed);
        self.stats.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.stats.snapshots_in.fetch_add(snapshots, Ordering::Relaxed);
        if let Err(e) = result {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        self.changed();
        Ok(())
    }

    async fn serve(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let conn = match incoming {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "refused a replication connection");
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move {
                let peer = match this.endpoint.identify(&conn).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "refused a replication peer");
                        conn.close(1u32.into(), b"identity");
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        bi = conn.accept_bi() => match bi {
                            Ok((send, recv)) => { tokio::spawn(this.clone().answer_pull(peer.clone(), send, recv)); }
                            Err(_) => return,
                        },
                        uni = conn.accept_uni() => match uni {
                            Ok(recv) => { tokio::spawn(this.clone().take_push(peer.clone(), recv)); }
                            Err(_) => return,
                        },
                    }
                }
            });
        }
    }

    /// Asks `peer` whether it holds one write of this node (see
    /// [`super::ReplicatedZones::holds`]): the peer's own answer, not
    /// something gossiped, so a peer holding other writes but not this one
    /// says no.
    pub async fn peer_holds(
        &self,
        peer: &str,
        addr: SocketAddr,
        write: &super::WriteVersion,
    ) -> Result<bool, NetError> {
        let conn = self.connection(peer, addr).await?;
        let q = HoldsQuestion { zone: write.zone.clone(), origin: write.origin.clone(), seq: write.seq };
        let mut request = vec![b'H'];
        request.extend(serde_json::to_vec(&q).map_err(|e| NetError::Stream(e.to_string()))?);
        let bounds = meshdns_transport::net::AnswerLimits { max_frames: 1, max_bytes: 1 };
        let answer =
            self.endpoint.request(&conn, &request, bounds).await.inspect_err(|e| forget_if_stalled(&conn, e))?;
        Ok(answer.first().is_some_and(|a| a.as_slice() == b"1"))
    }

    /// The QUIC address of every live member heard of, with whether it is
    /// in this node's site.
    pub fn live_peers(&self) -> Vec<(String, SocketAddr, bool)> {
        let snap = self.mesh.snapshot();
        snap.members
            .values()
            .filter(|m| m.record.facts.id != self.me && m.record.liveness == Liveness::Alive)
            .filter_map(|m| {
                let f = &m.record.facts;
                Some((f.id.clone(), f.quic?, f.region == snap.me.region && f.site == snap.me.site))
            })
            .collect()
    }

    async fn answer_holds(&self, peer: &str, request: &[u8], mut send: quinn::SendStream) {
        let Ok(q) = serde_json::from_slice::<HoldsQuestion>(request) else {
            tracing::warn!(%peer, "bad holds question");
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            let _ = send.reset(1u32.into());
            return;
        };
        let zones = self.zones.clone();
        let held = tokio::task::spawn_blocking(move || zones.holds(&q.zone, &q.origin, q.seq)).await.unwrap_or(false);
        if write_frame(&mut send, if held { b"1" } else { b"0" }).await.is_ok() {
            let _ = send.finish();
        }
    }

    async fn answer_pull(self: Arc<Self>, peer: String, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let limits = *self.endpoint.limits();
        let request = match read_frame(&mut recv, &limits).await {
            Ok(Some(r)) if r.first() == Some(&b'P') => r,
            Ok(Some(r)) if r.first() == Some(&b'H') => return self.answer_holds(&peer, &r[1..], send).await,
            _ => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                let _ = send.reset(1u32.into());
                return;
            }
        };
        let theirs: BTreeMap<String, BTreeMap<String, u64>> = match serde_json::from_slice(&request[1..]) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad pull request");
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                let _ = send.reset(1u32.into());
                return;
            }
        };
        let zones = self.zones.clone();
        let (frames, snapshots) =
            tokio::task::spawn_blocking(move || zones.answer_pull(&theirs)).await.unwrap_or_default();
        self.stats.snapshots_out.fetch_add(snapshots, Ordering::Relaxed);
        for f in &frames {
            if write_frame(&mut send, f).await.is_err() {
                return;
            }
            self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes_out.fetch_add(f.len() as u64, Ordering::Relaxed);
        }
        let _ = send.finish();
    }

    async fn take_push(self: Arc<Self>, peer: String, mut recv: quinn::RecvStream) {
        let limits = *self.endpoint.limits();
        let hop = match read_frame(&mut recv, &limits).await {
            Ok(Some(h)) if h.len() == 2 && h[0] == b'U' => Hop::from_code(h[1]),
            _ => None,
        };
        let Some(hop) = hop else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut frames = Vec::new();
        let mut news = false;
        let mut clean = false;
        loop {
            if frames.len() >= MAX_FRAMES {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                break;
            }
            match read_frame(&mut recv, &limits).await {
                Ok(Some(f)) => {
                    self.stats.bytes_in.fetch_add(f.len() as u64, Ordering::Relaxed);
                    let zones = self.zones.clone();
                    let f2 = f.clone();
                    match tokio::task::spawn_blocking(move || zones.apply_remote(&f2)).await {
                        Ok(Ok(new)) => {
                            if new {
                                self.stats.deltas_in.fetch_add(1, Ordering::Relaxed);
                            }
                            news |= new;
                            frames.push(f);
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "refused a pushed delta");
                            self.stats.refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(_) => return,
                    }
                }
                Ok(None) => {
                    clean = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "push stream broke; the pull repairs it");
                    break;
                }
            }
        }
        if news {
            self.changed();
        }
        // Forward once per (delta, hop), whatever arrived first.
        let key = (xxhash_rust::xxh3::xxh3_64(&frames.concat()), hop.code());
        let first = {
            let mut seen = self.forwarded.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert(key)
        };
        // A broken stream's part is not forwarded: the pull repairs it, and
        // the whole batch would be forwarded again under another hash.
        if first && clean && !frames.is_empty() {
            self.push(frames, hop).await;
        }
    }
}

/// Closes a cached connection whose stream stalled or broke, so the next
/// exchange with that peer connects afresh. A peer that restarted on the
/// same address leaves this side holding a connection nobody answers on:
/// kept, every pull from the new process waited out its 10 s stall
/// timeout until QUIC's idle timeout closed it, about 30 s after the
/// restart (seen by hand: a write from a restarted node took 32 s to reach
/// its peer).
fn forget_if_stalled(conn: &quinn::Connection, e: &NetError) {
    if matches!(e, NetError::Timeout(_) | NetError::Stream(_)) {
        conn.close(0u32.into(), b"stalled");
    }
}

#[cfg(test)]
mod tests {
    /// The jitter seed comes from the OS, not from anything two nodes
    /// share (such as the length of their ids): two draws differ.
    #[test]
    fn the_pull_jitter_is_seeded_from_os_randomness() {
        let draws: std::collections::BTreeSet<[u8; 8]> = (0..4).map(|_| super::os_entropy()).collect();
        assert_eq!(draws.len(), 4);
    }
}
