//! Forwarding: every question goes to an upstream resolver, chosen by
//! strategy, with conditional forwarding per domain.
//!
//! A [`Forwarder`] holds the configuration and what it knows of each
//! upstream's health (shared by all questions); [`Forwarder::start`]
//! gives a [`Forwarding`], the sans-IO state machine of one question:
//! it sends to one upstream at a time, moves to the next on a timeout, a
//! failure, a broken reply or SERVFAIL/REFUSED, retries over TCP on TC
//! (RFC 7766 §5), and gives up after `max_attempts` with SERVFAIL and an
//! Extended DNS Error naming what each upstream did.
//!
//! Strategies: ordered failover (the first live upstream, in the order
//! given), and fastest by smoothed RTT, where one query in
//! `explore_every` goes to another live upstream so a recovered or faster
//! one is noticed. An upstream that fails `down_after` times in a row is
//! marked down; after `probe_ms` one query probes it, and each further
//! failure doubles the wait (to a minute).
//!
//! DNSSEC in this mode: the upstream validates. A client's DO and CD bits
//! are passed on, and AD is copied from a reply (the data is marked
//! [`Security::Secure`]) — as dnsmasq's `proxy-dnssec`, Blocky and
//! AdGuard Home do; docs/resolver.md says when that is safe.

mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

pub use upstream::{Health, Upstream, UpstreamError};

use crate::exchange::{Outgoing, Reply, Step, Transport};
use crate::types::{Ede, Millis, Question, Resolved, Security};

/// How an upstream is picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The first live upstream in the order given.
    #[default]
    Failover,
    /// The live upstream with the lowest smoothed RTT.
    Fastest,
}

/// The forwarding settings.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// Where questions go by default.
    pub upstreams: Vec<Upstream>,
    /// Conditional forwarding: questions at or below a domain go to its
    /// upstreams instead (the longest matching domain wins).
    pub domains: Vec<(Name, Vec<Upstream>)>,
    /// How to pick.
    pub strategy: Strategy,
    /// Wait for one upstream's reply (ms).
    pub timeout_ms: u64,
    /// Upstreams tried per question, at most.
    pub max_attempts: u32,
    /// Failures in a row that mark an upstream down.
    pub down_after: u32,
    /// How long a down upstream waits before it is probed (ms).
    pub probe_ms: u64,
    /// With [`Strategy::Fastest`], one query in this many explores.
    pub explore_every: u64,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            upstreams: Vec::new(),
            domains: Vec::new(),
            strategy: Strategy::Failover,
            timeout_ms: 1500,
            max_attempts: 3,
            down_after: 3,
            probe_ms: 5_000,
            explore_every: 20,
        }
    }
}

/// Shared by every forwarded question (see the module docs).
pub struct Forwarder {
    cfg: ForwardConfig,
    health: Mutex<HashMap<SocketAddr, Health>>,
    queries: AtomicU64,
}

/// One upstream's state, for `meshdns cache stats` and `/metrics`.
#[derive(Clone, Debug)]
pub struct UpstreamStatus {
    /// Its URL.
    pub url: String,
    /// Its health.
    pub health: Health,
}

impl Forwarder {
    /// A forwarder with `cfg`.
    pub fn new(cfg: ForwardConfig) -> Self {
        Forwarder { cfg, health: Mutex::new(HashMap::new()), queries: AtomicU64::new(0) }
    }

    /// The settings.
    pub fn config(&self) -> &ForwardConfig {
        &self.cfg
    }

