//! Who sends what to whom: the push tree for fresh writes, the peers to
//! pull from, and a scheduler that bounds concurrent pulls.
//!
//! Fresh writes are pushed along the tiers (an eager tree, as in Plumtree
//! or Quicksilver's fan-out): the writer sends to its site; representatives
//! forward to the other sites of their region and to the other regions;
//! whoever receives from above sends down into its own site. Pull
//! (anti-entropy) repairs what a push missed, along the same tiers: every
//! node pulls from its site, site representatives also from the other
//! sites' representatives in their region, region representatives also
//! from the other regions' representatives. Both are pure functions of this
//! node and the members it knows, so the simulator runs them unchanged.

use std::collections::{BTreeMap, VecDeque};

use crate::model::NodeId;

/// What the push and pull rules need to know about a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Member id.
    pub id: NodeId,
    /// Region.
    pub region: String,
    /// Site.
    pub site: String,
    /// In its region's pool (a site representative).
    pub region_rep: bool,
    /// In the global pool (a region representative).
    pub global_rep: bool,
}

/// How a pushed delta reached this node, which decides where it goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Written here.
    Local,
    /// From a member of this node's site that wrote it or got it first.
    FromSite,
    /// From another site's representative in this region; written in this region.
    FromRegion,
    /// From another region's representative.
    FromGlobal,
    /// From this region's representative, passing down a write from
    /// another region.
    FromRegionDown,
    /// From above, to be kept: forwarded no further.
    Down,
}

impl Hop {
    /// The hop's number on the wire (and in per-hop bookkeeping).
    pub fn code(self) -> u8 {
        match self {
            Hop::Local => 0,
            Hop::FromSite => 1,
            Hop::FromRegion => 2,
            Hop::FromGlobal => 3,
            Hop::FromRegionDown => 4,
            Hop::Down => 5,
        }
    }

    /// The hop a peer sent as `code`; `Local` is never sent.
    pub fn from_code(code: u8) -> Option<Hop> {
        Some(match code {
            1 => Hop::FromSite,
            2 => Hop::FromRegion,
            3 => Hop::FromGlobal,
            4 => Hop::FromRegionDown,
            5 => Hop::Down,
            _ => return None,
        })
    }
}

/// The members to push a delta to, with the hop they will see. A node
/// forwards a delta once per hop kind it receives it with (not only the
/// first time it sees it): whatever the arrival order, every branch of the
/// tree is followed, and each node sends at most six times per delta.
/// Receiving is idempotent.
pub fn push_targets(me: &Peer, members: &[Peer], hop: Hop) -> Vec<(NodeId, Hop)> {
    let mut out = Vec::new();
    let site_mates = members.iter().filter(|p| p.id != me.id && p.region == me.region && p.site == me.site);
    let other_sites_reps =
        members.iter().filter(|p| p.id != me.id && p.region == me.region && p.site != me.site && p.region_rep);
    let other_regions_reps = members.iter().filter(|p| p.region != me.region && p.global_rep);
    match hop {
        Hop::Local => {
            out.extend(site_mates.map(|p| (p.id.clone(), Hop::FromSite)));
            if me.region_rep {
                out.extend(other_sites_reps.map(|p| (p.id.clone(), Hop::FromRegion)));
            }
            if me.global_rep {
                out.extend(other_regions_reps.map(|p| (p.id.clone(), Hop::FromGlobal)));
            }
        }
        Hop::FromSite => {
            if me.region_rep {
                out.extend(other_sites_reps.map(|p| (p.id.clone(), Hop::FromRegion)));
            }
            if me.global_rep {
                out.extend(other_regions_reps.map(|p| (p.id.clone(), Hop::FromGlobal)));
            }
        }
        Hop::FromRegion => {
            out.extend(site_mates.map(|p| (p.id.clone(), Hop::Down)));
            if me.global_rep {
                out.extend(other_regions_reps.map(|p| (p.id.clone(), Hop::FromGlobal)));
            }
        }
        Hop::FromGlobal => {
            out.extend(site_mates.map(|p| (p.id.clone(), Hop::Down)));
            out.extend(other_sites_reps.map(|p| (p.id.clone(), Hop::FromRegionDown)));
        }
        Hop::FromRegionDown => out.extend(site_mates.map(|p| (p.id.clone(), Hop::Down))),
        Hop::Down => {}
    }
    out
}

