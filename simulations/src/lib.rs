//! `meshdns-sim`: meshdns's membership, ring and replication code on
//! thousands of virtual nodes, on virtual time, deterministically.
//!
//! # Design
//!
//! The simulator is a discrete-event loop ([`world`]) over one queue ordered
//! by (virtual time, sequence number), fed by one seeded generator. It does
//! not model meshdns: it runs it.
//!
//! - **Membership** (`gossip` mode): every virtual node runs chitchat in each
//!   pool it belongs to — the same crate the node links, in the small fork
//!   under `vendor/chitchat` that makes its round functions public and its
//!   random choices seedable — and the node's own [`meshdns_mesh::MeshCore`]
//!   on top, fed by [`meshdns_mesh::gossip::pool_state`], the code the node's
//!   gossip driver uses to read and publish pool state. chitchat reads time
//!   through tokio; the loop runs inside a current-thread tokio runtime with
//!   a paused clock that it advances itself, so phi-accrual detection runs on
//!   virtual time.
//! - **Membership** (`oracle` mode), for 10,000 nodes: every node holding a
//!   record of every member costs memory that grows with N², more than this
//!   machine has at 10,000 nodes. The oracle gives every node the live
//!   members as the simulator knows them, a crash known a fixed delay later;
//!   representatives are still chosen by the real tier plan.
//! - **Replication**: every node holds a [`meshdns_replication::ZoneReplica`]
//!   per zone and an HLC clock; writes are pushed along
//!   [`meshdns_replication::sync::push_targets`], repaired by pulls chosen by
//!   the node's [`meshdns_replication::sync::PullPolicy`] and
//!   [`meshdns_replication::sync::SyncScheduler`], and their size on the wire
//!   is that of [`meshdns_replication::wire`]'s encoding.
//! - **Network** ([`net`]): per-tier one-way latency, jitter, loss and
//!   bandwidth; gossip datagrams are lost, replication messages (QUIC
//!   streams) are delayed by a retransmission per lost packet instead.
//!   Partitions drop everything across the cut.
//!
//! Same scenario and seed, same bytes out: every map iterated is ordered,
//! every random choice comes from the seed, and nothing reads a wall clock.
#![deny(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

pub mod net;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod world;

use std::path::Path;

pub use crate::scenario::Scenario;
pub use crate::stats::Summary;

/// Runs `sc` with `seed` and writes its results into `out`; `progress`
/// prints a line per virtual minute on stderr.
pub fn run(sc: Scenario, seed: u64, out: &Path, progress: bool) -> anyhow::Result<Summary> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    let stats = rt.block_on(async move {
        let mut w = world::World::new(sc, seed);
        w.progress = progress;
        w.run().await;
        w.stats
    });
    report::write_run(out, &stats)?;
    stats.summary.ok_or_else(|| anyhow::anyhow!("the run produced no summary"))
}
