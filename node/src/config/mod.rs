//! Configuration: defaults, then the TOML file, then `MESHDNS_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! [`raw`] is what the user wrote; [`Config`] is the checked result. Every
//! check names the key and quotes the bad value.
//!
//! Environment variables are `MESHDNS_<SECTION>_<KEY>` in upper case, e.g.
//! `MESHDNS_SERVER_LISTEN=127.0.0.1:53,[::1]:53` or `MESHDNS_LOG_FORMAT=json`.
//! Lists are comma-separated. An unknown `MESHDNS_` variable is an error,
//! except the client's own (`MESHDNS_ENDPOINT`, read by `meshdns cluster`
//! and `meshdns zone`), which the server ignores.

pub mod raw;
pub mod resolver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use raw::RawConfig;

use crate::admin::audit::AuditSettings;
use crate::admin::auth::{Role, Token, Tokens};
use crate::admin::secret::Secret;

/// Default DNS listener: loopback, unprivileged.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1053";
/// Default metrics/health listener (the Prometheus CoreDNS port).
pub const DEFAULT_HTTP: &str = "127.0.0.1:9153";
/// Default base gossip address: UDP 7944 (site pool), 7945 (region pool),
/// 7946 (global pool), and TCP 7944 for referrals; clear of the gRPC (7947)
/// and QUIC (7948) defaults.
pub const DEFAULT_GOSSIP: &str = "127.0.0.1:7944";
/// Default gRPC admin address.
pub const DEFAULT_GRPC: &str = "127.0.0.1:7947";
/// Default data directory, under the working directory.
pub const DEFAULT_DATA_DIR: &str = "meshdns-data";

/// A configuration problem, naming the key and quoting the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A value is not acceptable.
    #[error("{key}: {message} (got {value:?})")]
    Invalid {
        /// `section.key` or the environment variable.
        key: String,
        /// The value given.
        value: String,
        /// What is expected.
        message: String,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// DNS listeners (UDP and TCP each).
    pub listen: Vec<SocketAddr>,
    /// Metrics and health listener.
    pub http: SocketAddr,
    /// UDP sockets per listener.
    pub udp_workers: usize,
    /// Whether UDP workers use recvmmsg/sendmmsg.
    pub udp_batch: bool,
    /// Largest UDP response / advertised EDNS payload.
    pub edns_udp_payload: u16,
    /// TCP idle timeout.
    pub tcp_idle_timeout: Duration,
    /// TCP connection limit.
    pub tcp_max_connections: usize,
    /// Shutdown grace period for TCP connections.
    pub shutdown_grace: Duration,
    /// Zone directory; `None` serves the embedded demo zone.
    pub zone_dir: Option<PathBuf>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Networks allowed to AXFR.
    pub transfer_allow: Vec<IpNet>,
    /// Secondaries notified (RFC 1996) whenever a zone's serial changes.
    pub transfer_notify: Vec<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Cluster membership.
    pub mesh: MeshSettings,
    /// Admin API.
    pub grpc: GrpcSettings,
    /// Replication between nodes.
    pub replication: ReplicationSettings,
    /// TSIG keys accepted on RFC 2136 UPDATE (`ALGORITHM:NAME:BASE64`).
    pub update_keys: Vec<Secret>,
    /// The audit log.
    pub audit: AuditSettings,
    /// Access lists by client network (`[acl]`; `transfer_allow` is folded
    /// into `acl.transfer.allow`).
    pub acl: crate::acl::Acls,
    /// Response rate limiting (`[rrl]`, `--rrl`).
    pub rrl: crate::rrl::RrlSettings,
    /// Recursion and forwarding (`[resolver]`, `--resolver`).
    pub resolver: resolver::ResolverSettings,
    /// `[[update.keys]]`: UPDATE keys scoped to zones, names and types.
    pub update_scoped_keys: Vec<crate::replicated::update::ScopedKeySpec>,
    /// TSIG keys a zone transfer must be signed with (none: unsigned
    /// transfers from `transfer_allow` are served).
    pub transfer_keys: Vec<Secret>,
}

/// `[replication]`, checked.
#[derive(Clone, Debug)]
pub struct ReplicationSettings {
    /// QUIC listen address.
    pub quic: SocketAddr,
    /// TLS material; `None` replicates with nobody.
    pub tls_dir: Option<PathBuf>,
    /// Create missing TLS material (dev clusters).
    pub tls_dev: bool,
    /// Journal log size that triggers a compaction.
    pub compact_after_bytes: u64,
    /// Tombstones older than this are dropped even if some live member has
    /// not acknowledged them; `None` (the default) waits for every one.
    pub tombstone_horizon: Option<Duration>,
    /// How long changes served from an overlay wait before the zone is
    /// recompiled with them (more changes meanwhile join the same one).
    pub overlay_compact_delay: Duration,
}

