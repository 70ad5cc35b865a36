//! The gossip decoder and delta application on random, mutated and
//! hand-made datagrams: nothing panics, a node never takes state about its
//! own id from a peer, versions stay in range, decompression stays within
//! its budget, and a reply to an address that has not proved itself is
//! never bigger than the request. The fuzz targets (`fuzz/`) run the same
//! checks under libFuzzer; these run them in the normal test suite.
#![allow(clippy::unwrap_used)]

#[path = "common/craft.rs"]
mod craft;

use std::collections::HashSet;
use std::net::SocketAddr;

use chitchat::{Chitchat, ChitchatEnvelope, MAX_WIRE_VERSION};
use craft::Ops;
use meshdns_mesh::gossip::GossipSettings;
use meshdns_mesh::gossip::pool_state::{chitchat_config, initial_keys};
use meshdns_mesh::test_facts;
use meshdns_mesh::tier::Pool;
use proptest::prelude::*;

const CLUSTER: &str = "prop";

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + i))
}

fn instance(id: &str, i: u16) -> Chitchat {
    let mut me = test_facts(id, "eu", "fra");
    me.gossip = addr(i);
    let pool = Pool::site("eu", "fra");
    let cfg = chitchat_config(CLUSTER, &pool, 0, &me, &GossipSettings::default(), addr(i));
    let (_tx, rx) = tokio::sync::watch::channel(HashSet::new());
    Chitchat::with_chitchat_id_and_seeds(cfg, rx, initial_keys(&me))
}

fn cluster_id() -> String {
    Pool::site("eu", "fra").cluster_id(CLUSTER)
}

/// Runs one full Syn / SynAck / Ack exchange from `a` to `b` over encoded
/// bytes, and returns the three datagrams.
fn exchange(a: &mut Chitchat, a_addr: SocketAddr, b: &mut Chitchat, b_addr: SocketAddr) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let syn = ChitchatEnvelope { version: chitchat::ProtocolVersion::V1, message: a.create_syn_message_to(b_addr) };
    let syn_bytes = syn.encode();
    out.push(syn_bytes.clone());
    let got = ChitchatEnvelope::decode(&syn_bytes).unwrap();
    let Some(syn_ack) = b.process_message_from(a_addr, syn_bytes.len(), got.message) else { return out };
    let syn_ack_bytes = ChitchatEnvelope { version: got.version, message: syn_ack }.encode();
    out.push(syn_ack_bytes.clone());
    let got = ChitchatEnvelope::decode(&syn_ack_bytes).unwrap();
    if let Some(ack) = a.process_message_from(b_addr, syn_ack_bytes.len(), got.message) {
        let ack_bytes = ChitchatEnvelope { version: got.version, message: ack }.encode();
        out.push(ack_bytes.clone());
        let got = ChitchatEnvelope::decode(&ack_bytes).unwrap();
        let _ = b.process_message_from(a_addr, ack_bytes.len(), got.message);
    }
    out
}

/// Real datagrams of a three-member pool forming.
fn captured() -> Vec<Vec<u8>> {
    let mut a = instance("a", 1);
    let mut b = instance("b", 2);
    let mut c = instance("c", 3);
    let mut out = Vec::new();
    for _ in 0..3 {
        out.extend(exchange(&mut a, addr(1), &mut b, addr(2)));
        out.extend(exchange(&mut b, addr(2), &mut c, addr(3)));
        out.extend(exchange(&mut c, addr(3), &mut a, addr(1)));
        a.self_node_state().set("load", "7");
    }
    out
}

/// Feeds `bytes` from `from` to `victim` as its server would, and checks
/// the reply and the victim's own state.
fn feed(victim: &mut Chitchat, from: SocketAddr, bytes: &[u8]) {
    let Ok(env) = ChitchatEnvelope::decode(bytes) else { return };
    let proved = victim.is_proved(&from);
    if let Some(reply) = victim.process_message_from(from, bytes.len(), env.message) {
        let reply = ChitchatEnvelope { version: env.version, message: reply };
        if !proved && !victim.is_proved(&from) {
            assert!(
                reply.serialized_len() <= bytes.len(),
                "a reply of {} bytes to an unproved {}-byte request",
                reply.serialized_len(),
                bytes.len()
            );
        }
        let _ = reply.encode();
    }
    assert_valid(victim);
}

