//! Zones: from RFC 1035 master files to memory-mapped snapshots.
//!
//! - [`parse`] reads a zone file (and its `$INCLUDE`s) into raw records.
//! - [`compile`] checks the zone and lays it out as a FlatBuffer.
//! - [`snapshot`] writes that atomically and maps it back, verified.
//! - [`set`] is the immutable set of served zones the query path reads.
//! - [`store`] loads a zone directory, reuses fresh snapshots, reloads
//!   changed files and swaps the new set in atomically.
//! - [`diag`] formats findings as `file:line: severity: text`.

pub mod compile;
pub mod diag;
pub mod overlay;
pub mod parse;
mod prepass;
mod rdata_text;
pub mod set;
pub mod snapshot;
pub mod store;

/// The zone served when meshdns starts with no zone directory.
pub const DEMO_ZONE: &str = include_str!("demo.zone");
/// File name the demo zone is written under.
pub const DEMO_ZONE_FILE: &str = "example.com.zone";
