//! `meshdns cluster members|ring|status|watch`: the admin API's client.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use meshdns_proto::cluster as pb;
use meshdns_proto::cluster::cluster_client::ClusterClient;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::cli::{ApiArgs, ClusterArgs, ClusterCommand, Output};

/// Adds the bearer token (if any) to each request.
pub type AddToken = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

/// Runs one `meshdns cluster` command against `args.endpoint`.
pub async fn run(cluster: &ClusterArgs) -> Result<()> {
    let args = &cluster.api;
    let (channel, token) = connect(args).await?;
    let mut client = ClusterClient::with_interceptor(channel, token);
    let out = &mut std::io::stdout().lock();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let unreachable = |e: tonic::Status| explain(&args.endpoint, e);
    match &cluster.command {
        ClusterCommand::Members => {
            let r = tokio::time::timeout(timeout, client.members(pb::MembersRequest {}))
                .await
                .map_err(|_| anyhow!("{} did not answer within {timeout:?}", args.endpoint))?
                .map_err(unreachable)?
                .into_inner();
            print_members(out, &r, cluster.output)?;
        }
        ClusterCommand::Ring { key, n } => {
            let r = tokio::time::timeout(timeout, client.ring(pb::RingRequest { key: key.clone(), n: *n }))
                .await
                .map_err(|_| anyhow!("{} did not answer within {timeout:?}", args.endpoint))?
                .map_err(unreachable)?
                .into_inner();
            print_ring(out, &r, cluster.output)?;
        }
        ClusterCommand::Status => {
            let r = tokio::time::timeout(timeout, client.status(pb::StatusRequest {}))
                .await
                .map_err(|_| anyhow!("{} did not answer within {timeout:?}", args.endpoint))?
                .map_err(unreachable)?
                .into_inner();
            print_status(out, &r, cluster.output)?;
        }
        ClusterCommand::Watch => {
            let mut stream = tokio::time::timeout(timeout, client.watch(pb::WatchRequest {}))
                .await
                .map_err(|_| anyhow!("{} did not answer within {timeout:?}", args.endpoint))?
                .map_err(unreachable)?
                .into_inner();
            if cluster.output == Output::Table {
                writeln!(out, "watching membership events from {} (Ctrl-C to stop)", args.endpoint)?;
                out.flush()?;
            }
            while let Some(e) = stream.message().await.map_err(|e| explain(&args.endpoint, e))? {
                print_event(out, &e, cluster.output)?;
                out.flush()?;
            }
            return Err(anyhow!("{} closed the event stream (node stopping?)", args.endpoint));
        }
        ClusterCommand::Zones => {
            let (channel, token) = connect(args).await?;
            let mut zones = meshdns_proto::zones::zones_client::ZonesClient::with_interceptor(channel, token);
            let r = tokio::time::timeout(timeout, zones.list(meshdns_proto::zones::ListRequest {}))
                .await
                .map_err(|_| anyhow!("{} did not answer within {timeout:?}", args.endpoint))?
                .map_err(unreachable)?
                .into_inner();
            super::zone_client::print_list(&r, cluster.output)?;
        }
        ClusterCommand::Ca(_) => return Err(anyhow!("`cluster ca` works on local files, not through a node")),
    }
    Ok(())
}

/// Explains a failed call: what to check next.
pub fn explain(endpoint: &str, e: tonic::Status) -> anyhow::Error {
    match e.code() {
        tonic::Code::Unavailable => anyhow!(
            "cannot reach a meshdns node at {endpoint}: {} (is `meshdns serve` running there with --grpc {endpoint}? pass --endpoint)",
            e.message()
        ),
        tonic::Code::Unauthenticated => anyhow!("{endpoint} refused the request: {} (pass --token)", e.message()),
        tonic::Code::PermissionDenied => anyhow!("{endpoint} refused the request: {}", e.message()),
        _ => anyhow!("{endpoint}: {} ({:?})", e.message(), e.code()),
    }
}

