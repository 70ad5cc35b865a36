//! The iteration, driven over the scripted network.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use super::fake::{Behaviour, FakeNet, a, ip, n, ns, recursor, resolve};
use super::world::*;
use crate::Resolved;
use crate::Transport;
use crate::types::Ede;

/// The answer section as "owner TYPE rdata" lines.
fn lines(r: &Resolved) -> Vec<String> {
    r.answer.iter().map(|x| format!("{} {} {}", x.name(), x.record_type(), x.data())).collect()
}

fn a_rrset(r: &Resolved) -> Vec<String> {
    r.answer
        .iter()
        .filter_map(|x| match x.data() {
            RData::A(v) => Some(v.0.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn resolves_from_the_root_and_then_from_the_cache() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 1_000);
    assert_eq!(r.rcode, ResponseCode::NoError);
    assert_eq!(lines(&r), ["www.example.com. A 192.0.2.1"]);
    assert_eq!(queries, 3, "root, com, example.com");
    // The referrals were cached: a sibling name starts at example.com.
    let (r, queries) = resolve(&mut net, &rec, "ns1.example.com.", RecordType::A, 2_000);
    assert_eq!(a_rrset(&r), [EX1]);
    assert_eq!(queries, 1);
    // The answer itself was cached: no query at all.
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 3_000);
    assert_eq!(a_rrset(&r), ["192.0.2.1"]);
    assert_eq!(queries, 0);
    // Until it expires (TTL 3600 s). The glue (3600 s) went with it, and
    // a cut whose in-zone servers have no address is passed over: the
    // walk starts again at the root, which gives the glue again.
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 1_000 + 3_601_000);
    assert_eq!(a_rrset(&r), ["192.0.2.1"]);
    assert_eq!(queries, 3);
}

#[test]
fn qname_minimisation_shows_each_server_one_label_more() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "deep.a.b.c.example.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.2"]);
    let root: Vec<String> = net.seen_by(ROOT).iter().map(|s| s.q.to_string()).collect();
    assert_eq!(root, ["com. IN A"], "the root sees only the TLD");
    let com: Vec<String> = net.seen_by(COM).iter().map(|s| s.q.to_string()).collect();
    assert_eq!(com, ["example.com. IN A"]);
    let ex: Vec<String> = net.log.iter().skip(2).map(|s| s.q.name.to_ascii()).collect();
    assert_eq!(ex, ["c.example.com.", "b.c.example.com.", "a.b.c.example.com.", "deep.a.b.c.example.com."]);
    assert_eq!(queries, 6);
}

#[test]
fn without_minimisation_every_server_sees_the_full_name() {
    let mut net = world();
    let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
    let (r, queries) = resolve(&mut net, &rec, "deep.a.b.c.example.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.2"]);
    assert_eq!(queries, 3);
    assert!(net.log.iter().all(|s| s.q.name == n("deep.a.b.c.example.com.")));
}

#[test]
fn minimised_query_refused_falls_back_to_the_full_name() {
    let mut net = world();
    net.behave(EX1, Behaviour::RefuseName(n("c.example.com.")));
    net.behave(EX2, Behaviour::RefuseName(n("c.example.com.")));
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "deep.a.b.c.example.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.2"]);
    let ex: Vec<String> = net.log.iter().skip(2).map(|s| s.q.name.to_ascii()).collect();
    assert_eq!(ex, ["c.example.com.", "deep.a.b.c.example.com."], "same server, full name");
    assert_eq!(net.log[2].server, net.log[3].server);
}

#[test]
fn nxdomain_for_a_minimised_name_ends_the_resolution() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "x.y.nowhere.example.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::NXDomain);
    assert_eq!(queries, 3, "RFC 8020: nowhere.example.com does not exist, nor anything below");
    assert_eq!(r.authority.len(), 1);
    assert_eq!(r.authority[0].record_type(), RecordType::SOA);
    // And the cached NXDOMAIN answers for every name below it.
    let (r, queries) = resolve(&mut net, &rec, "other.nowhere.example.com.", RecordType::MX, 1000);
    assert_eq!((r.rcode, queries), (ResponseCode::NXDomain, 0));
}

