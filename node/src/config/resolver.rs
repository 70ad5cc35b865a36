//! `[resolver]`: recursion and forwarding for clients (docs/resolver.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;
use meshdns_resolver::cache::CacheConfig;
use meshdns_resolver::forward::{Strategy, Upstream};
use meshdns_resolver::proto::Name;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[resolver]`, as written.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    /// `off` (default), `forward` or `recursive`.
    pub mode: Option<String>,
    /// Root hints file (named.root format); default: built in.
    pub root_hints: Option<String>,
    /// Trust anchors (DS or DNSKEY records, zone-file format); default:
    /// the root KSKs built in.
    pub trust_anchor: Option<String>,
    /// RFC 5011: seconds between checks of the anchored zone's DNSKEY
    /// RRset; default from its TTL and signatures (RFC 5011 §2.3).
    pub anchor_refresh_s: Option<u64>,
    /// Upstream URLs for forward mode (`udp://IP:PORT`, `tcp://IP:PORT`).
    pub forward: Option<Vec<String>>,
    /// Conditional forwarding: domain = [upstream URLs].
    pub forward_zones: Option<BTreeMap<String, Vec<String>>>,
    /// `failover` (default) or `fastest`.
    pub strategy: Option<String>,
    /// Client networks that may recurse.
    pub recursion_allow: Option<Vec<String>>,
    /// Let the resolver query name servers on loopback addresses.
    pub query_loopback: Option<bool>,
    /// DNSSEC validation in recursive mode (default true).
    pub validate: Option<bool>,
    /// RFC 9156 QNAME minimisation (default true).
    pub qname_minimisation: Option<bool>,
    /// Wait for one upstream or server reply (ms).
    pub timeout_ms: Option<u64>,
    /// Bound on the shared cache (bytes).
    pub cache_bytes: Option<u64>,
    /// TTL clamp (seconds).
    pub min_ttl: Option<u32>,
    /// TTL clamp (seconds).
    pub max_ttl: Option<u32>,
    /// Cap on negative TTLs (seconds).
    pub max_negative_ttl: Option<u32>,
    /// RFC 8767: serve expired data up to this long when resolution fails
    /// (seconds; 0 = off).
    pub serve_stale: Option<u32>,
    /// Refresh popular names shortly before they expire.
    pub prefetch: Option<bool>,
    /// The warm-start cache file (L3); "" = none. Default DATA_DIR/cache.l3.
    pub cache_file: Option<String>,
    /// Bound on the cache file (bytes; default 128 MiB).
    pub cache_file_bytes: Option<u64>,
    /// Publish this node's hottest names in gossip and, when starting,
    /// resolve the peers' (default true).
    pub warm_from_peers: Option<bool>,
}

/// What the resolver does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResolverMode {
    /// Authoritative only (REFUSED outside our zones), as before.
    #[default]
    Off,
    /// Every other question goes to upstream resolvers.
    Forward,
    /// Iterative resolution from the root.
    Recursive,
}

/// `[resolver]`, checked.
#[derive(Clone, Debug, Default)]
pub struct ResolverSettings {
    /// The mode.
    pub mode: ResolverMode,
    /// Root hints file.
    pub root_hints: Option<PathBuf>,
    /// Trust anchor file.
    pub trust_anchor: Option<PathBuf>,
    /// The RFC 5011 state of the trust anchors (`DATA_DIR/trust-anchors.state`).
    pub anchor_state_file: PathBuf,
    /// Fixed period of the RFC 5011 checks (seconds); `None`: RFC 5011 §2.3.
    pub anchor_refresh_s: Option<u64>,
    /// Default upstreams.
    pub forward: Vec<Upstream>,
    /// Conditional forwarding.
    pub forward_zones: Vec<(Name, Vec<Upstream>)>,
    /// Upstream choice.
    pub strategy: Strategy,
    /// Who may recurse.
    pub recursion_allow: Vec<IpNet>,
    /// Query name servers on loopback.
    pub query_loopback: bool,
    /// Validate DNSSEC (recursive mode).
    pub validate: bool,
    /// QNAME minimisation.
    pub qname_minimisation: bool,
    /// Per-exchange timeout (ms).
    pub timeout_ms: u64,
    /// Cache settings.
    pub cache: CacheConfig,
    /// Prefetch.
    pub prefetch: bool,
    /// The L3 file.
    pub cache_file: Option<PathBuf>,
    /// Its bound in bytes.
    pub cache_file_bytes: usize,
    /// Predictive warming across the mesh.
    pub warm_from_peers: bool,
}

