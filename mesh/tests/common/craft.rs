//! Hand-made chitchat datagrams, byte by byte, as an attacker writes them
//! (the encoder would refuse most of them). Shared by the mesh property
//! tests and the node's gossip robustness test.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;

/// chitchat's magic number (little endian on the wire).
pub const MAGIC: u16 = 45_139;

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn push_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.ip().octets());
        }
    }
    out.extend_from_slice(&a.port().to_le_bytes());
}

/// A chitchat id: node id, generation, gossip address.
pub fn id(out: &mut Vec<u8>, node: &str, generation: u64, addr: SocketAddr) {
    push_str(out, node);
    out.extend_from_slice(&generation.to_le_bytes());
    push_addr(out, addr);
}

/// Delta operations, encoded one after the other.
#[derive(Default, Clone)]
pub struct Ops(pub Vec<u8>);

impl Ops {
    pub fn node(mut self, node: &str, generation: u64, addr: SocketAddr, last_gc: u64, from: u64) -> Self {
        self.0.push(0);
        id(&mut self.0, node, generation, addr);
        self.0.extend_from_slice(&last_gc.to_le_bytes());
        self.0.extend_from_slice(&from.to_le_bytes());
        self
    }

    /// A key-value; `status` 0 set, 1 deleted, 2 deleted after a TTL.
    pub fn kv(mut self, key: &str, value: &str, version: u64, status: u8) -> Self {
        self.0.push(1);
        push_str(&mut self.0, key);
        push_str(&mut self.0, value);
        self.0.extend_from_slice(&version.to_le_bytes());
        self.0.push(status);
        self
    }

    pub fn max_version(mut self, version: u64) -> Self {
        self.0.push(2);
        self.0.extend_from_slice(&version.to_le_bytes());
        self
    }
}

/// A block stream of uncompressed blocks holding `payload`.
pub fn stream(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in payload.chunks(u16::MAX as usize) {
        out.push(2);
        out.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0);
    out
}

/// A block stream of `blocks` zstd blocks, each inflating to 64 KiB of zeros.
pub fn zstd_bomb(blocks: usize) -> Vec<u8> {
    let zeros = vec![0u8; u16::MAX as usize];
    let frame = zstd::bulk::compress(&zeros, 19).unwrap_or_default();
    let mut out = Vec::new();
    for _ in 0..blocks {
        out.push(1);
        out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out.push(0);
    out
}

fn header(kind: u8, version: u8) -> Vec<u8> {
    let mut out = MAGIC.to_le_bytes().to_vec();
    out.push(version);
    out.push(kind);
    out
}

/// One digest entry: (node, generation, addr, heartbeat, last gc, max version).
pub type Entry<'a> = (&'a str, u64, SocketAddr, u64, u64, u64);

fn digest_v0(out: &mut Vec<u8>, entries: &[Entry<'_>]) {
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (node, generation, addr, heartbeat, gc, max) in entries {
        id(out, node, *generation, *addr);
        out.extend_from_slice(&heartbeat.to_le_bytes());
        out.extend_from_slice(&gc.to_le_bytes());
        out.extend_from_slice(&max.to_le_bytes());
    }
}

/// A V0 Syn.
pub fn syn(cluster: &str, entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = header(0, 0);
    digest_v0(&mut out, entries);
    push_str(&mut out, cluster);
    out
}

/// A V1 Syn whose digest is the raw block stream `digest_stream`.
pub fn syn_v1_raw(cluster: &str, digest_stream: &[u8]) -> Vec<u8> {
    let mut out = header(0, 1);
    out.extend_from_slice(digest_stream);
    push_str(&mut out, cluster);
    out
}

/// A V0 SynAck.
pub fn syn_ack(entries: &[Entry<'_>], ops: &Ops) -> Vec<u8> {
    let mut out = header(1, 0);
    digest_v0(&mut out, entries);
    out.extend_from_slice(&stream(&ops.0));
    out
}

/// An Ack.
pub fn ack(ops: &Ops) -> Vec<u8> {
    let mut out = header(2, 0);
    out.extend_from_slice(&stream(&ops.0));
    out
}

/// An Ack whose delta is the raw block stream `delta_stream`.
pub fn ack_raw(delta_stream: &[u8]) -> Vec<u8> {
    let mut out = header(2, 0);
    out.extend_from_slice(delta_stream);
    out
}
