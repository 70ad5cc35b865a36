//! Outgoing zone transfers: AXFR (RFC 5936) over TCP, to clients in the
//! `transfer.allow` networks, and IXFR (RFC 1995). An IXFR whose serial is
//! current gets the SOA alone; one from a serial a replicated zone's
//! history can chain from gets the increments (see
//! [`crate::replicated::ixfr`]); any other (a zone from files, a serial
//! too old) gets the full zone in AXFR form, which §4 of that RFC permits.
//!
//! Who may transfer (checked first, before any other work; a refused
//! client costs no recompile and reads no zone):
//! 1. the client's address must be in `transfer.allow` (else REFUSED);
//! 2. a TSIG record, if the request carries one, must verify with a key
//!    of `transfer.keys` (else NOTAUTH with the TSIG error, RFC 8945
//!    §5.2; unsigned, as §5.3.2 requires);
//! 3. when `transfer.keys` is set, the request must be signed (else
//!    NOTAUTH, as Knot answers a request no ACL rule admits).
//!
//! A signed request gets every message of its answer signed (RFC 8945
//! §5.3.1), so `dig -y` and secondaries verify the whole transfer.
//!
//! The zone is read from one snapshot for the whole transfer, so a reload
//! in the middle cannot mix two versions.

use std::collections::HashMap;
use std::net::IpAddr;

use domain::base::{Message, MessageBuilder, ParsedName, StaticCompressor};
use domain::rdata::AllRecordData;
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, Key, KeyName, ServerSequence};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::SharedRef;
use crate::dns::auth::Answered;
use crate::dns::edns::DEFAULT_UDP_PAYLOAD;
use crate::dns::iana::{Rcode, Rtype};
use crate::dns::wire::HEADER_LEN;
use crate::dns::wire::builder::{Full, OptOut, Owner, ResponseBuilder, ResponseFlags, Section};
use crate::dns::wire::name::{MAX_NAME_LEN, lowercase_into};
use crate::dns::wire::query::Query;
use crate::metrics::IxfrKind;
use crate::zone::snapshot::Snapshot;
use meshdns_schemas::zone_snapshot::Node;

/// Target size of one transfer message; a record too big for it gets a
/// message of its own up to 65535 bytes.
const MESSAGE_TARGET: usize = 16 * 1024;

/// The keys of `transfer.keys`, as a TSIG key store.
pub type TransferKeys = HashMap<(KeyName, Algorithm), Key>;

/// Parses `transfer.keys` (`ALGORITHM:NAME:BASE64`, as `dig -y` takes it).
pub fn parse_transfer_keys(specs: &[String]) -> Result<TransferKeys, crate::replicated::update::KeyError> {
    let mut keys = HashMap::new();
    for spec in specs {
        let key = crate::replicated::update::parse_key(spec)?;
        keys.insert((key.name().clone(), key.algorithm()), key);
    }
    Ok(keys)
}

/// Signs each message of one transfer (RFC 8945 §5.3.1), or not at all.
type Signer = Option<ServerSequence<Key>>;

/// Who may have this transfer: `Ok` with the signer for its answer, or
/// `Err` with the whole refusal to send. Looks at nothing but the request
/// and the configuration.
fn admit(q: &Query<'_>, peer: IpAddr, shared: &SharedRef) -> Result<Signer, Refusal> {
    let zone = || crate::dns::wire::name::to_text(q.qname);
    if !shared.config.acl.transfer.permits(peer) {
        shared.metrics.record_acl_refused(crate::acl::AclKind::Transfer);
        tracing::info!(%peer, zone = %zone(), "zone transfer refused by the transfer access list (acl.transfer / transfer.allow)");
        return Err(Refusal::Rcode(Rcode::REFUSED));
    }
    // Parsed once more only to verify TSIG: `q` is the query path's view.
    let Ok(mut msg) = Message::from_octets(q.msg.to_vec()) else { return Err(Refusal::Rcode(Rcode::FORMERR)) };
    let specs: Vec<String> = shared.config.transfer_keys.iter().map(|k| k.expose().to_owned()).collect();
    let keys = parse_transfer_keys(&specs).unwrap_or_default();
    match ServerSequence::request(&keys, &mut msg, Time48::now()) {
        Ok(Some(seq)) => Ok(Some(seq)),
        Ok(None) if keys.is_empty() => Ok(None),
        Ok(None) => {
            tracing::info!(%peer, zone = %zone(), "zone transfer refused: not signed with a key of transfer.keys");
            Err(Refusal::Rcode(Rcode::NOTAUTH))
        }
        Err(e) => {
            tracing::info!(%peer, zone = %zone(), "zone transfer refused: bad TSIG (unknown key, bad signature or time)");
            Err(crate::replicated::update::tsig_error_answer(e, &msg)
                .map_or(Refusal::Rcode(Rcode::NOTAUTH), Refusal::Message))
        }
    }
}

