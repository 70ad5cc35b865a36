//! Access control by client address: who may query, transfer zones, send
//! NOTIFY or UPDATE, and reach the admin listeners (HTTP and gRPC).
//!
//! Each kind of request has an allow list and a deny list of networks
//! (CIDRs). A request is judged by exactly one list pair, chosen by what it
//! is ([`AclKind::of_message`]), and the pair is evaluated in this order:
//!
//! 1. a source in any **deny** network is refused;
//! 2. otherwise, an **empty allow** list admits everyone;
//! 3. otherwise the source must be in an **allow** network, or it is refused.
//!
//! So deny always wins over allow, whatever the order the networks are
//! written in, and a longer prefix gets no precedence. IPv4-mapped IPv6
//! sources (`::ffff:192.0.2.1`) are judged as their IPv4 address.
//!
//! A refused DNS message gets REFUSED (RFC 1035 §4.1.1); a refused admin
//! connection is closed (gRPC) or answered 403 (HTTP). An empty list pair
//! costs one branch per query.

use std::net::IpAddr;

use ipnet::IpNet;

/// What a request asks for; each kind has its own allow/deny pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclKind {
    /// Ordinary queries (opcode QUERY, any type but AXFR/IXFR).
    Query,
    /// AXFR and IXFR (RFC 5936, RFC 1995).
    Transfer,
    /// NOTIFY messages sent to us (RFC 1996 opcode 4).
    Notify,
    /// Dynamic UPDATE (RFC 2136 opcode 5); TSIG is checked after this.
    Update,
    /// The HTTP (metrics, health, reload) and gRPC admin listeners.
    Admin,
}

impl AclKind {
    /// The kind of a DNS message, from its header alone (opcode in bits
    /// 3-6 of byte 2, RFC 1035 §4.1.1). Zone transfers are told apart by
    /// the TCP path, which parses the question first; see
    /// [`crate::server::tcp`].
    pub fn of_message(msg: &[u8]) -> AclKind {
        match msg.get(2).map(|b| (b >> 3) & 0x0f) {
            Some(4) => AclKind::Notify,
            Some(5) => AclKind::Update,
            _ => AclKind::Query,
        }
    }
}

/// One allow list and one deny list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    /// Networks admitted; empty admits everyone not denied.
    pub allow: Vec<IpNet>,
    /// Networks refused, checked first.
    pub deny: Vec<IpNet>,
}

impl AccessList {
    /// Admits everyone.
    pub fn open() -> Self {
        AccessList::default()
    }

    /// Admits only loopback clients (127.0.0.0/8 and ::1).
    pub fn loopback() -> Self {
        AccessList { allow: loopback_nets(), deny: Vec::new() }
    }

    /// Whether `ip` may go ahead (the order is in the module docs).
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.allow.is_empty() && self.deny.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// The networks of the loopback interface.
pub fn loopback_nets() -> Vec<IpNet> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    vec![
        IpNet::V4(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
        IpNet::V6(ipnet::Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    ]
}

/// Every kind's access list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acls {
    /// Ordinary queries. Default: everyone.
    pub query: AccessList,
    /// AXFR/IXFR. Default: loopback only (`transfer.allow`'s old default).
    pub transfer: AccessList,
    /// NOTIFY to us. Default: loopback only.
    pub notify: AccessList,
    /// UPDATE. Default: everyone (a TSIG key is still required).
    pub update: AccessList,
    /// HTTP and gRPC admin listeners. Default: everyone who can reach
    /// them (both bind loopback by default; the gRPC token still applies).
    pub admin: AccessList,
}

impl Default for Acls {
    fn default() -> Self {
        Acls {
            query: AccessList::open(),
            transfer: AccessList::loopback(),
            notify: AccessList::loopback(),
            update: AccessList::open(),
            admin: AccessList::open(),
        }
    }
}

impl Acls {
    /// The list for `kind`.
    pub fn list(&self, kind: AclKind) -> &AccessList {
        match kind {
            AclKind::Query => &self.query,
            AclKind::Transfer => &self.transfer,
            AclKind::Notify => &self.notify,
            AclKind::Update => &self.update,
            AclKind::Admin => &self.admin,
        }
    }

    /// Whether `ip` may make a request of `kind`.
    pub fn permits(&self, kind: AclKind, ip: IpAddr) -> bool {
        self.list(kind).permits(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn deny_wins_over_allow_and_an_empty_allow_admits_the_rest() {
        let l = AccessList { allow: nets(&["10.0.0.0/8"]), deny: nets(&["10.1.0.0/16"]) };
        assert!(l.permits("10.2.3.4".parse().unwrap()));
        assert!(!l.permits("10.1.3.4".parse().unwrap()), "deny is checked before allow");
        assert!(!l.permits("192.0.2.1".parse().unwrap()), "a non-empty allow list refuses the rest");
        let deny_only = AccessList { allow: vec![], deny: nets(&["192.0.2.0/24"]) };
        assert!(deny_only.permits("198.51.100.1".parse().unwrap()));
        assert!(!deny_only.permits("192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn mapped_ipv6_sources_are_judged_as_ipv4() {
        let l = AccessList { allow: vec![], deny: nets(&["192.0.2.0/24"]) };
        assert!(!l.permits("::ffff:192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn the_kind_comes_from_the_opcode() {
        let mut h = [0u8; 12];
        assert_eq!(AclKind::of_message(&h), AclKind::Query);
        h[2] = 4 << 3;
        assert_eq!(AclKind::of_message(&h), AclKind::Notify);
        h[2] = 5 << 3;
        assert_eq!(AclKind::of_message(&h), AclKind::Update);
        assert_eq!(AclKind::of_message(&[]), AclKind::Query);
    }

    #[test]
    fn defaults_keep_transfers_and_notify_on_loopback() {
        let a = Acls::default();
        assert!(a.permits(AclKind::Transfer, "127.0.0.2".parse().unwrap()));
        assert!(a.permits(AclKind::Transfer, "::1".parse().unwrap()));
        assert!(!a.permits(AclKind::Transfer, "192.0.2.1".parse().unwrap()));
        assert!(!a.permits(AclKind::Notify, "192.0.2.1".parse().unwrap()));
        assert!(a.permits(AclKind::Query, "192.0.2.1".parse().unwrap()));
    }
}
