//! One client question being resolved: the stack of lookups, the query in
//! flight, and the per-question work bound.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::classify::classify;
use super::frame::{Action, Asked, Frame, Purpose, servfail};
use super::rrset::{RrsetParts, lowercase_owners};
use super::store::mark_security;
use super::validate::{Eval, Mark, Validator, ZoneStatus};
use super::{Recursor, TrustAnchors};
use crate::exchange::{Outgoing, Reply, Step, Transport};
use crate::types::{Millis, Question, Resolved, Security};

/// Bound on the internal steps one poll takes (pushes, pops, cache hits)
/// before it must have something to send or an answer.
const MAX_STEPS_PER_POLL: usize = 1024;
/// EDE 0, Other (RFC 8914 §4.1).
const EDE_OTHER: u16 = 0;

struct Pending {
    token: u64,
    asked: Asked,
}

/// The resolution of one client question (see [`super`]'s docs for the
/// driver's loop).
///
/// The [`Resolved`] it ends with always carries the DNSSEC records that
/// came with the data: each RRset in the answer is followed by its RRSIGs,
/// and a negative answer's authority holds the SOA, the NSEC/NSEC3 proofs
/// and their RRSIGs. The node's response builder drops RRSIG, NSEC and
/// NSEC3 records for clients that did not set DO (RFC 4035 §3.2.1), so
/// one resolution serves both kinds of client.
pub struct Resolution {
    rec: Arc<Recursor>,
    client: Question,
    dnssec_ok: bool,
    checking_disabled: bool,
    frames: Vec<Frame>,
    pending: Option<Pending>,
    sent: u32,
    next_token: u64,
    done: Option<Resolved>,
    /// The client's answer, waiting for validation.
    unvalidated: Option<Resolved>,
    /// DS and DNSKEY lookups made for validation.
    fetched: HashMap<Question, Resolved>,
    /// Zone statuses worked out so far.
    memo: HashMap<Name, ZoneStatus>,
    /// Validation results to record in the cache.
    marks: Vec<Mark>,
    /// The trust anchors as they were when the resolution started, and
    /// their generation (see [`Recursor::set_anchors`]).
    anchors: Option<Arc<TrustAnchors>>,
    anchor_generation: u64,
}

impl Resolution {
    pub(crate) fn new(rec: Arc<Recursor>, q: Question, dnssec_ok: bool, checking_disabled: bool, _now: Millis) -> Self {
        let minimise = rec.cfg.qname_minimisation;
        // The generation before the anchors: if they change in between,
        // the marks are merely skipped.
        let anchor_generation = rec.anchor_generation();
        let anchors = rec.anchors().filter(|_| rec.cfg.validate);
        let mut client = Frame::new(q.clone(), Purpose::Client, 0, minimise);
        // RFC 8198 §4: only validated data is used aggressively, and a CD
        // client asked for data unvalidated.
        client.aggressive = anchors.is_some() && !checking_disabled;
        let frames = vec![client];
        Resolution {
            rec,
            client: q,
            dnssec_ok,
            checking_disabled,
            frames,
            pending: None,
            sent: 0,
            next_token: 1,
            done: None,
            unvalidated: None,
            fetched: HashMap::new(),
            memo: HashMap::new(),
            marks: Vec::new(),
            anchors,
            anchor_generation,
        }
    }

    /// Whether this resolution validates: anchors and validation on when
    /// it started.
    fn validating(&self) -> bool {
        self.anchors.is_some()
    }

    /// The client's question.
    pub fn question(&self) -> &Question {
        &self.client
    }

    /// Whether the client set DO.
    pub fn dnssec_ok(&self) -> bool {
        self.dnssec_ok
    }

    /// Upstream queries sent so far.
    pub fn queries_sent(&self) -> u32 {
        self.sent
    }

