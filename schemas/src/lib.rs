//! FlatBuffers schemas of meshdns and the Rust code `flatc` generates from them.
//!
//! The schemas live in `fbs/`; the generated code in `src/generated/` is checked
//! in so that builds never need `flatc`. After editing a schema run
//! `schemas/regen.sh`, which insists on the `flatc` version that matches the
//! pinned `flatbuffers` crate (25.12.19): other versions generate code that
//! does not compile against it.
//!
//! - [`zone_snapshot`]: one compiled authoritative zone, memory-mapped by the
//!   node's query path (`meshdns::zone::snapshot`).
//! - [`replication_delta`]: writes of one origin to one zone, exchanged
//!   between nodes (`meshdns_replication::wire`).
//!
//! Buffers that come from outside the process must be opened with the
//! verifying `root_as_*` functions; the `*_unchecked` variants are only for
//! snapshots this process wrote itself and whose checksum has passed.

/// Generated from `fbs/zone_snapshot.fbs`.
#[allow(
    missing_docs,
    unreachable_pub,
    unsafe_code,
    unused_imports,
    dead_code,
    non_camel_case_types,
    clippy::all,
    clippy::unwrap_used
)]
#[rustfmt::skip]
mod zone_snapshot_generated {
    include!("generated/zone_snapshot_generated.rs");
}

/// Zone snapshot schema (`fbs/zone_snapshot.fbs`).
pub mod zone_snapshot {
    pub use crate::zone_snapshot_generated::meshdns::snapshot::*;
}

/// Generated from `fbs/replication_delta.fbs`.
#[allow(
    missing_docs,
    unreachable_pub,
    unsafe_code,
    unused_imports,
    dead_code,
    non_camel_case_types,
    clippy::all,
    clippy::unwrap_used
)]
#[rustfmt::skip]
mod replication_delta_generated {
    include!("generated/replication_delta_generated.rs");
}

/// Replication delta schema (`fbs/replication_delta.fbs`).
pub mod replication_delta {
    pub use crate::replication_delta_generated::meshdns::replication::*;
}
