//! Zone replication for meshdns without consensus: each zone is a CRDT.
//!
//! A write to a zone sets or deletes one RRset (owner name and type) and is
//! stamped with a hybrid logical clock ([`hlc`]) and the node that accepted
//! it; the later stamp wins (last writer wins), deletions are tombstones.
//! Any node accepts writes, even cut off from the rest, and every replica
//! that has applied the same set of writes holds the same zone, whatever the
//! order, duplication or loss on the way ([`replica`]).
//!
//! Every write is numbered by the node that accepted it; what a replica
//! holds of each origin is a version vector with the numbers held above it.
//! Catching up means asking a peer for the [`replica::Delta`]s beyond one's
//! version vector; a peer that has collected tombstones the asker has not
//! seen answers [`replica::NeedsSnapshot`] instead.
//!
//! Like `meshdns-mesh`, this crate reads no clock and, apart from
//! [`journal`] (the on-disk form of a node's state), does no I/O: the node
//! and the simulator drive the same code.
#![deny(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

pub mod agreement;
pub mod hlc;
pub mod journal;
pub mod model;
pub mod replica;
pub mod seen;
pub mod sync;
pub mod wire;

pub use crate::hlc::{Clock, Hlc};
pub use crate::model::{Entry, EntryKey, NodeId, RRset, Stamp, Write};
pub use crate::replica::{Applied, BadSnapshot, Delta, NeedsSnapshot, OriginState, Snapshot, ZoneReplica};
