//! Authenticated gossip with real `meshdns` processes on loopback: nodes
//! sharing a cluster key form a cluster, a node with another key never
//! joins and is counted, replayed messages are refused and counted, a
//! non-loopback gossip address needs a key (or `--insecure-gossip`), and a
//! key rotates without splitting the cluster.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{BIN, Server, free_gossip_port, free_port, wait_for};
use meshdns_mesh::auth::{GossipKey, Kind, NONCE_LEN, seal};

/// Every node lists the other as alive within this (measured: ~3 s).
const JOIN_BOUND: Duration = Duration::from_secs(30);
/// A message sent now is counted within this.
const COUNT_BOUND: Duration = Duration::from_secs(10);

fn key(b: u8) -> GossipKey {
    GossipKey::new([b; 32])
}

fn write_keys(path: &Path, keys: &[&GossipKey]) {
    let text: String = keys.iter().map(|k| format!("{}\n", k.to_hex())).collect();
    std::fs::write(path, text).unwrap();
}

fn node(id: &str, key_file: &Path, seeds: &[SocketAddr]) -> Server {
    let mut b = Server::builder()
        .args(&["--node-id", id, "--region", "eu", "--site", "fra"])
        .arg("--gossip-key-file")
        .arg(key_file.to_str().unwrap())
        .env("MESHDNS_MESH_GOSSIP_INTERVAL_MS", "500");
    if !seeds.is_empty() {
        let s: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        b = b.arg("--seeds").arg(&s.join(","));
    }
    b.start()
}

/// `meshdns_mesh_gossip_rejected_total{cause=CAUSE}` on `s`.
fn rejected(s: &Server, cause: &str) -> u64 {
    let (_, body) = s.http_get("/metrics").unwrap();
    let prefix = format!("meshdns_mesh_gossip_rejected_total{{cause=\"{cause}\"}} ");
    body.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse().unwrap()).unwrap_or_else(|| {
        panic!("no {prefix} in /metrics:\n{body}");
    })
}

fn sees_alive(s: &Server, id: &str) -> bool {
    s.liveness_of(id).as_deref() == Some("alive")
}

fn sealed(k: &GossipKey, kind: Kind, at_ms: u64, nonce: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    seal(k, kind, at_ms, [nonce; NONCE_LEN], payload, &mut out);
    out
}

#[allow(clippy::disallowed_methods)] // the test plays a sender: it reads the wall clock
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn a_shared_key_forms_a_cluster_and_another_key_never_joins() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.keys"), dir.path().join("bad.keys"));
    write_keys(&good, &[&key(1)]);
    write_keys(&bad, &[&key(2)]);
    let a = node("a", &good, &[]);
    let b = node("b", &good, &[a.gossip]);
    let x = node("x", &bad, &[a.gossip, b.gossip]);
    wait_for("a and b to see each other alive", JOIN_BOUND, || {
        (sees_alive(&a, "b") && sees_alive(&b, "a")).then_some(())
    });
    // x keeps asking both for a referral; each refusal is counted.
    wait_for("a and b to count x's refused messages", COUNT_BOUND, || {
        (rejected(&a, "unknown_key") > 0 && rejected(&b, "unknown_key") > 0).then_some(())
    });
    for (s, who) in [(&a, "a"), (&b, "b")] {
        assert_eq!(s.liveness_of("x"), None, "{who} admitted the node with another key");
    }
    // x is told what is likely wrong.
    wait_for("x to log that its seeds do not answer", COUNT_BOUND, || {
        x.log_text().contains("does it hold this node's cluster key").then_some(())
    });
    assert_eq!(x.liveness_of("a"), None, "x admitted a");
    assert_eq!(x.liveness_of("b"), None, "x admitted b");
    // Nothing the key holders sent each other was refused.
    assert_eq!(rejected(&a, "bad_tag") + rejected(&a, "replay") + rejected(&a, "stale"), 0);
    // The key itself is never logged.
    for s in [&a, &b] {
        let log = s.log_text();
        assert!(!log.contains(&key(1).to_hex()), "a key was logged");
    }
}

