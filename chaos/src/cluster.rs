//! The meshdns processes: one `meshdns serve` per node namespace, with its
//! data directory on a tmpfs of its own (so a full disk can be made), and
//! the signals faults send them.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::netns;
use crate::topology::{GOSSIP_PORT, GRPC_PORT, HTTP_PORT, NodeSpec, QUIC_PORT};

/// The TSIG key every node accepts RFC 2136 UPDATEs with (nsupdate's `-y`).
pub const TSIG_KEY: &str = "hmac-sha256:chaos-key:Y2hhb3MtaGFybmVzcy10c2lnLWtleS0zMi1ieXRlcyE=";
/// The admin API's write token on every node: nodes listen off loopback
/// (their namespace's address), where a node refuses to run without one.
pub const ADMIN_TOKEN: &str = "chaos-harness-admin-token";

/// libfaketime from Debian's `faketime` package.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A node's process state as the harness left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Running.
    Up,
    /// Killed by a fault, to be restarted.
    Down,
    /// Stopped with SIGSTOP.
    Frozen,
}

/// The running cluster.
pub struct Cluster {
    bin: PathBuf,
    /// Per-node data directories (tmpfs mounts) and the CA live here.
    work: PathBuf,
    logs: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    procs: Vec<Option<Child>>,
    /// What the harness did to each node last.
    pub state: Vec<ProcState>,
    /// Nodes found dead by `kill` or `stop_all`, not yet reported.
    exited: Vec<(usize, String)>,
    disk_mib: u64,
}

