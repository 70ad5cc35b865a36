//! Hostile gossip against a live three-node cluster of the real binary
//! (loopback, no cluster key: datagrams reach chitchat as they are, so this
//! is what even a member holding the key could send). Each attack found
//! against a live cluster is sent, then random mutations of real-looking
//! datagrams, and idle connections fill the referral port while a fourth
//! node joins. Afterwards membership is whole everywhere, every node sees
//! itself alive, nothing panicked, memory stayed bounded, and nothing was
//! answered with more bytes than it was sent.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../mesh/tests/common/craft.rs"]
mod craft;

use std::collections::{BTreeSet, HashSet};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use chitchat::{Chitchat, ChitchatEnvelope, ProtocolVersion};
use common::{Server, wait_for};
use craft::Ops;
use meshdns_mesh::gossip::GossipSettings;
use meshdns_mesh::gossip::pool_state::{chitchat_config, initial_keys};
use meshdns_mesh::tier::Pool;

const CLUSTER: &str = "robust";
const INTERVAL_MS: &str = "500";
/// Membership is whole again within this after the attacks (gossip every
/// 500 ms; a refuted incarnation needs a few rounds).
const HEAL_BOUND: Duration = Duration::from_secs(60);

fn node(id: &str, seeds: &[SocketAddr]) -> Server {
    let mut b = Server::builder()
        .args(&["--node-id", id, "--region", "eu", "--site", "fra"])
        .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", INTERVAL_MS)
        .env("MESHDNS_MESH_CLUSTER", CLUSTER)
        // Errors capture backtraces, as under many service managers: a log
        // line that prints one makes the node resolve its debug info
        // (~170 MB for good), which the memory check below must catch
        // whatever the test runner's environment.
        .env("RUST_BACKTRACE", "1");
    if !seeds.is_empty() {
        let s: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        b = b.arg("--seeds").arg(&s.join(","));
    }
    b.start()
}

fn view(s: &Server) -> Option<BTreeSet<(String, String)>> {
    let m = s.members()?;
    Some(
        m["members"]
            .as_array()?
            .iter()
            .map(|x| (x["id"].as_str().unwrap_or("").to_owned(), x["liveness"].as_str().unwrap_or("").to_owned()))
            .collect(),
    )
}

fn all_alive(ids: &[&str]) -> BTreeSet<(String, String)> {
    ids.iter().map(|i| (i.to_string(), "alive".to_string())).collect()
}

