//! The scenario file: topology, network per tier, membership mode, write
//! load and the fault schedule. Unknown keys are errors, so a typo never
//! silently runs a different experiment.

use std::path::Path;

use serde::Deserialize;

/// Why a scenario cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("scenario {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the TOML parser said.
        message: String,
    },
    /// A value is out of range.
    #[error("scenario {name}: {key} = {value}: {expected}")]
    Invalid {
        /// Scenario name.
        name: String,
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is accepted.
        expected: String,
    },
}

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used for the results folder and in reports.
    pub name: String,
    /// Seed of every random choice (overridden by `--seed`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Virtual seconds to simulate.
    pub duration_s: f64,
    /// Regions, sites and nodes.
    pub topology: Topology,
    /// How membership is simulated.
    #[serde(default)]
    pub membership: Membership,
    /// Latency, jitter, loss and bandwidth per tier.
    #[serde(default)]
    pub network: Network,
    /// Write load.
    #[serde(default)]
    pub writes: Writes,
    /// Faults and other scheduled events.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Ring measurements.
    #[serde(default)]
    pub ring: RingCheck,
}

fn default_seed() -> u64 {
    1
}

/// Regions × sites × nodes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Number of regions.
    pub regions: usize,
    /// Sites in each region.
    pub sites_per_region: usize,
    /// Nodes in each site.
    pub nodes_per_site: usize,
}

impl Topology {
    /// Total nodes.
    pub fn nodes(&self) -> usize {
        self.regions * self.sites_per_region * self.nodes_per_site
    }
}

/// How membership runs.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MembershipMode {
    /// Every node runs chitchat (the vendored fork, driven sans-IO) in each
    /// of its pools and the real `MeshCore` on top: membership, failure
    /// detection and relays are the node's code. Memory grows with N²
    /// (every node holds a record of every member), so this mode is for
    /// up to about 2,000 nodes.
    #[default]
    Gossip,
    /// Membership views come from the simulator's ground truth: a crash is
    /// known everywhere `detection_s` later, a restart `join_s` later.
    /// Representatives are still chosen by the real tier plan over that
    /// view. For 10,000 nodes.
    Oracle,
}

/// Membership settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Membership {
    /// `gossip` or `oracle`.
    pub mode: MembershipMode,
    /// chitchat's gossip round.
    pub gossip_interval_ms: u64,
    /// phi-accrual threshold.
    pub phi_threshold: f64,
    /// Oracle mode: seconds until a crash is known everywhere.
    pub detection_s: f64,
    /// Oracle mode: seconds until a restarted node is known everywhere.
    pub join_s: f64,
    /// Seconds before measurements start (the cluster forms first).
    pub warmup_s: f64,
    /// Nodes start at random times within this many seconds (gossip mode),
    /// as a rollout does.
    pub boot_spread_s: f64,
}

impl Default for Membership {
    fn default() -> Self {
        Membership {
            mode: MembershipMode::Gossip,
            gossip_interval_ms: 1_000,
            phi_threshold: 8.0,
            detection_s: 12.0,
            join_s: 3.0,
            warmup_s: 20.0,
            boot_spread_s: 0.0,
        }
    }
}

/// One tier's link.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One-way latency.
    pub latency_ms: f64,
    /// Uniform jitter added on top, 0..jitter.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Probability a datagram is lost (0..1).
    #[serde(default)]
    pub loss: f64,
    /// Link bandwidth, for serialisation delay.
    #[serde(default = "default_bandwidth")]
    pub bandwidth_mbps: f64,
}

fn default_bandwidth() -> f64 {
    1_000.0
}

/// The three tiers' links.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Within a site.
    pub site: Link,
    /// Between sites of one region.
    pub region: Link,
    /// Between regions.
    pub global: Link,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            site: Link { latency_ms: 0.2, jitter_ms: 0.05, loss: 0.0, bandwidth_mbps: 10_000.0 },
            region: Link { latency_ms: 10.0, jitter_ms: 1.0, loss: 0.0, bandwidth_mbps: 1_000.0 },
            global: Link { latency_ms: 80.0, jitter_ms: 5.0, loss: 0.0, bandwidth_mbps: 1_000.0 },
        }
    }
}

/// Write load: one-RRset writes to random nodes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Writes {
    /// Writes per virtual second (0: none).
    pub rate_per_s: f64,
    /// Zones written to.
    pub zones: usize,
    /// Names per zone written to.
    pub names_per_zone: usize,
    /// RDATA bytes per record.
    pub record_bytes: usize,
    /// Seconds after the start when writing begins (after warm-up).
    pub start_s: f64,
    /// Seconds after the start when writing ends (0: 20 s before the end,
    /// so the final convergence check sees a quiet cluster).
    pub stop_s: f64,
}

impl Default for Writes {
    fn default() -> Self {
        Writes { rate_per_s: 2.0, zones: 4, names_per_zone: 1_000, record_bytes: 64, start_s: 20.0, stop_s: 0.0 }
    }
}

/// Ring measurements.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingCheck {
    /// Keys placed to measure balance and movement.
    pub keys: usize,
}

impl Default for RingCheck {
    fn default() -> Self {
        RingCheck { keys: 100_000 }
    }
}