/// Whether this node pulls (anti-entropy) from `peer`.
pub fn pulls_from(me: &Peer, peer: &Peer) -> bool {
    if me.id == peer.id {
        return false;
    }
    let same_region = me.region == peer.region;
    (same_region && me.site == peer.site)
        || (same_region && me.region_rep && peer.region_rep)
        || (!same_region && me.global_rep && peer.global_rep)
}

/// A small deterministic generator (SplitMix64) for jitter: seeded by the
/// driver, so the simulator replays the same choices.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if n == 0 { 0 } else { z % n }
    }
}

/// Scheduler settings.
#[derive(Clone, Copy, Debug)]
pub struct SyncLimits {
    /// Pulls in flight at once, over all peers and zones.
    pub max_concurrent: usize,
    /// First retry delay after a failed pull, in milliseconds.
    pub backoff_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits { max_concurrent: 4, backoff_base_ms: 200, backoff_max_ms: 30_000 }
    }
}

/// A pull to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pull {
    /// From whom.
    pub peer: NodeId,
    /// Which zone.
    pub zone: String,
}

#[derive(Clone, Debug, Default)]
struct PeerState {
    /// Zones where the peer's digest differs from ours.
    differing: BTreeMap<String, ()>,
    /// Not before this time (ms), after failures.
    retry_at: u64,
    failures: u32,
}

/// Decides which pulls to run: those where a peer's digest for a zone
/// differs from this node's, at most `max_concurrent` at once, one per
/// (peer, zone), with jittered exponential backoff after failures, so a
/// hundred nodes restarting together do not start a reconciliation storm.
#[derive(Clone, Debug)]
pub struct SyncScheduler {
    limits: SyncLimits,
    peers: BTreeMap<NodeId, PeerState>,
    in_flight: BTreeMap<(NodeId, String), u64>,
    jitter: Jitter,
    /// Rotates which peer is served first.
    cursor: usize,
}

impl SyncScheduler {
    /// A scheduler whose backoff jitter is seeded with `entropy`: the
    /// node's driver passes 8 bytes from the operating system's random
    /// source, drawn afresh at every start, so nodes that start or fail
    /// together never retry in step; the simulator passes bytes from its
    /// own seeded generator, so a run replays. Both come through here.
    pub fn with_entropy(limits: SyncLimits, entropy: [u8; 8]) -> SyncScheduler {
        SyncScheduler::new(limits, u64::from_le_bytes(entropy))
    }

    /// A scheduler; `seed` feeds the jitter (tests; see
    /// [`SyncScheduler::with_entropy`]).
    pub fn new(limits: SyncLimits, seed: u64) -> SyncScheduler {
        SyncScheduler {
            limits,
            peers: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            jitter: Jitter::new(seed),
            cursor: 0,
        }
    }

    /// A peer's digest for `zone` compared with ours: `differs` schedules a
    /// pull, equality cancels one not yet started.
    pub fn digest_seen(&mut self, peer: &str, zone: &str, differs: bool) {
        if differs {
            self.peers.entry(peer.to_owned()).or_default().differing.insert(zone.to_owned(), ());
        } else if let Some(st) = self.peers.get_mut(peer) {
            // No entry is kept for a peer that agrees (and has not failed):
            // a node sees its agreeing neighbours four times a second, and
            // `poll` walks every entry.
            st.differing.remove(zone);
            if st.differing.is_empty() && st.failures == 0 {
                self.peers.remove(peer);
            }
        }
    }

    /// The peer is gone: nothing more is scheduled with it, and a pull
    /// [`SyncScheduler::poll`] handed out for it that could not be started
    /// gives its slot back (else each vanished peer would hold one of the
    /// `max_concurrent` slots for ever, until no pull could start).
    pub fn peer_gone(&mut self, peer: &str) {
        self.peers.remove(peer);
        self.in_flight.retain(|(p, _), _| p != peer);
    }

