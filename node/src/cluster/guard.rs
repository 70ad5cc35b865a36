//! The `Zones` service as the network sees it: [`ZonesService`] behind
//! the role check and the audit log.
//!
//! Every write RPC needs a write token (the interceptor in
//! [`super::service`] has already required some valid token and put the
//! [`Caller`] in the request's extensions); each write, and each refused
//! for its role, is one audit entry. A call that arrives without a caller
//! is refused: writes are denied unless shown to be allowed. A new RPC in
//! `zones.proto` fails to compile here until it is classified.

use std::sync::Arc;

use meshdns_proto::zones as pb;
use meshdns_proto::zones::zones_server::Zones;
use tonic::{Request, Response, Status};

use super::zones::ZonesService;
use crate::admin::audit::{Action, AuditLog};
use crate::admin::auth::{Caller, require_write};

/// [`ZonesService`] with its writes authorized and audited.
pub struct GuardedZones {
    /// The service.
    pub inner: ZonesService,
    /// Where every write (and every refused one) is recorded.
    pub audit: Arc<AuditLog>,
}

type WriteResult = Result<Response<pb::WriteReply>, Status>;

impl GuardedZones {
    /// The caller of a write RPC, if it may write; a refusal is audited.
    fn writer<T>(&self, req: &Request<T>, action: &str, zone: &str) -> Result<Caller, Status> {
        let Some(caller) = req.extensions().get::<Caller>().cloned() else {
            return Err(Status::permission_denied("no authenticated caller"));
        };
        if let Err(denied) = require_write(&caller) {
            self.record(&caller, action, zone, "denied", denied.to_string());
            return Err(Status::permission_denied(denied.to_string()));
        }
        Ok(caller)
    }

    fn record(&self, caller: &Caller, action: &str, zone: &str, result: &str, detail: String) {
        self.audit.record(Action {
            actor: caller.actor(),
            peer: caller.peer.map(|p| p.to_string()),
            action: action.to_owned(),
            zone: Some(zone.to_owned()),
            result: result.to_owned(),
            detail,
        });
    }

    /// Records a write's outcome and passes it on.
    fn audited(&self, caller: &Caller, action: &str, zone: &str, what: &str, result: WriteResult) -> WriteResult {
        let sep = if what.is_empty() { "" } else { ": " };
        match &result {
            Ok(r) => {
                let r = r.get_ref();
                let detail = format!("{what}{sep}serial {}, {} RRset(s) written", r.serial, r.changed);
                self.record(caller, action, zone, "ok", detail);
            }
            Err(e) => self.record(caller, action, zone, "error", format!("{what}{sep}{:?}: {}", e.code(), e.message())),
        }
        result
    }
}

#[tonic::async_trait]
impl Zones for GuardedZones {
    async fn create(&self, req: Request<pb::CreateRequest>) -> WriteResult {
        let zone = req.get_ref().zone.clone();
        let caller = self.writer(&req, "zone.create", &zone)?;
        let result = self.inner.create(req).await;
        self.audited(&caller, "zone.create", &zone, "", result)
    }

    async fn delete(&self, req: Request<pb::ZoneRequest>) -> WriteResult {
        let zone = req.get_ref().zone.clone();
        let caller = self.writer(&req, "zone.delete", &zone)?;
        let result = self.inner.delete(req).await;
        self.audited(&caller, "zone.delete", &zone, "", result)
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> WriteResult {
        let r = req.get_ref();
        let (zone, what) = (r.zone.clone(), format!("{} {} ({} record(s))", r.name, r.rtype, r.rdata.len()));
        let caller = self.writer(&req, "zone.set", &zone)?;
        let result = self.inner.set(req).await;
        self.audited(&caller, "zone.set", &zone, &what, result)
    }

    async fn remove(&self, req: Request<pb::RemoveRequest>) -> WriteResult {
        let r = req.get_ref();
        let (zone, what) = (r.zone.clone(), format!("{} {}", r.name, r.rtype));
        let caller = self.writer(&req, "zone.remove", &zone)?;
        let result = self.inner.remove(req).await;
        self.audited(&caller, "zone.remove", &zone, &what, result)
    }

    async fn import(&self, req: Request<pb::ImportRequest>) -> WriteResult {
        // A dry run (`zone diff`) writes nothing: a read token may ask.
        if req.get_ref().dry_run {
            return self.inner.import(req).await;
        }
        let zone = req.get_ref().zone.clone();
        let caller = self.writer(&req, "zone.import", &zone)?;
        let result = self.inner.import(req).await;
        self.audited(&caller, "zone.import", &zone, "", result)
    }

    async fn export(&self, req: Request<pb::ZoneRequest>) -> Result<Response<pb::ExportReply>, Status> {
        self.inner.export(req).await
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        self.inner.list(req).await
    }
}
