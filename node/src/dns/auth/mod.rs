//! Authoritative answers: RFC 1034 §4.3.2, with RFC 4592 wildcards, RFC 6672
//! DNAME, RFC 2308 negative answers, RFC 6891 EDNS and RFC 8482 minimal ANY.
//!
//! [`answer`] takes the received bytes and writes the whole response into a
//! caller-owned buffer. It does not allocate: names live in stack arrays,
//! the zone is read in place from its snapshot, and pending additional
//! records are a fixed array of slices into the snapshot.
//!
//! Every rcode the data plane sends is decided here ([`Answered::rcode`]).

mod lookup;

use crate::dns::edns::{DEFAULT_UDP_PAYLOAD, Edns, MIN_UDP_PAYLOAD};
use crate::dns::iana::{Class, Opcode, Rcode, Rtype};
use crate::dns::wire::builder::{OptOut, ResponseBuilder, ResponseFlags};
use crate::dns::wire::name::{MAX_NAME_LEN, lowercase_into};
use crate::dns::wire::query::{Query, QueryError};
use crate::zone::set::ZoneSet;

/// Transport the query came over: it sets the size limit (RFC 1035 §4.2.1,
/// RFC 6891 §6.2.5) and whether zone transfers may be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the EDNS payload size capped at ours.
    Udp,
    /// TCP (RFC 7766): 65535 bytes.
    Tcp,
}

/// Settings of the answer path.
#[derive(Clone, Copy, Debug)]
pub struct AnswerConfig {
    /// Largest UDP response, advertised in our OPT record.
    pub udp_payload: u16,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        AnswerConfig { udp_payload: DEFAULT_UDP_PAYLOAD }
    }
}

/// What was answered, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// Length of the response in the output buffer.
    pub len: usize,
    /// The response code (with EDNS extended bits).
    pub rcode: Rcode,
    /// The QTYPE, if the question parsed.
    pub qtype: Option<Rtype>,
    /// Whether TC was set.
    pub truncated: bool,
}

/// Answers one DNS message. `None` means send nothing (not a query at all).
///
/// `out` should be 65535 bytes; the response is cut to the transport's limit.
pub fn answer(
    msg: &[u8],
    zones: &ZoneSet,
    out: &mut [u8],
    transport: Transport,
    cfg: &AnswerConfig,
) -> Option<Answered> {
    let q = match Query::parse(msg) {
        Ok(q) => q,
        Err(QueryError::Drop) => return None,
        Err(QueryError::FormErr { header, .. }) => {
            // RFC 1035 §4.1.1 FORMERR; no question echoed, since it may be what was malformed.
            let b = ResponseBuilder::new(out, MIN_UDP_PAYLOAD as usize, None, false)?;
            let len = b.finish(header.id, header.flags, ResponseFlags::default(), Rcode::FORMERR, None);
            return Some(Answered { len, rcode: Rcode::FORMERR, qtype: None, truncated: false });
        }
    };
    let limit = match (transport, q.edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, Some(Edns { udp_payload, .. })) => {
            udp_payload.min(cfg.udp_payload).max(MIN_UDP_PAYLOAD) as usize
        }
        (Transport::Udp, None) => MIN_UDP_PAYLOAD as usize,
    };
    let opt = q.edns.map(|e| OptOut { udp_payload: cfg.udp_payload, dnssec_ok: e.dnssec_ok });
    let question = &msg[crate::dns::wire::HEADER_LEN..q.question_end];
    let mut b = ResponseBuilder::new(out, limit, Some(question), opt.is_some())?;
    let simple = |b: ResponseBuilder<'_>, rcode: Rcode| {
        let len = b.finish(q.header.id, q.header.flags, ResponseFlags::default(), rcode, opt);
        Some(Answered { len, rcode, qtype: Some(q.qtype), truncated: false })
    };

    // RFC 6891 §6.1.3: only version 0 exists.
    if q.edns.is_some_and(|e| e.version > 0) {
        return simple(b, Rcode::BADVERS);
    }
    if q.header.opcode() != Opcode::QUERY {
        return simple(b, Rcode::NOTIMP);
    }
    if q.qclass != Class::IN && q.qclass != Class::ANY {
        return simple(b, Rcode::REFUSED);
    }
    // Zone transfers are only served over TCP by the transfer module;
    // other meta-types cannot be asked for (RFC 6895 §3.1).
    if q.qtype == Rtype::AXFR || q.qtype == Rtype::IXFR || q.qtype.is_unanswerable_meta() {
        return simple(b, if q.qtype == Rtype::OPT { Rcode::FORMERR } else { Rcode::NOTIMP });
    }

    let mut lower = [0u8; MAX_NAME_LEN];
    let qname = &mut lower[..q.qname.len()];
    lowercase_into(q.qname, qname);
    let Some(zone) = zones.find(qname, q.qtype == Rtype::DS) else {
        // Not ours: RFC 1034 leaves it open; REFUSED is what NSD and Knot send.
        return simple(b, Rcode::REFUSED);
    };
    let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
    let outcome = lookup::resolve(zones, zone, qname, q.qtype, dnssec_ok, &mut b);
    let flags = ResponseFlags { authoritative: outcome.authoritative, truncated: outcome.truncated };
    let len = b.finish(q.header.id, q.header.flags, flags, outcome.rcode, opt);
    Some(Answered { len, rcode: outcome.rcode, qtype: Some(q.qtype), truncated: outcome.truncated })
}

/// Checks that `q` parsed as a query (used by the transfer module).
pub fn parse(msg: &[u8]) -> Result<Query<'_>, QueryError> {
    Query::parse(msg)
}
