//! The values every module shares: questions, outcomes, time.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

/// Unix time in milliseconds. Always passed in, never read here, so the
/// same logic runs on a virtual clock in tests and the simulator.
pub type Millis = u64;

/// A question (RFC 1035 §4.1.2). `name` is lowercased and fully
/// qualified: the cache and the iteration compare names byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Question {
    /// The name asked for, lowercase, fully qualified.
    pub name: Name,
    /// QTYPE.
    pub qtype: RecordType,
    /// QCLASS (IN in practice).
    pub qclass: DNSClass,
}

impl Question {
    /// A question for `name` (lowercased here) and `qtype`, class IN.
    pub fn new(name: &Name, qtype: RecordType) -> Self {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        Question { name, qtype, qclass: DNSClass::IN }
    }
}

impl std::fmt::Display for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.name, self.qclass, self.qtype)
    }
}

/// The DNSSEC status of data (RFC 4035 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Security {
    /// A chain of trust from an anchor validates it.
    Secure,
    /// A proven unsigned delegation (or no anchor covers it).
    Insecure,
    /// It should have validated and did not.
    Bogus,
    /// Not (yet) validated: validation off, or CD asked for.
    #[default]
    Indeterminate,
}

/// An Extended DNS Error (RFC 8914): why an answer failed or is stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ede {
    /// INFO-CODE (RFC 8914 §4).
    pub code: u16,
    /// EXTRA-TEXT for people: which name, which key, what was wrong.
    pub text: String,
}

impl Ede {
    /// RFC 8914 §4.2: Unsupported DNSKEY Algorithm.
    pub const UNSUPPORTED_DNSKEY_ALGORITHM: u16 = 1;
    /// §4.3: Unsupported DS Digest Type.
    pub const UNSUPPORTED_DS_DIGEST: u16 = 2;
    /// §4.4: Stale Answer.
    pub const STALE_ANSWER: u16 = 3;
    /// §4.7: DNSSEC Bogus.
    pub const DNSSEC_BOGUS: u16 = 6;
    /// §4.8: Signature Expired.
    pub const SIGNATURE_EXPIRED: u16 = 7;
    /// §4.9: Signature Not Yet Valid.
    pub const SIGNATURE_NOT_YET_VALID: u16 = 8;
    /// §4.10: DNSKEY Missing.
    pub const DNSKEY_MISSING: u16 = 9;
    /// §4.11: RRSIGs Missing.
    pub const RRSIGS_MISSING: u16 = 10;
    /// §4.13: NSEC Missing.
    pub const NSEC_MISSING: u16 = 12;
    /// §4.14: Cached Error.
    pub const CACHED_ERROR: u16 = 13;
    /// §4.16: Blocked (used by the filter).
    pub const BLOCKED: u16 = 15;
    /// §4.19: Stale NXDOMAIN Answer.
    pub const STALE_NXDOMAIN: u16 = 19;
    /// §4.21: Not Supported.
    pub const NOT_SUPPORTED: u16 = 21;
    /// §4.22: No Reachable Authority.
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    /// §4.23: Network Error.
    pub const NETWORK_ERROR: u16 = 23;
    /// RFC 9276 §3.2 uses 27: Unsupported NSEC3 Iterations Value.
    pub const UNSUPPORTED_NSEC3_ITERATIONS: u16 = 27;

    /// An EDE with `code` and `text`.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Ede { code, text: text.into() }
    }
}

/// What a resolution ends with: the sections of the answer a client gets
/// (before [`crate::response`] adds the header, question and OPT).
///
/// Contract with the response builder: a resolution always includes the
/// DNSSEC records that came with the data — each answer RRset followed by
/// its RRSIGs, in a negative answer the SOA and the NSEC/NSEC3 records
/// with their RRSIGs, and after a wildcard answer the NSEC/NSEC3 proof
/// that no closer name exists (RFC 4035 §3.1.3.3) — whether or not the
/// client set DO. The builder drops RRSIG,
/// NSEC and NSEC3 records for clients without DO (RFC 4035 §3.2.1), and
/// sets AD only when `security` is [`Security::Secure`] (RFC 4035 §3.2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// RCODE: NOERROR (data or NODATA), NXDOMAIN, SERVFAIL, REFUSED.
    pub rcode: ResponseCode,
    /// The answer section: the chain of CNAME/DNAME followed, then the
    /// RRset asked for, each RRset followed by its RRSIGs.
    pub answer: Vec<Record>,
    /// The authority section: for a negative answer the SOA and, for DO
    /// clients, the NSEC/NSEC3 records and their RRSIGs (RFC 2308 §3).
    pub authority: Vec<Record>,
    /// DNSSEC status of the whole answer.
    pub security: Security,
    /// Why it failed, or that it is stale.
    pub ede: Option<Ede>,
}

impl Resolved {
    /// A SERVFAIL with an EDE saying why.
    pub fn servfail(ede: Option<Ede>) -> Self {
        Resolved {
            rcode: ResponseCode::ServFail,
            answer: Vec::new(),
            authority: Vec::new(),
            security: Security::Indeterminate,
            ede,
        }
    }
}
