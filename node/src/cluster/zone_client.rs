//! `meshdns zone create|delete|set|remove|import|export|list`: the
//! `Zones` service's client.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use meshdns_proto::zones as pb;
use meshdns_proto::zones::zones_client::ZonesClient;
use serde_json::json;

use super::client::{connect, explain};
use crate::cli::{ApiArgs, Output, WaitArgs, ZoneCommand};

fn wait_of(w: &WaitArgs) -> Option<pb::Wait> {
    Some(pb::Wait { nodes: w.wait_for, site: w.wait_site, timeout_ms: w.wait_timeout_ms })
}
use crate::zone::store::initial_origin;

/// Runs one replicated-zone command. `None` for the commands that are not
/// about replicated zones; `Some(Ok(true))` when `diff` found differences.
pub async fn run(cmd: &ZoneCommand) -> Option<Result<bool>> {
    let api = match cmd {
        ZoneCommand::Create { api, .. }
        | ZoneCommand::Delete { api, .. }
        | ZoneCommand::Set { api, .. }
        | ZoneCommand::Remove { api, .. }
        | ZoneCommand::Import { api, .. }
        | ZoneCommand::Diff { api, .. }
        | ZoneCommand::Export { api, .. }
        | ZoneCommand::List { api, .. } => api,
        ZoneCommand::Check { .. } | ZoneCommand::Reload { .. } => return None,
    };
    Some(run_with(cmd, api).await)
}

async fn run_with(cmd: &ZoneCommand, api: &ApiArgs) -> Result<bool> {
    let (channel, token) = connect(api).await?;
    // Imports and exports carry whole master files.
    let mut c = ZonesClient::with_interceptor(channel, token)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024);
    let timeout = Duration::from_secs(api.timeout.max(1));
    let ep = &api.endpoint;
    let within = |what: &'static str| move |_| anyhow!("{ep} did not answer {what} within {timeout:?}");
    let written = |r: pb::WriteReply| {
        print!("{}: serial {}, {} RRset(s) written (on the node's disk)", r.zone, r.serial, r.changed);
        if r.confirmed_by > 0 {
            print!(", served by {} other node(s)", r.confirmed_by);
        }
        println!();
    };
    // Waiting may take its own timeout on top of the call's.
    let timeout = match cmd {
        ZoneCommand::Set { wait, .. } | ZoneCommand::Remove { wait, .. } | ZoneCommand::Import { wait, .. } => {
            timeout + Duration::from_millis(u64::from(wait.wait_timeout_ms))
        }
        _ => timeout,
    };
    match cmd {
        ZoneCommand::Create { zone, soa_ttl, .. } => {
            let req = pb::CreateRequest { zone: zone.clone(), soa_ttl: *soa_ttl };
            let r = tokio::time::timeout(timeout, c.create(req)).await.map_err(within("create"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Delete { zone, .. } => {
            let req = pb::ZoneRequest { zone: zone.clone() };
            let r = tokio::time::timeout(timeout, c.delete(req)).await.map_err(within("delete"))?;
            r.map_err(|e| explain(ep, e))?;
            println!("{zone}: deleted");
        }
        ZoneCommand::Set { zone, name, rtype, ttl, rdata, wait, .. } => {
            let req = pb::SetRequest {
                zone: zone.clone(),
                name: name.clone(),
                rtype: rtype.clone(),
                ttl: *ttl,
                rdata: rdata.clone(),
                wait: wait_of(wait),
            };
            let r = tokio::time::timeout(timeout, c.set(req)).await.map_err(within("set"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Remove { zone, name, rtype, wait, .. } => {
            let req =
                pb::RemoveRequest { zone: zone.clone(), name: name.clone(), rtype: rtype.clone(), wait: wait_of(wait) };
            let r = tokio::time::timeout(timeout, c.remove(req)).await.map_err(within("remove"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Import { file, zone, wait, .. } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let zone = zone.clone().unwrap_or_else(|| initial_origin(file));
            let req = pb::ImportRequest { zone, text, wait: wait_of(wait), dry_run: false };
            let r = tokio::time::timeout(timeout, c.import(req)).await.map_err(within("import"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Diff { file, zone, .. } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let zone = zone.clone().unwrap_or_else(|| initial_origin(file));
            let req = pb::ImportRequest { zone, text, wait: None, dry_run: true };
            let r = tokio::time::timeout(timeout, c.import(req)).await.map_err(within("diff"))?;
            let r = r.map_err(|e| explain(ep, e))?.into_inner();
            for line in &r.changes {
                println!("{line}");
            }
            if r.changed > 0 {
                eprintln!("{}: {} RRset(s) differ from {}", r.zone, r.changed, file.display());
                return Ok(true);
            }
        }
        ZoneCommand::Export { zone, .. } => {
            let req = pb::ZoneRequest { zone: zone.clone() };
            let r = tokio::time::timeout(timeout, c.export(req)).await.map_err(within("export"))?;
            print!("{}", r.map_err(|e| explain(ep, e))?.into_inner().text);
        }
        ZoneCommand::List { output, .. } => {
            let r = tokio::time::timeout(timeout, c.list(pb::ListRequest {})).await.map_err(within("list"))?;
            print_list(&r.map_err(|e| explain(ep, e))?.into_inner(), *output)?;
        }
        ZoneCommand::Check { .. } | ZoneCommand::Reload { .. } => {}
    }
    Ok(false)
}

/// `zone list` / `cluster zones`: per zone, and per peer how far behind.
pub fn print_list(r: &pb::ListReply, output: Output) -> Result<()> {
    let out = &mut std::io::stdout().lock();
    if output == Output::Json {
        let zones: Vec<serde_json::Value> = r
            .zones
            .iter()
            .map(|z| {
                let peers: Vec<serde_json::Value> = z
                    .peers
                    .iter()
                    .map(|p| json!({"node_id": p.node_id, "serial": p.serial, "behind": p.behind}))
                    .collect();
                json!({"name": z.name, "serial": z.serial, "rrsets": z.rrsets, "digest": z.digest, "error": z.error, "peers": peers})
            })
            .collect();
        writeln!(out, "{}", json!({"node_id": r.node_id, "zones": zones}))?;
        return Ok(());
    }
    writeln!(out, "ZONE  SERIAL  RRSETS  DIGEST  PEERS (id:behind)  ERROR")?;
    for z in &r.zones {
        let peers: Vec<String> = z.peers.iter().map(|p| format!("{}:{}", p.node_id, p.behind)).collect();
        let peers = if peers.is_empty() { "-".to_owned() } else { peers.join(",") };
        let error = if z.error.is_empty() { "-" } else { &z.error };
        writeln!(out, "{}  {}  {}  {}  {}  {}", z.name, z.serial, z.rrsets, z.digest, peers, error)?;
    }
    writeln!(out, "{} replicated zone(s) on {}", r.zones.len(), r.node_id)?;
    Ok(())
}
