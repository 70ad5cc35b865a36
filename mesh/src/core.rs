//! [`MeshCore`]: the merged membership view, the pools to be in, and what
//! to relay across tiers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use meshdns_ring::{Member, Ring};

use crate::facts::{Liveness, NodeFacts, PeerRecord, Roles, Source};
use crate::tier::{Pool, TierConfig, plan};

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Start gossiping in this pool.
    JoinPool(Pool),
    /// Leave this pool (announce the leave, then stop its gossip).
    LeavePool(Pool),
    /// Tell the rest of the node about a membership change.
    Event(MembershipEvent),
}

/// A change in the merged view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member became known and alive, or changed what it publishes about
    /// itself (site, generation, addresses, roles).
    Up(Box<PeerRecord>),
    /// A member is no longer alive: declared dead, left, or forgotten.
    Down(String, Liveness),
}

/// This node's view of the cluster; see the crate docs for how to drive it.
#[derive(Debug)]
pub struct MeshCore {
    me: NodeFacts,
    cfg: TierConfig,
    /// Records as each joined pool last reported them, by member id.
    views: BTreeMap<Pool, BTreeMap<String, PeerRecord>>,
    /// Pools this node is in.
    joined: BTreeSet<Pool>,
    /// Pools the plan no longer wants but that are kept (view and relays)
    /// until the driver reports them left, so the tier above never loses
    /// this site while the successor joins.
    lingering: BTreeSet<Pool>,
    /// Per pool, the members that some other live member relays into it
    /// (before this node's own filtering): what a lingering node checks
    /// before it leaves, so nothing it relays is lost with it.
    covered: BTreeMap<Pool, BTreeSet<String>>,
    /// Every member known, whatever its liveness, merged over the pools.
    merged: BTreeMap<String, PeerRecord>,
    /// The live members.
    ring: Ring,
    actions: VecDeque<Action>,
    /// Whether the driver has let this node settle: it has gossiped in its
    /// site pool for a few rounds ([`MeshCore::settle`]). Until then it
    /// plans no upper pool: a node that knows only part of its site would
    /// take itself for a representative, join the upper pools and relay,
    /// then hand over seconds later — at scale, every starting node doing
    /// so floods the pools with relay records (found by the simulator).
    settled: bool,
}

/// Rounds of join/leave before the plan is taken as settled. Leaving a
/// pool can shrink the view, which can change the plan again; in practice
/// one or two rounds settle it, and the next pool view continues anyway.
const MAX_ROUNDS: usize = 4;

/// Whether a member says it holds the role that puts it in `pool`.
fn holds_role_for(pool: &Pool, facts: &NodeFacts) -> bool {
    match pool {
        Pool::Site { .. } => true,
        Pool::Region(_) => facts.roles.region,
        Pool::Global => facts.roles.global,
    }
}

/// Whether a member with `facts` belongs to `pool`'s scope.
fn in_scope(pool: &Pool, facts: &NodeFacts) -> bool {
    match pool {
        Pool::Site { region, site } => &facts.region == region && &facts.site == site,
        Pool::Region(region) => &facts.region == region,
        Pool::Global => true,
    }
}

/// Facts that matter to the rest of the node: all but the load figure and
/// the state digest, which change all the time and are not worth an event.
fn same_identity(a: &NodeFacts, b: &NodeFacts) -> bool {
    let quiet = |f: &NodeFacts| NodeFacts {
        load: 0,
        state_digest: 0,
        agreement: 0,
        agreement_digest: 0,
        zone_serials: String::new(),
        hot_names: String::new(),
        ..f.clone()
    };
    quiet(a) == quiet(b)
}

/// How high a pool sits: relays flow up from lower levels and down from
/// higher ones, never sideways, so no record can feed itself.
fn level(p: &Pool) -> u8 {
    match p {
        Pool::Site { .. } => 0,
        Pool::Region(_) => 1,
        Pool::Global => 2,
    }
}

