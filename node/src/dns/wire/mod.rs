//! DNS wire format (RFC 1035 §4), read in place and written without allocation.
//!
//! - [`name`]: uncompressed wire names: validation, lower-casing, label walks.
//! - [`query`]: a query parsed in place from the received bytes.
//! - [`builder`]: a response written straight into a caller-owned buffer,
//!   with name compression (RFC 1035 §4.1.4).
//!
//! Readers return `Result`s and never index packet bytes unchecked: any byte
//! string, however malformed, yields an error rather than a panic.

pub mod builder;
pub mod name;
pub mod query;

/// Length of the fixed DNS header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

/// Reads a big-endian u16 at `pos`, if the bytes are there.
pub fn read_u16(buf: &[u8], pos: usize) -> Option<u16> {
    let b = buf.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `pos`, if the bytes are there.
pub fn read_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
