//! The response a client gets (RFC 1035 §4.1), built once per resolution
//! into a [`Template`] that every later hit copies out.
//!
//! A template is a whole response in wire form with ID 0: header (QR, RA,
//! the rcode, AD when the data is secure), the question in lowercase, the
//! sections with name compression, and an OPT record last carrying our
//! payload size and any Extended DNS Error (RFC 8914). Next to the bytes
//! it keeps the offset of every TTL field and of the OPT record, so
//! [`Template::write`] can serve it to any client without parsing or
//! allocating: copy, patch the ID and flags, put back the client's
//! spelling of the question (RFC 1034 §3.1: case is preserved), lower the
//! TTLs by the time spent in cache, drop the OPT record for a client that
//! sent none.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::types::{Ede, Millis, Question, Resolved, Security};

/// Our EDNS payload size (the DNS Flag Day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// How long a SERVFAIL is kept (RFC 2308 §7.1 allows up to five
/// minutes; Unbound keeps failures a few seconds so a fixed server is
/// used again soon).
pub const SERVFAIL_TTL: u32 = 5;

const HEADER_LEN: usize = 12;
const FLAG_AA: u8 = 0x04;
const FLAG_TC: u8 = 0x02;
const FLAG_RD: u8 = 0x01;
const FLAG_AD: u8 = 0x20;
const FLAG_CD: u8 = 0x10;

/// A built response, ready to be copied out (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The response with ID 0 and the question lowercased.
    pub wire: Box<[u8]>,
    /// Offset of every TTL field outside the OPT record.
    pub ttl_offsets: Box<[u16]>,
    /// Offset where the OPT record starts (it is last), if there is one.
    pub opt_offset: Option<u16>,
    /// When it was built.
    pub stored_ms: Millis,
    /// Its lifetime in seconds: the smallest TTL in it (RFC 2181 §5.2),
    /// or the negative TTL (RFC 2308 §5).
    pub ttl: u32,
    /// The DNSSEC status it was built with.
    pub security: Security,
}

/// Why a template could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// hickory could not encode a record (a bug or absurd data).
    #[error("cannot encode the response: {0}")]
    Encode(#[from] hickory_proto::ProtoError),
    /// Over 65535 bytes.
    #[error("the response is larger than 65535 bytes")]
    TooLarge,
}

/// What the hit path needs to know of the client's query.
#[derive(Clone, Copy, Debug)]
pub struct ClientQuery<'a> {
    /// The query ID.
    pub id: u16,
    /// RD as the client set it (copied, RFC 1035 §4.1.1).
    pub recursion_desired: bool,
    /// CD as the client set it (copied, RFC 4035 §3.2.2).
    pub checking_disabled: bool,
    /// DO or AD set: the client understands AD (RFC 6840 §5.7, 5.8).
    pub wants_ad: bool,
    /// The client sent an OPT record: keep ours, else drop it.
    pub edns: bool,
    /// The question name as the client spelled it, in wire form.
    pub qname_wire: &'a [u8],
    /// The largest response the transport allows (RFC 6891 §6.2.5).
    pub limit: usize,
}

/// Builds the template for `q` from `resolved` at `now`. `dnssec_ok`:
/// the answer is for a DO client, so RRSIGs and NSEC/NSEC3 records stay;
/// otherwise they are dropped (RFC 4035 §3.2.1) unless asked for by type.
pub fn build(q: &Question, resolved: &Resolved, dnssec_ok: bool, now: Millis) -> Result<Template, BuildError> {
    let keep = |r: &&Record| dnssec_ok || !is_dnssec_type(r.record_type()) || r.record_type() == q.qtype;
    let answer: Vec<Record> = resolved.answer.iter().filter(keep).cloned().collect();
    let authority: Vec<Record> = resolved.authority.iter().filter(keep).cloned().collect();

    let mut msg = Message::new();
    msg.set_id(0)
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_available(true)
        .set_authentic_data(resolved.security == Security::Secure)
        .set_response_code(low_rcode(resolved.rcode));
    msg.add_query(Query::query(q.name.clone(), q.qtype));
    msg.insert_answers(answer);
    msg.insert_name_servers(authority);
    let mut wire = msg.to_vec()?;

    let ttl_offsets = ttl_offsets(&wire).ok_or(BuildError::TooLarge)?;
    let opt_offset = u16::try_from(wire.len()).map_err(|_| BuildError::TooLarge)?;
    push_opt(&mut wire, dnssec_ok, resolved.ede.as_ref());
    if wire.len() > u16::MAX as usize {
        return Err(BuildError::TooLarge);
    }
    let ttl = lifetime(resolved, &wire, &ttl_offsets);
    Ok(Template {
        wire: wire.into_boxed_slice(),
        ttl_offsets: ttl_offsets.into_boxed_slice(),
        opt_offset: Some(opt_offset),
        stored_ms: now,
        ttl,
        security: resolved.security,
    })
}