impl Cluster {
    /// Makes the CA, one certificate per node, and a tmpfs data directory
    /// per node under `work`; logs go under `logs`.
    pub fn prepare(
        bin: &Path,
        work: &Path,
        logs: &Path,
        nodes: Vec<NodeSpec>,
        disk_mib: u64,
    ) -> anyhow::Result<Cluster> {
        // A fresh CA and fresh data every run (an earlier run's tmpfs
        // mounts lived in its own mount namespace and are gone).
        if work.exists() {
            std::fs::remove_dir_all(work).with_context(|| format!("removing the last run's {}", work.display()))?;
        }
        std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        // Each run's logs alone (a node's log is appended to across its
        // restarts within the run).
        if logs.exists() {
            std::fs::remove_dir_all(logs).with_context(|| format!("removing the last run's {}", logs.display()))?;
        }
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
        let ca = work.join("ca");
        let bin_s = bin.display().to_string();
        let ca_s = ca.display().to_string();
        netns::run(&[&bin_s, "cluster", "ca", "init", "--dir", &ca_s])?;
        for n in &nodes {
            netns::run(&[&bin_s, "cluster", "ca", "issue", "--dir", &ca_s, "--node-id", &n.name])?;
            let data = work.join(&n.name);
            std::fs::create_dir_all(&data)?;
            netns::run(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &format!("size={disk_mib}m"),
                "tmpfs",
                &data.display().to_string(),
            ])?;
        }
        let count = nodes.len();
        Ok(Cluster {
            bin: bin.to_owned(),
            work: work.to_owned(),
            logs: logs.to_owned(),
            nodes,
            procs: (0..count).map(|_| None).collect(),
            state: vec![ProcState::Down; count],
            exited: Vec::new(),
            disk_mib,
        })
    }

    /// A node's data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.work.join(&self.nodes[i].name)
    }

    /// A node's log file.
    pub fn log(&self, i: usize) -> PathBuf {
        self.logs.join(format!("{}.log", self.nodes[i].name))
    }

    /// Starts node `i` (again), with its clock `offset_s` off if given.
    pub fn start(&mut self, i: usize, offset_s: Option<i64>) -> anyhow::Result<()> {
        let n = &self.nodes[i];
        // Every node seeds from the first node of the first site and the
        // first of its own: joins work with any one of them down.
        let first = &self.nodes[0];
        let site_first = self.nodes.iter().find(|m| m.region == n.region && m.site == n.site).unwrap_or(first);
        let mut seeds: Vec<String> = Vec::new();
        for s in [first, site_first] {
            if s.index != i && !seeds.contains(&format!("{}:{GOSSIP_PORT}", s.ip)) {
                seeds.push(format!("{}:{GOSSIP_PORT}", s.ip));
            }
        }
        let log = OpenOptions::new().create(true).append(true).open(self.log(i))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &n.netns()]);
        if let Some(off) = offset_s {
            // libfaketime, preloaded (its `faketime` wrapper would stand
            // between us and the node's pid), moves the wall clock only:
            // timers run on the monotonic clock, which stays true.
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", format!("{off:+}s"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        cmd.arg(&self.bin)
            .arg("serve")
            .args(["--node-id", &n.name, "--region", &n.region_name(), "--site", &n.site_name()])
            .args(["--listen", &n.dns().to_string()])
            .args(["--http", &format!("{}:{HTTP_PORT}", n.ip)])
            .args(["--gossip", &format!("{}:{GOSSIP_PORT}", n.ip)])
            .args(["--quic", &format!("{}:{QUIC_PORT}", n.ip)])
            .args(["--grpc", &format!("{}:{GRPC_PORT}", n.ip)])
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .arg("--tls-dir")
            .arg(self.work.join("ca"))
            .args(["--udp-workers", "1"])
            .env("MESHDNS_UPDATE_TSIG_KEYS", TSIG_KEY)
            .env("MESHDNS_GRPC_TOKEN", ADMIN_TOKEN)
            .env("MESHDNS_LOG_LEVEL", "info")
            // As in production: no backtrace in every logged error.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if !seeds.is_empty() {
            cmd.args(["--seeds", &seeds.join(",")]);
        }
        let child = cmd.spawn().with_context(|| format!("starting {}", n.name))?;
        self.procs[i] = Some(child);
        self.state[i] = ProcState::Up;
        Ok(())
    }

    /// SIGKILLs node `i` and reaps it. A node found already dead had
    /// exited on its own: [`Cluster::unexpected_exits`] reports it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            match c.try_wait() {
                Ok(Some(status)) => self.exited.push((i, status.to_string())),
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        self.state[i] = ProcState::Down;
    }

    /// SIGSTOP (`freeze`) or SIGCONT.
    pub fn freeze(&mut self, i: usize, freeze: bool) -> anyhow::Result<()> {
        let Some(c) = &self.procs[i] else { bail!("{} is not running", self.nodes[i].name) };
        let pid = c.id().to_string();
        netns::run(&["kill", if freeze { "-STOP" } else { "-CONT" }, &pid])?;
        self.state[i] = if freeze { ProcState::Frozen } else { ProcState::Up };
        Ok(())
    }

    /// Nodes whose process ended although the harness did not end it:
    /// (node, exit status). Each is reported once.
    pub fn unexpected_exits(&mut self) -> Vec<(usize, String)> {
        let mut out = std::mem::take(&mut self.exited);
        for i in 0..self.procs.len() {
            let Some(c) = self.procs[i].as_mut() else { continue };
            if let Ok(Some(status)) = c.try_wait() {
                out.push((i, status.to_string()));
                self.procs[i] = None;
                self.state[i] = ProcState::Down;
            }
        }
        out
    }

    /// Fills node `i`'s data directory to the last byte.
    pub fn fill_disk(&self, i: usize) -> anyhow::Result<u64> {
        use std::io::Write;
        let path = self.data_dir(i).join("chaos-fill");
        let mut f = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        // Bounded by the tmpfs size; ENOSPC ends it.
        for _ in 0..=self.disk_mib {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // The tail smaller than a chunk.
        loop {
            match f.write(&chunk[..4096]) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        Ok(written)
    }

    /// Frees what [`Cluster::fill_disk`] took.
    pub fn free_disk(&self, i: usize) -> anyhow::Result<()> {
        let path = self.data_dir(i).join("chaos-fill");
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERMs every node (SIGCONT first for frozen ones), waits up to
    /// `limit` for each, then SIGKILLs what is left. Returns the nodes
    /// that had already exited on their own.
    pub fn stop_all(&mut self, limit: Duration) -> Vec<(usize, String)> {
        let exits = self.unexpected_exits();
        for i in 0..self.procs.len() {
            if self.state[i] == ProcState::Frozen {
                let _ = self.freeze(i, false);
            }
            if let Some(c) = &self.procs[i] {
                let _ = netns::run(&["kill", "-TERM", &c.id().to_string()]);
            }
        }
        let deadline = Instant::now() + limit;
        for i in 0..self.procs.len() {
            if let Some(mut c) = self.procs[i].take() {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            self.state[i] = ProcState::Down;
        }
        exits
    }
}
