//! The real binary over real sockets: RFC behaviour of the answers and of
//! the UDP and TCP transports.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

/// A zone directory holding `tests/data/semantics.test.zone`.
fn semantics_zone_dir() -> tempfile::TempDir {
    let zones = zone_dir(&[]);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/semantics.test.zone");
    std::fs::copy(src, zones.path().join("semantics.test.zone")).unwrap();
    zones
}

fn semantics_server() -> (tempfile::TempDir, Server) {
    let zones = semantics_zone_dir();
    let s = Server::with_zones(zones.path());
    (zones, s)
}

#[test]
fn rfc1034_4_3_2_answers_referrals_and_negative_answers() {
    let (_z, s) = semantics_server();

    // Exact match: AA, the question echoed with its case (RFC 1035 §7.1, RFC 4343 §4.1).
    let q = query("WeB.SeMaNtIcS.TeSt.", RecordType::A);
    let r = s.udp(&q);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.authoritative());
    assert_eq!(r.id(), q.id());
    assert_eq!(r.queries()[0].name().to_ascii(), "WeB.SeMaNtIcS.TeSt.");
    assert_eq!(lines(r.answers()), vec!["web.semantics.test. 3600 a 192.0.2.80"]);

    // CNAME chain followed inside the zone (§4.3.2 step 3.a).
    let r = s.query("chain1.semantics.test.", RecordType::A);
    assert_eq!(r.answers().len(), 3, "{r:?}");
    assert_eq!(r.answers()[2].data(), &RData::A("192.0.2.3".parse().unwrap()));

    // NXDOMAIN with the SOA, TTL = min(SOA TTL, MINIMUM) (RFC 2308 §3).
    let r = s.query("zz.host1.semantics.test.", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert_eq!(r.name_servers().len(), 1);
    assert_eq!(r.name_servers()[0].record_type(), RecordType::SOA);
    assert_eq!(r.name_servers()[0].ttl(), 300);

    // NODATA: NOERROR, no answer, SOA in authority.
    let r = s.query("web.semantics.test.", RecordType::MX);
    assert_eq!((r.response_code(), r.answers().len()), (ResponseCode::NoError, 0));
    assert_eq!(r.name_servers()[0].record_type(), RecordType::SOA);

    // Empty non-terminal (RFC 8020): NODATA, not NXDOMAIN.
    let r = s.query("b.ent.semantics.test.", RecordType::A);
    assert_eq!((r.response_code(), r.answers().len()), (ResponseCode::NoError, 0));

    // Referral: no AA, NS in authority, glue in additional.
    let r = s.query("www.subdel.semantics.test.", RecordType::A);
    assert!(!r.authoritative());
    assert_eq!(lines(r.name_servers()).len(), 2);
    assert_eq!(lines(r.additionals()), vec!["ns.subdel.semantics.test. 3600 a 192.0.2.53"]);

    // DS is answered from the parent side of the cut, authoritatively (RFC 4035 §3.1.4.1).
    let r = s.query("subdel.semantics.test.", RecordType::DS);
    assert!(r.authoritative());
    assert_eq!(r.answers().len(), 1);

    // Outside every zone: REFUSED, no AA.
    let r = s.query("example.org.", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::Refused);
    assert!(!r.authoritative());
}

#[test]
fn rfc4592_wildcards_and_rfc6672_dname() {
    let (_z, s) = semantics_server();
    // RFC 4592 §2.2.1: host3 matches `*`; owner is the QNAME.
    let r = s.query("host3.semantics.test.", RecordType::MX);
    assert_eq!(lines(r.answers()), vec!["host3.semantics.test. 3600 mx 10 host1.semantics.test."]);
    // `_ssh._tcp.host1` exists, so `_telnet._tcp.host1` has closest encloser `_tcp.host1`: no match.
    let r = s.query("_telnet._tcp.host1.semantics.test.", RecordType::SRV);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    // `sub.*` exists: the wildcard node is also an empty non-terminal parent.
    let r = s.query("ghost.*.semantics.test.", RecordType::TXT);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    // A wildcard CNAME is followed.
    let r = s.query("any.cn.semantics.test.", RecordType::A);
    assert_eq!(r.answers().len(), 2);
    assert_eq!(r.answers()[0].name().to_ascii(), "any.cn.semantics.test.");
    // DNAME: DNAME + synthesized CNAME (TTL of the DNAME) + target answer.
    let r = s.query("x.dn.semantics.test.", RecordType::A);
    let l = lines(r.answers());
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(l.contains(&"x.dn.semantics.test. 3600 cname x.target.semantics.test.".to_string()));
}