    /// Pulls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next pull to start at `now_ms`, if the limits allow one.
    pub fn poll(&mut self, now_ms: u64) -> Option<Pull> {
        if self.in_flight.len() >= self.limits.max_concurrent || self.peers.is_empty() {
            return None;
        }
        // Served in turn from a rotating start, so one busy peer cannot
        // starve the others; only the chosen peer's id is cloned.
        let n = self.peers.len();
        let start = self.cursor % n;
        let in_flight = &self.in_flight;
        let chosen =
            self.peers.iter().enumerate().skip(start).chain(self.peers.iter().enumerate().take(start)).find_map(
                |(at, (id, st))| {
                    if st.retry_at > now_ms {
                        return None;
                    }
                    let zone = st.differing.keys().find(|z| !in_flight.keys().any(|(p, iz)| p == id && iz == *z))?;
                    Some((at, id.clone(), zone.clone()))
                },
            );
        let (at, id, zone) = chosen?;
        self.cursor = (at + 1) % n;
        if let Some(st) = self.peers.get_mut(&id) {
            st.differing.remove(&zone);
        }
        self.in_flight.insert((id.clone(), zone.clone()), now_ms);
        Some(Pull { peer: id, zone })
    }

    /// A pull ended. A failure puts the peer on a jittered exponential
    /// backoff and keeps the zone scheduled; a success clears the failures.
    pub fn pull_done(&mut self, pull: &Pull, ok: bool, now_ms: u64) {
        self.in_flight.remove(&(pull.peer.clone(), pull.zone.clone()));
        if ok {
            if let Some(st) = self.peers.get_mut(&pull.peer) {
                st.failures = 0;
                st.retry_at = 0;
                if st.differing.is_empty() {
                    self.peers.remove(&pull.peer);
                }
            }
            return;
        }
        let st = self.peers.entry(pull.peer.clone()).or_default();
        st.failures = st.failures.saturating_add(1);
        let exp =
            self.limits.backoff_base_ms.saturating_mul(1u64 << st.failures.min(20)).min(self.limits.backoff_max_ms);
        // Full jitter: anywhere in [exp/2, exp).
        let delay = exp / 2 + self.jitter.below(exp / 2 + 1);
        st.retry_at = now_ms.saturating_add(delay);
        st.differing.insert(pull.zone.clone(), ());
    }
}

/// When a peer's differing digest is worth a pull. A fresh write reaches a
/// node by push within milliseconds while gossip takes a round to show it,
/// so only a difference that lasts [`PullPolicy::LASTING_MS`] counts, and
/// only once per state of the peer (again after [`PullPolicy::REPEAT_MS`]
/// if it still differs: the peer may be the one lacking writes).
///
/// A peer whose digest equals one this node held in the last
/// [`PullPolicy::OWN_HISTORY_MS`] is behind, not ahead: it holds exactly
/// what this node held then, and a digest never recurs (it counts the
/// writes). Under a steady stream of writes every peer's gossiped digest
/// lags ours by a round and so always differs; without this rule each new
/// lagging digest counted as a new state, and every node pulled from every
/// pool mate once a second (the simulator's pull storm, docs/scale.md).
#[derive(Clone, Debug, Default)]
pub struct PullPolicy {
    /// When each peer's digest was first seen to differ from ours (ms).
    differs_since: BTreeMap<NodeId, u64>,
    /// Each peer's digest at our last good pull from it, and when (ms).
    pulled: BTreeMap<NodeId, (u64, u64)>,
    /// This node's own recent digests, oldest first, with when each was
    /// last held (ms).
    own: VecDeque<(u64, u64)>,
}

impl PullPolicy {
    /// How long a difference must last before it is pulled.
    pub const LASTING_MS: u64 = 1_000;
    /// When a peer whose state has not changed since the last pull is
    /// pulled again while it still differs.
    pub const REPEAT_MS: u64 = 30_000;
    /// How long this node remembers its own past digests. Gossip shows a
    /// peer's digest a few rounds late at most; ten seconds covers that
    /// with room while keeping the list short (a few dozen entries at
    /// several writes a second).
    pub const OWN_HISTORY_MS: u64 = 10_000;

