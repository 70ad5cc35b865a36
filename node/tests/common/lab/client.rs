//! A small DNS client for the lab: queries built with hickory-proto,
//! sent over std sockets with timeouts, TCP after a truncated UDP answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::Question;

/// Query flags the tests vary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// DNSSEC OK (RFC 3225).
    pub dnssec_ok: bool,
    /// Checking Disabled (RFC 4035 §3.2.2).
    pub cd: bool,
    /// Authentic Data in the query: "tell me AD" without DO (RFC 6840 §5.7).
    pub ad: bool,
}

/// A recursive query (RD=1) with EDNS (1232 octets) and the given flags.
pub fn query_msg(name: &str, rtype: RecordType, flags: Flags) -> Message {
    let mut m = Message::new();
    m.set_id(super::super::plain_query(".", RecordType::A).id());
    m.set_message_type(MessageType::Query);
    m.set_op_code(OpCode::Query);
    m.set_recursion_desired(true);
    m.set_checking_disabled(flags.cd);
    m.set_authentic_data(flags.ad);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(flags.dnssec_ok);
    m.set_edns(e);
    m
}

/// Asks `server` over UDP (two tries of `timeout`), and again over TCP
/// if the answer is truncated.
pub fn exchange(server: SocketAddr, q: &Message, timeout: Duration) -> Result<Message, String> {
    let m = exchange_udp(server, q, timeout)?;
    if m.truncated() { exchange_tcp(server, &q.to_vec().map_err(|e| e.to_string())?, timeout) } else { Ok(m) }
}

/// Asks `server` over UDP only (two tries of `timeout`); a truncated
/// answer is returned as it is.
pub fn exchange_udp(server: SocketAddr, q: &Message, timeout: Duration) -> Result<Message, String> {
    let bytes = q.to_vec().map_err(|e| e.to_string())?;
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    for _ in 0..2 {
        s.send_to(&bytes, server).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let Ok((n, _)) = s.recv_from(&mut buf) else { break };
            let Ok(m) = Message::from_vec(&buf[..n]) else { continue };
            if m.id() != q.id() {
                continue;
            }
            return Ok(m);
        }
    }
    Err(format!("no answer from {server} in 2 x {timeout:?}"))
}

/// One query over TCP (RFC 1035 §4.2.2 framing).
pub fn exchange_tcp(server: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<Message, String> {
    let mut s = TcpStream::connect_timeout(&server, timeout).map_err(|e| format!("TCP {server}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| format!("TCP {server}: {e}"))?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).map_err(|e| format!("TCP {server}: {e}"))?;
    Message::from_vec(&buf).map_err(|e| e.to_string())
}

/// Asks a resolver a lab question.
pub fn ask(resolver: SocketAddr, q: &Question, flags: Flags) -> Result<Message, String> {
    exchange(resolver, &query_msg(q.name, q.rtype, flags), Duration::from_secs(5))
}
