//! Whatever servers answer, a resolution never panics and always ends.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use proptest::prelude::*;

use super::fake::{a, cname, dname, n, ns, recursor_with, soa};
use crate::{Question, Reply, Step};

/// Records a random reply is made of: names around the question's.
fn pool() -> Vec<Record> {
    vec![
        a("www.example.com.", "192.0.2.1"),
        a("ns.example.com.", "10.0.2.1"),
        a("ns.evil.org.", "10.0.9.9"),
        a("a.root.", "10.0.0.1"),
        a("localhost.example.com.", "127.0.0.1"),
        ns("com.", "ns.example.com."),
        ns("example.com.", "ns.example.com."),
        ns("example.com.", "ns.elsewhere.net."),
        ns(".", "a.root."),
        ns("www.example.com.", "ns.www.example.com."),
        cname("www.example.com.", "www.example.com."),
        cname("www.example.com.", "x.example.org."),
        cname("x.example.org.", "www.example.com."),
        dname("example.com.", "example.com."),
        dname("com.", "example.org."),
        soa("example.com.", 60, 30),
        soa("com.", 60, 30),
    ]
    .into_iter()
    // Signed records (DNSKEY, RRSIG, NSEC, DS) for the validator to chew on.
    .chain(
        crate::dnssec::text::parse_records(include_str!("../../../tests/data/dnssec/nsec-ecdsa.zone"), None)
            .unwrap_or_default(),
    )
    .collect()
}

#[derive(Clone, Debug)]
enum Fake {
    Garbage(Vec<u8>),
    Timeout,
    Failed,
    Msg { rcode: u8, aa: bool, tc: bool, sections: Vec<(u8, usize)>, echo: bool },
}

fn fake() -> impl Strategy<Value = Fake> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Fake::Garbage),
        Just(Fake::Timeout),
        Just(Fake::Failed),
        (
            0u8..6,
            any::<bool>(),
            prop::bool::weighted(0.1),
            proptest::collection::vec((0u8..3, 0usize..64), 0..8),
            prop::bool::weighted(0.9)
        )
            .prop_map(|(rcode, aa, tc, sections, echo)| Fake::Msg { rcode, aa, tc, sections, echo }),
    ]
}

fn reply(f: &Fake, q: &Question) -> Reply {
    match f {
        Fake::Garbage(b) => Reply::Message { wire: b.clone(), rtt_ms: 1 },
        Fake::Timeout => Reply::Timeout,
        Fake::Failed => Reply::Failed,
        Fake::Msg { rcode, aa, tc, sections, echo } => {
            let pool = pool();
            let mut m = Message::new();
            m.set_message_type(MessageType::Response).set_authoritative(*aa).set_truncated(*tc);
            m.set_response_code(ResponseCode::from_low(*rcode));
            let qname = if *echo { q.name.clone() } else { n("other.example.") };
            m.add_query(hickory_proto::op::Query::query(qname, q.qtype));
            for (section, i) in sections {
                let r = pool[*i % pool.len()].clone();
                match section {
                    0 => m.add_answer(r),
                    1 => m.add_name_server(r),
                    _ => m.add_additional(r),
                };
            }
            Reply::Message { wire: m.to_vec().unwrap_or_default(), rtt_ms: 3 }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_replies_always_end(replies in proptest::collection::vec(fake(), 1..40), qt in 0usize..4, validate in any::<bool>()) {
        let roots = [("a.root.", "10.0.0.1"), ("b.root.", "10.0.0.2"), ("c.root.", "10.0.0.3"), ("d.root.", "10.0.0.4")];
        // Half the cases validate (root anchor), so random DS/DNSKEY
        // replies reach the validator too.
        let anchors = validate.then(crate::dnssec::TrustAnchors::builtin_root);
        let rec = recursor_with(&roots, |c| c.max_upstream_queries = 30, anchors);
        let qtype = [RecordType::A, RecordType::NS, RecordType::DS, RecordType::CNAME][qt];
        let mut res = rec.start(Question::new(&n("www.example.com."), qtype), true, false, 0);
        let mut k = 0;
        let mut done = false;
        for poll in 0..500u64 {
            match res.poll(poll) {
                Step::Send(outs) => {
                    for o in outs {
                        let r = reply(&replies[k % replies.len()], &o.question);
                        k += 1;
                        res.on_reply(o.token, r, poll);
                    }
                }
                Step::Wait => prop_assert!(false, "waiting with nothing in flight"),
                Step::Done(_) => { done = true; break; }
            }
        }
        prop_assert!(done, "not done after 500 polls");
        prop_assert!(res.queries_sent() <= 30);
    }
}