#[test]
fn replayed_gossip_and_referral_messages_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("cluster.keys");
    write_keys(&keys, &[&key(7)]);
    let a = node("a", &keys, &[]);

    // A referral request captured from a real node: the seed it asks is
    // this test's listener.
    let fake_seed = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake_seed.local_addr().unwrap();
    let _b = node("b", &keys, &[fake_addr]);
    fake_seed.set_nonblocking(false).unwrap();
    let (stream, _) = fake_seed.accept().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut captured = String::new();
    BufReader::new(stream).read_line(&mut captured).unwrap();
    assert!(!captured.contains("cluster"), "the referral request went in the clear: {captured}");

    let exchange = |line: &str| -> String {
        let mut s = TcpStream::connect(a.gossip).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = BufReader::new(s).read_line(&mut answer);
        answer
    };
    // Delivered once (a has never seen it), it is answered...
    assert!(!exchange(&captured).trim().is_empty(), "a did not answer a valid request");
    assert_eq!(rejected(&a, "replay"), 0);
    // ...replayed, it is refused without an answer, and counted.
    assert_eq!(exchange(&captured).trim(), "", "a answered a replayed request");
    // (The metrics show the mesh's snapshot, refreshed every tick.)
    wait_for("the replayed request to be counted", COUNT_BOUND, || (rejected(&a, "replay") == 1).then_some(()));

    // Gossip datagrams sealed with the cluster key, as a capture would be.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = sealed(&key(7), Kind::Gossip, now_ms(), 1, b"not even chitchat");
    udp.send_to(&datagram, a.gossip).unwrap();
    udp.send_to(&datagram, a.gossip).unwrap();
    wait_for("the replayed datagram to be counted", COUNT_BOUND, || (rejected(&a, "replay") == 2).then_some(()));
    // One sealed ten minutes ago: outside the five-minute window.
    let old = sealed(&key(7), Kind::Gossip, now_ms() - 600_000, 2, b"old");
    udp.send_to(&old, a.gossip).unwrap();
    wait_for("the stale datagram to be counted", COUNT_BOUND, || (rejected(&a, "stale") == 1).then_some(()));
    // A tampered byte, and a referral request replayed as gossip.
    let mut tampered = sealed(&key(7), Kind::Gossip, now_ms(), 3, b"payload");
    tampered[40] ^= 1;
    udp.send_to(&tampered, a.gossip).unwrap();
    wait_for("the tampered datagram to be counted", COUNT_BOUND, || (rejected(&a, "bad_tag") == 1).then_some(()));
    let before = rejected(&a, "malformed");
    udp.send_to(captured.trim().as_bytes(), a.gossip).unwrap();
    wait_for("the misdirected request to be counted", COUNT_BOUND, || {
        (rejected(&a, "malformed") > before).then_some(())
    });
}

