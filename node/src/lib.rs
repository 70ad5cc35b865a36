//! meshdns node: the authoritative DNS data plane and its zone store.
//!
//! A query travels: a UDP worker thread or a TCP connection
//! ([`server`]) receives the bytes; [`dns::auth::answer`] parses them in place
//! ([`dns::wire::query`]), picks the zone from the current [`zone::set::ZoneSet`]
//! (one atomic load of an `ArcSwap`, never a lock), walks the zone's
//! memory-mapped [`zone::snapshot::Snapshot`] following RFC 1034 §4.3.2, and
//! writes the response straight into the worker's buffer with name
//! compression ([`dns::wire::builder`]). Nothing on that path allocates.
//!
//! Zones come from RFC 1035 files ([`zone::parse`], using NLnet Labs'
//! `domain` scanner), are checked and compiled ([`zone::compile`]) into a
//! FlatBuffer written atomically to the data directory, and are mapped back
//! with `memmap2`; a restart with unchanged files reuses those snapshots
//! ([`zone::store`]).
//!
//! The binary (`src/main.rs`) adds the command line ([`cli`]), configuration
//! ([`config`]), signals and the HTTP listener for metrics and health.
//!
//! # Example
//!
//! ```no_run
//! use meshdns::zone::store::ZoneStore;
//! use meshdns::dns::auth::{answer, AnswerConfig, Transport};
//! # fn main() -> std::io::Result<()> {
//! let store = ZoneStore::new("zones".as_ref(), "meshdns-data".as_ref());
//! let report = store.reload()?;
//! assert_eq!(report.failures(), 0);
//! let query: &[u8] = &[/* a DNS query */];
//! let mut out = vec![0u8; 65535];
//! if let Some(a) = answer(query, &store.current(), &mut out, Transport::Udp, &AnswerConfig::default()) {
//!     println!("{} bytes, rcode {:?}", a.len, a.rcode);
//! }
//! # Ok(()) }
//! ```

pub mod acl;
pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod exposition;
pub mod metrics;
pub mod replicated;
pub mod resolve;
pub mod rrl;
pub mod server;
pub mod zone;
