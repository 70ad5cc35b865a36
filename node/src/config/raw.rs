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