/// Which of two records of one member to believe: the newer incarnation;
/// then what this node heard itself over hearsay; then, between relays,
/// the more severe liveness (a death travels up faster than a stale "alive"
/// from another path is withdrawn).
fn better(a: &PeerRecord, b: &PeerRecord) -> bool {
    if a.facts.generation != b.facts.generation {
        return a.facts.generation > b.facts.generation;
    }
    match (&a.source, &b.source) {
        (Source::Direct, Source::Via(_)) => true,
        (Source::Via(_), Source::Direct) => false,
        (Source::Direct, Source::Direct) => a.liveness < b.liveness,
        (Source::Via(_), Source::Via(_)) => a.liveness > b.liveness,
    }
}

impl MeshCore {
    /// A core for the node described by `me`. Its first action is joining
    /// its site pool.
    pub fn new(me: NodeFacts, cfg: TierConfig) -> MeshCore {
        let site = Pool::site(&me.region, &me.site);
        let mut core = MeshCore {
            ring: Ring::new([me.member()]),
            merged: BTreeMap::new(),
            me,
            cfg,
            views: BTreeMap::new(),
            joined: BTreeSet::new(),
            lingering: BTreeSet::new(),
            covered: BTreeMap::new(),
            actions: VecDeque::new(),
            settled: false,
        };
        core.merged.insert(core.me.id.clone(), core.my_record());
        core.joined.insert(site.clone());
        core.actions.push_back(Action::JoinPool(site));
        core
    }

    /// This node's facts (its roles follow the pools it is in).
    pub fn me(&self) -> &NodeFacts {
        &self.me
    }

    fn my_record(&self) -> PeerRecord {
        PeerRecord { facts: self.me.clone(), liveness: Liveness::Alive, source: Source::Direct }
    }

    /// Every member this node knows to be alive, itself included.
    pub fn members(&self) -> &Ring {
        &self.ring
    }

    /// Every member this node knows of, alive or not, with the record it
    /// believes.
    pub fn records(&self) -> &BTreeMap<String, PeerRecord> {
        &self.merged
    }

    /// The pools this node is in.
    pub fn pools(&self) -> &BTreeSet<Pool> {
        &self.joined
    }

    /// This node's tier roles.
    pub fn roles(&self) -> Roles {
        self.me.roles
    }

    /// Updates what this node publishes about itself (addresses, load).
    /// Roles are the core's own and are kept.
    pub fn set_facts(&mut self, mut facts: NodeFacts) {
        facts.roles = self.me.roles;
        self.me = facts;
        self.merged.insert(self.me.id.clone(), self.my_record());
    }

