//! The node-to-node transport of meshdns: QUIC (quinn) with mutual TLS
//! (rustls with the ring provider) under a cluster certificate authority.
//!
//! - [`ca`]: `meshdns cluster ca init|issue`, making the CA and node
//!   certificates;
//! - [`tls`]: rustls configurations that trust the cluster CA only and
//!   require a certificate on both sides;
//! - [`net`]: the endpoint, peer identification, and length-prefixed frames
//!   read with bounds on size and time, so a peer that sends garbage or
//!   stalls is cut off without costing memory.
//!
//! What travels in the frames (deltas, snapshots) is `meshdns-replication`'s
//! business; this crate only moves authenticated bytes.
#![deny(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

pub mod ca;
pub mod net;
pub mod tls;