/// Starts `meshdns serve` with gossip on 0.0.0.0 (listening only: no
/// seeds, so nothing is sent anywhere); returns it and its HTTP address.
fn serve_on_any(extra: &[&str], dir: &Path) -> (std::process::Child, SocketAddr) {
    let gossip = format!("0.0.0.0:{}", free_gossip_port());
    let (dns, grpc) = (free_port(), free_port());
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .args(["--gossip", &gossip])
        .args(["--listen", &format!("127.0.0.1:{dns}"), "--http", &http.to_string()])
        .args(["--grpc", &format!("127.0.0.1:{grpc}"), "--udp-workers", "1"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, http)
}

#[test]
fn a_non_loopback_gossip_address_needs_a_key_or_insecure_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_on_any(&[], dir.path()).0.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a key on 0.0.0.0");
    assert!(err.contains("mesh.gossip_key_file") && err.contains("--insecure-gossip"), "{err}");

    let keys = dir.path().join("keys");
    write_keys(&keys, &[&key(3)]);
    for extra in [vec!["--insecure-gossip"], vec!["--gossip-key-file", keys.to_str().unwrap()]] {
        let data = tempfile::tempdir().unwrap();
        let (mut child, http) = serve_on_any(&extra, data.path());
        // Ready (the mesh started), or exited.
        let ready = wait_for("the node to be ready or exit", Duration::from_secs(30), || {
            if common::http_request(http, "GET", "/readyz").is_some_and(|(code, _)| code == 200) {
                return Some(true);
            }
            child.try_wait().unwrap().map(|_| false)
        });
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        assert!(ready, "did not start with {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_key_rotates_without_splitting_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key(10), key(11));
    let files: Vec<_> = ["a", "b", "c"].iter().map(|n| dir.path().join(format!("{n}.keys"))).collect();
    for f in &files {
        write_keys(f, &[&old]);
    }
    let a = node("a", &files[0], &[]);
    let b = node("b", &files[1], &[a.gossip]);
    let c = node("c", &files[2], &[a.gossip]);
    let nodes = [(&a, "a"), (&b, "b"), (&c, "c")];
    let whole = || nodes.iter().all(|(s, me)| nodes.iter().filter(|(_, id)| id != me).all(|(_, id)| sees_alive(s, id)));
    wait_for("the cluster to form", JOIN_BOUND, || whole().then_some(()));
    // Add the new key as a secondary, make it primary, drop the old one:
    // each step on every node before the next.
    for (done, step) in [vec![&old, &new], vec![&new, &old], vec![&new]].into_iter().enumerate() {
        let reloads = done + 1;
        for ((s, _), f) in nodes.iter().zip(&files) {
            write_keys(f, &step);
            s.signal(1);
        }
        for (s, id) in &nodes {
            wait_for(&format!("{id} to reload its keys"), COUNT_BOUND, || {
                (s.log_text().matches("gossip keyring replaced").count() >= reloads).then_some(())
            });
        }
        assert!(whole() || wait_for("the cluster to stay whole", JOIN_BOUND, || whole().then_some(true)));
    }
    // No message between members was refused at any step.
    for (s, id) in &nodes {
        for cause in ["unknown_key", "bad_tag", "stale", "replay"] {
            assert_eq!(rejected(s, cause), 0, "{id} refused a member's message ({cause}) during rotation");
        }
    }
    // The old key is no longer accepted; the new one is.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&sealed(&old, Kind::Gossip, now_ms(), 1, b"x"), a.gossip).unwrap();
    wait_for("the old key to be refused", COUNT_BOUND, || (rejected(&a, "unknown_key") == 1).then_some(()));
    let by_new = sealed(&new, Kind::Gossip, now_ms(), 2, b"x");
    udp.send_to(&by_new, a.gossip).unwrap();
    udp.send_to(&by_new, a.gossip).unwrap();
    // Accepted once (so its copy is a replay), never refused for its key.
    wait_for("the new key's copy to be a replay", COUNT_BOUND, || (rejected(&a, "replay") == 1).then_some(()));
    assert_eq!(rejected(&a, "unknown_key"), 1);
}

#[test]
fn config_check_validates_the_keyring_and_never_prints_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    write_keys(&keys, &[&key(5), &key(6)]);
    let check = |file: &Path| {
        let out = Command::new(BIN)
            .args(["config", "check"])
            .env("MESHDNS_MESH_GOSSIP_KEY_FILE", file)
            .env("MESHDNS_MESH_NODE_ID", "a")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = check(&keys);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{:08x}, {:08x}", key(5).id(), key(6).id())), "key ids, primary first: {text}");
    for k in [key(5), key(6)] {
        assert!(!text.contains(&k.to_hex()) && !text.contains(&k.to_hex()[..16]), "a key was printed: {text}");
    }
    // A bad line is named by number, and its content is not echoed.
    std::fs::write(&keys, format!("{}\nsecret-looking-garbage\n", key(5).to_hex())).unwrap();
    let (ok, text) = check(&keys);
    assert!(!ok && text.contains("line 2"), "{text}");
    assert!(!text.contains("secret-looking-garbage") && !text.contains(&key(5).to_hex()), "{text}");
}
