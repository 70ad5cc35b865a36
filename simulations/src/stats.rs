//! What a run measures, gathered as it goes and summed up at the end.

use meshdns_replication::sync::Hop;
use meshdns_ring::{Member, Ring, Scope};
use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;

/// µs in a second.
const SEC: u64 = 1_000_000;
/// Visibility times are kept in units of 100 µs.
const UNIT_US: u64 = 100;
/// A write is "quiet" when no fault happened in the 30 s before it.
const QUIET_AFTER_US: u64 = 30 * SEC;
/// How long after a mass rejoin its sync storm is watched.
const STORM_WINDOW_US: u64 = 120 * SEC;

/// One write's spread.
pub struct WriteTrack {
    writer: usize,
    zone: usize,
    at: u64,
    bytes: usize,
    quiet: bool,
    up_at_write: Vec<bool>,
    /// Per node: when it first held the write (100 µs units), or `u32::MAX`.
    seen: Vec<u32>,
    /// Per node: hop kinds already forwarded (bit per hop).
    forwarded: Vec<u8>,
}

impl WriteTrack {
    /// A write by `writer` to `zone` at `at` (µs), `bytes` on the wire.
    pub fn new(writer: usize, zone: usize, at: u64, bytes: usize, quiet: bool, up: &[bool]) -> WriteTrack {
        WriteTrack {
            writer,
            zone,
            at,
            bytes,
            quiet,
            up_at_write: up.to_vec(),
            seen: vec![u32::MAX; up.len()],
            forwarded: vec![0; up.len()],
        }
    }
}

struct Crash {
    node: usize,
    at: u64,
    /// Per observer, first detection delay (µs).
    detected: Vec<(usize, u64)>,
    observers: std::collections::BTreeSet<usize>,
    up_at_crash: usize,
}

/// Ring balance and movement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RingFigures {
    /// Members on the ring.
    pub members: usize,
    /// Keys placed.
    pub keys: usize,
    /// Most keys on one member over the mean.
    pub max_over_mean: f64,
    /// Fewest keys on one member over the mean.
    pub min_over_mean: f64,
    /// Standard deviation of keys per member over what pure chance gives
    /// (the square root of the mean): 1.0 is as even as random placement.
    pub stddev_over_chance: f64,
    /// Share of keys that changed owner when one member left.
    pub moved_on_leave: f64,
    /// Share of keys that changed owner when one member joined.
    pub moved_on_join: f64,
    /// The ideal share for either: 1/N.
    pub ideal_moved: f64,
}

