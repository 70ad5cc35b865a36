//! Response rate limiting (RRL) and the per-client query rate limit.
//!
//! RRL keeps a spoofed flood from turning this server into an amplifier:
//! responses are counted per source prefix (/24 for IPv4, /56 for IPv6 by
//! default) and per response class ([`ResponseClass`]), and once a count
//! passes `responses_per_second` within the current second, further
//! responses of that kind to that prefix are dropped, except that every
//! `slip`-th one is sent as an empty truncated answer (TC=1), so a real
//! client behind the prefix retries over TCP and still gets its answer.
//! This is the scheme of Knot's mod-rrl and NSD's `rrl-ratelimit`.
//!
//! What is counted together (the bucket key), as Knot does:
//! - answers (NOERROR with AA, NODATA included): prefix + the query name,
//!   so a flood of one name does not limit other names from the same prefix;
//! - NXDOMAIN, referrals and errors: prefix + class alone, so a flood of
//!   random names is limited as one stream.
//!
//! The per-client query limit counts queries (before answering) per full
//! source address and drops those past `client_queries_per_second`.
//!
//! # Cost on the query path
//!
//! The table is a fixed array of `AtomicU64` buckets made at start, shared
//! by every worker: no allocation and no lock per query. A key's bucket is
//! one of two neighbours (same cache line) picked by a keyed hash; each
//! packs a 32-bit tag, the second it counts (16 bits) and the count (16
//! bits), updated with a compare-and-swap. A bucket held by another key is
//! taken over when its second is past, or when it holds the smaller count,
//! so two keys on one slot cannot keep resetting each other. Counts are
//! approximate under collisions and races, as in Knot and NSD; the limit is
//! never off by more than the handful of responses two threads race over.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use ipnet::IpNet;

/// Largest `responses_per_second` and `client_queries_per_second` (the
/// count is 16 bits).
pub const MAX_RATE: u32 = 60_000;

/// What kind of response is counted (NSD and Knot count classes apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseClass {
    /// NOERROR with AA: an answer or NODATA.
    Answer = 0,
    /// NXDOMAIN.
    NxDomain = 1,
    /// Any other rcode (REFUSED, FORMERR, SERVFAIL, NOTIMP, ...).
    Error = 2,
    /// NOERROR without AA: a referral to a child zone.
    Referral = 3,
}

/// Class names, in [`ResponseClass`] order (metric labels).
pub const CLASSES: [&str; 4] = ["answer", "nxdomain", "error", "referral"];

/// The class key of the per-client query limit (not a response class).
const QUERY_KEY: u64 = 4;

impl ResponseClass {
    /// The class of a response already written to `resp` (its header).
    pub fn of_response(resp: &[u8]) -> ResponseClass {
        let (Some(&flags), Some(&rcode)) = (resp.get(2), resp.get(3)) else { return ResponseClass::Error };
        match rcode & 0x0f {
            0 if flags & 0x04 != 0 => ResponseClass::Answer,
            0 => ResponseClass::Referral,
            3 => ResponseClass::NxDomain,
            _ => ResponseClass::Error,
        }
    }
}

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send it.
    Send,
    /// Over the limit: send it cut to an empty TC=1 answer ([`slip`]).
    Slip,
    /// Over the limit: send nothing.
    Drop,
    /// Over the limit in log-only mode: send it anyway.
    Logged,
}

/// `[rrl]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrlSettings {
    /// Responses per second per prefix and class; 0 turns RRL off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 never, 1 always.
    pub slip: u32,
    /// IPv4 prefix length responses are counted by.
    pub ipv4_prefix: u8,
    /// IPv6 prefix length responses are counted by.
    pub ipv6_prefix: u8,
    /// Sources never limited (RRL and the client limit).
    pub exempt: Vec<IpNet>,
    /// Count and log, but send everything.
    pub log_only: bool,
    /// Queries per second per client address; 0 turns the limit off.
    pub client_queries_per_second: u32,
    /// Buckets in the table (a power of two).
    pub table_size: usize,
}

