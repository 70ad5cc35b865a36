//! The gRPC admin API server (`proto/cluster.proto`), answering from the
//! mesh's latest snapshot: reads never wait for gossip.

use std::pin::Pin;
use std::sync::Arc;

use meshdns_mesh::MembershipEvent;
use meshdns_mesh::gossip::{MemberView, MeshHandle};
use meshdns_proto::cluster as pb;
use meshdns_proto::cluster::cluster_server::{Cluster, ClusterServer};
use meshdns_ring::Scope;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::config::GrpcSettings;

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS certificate or key could not be read.
    #[error("reading {path}: {source} (check grpc.tls_cert and grpc.tls_key)")]
    Read {
        /// File.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// tonic refused the TLS configuration or the server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The `Cluster` service over one node's mesh.
pub struct ClusterService {
    mesh: Arc<MeshHandle>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn members(&self, _: Request<pb::MembersRequest>) -> Result<Response<pb::MembersReply>, Status> {
        let s = self.mesh.snapshot();
        Ok(Response::new(pb::MembersReply {
            node_id: s.me.id.clone(),
            cluster: s.cluster.clone(),
            members: s.members.values().map(super::member).collect(),
        }))
    }

    async fn ring(&self, req: Request<pb::RingRequest>) -> Result<Response<pb::RingReply>, Status> {
        let req = req.into_inner();
        if req.key.is_empty() {
            return Err(Status::invalid_argument("key is empty: pass --key NAME"));
        }
        let n = if req.n == 0 { 3 } else { req.n.min(64) as usize };
        let s = self.mesh.snapshot();
        let (region, site) = (s.me.region.as_str(), s.me.site.as_str());
        let owners =
            |scope: Scope<'_>| s.ring.owners(req.key.as_bytes(), n, scope).into_iter().map(|m| m.id.clone()).collect();
        let scopes = vec![
            pb::Owners {
                scope: "site".into(),
                name: format!("{region}/{site}"),
                owners: owners(Scope::Site { region, site }),
            },
            pb::Owners { scope: "region".into(), name: region.to_owned(), owners: owners(Scope::Region(region)) },
            pb::Owners { scope: "global".into(), name: String::new(), owners: owners(Scope::Global) },
        ];
        Ok(Response::new(pb::RingReply {
            node_id: s.me.id.clone(),
            key: req.key,
            scopes,
            members: s.ring.len() as u32,
        }))
    }

    async fn status(&self, _: Request<pb::StatusRequest>) -> Result<Response<pb::StatusReply>, Status> {
        Ok(Response::new(super::status(&self.mesh.snapshot(), tokio::time::Instant::now())))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, _: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let mesh = self.mesh.clone();
        let events = BroadcastStream::new(self.mesh.subscribe()).filter_map(move |e| {
            // A slow watcher that lagged behind loses events, not the stream.
            let e = e.ok()?;
            let snap = mesh.snapshot();
            let (kind, member) = match e.event {
                MembershipEvent::Up(r) => ("up", super::member(&MemberView { record: *r, last_heard: None })),
                MembershipEvent::Down(id, liveness) => {
                    let mut m = match snap.members.get(&id) {
                        Some(v) => super::member(v),
                        None => pb::Member { id: id.clone(), ..Default::default() },
                    };
                    m.liveness = liveness.as_str().to_owned();
                    ("down", m)
                }
            };
            Some(Ok(pb::WatchEvent { unix_ms: e.unix_ms, kind: kind.to_owned(), member: Some(member) }))
        });
        Ok(Response::new(Box::pin(events)))
    }
}

/// Serves the admin API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mesh: Arc<MeshHandle>,
    zones: super::guard::GuardedZones,
    settings: GrpcSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let mut builder = Server::builder();
    if let Some((cert, key)) = &settings.tls {
        let read =
            |p: &std::path::Path| std::fs::read(p).map_err(|e| ServeError::Read { path: p.to_owned(), source: e });
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let tokens = settings.tokens;
    // Every call needs a token (any role) if the node has tokens; the
    // caller rides along in the request's extensions, and each write
    // checks its role ([`crate::cluster::zones`]).
    let check = move |mut req: Request<()>| -> Result<Request<()>, Status> {
        let header = req.metadata().get("authorization").map(|v| v.as_bytes());
        match tokens.authenticate(header, req.remote_addr()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Err(denied) => Err(Status::unauthenticated(denied.to_string())),
        }
    };
    let service = ClusterServer::with_interceptor(ClusterService { mesh }, check.clone());
    // A zone import carries a whole master file: allow up to 256 MiB.
    let zones = tonic::service::interceptor::InterceptedService::new(
        meshdns_proto::zones::zones_server::ZonesServer::new(zones).max_decoding_message_size(256 * 1024 * 1024),
        check,
    );
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    builder
        .add_service(service)
        .add_service(zones)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}
