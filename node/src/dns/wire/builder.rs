//! Writes a response into a caller-owned buffer (RFC 1035 §4.1).
//!
//! The builder never allocates: the buffer is reused across queries and the
//! compression table is a fixed array. Names are compressed against every
//! name written before them (RFC 1035 §4.1.4), including the question, so
//! an answer owned by the QNAME costs two bytes and keeps the query's case.

use super::HEADER_LEN;
use crate::dns::edns::OPT_RR_LEN;
use crate::dns::iana::{CompressibleName, Rcode, Rtype};

/// The three record sections of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer section.
    Answer = 0,
    /// Authority section.
    Authority = 1,
    /// Additional section.
    Additional = 2,
}

/// The owner name of a record being written.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'n> {
    /// The QNAME, written as a pointer to the question (case preserved).
    Question,
    /// Any other absolute wire name.
    Name(&'n [u8]),
}

/// The response does not fit in the size limit; the builder is unchanged
/// since the last [`ResponseBuilder::mark`] the caller rolls back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

const MAX_COMPRESSION_ENTRIES: usize = 96;

/// A position to roll back to after a record that did not fit.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pos: usize,
    counts: [u16; 3],
    entries: usize,
}

/// Response writer; see the module docs.
pub struct ResponseBuilder<'b> {
    buf: &'b mut [u8],
    pos: usize,
    limit: usize,
    counts: [u16; 3],
    /// (offset of a label start, uncompressed length of the name from there).
    entries: [(u16, u8); MAX_COMPRESSION_ENTRIES],
    n_entries: usize,
    /// Whether the question section was written (QDCOUNT 1 or 0).
    has_question: bool,
}

impl<'b> ResponseBuilder<'b> {
    /// Starts a response: copies the question (as received, so its case is
    /// preserved) and reserves room for an OPT record if `reserve_opt`.
    ///
    /// `limit` is the largest message allowed (512, the EDNS payload size, or
    /// 65535 on TCP). Returns `None` if the question alone does not fit, which
    /// cannot happen for a question that came in a query of at most `limit`.
    pub fn new(buf: &'b mut [u8], limit: usize, question: Option<&[u8]>, reserve_opt: bool) -> Option<Self> {
        let limit = limit.min(buf.len()).checked_sub(if reserve_opt { OPT_RR_LEN } else { 0 })?;
        let mut b = ResponseBuilder {
            buf,
            pos: HEADER_LEN,
            limit,
            counts: [0; 3],
            entries: [(0, 0); MAX_COMPRESSION_ENTRIES],
            n_entries: 0,
            has_question: question.is_some(),
        };
        if let Some(q) = question {
            let end = HEADER_LEN.checked_add(q.len())?;
            if end > b.limit {
                return None;
            }
            b.buf[HEADER_LEN..end].copy_from_slice(q);
            // The question's QNAME is a compression target.
            let name_len = q.len().checked_sub(4)?;
            b.remember_labels(HEADER_LEN, &q[..name_len]);
            b.pos = end;
        }
        Some(b)
    }

    /// Current length of the message.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing but the header has been written.
    pub fn is_empty(&self) -> bool {
        self.pos == HEADER_LEN
    }

    /// Records written so far in `section`.
    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// A point to come back to with [`Self::rollback`].
    pub fn mark(&self) -> Mark {
        Mark { pos: self.pos, counts: self.counts, entries: self.n_entries }
    }