fn generation_of(s: &Server, id: &str) -> u64 {
    let m = s.members().unwrap();
    m["members"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["generation"].as_u64().unwrap()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A local chitchat instance posing as member `id` (its real id,
/// generation and address): its datagrams look exactly like that member's.
fn twin(id: &str, generation: u64, gossip: SocketAddr) -> Chitchat {
    let mut me = meshdns_mesh::test_facts(id, "eu", "fra");
    me.generation = generation;
    me.gossip = gossip;
    let cfg = chitchat_config(CLUSTER, &Pool::site("eu", "fra"), 0, &me, &GossipSettings::default(), gossip);
    let (_tx, rx) = tokio::sync::watch::channel(HashSet::new());
    Chitchat::with_chitchat_id_and_seeds(cfg, rx, initial_keys(&me))
}

/// Real-looking datagrams: the three twins gossiping with each other.
fn captured(twins: &mut [(Chitchat, SocketAddr)]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for round in 0..3 {
        for i in 0..twins.len() {
            let j = (i + 1 + round) % twins.len();
            if i == j {
                continue;
            }
            let (a_addr, b_addr) = (twins[i].1, twins[j].1);
            let syn = twins[i].0.create_syn_message_to(b_addr);
            let bytes = ChitchatEnvelope { version: ProtocolVersion::V1, message: syn }.encode();
            out.push(bytes.clone());
            let env = ChitchatEnvelope::decode(&bytes).unwrap();
            let Some(syn_ack) = twins[j].0.process_message_from(a_addr, 1 << 16, env.message) else { continue };
            let bytes = ChitchatEnvelope { version: ProtocolVersion::V1, message: syn_ack }.encode();
            out.push(bytes.clone());
            let env = ChitchatEnvelope::decode(&bytes).unwrap();
            if let Some(ack) = twins[i].0.process_message_from(b_addr, 1 << 16, env.message) {
                out.push(ChitchatEnvelope { version: ProtocolVersion::V1, message: ack }.encode());
            }
        }
    }
    out
}

/// A small deterministic generator for the mutations (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn hostile_datagrams_neither_crash_nor_wedge_nor_split_the_cluster() {
    let n1 = node("n1", &[]);
    let n2 = node("n2", &[n1.gossip]);
    let n3 = node("n3", &[n1.gossip]);
    let nodes = [&n1, &n2, &n3];
    let everyone = all_alive(&["n1", "n2", "n3"]);
    wait_for("three nodes to see each other alive", Duration::from_secs(30), || {
        nodes.iter().all(|s| view(s).as_ref() == Some(&everyone)).then_some(())
    });
    let rss_before: Vec<u64> = nodes.iter().map(|s| rss_kib(s.pid())).collect();
    let cluster_id = Pool::site("eu", "fra").cluster_id(CLUSTER);
    let ids: Vec<(String, u64, SocketAddr)> = nodes
        .iter()
        .zip(["n1", "n2", "n3"])
        .map(|(s, id)| (id.to_owned(), generation_of(&n1, id) * 1000, s.gossip))
        .collect();
    let (n2_id, n2_gen, n2_addr) = ids[1].clone();
    let (n3_id, n3_gen, n3_addr) = ids[2].clone();

    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let send_all = |bytes: &[u8]| {
        for s in nodes {
            attacker.send_to(bytes, s.gossip).unwrap();
        }
    };

    // 1. The four asserts in the vendored chitchat.
    send_all(&craft::ack(&Ops::default().node(&n2_id, n2_gen, n2_addr, 0, 0).kv("k", "v", 500, 0).max_version(3)));
    let long = "x".repeat(60_000);
    send_all(&craft::ack(&Ops::default().node(&n3_id, n3_gen, n3_addr, 0, 0).kv("big", &long, 1 << 20, 0)));
    send_all(&craft::ack(&Ops::default().node(&n2_id, n2_gen, n2_addr, 0, 0).max_version(u64::MAX)));
    // 2. A high max version for n2 held by n1 and n3 (so they would ignore
    //    n2's real updates, and hand the version to n2 itself).
    for (s, _) in [(&n1, 0), (&n3, 0)] {
        let ops = Ops::default().node(&n2_id, n2_gen, n2_addr, 0, 0).max_version(1 << 40);
        attacker.send_to(&craft::ack(&ops), s.gossip).unwrap();
    }
    // 3. Impersonation: n2 leaving, a forged heartbeat for n3.
    let ops = Ops::default().node(&n2_id, n2_gen, n2_addr, 0, 0).kv("state", "leaving", 1 << 41, 0);
    attacker.send_to(&craft::ack(&ops), n1.gossip).unwrap();
    let syn = craft::syn(&cluster_id, &[(&n3_id, n3_gen, n3_addr, 1 << 45, 0, 1)]);
    attacker.send_to(&syn, n1.gossip).unwrap();
    // 4. A 4 KB datagram of compressed blocks.
    let bomb = craft::ack_raw(&craft::zstd_bomb(60));
    assert!(bomb.len() <= 4096, "the bomb is {} bytes", bomb.len());
    for _ in 0..20 {
        send_all(&bomb);
    }
    // 5. Amplification: an unsolicited 7-byte SynAck, and a small Syn.
    let mut buf = vec![0u8; 65_536];
    while attacker.recv_from(&mut buf).is_ok() {} // drain
    for probe in [craft::syn_ack(&[], &Ops::default()), craft::syn(&cluster_id, &[])] {
        assert!(probe.len() <= 64, "a small probe: {} bytes", probe.len());
        for s in nodes {
            attacker.send_to(&probe, s.gossip).unwrap();
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(300) {
                match attacker.recv_from(&mut buf) {
                    Ok((n, _)) => assert!(n <= probe.len(), "a {}-byte request got a {n}-byte reply", probe.len()),
                    Err(_) => break,
                }
            }
        }
    }
    // 6. Random mutations of real-looking datagrams.
    let mut twins: Vec<(Chitchat, SocketAddr)> = ids.iter().map(|(id, g, a)| (twin(id, *g / 1000, *a), *a)).collect();
    let frames = captured(&mut twins);
    // GOSSIP_MUTATION_SEED replays a failing run (not MESHDNS_*: the node
    // refuses unknown MESHDNS_ variables in its environment).
    let seed = std::env::var("GOSSIP_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!("mutation seed {seed} (set GOSSIP_MUTATION_SEED={seed} to replay)");
    let mut rng = Lcg(seed);
    for _ in 0..600 {
        let mut bytes = frames[rng.below(frames.len())].clone();
        for _ in 0..=rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[i] = rng.next() as u8,
                1 => bytes.insert(i, rng.next() as u8),
                2 => {
                    bytes.remove(i);
                }
                _ => bytes[i] ^= 1 << rng.below(8),
            }
        }
        let target = nodes[rng.below(nodes.len())];
        attacker.send_to(&bytes, target.gossip).unwrap();
        if rng.below(50) == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // 7. 80 idle TCP connections on the seed's referral port, from 20
    //    loopback addresses, while a fourth node joins through it.
    let idle = idle_connections(n1.gossip, 80);
    assert!(idle.len() >= 64, "opened {} idle connections", idle.len());
    let n4 = node("n4", &[n1.gossip]);
    let all = [&n1, &n2, &n3, &n4];
    // The forged claims about n2's and n3's own ids (held by n1) reach them
    // and are refuted by new incarnations, counted in the metrics.
    let refuted = |s: &Server| {
        let text = s.http_get("/metrics").map(|m| m.1).unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with("meshdns_mesh_identity_refutations_total "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("a forged claim to be refuted", HEAL_BOUND, || (refuted(&n2) + refuted(&n3) > 0).then_some(()));
    let everyone = all_alive(&["n1", "n2", "n3", "n4"]);
    let t = Instant::now();
    wait_for("every node to see all four alive after the attacks", HEAL_BOUND, || {
        all.iter().all(|s| view(s).as_ref() == Some(&everyone)).then_some(())
    });
    eprintln!("membership whole {:?} after the attacks", t.elapsed());
    drop(idle);

    for (s, id) in all.iter().zip(["n1", "n2", "n3", "n4"]) {
        assert_eq!(s.liveness_of(id).as_deref(), Some("alive"), "{id} sees itself alive");
        let log = s.log_text();
        assert!(!log.contains("panicked"), "{id} logged a panic:\n{log}");
        assert!(!log.contains("gossip task stopped"), "{id}'s chitchat task stopped:\n{log}");
        assert!(!log.contains("Stack backtrace"), "{id} logged an error with its backtrace:\n{log}");
        wait_for(&format!("{id} to be ready"), Duration::from_secs(10), || {
            (s.http_get("/readyz")?.0 == 200).then_some(())
        });
    }
    let rss_after: Vec<u64> = nodes.iter().map(|s| rss_kib(s.pid())).collect();
    for (i, (before, after)) in rss_before.iter().zip(&rss_after).enumerate() {
        eprintln!("n{}: VmRSS {before} KiB before, {after} KiB after", i + 1);
    }
    for (before, after) in rss_before.iter().zip(&rss_after) {
        assert!(*after < before + 48 * 1024, "memory grew from {before} to {after} KiB");
    }
}

/// `count` idle TCP connections to `to`, four from each of 127.0.0.2,
/// 127.0.0.3, ... (so they come from many addresses of one /24).
fn idle_connections(to: SocketAddr, count: u8) -> Vec<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..count {
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else { continue };
            if socket.bind(SocketAddr::from(([127, 0, 0, 2 + i / 4], 0))).is_err() {
                continue;
            }
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), socket.connect(to)).await
                && let Ok(std) = stream.into_std()
            {
                out.push(std);
            }
        }
        out
    })
}