/// A transfer refused: an RCODE, or a whole TSIG error answer.
enum Refusal {
    Rcode(Rcode),
    Message(Vec<u8>),
}

/// Serves one AXFR/IXFR query on `stream`. `out` must hold 2 + 65535 bytes.
pub async fn serve(
    stream: &mut TcpStream,
    q: &Query<'_>,
    peer: IpAddr,
    shared: &SharedRef,
    out: &mut [u8],
) -> std::io::Result<Answered> {
    let opt = q.edns.map(|e| OptOut { udp_payload: DEFAULT_UDP_PAYLOAD, dnssec_ok: e.dnssec_ok });
    let question = &q.msg[HEADER_LEN..q.question_end];
    let idle = shared.config.tcp_idle_timeout;
    let mut lower = [0u8; MAX_NAME_LEN];
    let qname = &mut lower[..q.qname.len()];
    lowercase_into(q.qname, qname);
    // The access check comes before any other work.
    let mut signer = match admit(q, peer, shared) {
        Ok(s) => s,
        Err(Refusal::Message(m)) => {
            send_bytes(stream, &m, idle).await?;
            return Ok(Answered { len: m.len(), rcode: Rcode::NOTAUTH, qtype: Some(q.qtype), truncated: false });
        }
        Err(Refusal::Rcode(rcode)) => {
            let b = ResponseBuilder::new(&mut out[2..], 65535, Some(question), opt.is_some()).ok_or_else(too_big)?;
            let len = b.finish(q.header.id, q.header.flags, ResponseFlags::default(), rcode, opt);
            send(stream, out, len, idle, &mut None).await?;
            return Ok(Answered { len, rcode, qtype: Some(q.qtype), truncated: false });
        }
    };
    let mut zones = shared.store.current_full();
    if zones.get(qname).is_none() {
        // RFC 5936 §2.2.1: not authoritative for that zone.
        let b = ResponseBuilder::new(&mut out[2..], 65535, Some(question), opt.is_some()).ok_or_else(too_big)?;
        let len = b.finish(q.header.id, q.header.flags, ResponseFlags::default(), Rcode::NOTAUTH, opt);
        send(stream, out, len, idle, &mut signer).await?;
        return Ok(Answered { len, rcode: Rcode::NOTAUTH, qtype: Some(q.qtype), truncated: false });
    }
    // A transfer carries one compiled version, with the serial an SOA query
    // shows: changes still answered from an overlay are compiled first
    // (only for a client that may transfer: nobody else makes us compile).
    if zones.get(qname).is_some_and(|z| !z.overlay().is_empty())
        && let Some(replicated) = shared.replicated.get()
    {
        let (replicated, zone) = (replicated.clone(), qname.to_vec());
        let _ = tokio::task::spawn_blocking(move || replicated.compact_zone(&zone)).await;
        zones = shared.store.current_full();
    }
    let Some(zone) = zones.get(qname) else {
        return Err(too_big());
    };
    if q.qtype == Rtype::IXFR
        && let Some(theirs) = ixfr_client_serial(q)
        && let Some(listed) = incremental(shared, qname, zone, theirs)
    {
        let (kind, records) = listed;
        shared.metrics.record_ixfr(kind);
        let total = send_listed(stream, &records, question, q, opt, out, idle, &mut signer).await?;
        tracing::info!(%peer, zone = %crate::dns::wire::name::to_text(qname), from = theirs, to = zone.serial(), ?kind, bytes = total, "IXFR sent");
        return Ok(Answered { len: total, rcode: Rcode::NOERROR, qtype: Some(q.qtype), truncated: false });
    }
    if q.qtype == Rtype::IXFR {
        shared.metrics.record_ixfr(IxfrKind::Full);
    }
    let mut cursor = RecordCursor::new();
    let mut first = true;
    let mut total = 0;
    while !cursor.done() {
        let len = fill(zone, &mut cursor, &mut out[2..], first.then_some(question), q, opt)?;
        send(stream, out, len, idle, &mut signer).await?;
        total += len;
        first = false;
    }
    tracing::info!(%peer, zone = %crate::dns::wire::name::to_text(qname), bytes = total, signed = signer.is_some(), "zone transfer sent");
    Ok(Answered { len: total, rcode: Rcode::NOERROR, qtype: Some(q.qtype), truncated: false })
}

