//! One gossip pool: a chitchat instance, what this node publishes in it,
//! and how its state is read back into [`PeerRecord`]s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::ChitchatHandle;
use tokio::time::Instant;

use super::pool_state::{PoolRead, PoolState, announce_leave, chitchat_config, initial_keys, pool_addr};
use super::transport::{GossipAuth, GossipTransport, Traffic};
use super::{GossipSettings, MeshError};
use crate::facts::{NodeFacts, PeerRecord};
use crate::tier::Pool;

/// A joined pool.
pub(crate) struct PoolRuntime {
    pub(crate) handle: ChitchatHandle,
    pub(crate) traffic: Arc<Traffic>,
    pub(crate) addr: SocketAddr,
    /// What is published and what was read, across reads.
    state: PoolState,
    /// Set when chitchat's task ends (it panics when a digest outgrows a
    /// datagram); the driver then restarts the pool.
    pub(crate) terminated: Arc<std::sync::atomic::AtomicBool>,
    /// When hints were last gossiped to.
    pub(crate) last_hinted: Option<Instant>,
    /// When this instance started (a pool is "forming" for a while after).
    pub(crate) joined_at: Instant,
    /// Identity conflicts chitchat had counted at the last check.
    pub(crate) conflicts_seen: u64,
}

impl PoolRuntime {
    /// Starts gossiping in `pool`. `instance` numbers this node's joins of
    /// the pool: chitchat ignores state from an id it has seen with higher
    /// versions, so a rejoin must look like a new incarnation to it.
    pub(crate) async fn start(
        cluster: &str,
        pool: Pool,
        instance: u64,
        me: &NodeFacts,
        settings: &GossipSettings,
        traffic: Arc<Traffic>,
        auth: Option<Arc<GossipAuth>>,
    ) -> Result<PoolRuntime, MeshError> {
        let addr = pool_addr(me.gossip, &pool).ok_or(MeshError::PortRange(me.gossip))?;
        let config = chitchat_config(cluster, &pool, instance, me, settings, addr);
        let initial = initial_keys(me);
        let handle =
            chitchat::spawn_chitchat(config, initial.clone(), &GossipTransport { traffic: traffic.clone(), auth })
                .await
                .map_err(|e| MeshError::Bind { pool: pool.clone(), addr, reason: format!("{e:#}") })?;
        let terminated = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = handle.termination_watcher();
        let flag = terminated.clone();
        tokio::spawn(async move {
            let _ = watcher.await;
            flag.store(true, std::sync::atomic::Ordering::Release);
        });
        Ok(PoolRuntime {
            handle,
            traffic,
            addr,
            state: PoolState::new(initial),
            terminated,
            last_hinted: None,
            joined_at: Instant::now(),
            conflicts_seen: 0,
        })
    }

    /// Reads members and relays. `suspect_after`: a live member not heard
    /// from for this long is reported as suspect.
    pub(crate) async fn read(&mut self, now: Instant, suspect_after: Duration) -> PoolRead {
        let cc = self.handle.chitchat();
        let guard = cc.lock().await;
        self.state.read(&guard, now, suspect_after)
    }

    /// Publishes this node's facts and relay records, writing only what changed.
    pub(crate) async fn publish(&mut self, me: &NodeFacts, relays: &BTreeMap<String, PeerRecord>) {
        if !self.state.needs_publish(me, relays) {
            return;
        }
        let cc = self.handle.chitchat();
        let mut guard = cc.lock().await;
        self.state.publish(&mut guard, me, relays);
    }

    /// Announces a graceful leave (of the mesh, or of this pool only when
    /// `demoted`) and pushes it to every live member now rather than at the
    /// next gossip round.
    pub(crate) async fn announce_leave(&self, demoted: bool) {
        let cc = self.handle.chitchat();
        let mut guard = cc.lock().await;
        let peers = announce_leave(&mut guard, demoted);
        drop(guard);
        for p in peers {
            let _ = self.handle.gossip(p);
        }
    }
    /// The pool addresses of the live members other than this node.
    pub(crate) async fn live_addrs(&self) -> std::collections::BTreeSet<SocketAddr> {
        let cc = self.handle.chitchat();
        let guard = cc.lock().await;
        let me = guard.self_chitchat_id().clone();
        guard.live_nodes().filter(|id| **id != me).map(|id| id.gossip_advertise_addr).collect()
    }

    /// New claims about this node's own id by peers since the last call
    /// (see `Chitchat::identity_conflicts`).
    pub(crate) async fn new_identity_conflicts(&mut self) -> u64 {
        let cc = self.handle.chitchat();
        let now = cc.lock().await.identity_conflicts();
        let new = now.saturating_sub(self.conflicts_seen);
        self.conflicts_seen = now;
        new
    }

    /// Live members other than this node.
    pub(crate) async fn live_peers(&self) -> usize {
        let cc = self.handle.chitchat();
        let guard = cc.lock().await;
        guard.live_nodes().count().saturating_sub(1)
    }
}
