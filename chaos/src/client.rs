//! Talking to a node the way operators and resolvers do: DNS over UDP and
//! TCP, RFC 2136 UPDATE through BIND's `nsupdate`, and the gRPC admin API.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use meshdns_proto::cluster::MembersRequest;
use meshdns_proto::cluster::cluster_client::ClusterClient;
use meshdns_proto::zones::zones_client::ZonesClient;
use meshdns_proto::zones::{CreateRequest, ListRequest, SetRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::cluster::{ADMIN_TOKEN, TSIG_KEY};
use crate::history::{Answer, ZONE};

/// How long one DNS query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one write or admin call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn query_bytes(name: &str, rtype: RecordType) -> Result<(u16, Vec<u8>), String> {
    let name = Name::from_ascii(name).map_err(|e| e.to_string())?;
    let id = rand::random::<u16>();
    let mut m = Message::new();
    m.set_id(id).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(false);
    m.add_query(Query::query(name, rtype));
    Ok((id, m.to_vec().map_err(|e| e.to_string())?))
}

/// Asks `server` for `name`/`rtype` over UDP or TCP; the parsed answer.
pub async fn query(server: SocketAddr, name: &str, rtype: RecordType, tcp: bool) -> Result<Message, String> {
    let (id, bytes) = query_bytes(name, rtype)?;
    let reply = if tcp { query_tcp(server, &bytes).await? } else { query_udp(server, &bytes, id).await? };
    let m = Message::from_vec(&reply).map_err(|e| format!("unreadable reply: {e}"))?;
    if m.id() != id {
        return Err("reply with another id".into());
    }
    Ok(m)
}

async fn query_udp(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.map_err(|e| e.to_string())?;
    sock.send_to(bytes, server).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        // A late reply to an earlier query on a reused port is skipped.
        if from == server && n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn query_tcp(server: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(server).await?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        s.write_all(&framed).await?;
        let len = s.read_u16().await? as usize;
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    timeout(QUERY_TIMEOUT, io).await.map_err(|_| "timeout".to_owned())?.map_err(|e| e.to_string())
}

/// The A records of `label` (relative to [`ZONE`]) on `server`.
pub async fn lookup(server: SocketAddr, label: &str, tcp: bool) -> Answer {
    match query(server, &format!("{label}.{ZONE}"), RecordType::A, tcp).await {
        Err(e) => Answer::Error(e),
        Ok(m) => match m.response_code() {
            ResponseCode::NXDomain => Answer::NxDomain,
            ResponseCode::NoError => {
                let mut v: Vec<Ipv4Addr> = m
                    .answers()
                    .iter()
                    .filter_map(|r| if let RData::A(a) = r.data() { Some(a.0) } else { None })
                    .collect();
                v.sort();
                Answer::Values(v)
            }
            other => Answer::Error(format!("rcode {other}")),
        },
    }
}

/// The zone's SOA serial on `server`, if it answers.
pub async fn serial(server: SocketAddr) -> Option<u32> {
    let m = query(server, ZONE, RecordType::SOA, false).await.ok()?;
    m.answers().iter().find_map(|r| if let RData::SOA(s) = r.data() { Some(s.serial()) } else { None })
}

/// `call`, given up after [`CALL_TIMEOUT`].
async fn bounded<T>(call: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    timeout(CALL_TIMEOUT, call).await.map_err(|_| "timeout".to_owned())?
}

/// `msg` with the nodes' admin token.
fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = format!("Bearer {ADMIN_TOKEN}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// A gRPC error as the workload records it.
fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Sets `label` A `value` through gRPC on `url`.
pub async fn set_grpc(url: &str, label: &str, value: Ipv4Addr) -> Result<(), String> {
    let call = async {
        let mut c = ZonesClient::connect(url.to_owned()).await.map_err(|e| format!("connect: {e}"))?;
        c.set(authed(SetRequest {
            zone: ZONE.into(),
            name: label.into(),
            rtype: "A".into(),
            ttl: 60,
            rdata: vec![value.to_string()],
            wait: None,
        }))
        .await
        .map_err(status)?;
        Ok(())
    };
    bounded(call).await
}

/// Replaces `label`'s A records with `value` by RFC 2136 UPDATE, signed
/// with [`TSIG_KEY`], through BIND's `nsupdate` (run in the harness's own
/// namespace, which routes to every node).
pub async fn set_update(server: Ipv4Addr, label: &str, value: Ipv4Addr) -> Result<(), String> {
    let script = format!(
        "server {server} 53\nzone {ZONE}\nupdate delete {label}.{ZONE} A\nupdate add {label}.{ZONE} 60 A {value}\nsend\n"
    );
    let mut child = tokio::process::Command::new("nsupdate")
        .args(["-y", TSIG_KEY, "-t", "4"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run nsupdate (bind9-dnsutils): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(|e| e.to_string())?;
    }
    let out = timeout(CALL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nsupdate: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Creates the workload's zone on `url`.
pub async fn create_zone(url: &str) -> Result<(), String> {
    let call = async {
        let mut c = ZonesClient::connect(url.to_owned()).await.map_err(|e| format!("connect: {e}"))?;
        c.create(authed(CreateRequest { zone: ZONE.into(), soa_ttl: 60 })).await.map_err(status)?;
        Ok(())
    };
    bounded(call).await
}

/// The node's digest of the workload's zone (`zone list`).
pub async fn zone_digest(url: &str) -> Result<Option<String>, String> {
    let call = async {
        let mut c = ZonesClient::connect(url.to_owned()).await.map_err(|e| format!("connect: {e}"))?;
        let r = c.list(authed(ListRequest {})).await.map_err(status)?;
        Ok(r.into_inner().zones.into_iter().find(|z| z.name == ZONE).map(|z| z.digest))
    };
    bounded(call).await
}

/// The members the node holds alive, sorted.
pub async fn alive_members(url: &str) -> Result<Vec<String>, String> {
    let call = async {
        let mut c = ClusterClient::connect(url.to_owned()).await.map_err(|e| format!("connect: {e}"))?;
        let r = c.members(authed(MembersRequest {})).await.map_err(status)?;
        let mut v: Vec<String> =
            r.into_inner().members.into_iter().filter(|m| m.liveness == "alive").map(|m| m.id).collect();
        v.sort();
        Ok(v)
    };
    bounded(call).await
}

/// Whether the node says it is ready (`GET /readyz` → 200).
pub async fn ready(http: SocketAddr) -> bool {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(http).await?;
        s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200"))
    };
    matches!(timeout(Duration::from_secs(1), io).await, Ok(Ok(true)))
}