impl Default for RrlSettings {
    fn default() -> Self {
        RrlSettings {
            responses_per_second: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            log_only: false,
            client_queries_per_second: 0,
            table_size: 1 << 16,
        }
    }
}

impl RrlSettings {
    /// Whether anything is limited at all.
    pub fn enabled(&self) -> bool {
        self.responses_per_second > 0 || self.client_queries_per_second > 0
    }
}

/// Counts of limited responses one worker decided, for its slip rhythm.
#[derive(Debug, Default)]
pub struct SlipCounter(u32);

/// The shared bucket table. One per process, read by every worker.
pub struct Limiter {
    settings: RrlSettings,
    buckets: Box<[AtomicU64]>,
    mask: usize,
    seed: u64,
    epoch: Instant,
}

impl Limiter {
    /// A table for `settings` (`table_size` is rounded up to a power of two,
    /// at least 64), with a hash key drawn per process so that nobody can
    /// aim a flood's prefixes at one bucket.
    pub fn new(settings: RrlSettings, epoch: Instant) -> Limiter {
        let n = settings.table_size.max(64).next_power_of_two();
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Limiter { settings, buckets: (0..n).map(|_| AtomicU64::new(0)).collect(), mask: n - 1, seed, epoch }
    }

    /// The settings this table was made with.
    pub fn settings(&self) -> &RrlSettings {
        &self.settings
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        !self.settings.exempt.is_empty() && self.settings.exempt.iter().any(|n| n.contains(&ip.to_canonical()))
    }

    /// Whether a query from `ip` at `now` is within the per-client limit.
    /// Call before answering.
    pub fn admit_query(&self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.settings.client_queries_per_second;
        if rate == 0 || self.exempt(ip) {
            return true;
        }
        let ip = ip.to_canonical();
        let h = mix(mix(self.seed, QUERY_KEY), addr_bits(ip, 128));
        let over = self.count(h, now) > rate;
        if over && self.settings.log_only {
            return true;
        }
        !over
    }

    /// Whether the per-client limit only logs.
    pub fn log_only(&self) -> bool {
        self.settings.log_only
    }

    /// Decides what to do with the response in `resp` (already written) to
    /// `ip` at `now`. `slips` is the calling worker's own counter.
    pub fn decide(&self, ip: IpAddr, resp: &[u8], now: Instant, slips: &mut SlipCounter) -> (ResponseClass, Action) {
        let class = ResponseClass::of_response(resp);
        let rate = self.settings.responses_per_second;
        if rate == 0 || self.exempt(ip) {
            return (class, Action::Send);
        }
        let h = self.key(ip, class, resp);
        let n = self.count(h, now);
        if n <= rate {
            return (class, Action::Send);
        }
        if n == rate + 1 {
            tracing::info!(
                source = %ip.to_canonical(), class = CLASSES[class as usize], limit = rate,
                log_only = self.settings.log_only, "response rate limit reached for this second"
            );
        }
        (class, self.limited(slips))
    }

    /// Before answering: whether the answer to `query` (its name, at the
    /// same offset as in a response) is already over its limit this
    /// second, judged by a read of its bucket. If so the query is counted
    /// as the answer it would get and the action for it is returned, so a
    /// flood of one name is dropped without building answers to throw
    /// away; `None` means answer it and call [`Limiter::decide`]. Only the
    /// answer class is checked early: it is the one keyed by the name, and
    /// a name answered over the limit this second is answered again (a
    /// zone change within that second is the exception, counted as an
    /// answer until the second ends). Log-only mode always answers.
    pub fn decide_early(&self, ip: IpAddr, query: &[u8], now: Instant, slips: &mut SlipCounter) -> Option<Action> {
        let rate = self.settings.responses_per_second;
        if rate == 0 || self.settings.log_only || self.exempt(ip) {
            return None;
        }
        let h = self.key(ip, ResponseClass::Answer, query);
        if !self.over(h, now, rate) {
            return None;
        }
        (self.count(h, now) > rate).then(|| self.limited(slips))
    }

