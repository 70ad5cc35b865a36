//! The lab internet: a small DNS tree of real authoritative servers (NSD
//! and Knot) on loopback port 53, for testing a recursive resolver, and
//! an Unbound validating against it as the reference.
//!
//! Each lab claims a number N (1–250, an exclusive lock on
//! `/tmp/meshdns-lab-N.lock`) and uses the addresses 127.53.N.x, port 53
//! (root hints cannot carry ports; Linux routes all of 127/8 to lo).
//!
//! ```text
//! x  server        zones
//! 1  NSD           .  (signed, NSEC, KSK+ZSK)            a.root-servers.lab.
//! 2  Knot          .  (same file)                         b.root-servers.lab.
//! 3  NSD           lab. testlab. example. insecure.  (unsigned TLDs)
//! 4  Knot          sec.  (signed, NSEC3, no opt-out)
//! 5  NSD           good.sec. (NSEC)  nsec3.sec. (NSEC3, opt-out)
//!                  bogus-ds.sec. (parent's DS is another key's)
//!                  expired.sec. (signatures expired 2020-01-01)
//! 6  Knot          insecure.sec. (no DS: NSEC3 proof in sec.)
//!                  unsigned.nsec3.sec. (no DS: opt-out span)
//!                  cname.testlab. (CNAME, chain, DNAME)  wild.testlab. (wildcard)
//!                  lame.testlab. dead.testlab. (each also delegated to a bad server)
//!                  glueless.testlab. (NS ns.hosts.example., no glue)
//!                  dest.example. (CNAME targets, 2 KB TXT)  hosts.example.
//!                  fwd.example. (plain zone for forward-mode tests)
//! 7  NSD, no zones the lame server: REFUSED for lame.testlab. and alllame.testlab.
//! 8  (a socket)    the dead server of dead.testlab.: reads, never answers
//! ```
//!
//! Every zone signed by ldns-signzone with fresh ECDSA P-256 keys at each
//! start; the root's KSK DS is the trust anchor. The lab writes
//! `root.hints` (named.root format) and `root.key` (zone-file DS) in its
//! temp dir, and one Unbound (`validator iterator`, the lab's hints and
//! anchor) on 127.0.0.1:<free port>. Every daemon is a foreground child
//! in its own process group, killed on drop; a lab whose test process was
//! killed leaves its pids in `/tmp/meshdns-lab-N.pids`, and the next lab
//! to claim N kills them first. Binding port 53 needs root: without it the
//! lab panics, unless LAB_SKIP_OK=1 (then `Lab::start` gives `None`).
#![allow(dead_code, unused_imports, unreachable_pub, missing_docs, clippy::unwrap_used)]

mod client;
mod questions;
mod rollover;
mod structure;
mod zones;

pub use client::{Flags, ask, exchange, exchange_tcp, exchange_udp, query_msg};
pub use questions::{Outcome, Question, check, ede_codes, ede_text, questions};
pub use structure::check_structure;
pub use zones::FWD_ZONE;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Host numbers served by NSD (the others in [`zones::SERVERS`] by Knot).
const NSD_HOSTS: &[u8] = &[1, 3, 5, 7];
/// The dead server's host number.
const DEAD: u8 = 8;
/// How long the whole lab may take to answer.
const START_LIMIT: Duration = Duration::from_secs(15);