    /// Forgets everything written since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        self.pos = mark.pos;
        self.counts = mark.counts;
        self.n_entries = mark.entries;
    }

    /// Writes one resource record (RFC 1035 §4.1.3), class IN.
    ///
    /// On [`Full`] the message may hold a partial record: roll back to a mark.
    pub fn record(
        &mut self,
        section: Section,
        owner: Owner<'_>,
        rtype: Rtype,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), Full> {
        match owner {
            Owner::Question => self.put(&[0xc0, HEADER_LEN as u8])?,
            Owner::Name(name) => self.name(name)?,
        }
        let mut fixed = [0u8; 10];
        fixed[0..2].copy_from_slice(&rtype.0.to_be_bytes());
        fixed[2..4].copy_from_slice(&1u16.to_be_bytes());
        fixed[4..8].copy_from_slice(&ttl.to_be_bytes());
        self.put(&fixed)?;
        let rdlen_at = self.pos - 2;
        let rdata_start = self.pos;
        self.rdata(rtype, rdata)?;
        let rdlen = (self.pos - rdata_start) as u16;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[section as usize] += 1;
        Ok(())
    }

    /// Writes RDATA, compressing the names RFC 3597 §4 allows to be.
    fn rdata(&mut self, rtype: Rtype, rdata: &[u8]) -> Result<(), Full> {
        let mut at = 0usize;
        for spot in rtype.compressible_names() {
            let start = match *spot {
                CompressibleName::At(off) => off as usize,
                CompressibleName::AfterPrevious => at,
            };
            let (Some(before), Some(len)) = (rdata.get(at..start), name_len(rdata, start)) else {
                // Not the shape the type promises (only possible for data
                // that did not come through the zone compiler): write as is.
                break;
            };
            self.put(before)?;
            self.name(&rdata[start..start + len])?;
            at = start + len;
        }
        self.put(rdata.get(at..).unwrap_or(&[]))
    }

    /// Writes an absolute wire name, compressed against earlier names.
    pub fn name(&mut self, name: &[u8]) -> Result<(), Full> {
        let mut at = 0usize;
        while let Some(&len) = name.get(at) {
            if len == 0 {
                break;
            }
            let suffix = &name[at..];
            if let Some(target) = self.find(suffix) {
                self.put(&[0xc0 | (target >> 8) as u8, target as u8])?;
                return Ok(());
            }
            let label_end = (at + 1 + len as usize).min(name.len());
            let here = self.pos;
            self.put(&name[at..label_end])?;
            if here < 0x3fff && self.n_entries < MAX_COMPRESSION_ENTRIES {
                self.entries[self.n_entries] = (here as u16, suffix.len() as u8);
                self.n_entries += 1;
            }
            at = label_end;
        }
        self.put(&[0])
    }

    fn remember_labels(&mut self, pos: usize, name: &[u8]) {
        let mut at = 0usize;
        while let Some(&len) = name.get(at) {
            if len == 0 || self.n_entries == MAX_COMPRESSION_ENTRIES {
                break;
            }
            self.entries[self.n_entries] = ((pos + at) as u16, (name.len() - at) as u8);
            self.n_entries += 1;
            at += 1 + len as usize;
        }
    }

    /// An earlier occurrence of `suffix` (compared case-insensitively).
    fn find(&self, suffix: &[u8]) -> Option<u16> {
        self.entries[..self.n_entries]
            .iter()
            .find(|&&(pos, len)| len as usize == suffix.len() && self.equals_at(pos as usize, suffix))
            .map(|&(pos, _)| pos)
    }

    /// Whether the (possibly compressed) name at `pos` in the message equals `name`.
    fn equals_at(&self, mut pos: usize, name: &[u8]) -> bool {
        let mut at = 0usize;
        // Bounded: each pointer we wrote points backwards, and a name has at
        // most 128 labels.
        for _ in 0..256 {
            let Some(&len) = self.buf.get(pos) else {
                return false;
            };
            if len >= 0xc0 {
                let Some(&low) = self.buf.get(pos + 1) else {
                    return false;
                };
                pos = (((len & 0x3f) as usize) << 8) | low as usize;
                continue;
            }
            if name.get(at) != Some(&len) {
                return false;
            }
            if len == 0 {
                return true;
            }
            let n = len as usize;
            let (Some(ours), Some(theirs)) = (self.buf.get(pos + 1..pos + 1 + n), name.get(at + 1..at + 1 + n)) else {
                return false;
            };
            if !ours.eq_ignore_ascii_case(theirs) {
                return false;
            }
            pos += 1 + n;
            at += 1 + n;
        }
        false
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.pos + bytes.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Writes the header and, if asked, the OPT record; returns the length.
    ///
    /// `flags` carries AA and TC; QR is set here and OPCODE and RD are
    /// copied from `query_flags` (RFC 1035 §4.1.1). CD is not: RFC 4035
    /// §3.1.6 says a security-aware name server SHOULD clear it when
    /// composing an authoritative response (NSD and Knot clear it in every
    /// response); AD is never set, as nothing here validates.
    pub fn finish(
        mut self,
        id: u16,
        query_flags: u16,
        flags: ResponseFlags,
        rcode: Rcode,
        opt: Option<OptOut>,
    ) -> usize {
        let mut word = 0x8000 | (query_flags & 0x7900);
        if flags.authoritative {
            word |= 0x0400;
        }
        if flags.truncated {
            word |= 0x0200;
        }
        word |= rcode.header_bits() as u16;
        let qdcount = u16::from(self.has_question);
        let mut pos = self.pos;
        let mut arcount = self.counts[2];
        if let Some(opt) = opt {
            // Room was reserved in `new`, so this always fits.
            let ttl = ((rcode.extended_bits() as u32) << 24) | if opt.dnssec_ok { 0x8000 } else { 0 };
            let rr = [
                0, // root owner
                0,
                41, // TYPE OPT
                (opt.udp_payload >> 8) as u8,
                opt.udp_payload as u8,
                (ttl >> 24) as u8,
                (ttl >> 16) as u8,
                (ttl >> 8) as u8,
                ttl as u8,
                0,
                0, // RDLENGTH
            ];
            self.buf[pos..pos + OPT_RR_LEN].copy_from_slice(&rr);
            pos += OPT_RR_LEN;
            arcount += 1;
        }
        let b = &mut self.buf;
        b[0..2].copy_from_slice(&id.to_be_bytes());
        b[2..4].copy_from_slice(&word.to_be_bytes());
        b[4..6].copy_from_slice(&qdcount.to_be_bytes());
        b[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        b[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        b[10..12].copy_from_slice(&arcount.to_be_bytes());
        pos
    }
}

/// Header bits the answer logic decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseFlags {
    /// AA: the answer comes from authoritative data.
    pub authoritative: bool,
    /// TC: the response was cut to fit.
    pub truncated: bool,
}

/// The OPT record to append (RFC 6891 §6.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptOut {
    /// The payload size we advertise.
    pub udp_payload: u16,
    /// Echo of the query's DO bit (RFC 3225 §3).
    pub dnssec_ok: bool,
}

/// Length of an uncompressed name at `pos` in `buf`, if valid.
fn name_len(buf: &[u8], pos: usize) -> Option<usize> {
    super::name::plain_name_len(buf, pos).ok()
}
