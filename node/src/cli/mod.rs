//! The command line: `meshdns serve`, `zone ...`, `config check`,
//! `cluster ...` (with `cluster key generate`), `audit tail|search`, `version`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin::secret::Secret;

/// meshdns: an authoritative DNS server built to run as a gossip mesh.
#[derive(Debug, Parser)]
#[command(name = "meshdns", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, `serve` with its defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: serve zones over UDP and TCP, metrics over HTTP.
    Serve(Box<ServeArgs>),
    /// Work with zone files.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect or flush a running node's resolver cache.
    Cache(CacheArgs),
    /// Inspect the cluster through any node's gRPC admin API.
    Cluster(ClusterArgs),
    /// Read this node's audit log of administrative actions.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the version.
    Version,
}

/// `meshdns serve` flags; each overrides the config file and environment.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file (also MESHDNS_CONFIG).
    #[arg(long, env = "MESHDNS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of *.zone files [default: the embedded demo zone].
    #[arg(long)]
    pub zone_dir: Option<PathBuf>,
    /// DNS address, UDP and TCP; repeat for more [default: 127.0.0.1:1053].
    #[arg(long)]
    pub listen: Vec<String>,
    /// Where compiled snapshots are kept [default: ./meshdns-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Metrics, health and reload listener [default: 127.0.0.1:9153].
    #[arg(long)]
    pub http: Option<String>,
    /// UDP sockets (threads) per listen address [default: one per core].
    #[arg(long)]
    pub udp_workers: Option<usize>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Cluster name; nodes of another cluster are not admitted [default: meshdns].
    #[arg(long)]
    pub cluster: Option<String>,
    /// This node's id, unique in the cluster [default: the host name].
    #[arg(long)]
    pub node_id: Option<String>,
    /// Region of this node [default: local].
    #[arg(long)]
    pub region: Option<String>,
    /// Site (data centre, PoP) of this node [default: local].
    #[arg(long)]
    pub site: Option<String>,
    /// Base gossip address: UDP PORT, PORT+1 and PORT+2 for the site, region
    /// and global pools, TCP PORT for referrals [default: 127.0.0.1:7944].
    #[arg(long)]
    pub gossip: Option<String>,
    /// Gossip addresses of other nodes, comma-separated host:port; host names
    /// are re-resolved (a Kubernetes headless service works).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// gRPC admin API address [default: 127.0.0.1:7947].
    #[arg(long)]
    pub grpc: Option<String>,
    /// QUIC address for replication between nodes [default: 127.0.0.1:7948].
    #[arg(long)]
    pub quic: Option<String>,
    /// Directory with the cluster CA (ca.pem) and this node's certificate
    /// (NODE-ID.pem, NODE-ID.key); without it zones are not replicated.
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Create the CA and this node's certificate in --tls-dir if missing.
    /// For loopback test clusters only: every node must share the directory.
    #[arg(long)]
    pub tls_dev: bool,
    /// Response rate limit: responses per second per client prefix and
    /// response class (see [rrl] in docs/configuration.md); 0 = off.
    #[arg(long, value_name = "RESPONSES_PER_SECOND")]
    pub rrl: Option<u32>,
    /// Cluster keyring: one key per line (`meshdns cluster key generate`),
    /// the primary first; re-read on SIGHUP. Authenticates gossip.
    #[arg(long)]
    pub gossip_key_file: Option<PathBuf>,
    /// Resolver for names outside our zones: off (REFUSED, the default),
    /// forward (to --forward upstreams) or recursive (from the root).
    #[arg(long, value_name = "MODE")]
    pub resolver: Option<String>,
    /// Root hints file (named.root format) [default: built in].
    #[arg(long, value_name = "FILE")]
    pub root_hints: Option<PathBuf>,
    /// DNSSEC trust anchors: DS or DNSKEY records in zone-file format
    /// [default: the root KSKs built in].
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Upstream for forward mode: udp://IP:PORT or tcp://IP:PORT; repeat
    /// for more (tried in order; see [resolver] strategy).
    #[arg(long, value_name = "URL")]
    pub forward: Vec<String>,
    /// Client network that may recurse; repeat for more [default:
    /// loopback, 10/8, 172.16/12, 192.168/16, fc00::/7].
    #[arg(long, value_name = "CIDR")]
    pub recursion_allow: Vec<String>,
    /// Let the resolver query name servers on loopback addresses (test
    /// labs; refused by default like Unbound's do-not-query-localhost).
    #[arg(long)]
    pub query_loopback: bool,
    /// Gossip without a key on a non-loopback address: anyone who reaches
    /// the gossip port can join the mesh and forge members.
    #[arg(long)]
    pub insecure_gossip: bool,
}