impl RingFigures {
    /// Places `keys` keys on a ring of `members` and measures.
    pub fn measure(members: Vec<Member>, keys: usize) -> RingFigures {
        let n = members.len().max(1);
        let ring = Ring::new(members.clone());
        let names: Vec<String> = (0..keys).map(|k| format!("key-{k}.example.")).collect();
        let owner = |r: &Ring, k: &str| r.owner(k.as_bytes(), Scope::Global).map(|m| m.id.clone());
        let before: Vec<Option<String>> = names.iter().map(|k| owner(&ring, k)).collect();
        let mut counts: std::collections::BTreeMap<&str, usize> = members.iter().map(|m| (m.id.as_str(), 0)).collect();
        for id in before.iter().flatten() {
            if let Some(c) = counts.get_mut(id.as_str()) {
                *c += 1;
            }
        }
        let mean = keys as f64 / n as f64;
        let max = counts.values().copied().max().unwrap_or(0) as f64;
        let min = counts.values().copied().min().unwrap_or(0) as f64;
        let var = counts.values().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let moved = |r: &Ring| {
            let changed = names.iter().zip(&before).filter(|(k, b)| owner(r, k) != **b).count();
            changed as f64 / keys.max(1) as f64
        };
        let (on_leave, on_join) = match members.first() {
            Some(first) => {
                let newcomer = Member::new("newcomer", first.region.clone(), first.site.clone());
                (moved(&ring.without(&first.id)), moved(&ring.with(newcomer)))
            }
            None => (0.0, 0.0),
        };
        RingFigures {
            members: n,
            keys,
            max_over_mean: if mean > 0.0 { max / mean } else { 0.0 },
            min_over_mean: if mean > 0.0 { min / mean } else { 0.0 },
            stddev_over_chance: if mean > 0.0 { var.sqrt() / mean.sqrt() } else { 0.0 },
            moved_on_leave: on_leave,
            moved_on_join: on_join,
            ideal_moved: 1.0 / n as f64,
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Second {
    /// Virtual second.
    pub t: u64,
    /// Nodes up.
    pub up: usize,
    /// Gossip bytes sent per up node in that second.
    pub gossip_per_node: f64,
    /// Replication bytes sent per up node in that second.
    pub repl_per_node: f64,
    /// Pulls in flight across the cluster at the sample.
    pub pulls_in_flight: usize,
}

/// Time to converge after an event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Convergence {
    /// The event.
    pub event: String,
    /// Since when it was measured (virtual s): the heal, or the last restart.
    pub since_s: f64,
    /// Seconds until every up node held the same data (and, in gossip
    /// mode, listed exactly the up nodes as members), at 1 s resolution.
    pub took_s: Option<f64>,
}

/// Percentiles of one write over one group of nodes (ms), `None` when
/// some node of the group never got it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Spread {
    /// 50% of the nodes had it by then.
    pub p50: Option<f64>,
    /// 99%.
    pub p99: Option<f64>,
    /// All.
    pub p100: Option<f64>,
}

/// A write's spread, per tier distance from its writer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteSpread {
    /// Virtual second written.
    pub t: f64,
    /// No fault shortly before.
    pub quiet: bool,
    /// Zone index.
    pub zone: usize,
    /// Bytes of the pushed message.
    pub bytes: usize,
    /// Nodes counted.
    pub nodes: usize,
    /// Over all counted nodes.
    pub all: Spread,
    /// Over the writer's site.
    pub site: Spread,
    /// Over the writer's region, other sites.
    pub region: Spread,
    /// Over other regions.
    pub global: Spread,
}

/// One crash's detection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detection {
    /// Virtual second of the crash.
    pub t: f64,
    /// The node.
    pub node: usize,
    /// Observers that reported it down.
    pub observers: usize,
    /// Nodes up at the crash (other than it).
    pub up: usize,
    /// Median delay (s).
    pub p50_s: Option<f64>,
    /// 99th percentile delay (s).
    pub p99_s: Option<f64>,
    /// Slowest observer (s).
    pub max_s: Option<f64>,
}

/// The whole run's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Membership mode.
    pub mode: String,
    /// Nodes.
    pub nodes: usize,
    /// Regions, sites per region, nodes per site.
    pub shape: (usize, usize, usize),
    /// Virtual seconds.
    pub duration_s: f64,
    /// Loss per tier (site, region, global).
    pub loss: (f64, f64, f64),
    /// Writes made.
    pub writes: usize,
    /// Quiet writes (no fault in the 30 s before).
    pub quiet_writes: usize,
    /// Over quiet writes: the median write's time to 50/99/100% of nodes (ms).
    pub visible_median: Spread,
    /// Over quiet writes: the slowest write's (ms).
    pub visible_worst: Spread,
    /// Over quiet writes, per tier: the median write's time to all nodes of
    /// the writer's site, the rest of its region and the other regions (ms).
    pub visible_median_by_tier: (Option<f64>, Option<f64>, Option<f64>),
    /// The same for the slowest write.
    pub visible_worst_by_tier: (Option<f64>, Option<f64>, Option<f64>),
    /// Writes that some counted node never got.
    pub writes_not_everywhere: usize,
    /// Gossip bytes per node per second, after warm-up.
    pub gossip_bytes_per_node_s: f64,
    /// Replication bytes per node per second, after warm-up.
    pub repl_bytes_per_node_s: f64,
    /// The busiest node's gossip bytes per second.
    pub gossip_bytes_max_node_s: f64,
    /// Crashes and their detection.
    pub detections: Vec<Detection>,
    /// Median over crashes of the median observer's delay (s).
    pub detection_p50_s: Option<f64>,
    /// Slowest observer over all crashes (s).
    pub detection_max_s: Option<f64>,
    /// Members reported dead while up and reachable.
    pub false_positives: usize,
    /// Node-days observed (after warm-up).
    pub node_days: f64,
    /// False positives per node-day.
    pub false_positives_per_node_day: f64,
    /// Convergence after heals, restarts and rejoins.
    pub convergence: Vec<Convergence>,
    /// Every up node held the same data at the end.
    pub converged_data: bool,
    /// Every up node listed exactly the up nodes at the end (gossip mode).
    pub converged_members: bool,
    /// Digests kept change by change equal a recount.
    pub digests_recount_ok: bool,
    /// Pulls done, failed; bytes answered.
    pub pulls: (u64, u64, u64),
    /// Most pulls in flight at once on one node, and across the cluster.
    pub peak_pulls: (usize, usize),
    /// After a mass rejoin: the most pulls in flight at once across the
    /// cluster, and the most replication bytes per node in one second.
    pub storm: Option<(usize, f64)>,
    /// Writes refused for a clock too far ahead.
    pub drift_refusals: u64,
    /// Relay records that could not be read.
    pub bad_relay_records: u64,
    /// Restarts.
    pub restarts: u64,
    /// Ring figures over the final membership.
    pub ring: Option<RingFigures>,
}