    /// What to do next: send queries, wait for their replies, or answer.
    /// Once it returns [`Step::Done`] it returns the same answer again.
    pub fn poll(&mut self, now: Millis) -> Step {
        if let Some(d) = &self.done {
            return Step::Done(d.clone());
        }
        if self.pending.is_some() {
            return Step::Wait;
        }
        for _ in 0..MAX_STEPS_PER_POLL {
            if self.frames.is_empty() {
                let Some(answer) = self.unvalidated.take() else {
                    return self.finish(servfail(EDE_OTHER, "no lookup left"));
                };
                match self.validate(&answer, now) {
                    Eval::Ready(done) => return self.finish(done),
                    Eval::Need(q) => {
                        let minimise = self.rec.cfg.qname_minimisation;
                        self.frames.push(Frame::new(q, Purpose::Dnssec, 0, minimise));
                        self.unvalidated = Some(answer);
                    }
                }
                continue;
            }
            let stack: Vec<(Name, RecordType)> = self.frames.iter().map(|f| (f.target.clone(), f.q.qtype)).collect();
            let Some(top) = self.frames.last_mut() else { continue };
            match top.next(&self.rec, &stack[..stack.len() - 1], now) {
                Action::Send { ip, transport, edns, asked } => {
                    if self.sent >= self.rec.cfg.max_upstream_queries {
                        let text = format!("gave up after {} upstream queries", self.sent);
                        return self.finish(servfail(EDE_OTHER, text));
                    }
                    return self.send(Asked { ip, transport, edns, q: asked }, now);
                }
                Action::Push(f) => self.frames.push(*f),
                Action::Finish(res) => {
                    let Some(f) = self.frames.pop() else { continue };
                    let validate = self.needs_validation(&res);
                    match (self.frames.last_mut(), &f.purpose) {
                        (Some(parent), Purpose::NsAddr(ns)) => parent.deliver(ns, &res),
                        (_, Purpose::Dnssec) => {
                            self.fetched.insert(f.q.clone(), res);
                        }
                        _ if validate => self.unvalidated = Some(res),
                        _ => return self.finish(res),
                    }
                }
            }
        }
        self.finish(servfail(EDE_OTHER, "resolution made no progress"))
    }

    /// Whether `res`, the client's answer, is to be validated: anchors
    /// given, validation on, CD clear (RFC 4035 §3.2.2), and an answer
    /// rather than a failure.
    fn needs_validation(&self, res: &Resolved) -> bool {
        self.validating()
            && !self.checking_disabled
            && matches!(res.rcode, ResponseCode::NoError | ResponseCode::NXDomain)
    }

    /// Validates the client's answer with what was looked up so far; a
    /// Bogus answer becomes SERVFAIL with its EDE (RFC 4035 §5.5).
    fn validate(&mut self, answer: &Resolved, now: Millis) -> Eval<Resolved> {
        let Some(anchors) = self.anchors.clone() else { return Eval::Ready(answer.clone()) };
        let cache = self.rec.cache.clone();
        let cut_of = move |name: &Name| -> Name {
            let mut n = name.clone();
            while !n.is_root() && cache.rrset(&n, RecordType::NS, now).is_none() {
                n = n.base_name();
            }
            n
        };
        let cache = self.rec.cache.clone();
        let known = move |s: &RrsetParts| -> Option<Security> {
            let hit = cache.rrset(&s.name, s.rtype, now)?;
            let sec = hit.entry.security;
            let same = hit.entry.records.len() == s.records.len()
                && s.records.iter().all(|r| hit.entry.records.iter().any(|c| c.data() == r.data()));
            (same && matches!(sec, Security::Secure | Security::Insecure)).then_some(sec)
        };
        let cache = self.rec.cache.clone();
        let known_negative = move |q: &Question| cache.negative(q, now).map(|n| n.entry.security);
        let mut v = Validator {
            anchors: &anchors,
            fetched: &self.fetched,
            memo: &mut self.memo,
            now_s: now / 1000,
            cut_of: &cut_of,
            known: &known,
            known_negative: &known_negative,
            marks: &mut self.marks,
            proof_ttl: None,
        };
        let (security, ede) = match v.answer(&self.client, answer) {
            Eval::Ready(x) => x,
            Eval::Need(q) => return Eval::Need(q),
        };
        let marks = std::mem::take(&mut self.marks);
        // Marks made with withdrawn anchors would outlive the flush.
        if self.rec.anchor_generation() == self.anchor_generation {
            mark_security(&self.rec.cache, &self.client, answer, &marks, security, now);
            if security == Security::Secure {
                self.index_nsecs(answer, now);
            }
        }
        if security == Security::Bogus {
            let mut r = Resolved::servfail(ede);
            r.security = Security::Bogus;
            return Eval::Ready(r);
        }
        Eval::Ready(Resolved { security, ..answer.clone() })
    }