/// Default QUIC address for replication.
pub const DEFAULT_QUIC: &str = "127.0.0.1:7948";

/// `[mesh]`, checked.
#[derive(Clone, Debug)]
pub struct MeshSettings {
    /// Cluster name.
    pub cluster: String,
    /// Node id.
    pub node_id: String,
    /// Region.
    pub region: String,
    /// Site.
    pub site: String,
    /// Base gossip address.
    pub gossip: SocketAddr,
    /// Seeds, `host:port`.
    pub seeds: Vec<String>,
    /// Gossip round.
    pub gossip_interval: Duration,
    /// phi-accrual threshold.
    pub phi_threshold: f64,
    /// How long dead members are remembered.
    pub dead_grace: Duration,
    /// Representatives per site.
    pub site_representatives: usize,
    /// Representatives per region.
    pub region_representatives: usize,
    /// The cluster keyring file that authenticates gossip (its keys are
    /// read at start and on SIGHUP, and never printed).
    pub gossip_key_file: Option<PathBuf>,
    /// Gossip unauthenticated on a non-loopback address.
    pub insecure_gossip: bool,
}

/// `[grpc]`, checked.
#[derive(Clone, Debug)]
pub struct GrpcSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Tokens clients must send (`grpc.token`, `grpc.read_tokens`,
    /// `grpc.write_tokens`); none: anyone who can connect, loopback only.
    /// Also guard the HTTP listener's `POST` endpoints.
    pub tokens: Tokens,
    /// Certificate and key files: serve TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The host name's first label, as the default node id.
pub fn hostname() -> String {
    // The first label only: a node id is one DNS label.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().split('.').next().unwrap_or_default().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meshdns".to_owned())
}

fn label(key: &str, v: &str) -> Result<String, ConfigError> {
    if meshdns_mesh::facts::valid_label(v) {
        Ok(v.to_owned())
    } else {
        Err(invalid(key, v, "expected 1-63 letters, digits, '-', '_' or '.'"))
    }
}

/// A node id: one rule for gossip and certificates ([`meshdns_ring::valid_node_id`]).
fn node_id(v: &str) -> Result<String, ConfigError> {
    if meshdns_ring::valid_node_id(v) {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            "mesh.node_id",
            v,
            "expected 1-63 letters, digits and '-', not first or last (a DNS label: it names the node's certificate)",
        ))
    }
}

fn mesh_settings(m: &raw::RawMesh) -> Result<MeshSettings, ConfigError> {
    let gossip = addr("mesh.gossip", m.gossip.as_deref().unwrap_or(DEFAULT_GOSSIP))?;
    // Port 0: a free base is chosen at start (`meshdns serve`).
    if gossip.port() > 65533 {
        return Err(invalid(
            "mesh.gossip",
            &gossip.to_string(),
            "the port must be 0 (any) or 1-65533: the node gossips on it and the next two ports",
        ));
    }
    let seeds = m.seeds.clone().unwrap_or_default();
    for seed in &seeds {
        let ok = seed.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(invalid(
                "mesh.seeds",
                seed,
                "expected host:port, e.g. 10.0.0.1:7946 or meshdns-0.meshdns:7946",
            ));
        }
    }
    let interval = m.gossip_interval_ms.unwrap_or(1_000);
    if !(10..=60_000).contains(&interval) {
        return Err(invalid("mesh.gossip_interval_ms", &interval.to_string(), "expected 10 to 60000"));
    }
    let phi = m.phi_threshold.unwrap_or(8.0);
    if !(1.0..=100.0).contains(&phi) {
        return Err(invalid("mesh.phi_threshold", &phi.to_string(), "expected 1 to 100 (8 is the usual)"));
    }
    let dead_grace_s = m.dead_grace_s.unwrap_or(900);
    if !(10..=86_400).contains(&dead_grace_s) {
        return Err(invalid("mesh.dead_grace_s", &dead_grace_s.to_string(), "expected 10 to 86400 seconds"));
    }
    let reps = |key: &str, v: Option<usize>| match v.unwrap_or(2) {
        0 => Err(invalid(key, "0", "at least 1")),
        n if n > 16 => Err(invalid(key, &n.to_string(), "at most 16")),
        n => Ok(n),
    };
    let gossip_key_file = m.gossip_key_file.as_ref().map(PathBuf::from);
    let insecure_gossip = m.insecure_gossip.unwrap_or(false);
    // Without a key anyone who reaches the gossip port joins the mesh:
    // fine on loopback, refused elsewhere unless asked for by name.
    if gossip_key_file.is_none() && !gossip.ip().is_loopback() && !insecure_gossip {
        return Err(invalid(
            "mesh.gossip_key_file",
            "unset",
            &format!(
                "gossip on {gossip} (not loopback) needs a cluster key: create one with `meshdns cluster key generate > FILE` \
                 and set mesh.gossip_key_file (--gossip-key-file, MESHDNS_MESH_GOSSIP_KEY_FILE) on every node, \
                 or pass --insecure-gossip to gossip unauthenticated"
            ),
        ));
    }
    Ok(MeshSettings {
        gossip_key_file,
        insecure_gossip,
        cluster: label("mesh.cluster", m.cluster.as_deref().unwrap_or("meshdns"))?,
        node_id: node_id(&m.node_id.clone().unwrap_or_else(hostname))?,
        region: label("mesh.region", m.region.as_deref().unwrap_or("local"))?,
        site: label("mesh.site", m.site.as_deref().unwrap_or("local"))?,
        gossip,
        seeds,
        gossip_interval: Duration::from_millis(interval),
        phi_threshold: phi,
        dead_grace: Duration::from_secs(dead_grace_s),
        site_representatives: reps("mesh.site_representatives", m.site_representatives)?,
        region_representatives: reps("mesh.region_representatives", m.region_representatives)?,
    })
}