/// Everything gathered.
pub struct Stats {
    n: usize,
    warmup_us: u64,
    writes: Vec<WriteTrack>,
    crashes: Vec<Crash>,
    false_positives: Vec<(u64, usize, usize)>,
    gossip_second: u64,
    repl_second: u64,
    gossip_by_node: Vec<u64>,
    node_seconds: f64,
    gossip_total: u64,
    repl_total: u64,
    /// Per-second series.
    pub seconds: Vec<Second>,
    faults: Vec<(u64, String)>,
    last_disturbance: Option<u64>,
    convergence: Vec<Convergence>,
    peak_node_pulls: usize,
    peak_pulls: usize,
    storm: Option<(u64, usize, f64)>,
    /// Pulls answered.
    pub pulls: u64,
    /// Pulls failed (timeout).
    pub pull_failures: u64,
    /// Bytes of pull answers.
    pub pull_bytes: u64,
    /// Writes refused for clock drift.
    pub drift_refusals: u64,
    /// Unreadable relay records.
    pub bad_relay_records: u64,
    /// Restarts.
    pub restarts: u64,
    /// The summary, once finished.
    pub summary: Option<Summary>,
    /// The scenario, for the summary.
    sc: Scenario,
    seed: u64,
}

fn pick(sorted: &[u32], share: f64) -> Option<f64> {
    if sorted.is_empty() {
        return Some(0.0);
    }
    let k = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1;
    let v = sorted[k];
    (v != u32::MAX).then(|| v as f64 * UNIT_US as f64 / 1_000.0)
}

fn spread(mut times: Vec<u32>) -> Spread {
    times.sort_unstable();
    Spread { p50: pick(&times, 0.5), p99: pick(&times, 0.99), p100: pick(&times, 1.0) }
}

fn pct(mut v: Vec<f64>, share: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let k = ((v.len() as f64 * share).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[k])
}

impl Stats {
    /// Empty stats for `sc` run with `seed` on `n` nodes.
    pub fn new(sc: &Scenario, seed: u64, n: usize) -> Stats {
        Stats {
            n,
            warmup_us: (sc.membership.warmup_s * SEC as f64) as u64,
            writes: Vec::new(),
            crashes: Vec::new(),
            false_positives: Vec::new(),
            gossip_second: 0,
            repl_second: 0,
            gossip_by_node: vec![0; n],
            node_seconds: 0.0,
            gossip_total: 0,
            repl_total: 0,
            seconds: Vec::new(),
            faults: Vec::new(),
            last_disturbance: None,
            convergence: Vec::new(),
            peak_node_pulls: 0,
            peak_pulls: 0,
            storm: None,
            pulls: 0,
            pull_failures: 0,
            pull_bytes: 0,
            drift_refusals: 0,
            bad_relay_records: 0,
            restarts: 0,
            summary: None,
            sc: sc.clone(),
            seed,
        }
    }

