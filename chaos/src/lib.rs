//! `meshdns-chaos`: real meshdns nodes in network namespaces under
//! partitions, packet loss, crashes, frozen processes, full disks, whole
//! sites restarting and clocks set wrong, with a checker that proves no
//! acknowledged write is lost.
//!
//! # Design
//!
//! The simulator (`meshdns-sim`) shows the mesh at scale on virtual time;
//! this harness shows the real binary survives real faults on a real
//! network stack. A run has two processes:
//!
//! - the **outer** process ([`netns`]) builds the network: a namespace per
//!   node, a bridge per site inside a router namespace per region, a core
//!   namespace joining the routers, and `mc-client` for the harness. When
//!   the run ends — passed, failed, crashed or interrupted — it kills every
//!   process in those namespaces and deletes them, finding them by their
//!   `mc-` prefix, so nothing is left behind;
//! - the **inner** process ([`run`]) is the outer one re-executed inside
//!   `mc-client` (`ip netns exec`): it starts one `meshdns serve` per node
//!   namespace ([`cluster`]), runs the workload (writes through gRPC and
//!   RFC 2136 UPDATE to random nodes, DNS queries over UDP and TCP to every
//!   node, SOA polls), carries out the fault plan ([`faults`]), heals,
//!   waits for convergence, and judges the record ([`checker`]). Its own
//!   mount namespace (from `ip netns exec`) holds the nodes' tmpfs data
//!   directories, which vanish with it.
//!
//! Faults act on the real thing: nftables tables in a node's, site's or
//! region's namespace for partitions and loss, signals for kills and
//! freezes, a tmpfs filled to the last byte for a full disk, libfaketime
//! for a wrong wall clock. Everything that happened goes into a
//! [`history::History`]; the [`report`] turns it into JSON, markdown and a
//! timeline plot. See `docs/chaos.md`.

pub mod checker;
pub mod client;
pub mod cluster;
pub mod delay;
pub mod faults;
pub mod history;
pub mod netns;
pub mod report;
pub mod run;
pub mod scenario;
pub mod topology;
