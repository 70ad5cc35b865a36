//! The scenario file: topology, link latency per tier, workload, and the
//! faults, scheduled and drawn from the seed. Unknown keys are errors, so a
//! typo never silently runs a different experiment.

use std::path::Path;

use serde::{Deserialize, Serialize};

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
    /// A value is out of range or names something that does not exist.
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
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name of the results folder.
    pub name: String,
    /// Seed of the random faults and of the workload's choices.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Seconds of workload and faults.
    pub duration_s: f64,
    /// Bound on convergence after the final heal, in seconds.
    #[serde(default = "default_settle")]
    pub settle_s: f64,
    /// Regions, sites and nodes.
    pub topology: Topology,
    /// Added one-way latency per tier.
    #[serde(default)]
    pub network: Network,
    /// Writes and queries during the run.
    #[serde(default)]
    pub workload: Workload,
    /// Size of each node's data directory (a tmpfs), in MiB.
    #[serde(default = "default_disk_mib")]
    pub disk_mib: u64,
    /// Faults at fixed times.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Faults drawn from the seed.
    #[serde(default)]
    pub random_faults: Option<RandomFaults>,
}

fn default_seed() -> u64 {
    1
}
fn default_settle() -> f64 {
    60.0
}
fn default_disk_mib() -> u64 {
    64
}

/// Regions × sites × nodes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Regions (at most 9).
    pub regions: usize,
    /// Sites in each region (at most 9).
    pub sites_per_region: usize,
    /// Nodes in each site (at most 9).
    pub nodes_per_site: usize,
}

impl Topology {
    /// Nodes in all.
    pub fn nodes(&self) -> usize {
        self.regions * self.sites_per_region * self.nodes_per_site
    }
}

/// One-way latency added per tier, in milliseconds, with jitter as a
/// fraction of it. Site traffic is bridged and gets none.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Between sites of one region.
    #[serde(default = "default_region_ms")]
    pub region_ms: f64,
    /// Between regions.
    #[serde(default = "default_global_ms")]
    pub global_ms: f64,
    /// Uniform jitter, as a fraction of the latency (0.1 = ±10%).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Steady loss between sites of a region, a fraction of packets.
    #[serde(default)]
    pub region_loss: f64,
    /// Steady loss between regions, a fraction of packets.
    #[serde(default)]
    pub global_loss: f64,
}

fn default_region_ms() -> f64 {
    10.0
}
fn default_global_ms() -> f64 {
    60.0
}
fn default_jitter() -> f64 {
    0.1
}

impl Default for Network {
    fn default() -> Self {
        Network {
            region_ms: default_region_ms(),
            global_ms: default_global_ms(),
            jitter: default_jitter(),
            region_loss: 0.0,
            global_loss: 0.0,
        }
    }
}

/// The workload: writes to random nodes, queries to every node.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Writes started per second.
    #[serde(default = "default_writes")]
    pub writes_per_s: f64,
    /// Share of writes sent as RFC 2136 UPDATE (the rest through gRPC).
    #[serde(default = "default_update_share")]
    pub update_share: f64,
    /// Share of writes that overwrite a name written before (last writer
    /// wins decides), the rest write a fresh name.
    #[serde(default = "default_overwrite_share")]
    pub overwrite_share: f64,
    /// DNS queries per second, over all nodes.
    #[serde(default = "default_queries")]
    pub queries_per_s: f64,
}

fn default_writes() -> f64 {
    2.0
}
fn default_update_share() -> f64 {
    0.3
}
fn default_overwrite_share() -> f64 {
    0.2
}
fn default_queries() -> f64 {
    20.0
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            writes_per_s: default_writes(),
            update_share: default_update_share(),
            overwrite_share: default_overwrite_share(),
            queries_per_s: default_queries(),
        }
    }
}

/// What a fault does.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Cut a node, a site or a region off from the rest (nftables drops).
    Partition,
    /// SIGKILL a node; restart it when the fault ends.
    Kill,
    /// SIGSTOP a node; SIGCONT when the fault ends.
    Freeze,
    /// Drop `loss_pct` percent of routed packets of a site, a region or
    /// everywhere.
    Loss,
    /// Fill a node's data directory.
    DiskFull,
    /// SIGKILL every node of a site; restart them all when the fault ends.
    RestartSite,
    /// Restart a node with its wall clock `offset_s` off (libfaketime);
    /// restart it with the true clock when the fault ends.
    ClockOffset,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Partition,
        FaultKind::Kill,
        FaultKind::Freeze,
        FaultKind::Loss,
        FaultKind::DiskFull,
        FaultKind::RestartSite,
        FaultKind::ClockOffset,
    ];

    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Freeze => "freeze",
            FaultKind::Loss => "loss",
            FaultKind::DiskFull => "disk_full",
            FaultKind::RestartSite => "restart_site",
            FaultKind::ClockOffset => "clock_offset",
        }
    }

    /// Acts on a node's process or disk (as opposed to the network).
    pub fn on_process(self) -> bool {
        !matches!(self, FaultKind::Partition | FaultKind::Loss)
    }
}

