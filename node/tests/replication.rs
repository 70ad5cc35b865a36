//! Zone replication between real `meshdns` processes on loopback: a write
//! on any node is answered by every node; a node killed and restarted
//! catches up; a node with a certificate from another CA gets nothing.
//!
//! Gossip runs every 250 ms here; the bounds are stated for that.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, wait_for};
use hickory_proto::rr::{RData, RecordType};

/// A write on one node is answered by every node within this (measured:
/// well under a second).
const VISIBLE_BOUND: Duration = Duration::from_secs(15);

/// A TSIG key (RFC 8945) in the form `nsupdate -y` and `update.tsig_keys` take.
const TSIG_KEY: &str = "hmac-sha256:ddns-key:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

fn node(id: &str, region: &str, site: &str, seeds: &[SocketAddr], tls: &Path, data: Option<&Path>) -> Server {
    node_full(id, region, site, seeds, tls, data, &[])
}

fn node_env(id: &str, region: &str, site: &str, seeds: &[SocketAddr], tls: &Path, env: &[(&str, &str)]) -> Server {
    node_full(id, region, site, seeds, tls, None, env)
}

fn node_full(
    id: &str,
    region: &str,
    site: &str,
    seeds: &[SocketAddr],
    tls: &Path,
    data: Option<&Path>,
    env: &[(&str, &str)],
) -> Server {
    let quic = format!("127.0.0.1:{}", common::free_port());
    let mut b = Server::builder()
        .arg("--node-id")
        .arg(id)
        .arg("--region")
        .arg(region)
        .arg("--site")
        .arg(site)
        .arg("--quic")
        .arg(&quic)
        .arg("--tls-dir")
        .arg(tls.to_str().unwrap())
        .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "250");
    if !seeds.is_empty() {
        let s: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        b = b.arg("--seeds").arg(&s.join(","));
    }
    if let Some(d) = data {
        b = b.data_dir(d);
    }
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start()
}

fn a_of(s: &Server, name: &str) -> Option<String> {
    let r = s.query(name, RecordType::A);
    r.answers().iter().find_map(|rr| if let RData::A(a) = rr.data() { Some(a.to_string()) } else { None })
}

fn serial(s: &Server, zone: &str) -> Option<u32> {
    let r = s.query(zone, RecordType::SOA);
    r.answers().iter().find_map(|rr| if let RData::SOA(soa) = rr.data() { Some(soa.serial()) } else { None })
}

fn ok(r: (bool, String, String)) {
    assert!(r.0, "command failed: {}", r.2);
}

fn ca(ids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["cluster", "ca", "init", "--dir", dir.path().to_str().unwrap()]);
    for id in ids {
        run(&["cluster", "ca", "issue", "--dir", dir.path().to_str().unwrap(), "--node-id", id]);
    }
    dir
}

/// Waits until every node answers `name` with the A record `want`; with
/// `want` empty, until every node has the zone `name` (its SOA).
fn everywhere(nodes: &[&Server], name: &str, want: &str) -> Duration {
    everywhere_within(nodes, name, want, VISIBLE_BOUND)
}

/// [`everywhere`] with another bound.
fn everywhere_within(nodes: &[&Server], name: &str, want: &str, bound: Duration) -> Duration {
    let t = Instant::now();
    wait_for(&format!("{name} = {want} on every node"), bound, || {
        let ok = |n: &&Server| {
            if want.is_empty() { serial(n, name).is_some() } else { a_of(n, name).as_deref() == Some(want) }
        };
        nodes.iter().all(ok).then_some(())
    });
    t.elapsed()
}

