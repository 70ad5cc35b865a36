//! Which gossip pools a node belongs in.
//!
//! - Every node is in the pool of its own site.
//! - The `site_representatives` representatives of a site (picked by the
//!   ring among the site's known live members) are also in their region's
//!   pool.
//! - The `region_representatives` representatives of a region (picked among
//!   the region's *site representatives*, who are the region pool's
//!   members) are also in the global pool.

use std::collections::BTreeSet;

use meshdns_ring::{Member, Ring, Scope};

/// A gossip pool: one chitchat instance with its own cluster id and port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pool {
    /// All nodes of one site.
    Site {
        /// Region of the site.
        region: String,
        /// The site.
        site: String,
    },
    /// The representatives of the sites of one region.
    Region(String),
    /// The representatives of every region.
    Global,
}

impl Pool {
    /// The pool of a site.
    pub fn site(region: &str, site: &str) -> Pool {
        Pool::Site { region: region.to_owned(), site: site.to_owned() }
    }

    /// A cluster id for the pool's gossip instance, distinct per pool so
    /// that pools never merge by accident.
    pub fn cluster_id(&self, cluster: &str) -> String {
        match self {
            Pool::Site { region, site } => format!("{cluster}/site/{region}/{site}"),
            Pool::Region(region) => format!("{cluster}/region/{region}"),
            Pool::Global => format!("{cluster}/global"),
        }
    }
}

/// How many representatives each tier has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierConfig {
    /// Representatives per site in the region pool.
    pub site_representatives: usize,
    /// Representatives per region in the global pool.
    pub region_representatives: usize,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig { site_representatives: 2, region_representatives: 2 }
    }
}

/// The site representatives of every site in `view`.
pub fn site_representatives(view: &Ring, cfg: &TierConfig) -> BTreeSet<String> {
    let sites: BTreeSet<(&str, &str)> = view.members().map(|m| (m.region.as_str(), m.site.as_str())).collect();
    sites
        .into_iter()
        .flat_map(|(region, site)| view.representatives(Scope::Site { region, site }, cfg.site_representatives))
        .map(|m| m.id.clone())
        .collect()
}

/// The region representatives of every region in `view`: picked among
/// the site representatives only, since those are the region pool.
pub fn region_representatives(view: &Ring, cfg: &TierConfig) -> BTreeSet<String> {
    let site_reps = site_representatives(view, cfg);
    let pool = Ring::new(view.members().filter(|m| site_reps.contains(&m.id)).cloned());
    let regions: BTreeSet<&str> = pool.members().map(|m| m.region.as_str()).collect();
    regions
        .into_iter()
        .flat_map(|region| pool.representatives(Scope::Region(region), cfg.region_representatives))
        .map(|m| m.id.clone())
        .collect()
}

/// The pools `me` belongs in, given the live members it knows (`view`
/// should contain `me`).
pub fn plan(me: &Member, view: &Ring, cfg: &TierConfig) -> BTreeSet<Pool> {
    let mut pools = BTreeSet::from([Pool::site(&me.region, &me.site)]);
    if site_representatives(view, cfg).contains(&me.id) {
        pools.insert(Pool::Region(me.region.clone()));
        if region_representatives(view, cfg).contains(&me.id) {
            pools.insert(Pool::Global);
        }
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(regions: usize, sites: usize, nodes: usize) -> Vec<Member> {
        let mut out = Vec::new();
        for r in 0..regions {
            for s in 0..sites {
                for n in 0..nodes {
                    out.push(Member::new(format!("r{r}-s{s}-n{n}"), format!("r{r}"), format!("s{s}")));
                }
            }
        }
        out
    }

    #[test]
    fn each_site_and_region_gets_its_representatives() {
        let view = Ring::new(cluster(3, 4, 5));
        let cfg = TierConfig::default();
        assert_eq!(site_representatives(&view, &cfg).len(), 3 * 4 * 2);
        let region_reps = region_representatives(&view, &cfg);
        assert_eq!(region_reps.len(), 3 * 2);
        // Every global member is also a site representative.
        assert!(region_reps.is_subset(&site_representatives(&view, &cfg)));
        let in_global = view.members().filter(|m| plan(m, &view, &cfg).contains(&Pool::Global)).count();
        assert_eq!(in_global, 6);
        let in_region =
            view.members().filter(|m| plan(m, &view, &cfg).contains(&Pool::Region(m.region.clone()))).count();
        assert_eq!(in_region, 24);
    }

    #[test]
    fn a_dead_representative_is_replaced_within_its_site() {
        let view = Ring::new(cluster(1, 1, 5));
        let cfg = TierConfig::default();
        let before = site_representatives(&view, &cfg);
        let gone = before.iter().next().cloned().unwrap_or_default();
        let after = site_representatives(&view.without(&gone), &cfg);
        assert_eq!(after.len(), 2);
        assert!(!after.contains(&gone));
        assert_eq!(before.intersection(&after).count(), 1, "the surviving representative keeps its role");
    }

    #[test]
    fn small_sites_send_every_member() {
        let view = Ring::new(cluster(1, 1, 1));
        let me = view.members().next().cloned().unwrap_or_else(|| Member::new("x", "r", "s"));
        let pools = plan(&me, &view, &TierConfig::default());
        assert_eq!(pools.len(), 3, "a lone node represents its site and region");
    }
}
