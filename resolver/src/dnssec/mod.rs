//! DNSSEC validation (RFC 4033–4035): pure functions and small state
//! machines, no I/O. The iterative resolver fetches DS and DNSKEY RRsets
//! and calls these to decide what is Secure, Insecure or Bogus.
//!
//! - [`anchors`]: the trust anchors, built-in root KSKs or a file;
//! - [`verify`]: a DNSKEY RRset against its DS/anchor
//!   ([`validate_dnskeys`], RFC 4035 §5.2), any RRset against its zone's
//!   keys ([`validate_rrset`], §5.3);
//! - [`denial`] and [`nsec3`]: proofs that a name or type does not exist,
//!   with NSEC (RFC 4035 §5.4) or NSEC3 (RFC 5155 §8, RFC 9276 limits);
//! - [`rfc5011`]: automated trust-anchor updates;
//! - [`text`]: zone-file text of DNSSEC records (anchor files, tests).
//!
//! # Errors, and which of them mean Insecure
//!
//! Every check returns `Err(`[`Ede`]`)` with the RFC 8914 code and a text
//! naming the name and key. Three codes do **not** mean Bogus but
//! Insecure, and [`is_insecure`] picks them out:
//! - 1 (Unsupported DNSKEY Algorithm) and 2 (Unsupported DS Digest Type)
//!   from [`validate_dnskeys`]: no DS/anchor uses an algorithm and digest
//!   we implement, so RFC 4035 §5.2 and RFC 6840 §5.2 say to treat the
//!   zone as unsigned;
//! - 27 (Unsupported NSEC3 Iterations Value) from the `prove_*`
//!   functions: the zone's NSEC3 has more than 150 iterations (RFC 9276
//!   §3.2, see [`nsec3::MAX_ITERATIONS`]).
//!
//! Everything else is Bogus (SERVFAIL with that EDE).

pub mod anchors;
pub mod denial;
pub mod nsec3;
pub mod rfc5011;
pub mod text;
mod time;
pub mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_5011;

use hickory_proto::rr::{Name, Record, RecordType};

pub use anchors::{AnchorError, TrustAnchors};
pub use denial::nsec_covers;
pub use nsec3::{nsec3_covers, nsec3_matches};
pub use rfc5011::{AnchorState, KeyState};
pub use verify::{RrsetProof, validate_dnskeys, validate_rrset};

use crate::Ede;

/// Whether an error from this module means the data is Insecure rather
/// than Bogus: EDE 1 and 2 (no supported algorithm/digest in the DS or
/// anchor, RFC 4035 §5.2, RFC 6840 §5.2) and 27 (NSEC3 iterations above
/// the limit, RFC 9276 §3.2). See the module docs.
pub fn is_insecure(ede: &Ede) -> bool {
    matches!(
        ede.code,
        Ede::UNSUPPORTED_DNSKEY_ALGORITHM | Ede::UNSUPPORTED_DS_DIGEST | Ede::UNSUPPORTED_NSEC3_ITERATIONS
    )
}

/// Which denial records `authority` holds for `zone`: NSEC3 if any.
enum Kind<'a> {
    Nsec3(nsec3::Chain<'a>),
    Nsec,
}

fn kind<'a>(zone: &Name, authority: &'a [Record]) -> Result<Kind<'a>, Ede> {
    match nsec3::Chain::new(zone, authority) {
        Some(chain) => chain.map(Kind::Nsec3),
        None => Ok(Kind::Nsec),
    }
}

/// Denial of existence (RFC 4035 §5.4, RFC 5155 §8.4): `qname` does not
/// exist in `zone`. `authority` are the NSEC or NSEC3 records (already
/// signature-validated by the caller with [`validate_rrset`]) of `zone`;
/// other records in it are ignored.
///
/// With NSEC3, an NXDOMAIN whose next closer name is covered by an
/// opt-out span is proven only as far as RFC 5155 §6 allows (an unsigned
/// delegation could exist there): this returns `Ok(())`, and
/// [`relies_on_opt_out`] tells the caller to mark the answer Insecure.
pub fn prove_nxdomain(qname: &Name, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    match kind(zone, authority)? {
        Kind::Nsec3(chain) => nsec3::prove_nxdomain(qname, &chain).map(|_| ()),
        Kind::Nsec => denial::prove_nxdomain(qname, zone, authority),
    }
}

/// Whether the NXDOMAIN proof for `qname` rests on an NSEC3 opt-out span
/// (RFC 5155 §6): then the answer is Insecure, not Secure. False for
/// NSEC, and when there is no valid proof.
pub fn relies_on_opt_out(qname: &Name, zone: &Name, authority: &[Record]) -> bool {
    match kind(zone, authority) {
        Ok(Kind::Nsec3(chain)) => nsec3::prove_nxdomain(qname, &chain).unwrap_or(false),
        _ => false,
    }
}

/// NODATA (RFC 4035 §5.4, RFC 5155 §8.5–§8.7): `qname` exists in `zone`
/// but has no `qtype` (nor CNAME); also an empty non-terminal, and a
/// wildcard NODATA. For `qtype` DS with NSEC3, an opt-out span covering
/// `qname` also proves it (RFC 5155 §8.6: an unsigned delegation).
pub fn prove_nodata(qname: &Name, qtype: RecordType, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    match kind(zone, authority)? {
        Kind::Nsec3(chain) => nsec3::prove_nodata(qname, qtype, &chain),
        Kind::Nsec => denial::prove_nodata(qname, qtype, zone, authority),
    }
}

/// A wildcard answer: `qname` was answered from `wildcard` (as
/// [`RrsetProof::wildcard`] reported), and no closer match than the
/// wildcard exists (RFC 4035 §5.3.4, RFC 5155 §8.8).
pub fn prove_wildcard(qname: &Name, wildcard: &Name, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    match kind(zone, authority)? {
        Kind::Nsec3(chain) => nsec3::prove_wildcard(qname, wildcard, &chain),
        Kind::Nsec => denial::prove_wildcard(qname, wildcard, zone, authority),
    }
}

/// Whether a wildcard answer's proof ([`prove_wildcard`]) rests on an
/// NSEC3 opt-out span (RFC 5155 §9.2): then the answer is Insecure, as
/// Unbound treats it.
pub fn wildcard_relies_on_opt_out(qname: &Name, wildcard: &Name, zone: &Name, authority: &[Record]) -> bool {
    match kind(zone, authority) {
        Ok(Kind::Nsec3(chain)) => nsec3::wildcard_opt_out(qname, wildcard, &chain),
        _ => false,
    }
}

/// The delegation `child` of `zone` is unsigned: no DS (an NSEC/NSEC3 at
/// `child` with NS but not DS or SOA, or an NSEC3 opt-out span covering
/// it, RFC 5155 §8.6). `Ok(())` = Insecure proven.
pub fn prove_no_ds(child: &Name, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    match kind(zone, authority)? {
        Kind::Nsec3(chain) => nsec3::prove_no_ds(child, &chain),
        Kind::Nsec => denial::prove_no_ds(child, zone, authority),
    }
}
