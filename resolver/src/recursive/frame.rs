//! One lookup of a resolution: the client's question, or the address of
//! a name server. It walks down from the closest known zone cut (RFC 1034
//! §5.3.3 steps 2–4) and follows CNAME/DNAME chains.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::Recursor;
use super::classify::Class;
use super::delegation::{Delegation, Lookup, addr_of, is_local};
use super::minimise::Minimiser;
use super::rrset::{DNAME, dname_target, without_synthesised};
use super::store::{store_negative, store_referral, store_rrsets};
use crate::Transport;
use crate::cache::Rank;
use crate::types::{Ede, Millis, Question, Resolved, Security};

/// Why a frame runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The client's question.
    Client,
    /// Addresses of this name server of the frame below.
    NsAddr(Name),
    /// A DS or DNSKEY RRset the validation needs.
    Dnssec,
}

/// What a frame wants next.
pub(crate) enum Action {
    /// Ask `ip` this question.
    Send { ip: IpAddr, transport: Transport, edns: bool, asked: Question },
    /// Run this lookup first (a name server's address).
    Push(Box<Frame>),
    /// The lookup is over.
    Finish(Resolved),
}

/// The question a query asked, and how.
#[derive(Clone, Debug)]
pub(crate) struct Asked {
    pub(crate) ip: IpAddr,
    pub(crate) transport: Transport,
    pub(crate) edns: bool,
    pub(crate) q: Question,
}

/// One lookup (see the module docs).
pub(crate) struct Frame {
    pub(crate) q: Question,
    pub(crate) purpose: Purpose,
    /// The name being resolved now: `q.name`, or where a chain led.
    pub(crate) target: Name,
    /// CNAME/DNAME records followed so far, with RRSIGs.
    pub(crate) chain: Vec<Record>,
    pub(crate) depth: u32,
    pub(crate) deleg: Option<Delegation>,
    pub(crate) min: Minimiser,
    /// A query to repeat at once (TC → TCP, FORMERR → no EDNS, or the
    /// full name after a minimised query failed).
    pub(crate) retry: Option<(IpAddr, Transport, bool)>,
    pub(crate) outcome: Option<Resolved>,
    /// Negative answers may be synthesised from validated NSEC records
    /// (RFC 8198): the client's question, validated, CD clear.
    pub(crate) aggressive: bool,
}

impl Frame {
    pub(crate) fn new(q: Question, purpose: Purpose, depth: u32, minimise: bool) -> Self {
        Frame {
            target: q.name.clone(),
            q,
            purpose,
            chain: Vec::new(),
            depth,
            deleg: None,
            min: Minimiser::new(minimise, 0),
            retry: None,
            outcome: None,
            aggressive: false,
        }
    }