/// RRSIG, NSEC, NSEC3 (and DNSKEY/DS are ordinary data): what a client
/// without DO does not get (RFC 4035 §3.2.1).
fn is_dnssec_type(t: RecordType) -> bool {
    matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3)
}

/// The 4-bit header rcode (extended rcodes are not produced here).
fn low_rcode(rcode: ResponseCode) -> ResponseCode {
    ResponseCode::from_low(u16::from(rcode) as u8 & 0x0f)
}

/// Appends our OPT record (RFC 6891 §6.1.2) and bumps ARCOUNT.
fn push_opt(wire: &mut Vec<u8>, dnssec_ok: bool, ede: Option<&Ede>) {
    let mut rdata = Vec::new();
    if let Some(ede) = ede {
        // RFC 8914 §2: OPTION-CODE 15, INFO-CODE, then UTF-8 EXTRA-TEXT.
        let text = &ede.text.as_bytes()[..ede.text.len().min(400)];
        rdata.extend_from_slice(&15u16.to_be_bytes());
        rdata.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
        rdata.extend_from_slice(&ede.code.to_be_bytes());
        rdata.extend_from_slice(text);
    }
    wire.push(0); // root owner
    wire.extend_from_slice(&41u16.to_be_bytes());
    wire.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
    // Extended rcode 0, version 0, DO bit (RFC 3225).
    wire.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    wire.extend_from_slice(&rdata);
    let arcount = u16::from_be_bytes([wire[10], wire[11]]).saturating_add(1);
    wire[10..12].copy_from_slice(&arcount.to_be_bytes());
}

/// How long the template may be served (RFC 2181 §5.2, RFC 2308 §5).
fn lifetime(resolved: &Resolved, wire: &[u8], offsets: &[u16]) -> u32 {
    if resolved.rcode == ResponseCode::ServFail {
        return SERVFAIL_TTL;
    }
    let negative = resolved.rcode == ResponseCode::NXDomain || resolved.answer.is_empty();
    if negative {
        // The negative TTL is the SOA's TTL capped by its MINIMUM.
        return resolved
            .authority
            .iter()
            .filter_map(|r| match r.data() {
                RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
                _ => None,
            })
            .min()
            .unwrap_or(0);
    }
    offsets.iter().filter_map(|&o| read_u32(wire, o as usize)).min().unwrap_or(0)
}

fn read_u32(wire: &[u8], at: usize) -> Option<u32> {
    let b = wire.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(wire: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *wire.get(at)?;
        match len & 0xc0 {
            0xc0 => return Some(at + 2),
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + len as usize,
            _ => return None,
        }
    }
}

/// The offsets of the TTL fields of every resource record in `wire`.
fn ttl_offsets(wire: &[u8]) -> Option<Vec<u16>> {
    let count = |i: usize| wire.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut at = HEADER_LEN;
    for _ in 0..qd {
        at = skip_name(wire, at)? + 4;
    }
    let mut out = Vec::with_capacity(an + ns + ar);
    for _ in 0..an + ns + ar {
        at = skip_name(wire, at)?;
        let ttl_at = at + 4;
        let rdlen = count(at + 8)?;
        out.push(u16::try_from(ttl_at).ok()?);
        at = ttl_at + 6 + rdlen;
        if at > wire.len() {
            return None;
        }
    }
    Some(out)
}

impl Template {
    /// The response code.
    pub fn rcode(&self) -> u8 {
        self.wire.get(3).map_or(0, |b| b & 0x0f)
    }

    /// Seconds left at `now` (0 once expired).
    pub fn ttl_left(&self, now: Millis) -> u32 {
        let age = now.saturating_sub(self.stored_ms) / 1000;
        self.ttl.saturating_sub(age.min(u64::from(u32::MAX)) as u32)
    }