/// `meshdns cluster ...`: where to connect, how to print, what to ask.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Which node, and how to reach it.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Output: a table for people, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to ask.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// Waiting for other nodes after a write.
#[derive(Debug, Args, Clone, Default)]
pub struct WaitArgs {
    /// After the write is on the node's disk, wait until this many other
    /// nodes hold this write (each is asked for it by its number).
    #[arg(long, default_value_t = 0)]
    pub wait_for: u32,
    /// Wait until every other live node of the node's site serves it.
    #[arg(long)]
    pub wait_site: bool,
    /// Give up waiting after this many milliseconds (the write stays).
    #[arg(long, default_value_t = 10_000)]
    pub wait_timeout_ms: u32,
}

/// How to reach a node's admin API.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The node to ask: its gRPC address, http://HOST:PORT or https://HOST:PORT.
    #[arg(long, global = true, default_value = "127.0.0.1:7947", env = "MESHDNS_ENDPOINT")]
    pub endpoint: String,
    /// Bearer token, if the node requires one (also MESHDNS_GRPC_TOKEN);
    /// writes need a write token.
    #[arg(long, global = true, env = "MESHDNS_GRPC_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// CA certificate (PEM) to verify a TLS endpoint with.
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, global = true, default_value_t = 5)]
    pub timeout: u64,
}

/// Output format of `meshdns cluster ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// One JSON document (`watch`: one per line).
    Json,
}

/// `meshdns cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Every member the node knows: id, region, site, addresses, roles,
    /// liveness, last heard, version.
    Members,
    /// Which members own a key in the node's site, its region and the cluster.
    Ring {
        /// The key, e.g. a zone name.
        #[arg(long)]
        key: String,
        /// Owners per scope.
        #[arg(long, default_value_t = 3)]
        n: u32,
    },
    /// Counts per region and site, the node's pools and the age of its view.
    Status,
    /// Stream membership events until interrupted.
    Watch,
    /// Replicated zones on the node: serial, RRsets, digest, and how far
    /// behind each peer it hears directly is.
    Zones,
    /// The cluster certificate authority for node-to-node TLS (local files;
    /// talks to no node).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Cluster keys that authenticate gossip (local; talks to no node).
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `meshdns cluster key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a new random cluster key (64 hex digits) on stdout, for a
    /// keyring file (`--gossip-key-file`; the first line is the primary).
    Generate,
}

/// `meshdns cluster ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a cluster CA (ca.pem, ca.key) in DIR.
    Init {
        /// Directory for the CA; keep ca.key secret.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a certificate for a node (ID.pem, ID.key) from the CA in DIR,
    /// valid for a year.
    Issue {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The node's id (its --node-id).
        #[arg(long)]
        node_id: String,
    },
    /// Renew a node's certificate: a new key and a certificate valid for a
    /// year replace ID.pem and ID.key in DIR (the node uses them at its next
    /// start).
    Renew {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The node's id (its --node-id).
        #[arg(long)]
        node_id: String,
    },
}