    /// A pool reports what it knows: its members, with their liveness
    /// (`Source::Direct`), and the relay records its live members publish
    /// (`Source::Via`). Reports from pools this node is not in (a late
    /// report after leaving) are ignored.
    ///
    /// Relay records that break the relay rules are dropped: a relayer may
    /// only send down members outside the pool's scope, and up members of
    /// its own site (into a region pool) or region (into the global pool);
    /// and nobody relays this node's own site, which it hears first-hand.
    pub fn handle_pool_view(&mut self, pool: Pool, records: Vec<PeerRecord>) {
        if !self.joined.contains(&pool) && !self.lingering.contains(&pool) {
            return;
        }
        let relayers: BTreeMap<String, NodeFacts> = records
            .iter()
            .filter(|r| r.source == Source::Direct)
            .map(|r| (r.facts.id.clone(), r.facts.clone()))
            .collect();
        let my_site = Pool::site(&self.me.region, &self.me.site);
        let covered: BTreeSet<String> = records
            .iter()
            .filter(|r| matches!(&r.source, Source::Via(via) if via != &self.me.id && relayers.contains_key(via)))
            .map(|r| r.facts.id.clone())
            .collect();
        let mut view: BTreeMap<String, PeerRecord> = BTreeMap::new();
        for r in records {
            if r.facts.id == self.me.id {
                continue;
            }
            // A member that announced it is no longer a representative
            // (its roles) and then falls silent in this upper pool has left
            // the pool, not the mesh: its liveness comes from its
            // successors' relays, so its silence here is not news.
            if r.source == Source::Direct && !r.liveness.is_live() && !holds_role_for(&pool, &r.facts) {
                continue;
            }
            if let Source::Via(via) = &r.source {
                let Some(x) = relayers.get(via) else { continue };
                let down = !in_scope(&pool, &r.facts);
                let up = match &pool {
                    Pool::Site { .. } => false,
                    Pool::Region(_) => r.facts.region == x.region && r.facts.site == x.site,
                    Pool::Global => r.facts.region == x.region,
                };
                if !(down || up) || in_scope(&my_site, &r.facts) {
                    continue;
                }
            }
            match view.get(&r.facts.id) {
                Some(old) if !better(&r, old) => {}
                _ => {
                    view.insert(r.facts.id.clone(), r);
                }
            }
        }
        // Nothing new (the common case, several times a second): the merged
        // view and the plan cannot have changed either.
        if self.views.get(&pool) == Some(&view) && self.covered.get(&pool) == Some(&covered) {
            return;
        }
        self.views.insert(pool.clone(), view);
        self.covered.insert(pool, covered);
        self.merge_and_replan();
    }

    /// Whether `pool`, which this node is leaving, now has every member the
    /// plan wants in it (other than this node) alive: the successor is in
    /// place and leaving loses nothing.
    pub fn successors_present(&self, pool: &Pool) -> bool {
        let expected: BTreeSet<String> = match pool {
            Pool::Site { .. } => return true,
            Pool::Region(region) => crate::tier::site_representatives(&self.ring, &self.cfg)
                .into_iter()
                .filter(|id| self.ring.get(id).is_some_and(|m| &m.region == region))
                .collect(),
            Pool::Global => crate::tier::region_representatives(&self.ring, &self.cfg),
        };
        let present: BTreeSet<&String> = self
            .views
            .get(pool)
            .map(|v| {
                v.values().filter(|r| r.source == Source::Direct && r.liveness.is_live()).map(|r| &r.facts.id).collect()
            })
            .unwrap_or_default();
        if !expected.iter().filter(|id| **id != self.me.id).all(|id| present.contains(id)) {
            return false;
        }
        // And the successors already relay everything this node relays
        // there, itself included: leaving then loses no member, even for a
        // reader that hears this site only through this pool.
        let covered = self.covered.get(pool);
        let is_covered = |id: &String| present.contains(id) || covered.is_some_and(|c| c.contains(id));
        self.relays(pool).keys().chain(std::iter::once(&self.me.id)).all(is_covered)
    }

    /// The driver has left `pool` (after [`Action::LeavePool`]): its view
    /// and relays are dropped. Ignored if the plan wants the pool again.
    pub fn pool_left(&mut self, pool: &Pool) {
        if self.lingering.remove(pool) {
            self.views.remove(pool);
            self.covered.remove(pool);
            // Replanned here too: `handle_pool_view` skips unchanged views.
            self.merge_and_replan();
        }
    }

