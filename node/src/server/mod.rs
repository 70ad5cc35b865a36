//! Network front ends: UDP workers, TCP connections, zone transfers, and
//! the HTTP listener for metrics, health and reload.

pub mod http;
pub mod notify;
pub mod tcp;
pub mod transfer;
pub mod udp;
pub mod udp_batch;

use std::sync::Arc;

use crate::config::Config;
use crate::dns::auth::AnswerConfig;
use crate::metrics::Metrics;
use crate::zone::store::ZoneStore;

impl Shared {
    /// Reloads the zone files, and in a cluster (`--tls-dir` and
    /// `--zone-dir` set) imports them into the cluster zones of the same
    /// names, writing only what changed (see `replicated::files`).
    pub fn reload_zones(&self) -> std::io::Result<crate::zone::store::LoadReport> {
        let report = self.store.reload()?;
        self.import_zone_files();
        Ok(report)
    }

    /// The import half of [`Shared::reload_zones`].
    pub fn import_zone_files(&self) {
        let (Some(zones), Some(dir), Some(_)) =
            (self.replicated.get(), self.config.zone_dir.as_ref(), self.config.replication.tls_dir.as_ref())
        else {
            return;
        };
        for i in crate::replicated::files::import_dir(zones, dir, &self.config.data_dir) {
            if let Ok((zone, written)) = &i.result {
                tracing::info!(file = %i.file.display(), %zone, written, "zone file imported into the cluster");
            }
        }
    }

    /// Answers an RFC 2136 UPDATE (it blocks for the journal's fsync).
    /// `None`: not an UPDATE, or nothing to answer.
    pub fn update(&self, msg: &[u8]) -> Option<Vec<u8>> {
        if !crate::replicated::update::is_update(msg) {
            return None;
        }
        let zones = self.replicated.get()?;
        // One UPDATE at a time: its prerequisites, the RRsets it reads and
        // its write must not interleave with another's (RFC 2136 §3.7).
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let reply = crate::replicated::update::handle(msg, zones, &self.update_keys);
        self.audit.record(crate::admin::dns_update::action(msg, reply.as_deref(), None));
        reply
    }
}

/// What every front end shares.
pub struct Shared {
    /// The zones.
    pub store: ZoneStore,
    /// Counters.
    pub metrics: Metrics,
    /// Checked configuration.
    pub config: Config,
    /// Answer settings.
    pub answer: AnswerConfig,
    /// Set once every listener is up and the zones are loaded.
    pub ready: std::sync::atomic::AtomicBool,
    /// The mesh, once started (its metrics join `/metrics`).
    pub mesh: std::sync::OnceLock<std::sync::Arc<meshdns_mesh::gossip::MeshHandle>>,
    /// Replicated zones, for RFC 2136 UPDATE.
    pub replicated: std::sync::OnceLock<std::sync::Arc<crate::replicated::ReplicatedZones>>,
    /// TSIG keys UPDATEs may be signed with.
    pub update_keys: crate::replicated::update::UpdateKeys,
    /// The replication driver, once started (its counters join `/metrics`).
    pub syncer: std::sync::OnceLock<std::sync::Arc<crate::replicated::sync::Syncer>>,
    /// The audit log of administrative actions (UPDATEs, reloads, gRPC writes).
    pub audit: Arc<crate::admin::audit::AuditLog>,
}

/// Shared state handle.
pub type SharedRef = Arc<Shared>;