#[test]
fn rfc6891_edns_badvers_payload_and_truncation() {
    let (_z, s) = semantics_server();
    // OPT echoed with our 1232-byte payload.
    let r = s.query("web.semantics.test.", RecordType::A);
    let e = r.extensions().as_ref().expect("OPT in the response");
    assert_eq!(e.max_payload(), 1232);

    // Version 1: BADVERS (extended rcode 16).
    let mut q = plain_query("web.semantics.test.", RecordType::A);
    let mut e = Edns::new();
    e.set_version(1);
    q.set_edns(e);
    let raw = s.udp_raw(&q.to_vec().unwrap()).unwrap();
    let r = Message::from_vec(&raw).unwrap();
    // 16 is BADVERS in an OPT context (hickory names the shared code BADSIG).
    assert_eq!(u16::from(r.response_code()), 16);
    assert!(r.answers().is_empty());

    // The 6-record TXT set is ~700 bytes: TC without EDNS, whole with EDNS, whole over TCP.
    let r = s.udp(&plain_query("big.semantics.test.", RecordType::TXT));
    assert!(r.truncated());
    assert!(r.answers().is_empty());
    let r = s.query("big.semantics.test.", RecordType::TXT);
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 6);
    let r = s.tcp(&plain_query("big.semantics.test.", RecordType::TXT));
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 6);
}

#[test]
fn malformed_and_unsupported_queries_get_the_right_rcode_and_never_stop_the_server() {
    let (_z, s) = semantics_server();
    // NOTIMP for an unknown opcode (RFC 1035 §4.1.1), echoing the question.
    let mut q = query("web.semantics.test.", RecordType::A);
    q.set_op_code(OpCode::Status);
    let r = s.udp(&q);
    assert_eq!(r.response_code(), ResponseCode::NotImp);

    // FORMERR for QDCOUNT = 2.
    let mut q = query("web.semantics.test.", RecordType::A);
    q.add_query(hickory_proto::op::Query::query("ns1.semantics.test.".parse().unwrap(), RecordType::A));
    let r = Message::from_vec(&s.udp_raw(&q.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(r.response_code(), ResponseCode::FormErr);
    assert_eq!(r.id(), q.id());

    // FORMERR for a question cut short; no reply to a bare fragment or a response.
    let good = query("web.semantics.test.", RecordType::A).to_vec().unwrap();
    let r = Message::from_vec(&s.udp_raw(&good[..20]).unwrap()).unwrap();
    assert_eq!(r.response_code(), ResponseCode::FormErr);
    assert!(s.udp_raw(&good[..5]).is_none());
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(s.udp_raw(&response).is_none());

    // A compression pointer in the question is malformed.
    let mut bad = good[..12].to_vec();
    bad.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    bad[11] = 0;
    let r = Message::from_vec(&s.udp_raw(&bad).unwrap()).unwrap();
    assert_eq!(r.response_code(), ResponseCode::FormErr);

    // AXFR over UDP is not served.
    let r = s.udp(&query("semantics.test.", RecordType::AXFR));
    assert_eq!(r.response_code(), ResponseCode::NotImp);

    // Minimal ANY (RFC 8482): exactly one RRset.
    let r = s.query("semantics.test.", RecordType::ANY);
    let types: std::collections::BTreeSet<_> = r.answers().iter().map(|a| a.record_type()).collect();
    assert_eq!(types.len(), 1, "{r:?}");

    // After all that, the server still answers.
    assert_eq!(s.query("web.semantics.test.", RecordType::A).answers().len(), 1);
    let (code, metrics) = s.http_get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("rcode=\"formerr\""), "{metrics}");
    assert!(metrics.contains("meshdns_messages_dropped_total 2"), "{metrics}");
}

#[test]
fn rfc7766_tcp_pipelining_idle_timeout_and_connection_limit() {
    let zones = semantics_zone_dir();
    let s = Server::builder()
        .zone_dir(zones.path())
        .env("MESHDNS_SERVER_TCP_IDLE_TIMEOUT_MS", "400")
        .env("MESHDNS_SERVER_TCP_MAX_CONNECTIONS", "2")
        .start();

    // Three queries in one write; three answers, each matching its id.
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let qs: Vec<Message> =
        ["web", "ns1", "mail"].iter().map(|n| query(&format!("{n}.semantics.test."), RecordType::A)).collect();
    let mut all = Vec::new();
    for q in &qs {
        let b = q.to_vec().unwrap();
        all.extend_from_slice(&(b.len() as u16).to_be_bytes());
        all.extend_from_slice(&b);
    }
    std::io::Write::write_all(&mut c, &all).unwrap();
    let mut ids: Vec<u16> = (0..3).map(|_| Message::from_vec(&read_tcp(&mut c).unwrap()).unwrap().id()).collect();
    let mut want: Vec<u16> = qs.iter().map(|q| q.id()).collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);

    // Idle for longer than the timeout: the server closes the connection.
    let started = Instant::now();
    let mut buf = [0u8; 1];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected EOF from the server");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Two connections held open; a third is closed at once.
    let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(s.dns).unwrap()).collect();
    for h in &mut held {
        h.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write_tcp(h, &query("web.semantics.test.", RecordType::A).to_vec().unwrap());
        assert!(read_tcp(h).is_some());
    }
    let mut third = TcpStream::connect(s.dns).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_tcp(&mut third, &query("web.semantics.test.", RecordType::A).to_vec().unwrap());
    assert!(read_tcp(&mut third).is_none(), "a connection over the limit was served");
}