fn grpc_settings(g: &raw::RawGrpc) -> Result<GrpcSettings, ConfigError> {
    let tls = match (&g.tls_cert, &g.tls_key) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        (Some(c), None) => return Err(invalid("grpc.tls_key", c, "tls_cert is set: tls_key is needed too")),
        (None, Some(k)) => return Err(invalid("grpc.tls_cert", k, "tls_key is set: tls_cert is needed too")),
    };
    let secret_ok = |t: &str| t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic());
    let mut tokens = Vec::new();
    if let Some(t) = &g.token {
        if !secret_ok(t) {
            return Err(invalid("grpc.token", "(hidden)", "expected at least 16 printable characters, no spaces"));
        }
        tokens.push(Token { name: "token".into(), secret: Secret::new(t.clone()), role: Role::Write });
    }
    for (key, role, list) in
        [("grpc.read_tokens", Role::Read, &g.read_tokens), ("grpc.write_tokens", Role::Write, &g.write_tokens)]
    {
        for spec in list.iter().flatten() {
            let Some((name, secret)) = spec.split_once(':') else {
                return Err(invalid(key, "(hidden)", "expected NAME:SECRET, e.g. ci:0123456789abcdef0123"));
            };
            if !meshdns_mesh::facts::valid_label(name) {
                return Err(invalid(key, name, "a token's name must be 1-63 letters, digits, '-', '_' or '.'"));
            }
            if !secret_ok(secret) {
                return Err(invalid(
                    key,
                    &format!("{name}:(hidden)"),
                    "the secret must be at least 16 printable characters, no spaces",
                ));
            }
            if tokens.iter().any(|t: &Token| t.name == name) {
                return Err(invalid(key, name, "two tokens have this name (grpc.token is named \"token\")"));
            }
            tokens.push(Token { name: name.to_owned(), secret: Secret::new(secret), role });
        }
    }
    Ok(GrpcSettings {
        listen: addr("grpc.listen", g.listen.as_deref().unwrap_or(DEFAULT_GRPC))?,
        tokens: Tokens::new(tokens),
        tls,
    })
}

/// Refuses an unauthenticated admin surface off loopback: the gRPC API,
/// and the HTTP listener (its `POST /reload`), need a token there.
fn check_admin_exposure(http: SocketAddr, grpc: &GrpcSettings) -> Result<(), ConfigError> {
    if !grpc.listen.ip().is_loopback() && grpc.tokens.is_empty() {
        return Err(invalid(
            "grpc.listen",
            &grpc.listen.to_string(),
            "the admin API off loopback needs a token: set grpc.write_tokens (or grpc.token, \
             MESHDNS_GRPC_TOKEN), or listen on 127.0.0.1",
        ));
    }
    if !http.ip().is_loopback() && !grpc.tokens.has_write() {
        return Err(invalid(
            "server.http",
            &http.to_string(),
            "POST /reload off loopback needs a write token: set grpc.write_tokens (or grpc.token, \
             MESHDNS_GRPC_TOKEN), or listen on 127.0.0.1",
        ));
    }
    Ok(())
}