    /// The action for a response over its limit.
    fn limited(&self, slips: &mut SlipCounter) -> Action {
        if self.settings.log_only {
            return Action::Logged;
        }
        slips.0 = slips.0.wrapping_add(1);
        let slip = self.settings.slip;
        if slip > 0 && slips.0.is_multiple_of(slip) { Action::Slip } else { Action::Drop }
    }

    /// The bucket key of a message of `class` to `ip`: prefix and class,
    /// and for answers the question name of `msg`.
    fn key(&self, ip: IpAddr, class: ResponseClass, msg: &[u8]) -> u64 {
        let ip = ip.to_canonical();
        let prefix = match ip {
            IpAddr::V4(_) => self.settings.ipv4_prefix,
            IpAddr::V6(_) => self.settings.ipv6_prefix,
        };
        let h = mix(mix(self.seed, class as u64), addr_bits(ip, prefix));
        if class == ResponseClass::Answer { hash_qname(h, msg) } else { h }
    }

    /// Whether key `h` has already reached `rate` this second (a read only).
    fn over(&self, h: u64, now: Instant, rate: u32) -> bool {
        let second = now.saturating_duration_since(self.epoch).as_secs() & 0xffff;
        let tag = (h >> 32) | 1;
        let first = (h as usize) & self.mask & !1;
        [first, first | 1].iter().any(|&i| {
            let v = self.buckets[i].load(Relaxed);
            v >> 32 == tag && stamp(v) == second && count(v) >= u64::from(rate)
        })
    }

    /// Adds one to the count of key `h` for the current second and returns
    /// the new count.
    fn count(&self, h: u64, now: Instant) -> u32 {
        let second = now.saturating_duration_since(self.epoch).as_secs() & 0xffff;
        let tag = (h >> 32) | 1; // never 0, so an empty bucket matches nothing
        let first = (h as usize) & self.mask & !1;
        for _ in 0..4 {
            let (a, b) = (&self.buckets[first], &self.buckets[first | 1]);
            let (va, vb) = (a.load(Relaxed), b.load(Relaxed));
            // The key's own bucket, else the one to take over: an empty or
            // stale one first, else the one with the smaller count.
            let (slot, old) = if va >> 32 == tag {
                (a, va)
            } else if vb >> 32 == tag {
                (b, vb)
            } else if stamp(va) != second || (stamp(vb) == second && count(va) <= count(vb)) {
                (a, va)
            } else {
                (b, vb)
            };
            let n = if old >> 32 == tag && stamp(old) == second { (count(old) + 1).min(0xffff) } else { 1 };
            let new = (tag << 32) | (second << 16) | n;
            if slot.compare_exchange_weak(old, new, Relaxed, Relaxed).is_ok() {
                return n as u32;
            }
        }
        // Lost four races in a row: let this one through rather than spin.
        0
    }
}

fn stamp(v: u64) -> u64 {
    (v >> 16) & 0xffff
}

fn count(v: u64) -> u64 {
    v & 0xffff
}

/// The first `prefix` bits of `ip` (as a u64 pair folded), for hashing.
fn addr_bits(ip: IpAddr, prefix: u8) -> u64 {
    match ip {
        IpAddr::V4(v) => {
            let bits = u32::from(v);
            let p = u32::from(prefix.min(32));
            let masked = if p == 0 { 0 } else { bits & (u32::MAX << (32 - p)) };
            u64::from(masked) | (1 << 40)
        }
        IpAddr::V6(v) => {
            let bits = u128::from(v);
            let p = u32::from(prefix.min(128));
            let masked = if p == 0 { 0 } else { bits & (u128::MAX << (128 - p)) };
            mix((masked >> 64) as u64, masked as u64 ^ (2 << 40))
        }
    }
}

/// One round of a multiply-rotate mix (not cryptographic; the per-process
/// seed keeps outsiders from predicting buckets).
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31)
}