/// One scheduled event. (Unknown keys are caught by [`EventKind`]: serde
/// cannot deny them on a struct with a flattened field.)
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    /// When, in virtual seconds from the start.
    pub at_s: f64,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Faults and operations. Nodes are named `r{region}-s{site}-n{node}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventKind {
    /// `count` random up nodes crash; with `down_s`, they restart after it.
    Crash {
        /// How many.
        #[serde(default = "one")]
        count: usize,
        /// Restart after this long (none: stay down).
        down_s: Option<f64>,
    },
    /// A whole region (or one of its sites) is cut off from the rest.
    Partition {
        /// Region index.
        region: usize,
        /// Site index within the region (none: the whole region).
        site: Option<usize>,
    },
    /// Every partition ends.
    Heal,
    /// Every node of every site restarts one at a time, `every_s` apart,
    /// each down for `down_s`.
    RollingRestart {
        /// Gap between two restarts.
        every_s: f64,
        /// Time each node stays down.
        down_s: f64,
        /// Only this many nodes (none: all).
        count: Option<usize>,
    },
    /// A `fraction` of nodes crash at once, lose their data, and all come
    /// back together after `down_s`: the reconciliation storm test.
    MassRejoin {
        /// Share of nodes (0..1).
        fraction: f64,
        /// Time down.
        down_s: f64,
    },
    /// `count` random nodes get their wall clock shifted by `skew_ms`.
    ClockSkew {
        /// How many.
        count: usize,
        /// Offset (negative: behind).
        skew_ms: i64,
    },
}

fn one() -> usize {
    1
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        let s: Scenario = toml::from_str(&text)
            .map_err(|e| ScenarioError::Parse { path: path.display().to_string(), message: e.to_string() })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |key: &str, value: String, expected: &str| ScenarioError::Invalid {
            name: self.name.clone(),
            key: key.to_owned(),
            value,
            expected: expected.to_owned(),
        };
        if !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || self.name.is_empty() {
            return Err(bad("name", self.name.clone(), "letters, digits, '-' and '_' (it names a folder)"));
        }
        let t = &self.topology;
        if t.regions == 0 || t.sites_per_region == 0 || t.nodes_per_site == 0 {
            return Err(bad("topology", format!("{t:?}"), "at least one region, site and node"));
        }
        if t.nodes() > 100_000 {
            return Err(bad("topology", t.nodes().to_string(), "at most 100,000 nodes"));
        }
        if self.membership.mode == MembershipMode::Gossip && t.nodes() > 3_000 {
            return Err(bad(
                "membership.mode",
                format!("gossip with {} nodes", t.nodes()),
                "at most 3,000 nodes in gossip mode (each node holds every member's record: memory grows with N²); use mode = \"oracle\"",
            ));
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            return Err(bad("duration_s", self.duration_s.to_string(), "more than 0 and at most 86400"));
        }
        if !(10..=60_000).contains(&self.membership.gossip_interval_ms) {
            return Err(bad(
                "membership.gossip_interval_ms",
                self.membership.gossip_interval_ms.to_string(),
                "10 to 60000",
            ));
        }
        for (tier, l) in
            [("site", &self.network.site), ("region", &self.network.region), ("global", &self.network.global)]
        {
            if !(0.0..1.0).contains(&l.loss) {
                return Err(bad(&format!("network.{tier}.loss"), l.loss.to_string(), "0 to below 1"));
            }
            if l.latency_ms < 0.0 || l.jitter_ms < 0.0 || l.bandwidth_mbps <= 0.0 {
                return Err(bad(
                    &format!("network.{tier}"),
                    format!("{l:?}"),
                    "non-negative latency and jitter, positive bandwidth",
                ));
            }
        }
        if self.writes.rate_per_s > 0.0 && (self.writes.zones == 0 || self.writes.names_per_zone == 0) {
            return Err(bad("writes", format!("{:?}", self.writes), "at least one zone and one name"));
        }
        for e in &self.events {
            if !(0.0..=self.duration_s).contains(&e.at_s) {
                return Err(bad("events.at_s", e.at_s.to_string(), "within the scenario's duration"));
            }
            match &e.kind {
                EventKind::Partition { region, site }
                    if *region >= t.regions || site.is_some_and(|s| s >= t.sites_per_region) =>
                {
                    return Err(bad("events.partition", format!("{region}/{site:?}"), "an existing region (and site)"));
                }
                EventKind::MassRejoin { fraction, .. } if !(0.0..=1.0).contains(fraction) => {
                    return Err(bad("events.mass_rejoin.fraction", fraction.to_string(), "0 to 1"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
duration_s = 10
[topology]
regions = 1
sites_per_region = 1
nodes_per_site = 3
"#;

    #[test]
    fn defaults_fill_what_is_not_said() {
        let s: Scenario = toml::from_str(MINIMAL).expect("parses");
        s.validate().expect("valid");
        assert_eq!(s.network.global.latency_ms, 80.0);
        assert_eq!(s.membership.mode, MembershipMode::Gossip);
    }

    #[test]
    fn typos_and_out_of_range_values_are_errors() {
        let typo = format!("{MINIMAL}\n[writes]\nrate = 3\n");
        assert!(toml::from_str::<Scenario>(&typo).is_err(), "unknown key");
        let mut s: Scenario = toml::from_str(MINIMAL).expect("parses");
        s.network.site.loss = 1.5;
        assert!(s.validate().unwrap_err().to_string().contains("network.site.loss"));
        let mut s: Scenario = toml::from_str(MINIMAL).expect("parses");
        s.topology.nodes_per_site = 5_000;
        assert!(s.validate().unwrap_err().to_string().contains("oracle"));
    }

    #[test]
    fn events_parse_by_kind() {
        let text = format!(
            "{MINIMAL}\n[[events]]\nat_s = 5\nkind = \"crash\"\ncount = 2\ndown_s = 3\n\n[[events]]\nat_s = 6\nkind = \"partition\"\nregion = 0\n"
        );
        let s: Scenario = toml::from_str(&text).expect("parses");
        s.validate().expect("valid");
        assert!(matches!(s.events[0].kind, EventKind::Crash { count: 2, down_s: Some(_) }));
        assert!(matches!(s.events[1].kind, EventKind::Partition { region: 0, site: None }));
    }
}