    fn health(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Health>> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every upstream and its health.
    pub fn status(&self) -> Vec<UpstreamStatus> {
        let h = self.health();
        let all = self.cfg.upstreams.iter().chain(self.cfg.domains.iter().flat_map(|(_, u)| u));
        all.map(|u| UpstreamStatus { url: u.url.clone(), health: h.get(&u.addr).copied().unwrap_or_default() })
            .collect()
    }

    /// The upstreams for `name`: the longest conditional domain it is at
    /// or below, else the defaults.
    fn group(&self, name: &Name) -> &[Upstream] {
        self.cfg
            .domains
            .iter()
            .filter(|(d, _)| d.zone_of(name))
            .max_by_key(|(d, _)| d.num_labels())
            .map_or(&self.cfg.upstreams, |(_, u)| u)
    }

    /// The order to try the group's upstreams in at `now`.
    fn order(&self, name: &Name, now: Millis) -> Vec<Upstream> {
        let group = self.group(name);
        let n = self.queries.fetch_add(1, Ordering::Relaxed);
        let h = self.health();
        let health = |u: &Upstream| h.get(&u.addr).copied().unwrap_or_default();
        // Live ones first (in the strategy's order), then the down ones,
        // so a question still gets an answer when all are marked down.
        let (mut live, down): (Vec<Upstream>, Vec<Upstream>) = group.iter().cloned().partition(|u| health(u).up(now));
        if self.cfg.strategy == Strategy::Fastest {
            live.sort_by(|a, b| health(a).srtt_ms.total_cmp(&health(b).srtt_ms));
            if live.len() > 1 && self.cfg.explore_every > 0 && n.is_multiple_of(self.cfg.explore_every) {
                let pick = 1 + (n / self.cfg.explore_every) as usize % (live.len() - 1);
                live.swap(0, pick);
            }
        }
        live.extend(down);
        live
    }

    fn record(&self, addr: SocketAddr, now: Millis, good: Option<u64>) {
        let mut h = self.health();
        let e = h.entry(addr).or_default();
        e.sent += 1;
        match good {
            Some(rtt) => e.success(rtt),
            None => e.failure(now, self.cfg.timeout_ms, self.cfg.down_after, self.cfg.probe_ms),
        }
    }

    /// Starts forwarding `q`.
    pub fn start(self: &Arc<Self>, q: Question, dnssec_ok: bool, checking_disabled: bool, now: Millis) -> Forwarding {
        let order = self.order(&q.name, now);
        Forwarding {
            fwd: self.clone(),
            q,
            dnssec_ok,
            checking_disabled,
            order,
            next: 0,
            attempts: 0,
            in_flight: None,
            token: 0,
            done: None,
            retry: None,
            tried: Vec::new(),
        }
    }
}

/// One forwarded question (see the module docs).
pub struct Forwarding {
    fwd: Arc<Forwarder>,
    q: Question,
    dnssec_ok: bool,
    checking_disabled: bool,
    order: Vec<Upstream>,
    next: usize,
    attempts: u32,
    in_flight: Option<(u64, Upstream, Transport)>,
    token: u64,
    done: Option<Resolved>,
    /// The same question again over TCP, after TC.
    retry: Option<Outgoing>,
    /// What each upstream tried did, for the EDE text.
    tried: Vec<String>,
}

impl Forwarding {
    /// What to do next.
    pub fn poll(&mut self, _now: Millis) -> Step {
        if let Some(r) = self.done.take() {
            return Step::Done(r);
        }
        if let Some(o) = self.retry.take() {
            return Step::Send(vec![o]);
        }
        if self.in_flight.is_some() {
            return Step::Wait;
        }
        let limit = self.fwd.cfg.max_attempts.max(1) as usize;
        if self.attempts as usize >= limit || self.next >= self.order.len() {
            let text = if self.order.is_empty() {
                format!("no upstream is configured for {}", self.q.name)
            } else {
                format!("no upstream answered {}: {}", self.q, self.tried.join("; "))
            };
            return Step::Done(Resolved::servfail(Some(Ede::new(Ede::NO_REACHABLE_AUTHORITY, text))));
        }
        let u = self.order[self.next].clone();
        self.next += 1;
        let transport = u.transport;
        Step::Send(vec![self.send(u, transport)])
    }

