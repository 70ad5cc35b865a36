//! Forward mode against real upstreams: Knot (authoritative) and Unbound
//! (a resolver), one of them killed mid-test; who may recurse; and hostile
//! upstreams — spoofed, malformed, oversized and silent replies.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::knot::start_knot;
use common::*;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

const ZONE: &str = "$ORIGIN fwd.test.\n$TTL 300\n@ SOA ns h 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.2\n\
www A 192.0.2.10\nw2 A 192.0.2.11\nw3 A 192.0.2.12\nw4 A 192.0.2.13\n";

struct Unbound {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unbound on a free loopback port, answering `fwd.test.` names from
/// local-data (the same addresses as the Knot zone), refusing the rest.
fn start_unbound() -> Unbound {
    assert!(
        Command::new("unbound").arg("-V").stdout(Stdio::null()).status().is_ok(),
        "Unbound is not installed: run the README's test command (it installs unbound), or apt-get install -y unbound"
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
         access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n  local-zone: \"fwd.test.\" static\n  \
         local-data: \"fwd.test. 300 IN SOA ns.fwd.test. h.fwd.test. 1 3600 600 86400 60\"\n  \
         local-data: \"www.fwd.test. 300 IN A 192.0.2.10\"\n  local-data: \"w2.fwd.test. 300 IN A 192.0.2.11\"\n  \
         local-data: \"w3.fwd.test. 300 IN A 192.0.2.12\"\n  local-data: \"w4.fwd.test. 300 IN A 192.0.2.13\"\n\
         remote-control:\n  control-enable: no\n"
    );
    std::fs::write(dir.path().join("unbound.conf"), conf).unwrap();
    let child = Command::new("unbound")
        .args(["-d", "-c"])
        .arg(dir.path().join("unbound.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let u = Unbound { child, addr, _dir: dir };
    wait_for("unbound to answer", Duration::from_secs(20), || {
        let r = common::nsd::udp_exchange(u.addr, &query("www.fwd.test.", RecordType::A).to_vec().unwrap())?;
        Message::from_vec(&r).ok().filter(|m| m.response_code() == ResponseCode::NoError)
    });
    u
}

fn forwarder(upstreams: &[String], extra: &[&str]) -> Server {
    let mut args = vec!["--resolver", "forward"];
    for u in upstreams {
        args.extend(["--forward", u.as_str()]);
    }
    args.extend(extra);
    // An empty zone directory: every name is somebody else's.
    let zones = tempfile::tempdir().unwrap();
    let s = Server::builder().zone_dir(zones.path()).args(&args).start();
    std::mem::forget(zones);
    s
}

/// A query as a stub resolver sends it: RD set, EDNS.
fn rq(name: &str, rtype: RecordType) -> Message {
    let mut m = query(name, rtype);
    m.set_recursion_desired(true);
    m
}

fn a_of(m: &Message) -> Vec<String> {
    m.answers().iter().filter_map(|r| r.data().as_a().map(|a| a.to_string())).collect()
}

/// The EDE INFO-CODE of a response, if it has one (RFC 8914).
fn ede(m: &Message) -> Option<u16> {
    let opt = m.extensions().as_ref()?;
    opt.options().as_ref().iter().find_map(|(code, o)| match (u16::from(*code), o) {
        (15, hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data)) if data.len() >= 2 => {
            Some(u16::from_be_bytes([data[0], data[1]]))
        }
        _ => None,
    })
}

#[test]
fn forwards_to_knot_then_unbound_when_knot_dies_and_answers_from_cache() {
    let zdir = tempfile::tempdir().unwrap();
    let file = zdir.path().join("fwd.test.zone");
    std::fs::write(&file, ZONE).unwrap();
    let mut knot = start_knot(&[("fwd.test.", &file)]);
    let unbound = start_unbound();
    let s = forwarder(&[format!("udp://{}", knot.addr), format!("udp://{}", unbound.addr)], &[]);

    let r = s.udp(&rq("www.fwd.test.", RecordType::A));
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.recursion_available() && !r.authoritative(), "a forwarded answer has RA and no AA");
    assert_eq!(a_of(&r), ["192.0.2.10"]);
    // Through TCP too.
    assert_eq!(a_of(&s.tcp(&rq("w2.fwd.test.", RecordType::A))), ["192.0.2.11"]);
    // Negative answers come with the SOA.
    let nx = s.udp(&rq("nope.fwd.test.", RecordType::A));
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert!(nx.name_servers().iter().any(|r| r.record_type() == RecordType::SOA));

    // Knot dies mid-test: new names come from Unbound, cached ones at once.
    let _ = knot.child.kill();
    let _ = knot.child.wait();
    let started = Instant::now();
    let r = s.udp(&rq("w3.fwd.test.", RecordType::A));
    assert_eq!(a_of(&r), ["192.0.2.12"], "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "failover took {:?}", started.elapsed());
    let started = Instant::now();
    let cached = s.udp(&rq("www.fwd.test.", RecordType::A));
    assert_eq!(a_of(&cached), ["192.0.2.10"]);
    assert!(cached.answers()[0].ttl() <= 300);
    assert!(started.elapsed() < Duration::from_millis(500));
    // After three failures in a row Knot is marked down and skipped: the
    // next questions go straight to Unbound.
    for name in ["w4.fwd.test.", "a1.fwd.test.", "a2.fwd.test."] {
        let _ = s.udp(&rq(name, RecordType::A));
    }
    let started = Instant::now();
    let r = s.udp(&rq("a3.fwd.test.", RecordType::A));
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert!(started.elapsed() < Duration::from_millis(1000), "a down upstream was tried: {:?}", started.elapsed());
}

#[test]
fn clients_outside_recursion_allow_are_refused() {
    let unbound = start_unbound();
    let s = forwarder(&[format!("udp://{}", unbound.addr)], &["--recursion-allow", "127.0.0.2/32"]);
    let r = s.udp(&rq("www.fwd.test.", RecordType::A));
    assert_eq!(r.response_code(), ResponseCode::Refused, "127.0.0.1 is not in recursion.allow");
    assert!(r.answers().is_empty());
    // The same question from an allowed address.
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&rq("www.fwd.test.", RecordType::A).to_vec().unwrap(), s.dns).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(a_of(&Message::from_vec(&buf[..n]).unwrap()), ["192.0.2.10"]);
    let metrics = s.http_get("/metrics").unwrap().1;
    assert!(metrics.contains("meshdns_resolver_refused_total 1"), "{metrics}");
}

#[test]
fn the_default_install_is_not_an_open_resolver() {
    // No --resolver: REFUSED for names outside our zones, as before.
    let zones = tempfile::tempdir().unwrap();
    let s = Server::builder().zone_dir(zones.path()).start();
    let r = s.udp(&rq("www.fwd.test.", RecordType::A));
    assert_eq!(r.response_code(), ResponseCode::Refused);
    assert!(!r.recursion_available());
}

/// A hostile upstream on a thread: for each query it runs `behave`.
fn fake_upstream(behave: impl Fn(&UdpSocket, SocketAddr, &Message) + Send + 'static) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            if let Ok(q) = Message::from_vec(&buf[..n]) {
                behave(&sock, peer, &q);
            }
        }
    });
    addr
}