    /// Merges the pool views and replans until the plan stops changing
    /// (bounded: a plan that keeps changing is retried next view).
    fn merge_and_replan(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.merge();
            if !self.replan() {
                break;
            }
        }
    }

    /// Whether [`MeshCore::settle`] has been called.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Tells the core it has gossiped in its site pool long enough to know
    /// its site (the driver waits a few rounds after starting): from now on
    /// it plans its upper pools.
    pub fn settle(&mut self) {
        if !self.settled {
            self.settled = true;
            self.merge_and_replan();
        }
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The relay records this node should publish in `pool`, by member id:
    /// news flows up (members of this node's site into its region pool,
    /// of its region into the global pool, from lower pools only) and down
    /// (members outside a pool's scope, from higher pools only). A record
    /// never returns to where it came from, so a dead member cannot be kept
    /// alive by two representatives repeating each other.
    pub fn relays(&self, pool: &Pool) -> BTreeMap<String, PeerRecord> {
        let mut out: BTreeMap<String, PeerRecord> = BTreeMap::new();
        if !self.joined.contains(pool) && !self.lingering.contains(pool) {
            return out;
        }
        let mine_below = |r: &PeerRecord| match pool {
            Pool::Site { .. } => false,
            Pool::Region(_) => r.facts.region == self.me.region && r.facts.site == self.me.site,
            Pool::Global => r.facts.region == self.me.region,
        };
        for (from, view) in &self.views {
            let up = level(from) < level(pool);
            let down = level(from) > level(pool);
            for (id, r) in view {
                // Up: only what the lower pool holds first-hand (members of
                // its own scope), never what was sent down into it, or two
                // representatives of one site would feed each other.
                let take = (up && in_scope(from, &r.facts) && mine_below(r)) || (down && !in_scope(pool, &r.facts));
                if !take {
                    continue;
                }
                match out.get(id) {
                    Some(old) if !better(r, old) => {}
                    _ => {
                        out.insert(id.clone(), r.clone());
                    }
                }
            }
        }
        out
    }

    /// Rebuilds the merged view and queues events for what changed.
    fn merge(&mut self) {
        let mut merged: BTreeMap<String, PeerRecord> = BTreeMap::new();
        for view in self.views.values() {
            for (id, r) in view {
                match merged.get(id) {
                    Some(old) if !better(r, old) => {}
                    _ => {
                        merged.insert(id.clone(), r.clone());
                    }
                }
            }
        }
        merged.insert(self.me.id.clone(), self.my_record());
        for (id, r) in &merged {
            let before = self.merged.get(id);
            let was_live = before.is_some_and(|b| b.liveness.is_live());
            if r.liveness.is_live() {
                if !was_live || before.is_some_and(|b| !same_identity(&b.facts, &r.facts)) {
                    self.actions.push_back(Action::Event(MembershipEvent::Up(Box::new(r.clone()))));
                }
            } else if was_live {
                self.actions.push_back(Action::Event(MembershipEvent::Down(id.clone(), r.liveness)));
            }
        }
        for (id, b) in &self.merged {
            if b.liveness.is_live() && !merged.contains_key(id) {
                self.actions.push_back(Action::Event(MembershipEvent::Down(id.clone(), Liveness::Dead)));
            }
        }
        self.ring = Ring::new(merged.values().filter(|r| r.liveness.is_live()).map(|r| r.facts.member()));
        self.merged = merged;
    }

    /// Joins and leaves pools to match the plan. Returns whether anything changed.
    fn replan(&mut self) -> bool {
        let wanted = if self.settled {
            plan(&self.me.member(), &self.ring, &self.cfg)
        } else {
            BTreeSet::from([Pool::site(&self.me.region, &self.me.site)])
        };
        let joins: Vec<Pool> = wanted.difference(&self.joined).cloned().collect();
        let leaves: Vec<Pool> = self.joined.difference(&wanted).cloned().collect();
        for p in &joins {
            self.actions.push_back(Action::JoinPool(p.clone()));
        }
        for p in &joins {
            self.lingering.remove(p);
        }
        for p in &leaves {
            // Kept until `pool_left`: see `lingering`.
            self.lingering.insert(p.clone());
            self.actions.push_back(Action::LeavePool(p.clone()));
        }
        self.me.roles = Roles {
            region: wanted.iter().any(|p| matches!(p, Pool::Region(_))),
            global: wanted.contains(&Pool::Global),
        };
        self.merged.insert(self.me.id.clone(), self.my_record());
        self.joined = wanted;
        !joins.is_empty() || !leaves.is_empty()
    }
}