/// Connects to the admin API at `args.endpoint`: the channel, and the
/// interceptor that adds the bearer token.
pub async fn connect(args: &ApiArgs) -> Result<(Channel, AddToken)> {
    let tls = args.ca.is_some() || args.endpoint.starts_with("https://");
    let url = if args.endpoint.contains("://") {
        args.endpoint.clone()
    } else {
        format!("{}://{}", if tls { "https" } else { "http" }, args.endpoint)
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("--endpoint {:?} is not an address such as 127.0.0.1:7947", args.endpoint))?
        .connect_timeout(Duration::from_secs(args.timeout.max(1)));
    if tls {
        let mut cfg = ClientTlsConfig::new();
        if let Some(ca) = &args.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading --ca {}", ca.display()))?;
            cfg = cfg.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(cfg).context("TLS settings")?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        // tonic's error chain repeats itself ("tcp connect error: tcp
        // connect error: ..."): keep each distinct cause once.
        let mut parts = vec![e.to_string()];
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let text = s.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            src = s.source();
        }
        let msg = parts.join(": ");
        anyhow!("cannot reach a meshdns node at {url}: {msg} (is `meshdns serve` running with --grpc there? pass --endpoint)")
    })?;
    let token = match &args.token {
        Some(t) => Some(
            MetadataValue::try_from(format!("Bearer {}", t.expose()))
                .map_err(|_| anyhow!("--token has characters a header cannot carry"))?,
        ),
        None => None,
    };
    let add_token: AddToken = Box::new(move |mut req: tonic::Request<()>| {
        if let Some(t) = &token {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    });
    Ok((channel, add_token))
}

fn member_json(m: &pb::Member) -> Value {
    json!({
        "id": m.id, "region": m.region, "site": m.site, "generation": m.generation,
        "gossip": m.gossip, "dns": m.dns, "grpc": m.grpc, "quic": m.quic,
        "version": m.version, "started_unix": m.started_unix, "load": m.load,
        "roles": m.roles, "liveness": m.liveness, "last_heard_ms": m.last_heard_ms,
        "via": m.via,
    })
}

/// Prints rows with columns padded to their widest cell.
fn table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".to_owned() } else { s.to_owned() }
}

fn print_members(out: &mut impl Write, r: &pb::MembersReply, o: Output) -> Result<()> {
    if o == Output::Json {
        let members: Vec<Value> = r.members.iter().map(member_json).collect();
        writeln!(out, "{}", json!({"node_id": r.node_id, "cluster": r.cluster, "members": members}))?;
        return Ok(());
    }
    let mut rows = vec![
        ["ID", "REGION", "SITE", "ROLES", "STATE", "HEARD", "VIA", "DNS", "GRPC", "GOSSIP", "VERSION"]
            .map(String::from)
            .to_vec(),
    ];
    for m in &r.members {
        let heard = match m.last_heard_ms {
            Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
            None if m.id == r.node_id => "self".to_owned(),
            None => "-".to_owned(),
        };
        rows.push(vec![
            m.id.clone(),
            m.region.clone(),
            m.site.clone(),
            m.roles.clone(),
            m.liveness.clone(),
            heard,
            dash(&m.via),
            dash(&m.dns),
            dash(&m.grpc),
            m.gossip.clone(),
            m.version.clone(),
        ]);
    }
    table(out, &rows)?;
    writeln!(out, "{} members seen by {} (cluster {})", r.members.len(), r.node_id, r.cluster)?;
    Ok(())
}

