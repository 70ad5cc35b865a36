//! Response rate limiting and access lists on the real binary, with real
//! floods: dnsperf sends from 127.0.0.2 (`-a`), a legitimate client from
//! 127.0.0.3, and dig from the flooding address (`-b`).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{Server, plain_query, read_tcp, wait_for, write_tcp};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

const FLOODER: &str = "127.0.0.2";
const CLIENT: &str = "127.0.0.3";

/// One figure from dnsperf's summary, e.g. `Queries completed:`.
fn dnsperf_figure(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in dnsperf output:\n{out}"))
}

/// Starts dnsperf from `source` for `seconds` at `qps` over `names`
/// (one "name type" per line), bounded in count and time.
/// The query file lives as long as the returned path.
fn dnsperf(
    server: SocketAddr,
    source: &str,
    names: &[&str],
    qps: u32,
    seconds: u32,
) -> (std::process::Child, tempfile::TempPath) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), names.join("\n") + "\n").unwrap();
    let path = file.into_temp_path();
    let child = Command::new("dnsperf")
        .args(["-s", &server.ip().to_string(), "-p", &server.port().to_string(), "-a", source])
        .args(["-d", path.to_str().unwrap(), "-l", &seconds.to_string(), "-Q", &qps.to_string()])
        .args(["-n", &(qps * seconds).to_string(), "-t", "1", "-c", "1", "-q", &qps.min(60_000).to_string()])
        .args(["-O", "suppress=timeout,unexpected"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dnsperf is needed (apt-get install dnsperf)");
    (child, path)
}

fn finish((child, _queries): (std::process::Child, tempfile::TempPath)) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dnsperf failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample `line_start` (name and labels) in /metrics.
fn metric(s: &Server, line_start: &str) -> f64 {
    let (_, body) = s.http_get("/metrics").expect("/metrics unreachable");
    body.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
}

/// Sends `msg` over UDP from `source`, waits up to 2 s for the reply.
fn udp_from(source: &str, server: SocketAddr, msg: &Message) -> Option<Message> {
    let s = UdpSocket::bind((source, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(&msg.to_vec().unwrap(), server).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).unwrap())
}

/// A TCP connection to `server` from `source`.
fn tcp_from(source: &str, server: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect_timeout(&server.into(), Duration::from_secs(2)).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn tcp_query_from(source: &str, server: SocketAddr, msg: &Message) -> Message {
    let mut s = tcp_from(source, server);
    write_tcp(&mut s, &msg.to_vec().unwrap());
    Message::from_vec(&read_tcp(&mut s).expect("no TCP reply")).unwrap()
}

#[test]
fn a_flood_is_limited_while_another_client_on_the_same_prefix_is_fully_answered() {
    let s = Server::builder().args(&["--rrl", "50"]).env("MESHDNS_RRL_SLIP", "0").start();
    let dropped_before = metric(&s, "meshdns_rrl_responses_total{class=\"answer\",action=\"dropped\"}");
    assert_eq!(dropped_before, 0.0);
    // The flood: one name, 3000 q/s for 2 s. The client: 5 other names at
    // 100 q/s in all (20 per name per second, under the limit of 50).
    let flood = dnsperf(s.dns, FLOODER, &["www.example.com A"], 3000, 2);
    let client = dnsperf(
        s.dns,
        CLIENT,
        &["mail.example.com A", "ns1.example.com A", "ns2.example.com A", "sip.example.com A", "example.com MX"],
        100,
        2,
    );
    let (flood, client) = (finish(flood), finish(client));
    let sent = dnsperf_figure(&flood, "Queries sent:");
    let answered = dnsperf_figure(&flood, "Queries completed:");
    assert!(sent >= 1000, "the flood sent only {sent} queries:\n{flood}");
    // 50 per second over 2-3 seconds; far below what was sent.
    assert!(answered * 4 < sent, "the flood got {answered} of {sent} answered:\n{flood}");
    assert_eq!(dnsperf_figure(&client, "Queries lost:"), 0, "the legitimate client lost queries:\n{client}");
    assert!(dnsperf_figure(&client, "Queries completed:") >= 100, "{client}");
    let dropped = metric(&s, "meshdns_rrl_responses_total{class=\"answer\",action=\"dropped\"}");
    assert!(dropped as u64 + answered >= sent - 5, "dropped {dropped} + answered {answered} vs sent {sent}");
}

#[test]
fn slipped_answers_come_truncated_to_dig_from_the_flooding_address() {
    let s = Server::builder().args(&["--rrl", "1"]).env("MESHDNS_RRL_SLIP", "1").start();
    let port = s.dns.port().to_string();
    // Within one second, the second and later answers are limited, and with
    // slip 1 every limited one comes back truncated (TC=1). A few tries
    // in case the first two land on either side of a second boundary.
    let saw_tc = (0..50).any(|_| {
        let out = Command::new("dig")
            .args(["-b", FLOODER, "@127.0.0.1", "-p", &port, "www.example.com", "A"])
            .args(["+ignore", "+tries=1", "+time=2", "+noedns"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().any(|l| l.starts_with(";; flags:") && l.split(';').nth(2).is_some_and(|f| f.contains(" tc")))
    });
    assert!(saw_tc, "no truncated answer from the limiter");
    assert!(metric(&s, "meshdns_rrl_responses_total{class=\"answer\",action=\"slipped\"}") >= 1.0);
    // TCP is not limited: the same name from the same address is answered.
    let m = tcp_query_from(FLOODER, s.dns, &plain_query("www.example.com.", RecordType::A));
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(!m.answers().is_empty());
}

/// Sends `n` queries one after the other from `source`; returns how many
/// were answered in full (not truncated).
fn answered_in_full(source: &str, server: SocketAddr, n: usize) -> usize {
    let q = plain_query("www.example.com.", RecordType::A);
    (0..n).filter(|_| udp_from(source, server, &q).is_some_and(|m| !m.truncated() && !m.answers().is_empty())).count()
}

#[test]
fn exempt_sources_and_log_only_mode_are_never_limited() {
    let s = Server::builder().args(&["--rrl", "2"]).env("MESHDNS_RRL_EXEMPT", "127.0.0.2/32").start();
    assert_eq!(answered_in_full(FLOODER, s.dns, 60), 60, "the exempt source was limited");
    // The neighbour is not exempt: limited within the same second.
    let q = plain_query("www.example.com.", RecordType::A);
    let limited = (0..60).any(|_| udp_from(CLIENT, s.dns, &q).is_none_or(|m| m.truncated()));
    assert!(limited, "the neighbour of the exempt source was never limited");
    drop(s);

    let s = Server::builder().args(&["--rrl", "2"]).env("MESHDNS_RRL_LOG_ONLY", "true").start();
    assert_eq!(answered_in_full(FLOODER, s.dns, 60), 60, "log-only mode limited a response");
    assert!(metric(&s, "meshdns_rrl_responses_total{class=\"answer\",action=\"logged\"}") >= 1.0);
    assert_eq!(metric(&s, "meshdns_rrl_responses_total{class=\"answer\",action=\"dropped\"}"), 0.0);
    assert!(s.log_text().contains("response rate limit reached"), "nothing logged");
}

#[test]
fn the_per_client_query_limit_drops_what_is_over() {
    let s = Server::builder().env("MESHDNS_RRL_CLIENT_QUERIES_PER_SECOND", "5").start();
    let flood = finish(dnsperf(s.dns, FLOODER, &["www.example.com A"], 1000, 1));
    let (sent, answered) = (dnsperf_figure(&flood, "Queries sent:"), dnsperf_figure(&flood, "Queries completed:"));
    assert!(answered * 4 < sent, "{answered} of {sent} answered:\n{flood}");
    assert!(metric(&s, "meshdns_client_queries_limited_total") >= (sent - answered) as f64 - 5.0);
    // Another address is its own client.
    assert!(udp_from(CLIENT, s.dns, &plain_query("www.example.com.", RecordType::A)).is_some());
}

fn opcode_message(op: OpCode, zone: &str) -> Message {
    let mut m = plain_query(zone, RecordType::SOA);
    m.set_op_code(op);
    m.set_message_type(MessageType::Query);
    m
}

#[test]
fn access_lists_refuse_per_kind_and_deny_is_checked_before_allow() {
    let s = Server::builder()
        .env("MESHDNS_ACL_QUERY_ALLOW", "127.0.0.0/24")
        .env("MESHDNS_ACL_QUERY_DENY", "127.0.0.2/32")
        .env("MESHDNS_ACL_TRANSFER_DENY", "127.0.0.3/32")
        .env("MESHDNS_ACL_NOTIFY_DENY", "127.0.0.2/32")
        .env("MESHDNS_ACL_UPDATE_DENY", "127.0.0.2/32")
        .env("MESHDNS_ACL_ADMIN_ALLOW", "127.0.0.1/32")
        .start();
    let q = plain_query("www.example.com.", RecordType::A);
    let rcode = |src: &str| udp_from(src, s.dns, &q).expect("no reply").response_code();
    // Allowed; denied although in the allow list (deny first); outside the allow list.
    assert_eq!(rcode("127.0.0.1"), ResponseCode::NoError);
    assert_eq!(rcode(FLOODER), ResponseCode::Refused);
    assert_eq!(rcode("127.0.1.1"), ResponseCode::Refused);
    assert_eq!(tcp_query_from(FLOODER, s.dns, &q).response_code(), ResponseCode::Refused);
    assert_eq!(tcp_query_from(CLIENT, s.dns, &q).response_code(), ResponseCode::NoError);

    // Transfer: the query list does not apply, the transfer list does.
    let axfr = plain_query("example.com.", RecordType::AXFR);
    assert_eq!(tcp_query_from(CLIENT, s.dns, &axfr).response_code(), ResponseCode::Refused);
    assert_eq!(tcp_query_from("127.0.0.1", s.dns, &axfr).response_code(), ResponseCode::NoError);
    let dig = Command::new("dig")
        .args(["-b", CLIENT, "@127.0.0.1", "-p", &s.dns.port().to_string(), "example.com", "AXFR", "+tries=1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&dig.stdout).contains("Transfer failed"), "dig AXFR from a denied source");

    // NOTIFY: refused for the denied source; others get NOTIMP (not a secondary).
    let notify = opcode_message(OpCode::Notify, "example.com.");
    assert_eq!(udp_from(FLOODER, s.dns, &notify).unwrap().response_code(), ResponseCode::Refused);
    assert_eq!(udp_from("127.0.0.1", s.dns, &notify).unwrap().response_code(), ResponseCode::NotImp);

    // UPDATE: refused by the list before any TSIG is looked at.
    let before = metric(&s, "meshdns_acl_refused_total{kind=\"update\"}");
    let update = opcode_message(OpCode::Update, "example.com.");
    assert_eq!(udp_from(FLOODER, s.dns, &update).unwrap().response_code(), ResponseCode::Refused);
    assert_eq!(metric(&s, "meshdns_acl_refused_total{kind=\"update\"}"), before + 1.0);
    assert!(metric(&s, "meshdns_acl_refused_total{kind=\"query\"}") >= 3.0);
    assert!(metric(&s, "meshdns_acl_refused_total{kind=\"transfer\"}") >= 1.0);

    // Admin over HTTP: 403 from outside the list, 200 from inside.
    let http_from = |src: &str| {
        let mut c = tcp_from(src, s.http);
        write!(c, "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut resp = String::new();
        let _ = c.read_to_string(&mut resp);
        resp
    };
    assert!(http_from(CLIENT).starts_with("HTTP/1.0 403"), "{}", http_from(CLIENT));
    assert!(http_from("127.0.0.1").starts_with("HTTP/1.0 200"));
    // Admin over gRPC: a connection from outside is closed before any
    // HTTP/2 is spoken; from inside the server answers the preface.
    let h2_reply = |src: &str| {
        let mut c = tcp_from(src, s.grpc);
        let _ = c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let mut buf = [0u8; 9];
        c.read(&mut buf).unwrap_or(0)
    };
    assert_eq!(h2_reply(CLIENT), 0, "gRPC served a denied source");
    assert!(h2_reply("127.0.0.1") > 0, "gRPC refused an allowed source");
    let (ok, out, err) = s.cluster(&["status"]);
    assert!(ok, "cluster status from an allowed source: {out}{err}");
    wait_for("the admin refusal to be counted", Duration::from_secs(5), || {
        (metric(&s, "meshdns_acl_refused_total{kind=\"admin\"}") >= 2.0).then_some(())
    });
}

#[test]
fn transfer_allow_still_works_and_folds_into_the_transfer_list() {
    let s = Server::builder().env("MESHDNS_TRANSFER_ALLOW", "127.0.0.3/32").start();
    let axfr = plain_query("example.com.", RecordType::AXFR);
    assert_eq!(tcp_query_from(CLIENT, s.dns, &axfr).response_code(), ResponseCode::NoError);
    assert_eq!(tcp_query_from("127.0.0.1", s.dns, &axfr).response_code(), ResponseCode::Refused);
}

#[test]
fn the_batched_udp_path_applies_access_lists_and_the_rate_limit() {
    let s = Server::builder()
        .env("MESHDNS_SERVER_UDP_BATCH", "true")
        .env("MESHDNS_ACL_QUERY_DENY", "127.0.0.2/32")
        .args(&["--rrl", "1"])
        .env("MESHDNS_RRL_SLIP", "1")
        .start();
    let q = plain_query("www.example.com.", RecordType::A);
    assert_eq!(udp_from(FLOODER, s.dns, &q).expect("no reply").response_code(), ResponseCode::Refused);
    // From an allowed source, the answers past the first in a second come truncated.
    let saw_tc = (0..50).any(|_| udp_from(CLIENT, s.dns, &q).is_some_and(|m| m.truncated()));
    assert!(saw_tc, "no truncated answer from the batched path");
    assert!(metric(&s, "meshdns_rrl_responses_total{class=\"answer\",action=\"slipped\"}") >= 1.0);
}
