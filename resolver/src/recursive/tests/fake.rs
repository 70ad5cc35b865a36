//! A scripted in-memory network of authoritative servers for the tests:
//! server address → zones (hickory records) and a behaviour.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, NULL, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use crate::cache::{Cache, CacheConfig};
use crate::recursive::{RecursiveConfig, Recursor, RootHints};
use crate::{Outgoing, Question, Reply, Resolved, Step, Transport};

pub(crate) fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}
pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}
pub(crate) fn a(name: &str, addr: &str) -> Record {
    let rdata = match ip(addr) {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(n(name), 3600, rdata)
}
pub(crate) fn ns(name: &str, target: &str) -> Record {
    Record::from_rdata(n(name), 86400, RData::NS(NS(n(target))))
}
pub(crate) fn cname(name: &str, target: &str) -> Record {
    Record::from_rdata(n(name), 300, RData::CNAME(CNAME(n(target))))
}
pub(crate) fn dname(name: &str, target: &str) -> Record {
    let bytes = n(target).to_bytes().unwrap_or_else(|e| panic!("{e}"));
    Record::from_rdata(n(name), 300, RData::Unknown { code: RecordType::Unknown(39), rdata: NULL::with(bytes) })
}
/// A SOA with TTL `ttl` and MINIMUM `min`.
pub(crate) fn soa(apex: &str, ttl: u32, min: u32) -> Record {
    let under = |l: &str| if apex == "." { format!("{l}.") } else { format!("{l}.{apex}") };
    let rd = SOA::new(n(&under("ns")), n(&under("admin")), 1, 7200, 900, 86400, min);
    Record::from_rdata(n(apex), ttl, RData::SOA(rd))
}

/// How a server misbehaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Normal,
    /// Never answers.
    Timeout,
    /// The exchange fails at once.
    Unreachable,
    /// Answers REFUSED to everything.
    Refused,
    /// Answers SERVFAIL to everything.
    ServFail,
    /// Answers FORMERR (no OPT) to queries with EDNS.
    NoEdns,
    /// Sets TC on every UDP reply (answers fully over TCP).
    TruncateUdp,
    /// Answers garbage bytes.
    Garbage,
    /// Answers REFUSED for this name, normally otherwise.
    RefuseName(Name),
    /// Refers every query back to the root.
    UpwardReferral,
    /// Answers normally after this many milliseconds.
    Slow(u64),
    /// Answers like a recursive server: RA set, AA clear.
    NotAuthoritative,
    /// Adds this record to every answer section (poisoning attempt).
    Inject(Box<Record>),
    /// Answers normally, but a denial in an NSEC zone carries only the
    /// NSEC records a real server sends (RFC 4035 §3.1.3): the one at or
    /// covering the name, and the one covering the wildcard at the
    /// closest encloser.
    MinimalDenial,
}

pub(crate) struct Server {
    pub(crate) zones: Vec<(Name, Vec<Record>)>,
    pub(crate) behaviour: Behaviour,
}

/// One query seen by the network.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) server: IpAddr,
    pub(crate) transport: Transport,
    pub(crate) q: Question,
    pub(crate) edns: bool,
    /// The DO bit (RFC 3225).
    pub(crate) dnssec_ok: bool,
}

#[derive(Default)]
pub(crate) struct FakeNet {
    pub(crate) servers: HashMap<IpAddr, Server>,
    pub(crate) log: Vec<Seen>,
}

impl FakeNet {
    /// Adds `zone` (its records) to the server at `addr`.
    pub(crate) fn zone(&mut self, addr: &str, apex: &str, records: Vec<Record>) -> &mut Self {
        let s =
            self.servers.entry(ip(addr)).or_insert_with(|| Server { zones: Vec::new(), behaviour: Behaviour::Normal });
        match s.zones.iter_mut().find(|(z, _)| *z == n(apex)) {
            Some((_, rs)) => rs.extend(records),
            None => s.zones.push((n(apex), records)),
        }
        self
    }

