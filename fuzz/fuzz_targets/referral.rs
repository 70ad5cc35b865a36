//! Any bytes as a referral exchange: the seed's side (a request line) and
//! the newcomer's side (an answer line) never panic, and a seed answers
//! every line with exactly one JSON line the newcomer can read.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use meshdns_mesh::gossip::referral::{Contact, ReferralError, answer_line, read_answer};

fuzz_target!(|data: &[u8]| {
    let from = SocketAddr::from(([127, 0, 0, 1], 7944));
    let line = String::from_utf8_lossy(data);
    let contacts = || {
        vec![Contact {
            id: "a".into(),
            region: "eu".into(),
            site: "fra".into(),
            gossip: from,
            region_pool: true,
            global_pool: false,
        }]
    };
    let answer = answer_line(from, &line, "fuzz", &contacts);
    assert_eq!(answer.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    let text = String::from_utf8_lossy(&answer);
    match read_answer(from, &text) {
        Ok(c) => assert_eq!(c, contacts()),
        Err(ReferralError::Refused(..)) => {}
        Err(e) => panic!("the newcomer cannot read the seed's answer: {e}"),
    }
    let _ = read_answer(from, &line);
});
