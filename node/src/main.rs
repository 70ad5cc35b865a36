//! The `meshdns` binary. See the crate docs of `meshdns` for the design.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use meshdns::cli::{
    AuditCommand, CaCommand, Cli, ClusterArgs, ClusterCommand, Command, ConfigCommand, KeyCommand, ServeArgs,
    ZoneCommand,
};
use meshdns::config::{self, Config, LogFormat};
use meshdns::dns::auth::AnswerConfig;
use meshdns::metrics::Metrics;
use meshdns::replicated::ReplicatedZones;
use meshdns::server::{self, Shared};
use meshdns::zone::diag::Severity;
use meshdns::zone::store::{ZoneStore, initial_origin};
use meshdns::zone::{DEMO_ZONE, DEMO_ZONE_FILE, compile, parse};
use meshdns_mesh::gossip::{GossipSettings, Mesh, MeshConfig};
use meshdns_mesh::tier::TierConfig;
use meshdns_mesh::{NodeFacts, Roles};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshdns: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(Box::default())) {
        Command::Serve(args) => serve(*args),
        Command::Zone(ZoneCommand::Check { files, origin }) => zone_check(&files, origin.as_deref()),
        Command::Cache(args) => cache_command(&args),
        Command::Zone(ZoneCommand::Reload { http, token }) => zone_reload(http, token.as_ref().map(|t| t.expose())),
        Command::Zone(cmd) => {
            let rt =
                tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
            match rt.block_on(meshdns::cluster::zone_client::run(&cmd)) {
                Some(result) => result.map(|differs| if differs { ExitCode::from(1) } else { ExitCode::SUCCESS }),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Config(ConfigCommand::Check { config }) => {
            let cfg = load_config(config.as_deref(), &ServeArgs::default())?;
            // The keyring is checked too; only key ids are shown, never keys.
            if let Some(keys) = gossip_keyring(&cfg)? {
                println!("gossip keyring ok: {keys:?}");
            }
            println!("configuration ok");
            println!("{cfg:#?}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(ClusterArgs { command: ClusterCommand::Ca(ca), .. }) => cluster_ca(&ca),
        Command::Audit(cmd) => {
            let (AuditCommand::Tail { source, .. } | AuditCommand::Search { source, .. }) = &cmd;
            let file = match &source.file {
                Some(f) => f.clone(),
                None => {
                    let args = ServeArgs { data_dir: source.data_dir.clone(), ..ServeArgs::default() };
                    load_config(source.config.as_deref(), &args)?.audit.file
                }
            };
            let found = meshdns::admin::audit_cli::run(&cmd, &file, unix_ms_now())?;
            Ok(if found { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Cluster(ClusterArgs { command: ClusterCommand::Key(KeyCommand::Generate), .. }) => key_generate(),
        Command::Cluster(args) => {
            let rt =
                tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
            rt.block_on(meshdns::cluster::client::run(&args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("meshdns {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cluster_ca(cmd: &CaCommand) -> Result<ExitCode> {
    match cmd {
        CaCommand::Init { dir } => {
            let cert = meshdns_transport::ca::init(dir)?;
            println!("created the cluster CA {} (keep {} secret)", cert.display(), dir.join("ca.key").display());
        }
        CaCommand::Issue { dir, node_id } => {
            let (cert, key) = meshdns_transport::ca::issue(dir, node_id)?;
            println!("issued {} and {} for node {node_id}", cert.display(), key.display());
        }
        CaCommand::Renew { dir, node_id } => {
            let (cert, key) = meshdns_transport::ca::renew(dir, node_id)?;
            println!(
                "renewed {} and {} for node {node_id} (valid {} days; restart the node to use them)",
                cert.display(),
                key.display(),
                meshdns_transport::ca::NODE_CERT_DAYS
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Warns when this node's certificate has less than
/// [`meshdns_transport::ca::RENEW_BEFORE_DAYS`] left, with the command that
/// renews it (at start, before replication starts, then twice a day).
#[allow(clippy::disallowed_methods)] // the binary is a driver: it reads the wall clock
fn check_cert_expiry(cert: &Path) {
    use meshdns_transport::ca::{RENEW_BEFORE_DAYS, not_after};
    match not_after(cert) {
        Ok(until) => match until.duration_since(std::time::SystemTime::now()) {
            Ok(left) if left < Duration::from_secs(RENEW_BEFORE_DAYS * 86_400) => tracing::warn!(
                cert = %cert.display(),
                days_left = left.as_secs() / 86_400,
                "this node's certificate expires soon: run `meshdns cluster ca renew --dir DIR --node-id ID` and restart"
            ),
            Ok(_) => {}
            Err(_) => tracing::error!(
                cert = %cert.display(),
                "this node's certificate has expired: peers refuse it; run `meshdns cluster ca renew` and restart"
            ),
        },
        Err(e) => tracing::warn!(error = %e, "cannot read this node's certificate expiry"),
    }
}

/// `meshdns cluster key generate`: a new key on stdout, nothing else (so
/// `>> keyring` adds it as a secondary key).
fn key_generate() -> Result<ExitCode> {
    let key = meshdns_mesh::auth::GossipKey::generate(&ring::rand::SystemRandom::new())?;
    println!("{}", key.to_hex());
    eprintln!(
        "meshdns: new cluster key {:08x}; keep it secret (a file readable only by meshdns). First line of a keyring \
         file = the key that signs; every other line is accepted too",
        key.id()
    );
    Ok(ExitCode::SUCCESS)
}

/// The cluster keyring named by the configuration, if any.
fn gossip_keyring(cfg: &Config) -> Result<Option<meshdns_mesh::auth::Keyring>> {
    let Some(file) = &cfg.mesh.gossip_key_file else { return Ok(None) };
    let keys = meshdns_mesh::auth::Keyring::load(file).context("loading mesh.gossip_key_file (--gossip-key-file)")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %file.display(), "the gossip keyring is readable by other users; chmod 600 it");
        }
    }
    Ok(Some(keys))
}

/// The QUIC endpoint for replication, if `--tls-dir` is set. With
/// `--tls-dev` the CA and this node's certificate are created there when
/// missing (every node of a dev cluster shares the directory).
fn replication_endpoint(cfg: &Config) -> Result<Option<meshdns_transport::net::Endpoint>> {
    let Some(dir) = &cfg.replication.tls_dir else { return Ok(None) };
    let id = &cfg.mesh.node_id;
    if cfg.replication.tls_dev {
        if !dir.join("ca.pem").exists() {
            match meshdns_transport::ca::init(dir) {
                Ok(_) | Err(meshdns_transport::ca::CaError::Exists(_)) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::warn!(dir = %dir.display(), "DEV MODE: created a cluster CA; do not use --tls-dev in production");
        }
        if !dir.join(format!("{id}.pem")).exists() {
            meshdns_transport::ca::issue(dir, id)?;
            tracing::warn!(dir = %dir.display(), node = %id, "DEV MODE: issued this node's certificate");
        }
    }
    let identity = meshdns_transport::tls::Identity::load(dir, id)?;
    let cert = dir.join(format!("{id}.pem"));
    check_cert_expiry(&cert);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
            check_cert_expiry(&cert);
        }
    });
    let endpoint = meshdns_transport::net::Endpoint::bind(
        cfg.replication.quic,
        identity,
        meshdns_transport::net::Limits::default(),
    )?;
    tracing::info!(quic = %cfg.replication.quic, "replicating zones over QUIC with mutual TLS");
    Ok(Some(endpoint))
}

fn load_config(file: Option<&Path>, args: &ServeArgs) -> Result<Config> {
    Ok(Config::from_raw(&raw_config(file, args)?)?)
}

/// The configuration as written (file, then environment), with `args`'
/// flags over it.
fn raw_config(file: Option<&Path>, args: &ServeArgs) -> Result<config::raw::RawConfig> {
    let mut raw = config::load_raw(file, std::env::vars())?;
    if let Some(d) = &args.zone_dir {
        raw.zones.dir = Some(d.display().to_string());
    }
    if !args.listen.is_empty() {
        raw.server.listen = Some(args.listen.clone());
    }
    if let Some(d) = &args.data_dir {
        raw.storage.data_dir = Some(d.display().to_string());
    }
    if let Some(h) = &args.http {
        raw.server.http = Some(h.clone());
    }
    if let Some(n) = args.udp_workers {
        raw.server.udp_workers = Some(n);
    }
    if let Some(f) = &args.log_format {
        raw.log.format = Some(f.clone());
    }
    if let Some(v) = &args.cluster {
        raw.mesh.cluster = Some(v.clone());
    }
    if let Some(v) = &args.node_id {
        raw.mesh.node_id = Some(v.clone());
    }
    if let Some(v) = &args.region {
        raw.mesh.region = Some(v.clone());
    }
    if let Some(v) = &args.site {
        raw.mesh.site = Some(v.clone());
    }
    if let Some(v) = &args.gossip {
        raw.mesh.gossip = Some(v.clone());
    }
    if !args.seeds.is_empty() {
        raw.mesh.seeds = Some(args.seeds.clone());
    }
    if let Some(v) = &args.grpc {
        raw.grpc.listen = Some(v.clone());
    }
    if let Some(v) = &args.quic {
        raw.replication.quic = Some(v.clone());
    }
    if let Some(v) = &args.tls_dir {
        raw.replication.tls_dir = Some(v.display().to_string());
    }
    if args.tls_dev {
        raw.replication.tls_dev = Some(true);
    }
    if let Some(n) = args.rrl {
        raw.rrl.responses_per_second = Some(n);
    }
    if let Some(v) = &args.gossip_key_file {
        raw.mesh.gossip_key_file = Some(v.display().to_string());
    }
    if args.insecure_gossip {
        raw.mesh.insecure_gossip = Some(true);
    }
    if let Some(v) = &args.resolver {
        raw.resolver.mode = Some(v.clone());
    }
    if let Some(v) = &args.root_hints {
        raw.resolver.root_hints = Some(v.display().to_string());
    }
    if let Some(v) = &args.trust_anchor {
        raw.resolver.trust_anchor = Some(v.display().to_string());
    }
    if !args.forward.is_empty() {
        raw.resolver.forward = Some(args.forward.clone());
    }
    if !args.recursion_allow.is_empty() {
        raw.resolver.recursion_allow = Some(args.recursion_allow.clone());
    }
    if args.query_loopback {
        raw.resolver.query_loopback = Some(true);
    }
    Ok(raw)
}

/// A second node on one host: the gRPC and gossip ports it was not told
/// to use are the defaults, which the first node holds. Rather than fail,
/// it takes free ports and says so — its DNS and HTTP listeners, which a
/// harness gives explicitly, are what matter. Ports that were given stay
/// as given, and a clash on them is an error, as before. Returns the gRPC
/// listener when it was bound here (kept, so no other node can take it).
fn move_off_busy_default_ports(
    cfg: &mut Config,
    (grpc_explicit, gossip_explicit): (bool, bool),
) -> Option<std::net::TcpListener> {
    use std::net::TcpListener;
    let mut grpc = None;
    if cfg.grpc.listen.port() == 0
        && let Ok(l) = TcpListener::bind(cfg.grpc.listen)
        && let Ok(bound) = l.local_addr()
    {
        // Port 0: the port it got is the one gossip tells the cluster.
        cfg.grpc.listen = bound;
        grpc = Some(l);
    } else if !grpc_explicit {
        grpc = TcpListener::bind(cfg.grpc.listen).ok();
        if grpc.is_none()
            && let Ok(l) = TcpListener::bind((cfg.grpc.listen.ip(), 0))
            && let Ok(port) = l.local_addr()
        {
            tracing::warn!(default = %cfg.grpc.listen, now = %port, "the default gRPC port is busy (another node on this host?); using a free one — set --grpc to choose");
            cfg.grpc.listen = port;
            grpc = Some(l);
        }
    }
    // Port 0 for gossip means "any": a base whose next two ports are free
    // too (the region and global pools), found here. For QUIC, a free
    // port now, since peers learn the address from gossip.
    if cfg.mesh.gossip.port() == 0
        && let Some(base) = free_gossip_base(cfg.mesh.gossip.ip())
    {
        cfg.mesh.gossip = base;
    }
    if cfg.replication.quic.port() == 0
        && let Ok(a) = std::net::UdpSocket::bind(cfg.replication.quic).and_then(|s| s.local_addr())
    {
        cfg.replication.quic = a;
    }
    if !gossip_explicit
        && !gossip_base_free(cfg.mesh.gossip)
        && let Some(base) = free_gossip_base(cfg.mesh.gossip.ip())
    {
        tracing::warn!(default = %cfg.mesh.gossip, now = %base, "the default gossip ports are busy (another node on this host?); using free ones — set --gossip to choose");
        cfg.mesh.gossip = base;
    }
    grpc
}

/// Gossip takes TCP and UDP on the base port and UDP on the next two.
fn gossip_base_free(a: std::net::SocketAddr) -> bool {
    a.port() < u16::MAX - 2
        && std::net::TcpListener::bind(a).is_ok()
        && (0..3u16).all(|i| std::net::UdpSocket::bind((a.ip(), a.port() + i)).is_ok())
}

/// A free gossip base port on `ip`.
fn free_gossip_base(ip: std::net::IpAddr) -> Option<std::net::SocketAddr> {
    (0..100).find_map(|_| {
        let probe = std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()).ok()?;
        gossip_base_free(probe).then_some(probe)
    })
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level).unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Writes the embedded demo zone under the data dir and returns its directory.
fn demo_zone_dir(data_dir: &Path) -> Result<PathBuf> {
    let dir = data_dir.join("demo-zones");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(DEMO_ZONE_FILE);
    if std::fs::read_to_string(&file).ok().as_deref() != Some(DEMO_ZONE) {
        std::fs::write(&file, DEMO_ZONE).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(dir)
}

/// What the mesh needs from the configuration.
fn mesh_config(cfg: &Config, started_unix_ms: u64, generation: u64) -> MeshConfig {
    let m = &cfg.mesh;
    MeshConfig {
        cluster: m.cluster.clone(),
        facts: NodeFacts {
            id: m.node_id.clone(),
            // A restart gets a larger generation, which replaces the old
            // incarnation on every node.
            generation,
            region: m.region.clone(),
            site: m.site.clone(),
            gossip: m.gossip,
            dns: cfg.listen.first().copied(),
            grpc: Some(cfg.grpc.listen),
            quic: cfg.replication.tls_dir.as_ref().map(|_| cfg.replication.quic),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_unix: started_unix_ms / 1000,
            load: 0,
            state_digest: 0,
            agreement: 0,
            agreement_digest: 0,
            zone_serials: String::new(),
            hot_names: String::new(),
            roles: Roles::default(),
        },
        tiers: TierConfig {
            site_representatives: m.site_representatives,
            region_representatives: m.region_representatives,
        },
        seeds: m.seeds.clone(),
        gossip: GossipSettings {
            interval: m.gossip_interval,
            phi_threshold: m.phi_threshold,
            dead_grace: m.dead_grace,
            ..GossipSettings::default()
        },
        auth: None,
    }
}

/// Collects old tombstones now and then: a quarter of the horizon, between
/// one second and ten minutes.
async fn collect_tombstones(zones: Arc<ReplicatedZones>, horizon: Duration) {
    let every = (horizon / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::time::sleep(every).await;
        let z = zones.clone();
        let ms = horizon.as_millis() as u64;
        if let Ok(n) = tokio::task::spawn_blocking(move || z.collect_tombstones(ms)).await
            && n > 0
        {
            tracing::info!(collected = n, "collected tombstones older than the horizon");
        }
    }
}

/// Recompiles zones whose recent changes are answered from an overlay,
/// `delay` after the first such change (later ones join the same compile).
async fn compact_overlays(zones: Arc<ReplicatedZones>, delay: Duration) {
    loop {
        zones.compaction_wanted().notified().await;
        tokio::time::sleep(delay).await;
        let z = zones.clone();
        let _ = tokio::task::spawn_blocking(move || z.compact_overlays()).await;
    }
}

/// Publishes queries per second (over 10 s) as this node's load figure.
async fn publish_load(shared: Arc<Shared>, mesh: Arc<meshdns_mesh::gossip::MeshHandle>) {
    const EVERY: Duration = Duration::from_secs(10);
    let mut last = shared.metrics.total_queries();
    loop {
        tokio::time::sleep(EVERY).await;
        let now = shared.metrics.total_queries();
        mesh.set_load(now.saturating_sub(last) / EVERY.as_secs());
        last = now;
    }
}

/// This start's generation: the start time in milliseconds, but always
/// above the last one recorded in the data dir, so a clock stepped back
/// cannot make an old incarnation look newer. If it cannot be recorded (a
/// full disk) the node still starts, with a warning: only a clock stepped
/// back as well could then confuse peers.
fn next_generation(data_dir: &Path, now_ms: u64) -> Result<u64> {
    let file = data_dir.join("mesh-generation");
    let last = match std::fs::read_to_string(&file) {
        Ok(s) => s.trim().parse::<u64>().ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let generation = last.map_or(now_ms, |l| now_ms.max(l.saturating_add(1)));
    let recorded = meshdns_replication::journal::write_durably(&file, &[generation.to_string().as_bytes()]);
    if let Err(e) = recorded {
        tracing::warn!(file = %file.display(), error = %e, "cannot record this start's generation; starting anyway");
    }
    Ok(generation)
}

#[allow(clippy::disallowed_methods)] // the binary is a driver: it reads the wall clock once, at start
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let started_unix_ms = unix_ms_now();
    let raw = raw_config(args.config.as_deref(), &args)?;
    // Given by flag, environment or file (not the defaults).
    let explicit = (raw.grpc.listen.is_some(), raw.mesh.gossip.is_some());
    let mut cfg = Config::from_raw(&raw)?;
    init_logging(&cfg);
    let grpc_listener = move_off_busy_default_ports(&mut cfg, explicit);
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let generation = next_generation(&cfg.data_dir, started_unix_ms)?;
    let zone_dir = match &cfg.zone_dir {
        Some(d) => d.clone(),
        None => {
            let d = demo_zone_dir(&cfg.data_dir)?;
            tracing::info!(dir = %d.display(), "no zone directory given: serving the embedded demo zone example.com.");
            d
        }
    };
    let store = ZoneStore::new(&zone_dir, &cfg.data_dir);
    let report = store.reload().with_context(|| "loading zones (check --zone-dir)".to_string())?;
    server::http::log_report(&report);
    if report.failures() > 0 {
        tracing::error!(failed = report.failures(), "some zones failed to load; serving the others");
    }

    let replicated = Arc::new(
        ReplicatedZones::open(&cfg.data_dir, &cfg.mesh.node_id, Box::new(unix_ms_now))
            .context("opening the replicated zones (DATA_DIR/replication)")?,
    );
    replicated.set_compact_after(cfg.replication.compact_after_bytes);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("meshdns-io")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let resolver = meshdns::resolve::ResolverService::new(&cfg.resolver, runtime.handle().clone())
        .context("starting the resolver (check [resolver] / --resolver)")?;
    if let Some(r) = &resolver {
        tracing::info!(mode = ?r.settings().mode, allow = ?r.settings().recursion_allow, "resolver on for names outside our zones");
    }

    let audit =
        Arc::new(meshdns::admin::audit::AuditLog::new(cfg.audit.clone(), &cfg.mesh.node_id, Box::new(unix_ms_now)));
    let shards = cfg.udp_workers * cfg.listen.len() + 1;
    let shared = Arc::new(Shared {
        store,
        metrics: Metrics::new(shards),
        answer: AnswerConfig { udp_payload: cfg.edns_udp_payload },
        config: cfg.clone(),
        ready: AtomicBool::new(false),
        mesh: std::sync::OnceLock::new(),
        syncer: std::sync::OnceLock::new(),
        replicated: std::sync::OnceLock::new(),
        update_keys: meshdns::replicated::update::parse_keys(
            &cfg.update_keys.iter().map(|k| k.expose().to_owned()).collect::<Vec<_>>(),
            &cfg.update_scoped_keys,
        )?,
        update_writer: std::sync::OnceLock::new(),
        audit: audit.clone(),
        rrl: cfg.rrl.enabled().then(|| meshdns::rrl::Limiter::new(cfg.rrl.clone(), Instant::now())),
        resolver,
    });
    let _ = shared.replicated.set(replicated.clone());
    // Every new set of replicated zones goes straight to the data plane
    // (a weak reference: the zones live inside `shared`).
    let weak = Arc::downgrade(&shared);
    replicated.set_on_served(Box::new(move |zones| {
        if let Some(s) = weak.upgrade() {
            s.store.set_replicated(zones);
        }
    }));
    shared.import_zone_files();

    // Bind everything before serving anything, so a bad address fails fast.
    let mut udp_sockets = Vec::new();
    let mut tcp_listeners = Vec::new();
    let mut dns_bound = Vec::new();
    for addr in &cfg.listen {
        // Port 0: UDP picks a free port and TCP takes the same one (a few
        // tries, in case another program holds it for TCP only).
        let mut tries = if addr.port() == 0 { 20 } else { 1 };
        let (udp, tcp) = loop {
            tries -= 1;
            let udp = server::udp::bind(*addr, cfg.udp_workers)
                .with_context(|| format!("binding UDP {addr} (is another DNS server using it? choose --listen)"))?;
            let port = udp.first().and_then(|s| s.local_addr().ok()).map_or(addr.port(), |a| a.port());
            let on = std::net::SocketAddr::new(addr.ip(), port);
            match server::tcp::bind(on) {
                Ok(tcp) => break (udp, tcp),
                Err(_) if tries > 0 => continue,
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("binding TCP {on} (is another DNS server using it? choose --listen)")));
                }
            }
        };
        dns_bound.push(tcp.local_addr()?);
        udp_sockets.push(udp);
        tcp_listeners.push(tcp);
    }
    let http_listener =
        std::net::TcpListener::bind(cfg.http).with_context(|| format!("binding HTTP {} (choose --http)", cfg.http))?;
    http_listener.set_nonblocking(true)?;
    let http_bound = http_listener.local_addr()?;
    let grpc_listener = match grpc_listener {
        Some(l) => l,
        None => std::net::TcpListener::bind(cfg.grpc.listen)
            .with_context(|| format!("binding gRPC {} (choose --grpc)", cfg.grpc.listen))?,
    };
    grpc_listener.set_nonblocking(true)?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    let mut udp_wakers = Vec::new();
    for socks in &udp_sockets {
        for s in socks {
            udp_wakers.push(s.try_clone().context("cloning a UDP socket")?);
        }
    }
    for (i, socks) in udp_sockets.into_iter().enumerate() {
        udp_threads.extend(server::udp::spawn(socks, shared.clone(), stop.clone(), i * cfg.udp_workers)?);
    }

    let code = runtime.block_on(async move {
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let limit = Arc::new(tokio::sync::Semaphore::new(cfg.tcp_max_connections));
        for l in tcp_listeners {
            let l = tokio::net::TcpListener::from_std(l)?;
            tokio::spawn(server::tcp::serve(l, shared.clone(), shutdown_rx.clone(), limit.clone()));
        }
        tokio::spawn(server::http::serve(
            tokio::net::TcpListener::from_std(http_listener)?,
            shared.clone(),
            shutdown_rx.clone(),
        ));
        let gossip_auth = gossip_keyring(&cfg)?.map(|k| Arc::new(meshdns_mesh::gossip::transport::GossipAuth::new(k)));
        match &gossip_auth {
            Some(a) => tracing::info!(keys = ?a, "gossip and referrals are authenticated with the cluster keyring"),
            None if cfg.mesh.gossip.ip().is_loopback() => {
                tracing::info!("no cluster key: gossip is unauthenticated (loopback only)")
            }
            None => tracing::warn!(
                gossip = %cfg.mesh.gossip,
                "--insecure-gossip: gossip is unauthenticated; anyone who reaches the gossip port can join the mesh"
            ),
        }
        let mut mesh_cfg = mesh_config(&cfg, started_unix_ms, generation);
        mesh_cfg.auth = gossip_auth.clone();
        let mesh = match Mesh::start(mesh_cfg.clone()).await {
            Ok(m) => m,
            // Another node took the default gossip ports since we looked:
            // free ones, as `move_off_busy_default_ports` does.
            Err(e) if !explicit.1 => {
                let base = free_gossip_base(cfg.mesh.gossip.ip()).context("finding free gossip ports")?;
                tracing::warn!(error = %e, now = %base, "the default gossip ports were taken; using free ones — set --gossip to choose");
                mesh_cfg.facts.gossip = base;
                Mesh::start(mesh_cfg).await.context("starting the mesh (check --gossip and --seeds)")?
            }
            Err(e) => return Err(anyhow::Error::from(e).context("starting the mesh (check --gossip and --seeds)")),
        };
        let mesh = Arc::new(mesh);
        let _ = shared.mesh.set(mesh.clone());
        tokio::spawn(server::notify::run(shared.clone(), cfg.transfer_notify.clone()));
        if let Some(r) = &shared.resolver {
            tokio::spawn(meshdns::resolve::maintain(r.clone()));
            tokio::spawn(meshdns::resolve::anchors::run(r.clone()));
            if r.settings().warm_from_peers {
                tokio::spawn(meshdns::resolve::warming::run(shared.clone(), r.clone()));
            }
        }
        if let Some(horizon) = cfg.replication.tombstone_horizon {
            tokio::spawn(collect_tombstones(replicated.clone(), horizon));
        }
        tokio::spawn(compact_overlays(replicated.clone(), cfg.replication.overlay_compact_delay));
        if let Some(endpoint) = replication_endpoint(&cfg)? {
            let syncer = meshdns::replicated::sync::Syncer::new(
                replicated.clone(),
                mesh.clone(),
                endpoint,
                cfg.mesh.node_id.clone(),
            );
            let _ = shared.syncer.set(syncer.clone());
            tokio::spawn(syncer.run());
        } else {
            tracing::info!("no --tls-dir: replicated zones stay on this node (see docs/replication.md)");
        }
        tokio::spawn(publish_load(shared.clone(), mesh.clone()));
        let zones_service = meshdns::cluster::zones::ZonesService {
            zones: replicated.clone(),
            shared: shared.clone(),
            node_id: cfg.mesh.node_id.clone(),
            mesh: mesh.clone(),
        };
        let zones_service = meshdns::cluster::guard::GuardedZones { inner: zones_service, audit: audit.clone() };
        let grpc = tokio::spawn(meshdns::cluster::service::serve(
            tokio::net::TcpListener::from_std(grpc_listener)?,
            mesh.clone(),
            zones_service,
            cfg.grpc.clone(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(async move {
            if let Ok(Err(e)) = grpc.await {
                tracing::error!(error = %e, "the gRPC admin API stopped");
            }
        });
        shared.ready.store(true, Ordering::Release);
        tracing::info!(
            node = %cfg.mesh.node_id,
            region = %cfg.mesh.region,
            site = %cfg.mesh.site,
            gossip = %cfg.mesh.gossip,
            grpc = %cfg.grpc.listen,
            listen = ?dns_bound,
            http = %http_bound,
            zones = shared.store.current().zones().len(),
            startup_ms = started.elapsed().as_millis() as u64,
            "serving"
        );

        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading zones");
                    // Key rotation: the keyring file is re-read too; a bad
                    // file leaves the current keys in place.
                    if let Some(a) = &gossip_auth {
                        match gossip_keyring(&cfg) {
                            Ok(Some(keys)) => a.set_keys(keys),
                            Ok(None) => {}
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "keeping the current gossip keys"),
                        }
                    }
                    // Not awaited here: SIGTERM must be heard during a long reload.
                    let s = shared.clone();
                    tokio::task::spawn_blocking(move || match s.reload_zones() {
                        Ok(report) => {
                            server::http::log_report(&report);
                            let summary = server::http::format_report(&report);
                            server::http::audit_reload(&s, "signal:SIGHUP".into(), None, report.failures() == 0, &summary);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reload failed; still serving the previous zones");
                            server::http::audit_reload(&s, "signal:SIGHUP".into(), None, false, &e.to_string());
                        }
                    });
                }
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            }
        }
        // Stop accepting, tell the mesh, let in-flight work finish, then exit.
        shared.ready.store(false, Ordering::Release);
        mesh.leave(Duration::from_secs(2)).await;
        server::udp::stop(&udp_wakers, &stop);
        let _ = shutdown_tx.send(true);
        if let Some(r) = &shared.resolver {
            // The next start answers from this (L3, warm start).
            let r = r.clone();
            let _ = tokio::task::spawn_blocking(move || r.save_cache()).await;
        }
        let deadline = Instant::now() + cfg.shutdown_grace;
        while limit.available_permits() < cfg.tcp_max_connections && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })?;
    for t in udp_threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
    Ok(code)
}

fn zone_check(files: &[PathBuf], origin: Option<&str>) -> Result<ExitCode> {
    let mut failed = 0;
    for file in files {
        let origin = origin.map(str::to_owned).unwrap_or_else(|| initial_origin(file));
        let result = parse::parse_file(file, Some(&origin)).and_then(|p| compile::compile(&p, None).map(|c| (p, c)));
        match result {
            Ok((_, c)) => {
                for w in &c.warnings {
                    println!("{w}");
                }
                println!(
                    "{}: ok: zone {} serial {}, {} records, {} warnings",
                    file.display(),
                    meshdns::dns::wire::name::to_text(&c.origin),
                    c.serial,
                    c.records,
                    c.warnings.len()
                );
            }
            Err(e) => {
                failed += 1;
                for d in &e.diagnostics {
                    println!("{d}");
                }
                let errors = e.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
                println!("{}: FAILED: {errors} error(s)", file.display());
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn zone_reload(http: std::net::SocketAddr, token: Option<&str>) -> Result<ExitCode> {
    let mut stream = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(5))
        .with_context(|| format!("cannot reach meshdns at {http}: is it running, and is that its --http address?"))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    // The admin header tells a node without tokens this is no cross-site form post.
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "POST /reload HTTP/1.1\r\nHost: {http}\r\n{}: 1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        server::http::ADMIN_HEADER
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading the reload response")?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    print!("{}", dechunk(body));
    match status {
        "200" => Ok(ExitCode::SUCCESS),
        "422" => Ok(ExitCode::from(1)),
        "401" | "403" => {
            bail!("the node refused the reload (HTTP {status}): pass a write token with --token or MESHDNS_GRPC_TOKEN")
        }
        other => bail!("reload failed with HTTP status {other:?}"),
    }
}

/// `meshdns cache stats|flush [NAME]|dump`, over the node's HTTP listener.
fn cache_command(args: &meshdns::cli::CacheArgs) -> Result<ExitCode> {
    use meshdns::cli::CacheCommand;
    let (method, path) = match &args.command {
        CacheCommand::Stats => ("GET", "/cache/stats".to_owned()),
        CacheCommand::Dump => ("GET", "/cache/dump".to_owned()),
        CacheCommand::Flush { name: Some(n) } => ("POST", format!("/cache/flush?name={}", percent(n))),
        CacheCommand::Flush { name: None } => ("POST", "/cache/flush".to_owned()),
    };
    let http = args.http;
    let mut stream = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(5))
        .with_context(|| format!("cannot reach meshdns at {http}: is it running, and is that its --http address?"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let auth = args.token.as_ref().map(|t| format!("Authorization: Bearer {}\r\n", t.expose())).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {http}\r\n{}: 1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        server::http::ADMIN_HEADER
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading the response")?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    match status {
        "200" => {
            print!("{}", dechunk(body));
            Ok(ExitCode::SUCCESS)
        }
        "401" | "403" => bail!(
            "the node refused (HTTP {status}): {}pass a write token with --token or MESHDNS_GRPC_TOKEN",
            dechunk(body)
        ),
        other => bail!("HTTP status {other:?}: {}", dechunk(body).trim_end()),
    }
}

/// Percent-encodes a name for a query string.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

/// Undoes HTTP/1.1 chunked encoding if the body uses it.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return if out.is_empty() { body.to_owned() } else { out };
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if n == 0 || after.len() < n {
            return out;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
}
