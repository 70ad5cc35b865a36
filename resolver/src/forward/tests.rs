use std::str::FromStr;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

use super::*;

fn up(url: &str) -> Upstream {
    Upstream::parse(url).unwrap_or_else(|e| panic!("{e}"))
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("{e}"))
}

fn forwarder(strategy: Strategy) -> Arc<Forwarder> {
    Arc::new(Forwarder::new(ForwardConfig {
        upstreams: vec![up("udp://10.0.0.1:53"), up("udp://10.0.0.2:53"), up("tcp://10.0.0.3:53")],
        domains: vec![(name("corp.example."), vec![up("udp://10.9.9.9:53")])],
        strategy,
        ..ForwardConfig::default()
    }))
}

/// An answer to `out`'s question, as an upstream would send it.
fn answer_to(out: &Outgoing, tc: bool, rcode: ResponseCode) -> Reply {
    let q = Message::from_vec(&out.wire).unwrap_or_else(|e| panic!("{e}"));
    let mut m = Message::new();
    m.set_id(q.id()).set_message_type(MessageType::Response).set_truncated(tc).set_response_code(rcode);
    m.add_queries(q.queries().to_vec());
    if !tc && rcode == ResponseCode::NoError {
        m.add_answer(Record::from_rdata(out.question.name.clone(), 300, RData::A(A::new(192, 0, 2, 1))));
    }
    Reply::Message { wire: m.to_vec().unwrap_or_else(|e| panic!("{e}")), rtt_ms: 3 }
}

fn sent(step: Step) -> Outgoing {
    match step {
        Step::Send(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("expected one query, got {other:?}"),
    }
}

fn done(step: Step) -> Resolved {
    match step {
        Step::Done(r) => r,
        other => panic!("expected the end, got {other:?}"),
    }
}

#[test]
fn failover_moves_to_the_next_upstream_and_answers() {
    let f = forwarder(Strategy::Failover);
    let mut q = f.start(Question::new(&name("www.example."), RecordType::A), false, false, 0);
    let first = sent(q.poll(0));
    assert_eq!(first.server.to_string(), "10.0.0.1:53");
    assert_eq!(q.poll(0), Step::Wait);
    q.on_reply(first.token, Reply::Timeout, 1500);
    let second = sent(q.poll(1500));
    assert_eq!(second.server.to_string(), "10.0.0.2:53");
    q.on_reply(second.token, answer_to(&second, false, ResponseCode::NoError), 1510);
    let r = done(q.poll(1510));
    assert_eq!((r.rcode, r.answer.len()), (ResponseCode::NoError, 1));
}

#[test]
fn servfail_refused_and_garbage_count_as_failures_and_end_in_servfail_with_ede() {
    let f = forwarder(Strategy::Failover);
    let mut q = f.start(Question::new(&name("x.example."), RecordType::A), false, false, 0);
    let a = sent(q.poll(0));
    q.on_reply(a.token, answer_to(&a, false, ResponseCode::ServFail), 1);
    let b = sent(q.poll(1));
    q.on_reply(b.token, answer_to(&b, false, ResponseCode::Refused), 2);
    let c = sent(q.poll(2));
    assert_eq!(c.transport, Transport::Tcp, "a tcp:// upstream is asked over TCP");
    q.on_reply(c.token, Reply::Message { wire: vec![0xde, 0xad], rtt_ms: 1 }, 3);
    let r = done(q.poll(3));
    assert_eq!(r.rcode, ResponseCode::ServFail);
    let ede = r.ede.unwrap_or_else(|| panic!("no EDE"));
    assert_eq!(ede.code, Ede::NO_REACHABLE_AUTHORITY);
    assert!(ede.text.contains("10.0.0.2:53 answered") && ede.text.contains("malformed"), "{}", ede.text);
}

#[test]
fn truncated_udp_is_asked_again_over_tcp_of_the_same_upstream() {
    let f = forwarder(Strategy::Failover);
    let mut q = f.start(Question::new(&name("big.example."), RecordType::TXT), false, false, 0);
    let a = sent(q.poll(0));
    q.on_reply(a.token, answer_to(&a, true, ResponseCode::NoError), 1);
    let b = sent(q.poll(1));
    assert_eq!((b.server, b.transport), (a.server, Transport::Tcp));
    q.on_reply(b.token, answer_to(&b, false, ResponseCode::NoError), 2);
    assert_eq!(done(q.poll(2)).rcode, ResponseCode::NoError);
}

#[test]
fn conditional_domains_go_to_their_own_upstream() {
    let f = forwarder(Strategy::Failover);
    let mut q = f.start(Question::new(&name("Host.CORP.example."), RecordType::A), false, false, 0);
    assert_eq!(sent(q.poll(0)).server.to_string(), "10.9.9.9:53");
    let mut q = f.start(Question::new(&name("notcorp.example."), RecordType::A), false, false, 0);
    assert_eq!(sent(q.poll(0)).server.to_string(), "10.0.0.1:53");
}

#[test]
fn a_dead_upstream_is_skipped_then_probed_back() {
    let f = forwarder(Strategy::Failover);
    for i in 0..3 {
        let mut q = f.start(Question::new(&name("a.example."), RecordType::A), false, false, i);
        let a = sent(q.poll(i));
        assert_eq!(a.server.to_string(), "10.0.0.1:53");
        q.on_reply(a.token, Reply::Timeout, i);
        let b = sent(q.poll(i));
        q.on_reply(b.token, answer_to(&b, false, ResponseCode::NoError), i);
    }
    // Down now: the next question starts with the second.
    let mut q = f.start(Question::new(&name("a.example."), RecordType::A), false, false, 10);
    assert_eq!(sent(q.poll(10)).server.to_string(), "10.0.0.2:53");
    // After the probe interval the first is tried again.
    let mut q = f.start(Question::new(&name("a.example."), RecordType::A), false, false, 10_000);
    assert_eq!(sent(q.poll(10_000)).server.to_string(), "10.0.0.1:53");
}

#[test]
fn fastest_prefers_the_lowest_rtt_and_still_explores() {
    let f = forwarder(Strategy::Fastest);
    f.record(up("udp://10.0.0.1:53").addr, 0, Some(80));
    f.record(up("udp://10.0.0.2:53").addr, 0, Some(1));
    let mut firsts = HashMap::new();
    for i in 0..40 {
        let mut q = f.start(Question::new(&name("a.example."), RecordType::A), false, false, i);
        *firsts.entry(sent(q.poll(i)).server.to_string()).or_insert(0) += 1;
    }
    assert!(firsts.get("10.0.0.2:53").copied().unwrap_or(0) >= 36, "{firsts:?}");
    assert!(firsts.len() > 1, "never explored: {firsts:?}");
}

#[test]
fn the_query_asks_for_recursion_and_passes_do_and_cd() {
    let f = forwarder(Strategy::Failover);
    let mut q = f.start(Question::new(&name("a.example."), RecordType::AAAA), true, true, 0);
    let m = Message::from_vec(&sent(q.poll(0)).wire).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.recursion_desired() && m.checking_disabled() && m.authentic_data());
    assert!(m.extensions().as_ref().is_some_and(|e| e.flags().dnssec_ok));
}

