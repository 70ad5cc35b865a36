//! A random-subdomain flood (water torture) against a signed zone of the
//! lab, through meshdns in recursive mode: after the first denials, the
//! validated NSEC records answer the rest (RFC 8198) and the zone's
//! servers see a small fraction of the flood.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::lab::Lab;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn metric(s: &common::Server, name: &str) -> u64 {
    let text = s.http_get("/metrics").map(|(_, t)| t).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[test]
fn a_random_subdomain_flood_on_a_signed_zone_is_answered_from_validated_nsec() {
    let Some(lab) = Lab::start() else { return };
    let args = lab.recursive_args();
    let node = common::Server::builder().args(&args.iter().map(String::as_str).collect::<Vec<_>>()).start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 4096];
    let names = 300u32;
    let mut nx = 0;
    for i in 0..names {
        let mut q = common::query(&format!("r{:08x}.good.sec.", i.wrapping_mul(2_654_435_761)), RecordType::A);
        // AD=1: the client understands AD (RFC 6840 §5.7).
        q.set_recursion_desired(true).set_authentic_data(true);
        sock.send_to(&q.to_vec().unwrap(), node.dns).unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("no answer during the flood");
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.response_code() == ResponseCode::NXDomain {
            nx += 1;
            assert!(m.authentic_data(), "an NXDOMAIN in a signed zone without AD: {m:?}");
        }
    }
    assert_eq!(nx, names, "every random name is NXDOMAIN");
    let synthesised = metric(&node, "meshdns_resolver_aggressive_nsec_answers_total");
    let upstream = metric(&node, "meshdns_resolver_upstream_queries_total");
    assert!(synthesised >= u64::from(names) * 8 / 10, "only {synthesised} of {names} answered from validated NSEC");
    assert!(upstream < u64::from(names) / 2, "{upstream} upstream queries for {names} flood names");
}
