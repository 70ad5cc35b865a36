//! Test harness: runs the real `meshdns` binary on loopback ports and talks
//! to it over real sockets with `hickory-proto` as the client library.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod knot;
pub mod lab;
pub mod nsd;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

pub const BIN: &str = env!("CARGO_BIN_EXE_meshdns");

/// A loopback port free for both UDP and TCP right now, and never handed
/// out before in this test run, by any test process.
///
/// Ports come from 20000–31999, below Linux's ephemeral range (32768 and
/// up), so another test's outgoing connection cannot take one. The next
/// port is kept in a file under the temp dir, behind a file lock, so
/// concurrent test processes never get the same one: a node restarted on
/// its old port (a restart test) finds it still free.
pub fn free_port() -> u16 {
    loop {
        let port = next_port_block();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The next block of three ports (a gossip base's next two ports, its
/// upper pools, are never handed out to anything else).
fn next_port_block() -> u16 {
    use std::io::{Read, Seek, Write};
    let path = std::env::temp_dir().join("meshdns-test-ports");
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
    f.lock().unwrap();
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let n: u32 = text.trim().parse().unwrap_or(0) % 12_000;
    f.set_len(0).unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    write!(f, "{}", (n + 3) % 12_000).unwrap();
    // Unlocked when `f` is dropped.
    (20_000 + n) as u16
}

/// A base gossip port: TCP and UDP PORT, and UDP PORT+1 and PORT+2, free now.
pub fn free_gossip_port() -> u16 {
    loop {
        let p = free_port();
        if (1..3).all(|i| UdpSocket::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Server {
    pub child: Option<Child>,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    pub gossip: SocketAddr,
    pub grpc: SocketAddr,
    pub data_dir: PathBuf,
    pub zone_dir: PathBuf,
    pub log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

pub struct ServerBuilder {
    zone_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    wait_ready: bool,
    gossip: Option<SocketAddr>,
}

impl ServerBuilder {
    pub fn zone_dir(mut self, d: &Path) -> Self {
        self.zone_dir = Some(d.to_owned());
        self
    }
    pub fn data_dir(mut self, d: &Path) -> Self {
        self.data_dir = Some(d.to_owned());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    /// Gossip on this base address instead of a fresh one (a restart).
    pub fn gossip(mut self, a: SocketAddr) -> Self {
        self.gossip = Some(a);
        self
    }
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub fn start(self) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = self.data_dir.clone().unwrap_or_else(|| tmp.path().join("data"));
        for attempt in 0..10 {
            if attempt > 0 && self.gossip.is_some() {
                // A fixed gossip port (a restart) may be held for a moment by
                // another test's outgoing connection: wait, then try again.
                std::thread::sleep(Duration::from_millis(300));
            }
            let (port, http_port) = (free_port(), free_port());
            let dns: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
            let gossip: SocketAddr =
                self.gossip.unwrap_or_else(|| format!("127.0.0.1:{}", free_gossip_port()).parse().unwrap());
            let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = tmp.path().join(format!("meshdns-{attempt}.log"));
            let mut cmd = Command::new(BIN);
            cmd.arg("serve")
                .args(["--listen", &dns.to_string(), "--http", &http.to_string()])
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--udp-workers", "2"])
                .args(["--gossip", &gossip.to_string(), "--grpc", &grpc.to_string()])
                .args(&self.args)
                .env("MESHDNS_LOG_LEVEL", "debug")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            if let Some(z) = &self.zone_dir {
                cmd.arg("--zone-dir").arg(z);
            }
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().unwrap();
            let mut s = Server {
                child: Some(child),
                dns,
                http,
                gossip,
                grpc,
                data_dir: data_dir.clone(),
                zone_dir: self.zone_dir.clone().unwrap_or_default(),
                log,
                _tmp: None,
            };
            if !self.wait_ready {
                s._tmp = Some(tmp);
                return s;
            }
            // Ready, or exited (a port race: try other ports).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if s.http_get("/readyz").is_some_and(|(code, _)| code == 200) {
                    s._tmp = Some(tmp);
                    return s;
                }
                if let Some(status) = s.child.as_mut().unwrap().try_wait().unwrap() {
                    eprintln!("meshdns exited early ({status}):\n{}", s.log_text());
                    break;
                }
                assert!(Instant::now() < deadline, "meshdns not ready after 60 s:\n{}", s.log_text());
                std::thread::sleep(Duration::from_millis(20));
            }
            s.child = None;
        }
        panic!("meshdns failed to start ten times");
    }
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            zone_dir: None,
            data_dir: None,
            env: Vec::new(),
            args: Vec::new(),
            wait_ready: true,
            gossip: None,
        }
    }

    pub fn with_zones(zone_dir: &Path) -> Server {
        Server::builder().zone_dir(zone_dir).start()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: `kill` via the command keeps tests free of unsafe.
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(15);
        let child = self.child.as_mut().unwrap();
        let status = wait_for("meshdns to exit", Duration::from_secs(15), || child.try_wait().unwrap());
        self.child = None;
        status
    }

    /// GET over HTTP/1.0; `None` if unreachable.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_request(self.http, "GET", path)
    }

    pub fn udp(&self, msg: &Message) -> Message {
        Message::from_vec(&self.udp_raw(&msg.to_vec().unwrap()).expect("no UDP reply")).unwrap()
    }

    /// Sends raw bytes over UDP; `None` if no reply within 2 s.
    pub fn udp_raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(bytes, self.dns).unwrap();
        let mut buf = vec![0u8; 65535];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    pub fn tcp(&self, msg: &Message) -> Message {
        let mut s = TcpStream::connect(self.dns).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write_tcp(&mut s, &msg.to_vec().unwrap());
        Message::from_vec(&read_tcp(&mut s).expect("no TCP reply")).unwrap()
    }

    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        self.udp(&query(name, rtype))
    }

    /// Runs `meshdns cluster ARGS --endpoint <this node>`: (success, stdout, stderr).
    pub fn cluster(&self, args: &[&str]) -> (bool, String, String) {
        cluster_cli(&self.grpc.to_string(), args)
    }

    /// Runs `meshdns zone ARGS --endpoint <this node>`: (success, stdout, stderr).
    pub fn zone_cli(&self, args: &[&str]) -> (bool, String, String) {
        let out =
            Command::new(BIN).arg("zone").args(args).args(["--endpoint", &self.grpc.to_string()]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `cluster members --output json`, parsed; `None` if the call failed.
    pub fn members(&self) -> Option<serde_json::Value> {
        let (ok, out, _) = self.cluster(&["members", "--output", "json"]);
        if ok { serde_json::from_str(&out).ok() } else { None }
    }

    /// Liveness of member `id` in this node's view (`None`: not listed).
    pub fn liveness_of(&self, id: &str) -> Option<String> {
        let m = self.members()?;
        m["members"].as_array()?.iter().find(|x| x["id"] == id).map(|x| x["liveness"].as_str().unwrap_or("").to_owned())
    }
}

/// Runs `meshdns cluster ARGS --endpoint ENDPOINT`: (success, stdout, stderr).
pub fn cluster_cli(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("cluster").args(args).args(["--endpoint", endpoint]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}

pub fn write_tcp(s: &mut TcpStream, msg: &[u8]) {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).unwrap();
}

pub fn read_tcp(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Sends a zone transfer request over TCP and collects the records until
/// the closing SOA (RFC 5936 §2.2).
pub fn transfer(addr: SocketAddr, request: &Message) -> Vec<hickory_proto::rr::Record> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write_tcp(&mut s, &request.to_vec().unwrap());
    let mut out = Vec::new();
    let mut soas = 0;
    while soas < 2 {
        let m = Message::from_vec(&read_tcp(&mut s).expect("transfer ended early")).unwrap();
        assert_eq!(m.response_code(), hickory_proto::op::ResponseCode::NoError, "transfer refused");
        for r in m.answers() {
            if r.record_type() == RecordType::SOA {
                soas += 1;
            }
            out.push(r.clone());
        }
    }
    out
}

/// An IXFR (RFC 1995) for `zone` from `serial`, read to its end: the
/// records of every message, in order.
pub fn ixfr(addr: SocketAddr, zone: &str, serial: u32) -> Vec<hickory_proto::rr::Record> {
    use hickory_proto::rr::{Name, RData, Record, rdata::SOA};
    let mut q = plain_query(zone, RecordType::IXFR);
    let theirs = SOA::new(Name::root(), Name::root(), serial, 0, 0, 0, 0);
    q.add_name_server(Record::from_rdata(zone.parse().unwrap(), 0, RData::SOA(theirs)));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write_tcp(&mut s, &q.to_vec().unwrap());
    let serial_of = |r: &Record| if let RData::SOA(soa) = r.data() { Some(soa.serial()) } else { None };
    let mut out: Vec<Record> = Vec::new();
    loop {
        let m = Message::from_vec(&read_tcp(&mut s).expect("transfer ended early")).unwrap();
        assert_eq!(m.response_code(), hickory_proto::op::ResponseCode::NoError, "transfer refused");
        out.extend(m.answers().iter().cloned());
        let Some(newest) = out.first().and_then(serial_of) else { continue };
        // RFC 1995 §4: the SOA alone (current); AXFR form ends at the second
        // SOA; the incremental form at the newest SOA's third appearance.
        let full = out.get(1).is_some_and(|r| serial_of(r).is_none());
        let seen = out.iter().filter(|r| serial_of(r) == Some(newest)).count();
        if (out.len() == 1 && newest == serial) || (full && seen == 2) || seen == 3 {
            return out;
        }
    }
}

/// A query with EDNS (payload 1232), like `dig` sends.
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = plain_query(name, rtype);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m
}

/// A query without EDNS.
pub fn plain_query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(rand_id());
    m.set_message_type(MessageType::Query);
    m.set_op_code(OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static N: AtomicU16 = AtomicU16::new(4242);
    N.fetch_add(7919, Ordering::Relaxed)
}

/// Records of a section as sorted presentation lines, names lower-cased
/// (RFC 4343: DNS names compare case-insensitively).
pub fn lines(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| format!("{} {} {} {}", r.name().to_lowercase(), r.ttl(), r.record_type(), r.data()).to_lowercase())
        .collect();
    v.sort();
    v
}

/// Writes `files` (name, contents) into a new temp dir.
pub fn zone_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

/// The repository's shared test data (`../shared` beside the clone).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}