    /// Tells `scheduler` whether `peer`, gossiping digest `theirs` while this
    /// node holds `mine`, needs a pull at `now_ms`.
    pub fn observe(&mut self, scheduler: &mut SyncScheduler, peer: &str, theirs: u64, mine: u64, now_ms: u64) {
        self.remember_own(mine, now_ms);
        if theirs == mine || self.own.iter().any(|&(d, _)| d == theirs) {
            // Equal, or a state this node has been through: nothing to pull.
            if !self.differs_since.is_empty() {
                self.differs_since.remove(peer);
            }
            scheduler.digest_seen(peer, "*", false);
            return;
        }
        let since = *self.differs_since.entry(peer.to_owned()).or_insert(now_ms);
        let lasting = now_ms.saturating_sub(since) >= Self::LASTING_MS;
        let new_state = match self.pulled.get(peer) {
            Some(&(d, at)) => d != theirs || now_ms.saturating_sub(at) >= Self::REPEAT_MS,
            None => true,
        };
        scheduler.digest_seen(peer, "*", lasting && new_state);
    }

    /// Notes that this node holds `mine` at `now_ms`, and forgets its own
    /// digests older than [`PullPolicy::OWN_HISTORY_MS`].
    fn remember_own(&mut self, mine: u64, now_ms: u64) {
        match self.own.back_mut() {
            Some((d, at)) if *d == mine => *at = now_ms,
            _ => self.own.push_back((mine, now_ms)),
        }
        while self.own.front().is_some_and(|&(_, at)| now_ms.saturating_sub(at) > Self::OWN_HISTORY_MS) {
            self.own.pop_front();
        }
    }

    /// Records a good pull from `peer` made when it gossiped `digest`.
    pub fn pulled(&mut self, peer: &str, digest: u64, now_ms: u64) {
        self.pulled.insert(peer.to_owned(), (digest, now_ms));
    }

    /// Forgets a member that left.
    pub fn forget(&mut self, peer: &str) {
        self.differs_since.remove(peer);
        self.pulled.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, region: &str, site: &str, region_rep: bool, global_rep: bool) -> Peer {
        Peer { id: id.into(), region: region.into(), site: site.into(), region_rep, global_rep }
    }

    #[test]
    fn concurrency_is_bounded_and_failures_back_off() {
        let mut s =
            SyncScheduler::new(SyncLimits { max_concurrent: 2, backoff_base_ms: 100, backoff_max_ms: 1_000 }, 7);
        for p in ["a", "b", "c"] {
            s.digest_seen(p, "example.", true);
        }
        let first = s.poll(0).unwrap();
        let second = s.poll(0).unwrap();
        assert_ne!(first.peer, second.peer);
        assert_eq!(s.poll(0), None, "two in flight at most");
        s.pull_done(&first, false, 0);
        let third = s.poll(0).unwrap();
        assert_ne!(third.peer, first.peer, "the failed peer waits");
        s.pull_done(&second, true, 10);
        s.pull_done(&third, true, 10);
        assert_eq!(s.poll(10), None, "a backs off for at least 100 ms");
        let retry = s.poll(250).unwrap();
        assert_eq!(retry, first);
    }

    #[test]
    fn an_equal_digest_cancels_a_pending_pull() {
        let mut s = SyncScheduler::new(SyncLimits::default(), 1);
        s.digest_seen("a", "z.", true);
        s.digest_seen("a", "z.", false);
        assert_eq!(s.poll(0), None);
        s.digest_seen("b", "z.", true);
        s.peer_gone("b");
        assert_eq!(s.poll(0), None);
    }

    #[test]
    fn pull_sources_follow_the_tiers() {
        let me = peer("a", "eu", "fra", true, false);
        assert!(pulls_from(&me, &peer("b", "eu", "fra", false, false)));
        assert!(pulls_from(&me, &peer("c", "eu", "ams", true, false)));
        assert!(!pulls_from(&me, &peer("d", "eu", "ams", false, false)));
        assert!(!pulls_from(&me, &peer("e", "us", "iad", true, true)), "only region representatives cross regions");
        let g = peer("g", "eu", "fra", true, true);
        assert!(pulls_from(&g, &peer("e", "us", "iad", true, true)));
    }