/// One fault at a fixed time. The target is `node`, `site` or `region`
/// (by name: `r0s1n2`, `r0s1`, `r0`); none means the whole cluster, which
/// only `loss` accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Seconds after the workload starts.
    pub at_s: f64,
    /// What happens.
    pub kind: FaultKind,
    /// How long until it is healed.
    pub duration_s: f64,
    /// A node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// A region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `loss`: percent of packets dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<u32>,
    /// `clock_offset`: seconds the node's clock is off (may be negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_s: Option<i64>,
}

/// Faults drawn from the seed: `count` faults of `kinds`, starting
/// uniformly in [`start_s`, `end_s`), each lasting `min_s`..`max_s`. A node
/// never has two process faults at once.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    /// How many.
    pub count: usize,
    /// Which kinds (default: all).
    #[serde(default = "all_kinds")]
    pub kinds: Vec<FaultKind>,
    /// Earliest start.
    #[serde(default)]
    pub start_s: f64,
    /// Latest start (default: the run's end minus `max_s`).
    #[serde(default)]
    pub end_s: Option<f64>,
    /// Shortest fault.
    #[serde(default = "default_min_s")]
    pub min_s: f64,
    /// Longest fault.
    #[serde(default = "default_max_s")]
    pub max_s: f64,
}

