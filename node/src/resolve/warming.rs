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
//! Gossip cost: only a site's representatives (the few nodes the ring
//! puts in the region pool) publish, at most once a minute and only when
//! the head changed, so a site pays about 5 KB per representative per
//! minute however many nodes it has, not a kilobyte per node every few
//! seconds, and the mesh stays inside its per-node gossip budget.
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

/// Encoded sketch bytes published (about 180 names).
pub const PUBLISH_BYTES: usize = 4000;
/// Names a starting node warms from its peers, at most.
pub const MAX_WARM: usize = 512;
/// Warming resolutions in flight at once.
pub const WARM_CONCURRENCY: usize = 16;
/// How often the sketch is looked at; it is published on the first look
/// that finds it filled, then at most every [`REPUBLISH_EVERY`].
const PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// The least time between two publications (and between two decays).
const REPUBLISH_EVERY: Duration = Duration::from_secs(60);
/// How long a starting node looks for peers' sketches.
const WARM_WINDOW: Duration = Duration::from_secs(60);

/// Publishes this node's sketch every few seconds, and once after start
/// warms the cache from the peers' sketches.
pub async fn run(shared: SharedRef, r: Arc<ResolverService>) {
    let _warm = tokio::spawn(warm_from_peers(shared.clone(), r.clone()));
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    let mut last: Option<(tokio::time::Instant, String)> = None;
    loop {
        tick.tick().await;
        let Some(mesh) = shared.mesh.get() else { continue };
        let due = last.as_ref().is_none_or(|(at, _)| at.elapsed() >= REPUBLISH_EVERY);
        if !due {
            continue;
        }
        let representative = mesh.snapshot().me.roles.region;
        let bytes = if representative { r.hot_sketch(PUBLISH_BYTES, last.is_some()) } else { Vec::new() };
        let text =
            if bytes.len() > 1 { base64::engine::general_purpose::STANDARD.encode(&bytes) } else { String::new() };
        if text.is_empty() && last.is_none() {
            continue; // nothing to say yet: look again in a few seconds
        }
        if last.as_ref().is_none_or(|(_, old)| *old != text) {
            mesh.set_hot_names(text.clone());
        }
        last = Some((tokio::time::Instant::now(), text));
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