#[test]
fn negative_answers_are_cached_for_min_of_soa_ttl_and_minimum() {
    let mut net = world();
    let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
    let (r, _) = resolve(&mut net, &rec, "nope.example.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::NXDomain);
    // SOA TTL 3600, MINIMUM 60: cached 60 s, for every type.
    let (r, queries) = resolve(&mut net, &rec, "nope.example.com.", RecordType::TXT, 59_000);
    assert_eq!((r.rcode, queries), (ResponseCode::NXDomain, 0));
    let (_, queries) = resolve(&mut net, &rec, "nope.example.com.", RecordType::A, 61_000);
    assert_eq!(queries, 1);
    // NODATA is cached per type.
    let (r, _) = resolve(&mut net, &rec, "www.example.com.", RecordType::TXT, 100_000);
    assert_eq!((r.rcode, r.answer.len()), (ResponseCode::NoError, 0));
    assert_eq!(r.authority[0].record_type(), RecordType::SOA);
    let (_, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::TXT, 101_000);
    assert_eq!(queries, 0);
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 102_000);
    assert_eq!((a_rrset(&r).len(), queries), (1, 1));
}

#[test]
fn glueless_delegation_resolves_the_ns_name_first() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "www.glueless.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.5"]);
    // root, com (referral without glue), then ns.example.net: root (cached
    // root hints only), net, example.net; then glueless.com's server.
    let asked: Vec<String> = net.log.iter().map(|s| format!("{} {}", s.server, s.q)).collect();
    assert_eq!(
        asked,
        [
            "10.0.0.1 com. IN A",
            "10.0.1.1 glueless.com. IN A",
            "10.0.0.1 net. IN A",
            "10.0.3.1 example.net. IN A",
            "10.0.5.1 ns.example.net. IN A",
            "10.0.5.1 www.glueless.com. IN A",
        ]
    );
    assert_eq!(queries, 6);
}

#[test]
fn glue_outside_the_servers_zone_is_ignored() {
    let mut net = world();
    // com adds glue for an NS name outside example.com (and a lie for it).
    net.zone(COM, "com.", vec![ns("evil.com.", "ns.example.net."), a("ns.example.net.", "10.66.66.66")]);
    net.zone(EXNET, "evil.com.", vec![super::fake::soa("evil.com.", 60, 60), a("www.evil.com.", "192.0.2.66")]);
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "www.evil.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.66"]);
    assert!(net.seen_by("10.66.66.66").is_empty(), "the out-of-zone glue was not used");
    let cached = rec.cache().rrset(&n("ns.example.net."), RecordType::A, 0);
    let addrs: Vec<String> = cached.iter().flat_map(|c| c.entry.records.iter().map(|r| r.data().to_string())).collect();
    assert_eq!(addrs, [EXNET]);
}

#[test]
fn cname_to_another_zone_is_chased_and_the_chain_kept_in_order() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "alias.example.com.", RecordType::A, 0);
    assert_eq!(lines(&r), ["alias.example.com. CNAME www.other.org.", "www.other.org. A 192.0.2.9"]);
    // In-zone chains come in one reply.
    let before = net.log.len();
    let (r, _) = resolve(&mut net, &rec, "inzone.example.com.", RecordType::A, 0);
    assert_eq!(lines(&r), ["inzone.example.com. CNAME www.example.com.", "www.example.com. A 192.0.2.1"]);
    assert_eq!(net.log.len() - before, 1);
    // And the cached chain answers again without a query.
    let (r2, queries) = resolve(&mut net, &rec, "alias.example.com.", RecordType::A, 1000);
    assert_eq!(queries, 0);
    assert_eq!(r2.answer.len(), 2);
}

#[test]
fn dname_is_followed_with_a_synthesised_cname() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "host.old.example.com.", RecordType::A, 0);
    let l = lines(&r);
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(l[0].starts_with("old.example.com. Unknown"), "{l:?}");
    assert_eq!(l[1], "host.old.example.com. CNAME host.new.example.net.");
    assert_eq!(l[2], "host.new.example.net. A 192.0.2.7");
}