#[test]
fn axfr_is_served_to_allowed_clients_and_refused_to_others() {
    let (z, s) = semantics_server();
    let records = transfer(s.dns, &plain_query("semantics.test.", RecordType::AXFR));
    assert_eq!(records.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.last().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.len(), 58 + 1, "every record plus the closing SOA");

    // NOTAUTH for a zone we do not serve.
    let r = s.tcp(&plain_query("other.test.", RecordType::AXFR));
    assert_eq!(r.response_code(), ResponseCode::NotAuth);
    drop(s);

    // A server whose allow list excludes loopback refuses.
    let s = Server::builder().zone_dir(z.path()).env("MESHDNS_TRANSFER_ALLOW", "192.0.2.0/24").start();
    let r = s.tcp(&plain_query("semantics.test.", RecordType::AXFR));
    assert_eq!(r.response_code(), ResponseCode::Refused);
}

#[test]
fn no_arguments_serves_the_demo_zone_and_sigterm_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::builder().data_dir(&tmp.path().join("data")).start();
    let r = s.query("www.example.com.", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(r.answers().last().unwrap().data(), &RData::A("192.0.2.1".parse().unwrap()));
    let (code, body) = s.http_get("/healthz").unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let status = s.stop();
    assert!(status.success(), "exit status {status}");
    assert!(s.log_text().contains("stopped"));
}

