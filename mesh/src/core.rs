//! [`MeshCore`]: the merged membership view and the pools to be in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use meshdns_ring::{Member, Ring};

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
    /// A member became known and alive (or changed its site).
    Up(Member),
    /// A member is no longer alive in any pool this node hears.
    Down(String),
}

/// This node's view of the cluster; see the crate docs for how to drive it.
#[derive(Debug)]
pub struct MeshCore {
    me: Member,
    cfg: TierConfig,
    /// Live members as each joined pool last reported them.
    views: BTreeMap<Pool, BTreeMap<String, Member>>,
    /// Pools this node is in.
    joined: BTreeSet<Pool>,
    /// The merged view.
    ring: Ring,
    actions: VecDeque<Action>,
}

/// Rounds of join/leave before the plan is taken as settled. Leaving a
/// pool can shrink the view, which can change the plan again; in practice
/// one or two rounds settle it, and the next pool view continues anyway.
const MAX_ROUNDS: usize = 4;

impl MeshCore {
    /// A core for `me`. Its first action is joining its site pool.
    pub fn new(me: Member, cfg: TierConfig) -> MeshCore {
        let site = Pool::site(&me.region, &me.site);
        let mut core = MeshCore {
            ring: Ring::new([me.clone()]),
            me,
            cfg,
            views: BTreeMap::new(),
            joined: BTreeSet::new(),
            actions: VecDeque::new(),
        };
        core.joined.insert(site.clone());
        core.actions.push_back(Action::JoinPool(site));
        core
    }

    /// This node.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Every member this node knows to be alive, itself included.
    pub fn members(&self) -> &Ring {
        &self.ring
    }

    /// The pools this node is in.
    pub fn pools(&self) -> &BTreeSet<Pool> {
        &self.joined
    }

    /// A pool reports its live members. Reports from pools this node is not
    /// in (a late report after leaving) are ignored.
    pub fn handle_pool_view(&mut self, pool: Pool, members: Vec<Member>) {
        if !self.joined.contains(&pool) {
            return;
        }
        self.views.insert(pool, members.into_iter().map(|m| (m.id.clone(), m)).collect());
        for _ in 0..MAX_ROUNDS {
            self.merge();
            if !self.replan() {
                break;
            }
        }
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Rebuilds the merged view and queues events for what changed.
    fn merge(&mut self) {
        let mut merged: BTreeMap<String, Member> = BTreeMap::new();
        for view in self.views.values() {
            for (id, m) in view {
                merged.entry(id.clone()).or_insert_with(|| m.clone());
            }
        }
        merged.insert(self.me.id.clone(), self.me.clone());
        let before: BTreeMap<&str, &Member> = self.ring.members().map(|m| (m.id.as_str(), m)).collect();
        for (id, m) in &merged {
            if before.get(id.as_str()) != Some(&m) {
                self.actions.push_back(Action::Event(MembershipEvent::Up(m.clone())));
            }
        }
        for id in before.keys().filter(|id| !merged.contains_key(**id)) {
            self.actions.push_back(Action::Event(MembershipEvent::Down((*id).to_owned())));
        }
        self.ring = Ring::new(merged.into_values());
    }

    /// Joins and leaves pools to match the plan. Returns whether anything changed.
    fn replan(&mut self) -> bool {
        let wanted = plan(&self.me, &self.ring, &self.cfg);
        let joins: Vec<Pool> = wanted.difference(&self.joined).cloned().collect();
        let leaves: Vec<Pool> = self.joined.difference(&wanted).cloned().collect();
        for p in &joins {
            self.actions.push_back(Action::JoinPool(p.clone()));
        }
        for p in &leaves {
            self.views.remove(p);
            self.actions.push_back(Action::LeavePool(p.clone()));
        }
        self.joined = wanted;
        !joins.is_empty() || !leaves.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(core: &mut MeshCore) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn site(n: usize) -> Vec<Member> {
        (0..n).map(|i| Member::new(format!("n{i}"), "eu", "fra1")).collect()
    }

    #[test]
    fn first_action_is_joining_the_site_pool() {
        let mut core = MeshCore::new(Member::new("n0", "eu", "fra1"), TierConfig::default());
        assert_eq!(drain(&mut core), vec![Action::JoinPool(Pool::site("eu", "fra1"))]);
    }

    #[test]
    fn exactly_the_representatives_join_the_region_pool_and_agree() {
        let members = site(6);
        let cfg = TierConfig::default();
        let mut reps = BTreeSet::new();
        for me in &members {
            let mut core = MeshCore::new(me.clone(), cfg);
            core.handle_pool_view(Pool::site("eu", "fra1"), members.clone());
            let actions = drain(&mut core);
            if actions.contains(&Action::JoinPool(Pool::Region("eu".into()))) {
                reps.insert(me.id.clone());
            }
            let ups = actions.iter().filter(|a| matches!(a, Action::Event(MembershipEvent::Up(_)))).count();
            assert_eq!(ups, 5, "every other member is reported up once (a core knows itself from the start)");
        }
        assert_eq!(reps.len(), 2, "two site representatives, agreed without a vote");
    }

    #[test]
    fn a_representative_dying_promotes_another_which_joins_the_region_pool() {
        let members = site(5);
        let cfg = TierConfig::default();
        let reps = crate::tier::site_representatives(&Ring::new(members.clone()), &cfg);
        let dead = reps.iter().next().cloned().unwrap_or_default();
        let survivors: Vec<Member> = members.iter().filter(|m| m.id != dead).cloned().collect();
        let new_reps = crate::tier::site_representatives(&Ring::new(survivors.clone()), &cfg);
        let promoted = new_reps.difference(&reps).next().cloned().unwrap_or_default();
        let me = members.iter().find(|m| m.id == promoted).cloned().unwrap_or_else(|| Member::new("?", "eu", "fra1"));
        let mut core = MeshCore::new(me, cfg);
        core.handle_pool_view(Pool::site("eu", "fra1"), members);
        assert!(!core.pools().contains(&Pool::Region("eu".into())));
        drain(&mut core);
        core.handle_pool_view(Pool::site("eu", "fra1"), survivors);
        let actions = drain(&mut core);
        assert!(actions.contains(&Action::Event(MembershipEvent::Down(dead))));
        assert!(actions.contains(&Action::JoinPool(Pool::Region("eu".into()))));
    }

    #[test]
    fn members_learned_in_the_region_pool_join_the_view() {
        // Two members: both represent the site, so this node is in the region pool.
        let cfg = TierConfig { site_representatives: 2, region_representatives: 1 };
        let mut core = MeshCore::new(Member::new("a", "eu", "fra1"), cfg);
        core.handle_pool_view(
            Pool::site("eu", "fra1"),
            vec![Member::new("a", "eu", "fra1"), Member::new("b", "eu", "fra1")],
        );
        assert!(core.pools().contains(&Pool::Region("eu".into())));
        drain(&mut core);
        let remote = Member::new("c", "eu", "ams1");
        core.handle_pool_view(
            Pool::Region("eu".into()),
            vec![Member::new("a", "eu", "fra1"), Member::new("b", "eu", "fra1"), remote.clone()],
        );
        assert!(core.members().get("c").is_some());
        let actions = drain(&mut core);
        assert!(actions.contains(&Action::Event(MembershipEvent::Up(remote))));
        // A view from a pool this node is not in is ignored.
        core.handle_pool_view(Pool::Region("us".into()), vec![Member::new("z", "us", "iad1")]);
        assert!(core.members().get("z").is_none());
    }
}
