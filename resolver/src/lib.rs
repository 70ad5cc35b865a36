//! The meshdns resolver: forwarding and iterative (recursive) resolution,
//! DNSSEC validation and the cache levels, as **sans-IO** logic.
//!
//! Nothing in this crate opens a socket, reads a clock or draws a random
//! number. A resolution is a state machine (like `quinn-proto`'s
//! connections): the driver asks it what to do ([`Step`]), performs the
//! exchange it names ([`Outgoing`]) over real sockets — or over the lab
//! network of a test, or the simulator's virtual one — and feeds back what
//! came of it ([`Reply`]). Time is passed in as [`Millis`], Unix time in
//! milliseconds, so tests and the simulator run it on a virtual clock.
//!
//! The driver owns what must touch the world: the random query ID and
//! source port of every outgoing query (RFC 5452 §9), and checking that a
//! reply comes from the address asked, with the ID and question sent.
//! Only replies that pass reach the state machine.
//!
//! Modules, one concern each:
//! - [`forward`]: upstream selection (ordered failover, fastest by RTT),
//!   conditional forwarding, marking upstreams down and probing them back;
//! - [`recursive`]: iteration from the root hints (RFC 1034 §5.3.3) with
//!   QNAME minimisation (RFC 9156) and the work limits that keep a resolver
//!   from being an amplifier;
//! - [`dnssec`]: validation (RFC 4033–4035), NSEC/NSEC3 proofs (RFC 5155,
//!   RFC 9276 limits), trust anchors and their RFC 5011 updates;
//! - [`cache`]: the shared RRset and answer cache (L2), the per-worker
//!   answer cache (L1) and the on-disk warm-start file (L3);
//! - [`response`]: the answer a client gets, built once into a
//!   [`response::Template`] that the hit path copies out.

pub mod cache;
pub mod dnssec;
pub mod exchange;
pub mod forward;
pub mod recursive;
pub mod response;
mod types;

pub use exchange::{Outgoing, Reply, Step, Transport};
pub use types::{Ede, Millis, Question, Resolved, Security};

/// The DNS types this crate speaks in, re-exported so drivers and tests
/// name the same ones.
pub mod proto {
    /// The DNSSEC record data (RRSIG, DNSKEY, DS, NSEC, …).
    pub use hickory_proto::dnssec::rdata::DNSSECRData;
    pub use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
    pub use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
}