/// A daemon the lab started: killed (its whole process group) on drop.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Daemon {
        let err = File::create(log.with_extension("stderr")).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Daemon { name: name.to_owned(), child, log }
    }

    /// The daemon's log file and stderr, for failure messages.
    pub fn log_text(&self) -> String {
        let a = std::fs::read_to_string(&self.log).unwrap_or_default();
        let b = std::fs::read_to_string(self.log.with_extension("stderr")).unwrap_or_default();
        format!("--- {} log ---\n{a}{b}", self.name)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // NSD forks its xfrd and server processes even with -d: signal the
        // whole group (SIGTERM lets NSD stop them), then make sure.
        let pgid = self.child.id();
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A validating Unbound (the reference resolver).
pub struct Unbound {
    pub addr: SocketAddr,
    pub daemon: Daemon,
    pub conf: PathBuf,
}

impl Unbound {
    /// Writes the config under `dir` and starts `unbound -d -c conf` on a
    /// free loopback port; not waited for (see [`Lab::start`]).
    pub fn spawn(dir: &Path, hints: &Path, anchor: &Path) -> Unbound {
        std::fs::create_dir_all(dir).unwrap();
        let port = super::free_port();
        let d = dir.display();
        let conf = dir.join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  val-log-level: 2\n  log-servfail: yes\n  num-threads: 1\n  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  qname-minimisation: yes\n  module-config: \"validator iterator\"\n  root-hints: \"{}\"\n  trust-anchor-file: \"{}\"\n  ede: yes\n  edns-buffer-size: 1232\n  outgoing-range: 64\nremote-control:\n  control-enable: no\n",
                hints.display(),
                anchor.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("unbound");
        cmd.arg("-d").arg("-c").arg(&conf);
        let daemon = Daemon::spawn("unbound", cmd, dir.join("unbound.log"));
        Unbound { addr: SocketAddr::from(([127, 0, 0, 1], port)), daemon, conf }
    }

    /// [`Unbound::spawn`], then waits (bounded) until it answers: a
    /// second Unbound on a lab (`lab.root_hints`, `lab.trust_anchor`).
    pub fn start(dir: &Path, hints: &Path, anchor: &Path) -> Unbound {
        let mut u = Unbound::spawn(dir, hints, anchor);
        let deadline = Instant::now() + START_LIMIT;
        while !u.ready() {
            if let Some(st) = u.daemon.exited() {
                panic!("unbound exited ({st})\n{}", u.daemon.log_text());
            }
            assert!(Instant::now() < deadline, "unbound not ready after {START_LIMIT:?}\n{}", u.daemon.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        u
    }

    /// Answers locally (the built-in `localhost.` zone): started.
    fn ready(&self) -> bool {
        exchange(self.addr, &query_msg("localhost.", RecordType::A, Flags::default()), Duration::from_millis(300))
            .is_ok_and(|m| m.response_code() == ResponseCode::NoError)
    }
}

/// A running lab. Dropping it stops everything it started.
pub struct Lab {
    pub n: u8,
    pub root_hints: PathBuf,
    pub trust_anchor: PathBuf,
    pub unbound: Unbound,
    /// The root's keys (KSK, ZSK), ldns key files in `keys/` (see `rollover`).
    root_keys: Vec<String>,
    daemons: Vec<Daemon>,
    _dead: UdpSocket,
    _lock: File,
    // Last: removed after the daemons are gone.
    dir: tempfile::TempDir,
}

impl Lab {
    /// 127.53.N.`host`.
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 53, self.n, host)
    }

    /// The address of lab server `host` (port 53).
    pub fn server(&self, host: u8) -> SocketAddr {
        SocketAddr::from((self.ip(host), 53))
    }

    /// The `meshdns serve` arguments for recursive mode on this lab: its
    /// hints and trust anchor, loopback clients, loopback name servers.
    pub fn recursive_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["--resolver".into(), "recursive".into(), "--root-hints".into()];
        v.push(self.root_hints.display().to_string());
        v.push("--trust-anchor".into());
        v.push(self.trust_anchor.display().to_string());
        v.extend(["--recursion-allow", "127.0.0.0/8", "--query-loopback"].map(String::from));
        v
    }

    /// The lab's Unbound, for forward-mode tests to use as an upstream.
    pub fn unbound_addr(&self) -> SocketAddr {
        self.unbound.addr
    }

    /// A plain (unsigned) zone and the Knot serving it authoritatively:
    /// an upstream for forward-mode tests. `www.fwd.example.` has an A
    /// record ([`Lab::fwd_www`]); `txt.fwd.example.` a TXT "forwarded".
    pub fn plain_upstream(&self) -> (&'static str, SocketAddr) {
        (FWD_ZONE, self.server(6))
    }

    /// The address `www.fwd.example.` resolves to.
    pub fn fwd_www(&self) -> Ipv4Addr {
        self.ip(216)
    }

    /// The lab's temp dir (zones, configs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s: String = self.daemons.iter().map(Daemon::log_text).collect();
        s += &self.unbound.daemon.log_text();
        s
    }

    /// Starts a lab. `None` only when port 53 cannot be bound (not root)
    /// and LAB_SKIP_OK=1; without that variable, that is a failure.
    pub fn start() -> Option<Lab> {
        Lab::start_with(&[])
    }

    /// [`Lab::start`] with `extra` zone-file text appended to the named
    /// zones (`(zone name, text)`, `%NET%` for the lab's `127.53.N.`
    /// prefix), before signing: more names for a benchmark.
    pub fn start_with(extra: &[(&str, String)]) -> Option<Lab> {
        let started = Instant::now();
        let (n, lock, dead) = claim()?;
        let dir = tempfile::Builder::new().prefix(&format!("meshdns-lab-{n}-")).tempdir().unwrap();
        let net = format!("127.53.{n}.");
        let zones = zones::Zones::write_with(dir.path(), &net, extra);
        let trust_anchor = dir.path().join("root.key");
        std::fs::write(&trust_anchor, &zones.trust_anchor).unwrap();
        let root_hints = dir.path().join("root.hints");
        std::fs::write(&root_hints, hints(&net)).unwrap();

        let mut daemons = Vec::new();
        for (host, names) in zones::SERVERS {
            let files: Vec<(&str, &Path)> = names.iter().map(|z| (*z, zones.file(z))).collect();
            let sdir = dir.path().join(format!("srv{host}"));
            std::fs::create_dir_all(&sdir).unwrap();
            let addr = format!("{net}{host}");
            daemons.push(if NSD_HOSTS.contains(host) { nsd(&sdir, &addr, &files) } else { knot(&sdir, &addr, &files) });
        }
        let lame = dir.path().join("srv7");
        std::fs::create_dir_all(&lame).unwrap();
        daemons.push(nsd(&lame, &format!("{net}7"), &[]));
        let unbound = Unbound::spawn(&dir.path().join("unbound"), &root_hints, &trust_anchor);
        record_pids(n, dir.path(), daemons.iter().chain([&unbound.daemon]));

        let root_keys = zones.root_keys.clone();
        let mut lab = Lab { n, root_hints, trust_anchor, unbound, root_keys, daemons, _dead: dead, _lock: lock, dir };
        lab.wait_ready();
        eprintln!("lab {n} up in {:?} at {}", started.elapsed(), lab.dir().display());
        Some(lab)
    }

    /// Polls every server (each of its zones' SOA; the lame one for
    /// REFUSED; Unbound for its local zone) until all answer.
    fn wait_ready(&mut self) {
        let mut pending: Vec<(SocketAddr, &str, ResponseCode)> = Vec::new();
        for (host, names) in zones::SERVERS {
            for z in *names {
                pending.push((self.server(*host), z, ResponseCode::NoError));
            }
        }
        pending.push((self.server(7), "lame.testlab.", ResponseCode::Refused));
        let deadline = Instant::now() + START_LIMIT;
        let mut unbound_up = false;
        loop {
            pending.retain(|(addr, zone, want)| {
                let m =
                    exchange(*addr, &query_msg(zone, RecordType::SOA, Flags::default()), Duration::from_millis(200));
                !m.is_ok_and(|m| m.response_code() == *want)
            });
            unbound_up = unbound_up || self.unbound.ready();
            if pending.is_empty() && unbound_up {
                return;
            }
            let exited: Vec<String> = self
                .daemons
                .iter_mut()
                .chain([&mut self.unbound.daemon])
                .filter_map(|d| d.exited().map(|st| format!("{} exited ({st})", d.name)))
                .collect();
            if !exited.is_empty() {
                panic!("lab {}: {}\n{}", self.n, exited.join(", "), self.logs());
            }
            if Instant::now() > deadline {
                panic!(
                    "lab {} not ready after {START_LIMIT:?}: waiting for {pending:?}, unbound up: {unbound_up}\n{}",
                    self.n,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The daemons first (each stops its process group), then the record
        // of them; Unbound, the dead socket and the lock go with the fields.
        self.daemons.clear();
        let _ = std::fs::remove_file(pids_file(self.n));
    }
}

/// named.root format (RFC 1035 master file): the lab's two root servers.
fn hints(net: &str) -> String {
    format!(
        ".                    3600000  NS  a.root-servers.lab.\n\
         a.root-servers.lab.  3600000  A   {net}1\n\
         .                    3600000  NS  b.root-servers.lab.\n\
         b.root-servers.lab.  3600000  A   {net}2\n"
    )
}

/// Claims a lab number: the first N whose lock file is free and whose
/// port-53 addresses are all free. Holds the dead server's socket.
fn claim() -> Option<(u8, File, UdpSocket)> {
    // Port 53 first, on 127.53.0.1 (no lab uses N=0): without root the
    // test fails here, saying why, or skips when told to.
    if let Err(e) = UdpSocket::bind((Ipv4Addr::new(127, 53, 0, 1), 53))
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        if std::env::var("LAB_SKIP_OK").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: the lab needs to bind port 53 (root), and LAB_SKIP_OK=1: {e}");
            return None;
        }
        panic!(
            "the lab internet listens on 127.53.N.x port 53, which needs root (or CAP_NET_BIND_SERVICE): {e}. \
             Run the tests as root (CI does), or set LAB_SKIP_OK=1 to skip the lab tests."
        );
    }
    for n in 1..=250u8 {
        let path = format!("/tmp/meshdns-lab-{n}.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open the lab lock {path}: {e}"));
        if f.try_lock().is_err() {
            continue;
        }
        kill_leftovers(n);
        // Every address free (a leftover not in the pids file, or anything
        // else on 127.53.N.x:53, makes this N unusable); the dead server's
        // socket is kept.
        let Ok(dead) = UdpSocket::bind((Ipv4Addr::new(127, 53, n, DEAD), 53)) else { continue };
        let free = (1..=7u8).all(|h| {
            let a = (Ipv4Addr::new(127, 53, n, h), 53);
            UdpSocket::bind(a).is_ok() && std::net::TcpListener::bind(a).is_ok()
        });
        if free {
            return Some((n, f, dead));
        }
    }
    panic!("no free lab number in 1..=250 (every /tmp/meshdns-lab-N.lock held or its addresses busy)");
}