    /// Scheduled events, for the timeline.
    pub fn faults(&self) -> &[(u64, String)] {
        &self.faults
    }

    /// A scheduled event happened.
    pub fn fault(&mut self, now: u64, label: &str) {
        self.faults.push((now, label.to_owned()));
        self.last_disturbance = Some(now);
    }

    /// Whether a write now counts as made in quiet times.
    pub fn quiet(&self, now: u64) -> bool {
        now >= self.warmup_us && self.last_disturbance.is_none_or(|t| now >= t + QUIET_AFTER_US)
    }

    /// Gossip bytes sent by `node`.
    pub fn gossip_bytes(&mut self, node: usize, bytes: usize) {
        self.gossip_second += bytes as u64;
        if let Some(b) = self.gossip_by_node.get_mut(node) {
            *b += bytes as u64;
        }
    }

    /// Replication bytes sent (by any node).
    pub fn repl_bytes(&mut self, bytes: usize) {
        self.repl_second += bytes as u64;
    }

    /// A node crashed; returns the crash's index.
    pub fn crash(&mut self, node: usize, now: u64) -> usize {
        self.last_disturbance = Some(now);
        self.crashes.push(Crash { node, at: now, detected: Vec::new(), observers: Default::default(), up_at_crash: 0 });
        self.crashes.len() - 1
    }

    /// Nodes up when the crash happened (other than the crashed one).
    pub fn crash_witnesses(&mut self, c: usize, up: usize) {
        if let Some(cr) = self.crashes.get_mut(c) {
            cr.up_at_crash = up;
        }
    }

    /// `observer` reported crash `c` at `now`.
    pub fn detected(&mut self, c: usize, observer: usize, now: u64) {
        let Some(cr) = self.crashes.get_mut(c) else { return };
        if observer != cr.node && cr.observers.insert(observer) {
            cr.detected.push((observer, now - cr.at));
        }
    }

    /// `observer` reported `target` dead while it was up and reachable.
    pub fn false_positive(&mut self, observer: usize, target: usize, now: u64) {
        if now >= self.warmup_us {
            self.false_positives.push((now, observer, target));
        }
    }

    /// Records a write; returns its index.
    pub fn write(&mut self, w: WriteTrack) -> u32 {
        self.writes.push(w);
        (self.writes.len() - 1) as u32
    }

    /// Bytes of write `w`'s message.
    pub fn write_bytes(&self, w: u32) -> usize {
        self.writes.get(w as usize).map_or(0, |t| t.bytes)
    }

    /// Node `node` holds write `w` from `now`.
    pub fn visible(&mut self, w: u32, node: usize, now: u64) {
        let Some(t) = self.writes.get_mut(w as usize) else { return };
        if let Some(s) = t.seen.get_mut(node)
            && *s == u32::MAX
        {
            *s = ((now - t.at) / UNIT_US).min(u32::MAX as u64 - 1) as u32;
        }
    }

    /// Whether `node` forwards write `w` received with `hop` (the first
    /// time for that hop).
    pub fn first_forward(&mut self, w: u32, node: usize, hop: Hop) -> bool {
        let bit = 1u8 << hop.code();
        let Some(f) = self.writes.get_mut(w as usize).and_then(|t| t.forwarded.get_mut(node)) else { return false };
        let first = *f & bit == 0;
        *f |= bit;
        first
    }

    /// Pulls in flight on one node.
    pub fn in_flight_sample(&mut self, n: usize) {
        self.peak_node_pulls = self.peak_node_pulls.max(n);
    }

    /// A pull started; `total` are in flight across the cluster now.
    pub fn pull_started(&mut self, now: u64, total: usize) {
        self.peak_pulls = self.peak_pulls.max(total);
        if let Some((back, peak, _)) = &mut self.storm
            && now >= *back
            && now < *back + STORM_WINDOW_US
        {
            *peak = (*peak).max(total);
        }
    }