/// Facts for tests and examples: `id` in `region`/`site`, everything else
/// zero.
pub fn test_facts(id: &str, region: &str, site: &str) -> NodeFacts {
    NodeFacts {
        id: id.to_owned(),
        generation: 1,
        region: region.to_owned(),
        site: site.to_owned(),
        gossip: std::net::SocketAddr::from(([127, 0, 0, 1], 7946)),
        dns: None,
        grpc: None,
        quic: None,
        version: "test".to_owned(),
        started_unix: 0,
        load: 0,
        state_digest: 0,
        agreement: 0,
        agreement_digest: 0,
        zone_serials: String::new(),
        hot_names: String::new(),
        roles: Roles::default(),
    }
}

/// A member heard directly, alive.
pub fn direct(facts: NodeFacts) -> PeerRecord {
    PeerRecord { facts, liveness: Liveness::Alive, source: Source::Direct }
}

impl From<&PeerRecord> for Member {
    fn from(r: &PeerRecord) -> Member {
        r.facts.member()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core that plans from its first view, as before `MeshCore::settle`
    /// existed: these tests are about the plan, not the start.
    fn new_settled(me: NodeFacts, cfg: TierConfig) -> MeshCore {
        let mut core = MeshCore::new(me, cfg);
        core.settled = true;
        core
    }

    fn drain(core: &mut MeshCore) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn site(n: usize) -> Vec<NodeFacts> {
        (0..n).map(|i| test_facts(&format!("n{i}"), "eu", "fra1")).collect()
    }

    fn view(facts: &[NodeFacts]) -> Vec<PeerRecord> {
        facts.iter().cloned().map(direct).collect()
    }

    fn ups(actions: &[Action]) -> usize {
        actions.iter().filter(|a| matches!(a, Action::Event(MembershipEvent::Up(_)))).count()
    }

    #[test]
    fn first_action_is_joining_the_site_pool() {
        let mut core = MeshCore::new(test_facts("n0", "eu", "fra1"), TierConfig::default());
        assert_eq!(drain(&mut core), vec![Action::JoinPool(Pool::site("eu", "fra1"))]);
    }

    #[test]
    fn exactly_the_representatives_join_the_region_pool_and_agree() {
        let members = site(6);
        let cfg = TierConfig::default();
        let mut reps = BTreeSet::new();
        for me in &members {
            let mut core = new_settled(me.clone(), cfg);
            core.handle_pool_view(Pool::site("eu", "fra1"), view(&members));
            let actions = drain(&mut core);
            if actions.contains(&Action::JoinPool(Pool::Region("eu".into()))) {
                reps.insert(me.id.clone());
                assert!(core.roles().region);
            }
            assert_eq!(ups(&actions), 5, "every other member is reported up once (a core knows itself from the start)");
        }
        assert_eq!(reps.len(), 2, "two site representatives, agreed without a vote");
    }

    #[test]
    fn a_representative_dying_promotes_another_which_joins_the_region_pool() {
        let members = site(5);
        let cfg = TierConfig::default();
        let ring = Ring::new(members.iter().map(NodeFacts::member));
        let reps = crate::tier::site_representatives(&ring, &cfg);
        let dead = reps.iter().next().cloned().unwrap();
        let after = crate::tier::site_representatives(&ring.without(&dead), &cfg);
        let promoted = after.difference(&reps).next().cloned().unwrap();
        let me = members.iter().find(|m| m.id == promoted).cloned().unwrap();
        let mut core = new_settled(me, cfg);
        core.handle_pool_view(Pool::site("eu", "fra1"), view(&members));
        assert!(!core.pools().contains(&Pool::Region("eu".into())));
        drain(&mut core);
        // The failure detector declares it dead: it stays in the view as dead.
        let mut v = view(&members);
        v.iter_mut().filter(|r| r.facts.id == dead).for_each(|r| r.liveness = Liveness::Dead);
        core.handle_pool_view(Pool::site("eu", "fra1"), v);
        let actions = drain(&mut core);
        assert!(actions.contains(&Action::Event(MembershipEvent::Down(dead.clone(), Liveness::Dead))));
        assert!(actions.contains(&Action::JoinPool(Pool::Region("eu".into()))));
        assert_eq!(core.records()[&dead].liveness, Liveness::Dead);
        assert!(core.members().get(&dead).is_none());
    }

    #[test]
    fn a_newer_generation_replaces_the_old_incarnation() {
        let mut core = new_settled(test_facts("a", "eu", "fra1"), TierConfig::default());
        let mut old = direct(test_facts("b", "eu", "fra1"));
        old.liveness = Liveness::Dead;
        let mut new = direct(test_facts("b", "eu", "fra1"));
        new.facts.generation = 2;
        core.handle_pool_view(Pool::site("eu", "fra1"), vec![old, new]);
        assert_eq!(core.records()["b"].facts.generation, 2);
        assert!(core.members().get("b").is_some());
    }

    /// Two sites of one region, each with two nodes: every node learns the
    /// other site through the region pool, and a death in one site reaches
    /// the other as a relayed "dead".
    #[test]
    fn relays_carry_members_across_tiers_and_never_loop() {
        let cfg = TierConfig::default();
        let a = [test_facts("a1", "eu", "fra1"), test_facts("a2", "eu", "fra1")];
        let b = [test_facts("b1", "eu", "ams1"), test_facts("b2", "eu", "ams1")];
        // a1 is a representative of fra1 (both members are).
        let mut a1 = new_settled(a[0].clone(), cfg);
        a1.handle_pool_view(Pool::site("eu", "fra1"), view(&a));
        assert!(a1.pools().contains(&Pool::Region("eu".into())));
        // It publishes its site upward, nothing downward yet.
        let up = a1.relays(&Pool::Region("eu".into()));
        assert_eq!(up.keys().collect::<Vec<_>>(), vec!["a2"]);
        assert!(a1.relays(&Pool::site("eu", "fra1")).is_empty());
        // The region pool shows b1 directly and b2 through b1's relay.
        let mut b2_via = direct(b[1].clone());
        b2_via.source = Source::Via("b1".into());
        let region_view = vec![direct(a[1].clone()), direct(b[0].clone()), b2_via.clone()];
        a1.handle_pool_view(Pool::Region("eu".into()), region_view.clone());
        assert!(a1.members().get("b2").is_some());
        // Downward into its site: the other site's members, not its own.
        let down = a1.relays(&Pool::site("eu", "fra1"));
        assert_eq!(down.keys().collect::<Vec<_>>(), vec!["b1", "b2"]);
        // And b2 is never sent back up into the region pool it came from.
        assert!(!a1.relays(&Pool::Region("eu".into())).contains_key("b2"));
        // b2 dies: its site's representative relays it as dead.
        let mut b2_dead = b2_via;
        b2_dead.liveness = Liveness::Dead;
        a1.handle_pool_view(Pool::Region("eu".into()), vec![direct(a[1].clone()), direct(b[0].clone()), b2_dead]);
        let actions = drain(&mut a1);
        assert!(actions.contains(&Action::Event(MembershipEvent::Down("b2".into(), Liveness::Dead))));
        assert_eq!(a1.relays(&Pool::site("eu", "fra1"))["b2"].liveness, Liveness::Dead);
    }

    fn via(facts: NodeFacts, relayer: &str) -> PeerRecord {
        PeerRecord { facts, liveness: Liveness::Alive, source: Source::Via(relayer.into()) }
    }

    /// Two global representatives in one site: what one sends down into the
    /// site must not go back up into the global pool through the other, or
    /// a site that dies as a whole would stay alive forever.
    #[test]
    fn what_was_sent_down_is_never_sent_back_up() {
        let cfg = TierConfig::default();
        let g = test_facts("g", "eu", "fra1");
        let g2 = test_facts("g2", "eu", "fra1");
        let b2 = test_facts("b2", "eu", "ams1");
        let mut core = new_settled(g.clone(), cfg);
        core.handle_pool_view(Pool::site("eu", "fra1"), vec![direct(g2.clone()), via(b2.clone(), "g2")]);
        assert!(core.pools().contains(&Pool::Global), "a site of two in a region of one site: g is global");
        core.handle_pool_view(Pool::Region("eu".into()), vec![direct(g2.clone())]);
        core.handle_pool_view(Pool::Global, vec![direct(g2.clone())]);
        assert!(core.members().get("b2").is_some(), "b2 is known through g2's down-relay");
        assert!(!core.relays(&Pool::Global).contains_key("b2"), "but g never relays it up");
        assert!(!core.relays(&Pool::Region("eu".into())).contains_key("b2"));
        assert!(core.relays(&Pool::Global).contains_key("g2"), "its own site goes up");
    }

    #[test]
    fn relays_that_break_the_rules_are_dropped() {
        let cfg = TierConfig::default();
        let me = test_facts("a", "eu", "fra1");
        let mate = test_facts("m", "eu", "fra1");
        let mut core = new_settled(me, cfg);
        // A relay about a member of this node's own site, however new, is
        // ignored: the site pool is heard first-hand.
        let mut forged = via(mate.clone(), "x");
        forged.facts.generation = u64::MAX;
        forged.liveness = Liveness::Dead;
        let x = test_facts("x", "us", "iad1");
        core.handle_pool_view(Pool::site("eu", "fra1"), vec![direct(mate.clone())]);
        core.handle_pool_view(Pool::Global, vec![direct(x.clone()), forged]);
        assert_eq!(core.records()["m"].liveness, Liveness::Alive);
        assert_eq!(core.records()["m"].facts.generation, 1);
        // Up into the global pool, x may only relay its own region.
        let other = test_facts("o", "ap", "sin1");
        core.handle_pool_view(
            Pool::Global,
            vec![direct(x.clone()), via(other, "x"), via(test_facts("y", "us", "sfo1"), "x")],
        );
        assert!(core.members().get("o").is_none(), "x relayed another region up");
        assert!(core.members().get("y").is_some());
        // A relay from someone not live in the pool is dropped.
        core.handle_pool_view(Pool::Global, vec![via(test_facts("z", "us", "sfo1"), "nobody")]);
        assert!(core.members().get("z").is_none());
    }

    #[test]
    fn a_demoted_pool_keeps_relaying_until_left() {
        let cfg = TierConfig::default();
        let all = site(5);
        let ring = Ring::new(all.iter().map(NodeFacts::member));
        let reps = crate::tier::site_representatives(&ring, &cfg);
        let me = all.iter().find(|f| !reps.contains(&f.id)).cloned().unwrap();
        let others: Vec<NodeFacts> = all.iter().filter(|f| f.id != me.id).cloned().collect();
        let mut core = new_settled(me, cfg);
        // Alone with one other member, this node represents the site.
        core.handle_pool_view(Pool::site("eu", "fra1"), view(&others[..1]));
        let region = Pool::Region("eu".into());
        assert!(core.pools().contains(&region));
        drain(&mut core);
        // The rest of the site arrives: two others now represent it.
        core.handle_pool_view(Pool::site("eu", "fra1"), view(&others));
        assert!(drain(&mut core).contains(&Action::LeavePool(region.clone())));
        assert!(!core.roles().region);
        assert!(!core.relays(&region).is_empty(), "still relaying its site while lingering");
        assert!(!core.successors_present(&region), "the successors are not in the region pool yet");
        let successors: Vec<PeerRecord> = others.iter().filter(|f| reps.contains(&f.id)).cloned().map(direct).collect();
        core.handle_pool_view(region.clone(), successors.clone());
        assert!(!core.successors_present(&region), "the successors are in but do not relay the site yet");
        // Once a successor relays every member of the site (this node
        // included) into the region pool, leaving loses nothing.
        let relayer = successors[0].facts.id.clone();
        let mut report = successors;
        report.extend(all.iter().filter(|f| !reps.contains(&f.id)).map(|f| via(f.clone(), &relayer)));
        core.handle_pool_view(region.clone(), report);
        assert!(core.successors_present(&region));
        core.pool_left(&region);
        assert!(core.relays(&region).is_empty());
    }

    #[test]
    fn no_upper_pool_before_settling() {
        let mut core = MeshCore::new(test_facts("a", "eu", "fra1"), TierConfig::default());
        drain(&mut core);
        // It would be its site's representative, but has not settled.
        core.handle_pool_view(Pool::site("eu", "fra1"), vec![direct(test_facts("b", "eu", "fra1"))]);
        assert_eq!(core.pools().len(), 1, "site pool only: {:?}", core.pools());
        assert!(!core.roles().region);
        core.settle();
        assert!(core.settled());
        let actions = drain(&mut core);
        assert!(actions.contains(&Action::JoinPool(Pool::Region("eu".into()))), "{actions:?}");
        assert!(core.roles().region);
    }

    #[test]
    fn a_demoted_member_falling_silent_in_an_upper_pool_is_not_news() {
        let mut core = new_settled(test_facts("d", "us", "iad1"), TierConfig::default());
        let mut b = test_facts("b", "eu", "fra1");
        b.roles = Roles { region: true, global: true };
        core.handle_pool_view(Pool::site("us", "iad1"), vec![]);
        core.settle();
        core.handle_pool_view(Pool::Global, vec![direct(b.clone())]);
        assert!(core.pools().contains(&Pool::Global));
        drain(&mut core);
        // b says it is no longer a region representative, then its global
        // instance stops: d must keep b, now heard through c's relay.
        b.roles = Roles::default();
        let mut c = test_facts("c", "eu", "fra1");
        c.roles = Roles { region: true, global: true };
        let mut gone = direct(b.clone());
        gone.liveness = Liveness::Dead;
        core.handle_pool_view(Pool::Global, vec![gone.clone(), direct(c.clone()), via(b.clone(), "c")]);
        let downs =
            drain(&mut core).into_iter().filter(|a| matches!(a, Action::Event(MembershipEvent::Down(..)))).count();
        assert_eq!(downs, 0);
        assert!(core.records()["b"].liveness.is_live());
        // A representative that still holds the role and dies is news.
        let mut dead_c = direct(c);
        dead_c.liveness = Liveness::Dead;
        core.handle_pool_view(Pool::Global, vec![gone, dead_c]);
        let downs: Vec<Action> =
            drain(&mut core).into_iter().filter(|a| matches!(a, Action::Event(MembershipEvent::Down(..)))).collect();
        assert_eq!(downs.len(), 2, "c died, and b is no longer relayed by anyone: {downs:?}");
    }

    #[test]
    fn load_changes_are_not_events() {
        let mut core = new_settled(test_facts("a", "eu", "fra1"), TierConfig::default());
        let b = test_facts("b", "eu", "fra1");
        core.handle_pool_view(Pool::site("eu", "fra1"), vec![direct(b.clone())]);
        drain(&mut core);
        let mut busy = b;
        busy.load = 5_000;
        core.handle_pool_view(Pool::site("eu", "fra1"), vec![direct(busy)]);
        assert_eq!(ups(&drain(&mut core)), 0);
    }

    #[test]
    fn a_view_from_a_pool_not_joined_is_ignored() {
        let mut core = new_settled(test_facts("a", "eu", "fra1"), TierConfig::default());
        core.handle_pool_view(Pool::Region("us".into()), vec![direct(test_facts("z", "us", "iad1"))]);
        assert!(core.members().get("z").is_none());
    }
}