    pub(crate) fn behave(&mut self, addr: &str, b: Behaviour) -> &mut Self {
        let s =
            self.servers.entry(ip(addr)).or_insert_with(|| Server { zones: Vec::new(), behaviour: Behaviour::Normal });
        s.behaviour = b;
        self
    }

    /// Queries seen by `addr`.
    pub(crate) fn seen_by(&self, addr: &str) -> Vec<&Seen> {
        self.log.iter().filter(|s| s.server == ip(addr)).collect()
    }

    pub(crate) fn exchange(&mut self, o: &Outgoing) -> Reply {
        let Ok(query) = Message::from_vec(&o.wire) else { panic!("the resolver sent an unparsable query") };
        assert_eq!(query.id(), 0);
        assert!(!query.recursion_desired(), "iterative queries have RD clear");
        let q = query.queries().first().cloned().unwrap_or_else(|| panic!("no question"));
        let edns = query.extensions().is_some();
        let dnssec_ok = query.extensions().as_ref().is_some_and(|e| e.flags().dnssec_ok);
        self.log.push(Seen { server: o.server.ip(), transport: o.transport, q: o.question.clone(), edns, dnssec_ok });
        let Some(server) = self.servers.get(&o.server.ip()) else { return Reply::Timeout };
        let mut r = Message::new();
        r.set_message_type(MessageType::Response).add_query(q.clone());
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            r.set_edns(e);
        }
        let qname = q.name().to_lowercase();
        match &server.behaviour {
            Behaviour::Timeout => return Reply::Timeout,
            Behaviour::Unreachable => return Reply::Failed,
            Behaviour::Garbage => return Reply::Message { wire: vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3], rtt_ms: 5 },
            Behaviour::Refused => {
                r.set_response_code(ResponseCode::Refused);
            }
            Behaviour::ServFail => {
                r.set_response_code(ResponseCode::ServFail);
            }
            Behaviour::RefuseName(name) if *name == qname => {
                r.set_response_code(ResponseCode::Refused);
            }
            Behaviour::NoEdns if edns => {
                let mut r2 = Message::new();
                r2.set_message_type(MessageType::Response).add_query(q.clone());
                r2.set_response_code(ResponseCode::FormErr);
                return wire(&r2);
            }
            Behaviour::TruncateUdp if o.transport == Transport::Udp => {
                r.set_truncated(true);
            }
            Behaviour::UpwardReferral => {
                r.add_name_server(ns(".", "a.root."));
            }
            _ => authoritative(
                &server.zones,
                &qname,
                q.query_type(),
                server.behaviour == Behaviour::MinimalDenial,
                &mut r,
            ),
        }
        if server.behaviour == Behaviour::NotAuthoritative {
            r.set_authoritative(false).set_recursion_available(true);
        }
        if let Behaviour::Inject(rec) = &server.behaviour {
            r.add_answer((**rec).clone());
        }
        match (wire(&r), &server.behaviour) {
            (Reply::Message { wire, .. }, Behaviour::Slow(ms)) => Reply::Message { wire, rtt_ms: *ms },
            (reply, _) => reply,
        }
    }
}

fn wire(m: &Message) -> Reply {
    Reply::Message { wire: m.to_vec().unwrap_or_else(|e| panic!("{e}")), rtt_ms: 20 }
}

/// `rtype` records at `name` and the RRSIGs covering them.
fn with_sigs(recs: &[Record], name: &Name, rtype: RecordType) -> Vec<Record> {
    let data = recs.iter().filter(|x| x.name() == name && x.record_type() == rtype);
    let sigs = recs.iter().filter(|x| x.name() == name && crate::recursive::rrset::covered_type(x) == Some(rtype));
    data.chain(sigs).cloned().collect()
}

/// Every NSEC and NSEC3 record of the zone with its RRSIGs: more than a
/// real server sends, enough for any denial proof.
fn denial(recs: &[Record]) -> Vec<Record> {
    let is = |t: Option<RecordType>| matches!(t, Some(RecordType::NSEC | RecordType::NSEC3));
    recs.iter().filter(|x| is(Some(x.record_type())) || is(crate::recursive::rrset::covered_type(x))).cloned().collect()
}

