//! `meshdns-chaos`: see the crate documentation (`src/lib.rs`) and
//! docs/chaos.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use meshdns_chaos::run::{RunOptions, WORK_DIR};
use meshdns_chaos::scenario::Scenario;
use meshdns_chaos::topology::CLIENT_NS;
use meshdns_chaos::{netns, run};

#[derive(Parser)]
#[command(name = "meshdns-chaos", version, about = "Real meshdns nodes in network namespaces under faults, checked")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds the network, runs the scenario, checks, reports, removes everything (root only).
    Run {
        /// Scenario file (TOML), e.g. chaos/scenarios/ci.toml.
        scenario: PathBuf,
        /// Seed of the random faults and workload (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Results folder; the run writes into OUT/<scenario name>.
        #[arg(long, default_value = "results/chaos")]
        out: PathBuf,
        /// The meshdns binary (default: `meshdns` beside this program).
        #[arg(long)]
        bin: Option<PathBuf>,
    },
    /// Removes namespaces, processes and mounts a killed run left behind.
    Clean,
    /// Delays a router's forwarded packets (started by `run` in each router namespace).
    #[command(hide = true)]
    Delay {
        #[arg(long)]
        region_ms: f64,
        #[arg(long)]
        global_ms: f64,
        #[arg(long)]
        jitter: f64,
        #[arg(long, default_value_t = 0.0)]
        region_loss: f64,
        #[arg(long, default_value_t = 0.0)]
        global_loss: f64,
        #[arg(long)]
        seed: u64,
    },
    /// The run itself, inside the harness's namespace (started by `run`).
    #[command(hide = true)]
    Inside {
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        bin: PathBuf,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshdns-chaos: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run { scenario, seed, out, bin } => {
            let sc = Scenario::load(&scenario)?;
            let bin = match bin {
                Some(b) => b,
                None => std::env::current_exe()?.with_file_name("meshdns"),
            };
            let bin = std::path::absolute(&bin)?;
            if !netns::is_root() {
                bail!("meshdns-chaos needs root (network namespaces, nftables, tmpfs mounts); run it with sudo");
            }
            run::preflight(&bin)?;
            let seed = seed.unwrap_or(sc.seed);
            let out = std::path::absolute(out.join(&sc.name))?;
            outer(&scenario, &sc, seed, &out, &bin)
        }
        Command::Clean => {
            if !netns::is_root() {
                bail!("meshdns-chaos clean needs root");
            }
            let left = netns::existing();
            let errors = netns::destroy(Path::new(WORK_DIR));
            eprintln!("meshdns-chaos: removed {} namespace(s)", left.len());
            for e in &errors {
                eprintln!("meshdns-chaos: {e}");
            }
            Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Delay { region_ms, global_ms, jitter, region_loss, global_loss, seed } => {
            let net = meshdns_chaos::scenario::Network { region_ms, global_ms, jitter, region_loss, global_loss };
            meshdns_chaos::delay::serve(&net, seed).context("delaying packets (NFQUEUE)")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inside { scenario, seed, out, bin } => {
            let sc = Scenario::load(&scenario)?;
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let summary = rt.block_on(run::run(RunOptions { scenario: sc, seed, bin, out: out.clone() }))?;
            eprintln!("{}", serde_json::to_string_pretty(&summary)?);
            eprintln!(
                "meshdns-chaos: {}: {} violation(s); report in {}",
                if summary.passed { "PASSED" } else { "FAILED" },
                summary.violations,
                out.join("report.md").display()
            );
            if !summary.passed
                && let Ok(text) = std::fs::read_to_string(out.join("violations.json"))
            {
                eprintln!("{text}");
            }
            Ok(if summary.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Builds the network, runs the inner process in it, and removes
/// everything whatever happened (also on SIGINT or SIGTERM).
fn outer(scenario: &Path, sc: &Scenario, seed: u64, out: &Path, bin: &Path) -> anyhow::Result<ExitCode> {
    // One run at a time: they would share namespace names. Held until exit.
    let lock_path = Path::new("/run/meshdns-chaos.lock");
    let lock = std::fs::File::create(lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!("another meshdns-chaos run is active (it holds {}); wait for it to end", lock_path.display());
    }
    let left = netns::existing();
    if !left.is_empty() {
        eprintln!("meshdns-chaos: removing {} namespace(s) left by an earlier run", left.len());
        netns::destroy(Path::new(WORK_DIR));
    }
    // Removes everything when this function ends, by return or by panic.
    let cleanup = Cleanup;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(async {
        // Signals are caught from here on (else they would end the process
        // before the cleanup): while the network is built they wait.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        netns::create(&sc.topology).context("building the network")?;
        let me = std::env::current_exe()?;
        // Latency per tier: a delaying process in each router namespace.
        for r in 0..sc.topology.regions {
            let router = meshdns_chaos::topology::router_ns(r);
            meshdns_chaos::delay::install_rules(&sc.topology, r).context("sending forwarded packets to NFQUEUE")?;
            let n = &sc.network;
            std::process::Command::new("ip")
                .args(["netns", "exec", &router])
                .arg(&me)
                .arg("delay")
                .args(["--region-ms", &n.region_ms.to_string(), "--global-ms", &n.global_ms.to_string()])
                .args(["--jitter", &n.jitter.to_string(), "--seed", &(seed ^ r as u64).to_string()])
                .args(["--region-loss", &n.region_loss.to_string(), "--global-loss", &n.global_loss.to_string()])
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("starting the packet delayer")?;
        }
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", CLIENT_NS])
            .arg(me)
            .arg("inside")
            .arg(std::path::absolute(scenario)?)
            .args(["--seed", &seed.to_string()])
            .arg("--out")
            .arg(out)
            .arg("--bin")
            .arg(bin)
            .kill_on_drop(true)
            .spawn()
            .context("starting the run inside the namespace")?;
        let interrupted = tokio::select! {
            // The inner run ends by a signal when the terminal's Ctrl-C
            // reached it first: an interruption too.
            status = child.wait() => return Ok::<_, anyhow::Error>(Some(status?.code().unwrap_or(130))),
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        eprintln!("meshdns-chaos: {interrupted}: stopping the run and removing everything");
        if let Some(pid) = child.id() {
            let _ = netns::run(&["kill", "-TERM", &pid.to_string()]);
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        Ok(Some(130))
    });
    drop(cleanup);
    match result? {
        Some(0) => Ok(ExitCode::SUCCESS),
        Some(1) => Ok(ExitCode::FAILURE),
        Some(c) => Ok(ExitCode::from(c.clamp(2, 255) as u8)),
        None => bail!("the run ended without an exit status"),
    }
}

/// Deletes the run's namespaces and processes when dropped.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        for e in netns::destroy(Path::new(WORK_DIR)) {
            eprintln!("meshdns-chaos: cleaning up: {e}");
        }
    }
}
