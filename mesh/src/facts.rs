//! What a node tells the cluster about itself, and how that crosses tiers.
//!
//! A node publishes [`NodeFacts`] as small key-values in each pool it
//! gossips in (never zone data: a chitchat exchange is one UDP datagram).
//! Representatives repeat what they know of members outside a pool as
//! *relay records*: one key per member, its value [`PeerRecord::encode`]d
//! on one line of about a hundred bytes.

use std::fmt;
use std::net::SocketAddr;

use meshdns_ring::Member;

/// Liveness of a member, as this node knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Liveness {
    /// Heard from recently.
    Alive,
    /// Still counted alive, but not heard from for a while (a few gossip
    /// intervals): the failure detector may soon declare it dead.
    Suspect,
    /// Declared dead by the failure detector; kept until garbage-collected.
    Dead,
    /// Announced that it was leaving (SIGTERM), then stopped.
    Left,
}

impl Liveness {
    /// Whether the member counts as a live member of the ring.
    pub fn is_live(self) -> bool {
        matches!(self, Liveness::Alive | Liveness::Suspect)
    }

    /// Lower case name, as printed by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Suspect => "suspect",
            Liveness::Dead => "dead",
            Liveness::Left => "left",
        }
    }

    fn parse(s: &str) -> Option<Liveness> {
        Some(match s {
            "alive" => Liveness::Alive,
            "suspect" => Liveness::Suspect,
            "dead" => Liveness::Dead,
            "left" => Liveness::Left,
            _ => return None,
        })
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tier roles: which upper pools a node is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Roles {
    /// In its region's pool (a site representative).
    pub region: bool,
    /// In the global pool (a region representative).
    pub global: bool,
}

impl Roles {
    /// `site`, `site,region` or `site,region,global`.
    pub fn as_str(self) -> &'static str {
        match (self.region, self.global) {
            (false, false) => "site",
            (true, false) => "site,region",
            (_, true) => "site,region,global",
        }
    }

    fn parse(s: &str) -> Roles {
        Roles { region: s.split(',').any(|r| r == "region"), global: s.split(',').any(|r| r == "global") }
    }
}

/// The facts one node publishes about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node id (unique in the cluster; defaults to the host name).
    pub id: String,
    /// Incarnation: a restart under the same id gets a larger one, which
    /// replaces the old incarnation everywhere.
    pub generation: u64,
    /// Region.
    pub region: String,
    /// Site.
    pub site: String,
    /// Base gossip address (the site pool; upper pools use the next ports).
    pub gossip: SocketAddr,
    /// First DNS listen address.
    pub dns: Option<SocketAddr>,
    /// gRPC admin address.
    pub grpc: Option<SocketAddr>,
    /// QUIC replication address (the replication issue fills it in).
    pub quic: Option<SocketAddr>,
    /// Software version.
    pub version: String,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Load figure: DNS queries per second over the last interval.
    pub load: u64,
    /// Digest of this node's replicated state (all zones): peers that see
    /// a different one pull from it. Heard directly only (not relayed).
    pub state_digest: u64,
    /// How many hops of the gossip pools around this node are known to
    /// hold its state digest too (see `meshdns_replication::agreement`).
    /// Heard directly only (not relayed). Read as 0 unless it was computed
    /// for the `state_digest` heard with it.
    pub agreement: u8,
    /// The state digest `agreement` was computed for: published with it,
    /// so a reader never pairs a level with a newer digest.
    pub agreement_digest: u64,
    /// Serial of each replicated zone this node holds (`zone=serial`,
    /// comma-separated): peers compute how far behind they are. Heard
    /// directly only (not relayed).
    pub zone_serials: String,
    /// The node's hottest resolver questions (the cache's hot-name
    /// sketch, base64): a joining node prefetches them to warm its cache.
    /// Empty when the resolver is off.
    pub hot_names: String,
    /// Tier roles.
    pub roles: Roles,
}

/// Why a relay record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad relay record for {id}: {reason}")]
pub struct RecordError {
    id: String,
    reason: &'static str,
}

impl NodeFacts {
    /// The ring member these facts describe.
    pub fn member(&self) -> Member {
        Member::new(self.id.clone(), self.region.clone(), self.site.clone())
    }
}

/// How a member became known.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Heard directly in a pool this node gossips in.
    Direct,
    /// Relayed by this representative.
    Via(String),
}

/// One member as seen from one pool: facts, liveness and provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// What the member published.
    pub facts: NodeFacts,
    /// Its liveness.
    pub liveness: Liveness,
    /// Direct or relayed.
    pub source: Source,
}