/// The NSEC records (with RRSIGs) a real server sends to deny `name`:
/// the one at `name`, or the one covering it and the one at or covering
/// the wildcard at the closest encloser. Zones without NSEC get
/// [`denial`].
fn minimal_denial(recs: &[Record], name: &Name) -> Vec<Record> {
    use crate::dnssec::denial::closest_encloser;
    use crate::dnssec::nsec_covers;
    let nsecs: Vec<&Record> = recs.iter().filter(|x| x.record_type() == RecordType::NSEC).collect();
    if nsecs.is_empty() {
        return denial(recs);
    }
    let at_or_covering =
        |t: &Name| nsecs.iter().find(|x| x.name() == t).or_else(|| nsecs.iter().find(|x| nsec_covers(t, x))).copied();
    let mut owners: Vec<Name> = Vec::new();
    if let Some(first) = at_or_covering(name) {
        owners.push(first.name().clone());
        if first.name() != name
            && let Some(w) = closest_encloser(name, first).and_then(|ce| ce.prepend_label("*").ok())
            && let Some(second) = at_or_covering(&w)
        {
            owners.push(second.name().clone());
        }
    }
    owners.dedup();
    owners.iter().flat_map(|o| with_sigs(recs, o, RecordType::NSEC)).collect()
}

/// Fills `r` as an authoritative server holding `zones` would.
fn authoritative(zones: &[(Name, Vec<Record>)], qname: &Name, qtype: RecordType, minimal: bool, r: &mut Message) {
    let denial = |recs: &[Record], name: &Name| if minimal { minimal_denial(recs, name) } else { denial(recs) };
    let Some((apex, recs)) = zones.iter().filter(|(z, _)| z.zone_of(qname)).max_by_key(|(z, _)| z.num_labels()) else {
        r.set_response_code(ResponseCode::Refused);
        return;
    };
    let soa_rr = || recs.iter().find(|x| x.record_type() == RecordType::SOA).cloned();
    // Delegations below the apex, highest first.
    let depth = usize::from(qname.num_labels());
    for l in usize::from(apex.num_labels()) + 1..=depth {
        let cut = qname.trim_to(l);
        if cut == *qname && qtype == RecordType::DS {
            break;
        }
        let nss: Vec<Record> =
            recs.iter().filter(|x| *x.name() == cut && x.record_type() == RecordType::NS).cloned().collect();
        if !nss.is_empty() {
            for x in &nss {
                if let RData::NS(t) = x.data() {
                    r.add_additionals(
                        recs.iter()
                            .filter(|g| *g.name() == t.0 && matches!(g.record_type(), RecordType::A | RecordType::AAAA))
                            .cloned(),
                    );
                }
            }
            r.add_name_servers(nss);
            let ds = with_sigs(recs, &cut, RecordType::DS);
            if ds.is_empty() {
                r.add_name_servers(denial(recs, &cut));
            } else {
                r.add_name_servers(ds);
            }
            return;
        }
    }
    r.set_authoritative(true);
    let mut cur = qname.clone();
    for _ in 0..8 {
        // DNAME at an ancestor.
        if let Some(d) = recs
            .iter()
            .find(|x| x.record_type() == RecordType::Unknown(39) && x.name().zone_of(&cur) && *x.name() != cur)
        {
            let target = crate::recursive::rrset::dname_target(d).unwrap_or_else(|| panic!("bad dname"));
            let synth =
                crate::recursive::classify::synthesise(&cur, d.name(), &target).unwrap_or_else(|| panic!("synth"));
            r.add_answers(with_sigs(recs, d.name(), RecordType::Unknown(39)));
            r.add_answer(Record::from_rdata(cur.clone(), d.ttl(), RData::CNAME(CNAME(synth.clone()))));
            if !apex.zone_of(&synth) {
                return;
            }
            cur = synth;
            continue;
        }
        let at: Vec<&Record> = recs.iter().filter(|x| *x.name() == cur).collect();
        if at.iter().any(|x| x.record_type() == qtype) {
            r.add_answers(with_sigs(recs, &cur, qtype));
            return;
        }
        if let Some(c) = at.iter().find(|x| x.record_type() == RecordType::CNAME) {
            r.add_answers(with_sigs(recs, &cur, RecordType::CNAME));
            let RData::CNAME(t) = c.data() else { return };
            if !apex.zone_of(&t.0) {
                return;
            }
            cur = t.0.clone();
            continue;
        }
        let exists = recs.iter().any(|x| cur.zone_of(x.name()));
        // RFC 4592: a wildcard at the closest encloser answers for a name
        // that does not exist (the proofs go along: every NSEC of the zone).
        if !exists {
            let mut encloser = cur.base_name();
            while !recs.iter().any(|x| encloser.zone_of(x.name())) && !encloser.is_root() {
                encloser = encloser.base_name();
            }
            let wild = encloser.prepend_label("*").unwrap_or_else(|e| panic!("{e}"));
            let synth: Vec<Record> = with_sigs(recs, &wild, qtype)
                .into_iter()
                .map(|mut x| {
                    x.set_name(cur.clone());
                    x
                })
                .collect();
            if !synth.is_empty() {
                r.add_answers(synth);
                r.add_name_servers(denial(recs, &cur));
                return;
            }
        }
        // RFC 6604: after a chain the rcode is about its last name.
        if !exists {
            r.set_response_code(ResponseCode::NXDomain);
        }
        r.add_name_servers(soa_rr());
        r.add_name_servers(
            recs.iter().filter(|x| crate::recursive::rrset::covered_type(x) == Some(RecordType::SOA)).cloned(),
        );
        r.add_name_servers(denial(recs, &cur));
        return;
    }
}

