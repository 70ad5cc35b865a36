//! Network front ends: UDP workers, TCP connections, zone transfers, and
//! the HTTP listener for metrics, health and reload.

pub mod http;
pub mod notify;
pub mod tcp;
pub mod transfer;
pub mod udp;
pub mod udp_batch;

use std::net::IpAddr;
use std::sync::Arc;

use crate::acl::AclKind;
use crate::config::Config;
use crate::dns::auth::AnswerConfig;
use crate::metrics::Metrics;
use crate::rrl::Action;
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

    /// Takes an RFC 2136 UPDATE from a DNS worker; `reply` gets the
    /// answer. Never blocks: the signature and the key's scope are checked
    /// here, before any lock, and the write goes to the update writer
    /// (`replicated::writer`). Not an UPDATE, or nothing to answer: dropped.
    pub fn submit_update(&self, msg: &[u8], reply: crate::replicated::writer::Reply) {
        use crate::replicated::update::{self, Checked};
        let Some(zones) = self.replicated.get() else { return };
        match update::verify(msg, &self.update_keys) {
            Checked::Drop => {}
            Checked::Answer(answer) => {
                // Refused before any write (unsigned, bad TSIG, out of scope).
                self.audit.record(crate::admin::dns_update::action(msg, Some(&answer), None));
                reply.send(answer)
            }
            Checked::Write(v) => match self.update_writer(zones) {
                Some(w) => w.submit(crate::replicated::writer::Job { update: v, reply }),
                None => {
                    if let Some(answer) = update::unavailable(*v) {
                        reply.send(answer);
                    }
                }
            },
        }
    }

    /// The update writer, started on the first UPDATE.
    fn update_writer(
        &self,
        zones: &Arc<crate::replicated::ReplicatedZones>,
    ) -> Option<&crate::replicated::writer::UpdateWriter> {
        self.update_writer
            .get_or_init(|| {
                let (zones, audit) = (zones.clone(), self.audit.clone());
                let handler = Box::new(move |v: crate::replicated::update::Verified| {
                    let (key, zone) = (v.key_name().to_owned(), v.zone());
                    let (rcode, answer) = crate::replicated::update::apply(v, &zones);
                    tracing::debug!(%key, %zone, %rcode, "UPDATE answered");
                    audit.record(crate::admin::dns_update::applied(&key, &zone, rcode, None));
                    (rcode, answer)
                });
                crate::replicated::writer::UpdateWriter::start(handler)
                    .map_err(|e| tracing::error!(error = %e, "cannot start the update writer; UPDATEs get SERVFAIL"))
                    .ok()
            })
            .as_ref()
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
    /// The update writer (started on the first UPDATE; `None` inside if
    /// its thread could not be started).
    pub update_writer: std::sync::OnceLock<Option<crate::replicated::writer::UpdateWriter>>,
    /// The replication driver, once started (its counters join `/metrics`).
    pub syncer: std::sync::OnceLock<std::sync::Arc<crate::replicated::sync::Syncer>>,
    /// The audit log of administrative actions (UPDATEs, reloads, gRPC writes).
    pub audit: Arc<crate::admin::audit::AuditLog>,
    /// Response rate limiting and the per-client query limit; `None` when
    /// both are off (the default), so the query path skips them in one branch.
    pub rrl: Option<crate::rrl::Limiter>,
    /// The resolver for names outside our zones; `None` when
    /// `resolver.mode` is off (the default).
    pub resolver: Option<Arc<crate::resolve::ResolverService>>,
}

/// The limits every received DNS message passes before it is answered
/// (see docs/security.md for the order): the per-client query limit, then
/// the access list of the message's kind. `Err(None)`: drop it silently;
/// `Err(Some(kind))`: refuse it (REFUSED) as that kind's access list says.
pub fn admit(
    shared: &Shared,
    shard: &crate::metrics::Shard,
    msg: &[u8],
    ip: IpAddr,
    now: std::time::Instant,
) -> Result<AclKind, Option<AclKind>> {
    if let Some(l) = &shared.rrl
        && !l.admit_query(ip, now)
    {
        shard.record_client_limited();
        return Err(None);
    }
    let kind = AclKind::of_message(msg);
    if shared.config.acl.permits(kind, ip) {
        Ok(kind)
    } else {
        shard.record_acl_refused(kind);
        tracing::debug!(%ip, ?kind, "refused by the access list");
        Err(Some(kind))
    }
}

/// Before answering a UDP query: `Some(reply)` when response rate
/// limiting already knows its answer is over the limit
/// ([`crate::rrl::Limiter::decide_early`]): `Some(None)` to send nothing,
/// `Some(Some(len))` to send the slipped reply written to `out`. `None`:
/// answer it.
pub fn limit_early(
    shared: &Shared,
    shard: &crate::metrics::Shard,
    slips: &mut crate::rrl::SlipCounter,
    ip: IpAddr,
    query: &[u8],
    out: &mut [u8],
    now: std::time::Instant,
) -> Option<Option<usize>> {
    let action = shared.rrl.as_ref()?.decide_early(ip, query, now, slips)?;
    shard.record_rrl(crate::rrl::ResponseClass::Answer, action);
    Some(match action {
        Action::Slip => crate::rrl::slip_query(query, out),
        _ => None,
    })
}

/// Passes the UDP response in `out[..len]` to `ip` through response rate
/// limiting: `Some(len)` to send (maybe cut to a truncated slip), `None` to
/// send nothing.
pub fn limit_response(
    shared: &Shared,
    shard: &crate::metrics::Shard,
    slips: &mut crate::rrl::SlipCounter,
    ip: IpAddr,
    out: &mut [u8],
    len: usize,
    now: std::time::Instant,
) -> Option<usize> {
    let Some(l) = &shared.rrl else { return Some(len) };
    let (class, action) = l.decide(ip, out.get(..len)?, now, slips);
    shard.record_rrl(class, action);
    match action {
        Action::Send | Action::Logged => Some(len),
        Action::Drop => None,
        Action::Slip => crate::rrl::slip(out, len),
    }
}

/// Shared state handle.
pub type SharedRef = Arc<Shared>;