/// A node cut off from gossip says so on `/readyz` (503, `gossip down`)
/// while still answering DNS, and is ready again once gossip recovers: here
/// its region and global pool ports are taken by someone else when it plans
/// those pools, then freed.
#[test]
fn a_node_whose_gossip_is_down_is_not_ready() {
    let base = common::free_gossip_port();
    let gossip: SocketAddr = format!("127.0.0.1:{base}").parse().unwrap();
    let squatters: Vec<UdpSocket> = (1..3).map(|i| UdpSocket::bind(("127.0.0.1", base + i)).unwrap()).collect();
    let s = Server::builder()
        .args(&["--node-id", "lone", "--region", "eu", "--site", "fra"])
        .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", INTERVAL_MS)
        .env("MESHDNS_MESH_CLUSTER", CLUSTER)
        .gossip(gossip)
        .start();
    // Alone, it plans its upper pools after ten rounds (5 s) and cannot
    // bind them.
    let body = wait_for("readyz to report gossip down", Duration::from_secs(30), || {
        let (status, body) = s.http_get("/readyz")?;
        (status == 503).then_some(body)
    });
    assert!(body.contains("gossip down"), "{body}");
    assert!(s.query("example.com.", hickory_proto::rr::RecordType::SOA).answers().len() == 1, "DNS still answers");
    drop(squatters);
    wait_for("readyz to recover", Duration::from_secs(30), || {
        let (status, _) = s.http_get("/readyz")?;
        (status == 200).then_some(())
    });
}