fn audit_settings(a: &raw::RawAudit, data_dir: &Path) -> Result<AuditSettings, ConfigError> {
    let max_bytes = a.max_bytes.unwrap_or(crate::admin::audit::DEFAULT_MAX_BYTES);
    if max_bytes < 4096 {
        return Err(invalid("audit.max_bytes", &max_bytes.to_string(), "must be at least 4096"));
    }
    Ok(AuditSettings {
        file: a.file.as_ref().map_or_else(|| data_dir.join(crate::admin::audit::DEFAULT_FILE_NAME), PathBuf::from),
        max_bytes,
        keep: a.keep.unwrap_or(crate::admin::audit::DEFAULT_KEEP),
    })
}

/// Reads and merges the file (if any) and the environment into a [`RawConfig`].
pub fn load_raw(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<RawConfig, ConfigError> {
    let mut raw = match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            toml::from_str::<RawConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?
        }
        None => RawConfig::default(),
    };
    for (key, value) in env {
        let Some(name) = key.strip_prefix("MESHDNS_") else {
            continue;
        };
        apply_env(&mut raw, name, &key, value)?;
    }
    Ok(raw)
}

fn apply_env(raw: &mut RawConfig, name: &str, key: &str, value: String) -> Result<(), ConfigError> {
    let list = |v: &str| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let num = |v: &str| v.parse::<u64>().map_err(|_| invalid(key, v, "expected a whole number"));
    let num32 = |v: &str| v.parse::<u32>().map_err(|_| invalid(key, v, "expected a whole number"));
    let boolean = |v: &str| match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(invalid(key, other, "expected true or false")),
    };
    match name {
        "SERVER_LISTEN" => raw.server.listen = Some(list(&value)),
        "SERVER_HTTP" => raw.server.http = Some(value),
        "SERVER_UDP_WORKERS" => raw.server.udp_workers = Some(num(&value)? as usize),
        "SERVER_UDP_BATCH" => {
            raw.server.udp_batch = Some(match value.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(invalid(key, other, "expected true or false")),
            })
        }
        "SERVER_EDNS_UDP_PAYLOAD" => {
            raw.server.edns_udp_payload =
                Some(u16::try_from(num(&value)?).map_err(|_| invalid(key, &value, "expected at most 65535"))?)
        }
        "SERVER_TCP_IDLE_TIMEOUT_MS" => raw.server.tcp_idle_timeout_ms = Some(num(&value)?),
        "SERVER_TCP_MAX_CONNECTIONS" => raw.server.tcp_max_connections = Some(num(&value)? as usize),
        "SERVER_SHUTDOWN_GRACE_MS" => raw.server.shutdown_grace_ms = Some(num(&value)?),
        "ZONES_DIR" => raw.zones.dir = Some(value),
        "STORAGE_DATA_DIR" => raw.storage.data_dir = Some(value),
        "TRANSFER_ALLOW" => raw.transfer.allow = Some(list(&value)),
        "TRANSFER_NOTIFY" => raw.transfer.notify = Some(list(&value)),
        "TRANSFER_KEYS" => raw.transfer.keys = Some(list(&value)),
        "LOG_FORMAT" => raw.log.format = Some(value),
        "LOG_LEVEL" => raw.log.level = Some(value),
        "MESH_CLUSTER" => raw.mesh.cluster = Some(value),
        "MESH_NODE_ID" => raw.mesh.node_id = Some(value),
        "MESH_REGION" => raw.mesh.region = Some(value),
        "MESH_SITE" => raw.mesh.site = Some(value),
        "MESH_GOSSIP" => raw.mesh.gossip = Some(value),
        "MESH_SEEDS" => raw.mesh.seeds = Some(list(&value)),
        "MESH_GOSSIP_INTERVAL_MS" => raw.mesh.gossip_interval_ms = Some(num(&value)?),
        "MESH_PHI_THRESHOLD" => {
            raw.mesh.phi_threshold = Some(value.parse().map_err(|_| invalid(key, &value, "expected a number"))?)
        }
        "MESH_DEAD_GRACE_S" => raw.mesh.dead_grace_s = Some(num(&value)?),
        "MESH_SITE_REPRESENTATIVES" => raw.mesh.site_representatives = Some(num(&value)? as usize),
        "MESH_REGION_REPRESENTATIVES" => raw.mesh.region_representatives = Some(num(&value)? as usize),
        "MESH_GOSSIP_KEY_FILE" => raw.mesh.gossip_key_file = Some(value),
        "MESH_INSECURE_GOSSIP" => {
            raw.mesh.insecure_gossip = Some(match value.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(invalid(key, other, "expected true or false")),
            })
        }
        "GRPC_LISTEN" => raw.grpc.listen = Some(value),
        "REPLICATION_QUIC" => raw.replication.quic = Some(value),
        "REPLICATION_COMPACT_AFTER_BYTES" => raw.replication.compact_after_bytes = Some(num(&value)?),
        "REPLICATION_TOMBSTONE_HORIZON_S" => raw.replication.tombstone_horizon_s = Some(num(&value)?),
        "REPLICATION_OVERLAY_COMPACT_DELAY_MS" => raw.replication.overlay_compact_delay_ms = Some(num(&value)?),
        "UPDATE_TSIG_KEYS" => raw.update.tsig_keys = Some(list(&value)),
        "REPLICATION_TLS_DIR" => raw.replication.tls_dir = Some(value),
        "REPLICATION_TLS_DEV" => {
            raw.replication.tls_dev = Some(match value.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(invalid(key, other, "expected true or false")),
            })
        }
        "RESOLVER_MODE" => raw.resolver.mode = Some(value),
        "RESOLVER_FORWARD" => raw.resolver.forward = Some(list(&value)),
        "RESOLVER_RECURSION_ALLOW" => raw.resolver.recursion_allow = Some(list(&value)),
        "RESOLVER_ROOT_HINTS" => raw.resolver.root_hints = Some(value),
        "RESOLVER_TRUST_ANCHOR" => raw.resolver.trust_anchor = Some(value),
        "RRL_RESPONSES_PER_SECOND" => raw.rrl.responses_per_second = Some(num32(&value)?),
        "RRL_SLIP" => raw.rrl.slip = Some(num32(&value)?),
        "RRL_IPV4_PREFIX" => raw.rrl.ipv4_prefix = Some(num32(&value)?.min(255) as u8),
        "RRL_IPV6_PREFIX" => raw.rrl.ipv6_prefix = Some(num32(&value)?.min(255) as u8),
        "RRL_EXEMPT" => raw.rrl.exempt = Some(list(&value)),
        "RRL_LOG_ONLY" => raw.rrl.log_only = Some(boolean(&value)?),
        "RRL_CLIENT_QUERIES_PER_SECOND" => raw.rrl.client_queries_per_second = Some(num32(&value)?),
        "RRL_TABLE_SIZE" => raw.rrl.table_size = Some(num(&value)? as usize),
        acl if acl.starts_with("ACL_") => {
            let (kind, which) = acl["ACL_".len()..].rsplit_once('_').unwrap_or(("", ""));
            let l = match kind {
                "QUERY" => &mut raw.acl.query,
                "TRANSFER" => &mut raw.acl.transfer,
                "NOTIFY" => &mut raw.acl.notify,
                "UPDATE" => &mut raw.acl.update,
                "ADMIN" => &mut raw.acl.admin,
                _ => {
                    return Err(invalid(
                        key,
                        &value,
                        "expected MESHDNS_ACL_{QUERY,TRANSFER,NOTIFY,UPDATE,ADMIN}_{ALLOW,DENY}",
                    ));
                }
            };
            match which {
                "ALLOW" => l.allow = Some(list(&value)),
                "DENY" => l.deny = Some(list(&value)),
                _ => {
                    return Err(invalid(
                        key,
                        &value,
                        "expected MESHDNS_ACL_{QUERY,TRANSFER,NOTIFY,UPDATE,ADMIN}_{ALLOW,DENY}",
                    ));
                }
            }
        }
        "GRPC_TOKEN" => raw.grpc.token = Some(value),
        "GRPC_TLS_CERT" => raw.grpc.tls_cert = Some(value),
        "GRPC_TLS_KEY" => raw.grpc.tls_key = Some(value),
        "GRPC_READ_TOKENS" => raw.grpc.read_tokens = Some(list(&value)),
        "GRPC_WRITE_TOKENS" => raw.grpc.write_tokens = Some(list(&value)),
        "AUDIT_FILE" => raw.audit.file = Some(value),
        "AUDIT_MAX_BYTES" => raw.audit.max_bytes = Some(num(&value)?),
        "AUDIT_KEEP" => raw.audit.keep = Some(num(&value)? as usize),
        // Read by main before anything else; not a setting.
        "CONFIG" => {}
        // The client's (`meshdns cluster|zone --endpoint`), exported in
        // the same shell as the server: not a server setting.
        "ENDPOINT" => {}
        _ => {
            return Err(invalid(key, &value, "unknown meshdns environment variable (see docs/configuration.md)"));
        }
    }
    Ok(())
}

