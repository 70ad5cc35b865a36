//! DNS protocol code, one module per concern and RFC.
//!
//! - [`iana`]: TYPE, CLASS, OPCODE and RCODE registries.
//! - [`wire`]: RFC 1035 §4 messages, parsed in place and built without allocation.
//! - [`edns`]: RFC 6891 EDNS(0).
//! - [`auth`]: authoritative answers (RFC 1034 §4.3.2, RFC 4592, RFC 6672, RFC 2308, RFC 8482).

pub mod auth;
pub mod edns;
pub mod iana;
pub mod wire;