fn print_ring(out: &mut impl Write, r: &pb::RingReply, o: Output) -> Result<()> {
    if o == Output::Json {
        let scopes: Vec<Value> =
            r.scopes.iter().map(|s| json!({"scope": s.scope, "name": s.name, "owners": s.owners})).collect();
        writeln!(out, "{}", json!({"node_id": r.node_id, "key": r.key, "members": r.members, "scopes": scopes}))?;
        return Ok(());
    }
    let mut rows = vec![["SCOPE", "NAME", "OWNERS"].map(String::from).to_vec()];
    for s in &r.scopes {
        rows.push(vec![s.scope.clone(), dash(&s.name), s.owners.join(",")]);
    }
    table(out, &rows)?;
    writeln!(out, "key {:?} over {} live members, as {} sees them", r.key, r.members, r.node_id)?;
    Ok(())
}

fn print_status(out: &mut impl Write, r: &pb::StatusReply, o: Output) -> Result<()> {
    if o == Output::Json {
        let sites: Vec<Value> = r
            .sites
            .iter()
            .map(|s| json!({"region": s.region, "site": s.site, "alive": s.alive, "suspect": s.suspect, "dead": s.dead, "left": s.left}))
            .collect();
        let pools: Vec<Value> = r
            .pools
            .iter()
            .map(|p| json!({"name": p.name, "addr": p.addr, "live_peers": p.live_peers, "messages_in": p.messages_in, "bytes_in": p.bytes_in, "messages_out": p.messages_out, "bytes_out": p.bytes_out}))
            .collect();
        writeln!(
            out,
            "{}",
            json!({
                "node_id": r.node_id, "cluster": r.cluster, "region": r.region, "site": r.site, "roles": r.roles,
                "version": r.version, "alive": r.alive, "suspect": r.suspect, "dead": r.dead, "left": r.left,
                "view_age_ms": r.view_age_ms, "since_change_ms": r.since_change_ms, "sites": sites, "pools": pools,
                "pool_errors": r.pool_errors, "representative_changes": r.representative_changes,
            })
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "node {} ({}/{}, roles {}) in cluster {}, version {}",
        r.node_id, r.region, r.site, r.roles, r.cluster, r.version
    )?;
    writeln!(
        out,
        "members: {} alive, {} suspect, {} dead, {} left; view refreshed {} ms ago, last change {:.1} s ago",
        r.alive,
        r.suspect,
        r.dead,
        r.left,
        r.view_age_ms,
        r.since_change_ms as f64 / 1000.0
    )?;
    let mut rows = vec![["REGION", "SITE", "ALIVE", "SUSPECT", "DEAD", "LEFT"].map(String::from).to_vec()];
    for s in &r.sites {
        rows.push(vec![
            s.region.clone(),
            s.site.clone(),
            s.alive.to_string(),
            s.suspect.to_string(),
            s.dead.to_string(),
            s.left.to_string(),
        ]);
    }
    table(out, &rows)?;
    let mut rows =
        vec![["POOL", "ADDRESS", "PEERS", "MSG IN", "BYTES IN", "MSG OUT", "BYTES OUT"].map(String::from).to_vec()];
    for p in &r.pools {
        rows.push(vec![
            p.name.clone(),
            p.addr.clone(),
            p.live_peers.to_string(),
            p.messages_in.to_string(),
            p.bytes_in.to_string(),
            p.messages_out.to_string(),
            p.bytes_out.to_string(),
        ]);
    }
    table(out, &rows)?;
    for e in &r.pool_errors {
        writeln!(out, "error: {e}")?;
    }
    Ok(())
}

fn print_event(out: &mut impl Write, e: &pb::WatchEvent, o: Output) -> Result<()> {
    let m = e.member.clone().unwrap_or_default();
    if o == Output::Json {
        writeln!(out, "{}", json!({"unix_ms": e.unix_ms, "kind": e.kind, "member": member_json(&m)}))?;
    } else {
        writeln!(
            out,
            "{:.3} {:<4} {} {}/{} {} {}",
            e.unix_ms as f64 / 1000.0,
            e.kind,
            m.id,
            m.region,
            m.site,
            m.roles,
            m.liveness
        )?;
    }
    Ok(())
}