fn all_kinds() -> Vec<FaultKind> {
    FaultKind::ALL.to_vec()
}
fn default_min_s() -> f64 {
    3.0
}
fn default_max_s() -> f64 {
    20.0
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses and checks scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let sc: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Parse { path: path.to_owned(), message: e.to_string() })?;
        sc.check()?;
        Ok(sc)
    }

    fn invalid(&self, key: &str, value: impl ToString, expected: &str) -> ScenarioError {
        ScenarioError::Invalid {
            name: self.name.clone(),
            key: key.to_owned(),
            value: value.to_string(),
            expected: expected.to_owned(),
        }
    }

    fn check(&self) -> Result<(), ScenarioError> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(self.invalid("name", &self.name, "letters, digits, - and _ only"));
        }
        let t = &self.topology;
        for (key, v) in
            [("regions", t.regions), ("sites_per_region", t.sites_per_region), ("nodes_per_site", t.nodes_per_site)]
        {
            if !(1..=9).contains(&v) {
                return Err(self.invalid(&format!("topology.{key}"), v, "1 to 9"));
            }
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            return Err(self.invalid("duration_s", self.duration_s, "more than 0, at most a day"));
        }
        if !(self.settle_s > 0.0 && self.settle_s <= 3_600.0) {
            return Err(self.invalid("settle_s", self.settle_s, "more than 0, at most an hour"));
        }
        if !(16..=4096).contains(&self.disk_mib) {
            return Err(self.invalid("disk_mib", self.disk_mib, "16 to 4096"));
        }
        let n = &self.network;
        for (key, v) in [("network.region_ms", n.region_ms), ("network.global_ms", n.global_ms)] {
            if !(0.0..=1_000.0).contains(&v) {
                return Err(self.invalid(key, v, "0 to 1000 ms"));
            }
        }
        for (key, v) in [
            ("network.jitter", n.jitter),
            ("network.region_loss", n.region_loss),
            ("network.global_loss", n.global_loss),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(self.invalid(key, v, "a fraction, 0 to 1"));
            }
        }
        let w = &self.workload;
        for (key, v) in [("workload.update_share", w.update_share), ("workload.overwrite_share", w.overwrite_share)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(self.invalid(key, v, "a fraction, 0 to 1"));
            }
        }
        for (key, v) in [("workload.writes_per_s", w.writes_per_s), ("workload.queries_per_s", w.queries_per_s)] {
            if !(v == 0.0 || (0.01..=1_000.0).contains(&v)) {
                return Err(self.invalid(key, v, "0, or 0.01 to 1000"));
            }
        }
        // Each write's value names it in 24 bits.
        if w.writes_per_s * self.duration_s >= f64::from(1u32 << 24) {
            return Err(self.invalid(
                "workload.writes_per_s",
                w.writes_per_s,
                "fewer than 16.7 million writes per run",
            ));
        }
        for (i, f) in self.faults.iter().enumerate() {
            self.check_fault(&format!("faults[{i}]"), f)?;
        }
        if let Some(r) = &self.random_faults {
            if r.kinds.is_empty() {
                return Err(self.invalid("random_faults.kinds", "[]", "at least one kind"));
            }
            if !(r.min_s > 0.0 && r.min_s <= r.max_s && r.max_s <= 86_400.0) {
                return Err(self.invalid(
                    "random_faults.min_s",
                    r.min_s,
                    "more than 0, at most max_s, which is at most a day",
                ));
            }
            let end = r.end_s.unwrap_or(self.duration_s - r.max_s);
            if !(r.start_s >= 0.0 && r.start_s < end && end <= self.duration_s) {
                return Err(self.invalid(
                    "random_faults.end_s",
                    end,
                    "after start_s and within duration_s (faults must start before the run ends)",
                ));
            }
        }
        Ok(())
    }

    fn check_fault(&self, key: &str, f: &Fault) -> Result<(), ScenarioError> {
        if !(f.at_s >= 0.0 && f.at_s < self.duration_s) {
            return Err(self.invalid(&format!("{key}.at_s"), f.at_s, "within the run (0 to duration_s)"));
        }
        // Also refuses NaN and infinity.
        if !(f.duration_s > 0.0 && f.duration_s <= 86_400.0) {
            return Err(self.invalid(&format!("{key}.duration_s"), f.duration_s, "more than 0, at most a day"));
        }
        let targets = [f.node.is_some(), f.site.is_some(), f.region.is_some()].iter().filter(|x| **x).count();
        if targets > 1 {
            return Err(self.invalid(key, "several targets", "one of node, site or region"));
        }
        let wants = match f.kind {
            FaultKind::Kill | FaultKind::Freeze | FaultKind::DiskFull | FaultKind::ClockOffset => "node",
            FaultKind::RestartSite => "site",
            FaultKind::Partition => "node, site or region",
            FaultKind::Loss => "site, region or none (everywhere)",
        };
        let ok = match f.kind {
            FaultKind::Kill | FaultKind::Freeze | FaultKind::DiskFull | FaultKind::ClockOffset => f.node.is_some(),
            FaultKind::RestartSite => f.site.is_some(),
            FaultKind::Partition => targets == 1,
            FaultKind::Loss => f.node.is_none(),
        };
        if !ok {
            return Err(self.invalid(
                &format!("{key}.kind"),
                f.kind.name(),
                &format!("{} needs {wants}", f.kind.name()),
            ));
        }
        let t = &self.topology;
        if let Some(n) = &f.node
            && crate::topology::parse_node(n, t).is_none()
        {
            return Err(self.invalid(&format!("{key}.node"), n, "a node of the topology, e.g. r0s0n0"));
        }
        if let Some(s) = &f.site
            && crate::topology::parse_site(s, t).is_none()
        {
            return Err(self.invalid(&format!("{key}.site"), s, "a site of the topology, e.g. r0s1"));
        }
        if let Some(r) = &f.region
            && crate::topology::parse_region(r, t).is_none()
        {
            return Err(self.invalid(&format!("{key}.region"), r, "a region of the topology, e.g. r1"));
        }
        if f.kind == FaultKind::Loss && !f.loss_pct.is_some_and(|p| (1..=100).contains(&p)) {
            return Err(self.invalid(&format!("{key}.loss_pct"), format!("{:?}", f.loss_pct), "1 to 100"));
        }
        if f.kind == FaultKind::ClockOffset && !f.offset_s.is_some_and(|o| o != 0 && o.abs() <= 86_400) {
            return Err(self.invalid(
                &format!("{key}.offset_s"),
                format!("{:?}", f.offset_s),
                "non-zero, within a day",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str =
        "name = \"t\"\nduration_s = 60\n[topology]\nregions = 2\nsites_per_region = 2\nnodes_per_site = 2\n";

    #[test]
    fn a_minimal_scenario_gets_defaults() {
        let sc = Scenario::parse(MIN, "t.toml").expect("valid");
        assert_eq!(sc.topology.nodes(), 8);
        assert_eq!(sc.network.global_ms, 60.0);
        assert_eq!(sc.settle_s, 60.0);
    }

    #[test]
    fn unknown_keys_and_bad_targets_are_named() {
        let e = Scenario::parse(&format!("{MIN}colour = 1\n"), "t.toml").unwrap_err().to_string();
        assert!(e.contains("t.toml") && e.contains("colour"), "{e}");
        let bad = format!("{MIN}[[faults]]\nat_s = 5\nkind = \"kill\"\nduration_s = 3\nnode = \"r5s0n0\"\n");
        let e = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("faults[0].node") && e.contains("r5s0n0"), "{e}");
        let bad = format!("{MIN}[[faults]]\nat_s = 5\nkind = \"kill\"\nduration_s = 3\nsite = \"r0s0\"\n");
        let e = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("kill needs node"), "{e}");
        let bad = format!("{MIN}[[faults]]\nat_s = 5\nkind = \"loss\"\nduration_s = 3\n");
        let e = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("loss_pct"), "{e}");
        let bad = format!("{MIN}[network]\nglobal_loss = 2\n");
        let e = Scenario::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("network.global_loss") && e.contains("fraction"), "{e}");
        let bad = format!("{MIN}[[faults]]\nat_s = 5\nkind = \"explode\"\nduration_s = 3\n");
        assert!(Scenario::parse(&bad, "t.toml").is_err());
    }
}