fn reply_to(q: &Message, a: [u8; 4], count: usize) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(q.id()).set_message_type(MessageType::Response).set_recursion_available(true);
    m.add_queries(q.queries().to_vec());
    for i in 0..count {
        let name = q.queries()[0].name().clone();
        m.add_answer(Record::from_rdata(name, 60, RData::A(A::new(a[0], a[1], a[2], a[3].wrapping_add(i as u8)))));
    }
    m.to_vec().unwrap()
}

#[test]
fn spoofed_replies_are_ignored_and_the_real_one_is_taken() {
    let upstream = fake_upstream(|sock, peer, q| {
        // Wrong ID, then the right ID from another port, then a reply for
        // another question: all must be ignored.
        let mut wrong_id = reply_to(q, [6, 6, 6, 6], 1);
        wrong_id[0] ^= 0xff;
        let _ = sock.send_to(&wrong_id, peer);
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = other.send_to(&reply_to(q, [6, 6, 6, 7], 1), peer);
        let mut other_q = q.clone();
        other_q.queries_mut()[0].set_name(hickory_proto::rr::Name::from_ascii("evil.test.").unwrap());
        let _ = sock.send_to(&reply_to(&other_q, [6, 6, 6, 8], 1), peer);
        std::thread::sleep(Duration::from_millis(30));
        let _ = sock.send_to(&reply_to(q, [192, 0, 2, 99], 1), peer);
    });
    let s = forwarder(&[format!("udp://{upstream}")], &[]);
    let r = s.udp(&rq("spoof.test.", RecordType::A));
    assert_eq!(a_of(&r), ["192.0.2.99"], "{r:?}");
    let metrics = s.http_get("/metrics").unwrap().1;
    assert!(metrics.contains("meshdns_resolver_upstream_mismatched_total 3"), "{metrics}");
}