/// `meshdns zone ...`
#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Check zone files like named-checkzone, without serving them.
    Check {
        /// Zone files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Zone name for relative names [default: from the file name].
        #[arg(long)]
        origin: Option<String>,
    },
    /// Ask a running node to reload its zone files (same as SIGHUP).
    Reload {
        /// The node's HTTP listener.
        #[arg(long, default_value = "127.0.0.1:9153")]
        http: SocketAddr,
        /// A write token, if the node has tokens (also MESHDNS_GRPC_TOKEN).
        #[arg(long, env = "MESHDNS_GRPC_TOKEN", hide_env_values = true)]
        token: Option<Secret>,
    },
    /// Create a replicated zone (with a default SOA) through a node.
    Create {
        /// Zone name.
        zone: String,
        /// TTL of the SOA record.
        #[arg(long, default_value_t = 3600)]
        soa_ttl: u32,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// Delete a replicated zone.
    Delete {
        /// Zone name.
        zone: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// Replace one RRset: `zone set example.com www A 300 192.0.2.1 192.0.2.2`.
    Set {
        /// Zone name.
        zone: String,
        /// Owner, relative to the zone (or absolute with a final dot; @ is the apex).
        name: String,
        /// Record type, e.g. A, AAAA, MX, TXT.
        rtype: String,
        /// TTL in seconds.
        ttl: u32,
        /// RDATA of each record, one argument per record (quote multi-word RDATA).
        #[arg(required = true)]
        rdata: Vec<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        wait: WaitArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// Remove one RRset.
    Remove {
        /// Zone name.
        zone: String,
        /// Owner.
        name: String,
        /// Record type.
        rtype: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        wait: WaitArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// Make a replicated zone hold exactly a master file's records (only what
    /// differs is written; the zone is created if needed).
    Import {
        /// The master file.
        file: PathBuf,
        /// Zone name [default: from the file name, like --zone-dir].
        #[arg(long)]
        zone: Option<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        wait: WaitArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// Show what `zone import FILE` would write (RRsets added, changed or
    /// removed); exits 1 if anything differs, like diff.
    Diff {
        /// The master file.
        file: PathBuf,
        /// Zone name [default: from the file name].
        #[arg(long)]
        zone: Option<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// Print a replicated zone as a master file.
    Export {
        /// Zone name.
        zone: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
    /// List the replicated zones on a node: serial, RRsets, digest.
    List {
        /// Output: a table for people, or JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        #[allow(missing_docs)]
        api: ApiArgs,
    },
}

/// `meshdns config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, MESHDNS_* variables) and print it.
    Check {
        /// TOML configuration file (also MESHDNS_CONFIG).
        #[arg(long, env = "MESHDNS_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Where the audit log is: `--file`, else `audit.file` of the
/// configuration, else `DATA_DIR/audit.log`.
#[derive(Debug, Args, Clone)]
pub struct AuditSource {
    /// The audit log file (rotated ones, FILE.1 and on, are read too).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// TOML configuration file of the node (also MESHDNS_CONFIG).
    #[arg(long, env = "MESHDNS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's data directory, if not in the configuration.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output: one line per entry for people, or the JSON lines as written.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `meshdns audit ...`: reads the files; talks to no node.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The last entries, oldest first.
    Tail {
        /// How many.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        lines: usize,
        /// Keep printing entries as they are written (across rotations),
        /// until interrupted.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        source: AuditSource,
    },
    /// Entries matching every filter given, oldest first.
    Search {
        /// The zone (with or without the final dot).
        #[arg(long)]
        zone: Option<String>,
        /// Who: token:NAME, tsig:KEY, signal:SIGHUP, or just NAME / KEY.
        #[arg(long)]
        actor: Option<String>,
        /// What: zone.create, zone.delete, zone.set, zone.remove,
        /// zone.import, dns.update, reload, or a group such as `zone`.
        #[arg(long)]
        action: Option<String>,
        /// Since: RFC 3339 UTC (2026-12-05T17:00:00Z), a date, Unix
        /// seconds, or an age (30s, 10m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        source: AuditSource,
    },
}

/// `meshdns cache ...`: which node, and what to do with its cache.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The node's HTTP listener.
    #[arg(long, global = true, default_value = "127.0.0.1:9153")]
    pub http: SocketAddr,
    /// A write token, if the node has tokens (also MESHDNS_GRPC_TOKEN).
    #[arg(long, global = true, env = "MESHDNS_GRPC_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// `meshdns cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Hits, misses, entries, bytes, upstream counters.
    Stats,
    /// Remove NAME and everything below it, or everything.
    Flush {
        /// A domain name; without it the whole cache is flushed.
        name: Option<String>,
    },
    /// Every entry, one per line.
    Dump,
}
