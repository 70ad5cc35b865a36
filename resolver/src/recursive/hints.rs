//! Root hints: where iteration starts when the cache knows no closer zone
//! cut (RFC 1034 §5.3.2, "SBELT"), in the `named.root` format.

use std::net::IpAddr;

use hickory_proto::rr::Name;

/// Why a hints file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HintsError {
    /// A line that is not `owner [ttl] [class] type rdata`.
    #[error("line {line}: {why}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        why: String,
    },
    /// No root NS name with at least one address.
    #[error("no root server with an address")]
    Empty,
}

/// The root servers: their names and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootHints {
    servers: Vec<(Name, Vec<IpAddr>)>,
}

/// The 13 root servers as published by IANA in `named.root` (b.root moved
/// to 170.247.170.2 / 2801:1b8:10::b in November 2023).
const BUILTIN: &[(&str, &str, &str)] = &[
    ("a.root-servers.net.", "198.41.0.4", "2001:503:ba3e::2:30"),
    ("b.root-servers.net.", "170.247.170.2", "2801:1b8:10::b"),
    ("c.root-servers.net.", "192.33.4.12", "2001:500:2::c"),
    ("d.root-servers.net.", "199.7.91.13", "2001:500:2d::d"),
    ("e.root-servers.net.", "192.203.230.10", "2001:500:a8::e"),
    ("f.root-servers.net.", "192.5.5.241", "2001:500:2f::f"),
    ("g.root-servers.net.", "192.112.36.4", "2001:500:12::d0d"),
    ("h.root-servers.net.", "198.97.190.53", "2001:500:1::53"),
    ("i.root-servers.net.", "192.36.148.17", "2001:7fe::53"),
    ("j.root-servers.net.", "192.58.128.30", "2001:503:c27::2:30"),
    ("k.root-servers.net.", "193.0.14.129", "2001:7fd::1"),
    ("l.root-servers.net.", "199.7.83.42", "2001:500:9f::42"),
    ("m.root-servers.net.", "202.12.27.33", "2001:dc3::35"),
];

impl RootHints {
    /// The built-in hints: the 13 root servers' IPv4 and IPv6 addresses.
    pub fn builtin() -> Self {
        let servers = BUILTIN
            .iter()
            .filter_map(|(n, a, aaaa)| {
                let name = Name::from_ascii(n).ok()?;
                let addrs = [a, aaaa].iter().filter_map(|s| s.parse().ok()).collect();
                Some((name, addrs))
            })
            .collect();
        RootHints { servers }
    }

    /// Hints given directly as (server name, addresses).
    pub fn from_servers(servers: Vec<(Name, Vec<IpAddr>)>) -> Result<Self, HintsError> {
        let servers: Vec<_> =
            servers.into_iter().filter(|(_, a)| !a.is_empty()).map(|(n, a)| (lower_fqdn(&n), a)).collect();
        if servers.is_empty() {
            return Err(HintsError::Empty);
        }
        Ok(RootHints { servers })
    }

    /// Parses hints in the `named.root` format: the root's NS records and
    /// their A/AAAA records; `;` starts a comment. Names without an
    /// address are dropped (RFC 1034 §5.3.2 needs addresses to start).
    pub fn parse(text: &str) -> Result<Self, HintsError> {
        let mut ns: Vec<Name> = Vec::new();
        let mut addrs: Vec<(Name, IpAddr)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split(';').next().unwrap_or("");
            let toks: Vec<&str> = line.split_whitespace().collect();
            if toks.is_empty() {
                continue;
            }
            let err = |why: &str| HintsError::Syntax { line: i + 1, why: why.to_string() };
            // owner, then optional TTL and class in either order, then type.
            let mut k = 1;
            while k < toks.len() && (toks[k].parse::<u32>().is_ok() || toks[k].eq_ignore_ascii_case("IN")) {
                k += 1;
            }
            if k + 1 >= toks.len() {
                return Err(err("expected owner [ttl] [class] type rdata"));
            }
            let owner = Name::from_ascii(toks[0]).map_err(|e| err(&e.to_string()))?;
            let owner = lower_fqdn(&owner);
            let (rtype, rdata) = (toks[k].to_ascii_uppercase(), toks[k + 1]);
            match rtype.as_str() {
                "NS" => {
                    if !owner.is_root() {
                        return Err(err("NS record not at the root"));
                    }
                    let n = Name::from_ascii(rdata).map_err(|e| err(&e.to_string()))?;
                    ns.push(lower_fqdn(&n));
                }
                "A" | "AAAA" => {
                    let ip: IpAddr = rdata.parse().map_err(|_| err("bad address"))?;
                    if ip.is_ipv4() != (rtype == "A") {
                        return Err(err("address of the wrong family"));
                    }
                    addrs.push((owner, ip));
                }
                _ => return Err(err("only NS, A and AAAA records belong in root hints")),
            }
        }
        let servers = ns
            .into_iter()
            .map(|n| {
                let a = addrs.iter().filter(|(o, _)| *o == n).map(|(_, ip)| *ip).collect();
                (n, a)
            })
            .collect();
        Self::from_servers(servers)
    }

    /// The servers: (name, addresses).
    pub fn servers(&self) -> &[(Name, Vec<IpAddr>)] {
        &self.servers
    }
}

impl Default for RootHints {
    fn default() -> Self {
        Self::builtin()
    }
}

fn lower_fqdn(n: &Name) -> Name {
    let mut n = n.to_lowercase();
    n.set_fqdn(true);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_13_servers_with_both_families() {
        let h = RootHints::builtin();
        assert_eq!(h.servers().len(), 13);
        for (n, a) in h.servers() {
            assert_eq!(a.len(), 2, "{n}");
            assert!(a[0].is_ipv4() && a[1].is_ipv6(), "{n}");
        }
        let b = &h.servers()[1];
        assert_eq!(b.1[0], "170.247.170.2".parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}")));
    }

    #[test]
    fn parses_named_root() {
        let text = "; comment\n\
            .                        3600000      NS    A.ROOT-SERVERS.NET.\n\
            A.ROOT-SERVERS.NET.      3600000      A     198.41.0.4\n\
            A.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:ba3e::2:30\n\
            .                        3600000  IN  NS    B.ROOT-SERVERS.NET.\n\
            .                        3600000      NS    Z.NOWHERE.\n\
            B.ROOT-SERVERS.NET.      3600000      A     170.247.170.2 ; trailing\n";
        let h = RootHints::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.servers().len(), 2, "the name without an address is dropped");
        assert_eq!(h.servers()[0].0.to_ascii(), "a.root-servers.net.");
        assert_eq!(h.servers()[0].1.len(), 2);
    }

    #[test]
    fn refuses_bad_hints() {
        assert_eq!(RootHints::parse("; nothing\n"), Err(HintsError::Empty));
        assert!(matches!(RootHints::parse(". NS\n"), Err(HintsError::Syntax { line: 1, .. })));
        assert!(matches!(RootHints::parse("x. A 2001::1\n"), Err(HintsError::Syntax { .. })));
        assert!(matches!(RootHints::parse("com. NS a.gtld.\n"), Err(HintsError::Syntax { .. })));
    }
}