#[test]
fn malformed_oversized_and_silent_upstreams() {
    let garbage = fake_upstream(|sock, peer, q| {
        let mut r = reply_to(q, [6, 6, 6, 6], 1);
        r.truncate(r.len() - 3); // a record cut short
        let _ = sock.send_to(&r, peer);
    });
    let big = fake_upstream(|sock, peer, q| {
        let _ = sock.send_to(&reply_to(q, [10, 0, 0, 1], 200), peer);
    });
    let silent = fake_upstream(|_, _, _| {});

    // A malformed reply is a failure: the next upstream answers.
    let s = forwarder(&[format!("udp://{garbage}"), format!("udp://{big}")], &[]);
    let r = s.tcp(&rq("big.test.", RecordType::A));
    assert_eq!(r.answers().len(), 200, "a 3 KB upstream answer is taken whole");
    // A client without EDNS gets TC and the question (RFC 2181 §9).
    let small = s.udp(&{
        let mut m = plain_query("big.test.", RecordType::A);
        m.set_recursion_desired(true);
        m
    });
    assert!(small.truncated() && small.answers().is_empty());

    // Nobody answers: SERVFAIL with EDE 22 (No Reachable Authority),
    // within the attempts' timeouts.
    let s = forwarder(&[format!("udp://{silent}")], &[]);
    let started = Instant::now();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
    sock.send_to(&rq("silent.test.", RecordType::A).to_vec().unwrap(), s.dns).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("no SERVFAIL from a resolver whose upstream is silent");
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(r.response_code(), ResponseCode::ServFail);
    assert_eq!(ede(&r), Some(22), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(11));
}

#[test]
fn a_random_subdomain_flood_does_not_starve_cached_names() {
    // Water torture: many unique names under a zone whose server never
    // answers. Each is one in-flight resolution, bounded in number;
    // names already cached keep answering at once.
    let silent = fake_upstream(|_, _, _| {});
    let unbound = start_unbound();
    let conf = tempfile::tempdir().unwrap();
    let file = conf.path().join("meshdns.toml");
    std::fs::write(
        &file,
        format!(
            "[resolver]\nmode = \"forward\"\nforward = [\"udp://{}\"]\n[resolver.forward_zones]\n\"victim.test\" = [\"udp://{silent}\"]\n",
            unbound.addr
        ),
    )
    .unwrap();
    let zones = tempfile::tempdir().unwrap();
    let s = Server::builder().zone_dir(zones.path()).args(&["--config", file.to_str().unwrap()]).start();
    assert_eq!(a_of(&s.udp(&rq("www.fwd.test.", RecordType::A))), ["192.0.2.10"]);
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3000u32 {
        let q = rq(&format!("r{i:x}x{}.victim.test.", i.wrapping_mul(2654435761)), RecordType::A);
        let _ = flood.send_to(&q.to_vec().unwrap(), s.dns);
    }
    let hits = metric(&s, "meshdns_resolver_cache_hits_total");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sock.send_to(&rq("www.fwd.test.", RecordType::A).to_vec().unwrap(), s.dns).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("the cached name went unanswered under the flood");
    assert_eq!(a_of(&Message::from_vec(&buf[..n]).unwrap()), ["192.0.2.10"]);
    // Answered from the cache while the flood's resolutions still wait on
    // their silent upstream (each waits out a 1.5 s timeout): the flood
    // did not stand in front of it.
    assert!(metric(&s, "meshdns_resolver_in_flight") > 0, "the flood's resolutions were already over");
    assert_eq!(metric(&s, "meshdns_resolver_cache_hits_total"), hits + 1);
    // Conditional forwarding sent the flood to its own upstream, not Unbound.
    let metrics = s.http_get("/metrics").unwrap().1;
    assert!(metrics.contains("meshdns_resolver_resolutions_total"), "{metrics}");
}