fn pids_file(n: u8) -> String {
    format!("/tmp/meshdns-lab-{n}.pids")
}

/// Writes `pgid dir` lines for the daemons, so a later lab on the same N
/// can stop them if this test process is killed before its drop runs.
fn record_pids<'a>(n: u8, dir: &Path, daemons: impl Iterator<Item = &'a Daemon>) {
    let text: String = daemons.map(|d| format!("{} {}\n", d.child.id(), dir.display())).collect();
    std::fs::write(pids_file(n), text).unwrap();
}

/// Kills process groups a killed earlier holder of N left behind: only
/// those whose command line still names that lab's dir (a pid reused by
/// something else is left alone). We hold N's lock, so the owner is gone.
fn kill_leftovers(n: u8) {
    let Ok(text) = std::fs::read_to_string(pids_file(n)) else { return };
    for line in text.lines() {
        let Some((pid, dir)) = line.split_once(' ') else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(dir) {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(pids_file(n));
}

/// `nsd -d -c conf` on `addr`:53 serving `zones` (none: refuses all).
fn nsd(dir: &Path, addr: &str, zones: &[(&str, &Path)]) -> Daemon {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  ip-address: {addr}@53\n  do-ip6: no\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n  logfile: \"{d}/nsd.log\"\n  hide-version: yes\n  rrl-ratelimit: 0\n  verbosity: 1\nremote-control:\n  control-enable: no\n"
    );
    for (name, file) in zones {
        conf += &format!("zone:\n  name: \"{name}\"\n  zonefile: \"{}\"\n", file.display());
    }
    std::fs::write(dir.join("nsd.conf"), conf).unwrap();
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(dir.join("nsd.conf"));
    Daemon::spawn(&format!("nsd@{addr}"), cmd, dir.join("nsd.log"))
}

/// `knotd -c conf` on `addr`:53 serving the pre-signed or plain `zones`
/// as they are (no signing, no journal, no semantic checks: the expired
/// and bogus zones must load).
fn knot(dir: &Path, addr: &str, zones: &[(&str, &Path)]) -> Daemon {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  listen: {addr}@53\n  rundir: \"{d}\"\n  background-workers: 1\n  udp-workers: 1\n  tcp-workers: 1\n\
         database:\n  storage: \"{d}/db\"\nlog:\n  - target: \"{d}/knot.log\"\n    any: info\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-load: whole\n    zonefile-sync: -1\n    journal-content: none\n    semantic-checks: off\n\
         zone:\n"
    );
    for (name, file) in zones {
        conf += &format!("  - domain: \"{name}\"\n    file: \"{}\"\n", file.display());
    }
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(dir.join("knot.conf"));
    Daemon::spawn(&format!("knot@{addr}"), cmd, dir.join("knot.log"))
}