#[test]
fn cname_loops_and_long_chains_fail() {
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "loop1.example.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    let mut net = world();
    let rec = recursor(ROOTS, |c| c.max_cname_chain = 0);
    let (r, _) = resolve(&mut net, &rec, "alias.example.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert!(r.ede.is_some_and(|e| e.text.contains("chain")));
}

#[test]
fn a_timed_out_server_is_skipped_afterwards() {
    let mut net = world();
    net.behave(EX1, Behaviour::Timeout);
    let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
    for (i, name) in ["www.example.com.", "ns1.example.com.", "ns2.example.com."].iter().enumerate() {
        let (r, _) = resolve(&mut net, &rec, name, RecordType::A, i as u64 * 100);
        assert_eq!(r.rcode, ResponseCode::NoError, "{name}");
    }
    assert!(net.seen_by(EX1).len() <= 1, "asked once, then skipped: {}", net.seen_by(EX1).len());
    assert_eq!(net.seen_by(EX2).len(), 3);
}

#[test]
fn lame_servers_are_marked_and_skipped() {
    for b in
        [Behaviour::Refused, Behaviour::ServFail, Behaviour::UpwardReferral, Behaviour::Unreachable, Behaviour::Garbage]
    {
        let mut net = world();
        net.behave(EX1, b.clone());
        let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
        for (i, name) in ["www.example.com.", "ns1.example.com.", "ns2.example.com."].iter().enumerate() {
            let (r, _) = resolve(&mut net, &rec, name, RecordType::A, i as u64);
            assert_eq!(r.rcode, ResponseCode::NoError, "{b:?} {name}");
        }
        assert!(net.seen_by(EX1).len() <= 1, "{b:?}: {}", net.seen_by(EX1).len());
        if matches!(b, Behaviour::Refused | Behaviour::ServFail | Behaviour::UpwardReferral)
            && !net.seen_by(EX1).is_empty()
        {
            assert!(rec.infra().is_lame(ip(EX1), &n("example.com."), 10), "{b:?}");
        }
    }
}

#[test]
fn all_servers_failing_gives_servfail_no_reachable_authority() {
    let mut net = world();
    net.behave(EX1, Behaviour::Timeout).behave(EX2, Behaviour::Refused);
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert_eq!(r.ede.map(|e| e.code), Some(Ede::NO_REACHABLE_AUTHORITY));
    assert!(queries <= 6, "{queries}");
}

#[test]
fn truncated_udp_reply_is_retried_over_tcp_on_the_same_server() {
    let mut net = world();
    net.behave(EX1, Behaviour::TruncateUdp).behave(EX2, Behaviour::TruncateUdp);
    let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.1"]);
    assert_eq!(queries, 4);
    let (udp, tcp) = (&net.log[2], &net.log[3]);
    assert_eq!((udp.transport, tcp.transport), (Transport::Udp, Transport::Tcp));
    assert_eq!(udp.server, tcp.server);
}

#[test]
fn servers_without_edns_are_asked_without_it_and_remembered() {
    let mut net = world();
    net.behave(EX1, Behaviour::NoEdns).behave(EX2, Behaviour::NoEdns);
    let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.1"]);
    assert_eq!(queries, 4);
    assert!(net.log[2].edns && !net.log[3].edns && net.log[2].server == net.log[3].server);
    let server = net.log[2].server;
    assert!(rec.infra().no_edns(server, 1));
    assert!(net.log[0].edns, "other servers keep EDNS");
    let (_, _) = resolve(&mut net, &rec, "ns1.example.com.", RecordType::A, 1);
    let later: Vec<_> = net.log.iter().skip(4).filter(|s| s.server == server).collect();
    assert!(later.iter().all(|s| !s.edns));
}

#[test]
fn out_of_zone_records_in_answers_are_dropped() {
    let mut net = world();
    let poison = a("www.bank.org.", "10.66.66.66");
    net.behave(EX1, Behaviour::Inject(Box::new(poison.clone()))).behave(EX2, Behaviour::Inject(Box::new(poison)));
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(lines(&r), ["www.example.com. A 192.0.2.1"]);
    assert!(rec.cache().rrset(&n("www.bank.org."), RecordType::A, 0).is_none());
}

#[test]
fn upstream_query_cap_ends_in_servfail() {
    let mut net = world();
    let rec = recursor(ROOTS, |c| c.max_upstream_queries = 2);
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(queries, 2);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert_eq!(r.ede.as_ref().map(|e| e.code), Some(0));
}

#[test]
fn nxns_fanout_bounds_the_ns_names_resolved_per_referral() {
    let mut net = world();
    let mut recs = Vec::new();
    for i in 0..20 {
        recs.push(ns("victim.com.", &format!("ns{i}.nx.example.com.")));
    }
    net.zone(COM, "com.", recs);
    let rec = recursor(ROOTS, |c| {
        c.max_ns_fanout = 3;
        c.max_upstream_queries = 200;
    });
    let (r, _) = resolve(&mut net, &rec, "www.victim.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    let ns_names: std::collections::BTreeSet<_> =
        net.log.iter().filter(|s| s.q.name.to_ascii().starts_with("ns")).map(|s| s.q.name.clone()).collect();
    assert!(ns_names.len() <= 3, "{ns_names:?}");
}

#[test]
fn glueless_recursion_is_bounded_by_depth() {
    let mut net = world();
    // d0.com's server is ns.d1.com, whose server is ns.d2.com, ... glueless.
    let mut recs = Vec::new();
    for i in 0..6 {
        recs.push(ns(&format!("d{i}.com."), &format!("ns.d{}.com.", i + 1)));
    }
    net.zone(COM, "com.", recs);
    let rec = recursor(ROOTS, |c| c.max_depth = 2);
    let (r, queries) = resolve(&mut net, &rec, "www.d0.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    // The zones d0..d2 are reached (d2 at depth 2), d3 never.
    let asked: Vec<String> = net.log.iter().map(|s| s.q.name.to_ascii()).collect();
    assert!(asked.contains(&"d2.com.".to_string()), "{asked:?}");
    assert!(!asked.iter().any(|a| a.contains("d3.com.")), "{asked:?}");
    assert!(queries < 20, "{queries}");
}

#[test]
fn ns_name_loops_end() {
    let mut net = world();
    // a.com is served by ns.b.com, b.com by ns.a.com, no glue.
    net.zone(COM, "com.", vec![ns("a.com.", "ns.b.com."), ns("b.com.", "ns.a.com.")]);
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "www.a.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert!(queries < 20, "{queries}");
}

#[test]
fn loopback_servers_are_not_queried_unless_allowed() {
    let mut net = world();
    net.zone(COM, "com.", vec![ns("local.com.", "ns.local.com."), a("ns.local.com.", "127.0.0.53")]);
    net.zone(
        "127.0.0.53",
        "local.com.",
        vec![super::fake::soa("local.com.", 60, 60), a("www.local.com.", "192.0.2.53")],
    );
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "www.local.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert!(net.seen_by("127.0.0.53").is_empty());
    let rec = recursor(ROOTS, |c| c.query_loopback = true);
    let (r, _) = resolve(&mut net, &rec, "www.local.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.53"]);
}

#[test]
fn referral_records_are_cached_with_their_ranks() {
    use crate::cache::Rank;
    let mut net = world();
    let rec = recursor(ROOTS, |_| {});
    resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    let c = rec.cache();
    let ns_hit = c.rrset(&n("example.com."), RecordType::NS, 0).map(|h| h.entry.rank);
    assert_eq!(ns_hit, Some(Rank::Authority));
    let glue = c.rrset(&n("ns1.example.com."), RecordType::A, 0).map(|h| h.entry.rank);
    assert_eq!(glue, Some(Rank::Additional));
    let ans = c.rrset(&n("www.example.com."), RecordType::A, 0).map(|h| h.entry.rank);
    assert_eq!(ans, Some(Rank::AuthoritativeAnswer));
    // Glue is never an answer: asking for it goes to the authority.
    let (_, queries) = resolve(&mut net, &rec, "ns2.example.com.", RecordType::A, 0);
    assert_eq!(queries, 1);
    let glue = c.rrset(&n("ns2.example.com."), RecordType::A, 0).map(|h| h.entry.rank);
    assert_eq!(glue, Some(Rank::AuthoritativeAnswer));
}

#[test]
fn ds_is_asked_of_the_parent() {
    let mut net = world();
    net.zone(COM, "com.", vec![super::fake::soa("com.", 900, 900)]);
    let rec = recursor(ROOTS, |_| {});
    resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    let before = net.log.len();
    let (r, _) = resolve(&mut net, &rec, "example.com.", RecordType::DS, 0);
    assert_eq!(r.rcode, ResponseCode::NoError);
    let asked: Vec<_> = net.log[before..].iter().map(|s| s.server).collect();
    assert_eq!(asked, [ip(COM)], "com holds example.com's DS, not example.com");
}

#[test]
fn empty_net_is_servfail_not_a_hang() {
    let mut net = FakeNet::default();
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(r.rcode, ResponseCode::ServFail);
    assert_eq!(queries, 1);
}

#[test]
fn ns_name_with_only_aaaa_is_reached_over_ipv6() {
    let mut net = world();
    net.zone(EXNET, "example.net.", vec![a("ns6.example.net.", "2001:db8::53")]);
    net.zone(COM, "com.", vec![ns("only6.com.", "ns6.example.net.")]);
    net.zone(
        "2001:db8::53",
        "only6.com.",
        vec![super::fake::soa("only6.com.", 60, 60), a("www.only6.com.", "192.0.2.6")],
    );
    let rec = recursor(ROOTS, |_| {});
    let (r, _) = resolve(&mut net, &rec, "www.only6.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.6"]);
    let asked: Vec<String> = net.log.iter().map(|s| s.q.to_string()).collect();
    assert!(asked.contains(&"ns6.example.net. IN A".to_string()), "{asked:?}");
    assert!(asked.contains(&"ns6.example.net. IN AAAA".to_string()), "A first, then AAAA: {asked:?}");
}

#[test]
fn the_faster_server_gets_most_queries() {
    let mut net = world();
    net.behave(EX1, Behaviour::Slow(900));
    let rec = recursor(ROOTS, |c| c.qname_minimisation = false);
    for i in 0..40 {
        let (r, _) = resolve(&mut net, &rec, &format!("n{i}.example.com."), RecordType::A, i * 10);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
    }
    let (slow, fast) = (net.seen_by(EX1).len(), net.seen_by(EX2).len());
    assert!(slow <= 2 && fast >= 38, "slow {slow}, fast {fast}");
    assert!(rec.infra().rto(ip(EX1)) > rec.infra().rto(ip(EX2)));
}

#[test]
fn sibling_glue_from_the_server_zone_is_used() {
    // The root refers com. and net. to servers named under
    // gtld-servers.net., with glue: the real root's shape. gtld-servers.net
    // itself is served by a name under com.: without the sibling glue the
    // lookup would need the com. servers it is looking for.
    let mut net = FakeNet::default();
    let gtld = "10.0.10.1";
    net.zone(
        ROOT,
        ".",
        vec![
            super::fake::soa(".", 86400, 86400),
            ns("com.", "a.gtld-servers.net."),
            ns("net.", "a.gtld-servers.net."),
            a("a.gtld-servers.net.", gtld),
        ],
    );
    net.zone(
        gtld,
        "com.",
        vec![super::fake::soa("com.", 900, 900), ns("example.com.", "ns1.example.com."), a("ns1.example.com.", EX1)],
    );
    net.zone(gtld, "net.", vec![super::fake::soa("net.", 900, 900), ns("gtld-servers.net.", "av1.nstld.com.")]);
    net.zone(EX1, "example.com.", vec![super::fake::soa("example.com.", 60, 60), a("www.example.com.", "192.0.2.1")]);
    let rec = recursor(ROOTS, |_| {});
    let (r, queries) = resolve(&mut net, &rec, "www.example.com.", RecordType::A, 0);
    assert_eq!(a_rrset(&r), ["192.0.2.1"]);
    assert_eq!(queries, 3);
    // Glue never answers: asking for the server's address goes to its zone.
    let cached = rec.cache().rrset(&n("a.gtld-servers.net."), RecordType::A, 0).map(|h| h.entry.rank);
    assert_eq!(cached, Some(crate::cache::Rank::Additional));
}
