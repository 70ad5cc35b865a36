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

pub mod anchors;
pub mod drive;
pub mod exchange;
mod metrics;
mod route;
mod service;
pub mod tcp_pool;
pub mod warming;

pub use route::{Incoming, Routed, route};
pub use service::{ResolverService, ResolverStats};

/// How often the cache is purged of data past its stale window and
/// written to the warm-start file.
const MAINTAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Background upkeep of the cache: purge, and save for the next start
/// (a crash then loses at most a minute of it).
pub async fn maintain(r: std::sync::Arc<ResolverService>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let r = r.clone();
        let _ = tokio::task::spawn_blocking(move || {
            r.cache().purge(drive::now_ms());
            r.save_cache();
        })
        .await;
    }
}