    /// Writes the response for `client` into `out` at `now`; `stale_ttl`
    /// sets every TTL to that value (RFC 8767 §4) instead of counting
    /// down. Returns the length, or `None` if `out` is too small even for
    /// a truncated reply or the question does not fit this template.
    /// Allocates nothing.
    pub fn write(
        &self,
        out: &mut [u8],
        client: &ClientQuery<'_>,
        now: Millis,
        stale_ttl: Option<u32>,
    ) -> Option<usize> {
        let qname_end = HEADER_LEN + client.qname_wire.len();
        // The same name in any case (label lengths never look like letters:
        // they are at most 63).
        if !self.wire.get(HEADER_LEN..qname_end)?.eq_ignore_ascii_case(client.qname_wire) {
            return None;
        }
        let full = if client.edns { self.wire.len() } else { self.opt_offset.map_or(self.wire.len(), usize::from) };
        if full > client.limit {
            return self.write_truncated(out, client);
        }
        let out = out.get_mut(..full)?;
        out.copy_from_slice(&self.wire[..full]);
        self.patch_header(out, client, false);
        out[HEADER_LEN..qname_end].copy_from_slice(client.qname_wire);
        let age = (now.saturating_sub(self.stored_ms) / 1000).min(u64::from(u32::MAX)) as u32;
        for &o in self.ttl_offsets.iter() {
            let o = o as usize;
            if let Some(field) = out.get_mut(o..o + 4) {
                let stored = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                let ttl = stale_ttl.unwrap_or_else(|| stored.saturating_sub(age));
                field.copy_from_slice(&ttl.to_be_bytes());
            }
        }
        if !client.edns && self.opt_offset.is_some() {
            let arcount = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
            out[10..12].copy_from_slice(&arcount.to_be_bytes());
        }
        Some(full)
    }

    /// RFC 2181 §9: too big for the transport — the header and question
    /// with TC set (and our OPT for an EDNS client), so it retries on TCP.
    fn write_truncated(&self, out: &mut [u8], client: &ClientQuery<'_>) -> Option<usize> {
        let question_end = HEADER_LEN + client.qname_wire.len() + 4;
        let opt: &[u8] = match (client.edns, self.opt_offset) {
            // Our OPT without its options: 11 bytes.
            (true, Some(o)) => self.wire.get(o as usize..o as usize + 11)?,
            _ => &[],
        };
        let len = question_end + opt.len();
        let out = out.get_mut(..len)?;
        out[..question_end].copy_from_slice(self.wire.get(..question_end)?);
        out[question_end..].copy_from_slice(opt);
        if !opt.is_empty() {
            out[len - 2..].copy_from_slice(&[0, 0]);
        }
        self.patch_header(out, client, true);
        out[HEADER_LEN..HEADER_LEN + client.qname_wire.len()].copy_from_slice(client.qname_wire);
        out[6..10].fill(0);
        out[10..12].copy_from_slice(&u16::from(!opt.is_empty()).to_be_bytes());
        Some(len)
    }