/// The serial of the SOA an IXFR query carries in its authority section
/// (RFC 1995 §3), if it carries one.
fn ixfr_client_serial(q: &Query<'_>) -> Option<u32> {
    let nscount = crate::dns::wire::read_u16(q.msg, 8)?;
    if nscount != 1 {
        return None;
    }
    let pos = q.question_end + crate::dns::wire::query::skip_name(q.msg, q.question_end)?;
    if crate::dns::wire::read_u16(q.msg, pos)? != Rtype::SOA.0 {
        return None;
    }
    let rdlen = crate::dns::wire::read_u16(q.msg, pos + 8)? as usize;
    let rdata = q.msg.get(pos + 10..pos + 10 + rdlen)?;
    crate::replicated::ixfr::soa_serial(rdata)
}

/// A record to send, borrowed: owner (wire), type, TTL, RDATA.
type Listed<'a> = (&'a [u8], Rtype, u32, &'a [u8]);

/// The records answering an IXFR from serial `theirs`, when it can be
/// answered without the whole zone: the SOA alone when the client is
/// current (RFC 1995 §2), or the increments (§4). Returns which, and the
/// records (owned, so no lock is held while sending).
fn incremental(
    shared: &SharedRef,
    qname: &[u8],
    zone: &Snapshot,
    theirs: u32,
) -> Option<(IxfrKind, Vec<crate::replicated::ixfr::Record>)> {
    let current = zone.serial();
    // RFC 1982: the client's serial is the server's, or newer.
    if theirs == current || (theirs.wrapping_sub(current) as i32) > 0 {
        let (name, rtype, ttl, rdata) = RecordCursor::soa(zone)?;
        return Some((IxfrKind::Current, vec![(name.0[..name.1].to_vec(), rtype.0, ttl, rdata.to_vec())]));
    }
    let steps = shared.replicated.get()?.ixfr_steps(qname, theirs, current)?;
    let last = steps.last()?.new_soa.clone();
    let mut out = vec![last.clone()];
    for s in &steps {
        out.push(s.old_soa.clone());
        out.extend(s.removed.iter().cloned());
        out.push(s.new_soa.clone());
        out.extend(s.added.iter().cloned());
    }
    out.push(last);
    Some((IxfrKind::Incremental, out))
}

/// Sends `records` in as few messages as fit, the question in the first.
#[allow(clippy::too_many_arguments)]
async fn send_listed(
    stream: &mut TcpStream,
    records: &[crate::replicated::ixfr::Record],
    question: &[u8],
    q: &Query<'_>,
    opt: Option<OptOut>,
    out: &mut [u8],
    idle: std::time::Duration,
    signer: &mut Signer,
) -> std::io::Result<usize> {
    let listed: Vec<Listed<'_>> = records.iter().map(|r| (r.0.as_slice(), Rtype(r.1), r.2, r.3.as_slice())).collect();
    let mut at = 0;
    let mut total = 0;
    while at < listed.len() {
        let (len, next) = fill_listed(&listed, at, &mut out[2..], (at == 0).then_some(question), q, opt)?;
        send(stream, out, len, idle, signer).await?;
        total += len;
        at = next;
    }
    Ok(total)
}