/// The victim's own state is its own, in range, and it can still gossip
/// and publish.
fn assert_valid(victim: &mut Chitchat) {
    let me = victim.self_chitchat_id().clone();
    let state = victim.self_node_state();
    assert!(state.max_version() < MAX_WIRE_VERSION, "own max version {}", state.max_version());
    assert!(u64::from(state.heartbeat()) < MAX_WIRE_VERSION);
    assert_eq!(state.get("state"), Some("alive"), "a peer changed this node's own state key");
    assert_eq!(state.get("region"), Some("eu"));
    let before = state.max_version();
    state.set("load", format!("{}", before + 1));
    assert!(victim.self_node_state().max_version() > before, "own updates still take a new version");
    for id in victim.node_states().keys() {
        assert!(id == &me || id.node_id != me.node_id, "a second state for this node's own id: {id:?}");
    }
    for s in victim.node_states().values() {
        assert!(s.max_version() <= MAX_WIRE_VERSION.saturating_add(1));
    }
    let syn = victim.create_syn_message();
    let _ = ChitchatEnvelope { version: chitchat::ProtocolVersion::V1, message: syn }.encode();
    victim.update_nodes_liveness();
}

fn victim_with_peers() -> (Chitchat, Vec<Vec<u8>>) {
    let mut v = instance("v", 9);
    let mut p = instance("p", 8);
    let mut frames = captured();
    for _ in 0..2 {
        frames.extend(exchange(&mut p, addr(8), &mut v, addr(9)));
    }
    (v, frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_the_decoder_or_the_node(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (mut v, _) = victim_with_peers();
        feed(&mut v, addr(7), &bytes);
        // With a valid header too, so the body parsers see the bytes.
        for kind in 0u8..4 {
            let mut framed = craft::MAGIC.to_le_bytes().to_vec();
            framed.extend([kind % 2, kind]);
            framed.extend(&bytes);
            feed(&mut v, addr(7), &framed);
        }
    }

    #[test]
    fn mutated_real_datagrams_never_panic_or_corrupt_the_node(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let (mut v, frames) = victim_with_peers();
        let mut bytes = pick.get(&frames).clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        // From a stranger and from the peer the victim has talked to.
        feed(&mut v, addr(7), &bytes);
        feed(&mut v, addr(8), &bytes);
    }

    #[test]
    fn forged_versions_for_the_node_itself_are_never_taken(version in any::<u64>(), key in "[a-z:]{1,8}") {
        let (mut v, _) = victim_with_peers();
        let me = v.self_chitchat_id().clone();
        let ops = Ops::default()
            .node(&me.node_id, me.generation_id, me.gossip_advertise_addr, 0, 0)
            .kv(&key, "forged", version.max(1), 0)
            .kv("state", "leaving", version.saturating_add(1).max(2), 0)
            .max_version(version.saturating_add(2).max(3));
        feed(&mut v, addr(8), &craft::ack(&ops));
        prop_assert_eq!(v.self_node_state().get("state"), Some("alive"));
    }
}

/// The attacks found against a live cluster, one by one.
#[test]
fn hand_made_attacks_leave_the_node_whole() {
    let (mut v, _) = victim_with_peers();
    let me = v.self_chitchat_id().clone();
    let peer_gen = 1_000u64; // chitchat_config: generation 1 x 1000 + instance 0

    // An Ack that sets a member's max version to u64::MAX: refused, and for
    // this node's own id, never applied.
    for node in ["p", &*me.node_id] {
        let ops =
            Ops::default().node(node, peer_gen, addr(if node == "p" { 8 } else { 9 }), 0, 0).max_version(u64::MAX);
        feed(&mut v, addr(8), &craft::ack(&ops));
    }
    // A max version below the delta's own key-values (tripped state.rs).
    let ops = Ops::default().node("p", peer_gen, addr(8), 0, 0).kv("k", "v", 500, 0).max_version(3);
    feed(&mut v, addr(8), &craft::ack(&ops));
    // A value too long for any datagram (tripped serialize.rs's u16 length).
    let long = "x".repeat(u16::MAX as usize - 10);
    let ops = Ops::default().node("p", peer_gen, addr(8), 0, 0).kv(&long[..100], &long, 600, 0);
    feed(&mut v, addr(8), &craft::ack(&ops));
    // Forged leave and heartbeat under the node's own id, and a newer
    // incarnation of it.
    let ops = Ops::default()
        .node(&me.node_id, me.generation_id, me.gossip_advertise_addr, 0, 0)
        .kv("state", "leaving", 10_000, 0);
    feed(&mut v, addr(8), &craft::ack(&ops));
    let before = v.identity_conflicts();
    let syn =
        craft::syn(&cluster_id(), &[(&me.node_id, me.generation_id, me.gossip_advertise_addr, 1 << 40, 0, 1 << 40)]);
    feed(&mut v, addr(8), &syn);
    assert!(v.identity_conflicts() > before, "a forged heartbeat for the node itself is counted as a conflict");
    let ops = Ops::default()
        .node(&me.node_id, me.generation_id + 1, me.gossip_advertise_addr, 0, 0)
        .kv("state", "leaving", 1, 0);
    feed(&mut v, addr(8), &craft::ack(&ops));
    assert_valid(&mut v);

    // A digest listing more members than any pool has.
    let many: Vec<(String, SocketAddr)> = (0..9_000u32).map(|i| (format!("n{i}"), addr(1))).collect();
    let entries: Vec<craft::Entry<'_>> = many.iter().map(|(n, a)| (n.as_str(), 1, *a, 1, 0, 1)).collect();
    let big = craft::syn(&cluster_id(), &entries);
    assert!(ChitchatEnvelope::decode(&big).is_err());

    // Compressed blocks that inflate past the budget: refused, quickly.
    let bomb = craft::ack_raw(&craft::zstd_bomb(64));
    assert!(bomb.len() < 8 * 1024, "the bomb is small: {} bytes", bomb.len());
    assert!(ChitchatEnvelope::decode(&bomb).is_err(), "64 x 64 KiB is over the 1 MiB budget");
    let bomb = craft::syn_v1_raw(&cluster_id(), &craft::zstd_bomb(64));
    assert!(ChitchatEnvelope::decode(&bomb).is_err());

    // An unsolicited 7-byte SynAck gets no reply at all.
    let syn_ack = craft::syn_ack(&[], &Ops::default());
    let env = ChitchatEnvelope::decode(&syn_ack).unwrap();
    assert!(v.process_message_from(addr(6), syn_ack.len(), env.message).is_none());
    // A small Syn from a stranger gets a reply no bigger than itself.
    let syn = craft::syn(&cluster_id(), &[]);
    let env = ChitchatEnvelope::decode(&syn).unwrap();
    let reply = v.process_message_from(addr(6), syn.len(), env.message).unwrap();
    let reply_len = ChitchatEnvelope { version: env.version, message: reply }.serialized_len();
    assert!(reply_len <= syn.len(), "{reply_len} > {}", syn.len());
    assert_valid(&mut v);
}

/// The amplification rule does not stop a pool from forming: three fresh
/// instances that only ever talk through `process_message_from` learn each
/// other's state within a few rounds.
#[test]
fn a_pool_still_forms_with_address_proof() {
    let mut a = instance("a", 1);
    let mut b = instance("b", 2);
    let mut c = instance("c", 3);
    for _ in 0..4 {
        exchange(&mut a, addr(1), &mut b, addr(2));
        exchange(&mut b, addr(2), &mut c, addr(3));
        exchange(&mut c, addr(3), &mut a, addr(1));
        exchange(&mut b, addr(2), &mut a, addr(1));
        exchange(&mut c, addr(3), &mut b, addr(2));
        exchange(&mut a, addr(1), &mut c, addr(3));
    }
    for x in [&a, &b, &c] {
        let known: Vec<&str> =
            x.node_states().iter().filter(|(_, s)| s.get("region").is_some()).map(|(id, _)| &*id.node_id).collect();
        assert_eq!(known, ["a", "b", "c"], "every member's facts reached every member");
    }
}

/// A member announced at an address nobody can send to (port 0: every
/// round's send failed with EINVAL, on every node the claim spread to;
/// multicast; broadcast) is a decoding error, in a delta and in a digest.
#[test]
fn members_at_unusable_gossip_addresses_are_refused() {
    let usable: SocketAddr = "127.0.0.1:7280".parse().unwrap();
    let ghost = |at: SocketAddr| {
        let ack = craft::ack(&Ops::default().node("ghost", 1, at, 0, 0).kv("k", "v", 1, 0).max_version(1));
        let syn = craft::syn(&cluster_id(), &[("ghost", 1, at, 1, 0, 1)]);
        (ack, syn)
    };
    let (ack, syn) = ghost(usable);
    assert!(ChitchatEnvelope::decode(&ack).is_ok() && ChitchatEnvelope::decode(&syn).is_ok(), "the control decodes");
    for bad in ["127.0.0.1:0", "[::1]:0", "224.0.0.1:7280", "255.255.255.255:7280", "[ff02::1]:7280"] {
        let (ack, syn) = ghost(bad.parse().unwrap());
        assert!(ChitchatEnvelope::decode(&ack).is_err(), "a delta announcing a member at {bad} was accepted");
        assert!(ChitchatEnvelope::decode(&syn).is_err(), "a digest listing a member at {bad} was accepted");
    }
}