/// Runs `res` against `net` until it is done, with a bound on the polls.
pub(crate) fn drive(net: &mut FakeNet, res: &mut crate::recursive::Resolution, now: u64) -> Resolved {
    for _ in 0..1000 {
        match res.poll(now) {
            Step::Send(outs) => {
                assert!(!outs.is_empty());
                for o in outs {
                    let reply = net.exchange(&o);
                    res.on_reply(o.token, reply, now);
                }
            }
            Step::Wait => panic!("waiting with nothing in flight"),
            Step::Done(r) => return r,
        }
    }
    panic!("no answer within 1000 polls")
}

/// A recursor whose root hints are `roots` (name, address).
pub(crate) fn recursor(roots: &[(&str, &str)], tweak: impl FnOnce(&mut RecursiveConfig)) -> Arc<Recursor> {
    recursor_with(roots, tweak, None)
}

/// A recursor as [`recursor`], validating with `anchors`.
pub(crate) fn recursor_with(
    roots: &[(&str, &str)],
    tweak: impl FnOnce(&mut RecursiveConfig),
    anchors: Option<crate::dnssec::TrustAnchors>,
) -> Arc<Recursor> {
    let hints = RootHints::from_servers(roots.iter().map(|(nm, ad)| (n(nm), vec![ip(ad)])).collect())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = RecursiveConfig { hints, ..RecursiveConfig::default() };
    tweak(&mut cfg);
    Arc::new(Recursor::new(cfg, Arc::new(Cache::new(CacheConfig::default())), anchors))
}

/// Resolves `name`/`qtype` on `rec` over `net`; returns the answer and
/// the number of queries it sent.
pub(crate) fn resolve(
    net: &mut FakeNet,
    rec: &Arc<Recursor>,
    name: &str,
    qtype: RecordType,
    now: u64,
) -> (Resolved, usize) {
    resolve_cd(net, rec, name, qtype, false, now)
}

/// [`resolve`] with the client's CD bit as given (DO set).
pub(crate) fn resolve_cd(
    net: &mut FakeNet,
    rec: &Arc<Recursor>,
    name: &str,
    qtype: RecordType,
    cd: bool,
    now: u64,
) -> (Resolved, usize) {
    let before = net.log.len();
    let mut res = rec.start(Question::new(&n(name), qtype), true, cd, now);
    let out = drive(net, &mut res, now);
    assert_eq!(res.queries_sent() as usize, net.log.len() - before);
    (out, net.log.len() - before)
}