    #[test]
    fn a_difference_is_pulled_once_it_lasts_and_once_per_peer_state() {
        let mut s = SyncScheduler::new(SyncLimits::default(), 1);
        let mut p = PullPolicy::default();
        p.observe(&mut s, "a", 7, 9, 0);
        assert_eq!(s.poll(0), None, "a fresh difference waits for the push");
        p.observe(&mut s, "a", 7, 9, PullPolicy::LASTING_MS);
        let pull = s.poll(PullPolicy::LASTING_MS).expect("a lasting difference is pulled");
        s.pull_done(&pull, true, 1_100);
        p.pulled("a", 7, 1_100);
        p.observe(&mut s, "a", 7, 9, 2_000);
        assert_eq!(s.poll(2_000), None, "the same peer state is not pulled twice");
        p.observe(&mut s, "a", 8, 9, 3_000);
        assert!(s.poll(3_000).is_some(), "a new peer state is");
        let mut s = SyncScheduler::new(SyncLimits::default(), 1);
        p.observe(&mut s, "a", 7, 9, 2_000 + PullPolicy::REPEAT_MS);
        assert!(s.poll(2_000 + PullPolicy::REPEAT_MS).is_some(), "and an old one again after a while");
        p.observe(&mut s, "a", 9, 9, 40_000);
        assert_eq!(s.poll(40_000), None, "equal digests need nothing");
    }

    #[test]
    fn a_peer_showing_one_of_our_past_digests_is_behind_and_not_pulled() {
        // Steady writes: our digest moves every 200 ms and the peer's
        // gossiped digest is always our digest of 400 ms before. It always
        // differs from ours, yet holds nothing we lack.
        let mut s = SyncScheduler::new(SyncLimits::default(), 1);
        let mut p = PullPolicy::default();
        for step in 0..100u64 {
            let now = step * 200;
            let mine = 1_000 + step;
            let theirs = 1_000 + step.saturating_sub(2);
            p.observe(&mut s, "lagging", theirs, mine, now);
            assert_eq!(s.poll(now), None, "pulled a lagging peer at {now} ms");
        }
        // A state we never held is still pulled once it lasts.
        p.observe(&mut s, "lagging", 5, 1_099, 20_000);
        p.observe(&mut s, "lagging", 5, 1_099, 21_000);
        assert!(s.poll(21_000).is_some(), "a peer ahead of us is pulled");
        // Our history is bounded in time: a digest we held long ago no
        // longer counts as ours (it may be a peer that lost data since).
        let mut s = SyncScheduler::new(SyncLimits::default(), 1);
        p.observe(&mut s, "old", 1_000, 1_099, 40_000);
        p.observe(&mut s, "old", 1_000, 1_099, 41_000);
        assert!(s.poll(41_000).is_some(), "a digest older than the history is a difference");
    }

    #[test]
    fn a_vanished_peer_gives_its_slot_back() {
        // Found by the simulator: peers that left while marked differing
        // were polled, dropped with peer_gone, and kept their in-flight
        // slot, until a node could pull from no one.
        let limits = SyncLimits { max_concurrent: 2, backoff_base_ms: 100, backoff_max_ms: 1_000 };
        let mut s = SyncScheduler::new(limits, 3);
        for p in ["gone1", "gone2", "here"] {
            s.digest_seen(p, "*", true);
        }
        for _ in 0..2 {
            let pull = s.poll(0).expect("a slot is free");
            if pull.peer != "here" {
                s.peer_gone(&pull.peer);
            }
        }
        assert!(s.in_flight() <= 1, "vanished peers hold no slot");
        let mut seen_here = false;
        while let Some(p) = s.poll(0) {
            if p.peer == "here" {
                seen_here = true;
            } else {
                s.peer_gone(&p.peer);
            }
        }
        assert!(seen_here || s.in_flight() == 1, "the live peer is still pulled");
    }

    #[test]
    fn agreeing_peers_leave_no_entry() {
        let mut s = SyncScheduler::new(SyncLimits::default(), 3);
        s.digest_seen("a", "*", false);
        assert_eq!(s.poll(0), None);
        assert!(s.peers.is_empty());
    }
}
