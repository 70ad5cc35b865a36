//! Any bytes as a gossip datagram applied to a pool member that knows a
//! peer: nothing panics, the member never takes state about its own id, its
//! versions stay in range, it can still publish and gossip, and a reply to
//! an address that has not proved itself is never bigger than the request.
//! The first byte picks the sender (a stranger, or the known peer).
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;

use chitchat::{Chitchat, ChitchatEnvelope, MAX_WIRE_VERSION, ProtocolVersion};
use libfuzzer_sys::fuzz_target;
use meshdns_mesh::gossip::GossipSettings;
use meshdns_mesh::gossip::pool_state::{chitchat_config, initial_keys};
use meshdns_mesh::test_facts;
use meshdns_mesh::tier::Pool;

fn member(id: &str, port: u16) -> Chitchat {
    let mut me = test_facts(id, "eu", "fra");
    me.gossip = SocketAddr::from(([127, 0, 0, 1], port));
    let cfg = chitchat_config("fuzz", &Pool::site("eu", "fra"), 0, &me, &GossipSettings::default(), me.gossip);
    let (_tx, rx) = tokio::sync::watch::channel(HashSet::new());
    Chitchat::with_chitchat_id_and_seeds(cfg, rx, initial_keys(&me))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let mut victim = member("v", 9);
    let mut peer = member("p", 8);
    let peer_addr = SocketAddr::from(([127, 0, 0, 1], 8));
    let victim_addr = SocketAddr::from(([127, 0, 0, 1], 9));
    // The victim knows the peer (and has proved its address).
    let syn = victim.create_syn_message_to(peer_addr);
    if let Some(syn_ack) = peer.process_message_from(victim_addr, 1 << 16, syn) {
        let _ = victim.process_message_from(peer_addr, 1 << 16, syn_ack);
    }
    let from = if pick % 2 == 0 { peer_addr } else { SocketAddr::from(([127, 0, 0, 2], 7)) };
    let Ok(envelope) = ChitchatEnvelope::decode(bytes) else { return };
    let proved = victim.is_proved(&from);
    if let Some(reply) = victim.process_message_from(from, bytes.len(), envelope.message) {
        let reply = ChitchatEnvelope { version: envelope.version, message: reply };
        if !proved && !victim.is_proved(&from) {
            assert!(reply.serialized_len() <= bytes.len(), "amplified reply");
        }
        let _ = reply.encode();
    }
    let me = victim.self_chitchat_id().clone();
    let state = victim.self_node_state();
    assert!(state.max_version() < MAX_WIRE_VERSION);
    assert_eq!(state.get("state"), Some("alive"));
    let before = state.max_version();
    state.set("load", before.to_string());
    assert!(victim.self_node_state().max_version() > before);
    assert!(victim.node_states().keys().all(|id| id == &me || id.node_id != me.node_id));
    let syn = ChitchatEnvelope { version: ProtocolVersion::V1, message: victim.create_syn_message() };
    let _ = syn.encode();
    victim.update_nodes_liveness();
});
