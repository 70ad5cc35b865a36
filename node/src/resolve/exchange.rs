//! The resolver's I/O: one query to one server, over UDP or TCP, with the
//! defences of RFC 5452 — a fresh socket (so a random source port) and a
//! random ID per query, and a reply accepted only from the address asked,
//! with that ID and that question. Anything else is counted and ignored,
//! and the wait goes on until the timeout: a spoofer must guess the port
//! and the ID before the real answer arrives.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use meshdns_resolver::{Outgoing, Reply, Transport};
use ring::rand::SecureRandom;

/// Counters of the exchanges, for `/metrics`.
#[derive(Default, Debug)]
pub struct ExchangeStats {
    /// Queries sent upstream.
    pub sent: AtomicU64,
    /// Replies refused: wrong source, ID or question, or not a response.
    pub mismatched: AtomicU64,
    /// Exchanges that timed out.
    pub timeouts: AtomicU64,
    /// Exchanges that failed at once (refused, unreachable, reset).
    pub failures: AtomicU64,
    /// Queries sent over TCP.
    pub tcp: AtomicU64,
}

/// Largest UDP reply read: we advertise 1,232 bytes, so anything past
/// this is cut, fails to parse, and counts as a failed exchange. Kept
/// small because thousands of exchanges may be waiting at once.
const MAX_REPLY: usize = 16_384;

/// Sends `o` and waits for its reply (TCP through `pool`).
pub async fn exchange(o: &Outgoing, stats: &ExchangeStats, pool: &super::tcp_pool::TcpPool) -> Reply {
    let id = random_id();
    let mut wire = o.wire.clone();
    if wire.len() < 12 {
        return Reply::Failed;
    }
    wire[..2].copy_from_slice(&id.to_be_bytes());
    stats.sent.fetch_add(1, Relaxed);
    let timeout = Duration::from_millis(o.timeout_ms.max(1));
    let started = Instant::now();
    let reply = match o.transport {
        Transport::Udp => tokio::time::timeout(timeout, udp(o.server, &wire, id, stats)).await,
        Transport::Tcp => {
            stats.tcp.fetch_add(1, Relaxed);
            tokio::time::timeout(timeout, pool.exchange(o.server, wire.clone())).await
        }
    };
    match reply {
        Ok(Some(wire)) => Reply::Message { wire, rtt_ms: started.elapsed().as_millis() as u64 },
        Ok(None) => {
            stats.failures.fetch_add(1, Relaxed);
            Reply::Failed
        }
        Err(_) => {
            stats.timeouts.fetch_add(1, Relaxed);
            Reply::Timeout
        }
    }
}

/// A random query ID from the operating system's generator.
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SystemRandom reads getrandom(2); it does not fail on Linux. Should it,
    // ID 0 with a random port is still better than no query.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u16::from_be_bytes(b)
}

/// Whether `reply` answers `query` (sent with `id`): a response, the same
/// ID, the same question (names compared without case, RFC 4343).
pub(crate) fn matches(query: &[u8], reply: &[u8], id: u16) -> bool {
    if reply.len() < 12 || reply[..2] != id.to_be_bytes() || reply[2] & 0x80 == 0 {
        return false;
    }
    // The question section: after the header to the end of QTYPE/QCLASS.
    let Some(end) = question_end(query) else { return false };
    // The name without regard to case (RFC 4343), QTYPE and QCLASS exactly.
    reply.len() >= end
        && reply[4..6] == [0, 1]
        && reply[12..end - 4].eq_ignore_ascii_case(&query[12..end - 4])
        && reply[end - 4..end] == query[end - 4..end]
}

/// End of the question section (QNAME, QTYPE, QCLASS) of our own query.
fn question_end(msg: &[u8]) -> Option<usize> {
    let name = crate::dns::wire::name::plain_name_len(msg, crate::dns::wire::HEADER_LEN).ok()?;
    Some(crate::dns::wire::HEADER_LEN + name + 4).filter(|&e| e <= msg.len())
}

async fn udp(server: SocketAddr, wire: &[u8], id: u16, stats: &ExchangeStats) -> Option<Vec<u8>> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = tokio::net::UdpSocket::bind(local).await.ok()?;
    sock.send_to(wire, server).await.ok()?;
    let mut buf = vec![0u8; MAX_REPLY];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP port unreachable surfaces here: the server is not there.
            Err(_) => return None,
        };
        if from == server && matches(wire, &buf[..n], id) {
            buf.truncate(n);
            return Some(buf);
        }
        stats.mismatched.fetch_add(1, Relaxed);
        tracing::debug!(%server, %from, "ignored a reply that does not match the query (source, ID or question)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01";

    fn reply(id: u16, name: &[u8]) -> Vec<u8> {
        let mut r = id.to_be_bytes().to_vec();
        r.extend_from_slice(b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00");
        r.extend_from_slice(name);
        r.extend_from_slice(b"\x00\x01\x00\x01");
        r
    }

    #[test]
    fn only_a_response_with_the_id_and_question_matches() {
        assert!(matches(Q, &reply(0x1234, b"\x03WWW\x07example\x00"), 0x1234));
        assert!(!matches(Q, &reply(0x1235, b"\x03www\x07example\x00"), 0x1234), "wrong ID");
        assert!(!matches(Q, &reply(0x1234, b"\x03xxx\x07example\x00"), 0x1234), "wrong question");
        let mut query_back = reply(0x1234, b"\x03www\x07example\x00");
        query_back[2] &= 0x7f;
        assert!(!matches(Q, &query_back, 0x1234), "not a response");
        assert!(!matches(Q, &[0x12, 0x34, 0x81], 0x1234), "short");
        let mut other_type = reply(0x1234, b"\x03www\x07example\x00");
        let n = other_type.len();
        other_type[n - 3] = 0x21; // QTYPE 0x0021 (SRV) where 0x0001 was asked: not a case difference
        assert!(!matches(Q, &other_type, 0x1234), "wrong QTYPE");
    }
}
