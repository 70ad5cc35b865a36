//! The resolver as the node runs it: the query routing of issue 13
//! (our zones → filter hook → cache → resolution), the cache, and the
//! tokio driver of the sans-IO resolutions in `meshdns-resolver`.
//!
//! The data plane calls [`route`] for every admitted query. Questions for
//! our own zones are answered authoritatively (AA), as before. Others,
//! from a client in `recursion.allow`, are answered from the cache on the
//! worker's thread (no lock on the L1 path, one shard lock on L2) or
//! handed to [`ResolverService`], which resolves them on the runtime and
//! sends the answer itself (RA set). A question already being resolved
//! waits for that resolution instead of starting another (coalescing), so
//! a burst for one name costs one upstream query.
//!
//! Who may recurse is enforced here: everyone else gets what an
//! authoritative-only server sends for a name outside its zones, REFUSED
//! — a default install is never an open resolver.

pub mod drive;
pub mod exchange;
mod route;
mod service;

pub use route::{Routed, route};
pub use service::{ResolverService, ResolverStats};