#[test]
fn a_write_on_any_node_is_answered_by_every_node() {
    let tls = ca(&["a", "b", "c", "d", "e"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let seeds = [a.gossip];
    // b also takes RFC 2136 UPDATEs signed with a TSIG key.
    let b = node_full("b", "eu", "fra", &seeds, tls.path(), None, &[("MESHDNS_UPDATE_TSIG_KEYS", TSIG_KEY)]);
    let c = node("c", "eu", "ams", &seeds, tls.path(), None);
    let d = node("d", "us", "iad", &seeds, tls.path(), None);
    let e = node("e", "us", "sfo", &seeds, tls.path(), None);
    let all = [&a, &b, &c, &d, &e];
    wait_for("five members everywhere", VISIBLE_BOUND, || {
        all.iter()
            .all(|n| n.members().is_some_and(|m| m["members"].as_array().is_some_and(|v| v.len() == 5)))
            .then_some(())
    });
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.1"]));
    let took = everywhere(&all, "www.example.net.", "192.0.2.1");
    eprintln!("a write on a was answered by all five nodes after {took:?}");
    // A write on another node, in another region, travels back.
    ok(e.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.2"]));
    let took = everywhere(&all, "www.example.net.", "192.0.2.2");
    eprintln!("a write on e was answered by all five nodes after {took:?}");
    // BIND's nsupdate, with TSIG, on b.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cmds");
    std::fs::write(
        &script,
        format!(
            "server 127.0.0.1 {}\nzone example.net\nupdate add upd.example.net. 300 A 192.0.2.9\nsend\n",
            b.dns.port()
        ),
    )
    .unwrap();
    let out = Command::new("nsupdate")
        .args(["-y", TSIG_KEY])
        .arg(&script)
        .output()
        .expect("nsupdate is needed (scripts/test.sh installs bind9-dnsutils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = everywhere(&all, "upd.example.net.", "192.0.2.9");
    eprintln!("an nsupdate on b was answered by all five nodes after {took:?}");
    // Every node serves the same serial and the same digest.
    wait_for("equal serials", VISIBLE_BOUND, || {
        let s: Vec<Option<u32>> = all.iter().map(|n| serial(n, "example.net.")).collect();
        s.iter().all(|x| *x == s[0] && x.is_some()).then_some(())
    });
    let digests: Vec<String> = all
        .iter()
        .map(|n| {
            let (_, out, _) = n.zone_cli(&["list", "--output", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            v["zones"][0]["digest"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "{digests:?}");
    // A write can wait until other nodes (those it hears directly: its
    // site, and its tiers' representatives) serve it.
    let (okay, out, err) =
        b.zone_cli(&["set", "example.net", "w", "A", "300", "192.0.2.3", "--wait-for", "2", "--wait-site"]);
    assert!(okay, "{err}");
    assert!(out.contains("other node(s)"), "{out}");
    assert_eq!(a_of(&a, "w.example.net.").as_deref(), Some("192.0.2.3"), "its site mate serves it on return");
    let (okay, _, err) = b.zone_cli(&[
        "set",
        "example.net",
        "w",
        "A",
        "300",
        "192.0.2.4",
        "--wait-for",
        "9",
        "--wait-timeout-ms",
        "500",
    ]);
    assert!(!okay && err.contains("other node(s) confirmed holding this write within"), "{err}");
    // `cluster zones` shows how far behind each peer it hears is (no one, by now).
    wait_for("every peer level with a", VISIBLE_BOUND, || {
        let (_, out, _) = a.cluster(&["zones", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        let peers = v["zones"][0]["peers"].as_array()?.clone();
        (peers.len() >= 2 && peers.iter().all(|p| p["behind"] == 0)).then_some(())
    });
    let (_, m) = d.http_get("/metrics").unwrap();
    let received: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("meshdns_replication_deltas_received_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(received >= 2, "d received the writes as deltas: {received}");
    assert!(m.contains("meshdns_replication_zone_serial{zone=\"example.net.\"}"));
}

#[test]
fn a_node_killed_and_restarted_catches_up() {
    let tls = ca(&["a", "b", "c"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let seeds = [a.gossip];
    let b_data = tempfile::tempdir().unwrap();
    let mut b = node("b", "eu", "fra", &seeds, tls.path(), Some(b_data.path()));
    let c = node("c", "us", "iad", &seeds, tls.path(), None);
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.1"]));
    everywhere(&[&a, &b, &c], "www.example.net.", "192.0.2.1");
    b.signal(9);
    let _ = b.child.take().map(|mut ch| ch.wait());
    for i in 1..=50 {
        ok(c.zone_cli(&["set", "example.net", &format!("h{i}"), "A", "300", &format!("192.0.2.{i}")]));
    }
    let t = Instant::now();
    let b = node("b", "eu", "fra", &seeds, tls.path(), Some(b_data.path()));
    everywhere(&[&b], "h50.example.net.", "192.0.2.50");
    eprintln!("b caught up on 50 missed writes {:?} after its restart began", t.elapsed());
    assert_eq!(a_of(&b, "www.example.net.").as_deref(), Some("192.0.2.1"), "what it had before is kept");
    wait_for("b's serial equal to a's", VISIBLE_BOUND, || {
        (serial(&b, "example.net.") == serial(&a, "example.net.")).then_some(())
    });
}

#[test]
fn a_node_with_a_certificate_from_another_ca_gets_nothing() {
    let tls = ca(&["a", "b"]);
    let other = ca(&["x"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let b = node("b", "eu", "fra", &[a.gossip], tls.path(), None);
    let x = node("x", "eu", "fra", &[a.gossip], other.path(), None);
    wait_for("x in the mesh (gossip is not what TLS guards)", VISIBLE_BOUND, || {
        a.liveness_of("x").filter(|l| l == "alive").map(|_| ())
    });
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.1"]));
    everywhere(&[&a, &b], "www.example.net.", "192.0.2.1");
    // x's pulls fail TLS and it gets nothing; a and b log the refusal, and
    // x counts its failures by cause.
    wait_for("a refusal logged", VISIBLE_BOUND, || {
        (x.log_text().contains("pull failed") || a.log_text().contains("refused")).then_some(())
    });
    wait_for("x to count failed pulls", VISIBLE_BOUND, || {
        let failed: u64 = ["identity", "stalled", "bad_data", "unreachable"]
            .iter()
            .map(|c| metric(&x, &format!("meshdns_replication_sync_errors_total{{cause=\"{c}\"}}")))
            .sum();
        (failed >= 1).then_some(())
    });
    assert_eq!(x.query("www.example.net.", RecordType::A).answers().len(), 0);
    // A write on x does not reach a.
    ok(x.zone_cli(&["create", "example.org"]));
    std::thread::sleep(Duration::from_secs(2));
    let (_, out, _) = a.zone_cli(&["list", "--output", "json"]);
    assert!(!out.contains("example.org"), "{out}");
}

/// nftables rules on loopback that drop UDP between two groups of ports;
/// the table is removed when dropped, also on a failed assertion.
struct Partition(String);

impl Partition {
    fn new(left: &[u16], right: &[u16]) -> Partition {
        let table = format!("meshdns_test_{}", std::process::id());
        let set = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let rules = format!(
            "table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  \
             udp sport {{ {l} }} udp dport {{ {r} }} drop\n  udp sport {{ {r} }} udp dport {{ {l} }} drop\n }}\n}}\n",
            l = set(left),
            r = set(right)
        );
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft is needed (scripts/test.sh installs nftables)");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "nft refused the rules (this test needs root)");
        Partition(table)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft").args(["delete", "table", "inet", &self.0]).status();
    }
}

fn udp_ports(s: &Server, quic: u16) -> Vec<u16> {
    let g = s.gossip.port();
    vec![g, g + 1, g + 2, quic]
}

fn quic_of(s: &Server) -> u16 {
    let m = s.members().unwrap();
    let me = m["node_id"].as_str().unwrap().to_owned();
    let q = m["members"].as_array().unwrap().iter().find(|x| x["id"] == me.as_str()).unwrap()["quic"]
        .as_str()
        .unwrap()
        .to_owned();
    q.rsplit(':').next().unwrap().parse().unwrap()
}

/// Two halves of the cluster, cut off from each other, write different
/// values to one name; after the cut heals every node serves the same
/// winner: the later write (last writer wins).
#[test]
fn conflicting_writes_in_a_partition_converge_to_one_winner() {
    let tls = ca(&["a", "b", "c", "d"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let seeds = [a.gossip];
    let b = node("b", "eu", "fra", &seeds, tls.path(), None);
    let c = node("c", "us", "iad", &seeds, tls.path(), None);
    let d = node("d", "us", "iad", &seeds, tls.path(), None);
    let all = [&a, &b, &c, &d];
    wait_for("four members everywhere", VISIBLE_BOUND, || {
        all.iter()
            .all(|n| n.members().is_some_and(|m| m["members"].as_array().is_some_and(|v| v.len() == 4)))
            .then_some(())
    });
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.1"]));
    everywhere(&all, "www.example.net.", "192.0.2.1");

    let left: Vec<u16> = [&a, &b].iter().flat_map(|n| udp_ports(n, quic_of(n))).collect();
    let right: Vec<u16> = [&c, &d].iter().flat_map(|n| udp_ports(n, quic_of(n))).collect();
    let cut = Partition::new(&left, &right);
    wait_for("each half to see the other dead", Duration::from_secs(30), || {
        (a.liveness_of("c").as_deref() == Some("dead") && c.liveness_of("a").as_deref() == Some("dead")).then_some(())
    });
    ok(a.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.10"]));
    std::thread::sleep(Duration::from_millis(20)); // a later stamp on the other side
    ok(c.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.20"]));
    everywhere(&[&a, &b], "www.example.net.", "192.0.2.10");
    everywhere(&[&c, &d], "www.example.net.", "192.0.2.20");

    drop(cut);
    let t = Instant::now();
    wait_for("every node to serve the later write", Duration::from_secs(60), || {
        all.iter().all(|n| a_of(n, "www.example.net.").as_deref() == Some("192.0.2.20")).then_some(())
    });
    eprintln!("after the heal, all four served the same winner within {:?}", t.elapsed());
    wait_for("equal serials", VISIBLE_BOUND, || {
        let s: Vec<Option<u32>> = all.iter().map(|n| serial(n, "example.net.")).collect();
        s.iter().all(|x| *x == s[0]).then_some(())
    });
}

/// Tombstones are dropped once every live member holds them, not after a
/// time: no horizon is set (the default). A member that is alive
/// but cannot replicate (its QUIC port cut, gossip still flowing) holds the
/// collection back until it has caught up.
#[test]
fn tombstones_are_dropped_once_every_live_member_holds_them() {
    let tls = ca(&["a", "b", "c"]);
    // The shipped gossip interval: a busy test machine must not make the
    // failure detector declare c dead (a dead member is not waited for).
    let gossip = [("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "1000")];
    let a = node_env("a", "eu", "fra", &[], tls.path(), &gossip);
    let seeds = [a.gossip];
    let b = node_env("b", "eu", "fra", &seeds, tls.path(), &gossip);
    let c = node_env("c", "us", "iad", &seeds, tls.path(), &gossip);
    let all = [&a, &b, &c];
    // Formation first, bounded apart from replication: at 1 s rounds, c
    // (alone in its site) settles for ten rounds before it joins the
    // global pool (docs/mesh.md "Starting"), which leaves a 15 s
    // replication bound too little on a loaded machine.
    wait_for("the three nodes to see each other alive", Duration::from_secs(60), || {
        let seen = |n: &&Server| ["a", "b", "c"].iter().all(|id| n.liveness_of(id).as_deref() == Some("alive"));
        all.iter().all(seen).then_some(())
    });
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "x", "A", "300", "192.0.2.1"]));
    everywhere(&all, "x.example.net.", "192.0.2.1");
    ok(b.zone_cli(&["remove", "example.net", "x", "A"]));
    let tombstones = |s: &Server| metric(s, "meshdns_replication_tombstones");
    wait_for("every node to drop the tombstone", Duration::from_secs(60), || {
        all.iter().all(|n| tombstones(n) == 0).then_some(())
    });
    assert!(a.log_text().contains("collected tombstones that every live member holds"));

    // c holds y, then stays alive in gossip but receives no replication:
    // the deletion of y does not reach it.
    ok(a.zone_cli(&["set", "example.net", "y", "A", "300", "192.0.2.2"]));
    everywhere(&all, "y.example.net.", "192.0.2.2");
    let cut = Partition::new(&[quic_of(&a), quic_of(&b)], &[quic_of(&c)]);
    ok(a.zone_cli(&["remove", "example.net", "y", "A"]));
    wait_for("b to hold the second tombstone", VISIBLE_BOUND, || (tombstones(&b) == 1).then_some(()));
    // a sees how far behind c is (c publishes its serials by gossip).
    wait_for("a to show c one write behind", VISIBLE_BOUND, || {
        (metric(&a, "meshdns_replication_peer_lag_writes{peer=\"c\",zone=\"example.net.\"}") == 1).then_some(())
    });
    // A bounded observation: nothing can be polled for "never happens".
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(5) {
        let views = [a.liveness_of("c"), b.liveness_of("c")];
        assert!(views.iter().all(|v| v.as_deref() == Some("alive")), "c must stay alive for this check: {views:?}");
        assert_eq!(a_of(&c, "y.example.net.").as_deref(), Some("192.0.2.2"), "c must not get the deletion while cut");
        assert_eq!(
            tombstones(&a),
            1,
            "a dropped a tombstone that the live member c does not hold: {}",
            a.log_text().lines().filter(|l| l.contains("collected")).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(cut);
    wait_for("every node to drop the tombstone after the heal", Duration::from_secs(60), || {
        all.iter().all(|n| tombstones(n) == 0).then_some(())
    });
    assert_eq!(a_of(&c, "y.example.net."), None, "the deletion reached c");
    wait_for("a to show c level", VISIBLE_BOUND, || {
        (metric(&a, "meshdns_replication_peer_lag_writes{peer=\"c\",zone=\"example.net.\"}") == 0).then_some(())
    });
}

/// A node that joins a cluster holding a zone of 100,000 RRsets pulls it
/// and serves it like the others.
#[test]
fn a_new_node_joining_a_cluster_with_100k_records_converges() {
    let tls = ca(&["a", "b", "c"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let b = node("b", "eu", "fra", &[a.gossip], tls.path(), None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.test.zone");
    let mut text = String::from(
        "$ORIGIN big.test.\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n@ 3600 IN NS ns\nns 3600 IN A 192.0.2.53\n",
    );
    for i in 0..99_997u32 {
        text.push_str(&format!("h{i} 300 IN A 10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255));
    }
    std::fs::write(&file, text).unwrap();
    let (okay, out, err) = a.zone_cli(&["import", file.to_str().unwrap(), "--timeout", "120"]);
    assert!(okay, "{err}");
    // Every RRset but the SOA, which matches the default one but for its serial.
    assert!(out.contains("99999 RRset(s) written"), "{out}");
    everywhere(&[&a, &b], "h99996.big.test.", "10.1.134.156");
    let t = Instant::now();
    let c = node("c", "us", "iad", &[a.gossip], tls.path(), None);
    wait_for("the newcomer to serve the whole zone", Duration::from_secs(120), || {
        (a_of(&c, "h99996.big.test.").as_deref() == Some("10.1.134.156")).then_some(())
    });
    eprintln!("a new node served the 100k-RRset zone {:?} after it started", t.elapsed());
    let digest = |s: &Server| {
        let (_, out, _) = s.zone_cli(&["list", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["zones"][0]["digest"].as_str().unwrap().to_owned()
    };
    assert_eq!(digest(&c), digest(&a));
    assert_eq!(serial(&c, "big.test."), serial(&a, "big.test."));
}

/// In a cluster, zone files become cluster zones: the file's zone is
/// served by every node, and a changed file writes only what changed, so
/// an API change to another RRset survives it.
#[test]
fn zone_files_become_cluster_zones_and_changes_write_only_the_difference() {
    let tls = ca(&["a", "b"]);
    let zones = tempfile::tempdir().unwrap();
    let file = zones.path().join("files.test.zone");
    let v1 = "$ORIGIN files.test.\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n@ 3600 IN NS ns\nns 3600 IN A 192.0.2.53\nwww 300 IN A 192.0.2.1\n";
    std::fs::write(&file, v1).unwrap();
    let quic = format!("127.0.0.1:{}", common::free_port());
    let a = Server::builder()
        .zone_dir(zones.path())
        .args(&[
            "--node-id",
            "a",
            "--region",
            "eu",
            "--site",
            "fra",
            "--quic",
            &quic,
            "--tls-dir",
            tls.path().to_str().unwrap(),
        ])
        .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "250")
        .start();
    let b = node("b", "eu", "fra", &[a.gossip], tls.path(), None);
    everywhere(&[&a, &b], "www.files.test.", "192.0.2.1");
    // An API change on b to another RRset.
    ok(b.zone_cli(&["set", "files.test", "api", "A", "300", "192.0.2.77"]));
    everywhere(&[&a, &b], "api.files.test.", "192.0.2.77");
    // The file changes www; a reload writes that alone.
    std::fs::write(&file, v1.replace("192.0.2.1", "192.0.2.2")).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["zone", "reload", "--http", &a.http.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    everywhere(&[&a, &b], "www.files.test.", "192.0.2.2");
    assert_eq!(a_of(&b, "api.files.test.").as_deref(), Some("192.0.2.77"), "the API's RRset survives the file change");
    let log = a.log_text();
    assert!(log.contains("zone file imported into the cluster") && log.contains("written=1"), "{log}");
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, m) = s.http_get("/metrics").unwrap();
    m.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Deletions are collected after the tombstone horizon; a node that has not
/// seen them is sent a snapshot, and the deleted record does not come back.
#[test]
fn collected_tombstones_send_newcomers_a_snapshot() {
    let tls = ca(&["a", "b"]);
    let horizon = [("MESHDNS_REPLICATION_TOMBSTONE_HORIZON_S", "1")];
    let a = node_env("a", "eu", "fra", &[], tls.path(), &horizon);
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "gone", "A", "300", "192.0.2.9"]));
    ok(a.zone_cli(&["set", "example.net", "kept", "A", "300", "192.0.2.10"]));
    ok(a.zone_cli(&["remove", "example.net", "gone", "A"]));
    wait_for("the tombstone to be collected", Duration::from_secs(20), || {
        (a.log_text().contains("collected tombstones") && metric(&a, "meshdns_replication_tombstones") == 0)
            .then_some(())
    });
    let b = node_env("b", "eu", "fra", &[a.gossip], tls.path(), &horizon);
    everywhere(&[&b], "kept.example.net.", "192.0.2.10");
    assert!(metric(&b, "meshdns_replication_snapshots_received_total") >= 1, "b caught up by snapshot");
    assert!(metric(&a, "meshdns_replication_snapshots_sent_total") >= 1, "a counts the snapshot it sent");
    assert_eq!(a_of(&b, "gone.example.net."), None);
    assert_eq!(serial(&b, "example.net."), serial(&a, "example.net."));
}

/// `zone list` of one zone on `s`: (RRsets, digest, serial), if listed.
/// `Err` when the node did not answer `zone list` (busy adopting a large
/// snapshot, say), so callers poll instead of failing.
fn zone_state(s: &Server, zone: &str) -> Result<Option<(u64, String, u64)>, String> {
    let (okay, out, err) = s.zone_cli(&["list", "--output", "json"]);
    if !okay {
        return Err(err);
    }
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    let Some(z) = v["zones"].as_array().and_then(|zs| zs.iter().find(|z| z["name"] == zone)) else { return Ok(None) };
    Ok((|| Some((z["rrsets"].as_u64()?, z["digest"].as_str()?.to_owned(), z["serial"].as_u64()?)))())
}

/// A snapshot is adopted whole or not at all: a newcomer that must take a
/// snapshot (the cluster collected a tombstone) is SIGKILLed at several
/// moments of its catch-up. Restarted alone, it holds either nothing of
/// the zone or all of it; restarted in the cluster, it converges.
#[test]
fn a_node_killed_mid_snapshot_restarts_and_converges() {
    let tls = ca(&["a", "b"]);
    let horizon = [("MESHDNS_REPLICATION_TOMBSTONE_HORIZON_S", "1")];
    let a = node_env("a", "eu", "fra", &[], tls.path(), &horizon);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.test.zone");
    let mut text = String::from(
        "$ORIGIN snap.test.\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n@ 3600 IN NS ns\nns 3600 IN A 192.0.2.53\n",
    );
    for i in 0..60_000u32 {
        text.push_str(&format!("h{i} 300 IN TXT \"record {i} of a zone that must travel as a snapshot\"\n"));
    }
    std::fs::write(&file, text).unwrap();
    let (okay, _, err) = a.zone_cli(&["import", file.to_str().unwrap(), "--timeout", "120"]);
    assert!(okay, "{err}");
    ok(a.zone_cli(&["remove", "snap.test", "h0", "TXT"]));
    wait_for("the tombstone to be collected", Duration::from_secs(30), || {
        (metric(&a, "meshdns_replication_tombstones") == 0).then_some(())
    });
    let want = zone_state(&a, "snap.test.").unwrap().unwrap();
    let complete = |s: &Server| zone_state(s, "snap.test.").is_ok_and(|z| z.as_ref() == Some(&want));

    // Undisturbed, how long a newcomer takes: the kills are spread over it.
    let pulling = |s: &Server| s.log_text().contains("pulling from a peer").then_some(());
    let probe = node_env("b", "eu", "fra", &[a.gossip], tls.path(), &horizon);
    wait_for("the newcomer to pull", Duration::from_secs(60), || pulling(&probe));
    let t = Instant::now();
    wait_for("an undisturbed newcomer to hold the zone", Duration::from_secs(120), || complete(&probe).then_some(()));
    let catch_up = t.elapsed();
    // The counter follows the adoption by a moment.
    wait_for("the newcomer to count a snapshot", Duration::from_secs(10), || {
        (metric(&probe, "meshdns_replication_snapshots_received_total") >= 1).then_some(())
    });
    let bytes = metric(&probe, "meshdns_replication_bytes_received_total");
    eprintln!("undisturbed: {bytes} bytes received, zone served {catch_up:?} after the pull began");
    drop(probe);

    let mut seen = Vec::new();
    for fraction in [0.2, 0.5, 0.8] {
        let data = tempfile::tempdir().unwrap();
        let mut b = node_full("b", "eu", "fra", &[a.gossip], tls.path(), Some(data.path()), &horizon);
        wait_for("b to pull", Duration::from_secs(60), || pulling(&b));
        // The fault is injected at a chosen moment of the catch-up; nothing
        // waits on it.
        std::thread::sleep(catch_up.mul_f64(fraction));
        b.signal(9);
        let _ = b.child.take().map(|mut ch| ch.wait());
        // Alone: no seeds, so whatever it serves came from its own disk.
        let mut alone = node_full("b", "eu", "fra", &[], tls.path(), Some(data.path()), &horizon);
        let state =
            wait_for("b, alone, to list its zones", Duration::from_secs(30), || zone_state(&alone, "snap.test.").ok());
        assert!(
            state.is_none() || state.as_ref().is_some_and(|z| z.0 == 0) || state.as_ref() == Some(&want),
            "after a SIGKILL at {fraction} of the catch-up, b holds part of the snapshot: {state:?}, want {want:?}"
        );
        seen.push(if state.as_ref() == Some(&want) { "all" } else { "none" });
        alone.stop();
        drop(alone);
        let b = node_full("b", "eu", "fra", &[a.gossip], tls.path(), Some(data.path()), &horizon);
        wait_for("b to converge after the kill", Duration::from_secs(120), || complete(&b).then_some(()));
    }
    eprintln!("killed at 0.2, 0.5, 0.8 of the catch-up, the restarted node held: {seen:?}");
}

/// A node that creates a zone it has not heard of yet (here: importing its
/// zone file at start, before its first pull) hides nothing written
/// elsewhere: a zone marker hides only what came before a deletion.
#[test]
fn a_late_create_of_an_existing_zone_hides_nothing() {
    let tls = ca(&["a", "b"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    ok(a.zone_cli(&["create", "late.test"]));
    ok(a.zone_cli(&["set", "late.test", "ns", "A", "3600", "192.0.2.53"]));
    ok(a.zone_cli(&["set", "late.test", "@", "NS", "3600", "ns"]));
    ok(a.zone_cli(&["set", "late.test", "api", "A", "300", "192.0.2.77"]));
    let zones = tempfile::tempdir().unwrap();
    std::fs::write(
        zones.path().join("late.test.zone"),
        "$ORIGIN late.test.\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n@ 3600 IN NS ns\nns 3600 IN A 192.0.2.53\nfile 300 IN A 192.0.2.88\n",
    )
    .unwrap();
    let quic = format!("127.0.0.1:{}", common::free_port());
    let seed = a.gossip.to_string();
    let b = Server::builder()
        .zone_dir(zones.path())
        .args(&["--node-id", "b", "--region", "eu", "--site", "fra", "--quic", &quic, "--seeds", &seed])
        .args(&["--tls-dir", tls.path().to_str().unwrap()])
        .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "250")
        .start();
    everywhere(&[&a, &b], "file.late.test.", "192.0.2.88");
    everywhere(&[&a, &b], "api.late.test.", "192.0.2.77");
}

/// A node that loses its disk and comes back empty under the same id must
/// not have its new writes taken for old ones: its journal epoch is new.
/// (Without the epoch, its first new write would carry number 1 again,
/// which its peers already hold, and they would drop it.)
#[test]
fn a_node_that_lost_its_data_writes_under_a_new_epoch() {
    let tls = ca(&["a", "b"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let b_data = tempfile::tempdir().unwrap();
    let mut b = node("b", "eu", "fra", &[a.gossip], tls.path(), Some(b_data.path()));
    ok(b.zone_cli(&["create", "old.test"]));
    ok(b.zone_cli(&["set", "old.test", "x", "A", "300", "192.0.2.1"]));
    everywhere(&[&a], "x.old.test.", "192.0.2.1");
    // b's disk is lost: it comes back empty under the same id, and writes
    // at once, before it has pulled anything.
    b.signal(9);
    let _ = b.child.take().map(|mut c| c.wait());
    let fresh = tempfile::tempdir().unwrap();
    let b = node("b", "eu", "fra", &[a.gossip], tls.path(), Some(fresh.path()));
    ok(b.zone_cli(&["create", "new.test"]));
    ok(b.zone_cli(&["set", "new.test", "y", "A", "300", "192.0.2.2"]));
    // The bound covers a rejoin too: a must first see b's new incarnation
    // and its new replication address (one failure in eight runs at 15 s on
    // a loaded machine).
    let rejoin = Duration::from_secs(45);
    everywhere_within(&[&a, &b], "y.new.test.", "192.0.2.2", rejoin);
    everywhere_within(&[&a, &b], "x.old.test.", "192.0.2.1", rejoin);
}

/// `--wait-for` confirms the write itself on the peers, by its number,
/// not by comparing serials (write counts): here b holds more writes than
/// a (its own, made while its replication port is cut off) but not a's
/// new one, and must not count; once the cut heals it does.
#[test]
fn wait_for_confirms_the_write_itself_not_a_serial_count() {
    let tls = ca(&["a", "b"]);
    let gossip = [("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "1000")];
    let a = node_env("a", "eu", "fra", &[], tls.path(), &gossip);
    let b = node_env("b", "eu", "fra", &[a.gossip], tls.path(), &gossip);
    wait_for("two members everywhere", VISIBLE_BOUND, || {
        [&a, &b]
            .iter()
            .all(|n| n.members().is_some_and(|m| m["members"].as_array().is_some_and(|v| v.len() == 2)))
            .then_some(())
    });
    ok(a.zone_cli(&["create", "example.net"]));
    ok(a.zone_cli(&["set", "example.net", "ns1", "A", "300", "192.0.2.53"]));
    everywhere(&[&a, &b], "ns1.example.net.", "192.0.2.53");

    let cut = Partition::new(&[quic_of(&a)], &[quic_of(&b)]);
    for i in 0..3 {
        ok(b.zone_cli(&["set", "example.net", &format!("b{i}"), "A", "300", "192.0.2.1"]));
    }
    // a hears by gossip that b holds more writes than a will after its next.
    let mine = serial(&a, "example.net.").unwrap();
    wait_for("a to hear b's higher serial", VISIBLE_BOUND, || {
        let (_, out, _) = a.zone_cli(&["list", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        let peers = v["zones"][0]["peers"].as_array()?.clone();
        peers.iter().any(|p| p["node_id"] == "b" && p["serial"].as_u64() >= Some(u64::from(mine) + 2)).then_some(())
    });
    let (ok_, out, err) = a.zone_cli(&[
        "set",
        "example.net",
        "w",
        "A",
        "300",
        "192.0.2.7",
        "--wait-for",
        "1",
        "--wait-timeout-ms",
        "3000",
    ]);
    assert!(!ok_, "b does not hold a's write, whatever its serial: {out}");
    assert!(err.contains("0 other node(s) confirmed holding this write"), "{err}");
    assert_eq!(a_of(&b, "w.example.net."), None);

    drop(cut);
    let (ok_, out, err) = a.zone_cli(&[
        "set",
        "example.net",
        "w2",
        "A",
        "300",
        "192.0.2.8",
        "--wait-for",
        "1",
        "--wait-timeout-ms",
        "30000",
    ]);
    assert!(ok_, "{out}{err}");
    wait_for("b to serve the confirmed write", VISIBLE_BOUND, || {
        (a_of(&b, "w2.example.net.").as_deref() == Some("192.0.2.8")).then_some(())
    });
}

/// A peer restarted on its old replication address is pulled from again
/// within seconds: the connection cached to its old process is closed at its
/// first stalled exchange, not kept until QUIC's idle timeout (30 s; a write
/// from the restarted node took 32 s to arrive before).
#[test]
fn a_peer_restarted_on_its_old_address_is_reached_again_within_seconds() {
    let tls = ca(&["a", "b"]);
    let a = node("a", "eu", "fra", &[], tls.path(), None);
    let quic = format!("127.0.0.1:{}", common::free_port());
    let seed = a.gossip.to_string();
    let start_b = |data: &Path| {
        Server::builder()
            .args(&["--node-id", "b", "--region", "eu", "--site", "fra", "--quic", &quic, "--seeds", &seed])
            .arg("--tls-dir")
            .arg(tls.path().to_str().unwrap())
            .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "250")
            .data_dir(data)
            .start()
    };
    let first = tempfile::tempdir().unwrap();
    let mut b = start_b(first.path());
    ok(b.zone_cli(&["create", "old.test"]));
    ok(b.zone_cli(&["set", "old.test", "x", "A", "300", "192.0.2.1"]));
    everywhere(&[&a], "x.old.test.", "192.0.2.1");
    let mut dirs = vec![first];
    for round in 0..2 {
        b.signal(9);
        let _ = b.child.take().map(|mut c| c.wait());
        dirs.push(tempfile::tempdir().unwrap());
        b = start_b(dirs[dirs.len() - 1].path());
        let zone = format!("new{round}.test");
        ok(b.zone_cli(&["create", &zone]));
        ok(b.zone_cli(&["set", &zone, "y", "A", "300", "192.0.2.2"]));
        everywhere_within(&[&a], &format!("y.{zone}."), "192.0.2.2", Duration::from_secs(25));
    }
}
