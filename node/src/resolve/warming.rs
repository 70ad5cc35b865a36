//! Predictive cache warming across the mesh.
//!
//! Every node keeps a small sketch of its hottest questions (a
//! Space-Saving top-K, `meshdns_resolver::cache::sketch`), fed by a sample
//! of its cache hits and by every miss, and publishes its head in gossip
//! (`hot_names`, under [`PUBLISH_BYTES`]). A node that has just started
//! reads the sketches of the live members it hears of and resolves their
//! names before its clients ask, so a node joining under load starts with
//! the cluster's working set instead of an empty cache.
//!
//! Bounds: at most [`MAX_WARM`] names per start, [`WARM_CONCURRENCY`] at a
//! time, each a normal resolution (the same limits, the same cache). A
//! sketch is gossip from an authenticated member; one that does not
//! decode is ignored. The names a node publishes are its clients' hottest
//! questions: members of the cluster can read them (docs/resolver.md).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use meshdns_resolver::cache::sketch;

use super::ResolverService;
use crate::server::SharedRef;

/// Encoded sketch bytes published (about 45 names).
pub const PUBLISH_BYTES: usize = 1000;
/// Names a starting node warms from its peers, at most.
pub const MAX_WARM: usize = 512;
/// Warming resolutions in flight at once.
pub const WARM_CONCURRENCY: usize = 16;
/// How often the sketch is published (and decayed).
const PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// How long a starting node looks for peers' sketches.
const WARM_WINDOW: Duration = Duration::from_secs(60);

/// Publishes this node's sketch every few seconds, and once after start
/// warms the cache from the peers' sketches.
pub async fn run(shared: SharedRef, r: Arc<ResolverService>) {
    let warm = tokio::spawn(warm_from_peers(shared.clone(), r.clone()));
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    let mut rounds = 0u64;
    loop {
        tick.tick().await;
        let Some(mesh) = shared.mesh.get() else { continue };
        let bytes = r.hot_sketch(PUBLISH_BYTES, rounds.is_multiple_of(12));
        rounds += 1;
        let text =
            if bytes.len() > 1 { base64::engine::general_purpose::STANDARD.encode(&bytes) } else { String::new() };
        mesh.set_hot_names(text);
        if warm.is_finished() && rounds > 1_000_000 {
            break;
        }
    }
}

async fn warm_from_peers(shared: SharedRef, r: Arc<ResolverService>) {
    let started = tokio::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut warmed = 0usize;
    while started.elapsed() < WARM_WINDOW && warmed < MAX_WARM {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(mesh) = shared.mesh.get() else { continue };
        let snapshot = mesh.snapshot();
        for (id, m) in &snapshot.members {
            if *id == snapshot.me.id || m.record.facts.hot_names.is_empty() || !seen.insert(id.clone()) {
                continue;
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(m.record.facts.hot_names.as_bytes())
                .ok()
                .and_then(|b| sketch::decode(&b).ok());
            let Some(questions) = decoded else {
                tracing::debug!(peer = %id, "ignored a hot-name sketch that does not decode");
                continue;
            };
            let take = questions.len().min(MAX_WARM - warmed);
            warmed += take;
            tracing::info!(peer = %id, names = take, "warming the cache from a peer's hot names");
            r.warm(questions.into_iter().take(take).collect(), WARM_CONCURRENCY).await;
            if warmed >= MAX_WARM {
                break;
            }
        }
    }
}