pub(crate) fn invalid(key: &str, value: &str, message: &str) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), message: message.to_owned() }
}

fn addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| invalid(key, v, "expected IP:PORT, e.g. 127.0.0.1:1053 or [::1]:1053"))
}

impl Config {
    /// Checks a merged raw configuration.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let s = &raw.server;
        let listen = match &s.listen {
            Some(l) if l.is_empty() => {
                return Err(invalid("server.listen", "[]", "at least one address is needed"));
            }
            Some(l) => l.iter().map(|v| addr("server.listen", v)).collect::<Result<Vec<_>, _>>()?,
            None => vec![addr("server.listen", DEFAULT_LISTEN)?],
        };
        let http = addr("server.http", s.http.as_deref().unwrap_or(DEFAULT_HTTP))?;
        let edns_udp_payload = s.edns_udp_payload.unwrap_or(crate::dns::edns::DEFAULT_UDP_PAYLOAD);
        if edns_udp_payload < 512 {
            return Err(invalid(
                "server.edns_udp_payload",
                &edns_udp_payload.to_string(),
                "must be at least 512 (RFC 6891 §6.2.5)",
            ));
        }
        let tcp_idle_timeout_ms = s.tcp_idle_timeout_ms.unwrap_or(10_000);
        if tcp_idle_timeout_ms == 0 {
            return Err(invalid("server.tcp_idle_timeout_ms", "0", "must be at least 1 (milliseconds)"));
        }
        let tcp_max_connections = s.tcp_max_connections.unwrap_or(1024);
        if tcp_max_connections == 0 {
            return Err(invalid("server.tcp_max_connections", "0", "must be at least 1"));
        }
        let transfer_allow = match (&raw.transfer.allow, &raw.acl.transfer.allow) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "acl.transfer.allow",
                    "(set)",
                    "transfer.allow is set too: keep one of them (acl.transfer.allow replaces transfer.allow)",
                ));
            }
            (Some(l), None) => cidrs("transfer.allow", l)?,
            (None, Some(l)) => cidrs("acl.transfer.allow", l)?,
            (None, None) => crate::acl::loopback_nets(),
        };
        let log_format = match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid("log.format", other, "expected \"text\" or \"json\""));
            }
        };
        let log_level = raw.log.level.clone().unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log.level",
                &log_level,
                "expected a level (error, warn, info, debug, trace) or a tracing filter",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let grpc = grpc_settings(&raw.grpc)?;
        check_admin_exposure(http, &grpc)?;
        let data_dir = PathBuf::from(raw.storage.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR));
        let resolver_settings = resolver::ResolverSettings::from_raw(&raw.resolver, &data_dir)?;
        Ok(Config {
            listen,
            http,
            udp_workers: match s.udp_workers {
                None | Some(0) => cores,
                Some(n) => n,
            },
            udp_batch: s.udp_batch.unwrap_or(false),
            edns_udp_payload,
            tcp_idle_timeout: Duration::from_millis(tcp_idle_timeout_ms),
            tcp_max_connections,
            shutdown_grace: Duration::from_millis(s.shutdown_grace_ms.unwrap_or(5_000)),
            zone_dir: raw.zones.dir.as_ref().map(PathBuf::from),
            audit: audit_settings(&raw.audit, &data_dir)?,
            data_dir,
            transfer_allow: transfer_allow.clone(),
            transfer_notify: raw
                .transfer
                .notify
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|v| addr("transfer.notify", v))
                .collect::<Result<Vec<_>, _>>()?,
            log_format,
            log_level,
            mesh: mesh_settings(&raw.mesh)?,
            grpc,
            replication: ReplicationSettings {
                quic: addr("replication.quic", raw.replication.quic.as_deref().unwrap_or(DEFAULT_QUIC))?,
                tls_dir: raw.replication.tls_dir.as_ref().map(PathBuf::from),
                tls_dev: raw.replication.tls_dev.unwrap_or(false),
                tombstone_horizon: match raw.replication.tombstone_horizon_s {
                    Some(0) => return Err(invalid("replication.tombstone_horizon_s", "0", "must be at least 1")),
                    Some(n) => Some(Duration::from_secs(n)),
                    None => None,
                },
                overlay_compact_delay: Duration::from_millis(raw.replication.overlay_compact_delay_ms.unwrap_or(200)),
                compact_after_bytes: match raw.replication.compact_after_bytes {
                    Some(0) => return Err(invalid("replication.compact_after_bytes", "0", "must be at least 1")),
                    Some(n) => n,
                    None => crate::replicated::COMPACT_AFTER_BYTES,
                },
            },
            update_keys: {
                let keys = raw.update.tsig_keys.clone().unwrap_or_default();
                crate::replicated::update::parse_keys(&keys, &[])
                    .map_err(|e| invalid("update.tsig_keys", "(hidden)", &e.to_string()))?;
                keys.into_iter().map(Secret::new).collect()
            },
            acl: acls(&raw.acl, &transfer_allow)?,
            rrl: rrl_settings(&raw.rrl)?,
            resolver: resolver_settings,
            update_scoped_keys: {
                let scoped = raw.update.keys.clone().unwrap_or_default();
                crate::replicated::update::parse_keys(&raw.update.tsig_keys.clone().unwrap_or_default(), &scoped)
                    .map_err(|e| invalid("update.keys", "(hidden)", &e.to_string()))?;
                scoped
            },
            transfer_keys: {
                let keys = raw.transfer.keys.clone().unwrap_or_default();
                crate::server::transfer::parse_transfer_keys(&keys)
                    .map_err(|e| invalid("transfer.keys", "(hidden)", &e.to_string()))?;
                keys.into_iter().map(Secret::new).collect()
            },
        })
    }
}

