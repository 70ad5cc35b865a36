//! IANA registries used by the data plane, as open newtypes.
//!
//! Like `domain`'s `base/iana`, each code is a transparent integer with named
//! constants, so unknown values survive a round trip untouched (RFC 3597).

/// A resource record TYPE (RFC 1035 §3.2.2, IANA "Resource Record (RR) TYPEs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rtype(pub u16);

impl Rtype {
    /// RFC 1035 host address.
    pub const A: Rtype = Rtype(1);
    /// RFC 1035 authoritative name server.
    pub const NS: Rtype = Rtype(2);
    /// RFC 1035 canonical name.
    pub const CNAME: Rtype = Rtype(5);
    /// RFC 1035 start of authority.
    pub const SOA: Rtype = Rtype(6);
    /// RFC 1035 domain name pointer.
    pub const PTR: Rtype = Rtype(12);
    /// RFC 1035 mail exchange.
    pub const MX: Rtype = Rtype(15);
    /// RFC 1035 text strings.
    pub const TXT: Rtype = Rtype(16);
    /// RFC 3596 IPv6 address.
    pub const AAAA: Rtype = Rtype(28);
    /// RFC 2782 service location.
    pub const SRV: Rtype = Rtype(33);
    /// RFC 9460 §2.
    pub const SVCB: Rtype = Rtype(64);
    /// RFC 9460 §9.
    pub const HTTPS: Rtype = Rtype(65);
    /// RFC 6672 delegation of a subtree.
    pub const DNAME: Rtype = Rtype(39);
    /// RFC 6891 EDNS(0) pseudo-record.
    pub const OPT: Rtype = Rtype(41);
    /// RFC 4034 delegation signer.
    pub const DS: Rtype = Rtype(43);
    /// RFC 4034 signature.
    pub const RRSIG: Rtype = Rtype(46);
    /// RFC 4034 next secure.
    pub const NSEC: Rtype = Rtype(47);
    /// RFC 8945 transaction signature.
    pub const TSIG: Rtype = Rtype(250);
    /// RFC 1995 incremental transfer.
    pub const IXFR: Rtype = Rtype(251);
    /// RFC 5936 full transfer.
    pub const AXFR: Rtype = Rtype(252);
    /// RFC 1035 QTYPE `*` (ANY), answered minimally per RFC 8482.
    pub const ANY: Rtype = Rtype(255);

    /// Whether names in this type's RDATA may be compressed when written.
    ///
    /// RFC 3597 §4: only the RFC 1035 "well-known" types may be compressed.
    /// Returns the byte offset of each embedded name that may be compressed.
    pub fn compressible_names(self) -> &'static [CompressibleName] {
        const WHOLE: &[CompressibleName] = &[CompressibleName::At(0)];
        const MX: &[CompressibleName] = &[CompressibleName::At(2)];
        const SOA: &[CompressibleName] = &[CompressibleName::At(0), CompressibleName::AfterPrevious];
        match self {
            Rtype::NS | Rtype::CNAME | Rtype::PTR => WHOLE,
            Rtype::MX => MX,
            Rtype::SOA => SOA,
            _ => &[],
        }
    }

    /// Meta-types (RFC 6895 §3.1: 128–255) other than ANY/AXFR/IXFR can't be asked for.
    pub fn is_unanswerable_meta(self) -> bool {
        (128..=250).contains(&self.0) || self == Rtype::OPT
    }
}

/// Where a compressible name sits in RDATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressibleName {
    /// At this fixed offset.
    At(u16),
    /// Right after the previous name.
    AfterPrevious,
}

/// A CLASS (RFC 1035 §3.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class(pub u16);

impl Class {
    /// The Internet.
    pub const IN: Class = Class(1);
    /// QCLASS `*`.
    pub const ANY: Class = Class(255);
}

/// An OPCODE (RFC 1035 §4.1.1, IANA "DNS OpCodes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Standard query.
    pub const QUERY: Opcode = Opcode(0);
    /// RFC 1996 zone change notification.
    pub const NOTIFY: Opcode = Opcode(4);
    /// RFC 2136 dynamic update.
    pub const UPDATE: Opcode = Opcode(5);
}

/// A response code, up to 12 bits with the EDNS extended bits (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    /// No error.
    pub const NOERROR: Rcode = Rcode(0);
    /// The query could not be interpreted.
    pub const FORMERR: Rcode = Rcode(1);
    /// The server failed.
    pub const SERVFAIL: Rcode = Rcode(2);
    /// The name does not exist.
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// The kind of query is not implemented.
    pub const NOTIMP: Rcode = Rcode(4);
    /// Refused by policy (e.g. a name outside every zone).
    pub const REFUSED: Rcode = Rcode(5);
    /// RFC 6672 §2.2: a DNAME substitution overflowed the 255-octet name limit.
    pub const YXDOMAIN: Rcode = Rcode(6);
    /// RFC 2136 / RFC 8945: not authoritative.
    pub const NOTAUTH: Rcode = Rcode(9);
    /// RFC 6891 §6.1.3: unsupported EDNS version.
    pub const BADVERS: Rcode = Rcode(16);

    /// The low four bits, which go in the header.
    pub fn header_bits(self) -> u8 {
        (self.0 & 0x0f) as u8
    }

    /// The high eight bits, which go in the OPT record's TTL.
    pub fn extended_bits(self) -> u8 {
        (self.0 >> 4) as u8
    }

    /// A short lower-case name for metrics labels.
    pub fn label(self) -> &'static str {
        match self.0 {
            0 => "noerror",
            1 => "formerr",
            2 => "servfail",
            3 => "nxdomain",
            4 => "notimp",
            5 => "refused",
            6 => "yxdomain",
            9 => "notauth",
            16 => "badvers",
            _ => "other",
        }
    }
}