    fn send(&mut self, u: Upstream, transport: Transport) -> Outgoing {
        self.attempts += 1;
        self.token += 1;
        let out = Outgoing {
            token: self.token,
            server: u.addr,
            transport,
            wire: query_wire(&self.q, self.dnssec_ok, self.checking_disabled),
            question: self.q.clone(),
            timeout_ms: self.fwd.cfg.timeout_ms,
        };
        self.in_flight = Some((self.token, u, transport));
        out
    }

    /// What came of the query named `token`.
    pub fn on_reply(&mut self, token: u64, reply: Reply, now: Millis) {
        let Some((t, u, transport)) = self.in_flight.take() else { return };
        if t != token {
            self.in_flight = Some((t, u, transport));
            return;
        }
        let (wire, rtt) = match reply {
            Reply::Message { wire, rtt_ms } => (wire, rtt_ms),
            Reply::Timeout => return self.failed(&u, now, "timed out"),
            Reply::Failed => return self.failed(&u, now, "unreachable"),
        };
        let msg = match Message::from_vec(&wire) {
            Ok(m) if m.message_type() == MessageType::Response => m,
            _ => return self.failed(&u, now, "sent a malformed reply"),
        };
        if msg.truncated() && transport == Transport::Tcp {
            // RFC 7766 §8: nothing is truncated over TCP; a partial answer
            // must not be cached as the whole.
            return self.failed(&u, now, "sent a truncated reply over TCP");
        }
        if msg.truncated() && transport == Transport::Udp {
            // RFC 7766 §5: the whole answer over TCP, from the same upstream.
            let out = self.send(u, Transport::Tcp);
            self.attempts -= 1;
            self.retry = Some(out);
            return;
        }
        match msg.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            rc => return self.failed(&u, now, &format!("answered {rc}")),
        }
        self.fwd.record(u.addr, now, Some(rtt));
        self.done = Some(resolved_from(msg, self.q.qtype));
    }

    fn failed(&mut self, u: &Upstream, now: Millis, what: &str) {
        self.fwd.record(u.addr, now, None);
        self.tried.push(format!("{} {what}", u.url));
    }
}

/// The query sent upstream: RD (we want recursion), AD (RFC 6840 §5.7:
/// tell us what validated), the client's CD, and EDNS with our payload
/// size and the client's DO.
fn query_wire(q: &Question, dnssec_ok: bool, checking_disabled: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(0)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_authentic_data(true)
        .set_checking_disabled(checking_disabled);
    let mut query = Query::query(q.name.clone(), q.qtype);
    query.set_query_class(q.qclass);
    m.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(crate::response::EDNS_PAYLOAD).set_dnssec_ok(dnssec_ok);
    m.set_edns(edns);
    // Encoding a message we built from a parsed question cannot fail;
    // an empty query would be refused by the driver's checks.
    m.to_vec().unwrap_or_default()
}

/// The client's sections from an upstream's reply: the answer as it is,
/// and from the authority section only what a negative answer needs (the
/// SOA, NSEC/NSEC3 and their signatures) — also when a CNAME chain ends
/// in NODATA or NXDOMAIN (RFC 2308 §2.1, §5: the SOA sets how long that is
/// cached); AD becomes Secure.
fn resolved_from(mut msg: Message, qtype: RecordType) -> Resolved {
    let answer = msg.take_answers();
    let has_data = qtype == RecordType::ANY || answer.iter().any(|r| r.record_type() == qtype);
    let negative = answer.is_empty() || (!has_data && qtype != RecordType::CNAME);
    let authority = if negative {
        msg.take_name_servers()
            .into_iter()
            .filter(|r| {
                matches!(r.record_type(), RecordType::SOA | RecordType::NSEC | RecordType::NSEC3 | RecordType::RRSIG)
            })
            .collect()
    } else {
        Vec::new()
    };
    Resolved {
        rcode: msg.response_code(),
        answer,
        authority,
        security: if msg.authentic_data() { Security::Secure } else { Security::Insecure },
        ede: None,
    }
}

#[cfg(test)]
mod tests;