#[test]
fn without_rd_only_the_cache_answers() {
    let unbound = start_unbound();
    let s = forwarder(&[format!("udp://{}", unbound.addr)], &[]);
    // RFC 1035 §4.1.1: RD clear asks for no recursion; nothing is cached yet.
    assert_eq!(s.query("www.fwd.test.", RecordType::A).response_code(), ResponseCode::Refused);
    assert_eq!(a_of(&s.udp(&rq("www.fwd.test.", RecordType::A))), ["192.0.2.10"]);
    let cached = s.query("www.fwd.test.", RecordType::A);
    assert_eq!(a_of(&cached), ["192.0.2.10"]);
    assert!(!cached.recursion_desired() && cached.recursion_available());
}

fn cache_cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("cache").args(args).args(["--http", &s.http.to_string()]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn cache_stats_flush_and_dump_through_the_cli_and_outsiders_are_refused() {
    let unbound = start_unbound();
    let s = forwarder(&[format!("udp://{}", unbound.addr)], &[]);
    for name in ["www.fwd.test.", "w2.fwd.test."] {
        assert_eq!(s.udp(&rq(name, RecordType::A)).response_code(), ResponseCode::NoError);
    }
    let _ = s.udp(&rq("www.fwd.test.", RecordType::A));
    let (ok, stats, err) = cache_cli(&s, &["stats"]);
    assert!(ok, "{err}");
    assert!(stats.contains("meshdns_resolver_cache_hits_total 1"), "{stats}");
    assert!(stats.contains("meshdns_resolver_cache_misses_total 2"), "{stats}");
    let (ok, dump, err) = cache_cli(&s, &["dump"]);
    assert!(ok, "{err}");
    assert!(dump.contains("www.fwd.test.") && dump.contains("w2.fwd.test."), "{dump}");
    let (ok, flushed, err) = cache_cli(&s, &["flush", "www.fwd.test"]);
    assert!(ok && flushed.contains("flushed 1 entries"), "{flushed}{err}");
    let (_, dump, _) = cache_cli(&s, &["dump"]);
    assert!(!dump.contains("www.fwd.test.") && dump.contains("w2.fwd.test."), "{dump}");
    let (ok, _, err) = cache_cli(&s, &["flush", "bad..name"]);
    assert!(!ok && err.contains("not a domain name"), "{err}");
    // A cross-site form (no admin header) cannot flush or read the cache.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Origin: http://evil.example"])
        .arg(format!("http://{}/cache/flush", s.http))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    let (_, dump, _) = cache_cli(&s, &["dump"]);
    assert!(dump.contains("w2.fwd.test."), "the refused flush flushed: {dump}");
    let audit = std::fs::read_to_string(s.data_dir.join("audit.log")).unwrap_or_default();
    assert!(audit.contains("cache.flush"), "{audit}");
}

#[test]
fn a_tcp_upstream_gets_one_connection_reused_and_pipelined() {
    let unbound = start_unbound();
    let s = forwarder(&[format!("tcp://{}", unbound.addr)], &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let names = ["www.fwd.test.", "w2.fwd.test.", "w3.fwd.test.", "w4.fwd.test.", "n1.fwd.test.", "n2.fwd.test."];
    // All at once: they share the connection, in flight together.
    for n in names {
        sock.send_to(&rq(n, RecordType::A).to_vec().unwrap(), s.dns).unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let mut answered = Vec::new();
    for _ in names {
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        answered.push((m.queries()[0].name().to_string(), m.response_code()));
    }
    assert_eq!(answered.iter().filter(|(_, rc)| *rc == ResponseCode::NoError).count(), 4, "{answered:?}");
    assert_eq!(answered.iter().filter(|(_, rc)| *rc == ResponseCode::NXDomain).count(), 2, "{answered:?}");
    let metrics = s.http_get("/metrics").unwrap().1;
    assert!(metrics.contains("meshdns_resolver_upstream_tcp_total 6"), "{metrics}");
    assert!(metrics.contains("meshdns_resolver_tcp_connections_opened_total 1"), "{metrics}");
}

#[test]
fn two_nodes_on_one_host_start_with_only_their_listeners_given() {
    // The harness command line: --listen, --http and --data-dir only. The
    // second node must not fail on the default gossip and gRPC ports.
    struct Children(Vec<Child>);
    impl Drop for Children {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut children = Children(Vec::new());
    let tmp = tempfile::tempdir().unwrap();
    let mut https = Vec::new();
    for i in 0..2 {
        let (dns, http) = (free_port(), free_port());
        let child = Command::new(BIN)
            .args(["serve", "--resolver", "recursive", "--listen", &format!("127.0.0.1:{dns}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .arg("--data-dir")
            .arg(tmp.path().join(format!("d{i}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.0.push(child);
        https.push(format!("127.0.0.1:{http}").parse::<SocketAddr>().unwrap());
    }
    for (i, h) in https.iter().enumerate() {
        wait_for(&format!("node {i} ready"), Duration::from_secs(20), || {
            assert!(children.0[i].try_wait().unwrap().is_none(), "node {i} exited");
            http_request(*h, "GET", "/readyz").filter(|(c, _)| *c == 200)
        });
    }
}

#[test]
fn a_restarted_node_answers_from_its_cache_file_and_a_corrupt_one_is_discarded() {
    let mut unbound = start_unbound();
    let data = tempfile::tempdir().unwrap();
    let zones = tempfile::tempdir().unwrap();
    let up = format!("udp://{}", unbound.addr);
    let start = || {
        Server::builder()
            .zone_dir(zones.path())
            .data_dir(data.path())
            .args(&["--resolver", "forward", "--forward", &up])
            .start()
    };
    let mut s = start();
    for n in ["www.fwd.test.", "w2.fwd.test."] {
        assert_eq!(s.udp(&rq(n, RecordType::A)).response_code(), ResponseCode::NoError);
    }
    s.stop();
    let file = data.path().join("cache.l3");
    assert!(file.exists(), "no cache file written at shutdown");
    // The upstream is gone: only the cache file can answer now.
    let _ = unbound.child.kill();
    let _ = unbound.child.wait();
    let s = start();
    let r = s.udp(&rq("w2.fwd.test.", RecordType::A));
    assert_eq!(a_of(&r), ["192.0.2.11"], "{}", s.log_text());
    assert!(r.answers()[0].ttl() <= 300);
    let metrics = s.http_get("/metrics").unwrap().1;
    assert!(metrics.contains("meshdns_resolver_cache_disk_hits_total 1"), "{metrics}");
    drop(s);
    // One flipped byte: the file is refused, removed, and nothing from it is served.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let s = start();
    assert!(s.log_text().contains("discarding the cache file"), "{}", s.log_text());
    let r = s.udp(&rq("www.fwd.test.", RecordType::A));
    assert_ne!(r.response_code(), ResponseCode::NoError, "served from a corrupt cache file: {r:?}");
}

fn metric(s: &Server, name: &str) -> u64 {
    let text = s.http_get("/metrics").map(|(_, t)| t).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[test]
fn a_joining_node_warms_its_cache_from_a_peers_hot_names() {
    let unbound = start_unbound();
    let up = format!("udp://{}", unbound.addr);
    let node = |id: &str, seeds: Option<SocketAddr>| {
        let zones = tempfile::tempdir().unwrap();
        let mut b = Server::builder()
            .zone_dir(zones.path())
            .args(&["--node-id", id, "--resolver", "forward", "--forward", &up])
            .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "100");
        if let Some(seed) = seeds {
            b = b.args(&["--seeds", &seed.to_string()]);
        }
        let s = b.start();
        std::mem::forget(zones);
        s
    };
    let a = node("warm-a", None);
    let hot = ["www.fwd.test.", "w2.fwd.test.", "w3.fwd.test."];
    for _ in 0..3 {
        for n in hot {
            assert_eq!(a.udp(&rq(n, RecordType::A)).response_code(), ResponseCode::NoError);
        }
    }
    // B joins now; A publishes its sketch every 5 s, and B looks for
    // its peers' sketches for a minute after it starts.
    let b = node("warm-b", Some(a.gossip));
    wait_for("B to warm A's hot names", Duration::from_secs(30), || {
        (metric(&b, "meshdns_resolver_warmed_total") >= hot.len() as u64).then_some(())
    });
    wait_for("B's warming resolutions to finish", Duration::from_secs(10), || {
        (metric(&b, "meshdns_resolver_in_flight") == 0).then_some(())
    });
    let sent = metric(&b, "meshdns_resolver_upstream_queries_total");
    for n in hot {
        assert_eq!(b.udp(&rq(n, RecordType::A)).response_code(), ResponseCode::NoError);
    }
    assert_eq!(metric(&b, "meshdns_resolver_cache_hits_total"), hot.len() as u64, "B's first queries were not hits");
    assert_eq!(metric(&b, "meshdns_resolver_upstream_queries_total"), sent, "B asked upstream for warmed names");
}

#[test]
fn expired_answers_are_served_stale_when_the_upstream_fails() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let silent = Arc::new(AtomicBool::new(false));
    let s2 = silent.clone();
    let upstream = fake_upstream(move |sock, peer, q| {
        if s2.load(Ordering::SeqCst) {
            return;
        }
        let mut m = Message::from_vec(&reply_to(q, [192, 0, 2, 42], 1)).unwrap();
        m.answers_mut()[0].set_ttl(1);
        let _ = sock.send_to(&m.to_vec().unwrap(), peer);
    });
    let s = forwarder(&[format!("udp://{upstream}")], &[]);
    assert_eq!(a_of(&s.udp(&rq("stale.test.", RecordType::A))), ["192.0.2.42"]);
    silent.store(true, Ordering::SeqCst);
    // Once the second is up, the cache entry is stale; resolution fails
    // (the upstream is silent) and the client gets the old answer with
    // the RFC 8767 stale TTL (30 s) after the client-response timer.
    let ask = || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
        sock.send_to(&rq("stale.test.", RecordType::A).to_vec().unwrap(), s.dns).unwrap();
        let mut buf = vec![0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    };
    let r = wait_for("a stale answer", Duration::from_secs(30), || {
        let r = ask()?;
        (r.answers().first().map(|a| a.ttl()) == Some(30)).then_some(r)
    });
    assert_eq!(a_of(&r), ["192.0.2.42"]);
    assert!(metric(&s, "meshdns_resolver_stale_served_total") >= 1);
}

#[test]
fn a_name_in_steady_use_is_prefetched_before_it_expires() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let asked = Arc::new(AtomicU32::new(0));
    let a2 = asked.clone();
    let upstream = fake_upstream(move |sock, peer, q| {
        a2.fetch_add(1, Ordering::SeqCst);
        let mut m = Message::from_vec(&reply_to(q, [192, 0, 2, 50], 1)).unwrap();
        m.answers_mut()[0].set_ttl(5);
        let _ = sock.send_to(&m.to_vec().unwrap(), peer);
    });
    let s = forwarder(&[format!("udp://{upstream}")], &[]);
    // Asked every 100 ms: the hits in the last half second of the 5 s TTL
    // start a background refresh, so no client ever waits on a miss.
    wait_for("a prefetch", Duration::from_secs(15), || {
        let r = s.udp(&rq("hot.test.", RecordType::A));
        assert_eq!(a_of(&r), ["192.0.2.50"]);
        std::thread::sleep(Duration::from_millis(100));
        (asked.load(Ordering::SeqCst) >= 2).then_some(())
    });
    assert_eq!(metric(&s, "meshdns_resolver_prefetches_total"), 1);
    assert_eq!(metric(&s, "meshdns_resolver_cache_misses_total"), 1, "a client waited on a miss");
}

#[test]
fn every_listener_takes_port_zero_and_the_log_says_where_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let mut child = Command::new(BIN)
        .args(["serve", "--resolver", "recursive", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--grpc", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("d"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let line = wait_for("the serving line", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).ok()?.lines().find(|l| l.contains(" listen=")).map(str::to_owned)
    });
    let _ = child.kill();
    let _ = child.wait();
    let field = |k: &str| -> String {
        let at = line.find(&format!("{k}=")).unwrap_or_else(|| panic!("no {k} in {line}")) + k.len() + 1;
        line[at..].split(' ').next().unwrap().trim_matches(|c| c == '[' || c == ']').to_owned()
    };
    for k in ["listen", "http", "grpc", "gossip"] {
        let addr: SocketAddr = field(k).parse().unwrap_or_else(|e| panic!("{k}: {e} in {line}"));
        assert_ne!(addr.port(), 0, "{k} logged as port 0: {line}");
    }
}

#[test]
fn once_stale_data_was_served_later_clients_get_it_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let silent = Arc::new(AtomicBool::new(false));
    let s2 = silent.clone();
    let first = fake_upstream(move |sock, peer, q| {
        if s2.load(Ordering::SeqCst) {
            return;
        }
        let mut m = Message::from_vec(&reply_to(q, [192, 0, 2, 43], 1)).unwrap();
        m.answers_mut()[0].set_ttl(1);
        let _ = sock.send_to(&m.to_vec().unwrap(), peer);
    });
    // Two more upstreams that never answer: a resolution now takes three
    // timeouts (4.5 s), well past the 1.8 s client-response timer.
    let (b, c) = (fake_upstream(|_, _, _| {}), fake_upstream(|_, _, _| {}));
    let s = forwarder(&[format!("udp://{first}"), format!("udp://{b}"), format!("udp://{c}")], &[]);
    assert_eq!(a_of(&s.udp(&rq("stale2.test.", RecordType::A))), ["192.0.2.43"]);
    silent.store(true, Ordering::SeqCst);
    let ask = || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
        sock.send_to(&rq("stale2.test.", RecordType::A).to_vec().unwrap(), s.dns).unwrap();
        let mut buf = vec![0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    };
    // The first client after expiry waits out the timer and gets stale data.
    wait_for("a stale answer", Duration::from_secs(30), || {
        ask().filter(|r| r.answers().first().map(|a| a.ttl()) == Some(30)).map(|_| ())
    });
    // The resolution is still running; the next client does not join it.
    assert!(metric(&s, "meshdns_resolver_in_flight") > 0, "the refresh already ended");
    let r = ask().expect("no answer");
    assert_eq!((a_of(&r), r.answers()[0].ttl()), (vec!["192.0.2.43".to_owned()], 30));
    assert!(metric(&s, "meshdns_resolver_in_flight") > 0, "the second client waited for the refresh to end");
}