pub(crate) fn cidrs(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|c| {
            c.parse::<IpNet>().map_err(|_| invalid(key, c, "expected a CIDR such as 192.0.2.0/24 or 2001:db8::/32"))
        })
        .collect()
}

/// `[acl]`, checked; `transfer_allow` is the merged transfer allow list.
fn acls(a: &raw::RawAcl, transfer_allow: &[IpNet]) -> Result<crate::acl::Acls, ConfigError> {
    use crate::acl::AccessList;
    let defaults = crate::acl::Acls::default();
    let list = |name: &str, l: &raw::RawAccessList, default: AccessList| -> Result<AccessList, ConfigError> {
        Ok(AccessList {
            allow: match &l.allow {
                Some(v) => cidrs(&format!("acl.{name}.allow"), v)?,
                None => default.allow,
            },
            deny: cidrs(&format!("acl.{name}.deny"), l.deny.as_deref().unwrap_or_default())?,
        })
    };
    Ok(crate::acl::Acls {
        query: list("query", &a.query, defaults.query)?,
        transfer: AccessList {
            allow: transfer_allow.to_vec(),
            deny: cidrs("acl.transfer.deny", a.transfer.deny.as_deref().unwrap_or_default())?,
        },
        notify: list("notify", &a.notify, defaults.notify)?,
        update: list("update", &a.update, defaults.update)?,
        admin: list("admin", &a.admin, defaults.admin)?,
    })
}