#[test]
fn both_udp_paths_answer_alike_and_oversized_datagrams_are_dropped() {
    let (z, single) = semantics_server();
    let batched = Server::builder().zone_dir(z.path()).env("MESHDNS_SERVER_UDP_BATCH", "true").start();
    for (name, t) in [
        ("web.semantics.test.", RecordType::A),
        ("host3.semantics.test.", RecordType::MX),
        ("zz.host1.semantics.test.", RecordType::A),
    ] {
        let q = query(name, t);
        let (a, b) = (batched.udp(&q), single.udp(&q));
        assert_eq!(
            (a.response_code(), lines(a.answers()), lines(a.name_servers())),
            (b.response_code(), lines(b.answers()), lines(b.name_servers()))
        );
    }
    // A 5000-byte datagram is longer than any query: in batch mode it is
    // dropped and counted, not answered (single calls read it whole and
    // answer FORMERR for the trailing bytes).
    let mut huge = query("web.semantics.test.", RecordType::A).to_vec().unwrap();
    huge.resize(5000, 0);
    assert!(batched.udp_raw(&huge).is_none());
    let r = Message::from_vec(&single.udp_raw(&huge).unwrap()).unwrap();
    assert_eq!(r.response_code(), ResponseCode::FormErr);
    assert_eq!(batched.query("web.semantics.test.", RecordType::A).answers().len(), 1);
    let (_, metrics) = batched.http_get("/metrics").unwrap();
    assert!(metrics.contains("meshdns_messages_dropped_total 1"), "{metrics}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (z, _) = semantics_server();
    let s = Server::builder().zone_dir(z.path()).env("MESHDNS_LOG_FORMAT", "json").start();
    assert_eq!(s.query("web.semantics.test.", RecordType::A).answers().len(), 1);
    let log = s.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{log}");
    for l in lines {
        assert!(l.starts_with('{') && l.ends_with('}') && l.contains("\"level\":"), "not a JSON log line: {l}");
    }
    assert!(log.contains("\"message\":\"serving\""), "{log}");
}

#[test]
fn cnames_into_another_served_zone_are_followed_there() {
    // The target zone's origin is shorter than the CNAME's zone (a past
    // bug took the first zone's origin length for the second lookup).
    let z = zone_dir(&[
        (
            "long-origin.example.zone",
            "$ORIGIN long-origin.example.\n@ SOA ns h 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww CNAME cdn.io.\nnx CNAME nothing.cdn.io.\n",
        ),
        ("cdn.io.zone", "$ORIGIN cdn.io.\n@ SOA ns h 7 3600 600 86400 30\n@ NS ns\nns A 192.0.2.2\n@ A 198.51.100.7\n"),
    ]);
    let s = Server::with_zones(z.path());
    let r = s.query("www.long-origin.example.", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(lines(r.answers()), vec!["cdn.io. 3600 a 198.51.100.7", "www.long-origin.example. 3600 cname cdn.io."]);
    // NXDOMAIN from the second zone, with its SOA (RFC 6604 §3).
    let r = s.query("nx.long-origin.example.", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert_eq!(r.name_servers()[0].name().to_ascii(), "cdn.io.");
    // And the server is still up.
    assert_eq!(s.query("ns.cdn.io.", RecordType::A).answers().len(), 1);
}

#[test]
fn rfc4035_signed_zones_return_rrsigs_to_do_queries() {
    const SIG: &str = "13 2 3600 20260101000000 20251201000000 12345 signed.test. oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAQ==";
    let z = zone_dir(&[(
        "signed.test.zone",
        &format!(
            "$ORIGIN signed.test.\n@ SOA ns h 1 3600 600 86400 60\n@ RRSIG SOA {SIG}\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\nwww RRSIG A {SIG}\nwww RRSIG TXT {SIG}\n"
        ),
    )]);
    let s = Server::with_zones(z.path());
    let mut q = plain_query("www.signed.test.", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(1232).set_dnssec_ok(true);
    q.set_edns(e.clone());
    let r = s.udp(&q);
    let types: Vec<RecordType> = r.answers().iter().map(|a| a.record_type()).collect();
    assert_eq!(types, vec![RecordType::A, RecordType::RRSIG], "only the RRSIG covering A");
    // Without DO, no signatures.
    assert_eq!(s.query("www.signed.test.", RecordType::A).answers().len(), 1);
    // NXDOMAIN with DO: the SOA and its signature.
    let mut q = plain_query("nx.signed.test.", RecordType::A);
    q.set_edns(e);
    let r = s.udp(&q);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    let types: Vec<RecordType> = r.name_servers().iter().map(|a| a.record_type()).collect();
    assert_eq!(types, vec![RecordType::SOA, RecordType::RRSIG]);
    assert!(s.log_text().contains("signed zone"), "the missing denial proofs are warned about");
}

#[test]
fn rfc1995_ixfr_with_the_clients_soa_gets_the_whole_zone() {
    let (_z, s) = semantics_server();
    let mut q = plain_query("semantics.test.", RecordType::IXFR);
    let soa = hickory_proto::rr::Record::from_rdata(
        "semantics.test.".parse().unwrap(),
        0,
        RData::SOA(hickory_proto::rr::rdata::SOA::new(
            "ns1.semantics.test.".parse().unwrap(),
            "hostmaster.semantics.test.".parse().unwrap(),
            2026112400,
            7200,
            3600,
            1209600,
            300,
        )),
    );
    q.add_name_server(soa);
    let records = transfer(s.dns, &q);
    assert_eq!(records.len(), 59);
}

#[test]
fn every_listen_address_serves_udp_and_tcp_ipv6_included() {
    let zones = semantics_zone_dir();
    let v6_port = free_port();
    let v6: std::net::SocketAddr = format!("[::1]:{v6_port}").parse().unwrap();
    let s = Server::builder().zone_dir(zones.path()).arg("--listen").arg(&v6.to_string()).start();
    // The first address (IPv4) still works.
    assert_eq!(s.query("web.semantics.test.", RecordType::A).answers().len(), 1);
    // UDP over IPv6.
    let q = query("web.semantics.test.", RecordType::AAAA);
    let u = std::net::UdpSocket::bind("[::1]:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    u.send_to(&q.to_vec().unwrap(), v6).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = u.recv_from(&mut buf).unwrap();
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(lines(r.answers()), vec!["web.semantics.test. 3600 aaaa 2001:db8::80"]);
    // TCP over IPv6.
    let mut c = TcpStream::connect(v6).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_tcp(&mut c, &q.to_vec().unwrap());
    let r = Message::from_vec(&read_tcp(&mut c).unwrap()).unwrap();
    assert_eq!(r.answers().len(), 1);
}