    /// What to do next. `stack` holds the questions of the frames below
    /// (for loop detection).
    pub(crate) fn next(&mut self, rec: &Recursor, stack: &[(Name, RecordType)], now: Millis) -> Action {
        if let Some(r) = self.outcome.take() {
            return Action::Finish(r);
        }
        while self.deleg.is_none() {
            let before = self.target.clone();
            if let Some(done) = self.answer_from_cache(rec, now) {
                return Action::Finish(done);
            }
            if self.target != before {
                continue; // a cached CNAME: look again (follow() bounds the chain)
            }
            let ds = self.q.qtype == RecordType::DS;
            let d = Delegation::closest(&self.target, ds, &rec.cache, &rec.cfg.hints, now);
            self.min = Minimiser::new(rec.cfg.qname_minimisation && self.min.on, usize::from(d.zone.num_labels()));
            self.deleg = Some(d);
        }
        let Some(deleg) = self.deleg.as_mut() else {
            return Action::Finish(servfail(0, "no delegation"));
        };
        let asked_name = self.min.next_name(&self.target);
        let qtype = if asked_name == self.target { self.q.qtype } else { RecordType::A };
        let asked = Question::new(&asked_name, qtype);
        if let Some((ip, transport, edns)) = self.retry.take() {
            return Action::Send { ip, transport, edns, asked };
        }
        let candidates: Vec<IpAddr> = deleg
            .servers
            .iter()
            .flat_map(|s| s.addrs.iter().copied())
            .filter(|ip| !deleg.tried.contains(ip) && (rec.cfg.query_loopback || !is_local(ip)))
            .collect();
        if let Some(ip) = rec.infra.select(&candidates, &deleg.zone, rec.next_pick(), now) {
            deleg.tried.push(ip);
            let edns = !rec.infra.no_edns(ip, now);
            return Action::Send { ip, transport: Transport::Udp, edns, asked };
        }
        // No address left to try: look up a server's address (glueless or
        // out-of-bailiwick NS), within the fan-out and depth bounds.
        let depth = self.depth + 1;
        for s in deleg.servers.iter_mut() {
            let qtype = match s.lookup {
                Lookup::NotTried if deleg.fanout < rec.cfg.max_ns_fanout && depth <= rec.cfg.max_depth => {
                    deleg.fanout += 1;
                    RecordType::A
                }
                Lookup::NeedAaaa => RecordType::AAAA,
                _ => continue,
            };
            let looping = stack.iter().any(|(n, t)| *n == s.name && matches!(t, RecordType::A | RecordType::AAAA))
                || (self.target == s.name && matches!(self.q.qtype, RecordType::A | RecordType::AAAA));
            if looping {
                s.lookup = Lookup::Done;
                continue;
            }
            s.lookup = if qtype == RecordType::A { Lookup::A } else { Lookup::Aaaa };
            let q = Question::new(&s.name, qtype);
            let f = Frame::new(q, Purpose::NsAddr(s.name.clone()), depth, rec.cfg.qname_minimisation);
            return Action::Push(Box::new(f));
        }
        let zone = deleg.zone.to_ascii();
        Action::Finish(servfail(Ede::NO_REACHABLE_AUTHORITY, format!("no reachable authority for {zone}")))
    }