    /// RFC 8198: the NSEC/NSEC3 records of a Secure answer's authority section
    /// (a denial, or a wildcard answer's proof) go into the aggressive
    /// index, with the keys their signer was validated with.
    fn index_nsecs(&self, answer: &Resolved, now: Millis) {
        let denial = |r: &hickory_proto::rr::Record| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3);
        let Some(first) = answer.authority.iter().find(|r| denial(r)) else { return };
        let signer = answer.authority.iter().find_map(|r| match r.data() {
            hickory_proto::rr::RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(s))
                if r.name() == first.name() && s.type_covered() == first.record_type() =>
            {
                Some(s.signer_name().to_lowercase())
            }
            _ => None,
        });
        let Some(zone) = signer else { return };
        if let Some(ZoneStatus::Secure(keys)) = self.memo.get(&zone) {
            self.rec.aggressive.insert(&zone, &answer.authority, keys, now);
        }
    }

    fn send(&mut self, asked: Asked, now: Millis) -> Step {
        let validating = self.validating();
        let wire = match query_wire(&asked.q, asked.edns, self.rec.cfg.edns_payload, validating) {
            Ok(w) => w,
            Err(e) => return self.finish(servfail(EDE_OTHER, format!("cannot encode a query: {e}"))),
        };
        self.sent += 1;
        let token = self.next_token;
        self.next_token += 1;
        let rto = u64::from(self.rec.infra.rto(asked.ip));
        let timeout_ms = match asked.transport {
            Transport::Udp => rto.max(200).min(self.rec.cfg.timeout_ms),
            Transport::Tcp => self.rec.cfg.timeout_ms,
        };
        let out = Outgoing {
            token,
            server: std::net::SocketAddr::new(asked.ip, 53),
            transport: asked.transport,
            wire,
            question: asked.q.clone(),
            timeout_ms,
        };
        tracing::trace!(server = %asked.ip, q = %asked.q, ?asked.transport, now, "query");
        self.pending = Some(Pending { token, asked });
        Step::Send(vec![out])
    }

    fn finish(&mut self, mut res: Resolved) -> Step {
        // CD: data goes out unvalidated, whatever the cache knows of it.
        let unvalidated = self.checking_disabled || !self.validating();
        if unvalidated || (res.rcode == ResponseCode::ServFail && res.security != Security::Bogus) {
            res.security = Security::Indeterminate;
        }
        self.frames.clear();
        self.pending = None;
        self.done = Some(res.clone());
        Step::Done(res)
    }

    /// Takes in what came of the query named `token`; other tokens are
    /// ignored.
    pub fn on_reply(&mut self, token: u64, reply: Reply, now: Millis) {
        let Some(p) = self.pending.take_if(|p| p.token == token) else { return };
        let rec = self.rec.clone();
        let Some(frame) = self.frames.last_mut() else { return };
        let a = p.asked;
        let (wire, rtt_ms) = match reply {
            Reply::Message { wire, rtt_ms } => (wire, rtt_ms),
            Reply::Timeout | Reply::Failed => {
                rec.infra.on_timeout(a.ip, now);
                return;
            }
        };
        // A malformed reply counts as a failed server: another is tried,
        // and this one is skipped for a while as after a timeout.
        let Ok(mut msg) = Message::from_vec(&wire) else {
            rec.infra.on_timeout(a.ip, now);
            return;
        };
        let same_question = msg.queries().len() == 1
            && msg.queries()[0].name().to_lowercase() == a.q.name
            && msg.queries()[0].query_type() == a.q.qtype;
        if msg.message_type() != MessageType::Response || !same_question {
            rec.infra.on_timeout(a.ip, now);
            return;
        }
        rec.infra.on_reply(a.ip, rtt_ms, now);
        if msg.truncated() {
            if a.transport == Transport::Udp {
                frame.retry = Some((a.ip, Transport::Tcp, a.edns));
            }
            return;
        }
        // RFC 6891 §7: FORMERR/NOTIMP without an OPT record means the
        // server does not speak EDNS; ask again without it.
        let rcode = msg.response_code();
        if a.edns && msg.extensions().is_none() && matches!(rcode, ResponseCode::FormErr | ResponseCode::NotImp) {
            rec.infra.set_no_edns(a.ip, now);
            frame.retry = Some((a.ip, a.transport, false));
            return;
        }
        lowercase_owners(&mut msg);
        let Some(zone) = frame.deleg.as_ref().map(|d| d.zone.clone()) else { return };
        let class = classify(&msg, &a.q.name, a.q.qtype, &zone);
        frame.handle(&rec, class, &a, msg.authoritative(), now);
    }
}

/// A query in wire form with ID 0 and RD clear (RFC 1034 §4.3.1: an
/// iterative query); EDNS with DO set when validating (RFC 4035 §4.1).
fn query_wire(q: &Question, edns: bool, payload: u16, dnssec_ok: bool) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut m = Message::new();
    m.set_id(0).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(false);
    m.add_query(Query::query(q.name.clone(), q.qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(payload.max(512)).set_version(0).set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec()
}
