//! The infrastructure cache: what iteration learns about servers, shared
//! by all resolutions (like Unbound's infra cache): a smoothed round-trip
//! time per address, timeout backoff, whether it speaks EDNS, and for
//! which zones it is lame.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hickory_proto::rr::Name;

use crate::types::Millis;

/// RTO given to a server never asked, so that it is tried (Unbound's
/// UNKNOWN_SERVER_NICENESS, 376 ms).
pub(crate) const UNKNOWN_RTO_MS: u32 = 376;
/// Lower and upper bound of a retransmission timeout.
const MIN_RTO_MS: u32 = 50;
const MAX_RTO_MS: u32 = 120_000;
/// Servers within this band of the fastest are picked among (Unbound's
/// RTT_BAND), so that a slightly slower one is explored now and then.
pub(crate) const RTT_BAND_MS: u32 = 400;
/// How long what was learned about a server is kept (Unbound's
/// infra-host-ttl, 900 s).
const HOST_TTL_MS: Millis = 900_000;
/// Bound on the number of servers remembered.
const MAX_HOSTS: usize = 10_000;

#[derive(Clone, Debug)]
struct Host {
    /// Smoothed RTT and its variance (RFC 6298 §2, as Unbound keeps them).
    srtt: u32,
    rttvar: u32,
    /// Current retransmission timeout, doubled on each timeout.
    rto: u32,
    /// Timed out recently: tried only when nothing better is left.
    skip_until: Millis,
    /// Answered FORMERR/NOTIMP to EDNS: ask it without an OPT record.
    no_edns_until: Millis,
    /// Last time this entry changed, for expiry.
    touched: Millis,
}

impl Host {
    fn new(now: Millis) -> Self {
        Host { srtt: 0, rttvar: UNKNOWN_RTO_MS / 4, rto: UNKNOWN_RTO_MS, skip_until: 0, no_edns_until: 0, touched: now }
    }
}

#[derive(Default)]
struct Inner {
    hosts: HashMap<IpAddr, Host>,
    lame: HashMap<(IpAddr, Name), Millis>,
}

/// The infrastructure cache (see the module docs). `Send + Sync`.
#[derive(Default)]
pub struct InfraCache {
    inner: Mutex<Inner>,
}

impl InfraCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a reply after `rtt_ms` (RFC 6298 §2.2–2.3 smoothing).
    pub fn on_reply(&self, ip: IpAddr, rtt_ms: u64, now: Millis) {
        let mut g = self.lock();
        evict(&mut g, now);
        let h = g.hosts.entry(ip).or_insert_with(|| Host::new(now));
        let r = rtt_ms.min(u64::from(MAX_RTO_MS)) as u32;
        if h.srtt == 0 {
            h.srtt = r.max(1);
            h.rttvar = r / 2;
        } else {
            let delta = h.srtt.abs_diff(r);
            h.rttvar = (3 * h.rttvar + delta) / 4;
            h.srtt = (7 * h.srtt + r) / 8;
        }
        h.rto = (h.srtt + 4 * h.rttvar).clamp(MIN_RTO_MS, MAX_RTO_MS);
        h.skip_until = 0;
        h.touched = now;
    }

    /// Records a timeout: the RTO doubles and the server is skipped for
    /// that long while others are left.
    pub fn on_timeout(&self, ip: IpAddr, now: Millis) {
        let mut g = self.lock();
        evict(&mut g, now);
        let h = g.hosts.entry(ip).or_insert_with(|| Host::new(now));
        h.rto = h.rto.saturating_mul(2).min(MAX_RTO_MS);
        h.skip_until = now + u64::from(h.rto);
        h.touched = now;
    }

    /// Records that `ip` is lame for `zone` (REFUSED, SERVFAIL, an upward
    /// referral, a non-authoritative answer).
    pub fn set_lame(&self, ip: IpAddr, zone: &Name, now: Millis) {
        let mut g = self.lock();
        evict(&mut g, now);
        g.lame.insert((ip, zone.clone()), now + HOST_TTL_MS);
    }

    /// Whether `ip` is lame for `zone`.
    pub fn is_lame(&self, ip: IpAddr, zone: &Name, now: Millis) -> bool {
        self.lock().lame.get(&(ip, zone.clone())).is_some_and(|until| *until > now)
    }

    /// Records that `ip` does not speak EDNS (RFC 6891 §7).
    pub fn set_no_edns(&self, ip: IpAddr, now: Millis) {
        let mut g = self.lock();
        let h = g.hosts.entry(ip).or_insert_with(|| Host::new(now));
        h.no_edns_until = now + HOST_TTL_MS;
        h.touched = now;
    }

    /// Whether queries to `ip` go without EDNS.
    pub fn no_edns(&self, ip: IpAddr, now: Millis) -> bool {
        self.lock().hosts.get(&ip).is_some_and(|h| h.no_edns_until > now)
    }

    /// The current RTO of `ip` (the start value if unknown).
    pub fn rto(&self, ip: IpAddr) -> u32 {
        self.lock().hosts.get(&ip).map_or(UNKNOWN_RTO_MS, |h| h.rto)
    }

    /// Picks one of `candidates` (none lame for `zone`): the fastest by
    /// RTO, or another within `RTT_BAND_MS` (400 ms) of it chosen by `seed` (the
    /// caller's deterministic stand-in for randomness). Servers skipped
    /// after a timeout are taken only when no other is left.
    pub fn select(&self, candidates: &[IpAddr], zone: &Name, seed: u64, now: Millis) -> Option<IpAddr> {
        let g = self.lock();
        let scored: Vec<(IpAddr, u32, bool)> = candidates
            .iter()
            .filter(|ip| g.lame.get(&(**ip, zone.clone())).is_none_or(|u| *u <= now))
            .map(|ip| {
                let h = g.hosts.get(ip);
                let skipped = h.is_some_and(|h| h.skip_until > now);
                (*ip, h.map_or(UNKNOWN_RTO_MS, |h| h.rto), skipped)
            })
            .collect();
        let pool: Vec<_> =
            if scored.iter().any(|s| !s.2) { scored.into_iter().filter(|s| !s.2).collect() } else { scored };
        let best = pool.iter().map(|s| s.1).min()?;
        let band: Vec<_> = pool.iter().filter(|s| s.1 <= best.saturating_add(RTT_BAND_MS)).collect();
        band.get((seed % band.len() as u64) as usize).map(|s| s.0)
    }
}