    fn patch_header(&self, out: &mut [u8], client: &ClientQuery<'_>, truncated: bool) {
        out[..2].copy_from_slice(&client.id.to_be_bytes());
        let mut f2 = out[2] & !(FLAG_RD | FLAG_TC | FLAG_AA);
        if client.recursion_desired {
            f2 |= FLAG_RD;
        }
        if truncated {
            f2 |= FLAG_TC;
        }
        out[2] = f2;
        let mut f3 = out[3] & !FLAG_CD;
        if client.checking_disabled {
            f3 |= FLAG_CD;
        }
        // RFC 6840 §5.8: AD only for a client that showed it understands it.
        if !client.wants_ad {
            f3 &= !FLAG_AD;
        }
        out[3] = f3;
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn positive() -> (Question, Resolved) {
        let q = Question::new(&name("www.example."), RecordType::A);
        let r = Resolved {
            rcode: ResponseCode::NoError,
            answer: vec![
                Record::from_rdata(name("www.example."), 300, RData::A(A::new(192, 0, 2, 1))),
                Record::from_rdata(name("www.example."), 300, RData::A(A::new(192, 0, 2, 2))),
            ],
            authority: Vec::new(),
            security: Security::Secure,
            ede: None,
        };
        (q, r)
    }

    fn client<'a>(qname: &'a [u8], edns: bool, limit: usize) -> ClientQuery<'a> {
        ClientQuery {
            id: 0xbeef,
            recursion_desired: true,
            checking_disabled: false,
            wants_ad: true,
            edns,
            qname_wire: qname,
            limit,
        }
    }

    const WWW_MIXED: &[u8] = b"\x03WwW\x07ExAmPlE\x00";

    #[test]
    fn a_hit_keeps_the_clients_case_and_id_and_counts_ttls_down() {
        let (q, r) = positive();
        let t = build(&q, &r, false, 1_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.ttl, 300);
        let mut out = [0u8; 512];
        let len = t.write(&mut out, &client(WWW_MIXED, true, 1232), 101_000, None).unwrap_or_else(|| panic!("none"));
        let m = Message::from_vec(&out[..len]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.id(), 0xbeef);
        assert!(m.recursion_available() && m.recursion_desired() && m.authentic_data() && !m.authoritative());
        assert_eq!(m.queries()[0].name().to_string(), "WwW.ExAmPlE.");
        assert!(m.answers().iter().all(|r| r.ttl() == 200), "{:?}", m.answers());
        assert!(m.extensions().is_some());
        // Without EDNS the OPT record goes; without DO/AD no AD bit.
        let mut c = client(WWW_MIXED, false, 512);
        c.wants_ad = false;
        let len = t.write(&mut out, &c, 1_000, Some(30)).unwrap_or_else(|| panic!("none"));
        let m = Message::from_vec(&out[..len]).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.extensions().is_none() && !m.authentic_data());
        assert!(m.answers().iter().all(|r| r.ttl() == 30));
    }

    #[test]
    fn too_big_for_the_client_gives_tc_with_the_question() {
        let (q, mut r) = positive();
        for i in 0..60 {
            r.answer.push(Record::from_rdata(name("www.example."), 60, RData::A(A::new(10, 0, 0, i))));
        }
        let t = build(&q, &r, false, 0).unwrap_or_else(|e| panic!("{e}"));
        let mut out = [0u8; 2048];
        let len = t.write(&mut out, &client(WWW_MIXED, false, 512), 0, None).unwrap_or_else(|| panic!("none"));
        let m = Message::from_vec(&out[..len]).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.truncated() && m.answers().is_empty() && m.queries().len() == 1);
        let len = t.write(&mut out, &client(WWW_MIXED, true, 1232), 0, None).unwrap_or_else(|| panic!("none"));
        assert_eq!(Message::from_vec(&out[..len]).map(|m| m.answers().len()).ok(), Some(62));
    }

    #[test]
    fn negative_answers_live_for_the_soa_minimum_and_carry_the_ede() {
        let q = Question::new(&name("nope.example."), RecordType::A);
        let soa = SOA::new(name("ns.example."), name("h.example."), 1, 3600, 600, 86400, 60);
        let r = Resolved {
            rcode: ResponseCode::NXDomain,
            answer: Vec::new(),
            authority: vec![Record::from_rdata(name("example."), 3600, RData::SOA(soa))],
            security: Security::Insecure,
            ede: Some(Ede::new(Ede::DNSSEC_BOGUS, "why")),
        };
        let t = build(&q, &r, false, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.ttl, 60);
        let mut out = [0u8; 512];
        let qn = b"\x04nope\x07example\x00";
        let len = t.write(&mut out, &client(qn, true, 1232), 0, None).unwrap_or_else(|| panic!("none"));
        let m = Message::from_vec(&out[..len]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        let opt = m.extensions().as_ref().unwrap_or_else(|| panic!("no OPT"));
        assert!(opt.options().get(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15)).is_some());
        assert_eq!(build(&q, &Resolved::servfail(None), false, 0).map(|t| t.ttl).ok(), Some(SERVFAIL_TTL));
    }

    #[test]
    fn a_question_of_another_length_is_refused_not_garbled() {
        let (q, r) = positive();
        let t = build(&q, &r, false, 0).unwrap_or_else(|e| panic!("{e}"));
        let mut out = [0u8; 512];
        assert!(t.write(&mut out, &client(b"\x02ww\x07example\x00", true, 1232), 0, None).is_none());
    }
}