/// Folds the question name of response `resp` (at offset 12, written
/// uncompressed by the builder) into `h`, label by label,
/// case-insensitively.
fn hash_qname(mut h: u64, resp: &[u8]) -> u64 {
    let name = resp.get(crate::dns::wire::HEADER_LEN..).unwrap_or(&[]);
    let mut at = 0;
    while let Some(&len) = name.get(at) {
        let Some(label) = name.get(at + 1..at + 1 + len as usize).filter(|_| (1..=63).contains(&len)) else {
            break;
        };
        h = mix(h, u64::from(len));
        for chunk in label.chunks(8) {
            h = mix(h, chunk.iter().fold(0u64, |w, b| (w << 8) | u64::from(b.to_ascii_lowercase())));
        }
        at += 1 + len as usize;
    }
    h
}

/// A slipped (empty, TC=1) response to `query`, written to `out`: its
/// header and question with QR and TC set (RFC 1035 §4.1.1). Returns the
/// length, or `None` if the question cannot be found or does not fit.
pub fn slip_query(query: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = query.len().min(out.len());
    out.get_mut(..len)?.copy_from_slice(query.get(..len)?);
    *out.get_mut(2)? = (out[2] & 0x79) | 0x80; // QR, opcode and RD kept, AA cleared
    *out.get_mut(3)? = 0; // RA, Z, rcode NOERROR
    slip(out, len)
}

