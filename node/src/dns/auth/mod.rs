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
    answer_parsed(Query::parse(msg), zones, out, transport, cfg)
}

/// [`answer`] for a message the caller has already parsed (TCP parses
/// first to route zone transfers, and should not parse twice).
pub fn answer_parsed(
    parsed: Result<Query<'_>, QueryError>,
    zones: &ZoneSet,
    out: &mut [u8],
    transport: Transport,
    cfg: &AnswerConfig,
) -> Option<Answered> {
    let q = match parsed {
        Ok(q) => q,
        Err(QueryError::Drop) => return None,
        Err(QueryError::FormErr { header, .. }) => {
            // RFC 1035 §4.1.1 FORMERR; no question echoed, since it may be what was malformed.
            let b = ResponseBuilder::new(out, MIN_UDP_PAYLOAD as usize, None, false)?;
            let len = b.finish(header.id, header.flags, ResponseFlags::default(), Rcode::FORMERR, None);
            return Some(Answered { len, rcode: Rcode::FORMERR, qtype: None, truncated: false });
        }
    };
    let limit = size_limit(transport, q.edns, cfg);
    let opt = q.edns.map(|e| OptOut { udp_payload: cfg.udp_payload, dnssec_ok: e.dnssec_ok });
    let question = &q.msg[crate::dns::wire::HEADER_LEN..q.question_end];
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

/// A REFUSED response to `msg` (RFC 1035 §4.1.1), for a client an access
/// list turns away ([`crate::acl`]): the question echoed, nothing else.
/// `None` when `msg` is not a query at all (no reply).
pub fn refuse(msg: &[u8], out: &mut [u8], transport: Transport, cfg: &AnswerConfig) -> Option<Answered> {
    let q = Query::parse(msg).ok()?;
    let limit = size_limit(transport, q.edns, cfg);
    let opt = q.edns.map(|e| OptOut { udp_payload: cfg.udp_payload, dnssec_ok: e.dnssec_ok });
    let question = &q.msg[crate::dns::wire::HEADER_LEN..q.question_end];
    let b = ResponseBuilder::new(out, limit, Some(question), opt.is_some())?;
    let len = b.finish(q.header.id, q.header.flags, ResponseFlags::default(), Rcode::REFUSED, opt);
    Some(Answered { len, rcode: Rcode::REFUSED, qtype: Some(q.qtype), truncated: false })
}

/// The largest response `transport` may carry (RFC 1035 §4.2.1, RFC 6891
/// §6.2.5): 65535 on TCP; on UDP 512, or the client's EDNS payload capped
/// at ours.
pub(crate) fn size_limit(transport: Transport, edns: Option<Edns>, cfg: &AnswerConfig) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, Some(Edns { udp_payload, .. })) => {
            udp_payload.min(cfg.udp_payload).max(MIN_UDP_PAYLOAD) as usize
        }
        (Transport::Udp, None) => MIN_UDP_PAYLOAD as usize,
    }
}

/// Checks that `q` parsed as a query (used by the transfer module).
pub fn parse(msg: &[u8]) -> Result<Query<'_>, QueryError> {
    Query::parse(msg)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    /// The demo zone plus a second zone, with CNAME and DNAME chains
    /// between them, so mutated queries reach cross-zone lookups too.
    fn demo_zones() -> Arc<ZoneSet> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap_or_else(|e| panic!("{e}"));
        let demo = crate::zone::DEMO_ZONE.to_owned() + "cross IN CNAME cdn.io.\nloop IN CNAME back.io.\n";
        std::fs::write(zones.join("example.com.zone"), demo).unwrap_or_else(|e| panic!("{e}"));
        let io = "$ORIGIN io.\n@ SOA ns h 1 3600 600 86400 30\n@ NS ns\nns A 192.0.2.2\ncdn A 198.51.100.7\n\
                  back CNAME loop.example.com.\ndn DNAME example.com.\n";
        std::fs::write(zones.join("io.zone"), io).unwrap_or_else(|e| panic!("{e}"));
        let store = crate::zone::store::ZoneStore::new(&zones, &dir.path().join("data"));
        let report = store.reload().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.failures(), 0, "{report:?}");
        // The snapshots stay mapped after the directory is removed.
        store.current_full()
    }

    /// A valid query for `www.example.com. A` with EDNS, to mutate.
    const SEED: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x07example\x03com\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
    /// `loop.dn.io. A`: a DNAME into the demo zone, then CNAMEs between the
    /// two zones until the chain limit.
    const SEED_CROSS: &[u8] = b"\x12\x35\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x04loop\x02dn\x02io\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

    fn check(msg: &[u8], zones: &ZoneSet) {
        let mut out = vec![0u8; 65535];
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Some(a) = answer(msg, zones, &mut out, transport, &AnswerConfig::default()) {
                let limit = if transport == Transport::Udp { 1232 } else { 65535 };
                assert!(a.len <= limit, "response of {} bytes over the {limit} limit", a.len);
                // Every response we send must itself be a well-formed message.
                let parsed = hickory_proto::op::Message::from_vec(&out[..a.len]);
                assert!(parsed.is_ok(), "unparseable response {:?} to {msg:02x?}", parsed.err());
            }
        }
    }

    #[test]
    fn the_seed_query_is_answered() {
        let zones = demo_zones();
        let mut out = vec![0u8; 65535];
        for seed in [SEED, SEED_CROSS] {
            let a = answer(seed, &zones, &mut out, Transport::Udp, &AnswerConfig::default());
            assert_eq!(a.map(|a| a.rcode), Some(Rcode::NOERROR));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            check(&bytes, &demo_zones_cached());
        }

        #[test]
        fn mutated_queries_never_panic_and_answers_parse(
            cross in any::<bool>(),
            flips in proptest::collection::vec((0usize..SEED.len(), any::<u8>()), 1..6),
            cut in 0usize..=SEED.len(),
        ) {
            let mut msg = if cross { SEED_CROSS.to_vec() } else { SEED.to_vec() };
            for (at, b) in flips {
                if let Some(byte) = msg.get_mut(at) {
                    *byte = b;
                }
            }
            msg.truncate(cut.max(12));
            check(&msg, &demo_zones_cached());
        }
    }

    fn demo_zones_cached() -> Arc<ZoneSet> {
        use std::sync::OnceLock;
        static ZONES: OnceLock<Arc<ZoneSet>> = OnceLock::new();
        ZONES.get_or_init(demo_zones).clone()
    }
}