/// Fills one message from `listed[at..]`; returns its length and where the
/// next message starts.
fn fill_listed(
    listed: &[Listed<'_>],
    at: usize,
    buf: &mut [u8],
    question: Option<&[u8]>,
    q: &Query<'_>,
    opt: Option<OptOut>,
) -> std::io::Result<(usize, usize)> {
    for limit in [MESSAGE_TARGET, 65535] {
        let mut b = ResponseBuilder::new(buf, limit, question, opt.is_some()).ok_or_else(too_big)?;
        let mut next = at;
        for &(owner, rtype, ttl, rdata) in &listed[at..] {
            let mark = b.mark();
            if b.record(Section::Answer, Owner::Name(owner), rtype, ttl, rdata).is_err() {
                b.rollback(mark);
                break;
            }
            next += 1;
        }
        if next > at {
            let flags = ResponseFlags { authoritative: true, truncated: false };
            return Ok((b.finish(q.header.id, q.header.flags, flags, Rcode::NOERROR, opt), next));
        }
    }
    Err(too_big())
}

fn too_big() -> std::io::Error {
    std::io::Error::other("transfer message does not fit")
}

/// Sends the `len`-byte message at `out[2..]`, signed by `signer` if the
/// request was signed.
async fn send(
    stream: &mut TcpStream,
    out: &mut [u8],
    len: usize,
    idle: std::time::Duration,
    signer: &mut Signer,
) -> std::io::Result<()> {
    if let Some(seq) = signer.as_mut() {
        let signed =
            sign(seq, &out[2..2 + len]).ok_or_else(|| std::io::Error::other("cannot sign a transfer message"))?;
        return send_bytes(stream, &signed, idle).await;
    }
    out[..2].copy_from_slice(&(len as u16).to_be_bytes());
    // A secondary that stops reading gives up its slot after the idle timeout.
    match tokio::time::timeout(idle, stream.write_all(&out[..2 + len])).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading the transfer")),
    }
}

/// Sends one whole message with its length prefix.
async fn send_bytes(stream: &mut TcpStream, msg: &[u8], idle: std::time::Duration) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| too_big())?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    match tokio::time::timeout(idle, stream.write_all(&framed)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading the transfer")),
    }
}

/// `built` (a message of ours) rebuilt with its TSIG record, the next of
/// the sequence (RFC 8945 §5.3.1). The records are copied as they are;
/// only the OPT record is written again (no other additional records
/// occur in a transfer answer).
fn sign(seq: &mut ServerSequence<Key>, built: &[u8]) -> Option<Vec<u8>> {
    let parsed = Message::from_octets(built).ok()?;
    let mut b = MessageBuilder::from_target(StaticCompressor::new(Vec::new())).ok()?;
    *b.header_mut() = parsed.header();
    let mut qb = b.question();
    for question in parsed.question() {
        qb.push(question.ok()?).ok()?;
    }
    let mut ab = qb.answer();
    for rr in parsed.answer().ok()? {
        let rec = rr.ok()?.to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>().ok()?;
        ab.push(rec).ok()?;
    }
    let mut add = ab.additional();
    if let Some(opt) = parsed.opt() {
        let (size, dnssec_ok) = (opt.udp_payload_size(), opt.dnssec_ok());
        add.opt(|o| {
            o.set_udp_payload_size(size);
            o.set_dnssec_ok(dnssec_ok);
            Ok(())
        })
        .ok()?;
    }
    seq.answer(&mut add, Time48::now()).ok()?;
    Some(add.finish().into_target())
}