/// Who may recurse by default: loopback and the private ranges (RFC 1918,
/// RFC 4193) — never the whole internet.
pub const DEFAULT_RECURSION_ALLOW: &[&str] =
    &["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

impl ResolverSettings {
    /// Checks `[resolver]`; `data_dir` places the default cache file.
    pub fn from_raw(r: &RawResolver, data_dir: &std::path::Path) -> Result<Self, ConfigError> {
        let mode = match r.mode.as_deref().unwrap_or("off") {
            "off" => ResolverMode::Off,
            "forward" => ResolverMode::Forward,
            "recursive" => ResolverMode::Recursive,
            other => return Err(invalid("resolver.mode", other, "expected off, forward or recursive")),
        };
        let upstream = |key: &str, u: &String| Upstream::parse(u).map_err(|e| invalid(key, u, &e.to_string()));
        let forward = r
            .forward
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|u| upstream("resolver.forward", u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut forward_zones = Vec::new();
        for (domain, urls) in r.forward_zones.iter().flatten() {
            let key = format!("resolver.forward_zones.{domain}");
            let mut name = Name::from_str(domain)
                .map_err(|e| invalid(&key, domain, &format!("not a domain name: {e}")))?
                .to_lowercase();
            name.set_fqdn(true);
            let ups = urls.iter().map(|u| upstream(&key, u)).collect::<Result<Vec<_>, _>>()?;
            if ups.is_empty() {
                return Err(invalid(&key, "[]", "give at least one upstream URL"));
            }
            forward_zones.push((name, ups));
        }
        if mode == ResolverMode::Forward && forward.is_empty() && forward_zones.is_empty() {
            return Err(invalid(
                "resolver.forward",
                "",
                "forward mode needs an upstream, e.g. --forward udp://192.0.2.53:53 (or [resolver] forward = [...])",
            ));
        }
        let strategy = match r.strategy.as_deref().unwrap_or("failover") {
            "failover" => Strategy::Failover,
            "fastest" => Strategy::Fastest,
            other => return Err(invalid("resolver.strategy", other, "expected failover or fastest")),
        };
        let allow: Vec<String> = match &r.recursion_allow {
            Some(v) => v.clone(),
            None => DEFAULT_RECURSION_ALLOW.iter().map(|s| s.to_string()).collect(),
        };
        let recursion_allow = super::cidrs("resolver.recursion_allow", &allow)?;
        let d = CacheConfig::default();
        let min_ttl = r.min_ttl.unwrap_or(d.min_ttl);
        let max_ttl = r.max_ttl.unwrap_or(d.max_ttl);
        if min_ttl > max_ttl {
            return Err(invalid("resolver.min_ttl", &min_ttl.to_string(), "must not exceed resolver.max_ttl"));
        }
        let timeout_ms = r.timeout_ms.unwrap_or(1_500);
        if !(50..=30_000).contains(&timeout_ms) {
            return Err(invalid("resolver.timeout_ms", &timeout_ms.to_string(), "expected 50 to 30000"));
        }
        let cache_bytes = r.cache_bytes.unwrap_or(d.max_bytes as u64);
        if cache_bytes < 1 << 20 {
            return Err(invalid("resolver.cache_bytes", &cache_bytes.to_string(), "expected at least 1048576 (1 MiB)"));
        }
        if r.anchor_refresh_s == Some(0) {
            return Err(invalid("resolver.anchor_refresh_s", "0", "expected at least 1 (seconds)"));
        }
        Ok(ResolverSettings {
            mode,
            root_hints: r.root_hints.as_ref().map(PathBuf::from),
            trust_anchor: r.trust_anchor.as_ref().map(PathBuf::from),
            anchor_state_file: data_dir.join("trust-anchors.state"),
            anchor_refresh_s: r.anchor_refresh_s,
            forward,
            forward_zones,
            strategy,
            recursion_allow,
            query_loopback: r.query_loopback.unwrap_or(false),
            validate: r.validate.unwrap_or(true),
            qname_minimisation: r.qname_minimisation.unwrap_or(true),
            timeout_ms,
            cache: CacheConfig {
                max_bytes: cache_bytes as usize,
                min_ttl,
                max_ttl,
                max_negative_ttl: r.max_negative_ttl.unwrap_or(d.max_negative_ttl),
                max_stale: r.serve_stale.unwrap_or(d.max_stale),
                ..d
            },
            prefetch: r.prefetch.unwrap_or(true),
            cache_file: match r.cache_file.as_deref() {
                Some("") => None,
                Some(p) => Some(PathBuf::from(p)),
                None => Some(data_dir.join("cache.l3")),
            },
            warm_from_peers: r.warm_from_peers.unwrap_or(true),
            cache_file_bytes: r.cache_file_bytes.unwrap_or(128 << 20).min(usize::MAX as u64) as usize,
        })
    }

    /// Whether `ip` may recurse.
    pub fn may_recurse(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.recursion_allow.iter().any(|n| n.contains(&ip))
    }

    /// Allows the whole internet to recurse (0.0.0.0/0 or ::/0 listed).
    pub fn is_open(&self) -> bool {
        self.recursion_allow.iter().any(|n| n.prefix_len() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(r: RawResolver) -> Result<ResolverSettings, ConfigError> {
        ResolverSettings::from_raw(&r, std::path::Path::new("/tmp/d"))
    }

    #[test]
    fn default_is_off_and_not_open() {
        let s = check(RawResolver::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.mode, ResolverMode::Off);
        assert!(!s.is_open());
        assert!(s.may_recurse("127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(s.may_recurse("192.168.1.9".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(s.may_recurse("fd00::1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!s.may_recurse("8.8.8.8".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!s.may_recurse("2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"))));
    }

    #[test]
    fn forward_mode_without_an_upstream_says_what_to_add() {
        let e = check(RawResolver { mode: Some("forward".into()), ..Default::default() }).err();
        assert!(e.is_some_and(|e| e.to_string().contains("--forward udp://")));
        let e = check(RawResolver { mode: Some("recursve".into()), ..Default::default() }).err();
        assert!(e.is_some_and(|e| e.to_string().contains("off, forward or recursive")));
        let e = check(RawResolver { forward: Some(vec!["tls://1.1.1.1:853".into()]), ..Default::default() }).err();
        assert!(e.is_some_and(|e| e.to_string().contains("encrypted transports")));
    }

    #[test]
    fn conditional_zones_parse() {
        let mut zones = BTreeMap::new();
        zones.insert("Corp.Example".to_string(), vec!["udp://10.0.0.53:53".to_string()]);
        let s = check(RawResolver { mode: Some("forward".into()), forward_zones: Some(zones), ..Default::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.forward_zones[0].0.to_string(), "corp.example.");
    }

    #[test]
    fn anchor_state_lives_in_the_data_dir_and_refresh_is_at_least_a_second() {
        let s = check(RawResolver::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.anchor_state_file, std::path::Path::new("/tmp/d/trust-anchors.state"));
        assert_eq!(s.anchor_refresh_s, None, "RFC 5011 §2.3 by default");
        let s =
            check(RawResolver { anchor_refresh_s: Some(1), ..Default::default() }).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.anchor_refresh_s, Some(1));
        let e = check(RawResolver { anchor_refresh_s: Some(0), ..Default::default() }).err();
        assert!(e.is_some_and(|e| e.to_string().contains("anchor_refresh_s")));
    }
}
