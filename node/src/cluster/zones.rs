//! The `Zones` gRPC service (`proto/zones.proto`): writes to replicated
//! zones, answered once they are on this node's disk.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use domain::base::iana::Rtype;
use meshdns_proto::zones as pb;
use meshdns_proto::zones::zones_server::Zones;
use meshdns_replication::{EntryKey, RRset};
use tonic::{Request, Response, Status};

use crate::dns::wire::name::to_text;
use crate::replicated::files::same_rrset;
use crate::replicated::text::{parse_rrsets, rdata_text, record_line, zone_file};
use crate::replicated::{ReplicatedError, ReplicatedZones, WriteVersion, zone_wire};
use crate::server::Shared;

/// The service over this node's replicated zones; every write also swaps
/// the data plane's zone set.
pub struct ZonesService {
    /// The zones.
    pub zones: Arc<ReplicatedZones>,
    /// The data plane (its zone store is swapped after each write).
    pub shared: Arc<Shared>,
    /// This node's id (for `List`).
    pub node_id: String,
    /// The mesh: what other nodes hold, for `List` and waiting.
    pub mesh: Arc<meshdns_mesh::gossip::MeshHandle>,
}

/// Serials other nodes publish for `zone`: (node id, site mate?, serial),
/// for live members heard directly.
fn peer_serials(mesh: &meshdns_mesh::gossip::MeshHandle, zone: &str) -> Vec<(String, bool, u32)> {
    let s = mesh.snapshot();
    s.members
        .values()
        .filter(|m| m.record.facts.id != s.me.id && m.record.liveness == meshdns_mesh::Liveness::Alive)
        .filter_map(|m| {
            let f = &m.record.facts;
            let serial = f
                .zone_serials
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(z, _)| zone_wire(z) == zone_wire(zone))
                .and_then(|(_, v)| v.parse().ok())?;
            Some((f.id.clone(), f.region == s.me.region && f.site == s.me.site, serial))
        })
        .collect()
}

/// Other live members of this node's site.
fn site_mates(mesh: &meshdns_mesh::gossip::MeshHandle) -> usize {
    let s = mesh.snapshot();
    s.members
        .values()
        .filter(|m| m.record.facts.id != s.me.id && m.record.liveness == meshdns_mesh::Liveness::Alive)
        .filter(|m| m.record.facts.region == s.me.region && m.record.facts.site == s.me.site)
        .count()
}

fn status(e: ReplicatedError) -> Status {
    match e {
        ReplicatedError::NoZone(_) => Status::not_found(e.to_string()),
        ReplicatedError::Exists(_) => Status::already_exists(e.to_string()),
        ReplicatedError::Invalid(_) => Status::invalid_argument(e.to_string()),
        ReplicatedError::Journal(_) => Status::unavailable(e.to_string()),
        ReplicatedError::Corrupt { .. } => Status::internal(e.to_string()),
    }
}

/// An owner given relative to `zone` (or absolute with a trailing dot; `@`
/// is the apex), in wire form.
fn owner(zone: &str, name: &str) -> Result<Vec<u8>, Status> {
    let zone_abs = if zone.ends_with('.') { zone.to_owned() } else { format!("{zone}.") };
    let text = match name {
        "@" | "" => zone_abs,
        n if n.ends_with('.') => n.to_owned(),
        n => format!("{n}.{zone_abs}"),
    };
    zone_wire(&text).ok_or_else(|| Status::invalid_argument(format!("{name:?} is not a domain name")))
}

fn rtype(text: &str) -> Result<u16, Status> {
    Rtype::from_str(text)
        .map(|t| t.to_int())
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not a record type (e.g. A, AAAA, TXT, TYPE65280)")))
}

impl ZonesService {
    /// Runs a blocking write (it fsyncs) off the async threads, then serves
    /// the result.
    async fn write<F>(&self, zone: &str, changed: u32, f: F) -> Result<Response<pb::WriteReply>, Status>
    where
        F: FnOnce(&ReplicatedZones) -> Result<(), ReplicatedError> + Send + 'static,
    {
        self.write_and_wait(zone, changed, None, move |z| f(z).map(|()| None)).await
    }

