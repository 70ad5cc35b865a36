//! The HTTP listener: `GET /metrics` (Prometheus text format), `GET /healthz`
//! (the process is up), `GET /readyz` (zones loaded, listeners bound, gossip running)
//! and `POST /reload` (what `meshdns zone reload` and SIGHUP do).
//!
//! Who may use it: the `GET` pages are public to whoever reaches the
//! listener. `POST /reload` needs a write token (`Authorization: Bearer`)
//! if the node has tokens; on a node without tokens (then the listener is
//! on loopback, see `config`) it needs the `X-Meshdns-Admin` header, which
//! a browser's cross-site form post cannot send (and a script's needs a
//! CORS preflight this listener never grants), so a web page cannot make
//! the browser on the same host reload the zones. Every reload is audited.
//!
//! Every request is first checked against `acl.admin` (default: anyone who
//! can reach the address, which is loopback by default); others get 403.

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::SharedRef;
use crate::admin::audit::Action;
use crate::admin::auth::{Caller, require_write};
use crate::dns::wire::name::to_text;
use crate::zone::store::{LoadReport, ZoneLoad};

/// Most concurrent HTTP connections; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Time allowed for a request's headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest an HTTP connection may stay open (a reload of large zones included).
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Serves HTTP until `shutdown` turns true.
pub async fn serve(listener: TcpListener, shared: SharedRef, mut shutdown: watch::Receiver<bool>) {
    // A scraper or health checker needs a handful of connections; idle or
    // slow ones must not pile up and take file descriptors from DNS.
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        // The admin access list: an outsider gets 403 for every request.
        let allowed = shared.config.acl.admin.permits(peer.ip());
        if !allowed {
            shared.metrics.record_acl_refused(crate::acl::AclKind::Admin);
            tracing::debug!(%peer, "HTTP client refused by acl.admin");
        }
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move {
                    if allowed {
                        handle(req, shared, peer).await
                    } else {
                        let mut r = Response::new(Full::new(Bytes::from("forbidden: not in acl.admin\n")));
                        *r.status_mut() = StatusCode::FORBIDDEN;
                        Ok(r)
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            // Reloads can take seconds; anything else is quick.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

/// The header a node without tokens wants on `POST` requests.
pub const ADMIN_HEADER: &str = "x-meshdns-admin";

/// Who sent a `POST`, if they may: a write token, or on a node without
/// tokens the [`ADMIN_HEADER`]. `Err` is the status and reason to answer.
fn post_caller(
    req: &Request<Incoming>,
    shared: &SharedRef,
    peer: std::net::SocketAddr,
) -> Result<Caller, (StatusCode, String)> {
    let tokens = &shared.config.grpc.tokens;
    let header = req.headers().get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes());
    if tokens.is_empty() && !req.headers().contains_key(ADMIN_HEADER) && header.is_none() {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "POST needs the {ADMIN_HEADER} header (any value), which a cross-site form cannot send; \
                 `meshdns zone reload` sends it\n"
            ),
        ));
    }
    let caller = tokens
        .authenticate(header, Some(peer))
        .map_err(|e| (StatusCode::UNAUTHORIZED, format!("{e}: send Authorization: Bearer WRITE-TOKEN\n")))?;
    require_write(&caller).map_err(|e| (StatusCode::FORBIDDEN, format!("{e}\n")))?;
    Ok(caller)
}

async fn handle(
    req: Request<Incoming>,
    shared: SharedRef,
    peer: std::net::SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        Ok(r)
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut r = reply(StatusCode::OK, render_metrics(&shared))?;
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(r)
        }
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/readyz") => {
            let gossip_down = shared.mesh.get().and_then(|m| m.gossip_down());
            if let Some(why) = gossip_down {
                // DNS still answers, but the node is cut off from the cluster.
                reply(StatusCode::SERVICE_UNAVAILABLE, format!("gossip down: {why}\n"))
            } else if shared.ready.load(Ordering::Acquire) {
                reply(StatusCode::OK, "ready\n".into())
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into())
            }
        }
        (&Method::POST, "/reload") => {
            let caller = match post_caller(&req, &shared, peer) {
                Ok(c) => c,
                Err((status, why)) => {
                    tracing::warn!(%peer, "refused POST /reload: {}", why.trim_end());
                    shared.audit.record(Action {
                        actor: "unauthenticated".into(),
                        peer: Some(peer.to_string()),
                        action: "reload".into(),
                        zone: None,
                        result: "denied".into(),
                        detail: why.trim_end().to_owned(),
                    });
                    return reply(status, why);
                }
            };
            let shared2 = shared.clone();
            let result = tokio::task::spawn_blocking(move || shared2.reload_zones()).await;
            let (status, body) = match result {
                Ok(Ok(report)) => {
                    log_report(&report);
                    let status = if report.failures() == 0 { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
                    (status, format_report(&report))
                }
                Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("reload failed: {e}\n")),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("reload failed: {e}\n")),
            };
            audit_reload(&shared, caller.actor(), Some(peer), status == StatusCode::OK, &body);
            reply(status, body)
        }
        (&Method::GET, "/cache/stats") | (&Method::GET, "/cache/dump") | (&Method::POST, "/cache/flush") => {
            let Some(resolver) = &shared.resolver else {
                return reply(StatusCode::NOT_FOUND, "the resolver is off on this node: there is no cache\n".into());
            };
            // The cache shows what clients ask: reading it needs what a
            // write needs (the admin header or a write token).
            let caller = match post_caller(&req, &shared, peer) {
                Ok(c) => c,
                Err((status, why)) => return reply(status, why),
            };
            match req.uri().path() {
                "/cache/stats" => reply(StatusCode::OK, resolver.stats_text()),
                "/cache/dump" => reply(StatusCode::OK, resolver.dump_text()),
                _ => {
                    let name = req.uri().query().and_then(|q| {
                        q.split('&').find_map(|kv| kv.strip_prefix("name=")).map(percent_decode)
                    });
                    match resolver.flush(name.as_deref()) {
                        Ok(n) => {
                            shared.audit.record(Action {
                                actor: caller.actor(),
                                peer: Some(peer.to_string()),
                                action: "cache.flush".into(),
                                zone: name.clone(),
                                result: "ok".into(),
                                detail: format!("{n} entries"),
                            });
                            reply(StatusCode::OK, format!("flushed {n} entries\n"))
                        }
                        Err(e) => reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
                    }
                }
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz, /readyz, POST /reload, /cache/stats, /cache/dump or POST /cache/flush\n"
                .into(),
        ),
    }
}