    /// A mass rejoin comes back at `back`.
    pub fn mass_rejoin(&mut self, back: u64, _count: usize) {
        self.storm = Some((back, 0, 0.0));
    }

    /// The once-a-second sample.
    pub fn second(&mut self, now: u64, up: usize, in_flight: usize) {
        let per = |b: u64| if up > 0 { b as f64 / up as f64 } else { 0.0 };
        let s = Second {
            t: now / SEC,
            up,
            gossip_per_node: per(self.gossip_second),
            repl_per_node: per(self.repl_second),
            pulls_in_flight: in_flight,
        };
        if now >= self.warmup_us {
            self.node_seconds += up as f64;
            self.gossip_total += self.gossip_second;
            self.repl_total += self.repl_second;
        }
        if let Some((back, _, bytes)) = &mut self.storm
            && now >= *back
            && now < *back + STORM_WINDOW_US
        {
            *bytes = bytes.max(s.repl_per_node);
        }
        self.gossip_second = 0;
        self.repl_second = 0;
        self.seconds.push(s);
    }

    /// The cluster converged after `label`.
    pub fn converged(&mut self, label: &str, since: u64, now: u64) {
        self.convergence.push(Convergence {
            event: label.to_owned(),
            since_s: since as f64 / SEC as f64,
            took_s: Some((now - since) as f64 / SEC as f64),
        });
    }

    /// Sums up the run.
    pub fn finish(
        &mut self,
        now: u64,
        data: bool,
        members: bool,
        recount_ok: bool,
        ring: RingFigures,
        pending: &[(String, u64)],
    ) {
        for (label, since) in pending {
            self.convergence.push(Convergence {
                event: label.clone(),
                since_s: *since as f64 / SEC as f64,
                took_s: None,
            });
        }
        let spreads = self.write_spreads();
        let quiet: Vec<&WriteSpread> = spreads.iter().filter(|w| w.quiet).collect();
        let agg = |f: &dyn Fn(&WriteSpread) -> Option<f64>, share: f64| -> Option<f64> {
            if quiet.iter().any(|w| f(w).is_none()) && share >= 1.0 {
                return None;
            }
            pct(quiet.iter().filter_map(|w| f(w)).collect(), share)
        };
        let detections: Vec<Detection> = self
            .crashes
            .iter()
            .map(|c| {
                let d: Vec<f64> = c.detected.iter().map(|&(_, us)| us as f64 / SEC as f64).collect();
                Detection {
                    t: c.at as f64 / SEC as f64,
                    node: c.node,
                    observers: d.len(),
                    up: c.up_at_crash,
                    p50_s: pct(d.clone(), 0.5),
                    p99_s: pct(d.clone(), 0.99),
                    max_s: pct(d, 1.0),
                }
            })
            .collect();
        let node_days = self.node_seconds / 86_400.0;
        let sc = &self.sc;
        self.summary = Some(Summary {
            scenario: sc.name.clone(),
            seed: self.seed,
            mode: format!("{:?}", sc.membership.mode).to_lowercase(),
            nodes: self.n,
            shape: (sc.topology.regions, sc.topology.sites_per_region, sc.topology.nodes_per_site),
            duration_s: now as f64 / SEC as f64,
            loss: (sc.network.site.loss, sc.network.region.loss, sc.network.global.loss),
            writes: spreads.len(),
            quiet_writes: quiet.len(),
            visible_median: Spread {
                p50: agg(&|w| w.all.p50, 0.5),
                p99: agg(&|w| w.all.p99, 0.5),
                p100: agg(&|w| w.all.p100, 0.5),
            },
            visible_worst: Spread {
                p50: agg(&|w| w.all.p50, 1.0),
                p99: agg(&|w| w.all.p99, 1.0),
                p100: agg(&|w| w.all.p100, 1.0),
            },
            visible_median_by_tier: (
                agg(&|w| w.site.p100, 0.5),
                agg(&|w| w.region.p100, 0.5),
                agg(&|w| w.global.p100, 0.5),
            ),
            visible_worst_by_tier: (
                agg(&|w| w.site.p100, 1.0),
                agg(&|w| w.region.p100, 1.0),
                agg(&|w| w.global.p100, 1.0),
            ),
            writes_not_everywhere: spreads.iter().filter(|w| w.all.p100.is_none()).count(),
            gossip_bytes_per_node_s: if self.node_seconds > 0.0 {
                self.gossip_total as f64 / self.node_seconds
            } else {
                0.0
            },
            repl_bytes_per_node_s: if self.node_seconds > 0.0 {
                self.repl_total as f64 / self.node_seconds
            } else {
                0.0
            },
            gossip_bytes_max_node_s: {
                let secs = (now as f64 / SEC as f64).max(1.0);
                self.gossip_by_node.iter().copied().max().unwrap_or(0) as f64 / secs
            },
            detection_p50_s: pct(detections.iter().filter_map(|d| d.p50_s).collect(), 0.5),
            detection_max_s: pct(detections.iter().filter_map(|d| d.max_s).collect(), 1.0),
            detections,
            false_positives: self.false_positives.len(),
            node_days,
            false_positives_per_node_day: if node_days > 0.0 {
                self.false_positives.len() as f64 / node_days
            } else {
                0.0
            },
            convergence: self.convergence.clone(),
            converged_data: data,
            converged_members: members,
            digests_recount_ok: recount_ok,
            pulls: (self.pulls, self.pull_failures, self.pull_bytes),
            peak_pulls: (self.peak_node_pulls, self.peak_pulls),
            storm: self.storm.map(|(_, p, b)| (p, b)),
            drift_refusals: self.drift_refusals,
            bad_relay_records: self.bad_relay_records,
            restarts: self.restarts,
            ring: Some(ring),
        });
    }