fn opt_addr(a: &Option<SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

impl PeerRecord {
    /// The one-line form of a relay record (the key is the member id).
    /// Fields are `|`-separated; ids, regions, sites and versions never
    /// contain `|` (see [`valid_label`]).
    pub fn encode(&self) -> String {
        let f = &self.facts;
        format!(
            "1|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            f.generation,
            f.region,
            f.site,
            f.gossip,
            opt_addr(&f.dns),
            opt_addr(&f.grpc),
            opt_addr(&f.quic),
            f.version,
            f.started_unix,
            f.load,
            f.roles.as_str(),
            self.liveness.as_str()
        )
    }

    /// Reads a relay record published under key `id` by `via`.
    pub fn decode(id: &str, via: &str, value: &str) -> Result<PeerRecord, RecordError> {
        let err = |reason| RecordError { id: id.to_owned(), reason };
        let p: Vec<&str> = value.split('|').collect();
        if p.len() != 13 || p[0] != "1" {
            return Err(err("not a version 1 record"));
        }
        if !meshdns_ring::valid_node_id(id) || !valid_label(p[2]) || !valid_label(p[3]) {
            return Err(err("bad id, region or site"));
        }
        let addr = |s: &str| -> Result<Option<SocketAddr>, RecordError> {
            if s.is_empty() { Ok(None) } else { s.parse().map(Some).map_err(|_| err("bad address")) }
        };
        let facts = NodeFacts {
            id: id.to_owned(),
            generation: p[1].parse().map_err(|_| err("bad generation"))?,
            region: p[2].to_owned(),
            site: p[3].to_owned(),
            gossip: p[4].parse().map_err(|_| err("bad gossip address"))?,
            dns: addr(p[5])?,
            grpc: addr(p[6])?,
            quic: addr(p[7])?,
            version: p[8].to_owned(),
            started_unix: p[9].parse().map_err(|_| err("bad start time"))?,
            load: p[10].parse().map_err(|_| err("bad load"))?,
            state_digest: 0,
            agreement: 0,
            agreement_digest: 0,
            zone_serials: String::new(),
            hot_names: String::new(),
            roles: Roles::parse(p[11]),
        };
        let liveness = Liveness::parse(p[12]).ok_or_else(|| err("bad liveness"))?;
        Ok(PeerRecord { facts, liveness, source: Source::Via(via.to_owned()) })
    }
}

/// Whether `s` may be a region, site or cluster name: 1–63 characters of
/// letters, digits, `-`, `_` and `.` (they appear in keys, cluster ids and
/// relay records, and must not contain their separators). Node ids follow
/// the stricter [`meshdns_ring::valid_node_id`].
pub fn valid_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            id: "fra1-a".into(),
            generation: 1_700_000_000_123,
            region: "eu".into(),
            site: "fra1".into(),
            gossip: "10.0.0.1:7946".parse().unwrap(),
            dns: Some("[2001:db8::1]:53".parse().unwrap()),
            grpc: None,
            quic: Some("10.0.0.1:7948".parse().unwrap()),
            version: "0.1.0".into(),
            started_unix: 1_700_000_000,
            load: 12_345,
            state_digest: 0,
            agreement: 0,
            agreement_digest: 0,
            zone_serials: String::new(),
            hot_names: String::new(),
            roles: Roles { region: true, global: false },
        }
    }

    #[test]
    fn relay_records_round_trip_and_stay_small() {
        let r = PeerRecord { facts: facts(), liveness: Liveness::Dead, source: Source::Direct };
        let line = r.encode();
        assert!(line.len() < 150, "{} bytes: {line}", line.len());
        let back = PeerRecord::decode("fra1-a", "rep", &line).unwrap();
        assert_eq!(back.facts, r.facts);
        assert_eq!(back.liveness, Liveness::Dead);
        assert_eq!(back.source, Source::Via("rep".into()));
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        for bad in ["", "2|1|eu|fra1|1.2.3.4:5||||v|1|1|site|alive", "1|x|eu|fra1|1.2.3.4:5||||v|1|1|site|alive"] {
            assert!(PeerRecord::decode("a", "b", bad).is_err(), "{bad}");
        }
        assert!(PeerRecord::decode("a", "b", "1|1|eu|fra1|1.2.3.4:5||||v|1|1|site|zombie").is_err());
        assert!(PeerRecord::decode("a", "b", "1|1|e u|fra1|1.2.3.4:5||||v|1|1|site|alive").is_err());
        assert!(PeerRecord::decode("a b", "b", "1|1|eu|fra1|1.2.3.4:5||||v|1|1|site|alive").is_err());
        // One node-id rule with the certificates: no '_' or '.'.
        assert!(PeerRecord::decode("a_b", "b", "1|1|eu|fra1|1.2.3.4:5||||v|1|1|site|alive").is_err());
        assert!(PeerRecord::decode("a.b", "b", "1|1|eu|fra1|1.2.3.4:5||||v|1|1|site|alive").is_err());
    }

    #[test]
    fn labels() {
        assert!(valid_label("fra1-a.example_1"));
        for bad in ["", "a|b", "a b", "a/b", &"x".repeat(64)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }
}
