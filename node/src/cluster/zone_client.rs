//! `meshdns zone create|delete|set|remove|import|export|list`: the
//! `Zones` service's client.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use meshdns_proto::zones as pb;
use meshdns_proto::zones::zones_client::ZonesClient;
use serde_json::json;

use super::client::{connect, explain};
use crate::cli::{ApiArgs, Output, ZoneCommand};
use crate::zone::store::initial_origin;

/// Runs one replicated-zone command. `None` for the commands that are not
/// about replicated zones.
pub async fn run(cmd: &ZoneCommand) -> Option<Result<()>> {
    let api = match cmd {
        ZoneCommand::Create { api, .. }
        | ZoneCommand::Delete { api, .. }
        | ZoneCommand::Set { api, .. }
        | ZoneCommand::Remove { api, .. }
        | ZoneCommand::Import { api, .. }
        | ZoneCommand::Export { api, .. }
        | ZoneCommand::List { api, .. } => api,
        ZoneCommand::Check { .. } | ZoneCommand::Reload { .. } => return None,
    };
    Some(run_with(cmd, api).await)
}

async fn run_with(cmd: &ZoneCommand, api: &ApiArgs) -> Result<()> {
    let (channel, token) = connect(api).await?;
    let mut c = ZonesClient::with_interceptor(channel, token);
    let timeout = Duration::from_secs(api.timeout.max(1));
    let ep = &api.endpoint;
    let within = |what: &'static str| move |_| anyhow!("{ep} did not answer {what} within {timeout:?}");
    let written = |r: pb::WriteReply| {
        println!("{}: serial {}, {} RRset(s) written (on the node's disk)", r.zone, r.serial, r.changed);
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
        ZoneCommand::Set { zone, name, rtype, ttl, rdata, .. } => {
            let req = pb::SetRequest {
                zone: zone.clone(),
                name: name.clone(),
                rtype: rtype.clone(),
                ttl: *ttl,
                rdata: rdata.clone(),
            };
            let r = tokio::time::timeout(timeout, c.set(req)).await.map_err(within("set"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Remove { zone, name, rtype, .. } => {
            let req = pb::RemoveRequest { zone: zone.clone(), name: name.clone(), rtype: rtype.clone() };
            let r = tokio::time::timeout(timeout, c.remove(req)).await.map_err(within("remove"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Import { file, zone, .. } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let zone = zone.clone().unwrap_or_else(|| initial_origin(file));
            let req = pb::ImportRequest { zone, text };
            let r = tokio::time::timeout(timeout, c.import(req)).await.map_err(within("import"))?;
            written(r.map_err(|e| explain(ep, e))?.into_inner());
        }
        ZoneCommand::Export { zone, .. } => {
            let req = pb::ZoneRequest { zone: zone.clone() };
            let r = tokio::time::timeout(timeout, c.export(req)).await.map_err(within("export"))?;
            print!("{}", r.map_err(|e| explain(ep, e))?.into_inner().text);
        }
        ZoneCommand::List { output, .. } => {
            let r = tokio::time::timeout(timeout, c.list(pb::ListRequest {})).await.map_err(within("list"))?;
            let r = r.map_err(|e| explain(ep, e))?.into_inner();
            let out = &mut std::io::stdout().lock();
            if *output == Output::Json {
                let zones: Vec<serde_json::Value> = r
                    .zones
                    .iter()
                    .map(|z| json!({"name": z.name, "serial": z.serial, "rrsets": z.rrsets, "digest": z.digest, "error": z.error}))
                    .collect();
                writeln!(out, "{}", json!({"node_id": r.node_id, "zones": zones}))?;
            } else {
                writeln!(out, "ZONE  SERIAL  RRSETS  DIGEST  ERROR")?;
                for z in &r.zones {
                    writeln!(
                        out,
                        "{}  {}  {}  {}  {}",
                        z.name,
                        z.serial,
                        z.rrsets,
                        z.digest,
                        if z.error.is_empty() { "-" } else { &z.error }
                    )?;
                }
                writeln!(out, "{} replicated zone(s) on {}", r.zones.len(), r.node_id)?;
            }
        }
        ZoneCommand::Check { .. } | ZoneCommand::Reload { .. } => {}
    }
    Ok(())
}