    /// Node `node` lost its data: it holds no write until it gets it again.
    pub fn data_lost(&mut self, node: usize) {
        for w in &mut self.writes {
            if let Some(t) = w.seen.get_mut(node) {
                *t = u32::MAX;
            }
        }
    }

    /// Whether every node in `up` holds every write made before `before`.
    pub fn all_hold_writes_before(&self, up: &[usize], before: u64) -> bool {
        self.writes
            .iter()
            .take_while(|w| w.at < before)
            .all(|w| up.iter().all(|&i| w.seen.get(i).is_some_and(|&t| t != u32::MAX)))
    }

    /// Per-write spreads. A node counts for a write when it was up when the
    /// write was made and did not crash afterwards.
    pub fn write_spreads(&self) -> Vec<WriteSpread> {
        let mut crashed_after = vec![u64::MAX; self.n];
        // Earliest crash at or after each write is what matters; crashes are
        // in time order, so walk them per write.
        let mut out = Vec::with_capacity(self.writes.len());
        let crashes: Vec<(u64, usize)> = self.crashes.iter().map(|c| (c.at, c.node)).collect();
        for w in &self.writes {
            crashed_after.iter_mut().for_each(|c| *c = u64::MAX);
            for &(at, node) in crashes.iter().filter(|(at, _)| *at >= w.at) {
                if let Some(c) = crashed_after.get_mut(node) {
                    *c = (*c).min(at);
                }
            }
            let counted = |i: usize| w.up_at_write[i] && crashed_after[i] == u64::MAX;
            let mut groups: [Vec<u32>; 4] = Default::default();
            let per_site = self.sc.topology.nodes_per_site;
            let per_region = per_site * self.sc.topology.sites_per_region;
            for i in 0..self.n {
                if !counted(i) {
                    continue;
                }
                let tier = if i / per_region != w.writer / per_region {
                    3
                } else if i / per_site != w.writer / per_site {
                    2
                } else {
                    1
                };
                groups[0].push(w.seen[i]);
                groups[tier].push(w.seen[i]);
            }
            let [all, site, region, global] = groups;
            out.push(WriteSpread {
                t: w.at as f64 / SEC as f64,
                quiet: w.quiet,
                zone: w.zone,
                bytes: w.bytes,
                nodes: all.len(),
                all: spread(all),
                site: spread(site),
                region: spread(region),
                global: spread(global),
            });
        }
        out
    }
}
