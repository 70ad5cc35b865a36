//! EDNS(0), RFC 6891.
//!
//! The OPT pseudo-record of a query sets the requester's UDP payload size,
//! the EDNS version and the DO bit. Options are validated for shape and
//! otherwise ignored (§6.1.2: "unknown options MUST be ignored").

use super::wire::read_u16;

/// The UDP payload size meshdns advertises and caps responses at.
///
/// 1232 bytes is the DNS Flag Day 2020 value: it fits the IPv6 minimum MTU
/// (1280) less headers, so answers are not fragmented.
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// RFC 6891 §6.2.3: payload sizes below 512 are treated as 512.
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// Bytes an OPT record with no options takes in a response.
pub const OPT_RR_LEN: usize = 11;

/// What a query's OPT record asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requester's UDP payload size (CLASS field, §6.1.2), at least 512.
    pub udp_payload: u16,
    /// EDNS version (§6.1.3); only 0 is supported.
    pub version: u8,
    /// The DNSSEC OK bit (RFC 3225), echoed in the response.
    pub dnssec_ok: bool,
}

impl Edns {
    /// Reads an OPT record's CLASS, TTL and RDATA. `None` if the options are
    /// malformed (a length running past the RDATA), which is a FORMERR.
    pub fn from_opt(class: u16, ttl: u32, rdata: &[u8]) -> Option<Edns> {
        let mut at = 0;
        while at < rdata.len() {
            let len = read_u16(rdata, at + 2)? as usize;
            at = at.checked_add(4 + len)?;
            if at > rdata.len() {
                return None;
            }
        }
        Some(Edns { udp_payload: class.max(MIN_UDP_PAYLOAD), version: (ttl >> 16) as u8, dnssec_ok: ttl & 0x8000 != 0 })
    }
}