    /// Writes, then (if asked) waits until enough other nodes hold this
    /// very write: each peer is asked for it by its number (see
    /// `Syncer::peer_holds`). A peer that holds as many writes, or more,
    /// but not this one does not count.
    async fn write_and_wait<F>(
        &self,
        zone: &str,
        changed: u32,
        wait: Option<pb::Wait>,
        f: F,
    ) -> Result<Response<pb::WriteReply>, Status>
    where
        F: FnOnce(&ReplicatedZones) -> Result<Option<WriteVersion>, ReplicatedError> + Send + 'static,
    {
        let zones = self.zones.clone();
        let version = tokio::task::spawn_blocking(move || f(&zones))
            .await
            .map_err(|e| Status::internal(format!("write task failed: {e}")))?
            .map_err(status)?;
        let serial = self.zones.zone_serial(zone);
        let mut confirmed_by = 0;
        if let Some(w) = wait.filter(|w| w.nodes > 0 || w.site) {
            let limit =
                std::time::Duration::from_millis(if w.timeout_ms == 0 { 10_000 } else { u64::from(w.timeout_ms) });
            let deadline = tokio::time::Instant::now() + limit;
            let mut holders: std::collections::BTreeSet<String> = Default::default();
            loop {
                let peers = self.shared.syncer.get().map(|s| s.live_peers()).unwrap_or_default();
                if let (Some(syncer), Some(version)) = (self.shared.syncer.get(), version.as_ref()) {
                    let unconfirmed: Vec<&(String, SocketAddr, bool)> =
                        peers.iter().filter(|(id, _, _)| !holders.contains(id)).collect();
                    for (id, addr, _) in unconfirmed {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let ask = syncer.peer_holds(id, *addr, version);
                        if let Ok(Ok(true)) = tokio::time::timeout(left.min(ASK_TIMEOUT), ask).await {
                            holders.insert(id.clone());
                        }
                    }
                }
                let live: Vec<&(String, SocketAddr, bool)> = peers.iter().collect();
                confirmed_by = live.iter().filter(|(id, _, _)| holders.contains(id)).count() as u32;
                let mates_holding = live.iter().filter(|(id, _, mate)| *mate && holders.contains(id)).count();
                let site_ok = !w.site || mates_holding >= site_mates(&self.mesh);
                if confirmed_by >= w.nodes && site_ok {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Status::deadline_exceeded(format!(
                        "written on this node (serial {serial}), but only {confirmed_by} other node(s) confirmed holding this write within {limit:?}"
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Ok(Response::new(pb::WriteReply { zone: zone.to_owned(), serial, changed, confirmed_by, changes: Vec::new() }))
    }
}

/// Longest wait for one peer's answer to "do you hold this write?".
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

#[tonic::async_trait]
impl Zones for ZonesService {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let r = req.into_inner();
        let ttl = if r.soa_ttl == 0 { 3600 } else { r.soa_ttl };
        let zone = r.zone.clone();
        self.write(&r.zone, 1, move |z| z.create_zone(&zone, ttl)).await
    }

    async fn delete(&self, req: Request<pb::ZoneRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let zone = req.into_inner().zone;
        let z2 = zone.clone();
        self.write(&zone, 1, move |z| z.delete_zone(&z2)).await
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let r = req.into_inner();
        if r.rdata.is_empty() {
            return Err(Status::invalid_argument("no RDATA: give at least one record (use remove to delete an RRset)"));
        }
        rtype(&r.rtype)?;
        let owner_text = to_text(&owner(&r.zone, &r.name)?);
        let text: String = r.rdata.iter().map(|d| record_line(&owner_text, &r.rtype, r.ttl, d)).collect();
        let sets = parse_rrsets(&r.zone, &text, "<zone set>").map_err(Status::invalid_argument)?;
        let sets: Vec<(EntryKey, Option<RRset>)> = sets.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let zone = r.zone.clone();
        self.write_and_wait(&r.zone, sets.len() as u32, r.wait, move |z| z.write_versioned(&zone, sets)).await
    }

    async fn remove(&self, req: Request<pb::RemoveRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let r = req.into_inner();
        let key = EntryKey { owner: owner(&r.zone, &r.name)?, rtype: rtype(&r.rtype)? };
        let zone = r.zone.clone();
        self.write_and_wait(&r.zone, 1, r.wait, move |z| z.write_versioned(&zone, vec![(key, None)])).await
    }

    async fn import(&self, req: Request<pb::ImportRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let r = req.into_inner();
        let wanted = parse_rrsets(&r.zone, &r.text, "<zone import>").map_err(Status::invalid_argument)?;
        let zone_bytes = zone_wire(&r.zone).ok_or_else(|| Status::invalid_argument("not a zone name"))?;
        if !wanted.iter().any(|(k, _)| k.rtype == 6 && k.owner == zone_bytes) {
            return Err(Status::invalid_argument(format!(
                "no SOA record at {}: a zone needs one",
                to_text(&zone_bytes)
            )));
        }
        let zones = self.zones.clone();
        let zone = r.zone.clone();
        let mut changed = 0u32;
        // Only what differs is written (SOA serials are the node's own).
        let current = match zones.rrsets(&zone) {
            Ok(c) => c,
            Err(ReplicatedError::NoZone(_)) if r.dry_run => Vec::new(),
            Err(ReplicatedError::NoZone(_)) => {
                let z = zone.clone();
                tokio::task::spawn_blocking(move || zones.create_zone(&z, 3600))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(status)?;
                self.zones.rrsets(&zone).map_err(status)?
            }
            Err(e) => return Err(status(e)),
        };
        let mut writes: Vec<(EntryKey, Option<RRset>)> = Vec::new();
        for (k, v) in &wanted {
            if !current.iter().any(|(ck, cv)| ck == k && same_rrset(k, cv, v)) {
                writes.push((k.clone(), Some(v.clone())));
            }
        }
        for (k, _) in &current {
            if k.rtype != 6 && !wanted.iter().any(|(wk, _)| wk == k) {
                writes.push((k.clone(), None));
            }
        }
        changed += writes.len() as u32;
        if r.dry_run {
            let changes = writes
                .iter()
                .flat_map(|(k, v)| match v {
                    Some(set) => set
                        .rdata
                        .iter()
                        .map(|d| {
                            let t = domain::base::iana::Rtype::from_int(k.rtype);
                            format!("+ {} {} IN {t} {}", to_text(&k.owner), set.ttl, rdata_text(k.rtype, d))
                        })
                        .collect::<Vec<_>>(),
                    None => vec![format!("- {} {}", to_text(&k.owner), domain::base::iana::Rtype::from_int(k.rtype))],
                })
                .collect();
            return Ok(Response::new(pb::WriteReply { zone: r.zone, serial: 0, changed, confirmed_by: 0, changes }));
        }
        if writes.is_empty() {
            let serial = self
                .zones
                .list()
                .into_iter()
                .find(|z| zone_wire(&z.name) == Some(zone_bytes.clone()))
                .map_or(0, |z| z.serial);
            return Ok(Response::new(pb::WriteReply {
                zone: r.zone,
                serial,
                changed: 0,
                confirmed_by: 0,
                changes: Vec::new(),
            }));
        }
        let z = zone.clone();
        self.write_and_wait(&r.zone, changed, r.wait, move |zs| zs.write_versioned(&z, writes)).await
    }

    async fn export(&self, req: Request<pb::ZoneRequest>) -> Result<Response<pb::ExportReply>, Status> {
        let zone = req.into_inner().zone;
        let mut sets = self.zones.rrsets(&zone).map_err(status)?;
        let serial = self.zones.zone_serial(&zone);
        for (k, v) in sets.iter_mut() {
            if k.rtype == 6 {
                for r in v.rdata.iter_mut() {
                    if r.len() >= 20 {
                        let at = r.len() - 20;
                        r[at..at + 4].copy_from_slice(&serial.to_be_bytes());
                    }
                }
            }
        }
        let wire = zone_wire(&zone).unwrap_or_default();
        Ok(Response::new(pb::ExportReply { zone: to_text(&wire), text: zone_file(&wire, &sets) }))
    }

    async fn list(&self, _: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let zones = self
            .zones
            .list()
            .into_iter()
            .map(|z| pb::ZoneInfo {
                peers: peer_serials(&self.mesh, &z.name)
                    .into_iter()
                    .map(|(node_id, _, serial)| pb::PeerSerial {
                        node_id,
                        serial,
                        behind: i64::from(z.serial) - i64::from(serial),
                    })
                    .collect(),
                name: z.name,
                serial: z.serial,
                rrsets: z.rrsets as u64,
                digest: format!("{:016x}", z.digest),
                error: z.error.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListReply { node_id: self.node_id.clone(), zones }))
    }
}