    /// Answers from the cache, or follows a cached CNAME (then returns
    /// `None` with `target` moved on).
    fn answer_from_cache(&mut self, rec: &Recursor, now: Millis) -> Option<Resolved> {
        let cache = &rec.cache;
        let q = Question::new(&self.target, self.q.qtype);
        // Referral data never answers a client (RFC 2181 §5.4.1), but the
        // validator may use a DS RRset from a referral: its signature is
        // checked all the same, and it saves a query per zone cut.
        let min_rank =
            if self.purpose == Purpose::Dnssec && q.qtype == RecordType::DS { Rank::Authority } else { Rank::Answer };
        if let Some(hit) = cache.rrset(&q.name, q.qtype, now).filter(|h| h.entry.rank >= min_rank) {
            let mut answer = self.chain.clone();
            answer.extend(hit.records_with_ttl());
            return Some(self.resolved(ResponseCode::NoError, answer, Vec::new(), hit.entry.security));
        }
        // RFC 6672 §3.2: a DNAME at an ancestor redirects the name; the
        // CNAME is synthesised here, as the server would have.
        let mut up = q.name.clone();
        while up.num_labels() > 0 && q.qtype != DNAME {
            up = up.base_name();
            let Some(hit) = cache.rrset(&up, DNAME, now).filter(|h| h.entry.rank >= Rank::Answer) else { continue };
            let target = hit.entry.records.iter().find_map(dname_target)?;
            let synth = super::classify::synthesise(&q.name, &up, &target)?;
            let mut records = hit.records_with_ttl();
            records.push(Record::from_rdata(
                q.name.clone(),
                hit.ttl_left,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(synth.clone())),
            ));
            if let Err(e) = self.follow(rec, records, synth) {
                return Some(e);
            }
            return None;
        }
        if q.qtype != RecordType::CNAME
            && let Some(hit) = cache.rrset(&q.name, RecordType::CNAME, now).filter(|h| h.entry.rank >= Rank::Answer)
        {
            let target = hit.entry.records.iter().find_map(|r| match r.data() {
                RData::CNAME(c) => Some(c.0.to_lowercase()),
                _ => None,
            })?;
            if let Err(e) = self.follow(rec, hit.records_with_ttl(), target) {
                return Some(e);
            }
            return None;
        }
        if let Some(neg) = cache.negative(&q, now) {
            let mut auth = neg.entry.authority.clone();
            for r in &mut auth {
                r.set_ttl(r.ttl().min(neg.ttl_left));
            }
            let rcode = if neg.entry.nxdomain { ResponseCode::NXDomain } else { ResponseCode::NoError };
            return Some(self.resolved(rcode, self.chain.clone(), auth, neg.entry.security));
        }
        // RFC 8020: below a name that does not exist, nothing exists. The
        // ancestor's denial proves the target's too (its NSEC covers the
        // whole subtree; its NSEC3 closest encloser is the same).
        let mut up = q.name.clone();
        while up.num_labels() > 1 {
            up = up.base_name();
            if let Some(neg) = cache.negative(&Question::new(&up, q.qtype), now).filter(|n| n.entry.nxdomain) {
                let mut auth = neg.entry.authority.clone();
                for r in &mut auth {
                    r.set_ttl(r.ttl().min(neg.ttl_left));
                }
                return Some(self.resolved(ResponseCode::NXDomain, self.chain.clone(), auth, neg.entry.security));
            }
        }
        // RFC 8198: validated NSEC records covering the name (and the
        // wildcard at its closest encloser) deny it with no query. The
        // answer is validated again as any cached one is.
        if self.aggressive
            && let Some(s) = rec.aggressive.synthesise(&q.name, q.qtype, now)
        {
            tracing::trace!(name = %q.name, qtype = %q.qtype, nx = s.nxdomain, "aggressive NSEC answer");
            let rcode = if s.nxdomain { ResponseCode::NXDomain } else { ResponseCode::NoError };
            return Some(self.resolved(rcode, self.chain.clone(), s.authority, Security::Secure));
        }
        None
    }

    /// Appends `records` (CNAME/DNAME and RRSIGs) to the chain and moves
    /// on to `target`, within the chain bound and without loops.
    fn follow(&mut self, rec: &Recursor, records: Vec<Record>, target: Name) -> Result<(), Resolved> {
        self.chain.extend(records);
        self.check_chain(rec)?;
        let seen = target == self.q.name
            || self.chain.iter().any(|r| r.record_type() == RecordType::CNAME && *r.name() == target);
        if seen {
            return Err(servfail(0, format!("CNAME loop at {target}")));
        }
        self.target = target;
        self.deleg = None;
        Ok(())
    }

    fn resolved(
        &self,
        rcode: ResponseCode,
        answer: Vec<Record>,
        authority: Vec<Record>,
        security: Security,
    ) -> Resolved {
        Resolved { rcode, answer, authority, security, ede: None }
    }

    /// Takes in a classified reply to `asked`.
    pub(crate) fn handle(&mut self, rec: &Recursor, class: Class, asked: &Asked, aa: bool, now: Millis) {
        let Some(deleg) = self.deleg.as_mut() else { return };
        let zone = deleg.zone.clone();
        let minimised = asked.q.name != self.target;
        let infra = &rec.infra;
        let cache = &rec.cache;
        let sec = Security::Indeterminate;
        match class {
            Class::Error(rcode) => {
                if minimised && self.min.on {
                    // Relaxed minimisation: ask this server the full name.
                    self.min.on = false;
                    self.retry = Some((asked.ip, asked.transport, asked.edns));
                    return;
                }
                tracing::debug!(server = %asked.ip, %zone, %rcode, "server failed; lame for the zone");
                infra.set_lame(asked.ip, &zone, now);
            }
            Class::Lame(why) => {
                tracing::debug!(server = %asked.ip, %zone, why, "lame server");
                infra.set_lame(asked.ip, &zone, now);
            }
            Class::Referral { cut, ns, glue, authority } => {
                if self.q.qtype == RecordType::DS && !minimised && cut == self.target {
                    // DS lives at the parent: a referral to the child is wrong.
                    infra.set_lame(asked.ip, &zone, now);
                    return;
                }
                store_referral(cache, &cut, &ns, &glue, &authority, now);
                let mut d = Delegation::from_referral(cut.clone(), &ns, &glue, cache, now);
                d.referral_authority = authority;
                if d.servers.is_empty() {
                    infra.set_lame(asked.ip, &zone, now);
                    return;
                }
                self.min.base = self.min.base.max(usize::from(cut.num_labels()));
                if minimised {
                    self.min.count += 1;
                }
                self.deleg = Some(d);
            }
            Class::NxDomain { authority, .. } if minimised => {
                // RFC 8020: nothing exists below a name that does not exist.
                store_negative(cache, &asked.q, true, &authority, sec, now);
                self.outcome = Some(self.resolved(ResponseCode::NXDomain, self.chain.clone(), authority, sec));
            }
            Class::Answer { .. } | Class::NoData { .. } | Class::Redirect { .. } if minimised => {
                self.min.advance(&asked.q.name);
                deleg.tried.clear();
            }
            Class::Answer { chain, data, proofs } => {
                let rank = if aa { Rank::AuthoritativeAnswer } else { Rank::Answer };
                store_rrsets(cache, &without_synthesised(&chain), rank, sec, now);
                store_rrsets(cache, &data, rank, sec, now);
                let mut answer = self.chain.clone();
                answer.extend(chain);
                answer.extend(data);
                self.outcome = Some(self.resolved(ResponseCode::NoError, answer, proofs, sec));
            }
            Class::Redirect { chain, target } => {
                let rank = if aa { Rank::AuthoritativeAnswer } else { Rank::Answer };
                store_rrsets(cache, &without_synthesised(&chain), rank, sec, now);
                if let Err(e) = self.follow(rec, chain, target) {
                    self.outcome = Some(e);
                }
            }
            Class::NxDomain { chain, authority } => self.negative(rec, true, chain, authority, aa, now),
            Class::NoData { chain, authority } => self.negative(rec, false, chain, authority, aa, now),
        }
    }

    /// A negative answer (after `chain`): cached for the name the chain
    /// ends at (RFC 2308 §5; RFC 6604 §3: the rcode is about that name).
    fn negative(&mut self, rec: &Recursor, nx: bool, chain: Vec<Record>, auth: Vec<Record>, aa: bool, now: Millis) {
        let sec = Security::Indeterminate;
        let rank = if aa { Rank::AuthoritativeAnswer } else { Rank::Answer };
        store_rrsets(&rec.cache, &chain, rank, sec, now);
        let end = chain_target(&chain).unwrap_or_else(|| self.target.clone());
        store_negative(&rec.cache, &Question::new(&end, self.q.qtype), nx, &auth, sec, now);
        self.chain.extend(chain);
        if let Err(e) = self.check_chain(rec) {
            self.outcome = Some(e);
            return;
        }
        let rcode = if nx { ResponseCode::NXDomain } else { ResponseCode::NoError };
        self.outcome = Some(self.resolved(rcode, self.chain.clone(), auth, sec));
    }

    /// Takes in the outcome of a lookup for the addresses of `ns`.
    pub(crate) fn deliver(&mut self, ns: &Name, res: &Resolved) {
        let Some(deleg) = self.deleg.as_mut() else { return };
        let Some(s) = deleg.servers.iter_mut().find(|s| s.name == *ns) else { return };
        for ip in res
            .answer
            .iter()
            .filter(|r| *r.name() == chain_target(&res.answer).unwrap_or_else(|| ns.clone()))
            .filter_map(addr_of)
        {
            if !s.addrs.contains(&ip) {
                s.addrs.push(ip);
            }
        }
        s.lookup = match s.lookup {
            Lookup::A if s.addrs.is_empty() => Lookup::NeedAaaa,
            _ => Lookup::Done,
        };
    }

    /// The chain bound (RFC 1034 §3.6.2 asks resolvers to stop at loops
    /// and long chains).
    fn check_chain(&self, rec: &Recursor) -> Result<(), Resolved> {
        let links = self.chain.iter().filter(|r| matches!(r.record_type(), RecordType::CNAME | DNAME)).count();
        if links > rec.cfg.max_cname_chain as usize {
            return Err(servfail(0, format!("CNAME chain longer than {}", rec.cfg.max_cname_chain)));
        }
        Ok(())
    }
}

/// Where a chain of CNAMEs (including those synthesised from DNAMEs)
/// leads: the target of its last CNAME.
pub(crate) fn chain_target(chain: &[Record]) -> Option<Name> {
    chain.iter().rev().find_map(|r| match r.data() {
        RData::CNAME(c) => Some(c.0.to_lowercase()),
        _ => None,
    })
}

/// A SERVFAIL with EDE `code` and `text`.
pub(crate) fn servfail(code: u16, text: impl Into<String>) -> Resolved {
    Resolved::servfail(Some(Ede::new(code, text)))
}
