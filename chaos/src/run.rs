//! One run, from inside the harness's namespace: start the nodes, run the
//! workload while the faults happen, heal, wait for convergence, check,
//! report.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::checker::{self, FinalState};
use crate::client;
use crate::cluster::{Cluster, ProcState};
use crate::faults::{self, Planned};
use crate::history::{FaultRec, History, Method, Outcome, QueryRec, WriteRec, ZONE, value_of};
use crate::report::{self, Summary};
use crate::scenario::Scenario;
use crate::topology::{self, HTTP_PORT};

/// Where a run keeps data directories and the CA (tmpfs mounts live here).
pub const WORK_DIR: &str = "/run/meshdns-chaos";

/// Options of one run.
pub struct RunOptions {
    /// The scenario.
    pub scenario: Scenario,
    /// Seed (the scenario's unless overridden).
    pub seed: u64,
    /// The meshdns binary.
    pub bin: PathBuf,
    /// Results folder for this run.
    pub out: PathBuf,
}

/// Shared state of the running workload.
struct Shared {
    start: Instant,
    history: Mutex<History>,
    cluster: Mutex<Cluster>,
}

impl Shared {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the scenario; the summary says whether the checker passed.
pub async fn run(opts: RunOptions) -> anyhow::Result<Summary> {
    let sc = &opts.scenario;
    let nodes = topology::nodes(&sc.topology);
    let work = Path::new(WORK_DIR).join(&sc.name);
    let plan = faults::plan(sc, opts.seed);
    eprintln!(
        "meshdns-chaos: {} ({} nodes, {} s, {} faults, seed {})",
        sc.name,
        nodes.len(),
        sc.duration_s,
        plan.len(),
        opts.seed
    );
    let cluster = Cluster::prepare(&opts.bin, &work, &opts.out.join("logs"), nodes.clone(), sc.disk_mib)?;
    let shared = Arc::new(Shared { start: Instant::now(), history: Mutex::default(), cluster: Mutex::new(cluster) });

    // Start every node and wait until the cluster is whole.
    for i in 0..nodes.len() {
        shared.cluster().start(i, None)?;
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    wait_until("every node ready", Duration::from_secs(60), &shared, || async {
        for n in &nodes {
            if !client::ready((n.ip, HTTP_PORT).into()).await {
                return false;
            }
        }
        true
    })
    .await?;
    eprintln!("meshdns-chaos: every node ready at {:.1} s", shared.now());
    wait_until("every node to hold every other alive", Duration::from_secs(180), &shared, || async {
        for n in &nodes {
            if client::alive_members(&n.grpc_url()).await.ok().as_ref() != Some(&sorted) {
                return false;
            }
        }
        true
    })
    .await?;
    eprintln!("meshdns-chaos: every node holds every other alive at {:.1} s", shared.now());
    client::create_zone(&nodes[0].grpc_url()).await.map_err(|e| anyhow::anyhow!("creating {ZONE}: {e}"))?;
    wait_until("the zone on every node", Duration::from_secs(60), &shared, || async {
        for n in &nodes {
            if client::serial(n.dns()).await.is_none() {
                return false;
            }
        }
        true
    })
    .await?;
    let formed_s = shared.now();
    let probe_nodes = nodes.clone();
    let rtt = tokio::task::spawn_blocking(move || probe_rtt(&probe_nodes)).await.unwrap_or_default();
    eprintln!("meshdns-chaos: measured round trips (dig between nodes): {rtt:?}");
    eprintln!("meshdns-chaos: cluster formed in {formed_s:.1} s; workload and faults for {} s", sc.duration_s);

    // The workload and the faults.
    let t0 = shared.now();
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tasks.push(tokio::spawn(writer(shared.clone(), sc.clone(), opts.seed, stop_rx.clone())));
    tasks.push(tokio::spawn(querier(shared.clone(), sc.clone(), opts.seed, stop_rx.clone())));
    tasks.push(tokio::spawn(serial_poller(shared.clone(), stop_rx.clone())));
    let faults_task =
        tokio::spawn(fault_runner(shared.clone(), plan.clone(), t0, sc.topology.regions, stop_rx.clone()));
    let (monitor_stop, monitor_rx) = tokio::sync::watch::channel(false);
    let monitor = tokio::spawn(monitor(shared.clone(), monitor_rx));
    tokio::time::sleep(Duration::from_secs_f64(sc.duration_s)).await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let open = match faults_task.await {
        Ok(open) => open,
        Err(_) => {
            let t = shared.now();
            shared.history().event(t, "the fault runner failed: healing every fault of the plan");
            plan.clone()
        }
    };

    // Heal whatever is still broken, then wait for agreement.
    {
        let mut c = shared.cluster();
        for f in &open {
            let r = f.heal(&mut c, sc.topology.regions).map_err(|e| e.to_string());
            let now = shared.now();
            shared.history().healed(f.index, now, r);
        }
        // A node that died on its own is restarted too, to be checked.
        let exits = c.unexpected_exits();
        drop(c);
        record_exits(&shared, exits);
        let mut c = shared.cluster();
        for i in 0..nodes.len() {
            if c.state[i] == ProcState::Frozen {
                c.freeze(i, false)?;
            }
            if c.state[i] == ProcState::Down {
                c.start(i, None)?;
            }
        }
    }
    let healed_s = shared.now();
    shared.history().event(healed_s, "final heal");
    eprintln!("meshdns-chaos: workload ended, all faults healed; waiting up to {} s for convergence", sc.settle_s);
    let converged = converge(&shared, &nodes, &sorted, sc.settle_s).await;
    let converged_s = converged.map(|t| t - healed_s);
    if let Some(t) = converged {
        shared.history().event(t, "converged");
    }

    // The final state, and the checker's verdict.
    let mut fin = FinalState { names: names.clone(), ..FinalState::default() };
    for n in &nodes {
        fin.digests.push(client::zone_digest(&n.grpc_url()).await);
        fin.members.push(client::alive_members(&n.grpc_url()).await);
    }
    let labels: Vec<String> = checker::writes_by_label(&shared.history()).into_keys().collect();
    for n in &nodes {
        for l in &labels {
            let mut a = client::lookup(n.dns(), l, false).await;
            if matches!(a, crate::history::Answer::Error(_)) {
                a = client::lookup(n.dns(), l, true).await;
            }
            fin.answers.insert((n.index, l.clone()), a);
        }
    }
    let _ = monitor_stop.send(true);
    let _ = monitor.await;
    let exits = shared.cluster().stop_all(Duration::from_secs(10));
    record_exits(&shared, exits);
    let history = std::mem::take(&mut *shared.history());
    let mut violations = checker::check(&history, &fin);
    if converged_s.is_none() {
        violations.insert(
            0,
            checker::Violation {
                check: "convergence",
                message: format!("no agreement {} s after the final heal", sc.settle_s),
                history: fin.digests.iter().enumerate().map(|(i, d)| format!("{}: {d:?}", names[i])).collect(),
            },
        );
    }
    let summary = report::summarize(sc, opts.seed, &history, &fin, &violations, formed_s, rtt, converged_s);
    report::write(&opts.out, &summary, &history, &violations)?;
    Ok(summary)
}

/// Round trips (ms, median of five `dig` queries from the first node)
/// to a node of another site of its region and to one of another region:
/// the latency the delayers add, as the nodes see it.
fn probe_rtt(nodes: &[topology::NodeSpec]) -> report::Rtt {
    let from = &nodes[0];
    let median_to = |to: Option<&topology::NodeSpec>| -> Option<f64> {
        let to = to?;
        let mut v: Vec<f64> = (0..5)
            .filter_map(|_| {
                let server = format!("@{}", to.ip);
                let out = crate::netns::run(&[
                    "ip",
                    "netns",
                    "exec",
                    &from.netns(),
                    "dig",
                    "+tries=1",
                    "+time=2",
                    &server,
                    ZONE,
                    "SOA",
                ])
                .ok()?;
                let ms = out.lines().find_map(|l| l.strip_prefix(";; Query time: "))?;
                ms.trim_end_matches(" msec").trim().parse().ok()
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    report::Rtt {
        site_ms: median_to(nodes.iter().find(|n| n.site == from.site && n.region == from.region && n.k != from.k)),
        region_ms: median_to(nodes.iter().find(|n| n.region == from.region && n.site != from.site)),
        global_ms: median_to(nodes.iter().find(|n| n.region != from.region)),
    }
}

/// Polls `f` every 500 ms until true, failing after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, shared: &Shared, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            let c = shared.cluster();
            let tails: Vec<String> =
                (0..c.nodes.len()).map(|i| format!("--- {} ---\n{}", c.nodes[i].name, c.log_tail(i, 5))).collect();
            bail!("timed out after {limit:?} waiting for {what}; last log lines:\n{}", tails.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Seconds (since the start) at which every node held the same digest and
/// every node alive, if within `settle_s`.
async fn converge(shared: &Shared, nodes: &[topology::NodeSpec], all: &[String], settle_s: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(settle_s);
    loop {
        let mut digests = Vec::new();
        let mut members_ok = true;
        for n in nodes {
            digests.push(client::zone_digest(&n.grpc_url()).await.ok().flatten());
            members_ok &= client::alive_members(&n.grpc_url()).await.ok().as_deref() == Some(all);
        }
        if members_ok && digests[0].is_some() && digests.iter().all(|d| *d == digests[0]) {
            return Some(shared.now());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Writes at the scenario's rate to random nodes, each write in its own
/// task so a frozen node does not hold up the others.
async fn writer(shared: Arc<Shared>, sc: Scenario, seed: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
    let w = &sc.workload;
    if w.writes_per_s <= 0.0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x3217E);
    let nodes = topology::nodes(&sc.topology);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / w.writes_per_s));
    let mut inflight = tokio::task::JoinSet::new();
    let mut fresh = 0u32;
    let mut id = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        id += 1;
        let node = rng.random_range(0..nodes.len());
        let label = if fresh > 0 && rng.random_bool(w.overwrite_share) {
            // Overwrites go to a small set of names, so they collide.
            format!("k{}", rng.random_range(0..8u32))
        } else {
            fresh += 1;
            format!("w{id}")
        };
        let method = if rng.random_bool(w.update_share) { Method::Update } else { Method::Grpc };
        let issued_s = shared.now();
        let index = {
            let mut h = shared.history();
            h.writes.push(WriteRec {
                id,
                name: label.clone(),
                node,
                method,
                issued_s,
                done_s: issued_s,
                outcome: Outcome::Pending,
            });
            h.writes.len() - 1
        };
        let (shared, n) = (shared.clone(), nodes[node].clone());
        inflight.spawn(async move {
            let r = match method {
                Method::Grpc => client::set_grpc(&n.grpc_url(), &label, value_of(id)).await,
                Method::Update => client::set_update(n.ip, &label, value_of(id)).await,
            };
            let done_s = shared.now();
            let mut h = shared.history();
            let rec = &mut h.writes[index];
            rec.done_s = done_s;
            rec.outcome = match r {
                Ok(()) => Outcome::Acked,
                Err(e) => Outcome::Failed(e),
            };
        });
        while inflight.try_join_next().is_some() {}
    }
    // Writes in flight get their answer (bounded by the call timeout).
    while inflight.join_next().await.is_some() {}
}

/// Queries random written names on every node in turn, over UDP and TCP.
async fn querier(shared: Arc<Shared>, sc: Scenario, seed: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
    let rate = sc.workload.queries_per_s;
    if rate <= 0.0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9E41);
    let nodes = topology::nodes(&sc.topology);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut inflight = tokio::task::JoinSet::new();
    let mut turn = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let label = {
            let h = shared.history();
            if h.writes.is_empty() {
                continue;
            }
            h.writes[rng.random_range(0..h.writes.len())].name.clone()
        };
        turn += 1;
        let node = turn % nodes.len();
        let tcp = rng.random_bool(0.5);
        let (shared, server) = (shared.clone(), nodes[node].dns());
        inflight.spawn(async move {
            let answer = client::lookup(server, &label, tcp).await;
            // Stamped when the answer came: a write issued before that may
            // be in it.
            let t_s = shared.now();
            shared.history().queries.push(QueryRec { t_s, node, tcp, name: label, answer });
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// Every node's SOA serial, once a second.
async fn serial_poller(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let nodes = shared.cluster().nodes.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        for n in &nodes {
            if let Some(s) = client::serial(n.dns()).await {
                let t = shared.now();
                shared.history().serials.push((t, n.index, s));
            }
        }
    }
}

/// Carries out the plan; returns the faults still in force at the stop.
async fn fault_runner(
    shared: Arc<Shared>,
    plan: Vec<Planned>,
    t0: f64,
    regions: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Planned> {
    // (time, start?, fault): starts and heals in time order.
    let mut steps: Vec<(f64, bool, Planned)> = Vec::new();
    for f in &plan {
        steps.push((t0 + f.at_s, true, f.clone()));
        steps.push((t0 + f.at_s + f.duration_s, false, f.clone()));
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut open: Vec<Planned> = Vec::new();
    for (at, start, f) in steps {
        let wait = (at - shared.now()).max(0.0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
            _ = stop.changed() => return open,
        }
        // Injecting and healing run commands, wait for processes and fill
        // disks: off the runtime's two workers.
        let (sh, fault) = (shared.clone(), f.clone());
        let done = tokio::task::spawn_blocking(move || {
            let mut c = sh.cluster();
            let target = fault.target_name(&c);
            let r =
                if start { fault.inject(&mut c, regions) } else { fault.heal(&mut c, regions).map(|()| String::new()) };
            (target, r.map_err(|e| e.to_string()))
        })
        .await;
        let (target, r) = done.unwrap_or_else(|e| (String::new(), Err(format!("panicked: {e}"))));
        let now = shared.now();
        if start {
            let note = match r {
                Ok(n) => n,
                Err(e) => format!("inject failed: {e}"),
            };
            eprintln!("meshdns-chaos: {:7.1} s fault #{} {} on {target} {note}", now - t0, f.index, f.kind.name());
            shared.history().faults.push(FaultRec {
                index: f.index,
                kind: f.kind,
                target,
                start_s: now,
                end_s: None,
                offset_s: if f.kind == crate::scenario::FaultKind::ClockOffset { f.offset_s } else { 0 },
                note,
            });
            open.push(f);
        } else {
            shared.history().healed(f.index, now, r.map(|_| ()));
            open.retain(|o| o.index != f.index);
        }
    }
    let _ = stop.changed().await;
    open
}

/// Notes nodes that exit without the harness asking, until `stop`.
async fn monitor(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        // The fault runner may hold the cluster for a while (a restart, a
        // disk being filled): look again next tick rather than wait.
        if let Ok(mut c) = shared.cluster.try_lock() {
            let exits = c.unexpected_exits();
            drop(c);
            record_exits(&shared, exits);
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Records nodes that ended on their own, with their last log lines.
fn record_exits(shared: &Shared, exits: Vec<(usize, String)>) {
    for (i, status) in exits {
        let (name, tail) = {
            let c = shared.cluster();
            (c.nodes[i].name.clone(), c.log_tail(i, 20))
        };
        eprintln!("meshdns-chaos: {name} exited on its own ({status}); last log lines:\n{tail}");
        let t = shared.now();
        shared.history().event(t, format!("{name} exited on its own ({status})"));
    }
}

/// Refuses to start without what the run needs.
pub fn preflight(bin: &Path) -> anyhow::Result<()> {
    if !bin.exists() {
        bail!(
            "meshdns binary {} not found: build it with `cargo build --release -p meshdns` or pass --bin",
            bin.display()
        );
    }
    let tools = [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("iptables", "iptables"),
        ("nsupdate", "bind9-dnsutils"),
        ("dig", "bind9-dnsutils"),
    ];
    if !Path::new(crate::cluster::FAKETIME_LIB).exists() {
        bail!("{} is needed: apt-get install -y faketime (scripts/test.sh installs it)", crate::cluster::FAKETIME_LIB);
    }
    for (tool, package) in tools {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            bail!("`{tool}` is needed: apt-get install -y {package} (scripts/test.sh installs it)");
        }
    }
    Ok(())
}
