//! The response a client gets (RFC 1035 §4.1), built once per resolution
//! into a [`Template`] that every later hit copies out.
//!
//! A template is a whole response in wire form with ID 0: header (QR, RA,
//! the rcode, AD when the data is secure), the question in lowercase, the
//! sections with name compression, and an OPT record last carrying our
//! payload size and any Extended DNS Error. Next to the bytes it keeps the
//! offset of every TTL field and of the OPT record, so
//! [`Template::write`] can serve it to any client without parsing or
//! allocating: copy, patch the ID and flags, put back the client's
//! spelling of the question (RFC 1034 §3.1: case is preserved), lower the
//! TTLs by the time spent in cache, drop the OPT record for a client that
//! sent none.

use crate::types::{Millis, Security};

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
