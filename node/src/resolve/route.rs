//! Where a query goes (see the module docs of [`super`]).

use std::net::IpAddr;

use meshdns_resolver::cache::{L1Key, WorkerCache};
use meshdns_resolver::response::ClientQuery;

use crate::dns::auth::{Answered, Transport, answer_parsed, size_limit};
use crate::dns::iana::{Class, Opcode, Rcode, Rtype};
use crate::dns::wire::name::{MAX_NAME_LEN, lowercase_into};
use crate::dns::wire::query::Query;
use crate::replicated::writer::Reply;
use crate::server::Shared;
use crate::zone::set::ZoneSet;

/// A received query: its bytes, who sent it, and over what.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// The message.
    pub msg: &'a [u8],
    /// The client's address.
    pub client: IpAddr,
    /// UDP or TCP (sets the size limit).
    pub transport: Transport,
}

/// What became of a query.
pub enum Routed {
    /// Answered into the output buffer (or `None`: send nothing).
    Now(Option<Answered>),
    /// Handed to the resolver, which answers it later through the reply.
    Later,
}

/// Routes one admitted query: our zones, then (for clients allowed to
/// recurse) the cache — `l1`, the calling worker's own, then the shared
/// levels — then resolution. `reply` is called only when the answer must
/// come later.
pub fn route(
    shared: &Shared,
    zones: &ZoneSet,
    incoming: Incoming<'_>,
    out: &mut [u8],
    l1: Option<&mut WorkerCache>,
    reply: impl FnOnce() -> Option<Reply>,
) -> Routed {
    let Incoming { msg, client, transport } = incoming;
    let parsed = Query::parse(msg);
    let Some(svc) = shared.resolver.as_ref() else {
        return Routed::Now(answer_parsed(parsed, zones, out, transport, &shared.answer));
    };
    let q = match parsed {
        Ok(q) if recursable(&q) => q,
        other => return Routed::Now(answer_parsed(other, zones, out, transport, &shared.answer)),
    };
    let mut lower = [0u8; MAX_NAME_LEN];
    let qname = &mut lower[..q.qname.len()];
    lowercase_into(q.qname, qname);
    // 1. Our zones, authoritatively.
    let ours = zones.find(qname, q.qtype == Rtype::DS).is_some();
    if ours || !svc.settings().may_recurse(client) {
        if !ours {
            svc.stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        return Routed::Now(answer_parsed(Ok(q), zones, out, transport, &shared.answer));
    }
    // 2. The filtering hook: nothing yet (issue 14).
    // 3. The cache, then 4. resolution.
    let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
    let cd = q.header.checking_disabled();
    let Some(key) = L1Key::from_wire(q.qname, q.qtype.0, Class::IN.0, dnssec_ok, cd) else {
        return Routed::Now(answer_parsed(Ok(q), zones, out, transport, &shared.answer));
    };
    let client_query = ClientQuery {
        id: q.header.id,
        recursion_desired: q.header.recursion_desired(),
        checking_disabled: cd,
        wants_ad: dnssec_ok || q.header.flags & 0x0020 != 0,
        edns: q.edns.is_some(),
        qname_wire: q.qname,
        limit: size_limit(transport, q.edns, &shared.answer),
    };
    let now = super::drive::now_ms();
    if let Some(len) = svc.from_cache(&key, &client_query, out, now, l1) {
        return Routed::Now(Some(answered(out, len, q.qtype)));
    }
    // RFC 1035 §4.1.1: without RD the client wants no recursion; it gets
    // what the cache has, and otherwise what it would get without us.
    if !q.header.recursion_desired() {
        return Routed::Now(answer_parsed(Ok(q), zones, out, transport, &shared.answer));
    }
    let Some(reply) = reply() else { return Routed::Now(None) };
    svc.submit(&key, &client_query, reply, now);
    Routed::Later
}

/// A query the resolver may take: a standard query, class IN, EDNS
/// version 0, not a meta-type (zone transfers and the like stay with the
/// authoritative path, which answers them as before).
fn recursable(q: &Query<'_>) -> bool {
    q.header.opcode() == Opcode::QUERY
        && q.qclass == Class::IN
        && q.edns.is_none_or(|e| e.version == 0)
        && !(q.qtype == Rtype::AXFR || q.qtype == Rtype::IXFR || q.qtype.is_unanswerable_meta())
}

fn answered(out: &[u8], len: usize, qtype: Rtype) -> Answered {
    let rcode = Rcode(u16::from(out.get(3).map_or(0, |b| b & 0x0f)));
    let truncated = out.get(2).is_some_and(|b| b & 0x02 != 0);
    Answered { len, rcode, qtype: Some(qtype), truncated }
}