/// Records a reload (HTTP or SIGHUP) in the audit log; `summary` is its
/// report, one line per zone.
pub fn audit_reload(shared: &SharedRef, actor: String, peer: Option<std::net::SocketAddr>, ok: bool, summary: &str) {
    let mut detail: String = summary.lines().filter(|l| !l.starts_with(' ')).take(20).collect::<Vec<_>>().join("; ");
    if detail.len() > 2000 {
        let mut end = 2000;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
    shared.audit.record(Action {
        actor,
        peer: peer.map(|p| p.to_string()),
        action: "reload".into(),
        zone: None,
        result: if ok { "ok" } else { "error" }.into(),
        detail,
    });
}

/// The whole `/metrics` page, every part through one
/// [`crate::exposition::Exposition`].
pub fn render_metrics(shared: &SharedRef) -> String {
    use crate::exposition::{Exposition, Kind};
    let mut out = Exposition::new();
    shared.metrics.render(&mut out);
    if let Some(mesh) = shared.mesh.get() {
        crate::cluster::metrics::render(&mesh.snapshot(), &mut out);
    }
    if let Some(zones) = shared.replicated.get() {
        out.family(
            "meshdns_replication_overlay_rrsets",
            Kind::Gauge,
            "RRsets answered from overlays, waiting for their zone's recompile.",
        );
        out.sample("meshdns_replication_overlay_rrsets", &[], zones.overlay_rrsets());
    }
    if let Some(syncer) = shared.syncer.get() {
        syncer.render_metrics(&mut out);
    }
    if let Some(r) = &shared.resolver {
        r.render_metrics(&mut out);
    }
    let zones = shared.store.current_full();
    out.family("meshdns_zones_loaded", Kind::Gauge, "Zones being served.");
    out.sample("meshdns_zones_loaded", &[], zones.zones().len());
    out.family("meshdns_zone_serial", Kind::Gauge, "SOA serial of each served zone.");
    for z in zones.zones() {
        out.sample("meshdns_zone_serial", &[("zone", &to_text(z.origin()))], z.serial());
    }
    out.family("meshdns_zone_nodes", Kind::Gauge, "Owner names (and empty non-terminals) per zone.");
    for z in zones.zones() {
        out.sample("meshdns_zone_nodes", &[("zone", &to_text(z.origin()))], z.node_count());
    }
    out.family("meshdns_zone_load_errors_total", Kind::Counter, "Failed loads per zone file since start.");
    for (file, n) in shared.store.failure_counts() {
        out.sample("meshdns_zone_load_errors_total", &[("file", &file)], n);
    }
    out.finish()
}

/// Logs each zone's load outcome.
pub fn log_report(report: &LoadReport) {
    for z in &report.zones {
        match z {
            ZoneLoad::Compiled { zone, serial, records, warnings, seconds } => {
                for w in warnings {
                    tracing::warn!(%zone, "{w}");
                }
                tracing::info!(%zone, serial, records, seconds, "zone compiled");
            }
            ZoneLoad::Reused { zone, serial } => {
                tracing::info!(%zone, serial, "zone loaded from its snapshot")
            }
            ZoneLoad::Unchanged { zone } => tracing::debug!(%zone, "zone unchanged"),
            ZoneLoad::Failed { file, error, kept_previous } => {
                tracing::error!(file = %file.display(), kept_previous, "zone failed to load:\n{error}")
            }
        }
    }
    for zone in &report.removed {
        tracing::info!(%zone, "zone removed (its file is gone)");
    }
}

/// A plain-text summary, one line per zone.
pub fn format_report(report: &LoadReport) -> String {
    let mut out = String::new();
    for z in &report.zones {
        let _ = match z {
            ZoneLoad::Compiled { zone, serial, records, warnings, .. } => {
                writeln!(out, "compiled {zone} serial {serial} ({records} records, {} warnings)", warnings.len())
            }
            ZoneLoad::Reused { zone, serial } => {
                writeln!(out, "loaded {zone} serial {serial} from snapshot")
            }
            ZoneLoad::Unchanged { zone } => writeln!(out, "unchanged {zone}"),
            ZoneLoad::Failed { file, error, kept_previous } => writeln!(
                out,
                "FAILED {}{}\n{error}",
                file.display(),
                if *kept_previous { " (previous version still served)" } else { "" }
            ),
        };
    }
    for zone in &report.removed {
        let _ = writeln!(out, "removed {zone}");
    }
    out
}

/// Decodes `%XX` escapes of a query-string value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
