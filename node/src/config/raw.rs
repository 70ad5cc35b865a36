//! The configuration as written: TOML, every key optional, unknown keys
//! rejected (serde's `deny_unknown_fields`), so a typo is an error instead
//! of a silently ignored setting.

use serde::Deserialize;

/// `meshdns.toml`, as parsed.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    #[serde(default)]
    pub server: RawServer,
    /// `[zones]`
    #[serde(default)]
    pub zones: RawZones,
    /// `[storage]`
    #[serde(default)]
    pub storage: RawStorage,
    /// `[transfer]`
    #[serde(default)]
    pub transfer: RawTransfer,
    /// `[log]`
    #[serde(default)]
    pub log: RawLog,
    /// `[mesh]`
    #[serde(default)]
    pub mesh: RawMesh,
    /// `[grpc]`
    #[serde(default)]
    pub grpc: RawGrpc,
    /// `[replication]`
    #[serde(default)]
    pub replication: RawReplication,
    /// `[update]`
    #[serde(default)]
    pub update: RawUpdate,
    /// `[audit]`
    #[serde(default)]
    pub audit: RawAudit,
    /// `[acl]`
    #[serde(default)]
    pub acl: RawAcl,
    /// `[rrl]`
    #[serde(default)]
    pub rrl: RawRrl,
    /// `[resolver]`
    #[serde(default)]
    pub resolver: super::resolver::RawResolver,
}

/// `[audit]`: the audit log of administrative actions.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// The log file (default `DATA_DIR/audit.log`).
    pub file: Option<String>,
    /// Rotate before the file passes this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotated files kept.
    pub keep: Option<usize>,
}

/// `[acl]`: who may do what, by client network (see `acl.rs`).
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAcl {
    /// `[acl.query]`
    #[serde(default)]
    pub query: RawAccessList,
    /// `[acl.transfer]` (`allow` replaces `transfer.allow`)
    #[serde(default)]
    pub transfer: RawAccessList,
    /// `[acl.notify]`
    #[serde(default)]
    pub notify: RawAccessList,
    /// `[acl.update]`
    #[serde(default)]
    pub update: RawAccessList,
    /// `[acl.admin]`: the HTTP and gRPC listeners.
    #[serde(default)]
    pub admin: RawAccessList,
}

/// One allow and one deny list of CIDRs.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAccessList {
    /// Networks admitted (unset: the kind's default).
    pub allow: Option<Vec<String>>,
    /// Networks refused, checked first.
    pub deny: Option<Vec<String>>,
}

/// `[rrl]`: response rate limiting and the per-client query limit.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    /// Responses per second per prefix and class; 0 = off (default).
    pub responses_per_second: Option<u32>,
    /// Every Nth limited response is sent truncated (TC=1); 0 = never.
    pub slip: Option<u32>,
    /// IPv4 prefix length responses are counted by (default 24).
    pub ipv4_prefix: Option<u8>,
    /// IPv6 prefix length responses are counted by (default 56).
    pub ipv6_prefix: Option<u8>,
    /// Networks never limited.
    pub exempt: Option<Vec<String>>,
    /// Count and log, but limit nothing.
    pub log_only: Option<bool>,
    /// Queries per second per client address; 0 = off (default).
    pub client_queries_per_second: Option<u32>,
    /// Buckets in the table (rounded up to a power of two).
    pub table_size: Option<usize>,
}

/// `[update]`: RFC 2136 dynamic update.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    /// TSIG keys, `ALGORITHM:NAME:BASE64`.
    pub tsig_keys: Option<Vec<String>>,
    /// `[[update.keys]]`: TSIG keys scoped to zones, names and types.
    pub keys: Option<Vec<crate::replicated::update::ScopedKeySpec>>,
}

/// `[replication]`: zone replication between nodes.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawReplication {
    /// QUIC listen address.
    pub quic: Option<String>,
    /// Directory with ca.pem, NODE.pem and NODE.key.
    pub tls_dir: Option<String>,
    /// Create the CA and this node's certificate in tls_dir if missing
    /// (loopback test clusters only).
    pub tls_dev: Option<bool>,
    /// Compact the journal into a snapshot once its log passes this size.
    pub compact_after_bytes: Option<u64>,
    /// Tombstones older than this many seconds are collected.
    pub tombstone_horizon_s: Option<u64>,
    /// Milliseconds changes served from an overlay wait before the zone is
    /// recompiled with them.
    pub overlay_compact_delay_ms: Option<u64>,
}

/// `[server]`: listeners and limits.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// DNS listen addresses, UDP and TCP on each.
    pub listen: Option<Vec<String>>,
    /// Metrics and health listener.
    pub http: Option<String>,
    /// UDP sockets (and threads) per listen address; 0 = one per core.
    pub udp_workers: Option<usize>,
    /// Use recvmmsg/sendmmsg batches (Linux) instead of one call per datagram (default off).
    pub udp_batch: Option<bool>,
    /// Largest UDP response and the EDNS payload size advertised.
    pub edns_udp_payload: Option<u16>,
    /// Close TCP connections idle this long (milliseconds).
    pub tcp_idle_timeout_ms: Option<u64>,
    /// Most concurrent TCP connections.
    pub tcp_max_connections: Option<usize>,
    /// How long shutdown waits for open TCP connections (milliseconds).
    pub shutdown_grace_ms: Option<u64>,
}

/// `[zones]`
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawZones {
    /// Directory of `*.zone` files.
    pub dir: Option<String>,
}

/// `[storage]`
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// Where snapshots live.
    pub data_dir: Option<String>,
}

/// `[transfer]`
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTransfer {
    /// Client networks allowed to AXFR, as CIDRs.
    pub allow: Option<Vec<String>>,
    /// Secondaries to send NOTIFY to when a zone changes, `IP:PORT`.
    pub notify: Option<Vec<String>>,
    /// TSIG keys a transfer must be signed with, `ALGORITHM:NAME:BASE64`.
    pub keys: Option<Vec<String>>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` or `json`.
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `meshdns=debug`.
    pub level: Option<String>,
}

/// `[mesh]`: cluster membership.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawMesh {
    /// Cluster name; nodes of other clusters are not admitted.
    pub cluster: Option<String>,
    /// This node's id (default: the host name).
    pub node_id: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Base gossip address (UDP PORT..PORT+2, referrals on TCP PORT).
    pub gossip: Option<String>,
    /// Gossip addresses of other nodes, `host:port`.
    pub seeds: Option<Vec<String>>,
    /// Gossip round.
    pub gossip_interval_ms: Option<u64>,
    /// phi-accrual threshold.
    pub phi_threshold: Option<f64>,
    /// How long dead members are remembered.
    pub dead_grace_s: Option<u64>,
    /// Representatives per site in the region pool.
    pub site_representatives: Option<usize>,
    /// Representatives per region in the global pool.
    pub region_representatives: Option<usize>,
    /// Cluster keyring file: one hex key per line, the primary first.
    pub gossip_key_file: Option<String>,
    /// Gossip unauthenticated on a non-loopback address (explicit opt-out).
    pub insecure_gossip: Option<bool>,
}

/// `[grpc]`: the admin API.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawGrpc {
    /// Listen address.
    pub listen: Option<String>,
    /// Bearer token required from clients; a write token named `token`.
    pub token: Option<String>,
    /// Read-only tokens, `NAME:SECRET`.
    pub read_tokens: Option<Vec<String>>,
    /// Read-write tokens, `NAME:SECRET`.
    pub write_tokens: Option<Vec<String>>,
    /// PEM certificate chain: serve TLS.
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
}
