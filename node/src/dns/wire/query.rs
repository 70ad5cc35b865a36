//! A DNS query parsed in place (RFC 1035 §4.1, RFC 6891 §6.1).
//!
//! [`Query::parse`] checks everything the query path relies on and keeps
//! only offsets into the received bytes: nothing is copied or allocated.

use super::name::{MAX_NAME_LEN, plain_name_len};
use super::{HEADER_LEN, read_u16, read_u32};
use crate::dns::edns::Edns;
use crate::dns::iana::{Class, Opcode, Rtype};

/// The fixed header fields a response needs to echo (RFC 1035 §4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Query ID.
    pub id: u16,
    /// The second 16-bit word: QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
}

impl Header {
    /// Reads the header, if the message is long enough to have one.
    pub fn parse(msg: &[u8]) -> Option<Header> {
        Some(Header { id: read_u16(msg, 0)?, flags: read_u16(msg, 2)? })
    }
    /// The QR bit: set on responses.
    pub fn is_response(self) -> bool {
        self.flags & 0x8000 != 0
    }
    /// The OPCODE field.
    pub fn opcode(self) -> Opcode {
        Opcode(((self.flags >> 11) & 0x0f) as u8)
    }
    /// The RD bit (copied into responses, RFC 1035 §4.1.1).
    pub fn recursion_desired(self) -> bool {
        self.flags & 0x0100 != 0
    }
    /// The CD bit. An authoritative server clears it in its responses (RFC
    /// 4035 §3.1.6); a recursive one copies it (§3.2.2).
    pub fn checking_disabled(self) -> bool {
        self.flags & 0x0010 != 0
    }
}

/// Why a query could not be answered normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Shorter than a header, or a response (QR set): no reply is sent.
    #[error("not a query")]
    Drop,
    /// Malformed: answered with FORMERR (RFC 1035 §4.1.1). Carries the
    /// header so the reply has the right id, and the question end if the
    /// question itself was readable.
    #[error("malformed query: {reason}")]
    FormErr {
        /// The query header, echoed in the FORMERR reply.
        header: Header,
        /// End of the question section, if it parsed.
        question_end: Option<usize>,
        /// What was wrong, for logs.
        reason: &'static str,
    },
}

/// A query whose header, question and OPT record parsed.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The received bytes.
    pub msg: &'a [u8],
    /// The header.
    pub header: Header,
    /// QNAME as received (case preserved), including the root label.
    pub qname: &'a [u8],
    /// QTYPE.
    pub qtype: Rtype,
    /// QCLASS.
    pub qclass: Class,
    /// End offset of the question section.
    pub question_end: usize,
    /// The EDNS OPT record, if present (RFC 6891 §6.1.1).
    pub edns: Option<Edns>,
}

impl<'a> Query<'a> {
    /// Parses a query. See [`QueryError`] for how failures are answered.
    pub fn parse(msg: &'a [u8]) -> Result<Query<'a>, QueryError> {
        let header = Header::parse(msg).ok_or(QueryError::Drop)?;
        if header.is_response() || msg.len() < HEADER_LEN {
            return Err(QueryError::Drop);
        }
        let formerr = |question_end, reason| QueryError::FormErr { header, question_end, reason };
        let count = |pos| read_u16(msg, pos).unwrap_or(0);
        let (qdcount, ancount, nscount, arcount) = (count(4), count(6), count(8), count(10));
        // RFC 1035 §4.1.2 allows several questions, but no server answers
        // more than one; RFC 9619 makes QDCOUNT != 1 a FORMERR.
        if qdcount != 1 {
            return Err(formerr(None, "QDCOUNT is not 1"));
        }
        let qname_len = plain_name_len(msg, HEADER_LEN).map_err(|_| formerr(None, "bad QNAME"))?;
        let qname_end = HEADER_LEN + qname_len;
        let (Some(qtype), Some(qclass)) = (read_u16(msg, qname_end), read_u16(msg, qname_end + 2)) else {
            return Err(formerr(None, "question runs past the end"));
        };
        let question_end = qname_end + 4;
        let qname = &msg[HEADER_LEN..qname_end];
        debug_assert!(qname.len() <= MAX_NAME_LEN);
        // RFC 1995 §3: an IXFR query carries the client's SOA in authority.
        let authority_allowed = if Rtype(qtype) == Rtype::IXFR { 1 } else { 0 };
        if header.opcode() == Opcode::QUERY && (ancount != 0 || nscount > authority_allowed) {
            return Err(formerr(Some(question_end), "a query carries answer or authority records"));
        }
        let edns = if header.opcode() == Opcode::QUERY {
            parse_additional(msg, question_end, nscount, arcount)
                .map_err(|reason| formerr(Some(question_end), reason))?
        } else {
            // NOTIFY and UPDATE messages have sections of their own; their
            // handlers parse them. Here only the question matters.
            None
        };
        Ok(Query { msg, header, qname, qtype: Rtype(qtype), qclass: Class(qclass), question_end, edns })
    }
}

/// Skips `nscount` authority records (an IXFR's SOA), then walks the
/// additional section of a QUERY: at most one OPT, owned by the root
/// (RFC 6891 §6.1.1); other records (e.g. TSIG) are skipped over, not trusted.
fn parse_additional(msg: &[u8], mut pos: usize, nscount: u16, arcount: u16) -> Result<Option<Edns>, &'static str> {
    for _ in 0..nscount {
        let owner_len = skip_name(msg, pos).ok_or("bad owner name in authority section")?;
        let rdlen = read_u16(msg, pos + owner_len + 8).ok_or("truncated authority record")? as usize;
        pos += owner_len + 10 + rdlen;
        if pos > msg.len() {
            return Err("authority record runs past the end");
        }
    }
    let mut edns = None;
    for _ in 0..arcount {
        let owner_len = skip_name(msg, pos).ok_or("bad owner name in additional section")?;
        let rr = pos + owner_len;
        let rtype = read_u16(msg, rr).ok_or("truncated additional record")?;
        let class = read_u16(msg, rr + 2).ok_or("truncated additional record")?;
        let ttl = read_u32(msg, rr + 4).ok_or("truncated additional record")?;
        let rdlen = read_u16(msg, rr + 8).ok_or("truncated additional record")? as usize;
        let rdata = msg.get(rr + 10..rr + 10 + rdlen).ok_or("RDATA runs past the end")?;
        if Rtype(rtype) == Rtype::OPT {
            if edns.is_some() {
                return Err("more than one OPT record");
            }
            if owner_len != 1 {
                return Err("OPT record not owned by the root");
            }
            edns = Some(Edns::from_opt(class, ttl, rdata).ok_or("malformed EDNS option")?);
        }
        pos = rr + 10 + rdlen;
    }
    if pos != msg.len() {
        return Err("trailing bytes after the last record");
    }
    Ok(edns)
}

/// Length of a possibly compressed name at `pos` (only its bytes at `pos`).
pub(crate) fn skip_name(msg: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos;
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1 - pos),
            1..=63 => at += 1 + len as usize,
            0xc0..=0xff => {
                msg.get(at + 1)?;
                return Some(at + 2 - pos);
            }
            _ => return None,
        }
        if at - pos > MAX_NAME_LEN {
            return None;
        }
    }
}