/// Fills one message with as many records as fit.
fn fill(
    zone: &Snapshot,
    cursor: &mut RecordCursor,
    buf: &mut [u8],
    question: Option<&[u8]>,
    q: &Query<'_>,
    opt: Option<OptOut>,
) -> std::io::Result<usize> {
    for limit in [MESSAGE_TARGET, 65535] {
        let mut b = ResponseBuilder::new(buf, limit, question, opt.is_some()).ok_or_else(too_big)?;
        let start = *cursor;
        let mut wrote = 0;
        while let Some((owner, rtype, ttl, rdata)) = cursor.peek(zone) {
            let mark = b.mark();
            let owner_buf = owner;
            if b.record(Section::Answer, Owner::Name(&owner_buf.0[..owner_buf.1]), rtype, ttl, rdata)
                .map_err(|Full| ())
                .is_err()
            {
                b.rollback(mark);
                break;
            }
            wrote += 1;
            cursor.advance();
        }
        if wrote > 0 || cursor.done() {
            let flags = ResponseFlags { authoritative: true, truncated: false };
            return Ok(b.finish(q.header.id, q.header.flags, flags, Rcode::NOERROR, opt));
        }
        *cursor = start;
    }
    Err(too_big())
}

/// Position in the transfer: the SOA, every RRset, the SOA again (RFC 5936 §2.2).
#[derive(Clone, Copy, Debug)]
struct RecordCursor {
    /// 0 = leading SOA, 1 = body, 2 = trailing SOA, 3 = done.
    phase: u8,
    node: u32,
    rrset: u32,
    /// Byte offset of the next record within the RRset's RDATA list, so
    /// a large RRset is walked once, not once per record.
    offset: u32,
    /// Length (with its 2-byte prefix) of the record `peek` returned.
    peeked: u32,
}

type Name = ([u8; MAX_NAME_LEN], usize);

impl RecordCursor {
    fn new() -> Self {
        RecordCursor { phase: 0, node: 0, rrset: 0, offset: 0, peeked: 0 }
    }

    fn done(&self) -> bool {
        self.phase >= 3
    }

    fn soa(zone: &Snapshot) -> Option<(Name, Rtype, u32, &[u8])> {
        let apex = zone.node(zone.apex())?;
        let soa = zone.rrset_at(&apex, Rtype::SOA.0)?;
        let rdata = zone.records(&soa).next()?;
        Some((name_of(zone, zone.apex()), Rtype::SOA, soa.ttl(), rdata))
    }

    /// The record at the cursor, skipping to the next valid position.
    fn peek<'z>(&mut self, zone: &'z Snapshot) -> Option<(Name, Rtype, u32, &'z [u8])> {
        loop {
            match self.phase {
                0 | 2 => return Self::soa(zone),
                1 => {
                    let Some(node) = zone.node(self.node) else {
                        self.phase = 2;
                        continue;
                    };
                    if self.rrset >= node.rrset_count() as u32 {
                        self.node += 1;
                        self.rrset = 0;
                        self.offset = 0;
                        continue;
                    }
                    let Some(rrset) = zone.rrset(node.rrset_start() + self.rrset) else {
                        self.phase = 2;
                        continue;
                    };
                    if self.node == zone.apex() && rrset.rtype() == Rtype::SOA.0 {
                        self.rrset += 1;
                        continue;
                    }
                    match zone.records_from(&rrset, self.offset as usize).next() {
                        Some(rdata) => {
                            self.peeked = 2 + rdata.len() as u32;
                            return Some((name_of(zone, self.node), Rtype(rrset.rtype()), rrset.ttl(), rdata));
                        }
                        None => {
                            self.rrset += 1;
                            self.offset = 0;
                        }
                    }
                }
                _ => return None,
            }
        }
    }

    fn advance(&mut self) {
        match self.phase {
            0 => self.phase = 1,
            1 => self.offset += self.peeked,
            _ => self.phase = 3,
        }
    }
}

fn name_of(zone: &Snapshot, node: u32) -> Name {
    // Node indices come from the snapshot's own (verified) ranges; the
    // fallback, the origin alone, is never reached in practice.
    let node = zone.node(node).unwrap_or(Node::new(0, 0, 0, 0, 0, 0));
    zone.absolute_name(&node)
}