/// Cuts the response in `resp[..len]` to its header and question with TC
/// set and no records (RFC 1035 §4.1.1; the client retries over TCP).
/// Returns the new length, or `None` if the question cannot be found.
pub fn slip(resp: &mut [u8], len: usize) -> Option<usize> {
    let header = crate::dns::wire::HEADER_LEN;
    let msg = resp.get_mut(..len)?;
    if len < header || msg.get(4..6)? != [0, 1] {
        return None;
    }
    let mut at = header;
    loop {
        let l = *msg.get(at)? as usize;
        if l == 0 {
            at += 1;
            break;
        }
        if l > 63 {
            return None;
        }
        at += 1 + l;
    }
    let end = at + 4;
    if end > len {
        return None;
    }
    msg[2] |= 0x02; // TC
    msg[6..12].fill(0); // no answer, authority or additional records
    Some(end)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(rate: u32, slip: u32) -> Limiter {
        Limiter::new(RrlSettings { responses_per_second: rate, slip, ..RrlSettings::default() }, Instant::now())
    }

    /// An answer (AA, NOERROR) to `name` (wire form).
    fn response(name: &[u8], flags: u8, rcode: u8) -> Vec<u8> {
        let mut r = vec![0x12, 0x34, 0x80 | flags, rcode, 0, 1, 0, 1, 0, 0, 0, 0];
        r.extend_from_slice(name);
        r.extend_from_slice(&[0, 1, 0, 1]);
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        r
    }

    #[test]
    fn a_flood_is_limited_per_prefix_and_name_and_the_next_second_resets() {
        let l = limiter(10, 0);
        let now = Instant::now() + Duration::from_secs(1);
        let mut s = SlipCounter::default();
        let flood = response(b"\x03www\x07example\x03com\x00", 0x04, 0);
        let other = response(b"\x04mail\x07example\x03com\x00", 0x04, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.200".parse().unwrap();
        let sent = (0..100).filter(|_| l.decide(a, &flood, now, &mut s).1 == Action::Send).count();
        assert_eq!(sent, 10);
        // Same /24, same name: the same bucket.
        assert_eq!(l.decide(neighbour, &flood, now, &mut s).1, Action::Drop);
        // Same /24, another name: its own bucket.
        assert_eq!(l.decide(neighbour, &other, now, &mut s).1, Action::Send);
        // Another /24.
        assert_eq!(l.decide("192.0.3.1".parse().unwrap(), &flood, now, &mut s).1, Action::Send);
        // The next second starts afresh.
        assert_eq!(l.decide(a, &flood, now + Duration::from_secs(1), &mut s).1, Action::Send);
    }

    #[test]
    fn nxdomain_is_counted_per_prefix_whatever_the_name() {
        let l = limiter(5, 0);
        let now = Instant::now();
        let mut s = SlipCounter::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let mut sent = 0;
        for i in 0..50u8 {
            let name = [1, b'a' + (i % 26), 1, b'0' + i / 26, 0];
            if l.decide(a, &response(&name, 0x04, 3), now, &mut s).1 == Action::Send {
                sent += 1;
            }
        }
        assert_eq!(sent, 5);
    }

    #[test]
    fn slip_sends_every_nth_limited_response_and_truncates_it() {
        let l = limiter(1, 2);
        let now = Instant::now();
        let mut s = SlipCounter::default();
        let r = response(b"\x01x\x00", 0x04, 0);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let actions: Vec<Action> = (0..5).map(|_| l.decide(a, &r, now, &mut s).1).collect();
        assert_eq!(actions, [Action::Send, Action::Drop, Action::Slip, Action::Drop, Action::Slip]);
        let mut buf = r.clone();
        let len = slip(&mut buf, r.len()).unwrap();
        assert_eq!(len, 12 + 3 + 4);
        assert_eq!(buf[2] & 0x02, 0x02, "TC set");
        assert_eq!(&buf[6..12], &[0; 6]);
    }

    #[test]
    fn exempt_and_log_only() {
        let settings = RrlSettings {
            responses_per_second: 1,
            exempt: vec!["203.0.113.0/24".parse().unwrap()],
            ..RrlSettings::default()
        };
        let l = Limiter::new(settings.clone(), Instant::now());
        let now = Instant::now();
        let mut s = SlipCounter::default();
        let r = response(b"\x01x\x00", 0x04, 0);
        for _ in 0..10 {
            assert_eq!(l.decide("203.0.113.9".parse().unwrap(), &r, now, &mut s).1, Action::Send);
        }
        let l = Limiter::new(RrlSettings { log_only: true, ..settings }, Instant::now());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.decide(a, &r, now, &mut s).1, Action::Send);
        assert_eq!(l.decide(a, &r, now, &mut s).1, Action::Logged);
    }

    #[test]
    fn the_client_limit_counts_whole_addresses() {
        let l = Limiter::new(RrlSettings { client_queries_per_second: 3, ..RrlSettings::default() }, Instant::now());
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let admitted = (0..10).filter(|_| l.admit_query(a, now)).count();
        assert_eq!(admitted, 3);
        assert!(l.admit_query("192.0.2.2".parse().unwrap(), now), "a neighbour has its own count");
    }

    #[test]
    fn a_name_over_its_limit_is_caught_before_answering() {
        let l = limiter(3, 2);
        let now = Instant::now();
        let mut s = SlipCounter::default();
        let r = response(b"\x03www\x07example\x03com\x00", 0x04, 0);
        let mut query = r[..12 + 17 + 4].to_vec();
        query[2] = 0x01; // RD, a query
        query[6..12].fill(0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.decide_early(a, &query, now, &mut s), None, "under the limit: answer");
            assert_eq!(l.decide(a, &r, now, &mut s).1, Action::Send);
        }
        assert_eq!(l.decide_early(a, &query, now, &mut s), Some(Action::Drop));
        assert_eq!(l.decide_early(a, &query, now, &mut s), Some(Action::Slip));
        assert_eq!(l.decide_early("192.0.3.1".parse().unwrap(), &query, now, &mut s), None);
        let mut out = [0u8; 512];
        let len = slip_query(&query, &mut out).unwrap();
        assert_eq!(len, query.len());
        assert_eq!(out[2], 0x80 | 0x02 | 0x01, "QR, TC and RD");
    }

    #[test]
    fn classes_come_from_the_header() {
        assert_eq!(ResponseClass::of_response(&[0, 0, 0x84, 0]), ResponseClass::Answer);
        assert_eq!(ResponseClass::of_response(&[0, 0, 0x80, 0]), ResponseClass::Referral);
        assert_eq!(ResponseClass::of_response(&[0, 0, 0x84, 3]), ResponseClass::NxDomain);
        assert_eq!(ResponseClass::of_response(&[0, 0, 0x80, 5]), ResponseClass::Error);
        assert_eq!(ResponseClass::of_response(&[]), ResponseClass::Error);
    }
}