fn evict(g: &mut Inner, now: Millis) {
    if g.hosts.len() + g.lame.len() < MAX_HOSTS {
        return;
    }
    g.hosts.retain(|_, h| h.touched + HOST_TTL_MS > now);
    g.lame.retain(|_, until| *until > now);
    if g.hosts.len() + g.lame.len() >= MAX_HOSTS {
        g.hosts.clear();
        g.lame.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn fastest_server_wins_and_unknown_ones_are_tried() {
        let c = InfraCache::default();
        let (a, b, u) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let z = Name::root();
        for _ in 0..5 {
            c.on_reply(a, 900, 0);
            c.on_reply(b, 10, 0);
        }
        assert!(c.rto(b) < c.rto(a));
        for seed in 0..8 {
            let pick = c.select(&[a, b], &z, seed, 0);
            assert_eq!(pick, Some(b), "a is far outside the band");
        }
        // An unknown server (376 ms) is within the band of b: explored sometimes.
        let picks: Vec<_> = (0..8).filter_map(|s| c.select(&[a, b, u], &z, s, 0)).collect();
        assert!(picks.contains(&u) && picks.contains(&b) && !picks.contains(&a));
    }

    #[test]
    fn timeouts_back_off_and_skip() {
        let c = InfraCache::default();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let z = Name::root();
        c.on_reply(a, 5, 0);
        c.on_reply(b, 300, 0);
        c.on_timeout(a, 1000);
        assert!(c.rto(a) >= 100);
        assert_eq!(c.select(&[a, b], &z, 0, 1001), Some(b), "a is skipped after its timeout");
        assert_eq!(c.select(&[a], &z, 0, 1001), Some(a), "but taken when it is the only one");
        assert_eq!(c.select(&[a, b], &z, 0, 1000 + 120_001), Some(a), "the skip ends");
    }

    #[test]
    fn lame_and_edns_are_remembered_for_a_while() {
        let c = InfraCache::default();
        let a = ip("10.0.0.1");
        let z = Name::from_ascii("example.").unwrap_or_else(|e| panic!("{e}"));
        c.set_lame(a, &z, 0);
        assert!(c.is_lame(a, &z, 10));
        assert!(!c.is_lame(a, &Name::root(), 10));
        assert_eq!(c.select(&[a], &z, 0, 10), None);
        assert!(!c.is_lame(a, &z, HOST_TTL_MS + 1));
        c.set_no_edns(a, 0);
        assert!(c.no_edns(a, 5) && !c.no_edns(a, HOST_TTL_MS + 1));
    }
}