#[test]
fn a_truncated_reply_over_tcp_is_a_failure_not_an_answer() {
    let f = Arc::new(Forwarder::new(ForwardConfig {
        upstreams: vec![up("tcp://10.0.0.3:53"), up("udp://10.0.0.1:53")],
        ..ForwardConfig::default()
    }));
    let mut q = f.start(Question::new(&name("big.example."), RecordType::TXT), false, false, 0);
    let a = sent(q.poll(0));
    assert_eq!(a.transport, Transport::Tcp);
    q.on_reply(a.token, answer_to(&a, true, ResponseCode::NoError), 1);
    let b = sent(q.poll(1));
    assert_eq!(b.server.to_string(), "10.0.0.1:53", "the next upstream is asked");
}

#[test]
fn a_cname_ending_in_nodata_keeps_the_soa_for_its_negative_ttl() {
    use hickory_proto::rr::rdata::{CNAME, SOA};
    let f = forwarder(Strategy::Failover);
    let mut q = f.start(Question::new(&name("alias.example."), RecordType::AAAA), false, false, 0);
    let o = sent(q.poll(0));
    let query = Message::from_vec(&o.wire).unwrap_or_else(|e| panic!("{e}"));
    let mut m = Message::new();
    m.set_id(query.id()).set_message_type(MessageType::Response);
    m.add_queries(query.queries().to_vec());
    m.add_answer(Record::from_rdata(name("alias.example."), 3600, RData::CNAME(CNAME(name("host.example.")))));
    let soa = SOA::new(name("ns.example."), name("h.example."), 1, 3600, 600, 86400, 60);
    m.add_name_server(Record::from_rdata(name("example."), 3600, RData::SOA(soa)));
    q.on_reply(o.token, Reply::Message { wire: m.to_vec().unwrap_or_else(|e| panic!("{e}")), rtt_ms: 1 }, 1);
    let r = done(q.poll(1));
    assert_eq!(r.answer.len(), 1);
    assert!(r.authority.iter().any(|x| x.record_type() == RecordType::SOA), "{r:?}");
}