/// `[rrl]`, checked.
fn rrl_settings(r: &raw::RawRrl) -> Result<crate::rrl::RrlSettings, ConfigError> {
    use crate::rrl::{MAX_RATE, RrlSettings};
    let d = RrlSettings::default();
    let rate = |key: &str, v: Option<u32>| match v.unwrap_or(0) {
        n if n > MAX_RATE => Err(invalid(key, &n.to_string(), &format!("expected 0 (off) to {MAX_RATE}"))),
        n => Ok(n),
    };
    let prefix = |key: &str, v: Option<u8>, default: u8, max: u8| match v.unwrap_or(default) {
        n if n == 0 || n > max => Err(invalid(key, &n.to_string(), &format!("expected a prefix length of 1 to {max}"))),
        n => Ok(n),
    };
    let table_size = r.table_size.unwrap_or(d.table_size);
    if !(64..=1 << 24).contains(&table_size) {
        return Err(invalid("rrl.table_size", &table_size.to_string(), "expected 64 to 16777216 buckets"));
    }
    Ok(RrlSettings {
        responses_per_second: rate("rrl.responses_per_second", r.responses_per_second)?,
        slip: match r.slip.unwrap_or(d.slip) {
            n if n > 100 => return Err(invalid("rrl.slip", &n.to_string(), "expected 0 (never) to 100")),
            n => n,
        },
        ipv4_prefix: prefix("rrl.ipv4_prefix", r.ipv4_prefix, d.ipv4_prefix, 32)?,
        ipv6_prefix: prefix("rrl.ipv6_prefix", r.ipv6_prefix, d.ipv6_prefix, 128)?,
        exempt: cidrs("rrl.exempt", r.exempt.as_deref().unwrap_or_default())?,
        log_only: r.log_only.unwrap_or(false),
        client_queries_per_second: rate("rrl.client_queries_per_second", r.client_queries_per_second)?,
        table_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(&p, "[server]\nlisten = [\"127.0.0.1:53\"]\nlisen = 1\n").unwrap();
        let e = load_raw(Some(&p), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_variables_fail() {
        let raw = load_raw(
            None,
            [("MESHDNS_SERVER_LISTEN".to_string(), "127.0.0.1:5353, [::1]:5353".to_string())].into_iter(),
        )
        .unwrap();
        let c = Config::from_raw(&raw).unwrap();
        assert_eq!(c.listen.len(), 2);
        let e = load_raw(None, [("MESHDNS_SERVR_LISTEN".to_string(), "x".to_string())].into_iter()).unwrap_err();
        assert!(e.to_string().contains("MESHDNS_SERVR_LISTEN"));
    }

    #[test]
    fn a_zero_tcp_idle_timeout_is_refused() {
        let mut raw = RawConfig::default();
        raw.server.tcp_idle_timeout_ms = Some(0);
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("server.tcp_idle_timeout_ms"), "{e}");
    }

    #[test]
    fn transfer_allow_folds_into_the_transfer_acl_and_both_at_once_is_an_error() {
        let mut raw = RawConfig::default();
        raw.transfer.allow = Some(vec!["192.0.2.0/24".into()]);
        raw.acl.transfer.deny = Some(vec!["192.0.2.7/32".into()]);
        let c = Config::from_raw(&raw).unwrap();
        assert!(c.acl.transfer.permits("192.0.2.1".parse().unwrap()));
        assert!(!c.acl.transfer.permits("192.0.2.7".parse().unwrap()));
        assert!(!c.acl.transfer.permits("127.0.0.1".parse().unwrap()));
        raw.acl.transfer.allow = Some(vec!["10.0.0.0/8".into()]);
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("acl.transfer.allow"), "{e}");
    }

    #[test]
    fn acl_and_rrl_values_are_checked_and_come_from_the_environment() {
        let env = [
            ("MESHDNS_ACL_QUERY_DENY".to_string(), "192.0.2.0/24".to_string()),
            ("MESHDNS_RRL_RESPONSES_PER_SECOND".to_string(), "50".to_string()),
            ("MESHDNS_RRL_LOG_ONLY".to_string(), "yes".to_string()),
        ];
        let c = Config::from_raw(&load_raw(None, env.into_iter()).unwrap()).unwrap();
        assert!(!c.acl.query.permits("192.0.2.9".parse().unwrap()));
        assert_eq!((c.rrl.responses_per_second, c.rrl.log_only), (50, true));
        let mut raw = RawConfig::default();
        raw.acl.admin.allow = Some(vec!["10.0.0.0/33".into()]);
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("acl.admin.allow") && e.contains("10.0.0.0/33"), "{e}");
        let mut raw = RawConfig::default();
        raw.rrl.ipv4_prefix = Some(40);
        assert!(Config::from_raw(&raw).unwrap_err().to_string().contains("rrl.ipv4_prefix"));
        let e = load_raw(None, [("MESHDNS_ACL_QUERI_ALLOW".to_string(), "x".to_string())].into_iter()).unwrap_err();
        assert!(e.to_string().contains("MESHDNS_ACL_QUERI_ALLOW"), "{e}");
    }

    #[test]
    fn bad_values_quote_the_input() {
        let mut raw = RawConfig::default();
        raw.server.listen = Some(vec!["localhost".into()]);
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("server.listen") && e.contains("\"localhost\""), "{e}");
    }

    #[test]
    fn an_unauthenticated_admin_surface_off_loopback_is_refused() {
        let mut raw = RawConfig::default();
        raw.grpc.listen = Some("0.0.0.0:7947".into());
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("grpc.listen") && e.contains("grpc.write_tokens"), "{e}");
        raw.grpc.read_tokens = Some(vec!["ci:0123456789abcdef0123".into()]);
        Config::from_raw(&raw).unwrap();
        raw.server.http = Some("[::]:9153".into());
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("server.http") && e.contains("grpc.write_tokens"), "{e}");
        raw.grpc.write_tokens = Some(vec!["ops:0123456789abcdef0123".into()]);
        let c = Config::from_raw(&raw).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
        raw.grpc.token = Some("0123456789abcdef0123".into());
        raw.grpc.write_tokens = Some(vec!["token:fedcba98765432100123".into()]);
        let e = Config::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("two tokens") && !e.contains("fedcba"), "{e}");
    }

    #[test]
    fn the_clients_endpoint_variable_is_not_a_server_error() {
        let env = [("MESHDNS_ENDPOINT".to_string(), "10.0.0.1:7947".to_string())];
        load_raw(None, env.into_iter()).unwrap();
    }
}
