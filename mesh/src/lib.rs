//! Cluster membership for meshdns, in tiers, as a sans-IO state machine.
//!
//! Every node gossips in the pool of its site. A few representatives of
//! each site also gossip in the pool of their region, and a few of each
//! region in the global pool, so wide-area gossip does not grow with the
//! number of machines (the way Consul separates LAN and WAN pools).
//! Representatives are picked by [`meshdns_ring::Ring::representatives`]
//! from the members a node knows, so every node with the same view picks
//! the same ones, without a vote.
//!
//! [`MeshCore`] holds this node's merged view: the members each pool it is
//! in reports as alive. It does no I/O and reads no clock. The driver (the
//! chitchat adapter, or the simulator) calls, in this order:
//!
//! 1. [`MeshCore::settle`] once the node has gossiped in its site pool for
//!    a few rounds (no upper pool is planned before: see its docs);
//! 2. [`MeshCore::handle_pool_view`] whenever a pool's live members change
//!    (chitchat's `live_nodes_watcher` in production);
//! 3. [`MeshCore::poll_action`] until it returns `None`, carrying out each
//!    [`Action`]: join or leave a pool, and report membership events.
//!
//! [`tier::plan`] is the pure function underneath: which pools a node
//! belongs in, given what it knows.
//!
//! # Example
//!
//! ```
//! use meshdns_mesh::{Action, MeshCore, direct, test_facts, tier::{Pool, TierConfig}};
//!
//! let mut core = MeshCore::new(test_facts("a", "eu", "fra1"), TierConfig::default());
//! // After its first gossip rounds the driver lets the core plan upper pools.
//! core.settle();
//! // The site pool reports another live member: both are site representatives
//! // (the default is two per site), so this node joins the region pool.
//! core.handle_pool_view(Pool::site("eu", "fra1"), vec![direct(test_facts("b", "eu", "fra1"))]);
//! let mut joined = Vec::new();
//! while let Some(action) = core.poll_action() {
//!     if let Action::JoinPool(pool) = action {
//!         joined.push(pool);
//!     }
//! }
//! assert!(joined.contains(&Pool::Region("eu".into())));
//! ```
#![deny(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

pub mod auth;
mod core;
pub mod facts;
pub mod gossip;
pub mod tier;

pub use crate::core::{Action, MembershipEvent, MeshCore, direct, test_facts};
pub use crate::facts::{Liveness, NodeFacts, PeerRecord, Roles, Source};
